"""The per-call conversation state machine, without I/O.

It is fed VAD results and model/playout events, each stamped with the inbound sample clock,
and answers with actions for the glue to carry out (transcribe this span, reply to this text,
interrupt that utterance). Nothing here waits, reads a clock or touches a model, so a whole
conversation can be replayed in a unit test in milliseconds.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pipeline.turns import TurnDetector, TurnEvent, TurnEventKind


class State(enum.Enum):
    LISTENING = "listening"          # nobody speaks
    CALLER_SPEAKING = "caller_speaking"
    THINKING = "thinking"            # turn committed; transcribing / generating, no audio yet
    BOT_SPEAKING = "bot_speaking"    # an utterance's audio is on the wire
    ENDED = "ended"


# --- actions for the glue -------------------------------------------------------------------

@dataclass(frozen=True)
class Say:
    """Speak fixed text (greeting) as utterance ``utterance_id``."""
    utterance_id: int
    text: str


@dataclass(frozen=True)
class Transcribe:
    """Run speech-to-text on inbound samples [start, end) for turn ``turn_id``."""
    turn_id: int
    start: int
    end: int
    committed_at: int
    """Sample at which the end of turn was decided (for the end-of-turn delay metric)."""


@dataclass(frozen=True)
class Respond:
    """Generate and speak the reply to the caller's committed text."""
    utterance_id: int
    turn_id: int
    text: str


@dataclass(frozen=True)
class PausePlayout:
    """The caller may be barging in: hold the bot's audio where it is."""
    utterance_id: int
    at: int


@dataclass(frozen=True)
class ResumePlayout:
    """It was a click or a cough: continue the held audio."""
    utterance_id: int


@dataclass(frozen=True)
class Interrupt:
    """Barge-in confirmed (or the reply became stale): stop utterance ``utterance_id`` for good."""
    utterance_id: int
    speech_start: int
    at: int


Action = Say | Transcribe | Respond | PausePlayout | ResumePlayout | Interrupt


@dataclass(frozen=True)
class TurnSettings:
    """Durations in samples (16 kHz)."""
    threshold: float = 0.5
    end_silence: int = 8000
    min_speech: int = 2400
    min_barge_in: int = 3200
    pause: int = 3200
    max_turn: int = 480000
    barge_in: bool = True


class Conversation:
    def __init__(self, settings: TurnSettings) -> None:
        self.s = settings
        self.state = State.LISTENING
        self.detector = TurnDetector(settings.threshold, settings.end_silence,
                                     settings.min_speech, settings.pause, settings.max_turn)
        self._next_id = 0
        self.turn_id = 0           # last committed turn
        self.utterance_id = 0      # current (or last) bot utterance
        self._turn_start: int | None = None  # first speech sample of the turn being heard
        self._committed_start: int | None = None  # same, for the turn awaiting its reply
        self._utterance_active = False  # the current utterance may still make sound
        self._held = False         # playout paused on a tentative barge-in
        self.barge_ins = 0

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    # --- inputs ---------------------------------------------------------------------------

    def start(self, greeting: str) -> list[Action]:
        if not greeting:
            return []
        self.utterance_id = self._new_id()
        self._utterance_active = True
        self._enter(State.THINKING)
        return [Say(self.utterance_id, greeting)]

    def on_vad(self, end: int, prob: float) -> list[Action]:
        if self.state is State.ENDED:
            return []
        actions: list[Action] = []
        if (self.state is State.BOT_SPEAKING and self.s.barge_in and not self._held
                and prob >= self.s.threshold):
            # hold the audio at the first speech window: the wire goes quiet within one frame
            self._held = True
            actions.append(PausePlayout(self.utterance_id, end))
        for ev in self.detector.feed(end, prob):
            actions += self._on_turn_event(ev)
        if self._held and not self.detector.in_turn and not self._detector_onset():
            self._held = False
            actions.append(ResumePlayout(self.utterance_id))
        return actions

    def on_transcript(self, turn_id: int, text: str) -> list[Action]:
        if turn_id != self.turn_id or self.state is not State.THINKING:
            return []  # stale: the caller spoke again and the turn was merged
        if not text.strip():
            self._committed_start = None
            self._enter(State.LISTENING)
            return []
        self.utterance_id = self._new_id()
        self._utterance_active = True
        return [Respond(self.utterance_id, turn_id, text.strip())]

    def on_playout_started(self, utterance_id: int) -> list[Action]:
        if utterance_id == self.utterance_id and self.state is State.THINKING:
            self._enter(State.BOT_SPEAKING)
        return []

    def on_utterance_done(self, utterance_id: int) -> list[Action]:
        """All of the utterance was generated and played (or it produced nothing)."""
        if utterance_id != self.utterance_id or not self._utterance_active:
            return []
        self._utterance_active = False
        self._committed_start = None
        if self.state in (State.THINKING, State.BOT_SPEAKING):
            self._enter(State.LISTENING)
        return []

    def end(self) -> None:
        self.state = State.ENDED

    # --- internals ------------------------------------------------------------------------

    def _detector_onset(self) -> bool:
        return self.detector._onset is not None  # noqa: SLF001 - a speech run is being timed

    def _enter(self, state: State) -> None:
        self.state = state
        # while the bot talks, caller speech must last longer before it counts (barge-in)
        self.detector.min_speech = (self.s.min_barge_in if state is State.BOT_SPEAKING
                                    else self.s.min_speech)
        if state is not State.BOT_SPEAKING:
            self._held = False

    def _on_turn_event(self, ev: TurnEvent) -> list[Action]:
        if ev.kind is TurnEventKind.SPEECH_START:
            return self._on_speech_start(ev)
        if ev.kind is TurnEventKind.END_OF_TURN and self.state is State.CALLER_SPEAKING:
            start = self._turn_start if self._turn_start is not None else ev.speech_start
            self._turn_start = None
            self._committed_start = start
            self.turn_id = self._new_id()
            self._enter(State.THINKING)
            return [Transcribe(self.turn_id, start, ev.speech_end, ev.at)]
        return []

    def _on_speech_start(self, ev: TurnEvent) -> list[Action]:
        if self.state is State.LISTENING:
            self._turn_start = ev.speech_start
            self._enter(State.CALLER_SPEAKING)
            return []
        if self.state is State.THINKING:
            # the caller goes on before we answered: drop the reply, hear the whole turn again
            actions: list[Action] = []
            if self._utterance_active:
                self._utterance_active = False
                actions.append(Interrupt(self.utterance_id, ev.speech_start, ev.at))
            self._turn_start = (self._committed_start if self._committed_start is not None
                                else ev.speech_start)
            self._committed_start = None
            self.turn_id = self._new_id()  # makes the pending transcript stale
            self._enter(State.CALLER_SPEAKING)
            return actions
        if self.state is State.BOT_SPEAKING and self.s.barge_in:
            self.barge_ins += 1
            self._turn_start = ev.speech_start
            self._committed_start = None
            self._utterance_active = False
            uid = self.utterance_id
            self._enter(State.CALLER_SPEAKING)
            return [Interrupt(uid, ev.speech_start, ev.at)]
        return []
