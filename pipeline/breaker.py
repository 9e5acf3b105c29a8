"""A circuit breaker for a model server: after a few failures in a row it stops sending
requests for a cool-down, then lets one probe through. Callers of a dead server hear the
apology at once instead of waiting out a connect timeout each turn, and a server coming back
up is not met by every call's retry at the same moment.

Pure logic: time is an argument (seconds on any monotonic clock); a lock makes it safe to
share between the calls' worker threads.
"""

from __future__ import annotations

import enum
import threading


class BreakerState(enum.Enum):
    CLOSED = "closed"
    """Requests go through; failures in a row are counted."""
    OPEN = "open"
    """Requests are refused until the cool-down has passed."""
    HALF_OPEN = "half_open"
    """One probe request is out; its outcome closes or re-opens the breaker."""


class CircuitBreaker:
    def __init__(self, failures: int = 3, cooldown: float = 30.0) -> None:
        if failures < 1 or cooldown < 0:
            raise ValueError("failures must be >= 1 and cooldown >= 0")
        self.failures = failures
        self.cooldown = cooldown
        self.state = BreakerState.CLOSED
        self._in_a_row = 0
        self._opened_at = 0.0
        self._probe_out = False
        self._lock = threading.Lock()

    def allow(self, now: float) -> bool:
        """May a request be sent now? In HALF_OPEN only the one probe may (the caller must
        then report its outcome: ``succeeded``, ``failed`` or ``abandoned``)."""
        with self._lock:
            if self.state is BreakerState.OPEN and now - self._opened_at >= self.cooldown:
                self.state = BreakerState.HALF_OPEN
                self._probe_out = False
            if self.state is BreakerState.CLOSED:
                return True
            if self.state is BreakerState.HALF_OPEN and not self._probe_out:
                self._probe_out = True
                return True
            return False

    def succeeded(self, now: float) -> None:
        with self._lock:
            self.state = BreakerState.CLOSED
            self._in_a_row = 0
            self._probe_out = False

    def failed(self, now: float) -> None:
        with self._lock:
            self._in_a_row += 1
            if self.state is BreakerState.HALF_OPEN or self._in_a_row >= self.failures:
                self.state = BreakerState.OPEN
                self._opened_at = now
                self._probe_out = False

    def abandoned(self, now: float) -> None:
        """A request ended with no verdict (the caller barged in before the server answered):
        in HALF_OPEN the next request may probe instead."""
        with self._lock:
            self._probe_out = False

    def retry_in(self, now: float) -> float:
        """Seconds until the next request may go (0 = now)."""
        with self._lock:
            if self.state is not BreakerState.OPEN:
                return 0.0
            return max(0.0, self.cooldown - (now - self._opened_at))
