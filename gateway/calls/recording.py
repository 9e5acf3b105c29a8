"""Whole-call recording ([recording]): one stereo WAV per call, the caller on the left and the
bot on the right, as the port passed them (what the caller heard, barge-ins included).

The media callbacks only hand each 20 ms frame to the call's writer thread (no disk I/O on
the media clock). The conference bridge takes the port's outgoing frame and gives it the
incoming one once per clock tick, so a pair of them is one stereo frame: the two channels
line up on the call's clock to a frame. The file grows as the call goes (its header is made
right when it closes); a call longer than the size bound is recorded up to it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import wave
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.audio.frames import BRIDGE_RATE, FRAME_BYTES, FRAME_SAMPLES

log = logging.getLogger(__name__)

SILENT = bytes(FRAME_BYTES)
FOLDER = "recordings"


def recordings_dir(journal: Path) -> Path:
    """Where a journal's calls are recorded: beside it."""
    return journal.parent / FOLDER


def recording_file(journal: Path, rec: Mapping[str, Any]) -> Path | None:
    """The call's recording, if the record names one that is there: only a file in the
    recordings folder beside the journal is ever served."""
    rel = rec.get("recording")
    if not isinstance(rel, str) or not rel:
        return None
    folder = recordings_dir(journal).resolve()
    p = (journal.parent / rel).resolve()
    return p if p.parent == folder and p.suffix == ".wav" and p.is_file() else None


def stereo(left: bytes, right: bytes) -> bytes:
    """Two 16-bit mono frames as one interleaved stereo frame (the shorter padded)."""
    a = np.frombuffer(left, dtype="<i2")
    b = np.frombuffer(right, dtype="<i2")
    out = np.zeros(2 * max(len(a), len(b)), dtype="<i2")
    out[0:2 * len(a):2] = a
    out[1:2 * len(b):2] = b
    return out.tobytes()


class CallRecording:
    """One call's stereo WAV. ``tap`` wraps the port's two callbacks; ``close`` ends the file
    (the writer thread finishes it; never blocks the caller)."""

    def __init__(self, path: Path, max_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.clock = clock
        self.started: float | None = None
        """The clock's time of the first frame (the WAV's time 0)."""
        self._max_frames = int(max_seconds * BRIDGE_RATE / FRAME_SAMPLES)
        self._frames = 0
        self._pending_out: bytes | None = None
        self._q: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._closed = False
        path.parent.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._write, name=f"rec-{path.stem}",
                                        daemon=True)
        self._thread.start()

    @property
    def seconds(self) -> float:
        return self._frames * FRAME_SAMPLES / BRIDGE_RATE

    def tap(self, inbound: Callable[[bytes], None], outbound: Callable[[], bytes]
            ) -> tuple[Callable[[bytes], None], Callable[[], bytes]]:
        def record_in(pcm: bytes) -> None:
            out, self._pending_out = self._pending_out, None
            self._put(pcm, out if out is not None else SILENT)
            inbound(pcm)

        def record_out() -> bytes:
            pcm = outbound()
            if self._pending_out is not None:  # a tick without a caller's frame
                self._put(SILENT, self._pending_out)
            self._pending_out = pcm
            return pcm

        return record_in, record_out

    def _put(self, left: bytes, right: bytes) -> None:
        if self._closed or self._frames >= self._max_frames:
            return
        if self.started is None:
            self.started = self.clock()  # frame i passed the port at started + i * 20 ms
        self._frames += 1
        self._q.put(stereo(left, right))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._q.put(None)

    def join(self, timeout: float = 5.0) -> None:
        self._thread.join(timeout)

    def _write(self) -> None:
        try:
            out = wave.open(str(self.path), "wb")  # noqa: SIM115 - closed by the with below
        except OSError as e:
            log.error("recording %s: %s", self.path, e)
            while self._q.get() is not None:  # drain: the call goes on unrecorded
                pass
            return
        with out:
            out.setnchannels(2)
            out.setsampwidth(2)
            out.setframerate(BRIDGE_RATE)
            failed = False
            while (chunk := self._q.get()) is not None:
                if failed:
                    continue
                try:
                    out.writeframesraw(chunk)
                except OSError as e:  # a full disk: the call goes on, the file stops
                    log.error("recording %s stopped: %s", self.path, e)
                    failed = True


def sweep(folder: Path, keep_days: float, now: float | None = None) -> int:
    """Delete recordings older than ``keep_days`` (0: keep them all); returns how many."""
    if keep_days <= 0 or not folder.is_dir():
        return 0
    cutoff = (time.time() if now is None else now) - keep_days * 86400
    gone = 0
    for f in folder.glob("*.wav"):
        try:
            if f.stat().st_mtime < cutoff:
                f.unlink()
                gone += 1
        except OSError as e:  # another process swept it first, or no permission
            log.warning("recordings: could not delete %s: %s", f, e)
    return gone
