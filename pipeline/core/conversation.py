"""The per-call conversation state machine, without I/O.

It is fed VAD results and model/playout events, each stamped with the inbound sample clock,
and answers with actions for the glue to carry out (transcribe this span, reply to this text,
interrupt that utterance). Nothing here waits, reads a clock or touches a model, so a whole
conversation can be replayed in a unit test in milliseconds.

Speculation: when the caller pauses (shorter than the end-of-turn silence), the audio so far
is transcribed and, optionally, a reply is generated and synthesized into a held utterance.
If the turn then ends with no more speech, that work is committed (the held audio starts at
once); if the caller resumes, it is discarded. Nothing is played, written to the history or
acted on before the turn commits.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pipeline.core.turns import TurnDetector, TurnEvent, TurnEventKind


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
    speculative: bool = False


@dataclass(frozen=True)
class Respond:
    """Generate the reply to the caller's text. A speculative reply is synthesized into a
    held utterance: nothing plays and nothing enters the history until ``Commit``."""
    utterance_id: int
    turn_id: int
    text: str
    speculative: bool = False


@dataclass(frozen=True)
class Commit:
    """Turn ``turn_id`` is over. Its speculative transcript stands; if a speculative reply
    (``utterance_id``) exists, release it to the caller."""
    turn_id: int
    utterance_id: int | None


@dataclass(frozen=True)
class Discard:
    """Drop speculative work: the caller resumed. Cancel ``utterance_id`` if set."""
    turn_id: int
    utterance_id: int | None


@dataclass(frozen=True)
class PausePlayout:
    """The caller may be barging in: hold the bot's audio where it is."""
    utterance_id: int


@dataclass(frozen=True)
class ResumePlayout:
    """It was a click or a cough: continue the held audio."""
    utterance_id: int


@dataclass(frozen=True)
class Interrupt:
    """Barge-in confirmed (or the reply became stale): stop utterance ``utterance_id`` for good."""
    utterance_id: int
    speech_start: int


@dataclass(frozen=True)
class Cancel:
    """Stop utterance ``utterance_id`` for good, not because the caller spoke (a key press, or
    the bot has something else to say): no barge-in is counted."""
    utterance_id: int


Action = (Say | Transcribe | Respond | Commit | Discard | PausePlayout | ResumePlayout
          | Interrupt | Cancel)


@dataclass(frozen=True)
class TurnSettings:
    """Durations in samples (16 kHz)."""
    threshold: float = 0.5
    end_silence: int = 8000
    min_speech: int = 2400
    min_barge_in: int = 3200
    pause: int = 3200
    """Silence after which speculative speech-to-text starts."""
    max_turn: int = 480000
    barge_in: bool = True
    barge_in_threshold: float = 0.5
    """VAD probability that counts as caller speech over the bot's audio."""
    speculate: bool = True
    """Transcribe during pauses, before the end of the turn."""
    speculate_reply: bool = True
    """Also generate the reply speculatively (not only the transcript)."""


@dataclass
class _Speculation:
    turn_id: int
    start: int
    end: int
    text: str | None = None
    utterance_id: int | None = None


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
        self._spec: _Speculation | None = None
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
                and prob >= self.s.barge_in_threshold):
            # hold the audio at the first speech window: the wire goes quiet within one frame
            self._held = True
            actions.append(PausePlayout(self.utterance_id))
        for ev in self.detector.feed(end, prob):
            actions += self._on_turn_event(ev)
        if self._held and not self.detector.in_turn and not self.detector.timing_speech:
            self._held = False
            actions.append(ResumePlayout(self.utterance_id))
        return actions

    def on_transcript(self, turn_id: int, text: str) -> list[Action]:
        text = text.strip()
        spec = self._spec
        if spec is not None and turn_id == spec.turn_id:
            # a speculation's transcript, the caller still paused: maybe draft the reply
            spec.text = text
            if text and self.s.speculate_reply:
                spec.utterance_id = self._new_id()
                return [Respond(spec.utterance_id, turn_id, text, speculative=True)]
            return []
        if turn_id != self.turn_id or self.state is not State.THINKING:
            return []  # stale: discarded speculation, or the turn was merged
        return self._answer(turn_id, text)

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

    def say(self, text: str) -> list[Action]:
        """The bot speaks on its own (a transfer failed, a key was pressed): whatever it was
        saying stops; a caller in mid-turn keeps the floor (their turn is still heard)."""
        if self.state is State.ENDED or not text:
            return []
        actions = self._cancel_utterance()
        self.utterance_id = self._new_id()
        self._utterance_active = True
        if self.state is not State.CALLER_SPEAKING:
            self._enter(State.THINKING)
        return [*actions, Say(self.utterance_id, text)]

    def on_text_turn(self, text: str) -> list[Action]:
        """A committed caller turn that was not spoken (keypad digits): answer it now."""
        if self.state is State.ENDED or not text.strip():
            return []
        actions = [*self._discard(), *self._cancel_utterance()]
        self.turn_id = self._new_id()
        self._committed_start = None
        if self.state is not State.CALLER_SPEAKING:
            self._enter(State.THINKING)
        return [*actions, *self._answer(self.turn_id, text.strip())]

    def end(self) -> None:
        self.state = State.ENDED

    def _cancel_utterance(self) -> list[Action]:
        if not self._utterance_active:
            return []
        self._utterance_active = False
        return [Cancel(self.utterance_id)]

    # --- internals ------------------------------------------------------------------------

    def _answer(self, turn_id: int, text: str) -> list[Action]:
        if not text:
            self._committed_start = None
            self._enter(State.LISTENING)
            return []
        self.utterance_id = self._new_id()
        self._utterance_active = True
        return [Respond(self.utterance_id, turn_id, text)]

    def _enter(self, state: State) -> None:
        self.state = state
        # while the bot talks, caller speech must last longer before it counts (barge-in)
        bot = state is State.BOT_SPEAKING
        self.detector.min_speech = self.s.min_barge_in if bot else self.s.min_speech
        self.detector.threshold = self.s.barge_in_threshold if bot else self.s.threshold
        if not bot:
            self._held = False

    def _discard(self) -> list[Action]:
        spec, self._spec = self._spec, None
        return [] if spec is None else [Discard(spec.turn_id, spec.utterance_id)]

    def _on_turn_event(self, ev: TurnEvent) -> list[Action]:
        if ev.kind is TurnEventKind.SPEECH_START:
            return self._on_speech_start(ev)
        if self.state is not State.CALLER_SPEAKING:
            return []
        if ev.kind is TurnEventKind.PAUSE and self.s.speculate:
            start = self._turn_start if self._turn_start is not None else ev.speech_start
            actions = self._discard()
            self._spec = _Speculation(self._new_id(), start, ev.speech_end)
            return [*actions, Transcribe(self._spec.turn_id, start, ev.speech_end,
                                         speculative=True)]
        if ev.kind is TurnEventKind.RESUME:
            return self._discard()
        if ev.kind is TurnEventKind.END_OF_TURN:
            return self._end_of_turn(ev)
        return []

    def _end_of_turn(self, ev: TurnEvent) -> list[Action]:
        start = self._turn_start if self._turn_start is not None else ev.speech_start
        self._turn_start = None
        self._committed_start = start
        spec, self._spec = self._spec, None
        self._enter(State.THINKING)
        if spec is None or spec.end != ev.speech_end or spec.start != start:
            actions: list[Action] = [] if spec is None else [
                Discard(spec.turn_id, spec.utterance_id)]
            self.turn_id = self._new_id()
            return [*actions, Transcribe(self.turn_id, start, ev.speech_end)]
        # the speculation heard exactly this turn: it stands
        self.turn_id = spec.turn_id
        actions = [Commit(spec.turn_id, spec.utterance_id)]
        if spec.utterance_id is not None:
            self.utterance_id = spec.utterance_id
            self._utterance_active = True
        elif spec.text is not None:
            actions += self._answer(spec.turn_id, spec.text)
        # else: its transcript is still coming; on_transcript answers it
        return actions

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
                actions.append(Interrupt(self.utterance_id, ev.speech_start))
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
            return [Interrupt(uid, ev.speech_start)]
        return []
