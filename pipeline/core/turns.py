"""Turn detection from VAD probabilities: when the caller starts, pauses, resumes and is done.

Pure logic: fed (sample index, speech probability) pairs, returns events stamped in samples.
Hysteresis (enter at ``threshold``, leave below ``threshold - 0.15``) keeps a word's soft
ending from splitting it; a minimum speech run keeps clicks and coughs from starting a turn.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pipeline.audio.vad import WINDOW


class TurnEventKind(enum.Enum):
    SPEECH_START = "speech_start"
    PAUSE = "pause"
    RESUME = "resume"
    END_OF_TURN = "end_of_turn"


@dataclass(frozen=True)
class TurnEvent:
    kind: TurnEventKind
    at: int
    """Sample index at which the detector knew (end of the deciding VAD window)."""
    speech_start: int
    """First sample of the turn's speech."""
    speech_end: int
    """One past the last speech sample so far (for SPEECH_START: ``at``)."""
    max_turn: bool = False
    """END_OF_TURN only: the turn reached ``max_turn``, not a silence."""


class _Phase(enum.Enum):
    IDLE = enum.auto()
    IN_TURN = enum.auto()


class TurnDetector:
    def __init__(self, threshold: float, end_silence: int, min_speech: int, pause: int,
                 max_turn: int) -> None:
        """All durations in samples."""
        self.threshold = threshold  # may change between windows (barge-in uses its own)
        self.end_silence = end_silence
        self.min_speech = min_speech
        self.pause = pause
        self.max_turn = max_turn
        self.reset()

    def reset(self) -> None:
        self._phase = _Phase.IDLE
        self._onset: int | None = None  # first sample of a speech run not yet a turn
        self._speech_end = 0
        self._paused = False
        self._speaking = False

    @property
    def in_turn(self) -> bool:
        return self._phase is _Phase.IN_TURN

    @property
    def speaking(self) -> bool:
        """The last window was speech (with hysteresis), not a pause."""
        return self._speaking

    @property
    def timing_speech(self) -> bool:
        """A speech run has begun but is not (yet) long enough to start a turn."""
        return self._phase is _Phase.IDLE and self._onset is not None

    def feed(self, end: int, prob: float) -> list[TurnEvent]:
        start = end - WINDOW
        if prob >= self.threshold:
            self._speaking = True
        elif prob < max(0.01, self.threshold - 0.15):
            self._speaking = False
        if self._phase is _Phase.IDLE:
            return self._idle(start, end)
        return self._in_turn(end)

    def _idle(self, start: int, end: int) -> list[TurnEvent]:
        if not self._speaking:
            self._onset = None
            return []
        if self._onset is None:
            self._onset = start
        self._speech_end = end
        if end - self._onset < self.min_speech:
            return []
        self._phase = _Phase.IN_TURN
        self._paused = False
        return [TurnEvent(TurnEventKind.SPEECH_START, end, self._onset, end)]

    def _in_turn(self, end: int) -> list[TurnEvent]:
        assert self._onset is not None
        events = []
        if self._speaking:
            self._speech_end = end
            if self._paused:
                self._paused = False
                events.append(TurnEvent(TurnEventKind.RESUME, end, self._onset, end))
        else:
            silence = end - self._speech_end
            if silence >= self.pause and not self._paused:
                self._paused = True
                events.append(TurnEvent(TurnEventKind.PAUSE, end, self._onset,
                                        self._speech_end))
            if silence >= self.end_silence:
                return events + [self._end(end)]
        if end - self._onset >= self.max_turn:
            events.append(self._end(end, max_turn=True))
        return events

    def end_if_silent(self, now: int) -> TurnEvent | None:
        """END_OF_TURN now if the caller is silent and ``end_silence`` (just lowered) has
        passed; for a verdict that arrives between two VAD windows."""
        if (self._phase is _Phase.IN_TURN and not self._speaking
                and now - self._speech_end >= self.end_silence):
            return self._end(now)
        return None

    def _end(self, end: int, max_turn: bool = False) -> TurnEvent:
        assert self._onset is not None
        ev = TurnEvent(TurnEventKind.END_OF_TURN, end, self._onset, self._speech_end, max_turn)
        self._phase = _Phase.IDLE
        self._onset = None
        self._paused = False
        return ev
