"""A Geigel double-talk detector: is the caller talking, or is it only the bot's echo?

Every call starts with the bot talking (the greeting), and the echo canceller needs seconds
of bot speech to converge; until then the echo alone can look like speech to the VAD. The
Geigel test is the classic guard: the caller's line carries the bot's echo at least the echo
return loss below the bot's own level (10-20 dB on phones), so speech over the bot counts
only if its peak comes within ``ratio_db`` of the bot's peak over the echo tail. It needs no
convergence and survives echo-path jumps (a jitter buffer changing its delay), which an
energy test on the canceller's output did not (bench/turns.py: false barge-ins on a loaded
box).

A fixed -6 dB also holds back a real barge-in until the caller's first loud vowel (a soft
"S" or "W" onset is 10-20 dB under the bot's peak): measured ~45 ms later on average, and
never for a caller 6 dB quieter than the bot. So the line's own echo level is learned while
the bot talks: the 98th percentile of near/far peak ratios over the last 10 s of bot speech
(a linear echo never exceeds its return loss; the caller's few frames over the bot before it
stops only raise the estimate, the safe direction), trusted after 3 s of bot speech
(bench/turns.py: trusted after 1 s, with a 90th percentile, the greeting's echo interrupted
the bot once), and the threshold becomes that level plus ``margin_db``, between ``floor_db``
and ``ratio_db``. A line with no echo then passes a caller's onset; a line with -10 dB echo
keeps ``ratio_db``.

The echo comes back a round trip late: the caller's own delay plus both jitter buffers and the
network, which can exceed the configured tail (bench/turns.py: the echo of a loud word, 200 ms
late at the caller, arrived after the 400 ms tail and interrupted the bot). So the gate also
finds the echo's delay, as the lag at which the line's frame levels best follow the bot's
while it talks (correlation of log peaks over the last 6 s, at one lag clearly above the
others), and widens its tail to cover it. It only ever widens: a wrong estimate can make the
gate stricter, never let an echo through. Pure logic, per frame.
"""

from __future__ import annotations

import collections
import itertools

import numpy as np

SILENT_PEAK = 300  # int16: below this the bot is not talking and nothing is gated
DELAY_SLACK = 4  # frames around the estimated echo delay still compared (jitter buffers move)
MIN_CORRELATION = 0.6  # below this the line does not follow the bot: no echo delay to trust
MIN_PROMINENCE = 0.3  # the best lag's correlation over the median lag's: an echo has one lag
MIN_PAIRS = 100  # bot-talking frames (2 s) needed at a lag to judge it: fewer gave chance peaks


def echo_delay(near: np.ndarray, far: np.ndarray, max_lag: int) -> tuple[int, float, float]:
    """The lag in frames at which ``near``'s frame peaks best follow ``far``'s: the lag, the
    correlation there (Pearson, of log peaks: an echo is the bot's level minus a constant) and
    its prominence (that correlation minus the median over all lags).

    Only frames where the bot was talking count: over all frames, the mere turn-taking (the
    bot talks, then the caller does, or talks over it) correlated at 0.6-0.7 on calls with no
    echo at all (bench/media_faults.py), where an echo follows the bot's syllables at one lag.
    """
    x = np.log1p(np.asarray(far, np.float64))
    y = np.log1p(np.asarray(near, np.float64))
    talking = np.asarray(far) >= SILENT_PEAK
    n = len(x)
    cs = np.full(min(max_lag, n // 2) + 1, np.nan)
    for lag in range(len(cs)):
        on = talking[: n - lag]
        a, b = x[: n - lag][on], y[lag:][on]
        if len(a) >= MIN_PAIRS and a.std() > 1e-9 and b.std() > 1e-9:
            cs[lag] = np.corrcoef(a, b)[0, 1]
    if np.isnan(cs).all():
        return 0, 0.0, 0.0
    best = int(np.nanargmax(cs))
    return best, float(cs[best]), float(cs[best] - np.nanmedian(cs))


class EchoGate:
    def __init__(self, tail_frames: int, ratio_db: float = -6.0, near_frames: int = 2,
                 hangover_frames: int = 12, adaptive: bool = True, margin_db: float = 6.0,
                 floor_db: float = -30.0, learn_frames: int = 150,
                 history_frames: int = 500, max_delay_frames: int = 50,
                 delay_every: int = 25, delay_window: int = 300) -> None:
        self.max_ratio = 10 ** (ratio_db / 20)
        self.ratio = self.max_ratio  # the threshold in force (learned when adaptive)
        self.base_tail = max(1, tail_frames)
        self.tail = self.base_tail  # frames of bot peaks compared (widened to the echo delay)
        self._near_frames = max(1, near_frames)
        # Geigel's hangover: speech peaks only in its vowels; once the caller is heard, the
        # soft frames right after count too (else a barge-in starts only at a loud syllable)
        self.hangover_frames = hangover_frames
        self._hangover = 0
        self.adaptive = adaptive
        self._margin = 10 ** (margin_db / 20)
        self._floor = 10 ** (floor_db / 20)
        self._learn = learn_frames  # bot-talking frames seen before the estimate is trusted
        self._ratios: collections.deque[float] = collections.deque(maxlen=history_frames)
        # per-frame peaks of both sides: the gate's windows and the echo delay estimate
        self._max_delay = max_delay_frames
        self._delay_every = delay_every
        keep = max(delay_window, self.base_tail, max_delay_frames + DELAY_SLACK + 1)
        self._near: collections.deque[int] = collections.deque(maxlen=keep)
        self._far: collections.deque[int] = collections.deque(maxlen=keep)
        self._since_estimate = 0
        self.delay_frames: int | None = None  # the echo's delay, once found
        self.delay_correlation = 0.0

    def push(self, near: np.ndarray, far: np.ndarray) -> None:
        """The caller's raw frame (before echo cancellation) and the bot frame sent with it."""
        self._near.append(int(np.abs(near.astype(np.int32)).max(initial=0)))
        self._far.append(int(np.abs(far.astype(np.int32)).max(initial=0)))
        self._since_estimate += 1
        if self._since_estimate >= self._delay_every:
            self._estimate_delay()
        far = self._far_peak()
        near_peak = self._near_peak()
        if far >= SILENT_PEAK and near_peak >= self.ratio * far:
            self._hangover = self.hangover_frames  # the caller, over the bot
        else:
            self._hangover = max(0, self._hangover - 1)
        if far >= SILENT_PEAK and self.adaptive:  # learned after the decision it informs
            self._ratios.append(near_peak / far)
            if len(self._ratios) >= self._learn:
                echo = float(np.percentile(self._ratios, 98))
                self.ratio = min(self.max_ratio, max(self._floor, echo * self._margin))

    @staticmethod
    def _peak(frames: collections.deque[int], n: int) -> int:
        """The highest of the last ``n`` frame peaks."""
        return max(itertools.islice(reversed(frames), n), default=0)

    def _far_peak(self) -> int:
        return self._peak(self._far, self.tail)

    def _near_peak(self) -> int:
        return self._peak(self._near, self._near_frames)

    def _estimate_delay(self) -> None:
        self._since_estimate = 0
        far = np.fromiter(self._far, np.int64)
        if np.count_nonzero(far >= SILENT_PEAK) < MIN_PAIRS:
            return  # too little bot speech in the window to follow (echo_delay needs as much)
        lag, c, prominence = echo_delay(np.fromiter(self._near, np.int64), far,
                                        self._max_delay)
        if c >= MIN_CORRELATION and prominence >= MIN_PROMINENCE:
            self.delay_frames, self.delay_correlation = lag, c
            self.tail = max(self.tail, lag + DELAY_SLACK + 1)

    def closest_db(self, frames: int) -> tuple[float, int, int]:
        """Over the last ``frames`` frames while the bot talked: how close (dB) the line's peak
        came to the bot's peak over the tail, with those two peaks. For the log of a barge-in:
        an echo that got through shows up here as a level the gate should have held."""
        near, far = list(self._near), list(self._far)
        best = (float("-inf"), 0, 0)
        for i in range(max(0, len(near) - frames), len(near)):
            f = max(far[max(0, i - self.tail + 1): i + 1], default=0)
            if f >= SILENT_PEAK and near[i] > 0:
                best = max(best, (20 * float(np.log10(near[i] / f)), near[i], f))
        return best

    @property
    def threshold_db(self) -> float:
        return 20 * float(np.log10(self.ratio))

    def _geigel_echo_only(self) -> bool:
        far = self._far_peak()
        return far >= SILENT_PEAK and self._near_peak() < self.ratio * far

    def echo_only(self) -> bool:
        """True when the bot is talking and the caller's line has not been louder than its
        echo could be (within the hangover)."""
        return self._geigel_echo_only() and self._hangover == 0
