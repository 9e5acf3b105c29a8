"""The caller's audio of a call, kept for the turns the conversation core asks to transcribe."""

from __future__ import annotations

import collections

import numpy as np

from pipeline.audio.frames import FRAME_SAMPLES


class InboundAudio:
    """The caller's audio of the last minutes, addressable by inbound sample index."""

    def __init__(self, keep_samples: int) -> None:
        self._buf = np.zeros(keep_samples, dtype=np.int16)
        self.end = 0  # samples received so far
        self._arrivals: collections.deque[tuple[int, float]] = collections.deque(
            maxlen=keep_samples // FRAME_SAMPLES + 1)  # (end sample, arrival time) per frame

    def arrived(self, sample: int) -> float:
        """Arrival time of the frame that held ``sample`` (the nearest one kept)."""
        found = None
        for end, t in reversed(self._arrivals):
            if end <= sample:
                break
            found = t
        if found is None:  # not arrived yet (or the newest frame): the latest time known
            return self._arrivals[-1][1] if self._arrivals else 0.0
        return found

    def received_by(self, t: float) -> int:
        """How many samples had arrived at time ``t`` (of those kept; 0 before them)."""
        for end, arrived in reversed(self._arrivals):
            if arrived <= t:
                return end
        return 0

    def append(self, pcm: np.ndarray, t: float = 0.0) -> None:
        n = len(pcm)
        keep = len(self._buf)
        pos = self.end % keep
        first = min(n, keep - pos)
        self._buf[pos:pos + first] = pcm[:first]
        self._buf[:n - first] = pcm[first:]
        self.end += n
        self._arrivals.append((self.end, t))

    def span(self, start: int, end: int) -> np.ndarray:
        start = max(start, self.end - len(self._buf), 0)
        end = min(end, self.end)
        if end <= start:
            return np.zeros(0, dtype=np.int16)
        idx = np.arange(start, end) % len(self._buf)
        return self._buf[idx]
