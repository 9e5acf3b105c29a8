"""Audible edges of a call, for TTFA on the wire: when each 20 ms frame passed the port, both
ways, and whether it was loud. The media callbacks go through the taps here (the hot path)."""

from __future__ import annotations

import array
import time
from collections.abc import Callable

import numpy as np

LOUD_RMS = 500.0
"""A 20 ms frame with an RMS above this (about -36 dBFS) holds sound, not silence."""


class AudioEdges:
    """When each 20 ms frame passed the port, both ways, and whether it was loud.

    The VAD decides the end of a turn from Silero's scores, which hold on ~100 ms past the last
    audible sound; TTFA on the wire is measured from the caller's last sound to the bot's first
    sound. The media callbacks note each frame's time and loudness (one float dot product of
    320 samples, ~2 µs) in fixed rings; ``last_loud_in`` / ``first_loud_out`` search them later
    from another thread.
    """

    def __init__(self, seconds: float = 120.0, loud_rms: float = LOUD_RMS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        """The session's clock: the times here are compared with its turn records."""
        self.size = int(seconds / 0.020)
        self._loud2 = loud_rms * loud_rms * 320
        self.in_t = array.array("d", bytes(8 * self.size))
        self.in_loud = bytearray(self.size)
        self.out_t = array.array("d", bytes(8 * self.size))
        self.out_loud = bytearray(self.size)
        self.n_in = 0
        self.n_out = 0

    def _loud(self, pcm: bytes) -> int:
        x = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
        return int(float(np.dot(x, x)) * (320 / max(1, len(x))) > self._loud2)

    def tap_inbound(self, fn):
        clock = self.clock

        def inbound(pcm: bytes) -> None:
            i = self.n_in % self.size
            self.in_t[i] = clock()
            self.in_loud[i] = self._loud(pcm)
            self.n_in += 1
            fn(pcm)
        return inbound

    def tap_outbound(self, fn):
        clock = self.clock

        def outbound() -> bytes:
            pcm = fn()
            i = self.n_out % self.size
            self.out_t[i] = clock()
            self.out_loud[i] = self._loud(pcm)
            self.n_out += 1
            return pcm
        return outbound

    def last_loud_in(self, not_after: float, not_before: float) -> float | None:
        """Arrival time of the last loud inbound frame in [not_before, not_after]."""
        n = self.n_in
        for k in range(n - 1, max(-1, n - self.size - 1), -1):
            i = k % self.size
            t = self.in_t[i]
            if t < not_before:
                return None
            if t <= not_after and self.in_loud[i]:
                return t
        return None

    def first_loud_out(self, not_before: float, not_after: float) -> float | None:
        """Time the first loud outbound frame in [not_before, not_after] was handed out."""
        n = self.n_out
        lo = max(0, n - self.size)
        # binary search for the first frame at or after not_before, then scan forward
        a, b = lo, n
        while a < b:
            m = (a + b) // 2
            if self.out_t[m % self.size] < not_before:
                a = m + 1
            else:
                b = m
        for k in range(a, n):
            i = k % self.size
            t = self.out_t[i]
            if t > not_after:
                return None
            if self.out_loud[i]:
                return t
        return None
