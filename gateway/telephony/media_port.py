"""The AudioMediaPort that connects one call's conference slot to its conversation session.

Both callbacks run on PJSIP's media clock thread every 20 ms: they copy one frame and return.
``bytes(frame.buf)`` costs ~0.7 ms (SWIG copies element by element), so inbound frames are read
straight from the std::vector's storage; ``vector_reader_works()`` proves the layout at start-up
and the slow path is used if it ever does not hold.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import time
from collections.abc import Callable

import pjsua2 as pj

from pipeline.audio.frames import BRIDGE_RATE, FRAME_BYTES

log = logging.getLogger(__name__)

_PTR = ctypes.c_void_p


def _read_vector_fast(vec) -> bytes:
    """Contents of a SWIG ``std::vector<unsigned char>`` via its (begin, end) pointers."""
    addr = int(vec.this)
    begin = _PTR.from_address(addr).value
    end = _PTR.from_address(addr + ctypes.sizeof(_PTR)).value
    if not begin or end is None or end < begin:
        return b""
    return ctypes.string_at(begin, end - begin)


def _read_vector_slow(vec) -> bytes:
    return bytes(vec)


def vector_reader_works() -> bool:
    """True when libstdc++'s vector layout is what ``_read_vector_fast`` assumes."""
    try:
        for probe in (b"", b"\x01", bytes(range(256)) * 3):
            if _read_vector_fast(pj.ByteVector(probe)) != probe:
                return False
        return True
    except Exception:  # noqa: BLE001 - any surprise means: use the safe path
        return False


read_vector: Callable[[object], bytes] = _read_vector_slow


def init_fast_path() -> bool:
    global read_vector
    ok = vector_reader_works()
    read_vector = _read_vector_fast if ok else _read_vector_slow
    if not ok:
        log.warning("fast frame copy unavailable: using bytes(frame.buf) (~0.7 ms per frame)")
    return ok


def pcm_format() -> pj.MediaFormatAudio:
    fmt = pj.MediaFormatAudio()
    fmt.init(pj.PJMEDIA_FORMAT_PCM, BRIDGE_RATE, 1, 20000, 16)
    return fmt


def _drop(_pcm: bytes) -> None:
    pass


def _silence() -> bytes:
    return SILENCE


SILENCE = bytes(FRAME_BYTES)


class CallPort(pj.AudioMediaPort):
    """Frames in from the caller -> ``on_inbound``; frames out to the caller <- ``next_outbound``.

    Ports are pooled and reused call after call, never destroyed while the library runs:
    destroying one removes it from the conference bridge while the media clock may be inside
    its callback (the clock thread holds the bridge lock and waits for the GIL), which has
    raced and stalled. Between calls a port is detached: it drops what it hears and plays
    silence. ``lateness`` (when set) receives how late each inbound callback ran against the
    20 ms grid.
    """

    def __init__(self, lateness: Callable[[float], None] | None = None) -> None:
        super().__init__()
        self._lateness = lateness
        self.detach()

    def attach(self, on_inbound: Callable[[bytes], None],
               next_outbound: Callable[[], bytes]) -> None:
        self._t0: float | None = None
        self._ticks = 0
        self.frames_in = self.frames_out = 0
        self.odd_frames = 0  # inbound frames of an unexpected size (padded or cut)
        self.empty_frames = 0  # ticks with no inbound audio (replaced by silence)
        self._next_outbound = next_outbound
        self._on_inbound = on_inbound

    def detach(self) -> None:
        self.attach(_drop, _silence)

    # At process exit a port's attributes can be cleared while the clock still calls in:
    # such a call meets an AttributeError and does nothing.

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:  # noqa: N802 - pjsua2 API
        with contextlib.suppress(AttributeError):
            self._received(frame)

    def onFrameRequested(self, frame: pj.MediaFrame) -> None:  # noqa: N802 - pjsua2 API
        try:
            pcm = self._next_outbound()
        except AttributeError:
            return
        frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
        frame.size = len(pcm)
        frame.buf = pj.ByteVector(pcm)
        self.frames_out += 1

    def _received(self, frame: pj.MediaFrame) -> None:
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        elif self._lateness is not None:
            self._ticks += 1
            self._lateness(max(0.0, now - (self._t0 + self._ticks * 0.020)))
        if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO:
            pcm = read_vector(frame.buf)
            if len(pcm) != FRAME_BYTES:
                self.odd_frames += 1
                pcm = (pcm + bytes(FRAME_BYTES))[:FRAME_BYTES]
        else:  # no audio this tick (jitter buffer empty): keep the sample clock running
            self.empty_frames += 1
            pcm = SILENCE
        self.frames_in += 1
        self._on_inbound(pcm)
