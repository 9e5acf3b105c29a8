"""Audio primitives shared by every stage: one immutable frame type, conversions, playout.

Audio time is counted in samples at the bridge rate (16 kHz), never read from a wall clock.
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass

import numpy as np

BRIDGE_RATE = 16000
"""Sample rate of the conference bridge and of every frame the pipeline sees (Hz)."""
FRAME_SAMPLES = 320
"""Samples in one 20 ms frame at the bridge rate."""
FRAME_BYTES = FRAME_SAMPLES * 2


@dataclass(frozen=True, slots=True)
class AudioFrame:
    """A chunk of mono signed 16-bit PCM."""

    pcm: bytes
    """Little-endian int16 samples."""
    sample_rate: int = BRIDGE_RATE
    """Samples per second."""
    start: int = 0
    """Index of the first sample on the stream's own clock (samples since the stream began)."""

    def __post_init__(self) -> None:
        if len(self.pcm) % 2:
            raise ValueError(f"PCM16 needs an even byte count, got {len(self.pcm)}")

    @property
    def samples(self) -> int:
        return len(self.pcm) // 2

    @property
    def end(self) -> int:
        """Index one past the last sample."""
        return self.start + self.samples

    def as_int16(self) -> np.ndarray:
        return np.frombuffer(self.pcm, dtype="<i2")

    def as_float32(self) -> np.ndarray:
        return int16_to_float(self.as_int16())


def int16_to_float(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) * (1.0 / 32768.0)


def float_to_int16(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2")


def ms_to_samples(ms: float, rate: int = BRIDGE_RATE) -> int:
    return int(round(ms * rate / 1000.0))


def samples_to_ms(samples: int, rate: int = BRIDGE_RATE) -> int:
    return samples * 1000 // rate


def split_frames(pcm: bytes, frame_bytes: int = FRAME_BYTES) -> list[bytes]:
    """Cut PCM into whole frames, zero-padding the last one."""
    if not pcm:
        return []
    rem = len(pcm) % frame_bytes
    if rem:
        pcm = pcm + bytes(frame_bytes - rem)
    return [pcm[i:i + frame_bytes] for i in range(0, len(pcm), frame_bytes)]


class PlayoutBuffer:
    """Frames queued for the caller; drained by the media clock thread, one frame per tick.

    The media callback only pops or returns silence: it never waits. ``played`` counts the
    samples actually handed to the bridge, tagged by the utterance they belong to, so that
    barge-in knows how much of each utterance the caller heard.
    """

    def __init__(self) -> None:
        self._frames: collections.deque[tuple[int, bytes]] = collections.deque()
        self._lock = threading.Lock()  # held only for O(1) operations
        self._played: dict[int, int] = collections.defaultdict(int)
        self.held = False  # a tentative barge-in holds the audio without dropping it

    def push(self, utterance_id: int, pcm: bytes) -> None:
        frames = split_frames(pcm)
        with self._lock:
            self._frames.extend((utterance_id, f) for f in frames)

    def pop(self) -> tuple[int, bytes] | None:
        """(utterance id, next frame) for the wire, or None when idle or held."""
        with self._lock:
            if self.held or not self._frames:
                return None
            uid, frame = self._frames.popleft()
            self._played[uid] += len(frame) // 2
        return uid, frame

    def flush(self, utterance_id: int | None = None) -> int:
        """Drop queued frames (all, or one utterance's); returns the samples dropped."""
        with self._lock:
            if utterance_id is None:
                dropped = sum(len(f) for _, f in self._frames) // 2
                self._frames.clear()
            else:
                keep = collections.deque(x for x in self._frames if x[0] != utterance_id)
                dropped = (sum(len(f) for _, f in self._frames)
                           - sum(len(f) for _, f in keep)) // 2
                self._frames = keep
        return dropped

    def played(self, utterance_id: int) -> int:
        """Samples of this utterance handed to the bridge so far."""
        with self._lock:
            return self._played.get(utterance_id, 0)

    def queued(self, utterance_id: int | None = None) -> int:
        with self._lock:
            return sum(len(f) for u, f in self._frames
                       if utterance_id is None or u == utterance_id) // 2


def write_wav(path: str, pcm: np.ndarray, rate: int = BRIDGE_RATE) -> None:
    """Mono 16-bit WAV (a caller turn's audio, for debugging: ``[log] turn_audio_dir``)."""
    import wave

    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())
