"""The per-call conversation state machine, without I/O.

It is fed VAD results and model/playout events, each stamped with the inbound sample clock,
and answers with actions for the glue to carry out (transcribe this span, reply to this text,
interrupt that utterance). Nothing here waits, reads a clock or touches a model, so a whole
conversation can be replayed in a unit test in milliseconds.

End of turn: each pause gets a verdict (``pipeline/core/end_of_turn.py``) from a completeness
score of the turn's audio (asked for with ``ScoreTurn``) and the words of the pause's
transcript; the verdict sets how much silence ends the turn. A turn ended early whose words
then turn out to trail off ("are you open on") is not answered until the longest wait has
passed with no more speech.

Barge-in: caller speech over the bot holds its audio at once. With
``resume_false_interruptions`` the hold lasts until the caller's words are known: a cough,
"mm-hmm" or a word or two resume the bot where it stopped; anything else (or speech longer
than ``barge_in_confirm``) interrupts it for good.

Speculation: when the caller pauses (shorter than the end-of-turn silence), the audio so far
is transcribed and, optionally, a reply is generated and synthesized into a held utterance.
If the turn then ends with no more speech, that work is committed (the held audio starts at
once); if the caller resumes, it is discarded. Nothing is played, written to the history or
acted on before the turn commits.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline.core.end_of_turn import (
    Cue,
    EndOfTurnSettings,
    Reason,
    Verdict,
    false_interruption,
    reason,
    verdict,
    wait_for,
    words_cue,
)
from pipeline.core.turns import TurnDetector, TurnEvent, TurnEventKind

# The soonest a caller's speech can answer the bot's first audio (samples, 16 kHz): its way
# to the caller's ear and a listener's reaction (200 ms and more). The bot's own echo never
# starts a turn: the echo gate silences it before the VAD.
REACTION = 150 * 16


class State(enum.Enum):
    LISTENING = "listening"          # nobody speaks
    CALLER_SPEAKING = "caller_speaking"
    THINKING = "thinking"            # turn committed; transcribing / generating, no audio yet
    BOT_SPEAKING = "bot_speaking"    # an utterance's audio is on the wire
    ENDED = "ended"


TRANSITIONS: dict[tuple[State, State], str] = {
    (State.LISTENING, State.CALLER_SPEAKING): "the caller starts a turn (on_vad)",
    (State.LISTENING, State.THINKING):
        "the bot speaks first: the greeting, a phrase of its own, a keypad entry",
    (State.CALLER_SPEAKING, State.THINKING):
        "the caller's turn ends (on_vad, on_transcript, on_turn_score)",
    (State.THINKING, State.BOT_SPEAKING):
        "the bot's first audio plays (on_playout_started), or a sound over it was no "
        "interruption: it resumes (on_transcript)",
    (State.THINKING, State.LISTENING):
        "nothing to say (no words), or the utterance ended (on_utterance_done)",
    (State.THINKING, State.CALLER_SPEAKING):
        "the caller goes on before the answer: the reply is dropped (on_vad)",
    (State.BOT_SPEAKING, State.LISTENING): "the utterance ended (on_utterance_done)",
    (State.BOT_SPEAKING, State.CALLER_SPEAKING):
        "the caller speaks over the bot (on_vad): held, maybe a barge-in",
    (State.BOT_SPEAKING, State.THINKING): "the bot says something else (say, a keypad entry)",
}
"""Every change of ``Conversation.state`` and what makes it (any state may also end:
ENDED). ``_enter`` keeps to it."""


# --- actions for the glue -------------------------------------------------------------------

@dataclass(frozen=True)
class Say:
    """Speak fixed text (greeting) as utterance ``utterance_id``; then, if it was played to
    its end, run ``after_played`` (the glue's own; the core only hands it on)."""
    utterance_id: int
    text: str
    after_played: Callable[[], None] | None = None


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
class Typed:
    """Turn ``turn_id`` was typed on the keypad as ``text``; it is over (a ``Respond``
    follows)."""
    turn_id: int
    text: str


@dataclass(frozen=True)
class Unanswered:
    """Committed turn ``turn_id`` gets no reply: no words, only a sound over the bot, or the
    caller went on and a later turn holds its words. A turn whose words trail off is not
    unanswered: it is answered, or merged into the next, after the longest wait."""
    turn_id: int


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
    barge_in: bool = True
    """False: the caller went on with the turn before they could hear the reply, which stops
    as stale (no barge-in is counted or timed, though its first audio had gone out)."""


@dataclass(frozen=True)
class Cancel:
    """Stop utterance ``utterance_id`` for good, not because the caller spoke (a key press, or
    the bot has something else to say): no barge-in is counted."""
    utterance_id: int


@dataclass(frozen=True)
class ScoreTurn:
    """Score how complete the turn sounds: its audio [start, end), ``end`` being now (the
    pause's silence included). Answer with ``on_turn_score(pause_id, score)``."""
    pause_id: int
    start: int
    end: int


@dataclass(frozen=True)
class TurnEnded:
    """Why turn ``turn_id`` ended, for its record: the reason, the completeness score of its
    last pause (None: not scored) and the silence it waited (samples)."""
    turn_id: int
    reason: Reason
    score: float | None
    waited: int


@dataclass(frozen=True)
class FalseInterruption:
    """Turn ``turn_id`` over the bot's utterance ``utterance_id`` was no interruption (no
    words, a backchannel): the held audio resumes where it stopped."""
    utterance_id: int
    turn_id: int


@dataclass(frozen=True)
class Prepare:
    """The bot has finished speaking, or the caller began a turn while the bot is silent:
    read the next reply's prompt as far as it is known (the conversation so far) into the
    model now, so that the reply reads only the caller's words."""


@dataclass(frozen=True)
class ListenAhead:
    """The caller is still speaking: transcribe the turn so far, inbound samples [start, end),
    and hand the words to ``on_words_ahead(start, text)``. They decide nothing; the reply's
    prompt is read ahead with them (a reply then reads only the words that came after)."""
    start: int
    end: int


@dataclass(frozen=True)
class ReadAhead:
    """Read the reply's prompt with ``text`` as the caller's words so far (an open turn)."""
    text: str


Action = (Say | Transcribe | Respond | Typed | Unanswered | Commit | Discard | PausePlayout
          | ResumePlayout | Interrupt | Cancel | ScoreTurn | TurnEnded | FalseInterruption
          | Prepare | ListenAhead | ReadAhead)


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
    eot: EndOfTurnSettings = field(default_factory=lambda: EndOfTurnSettings(smart=False))
    """How a pause's verdict sets the silence that ends the turn (``end_silence``: unsure)."""
    resume_false_interruptions: bool = False
    interruption_min_words: int = 2
    """Fewer words than this over the bot (none of them "stop", "wait"...) resume it."""
    barge_in_confirm: int = 16000
    """Caller speech over the bot this long interrupts it without waiting for the words."""
    prepare: bool = True
    """Ask for ``Prepare`` when a caller's turn starts in silence."""
    listen_ahead: int = 0
    """While a turn that started in silence goes on, ask for ``ListenAhead`` after each this
    much of it (0: never)."""


@dataclass
class _Speculation:
    turn_id: int
    start: int
    end: int
    text: str | None = None
    end_of_message: float | None = None
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
        self._playout_at: int | None = None  # the sample at which the reply's audio began
        self._utterance_active = False  # the current utterance may still make sound
        self._spec: _Speculation | None = None
        self._held = False         # playout paused on a tentative barge-in
        self.barge_ins = 0
        self.false_interruptions = 0
        self._now = 0              # end of the last VAD window fed
        self._speech_end = 0       # end of the current (or last) turn's speech
        self._pause_id = 0         # the current pause (stale scores are ignored)
        self._score: float | None = None  # completeness score of the current pause
        self._cue = Cue.UNKNOWN           # what the current pause's words say
        self._verdict = Verdict.UNSURE
        self._held_answer: tuple[int, str, int] | None = None  # (turn, text, answer at sample)
        self._barge: tuple[int, int] | None = None  # (utterance, speech start) awaiting words
        self._ahead_from: int | None = None  # last ListenAhead of the turn being heard
        self._words_due: set[int] = set()  # committed turns whose transcript has not come

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
        self._now = end
        actions: list[Action] = []
        if (self._barge is not None and self.detector.in_turn and self.detector.speaking
                and end - self._barge[1] >= self.s.barge_in_confirm):
            # still talking this long after the first word is no backchannel (a short sound
            # followed by silence waits for its words: "mm-hmm" was cut here at 1 s)
            actions += self._confirm_barge_in()
        if self._held_answer is not None and end >= self._held_answer[2]:
            actions += self._release_held_answer()
        if (self.state is State.BOT_SPEAKING and self.s.barge_in and not self._held
                and prob >= self.s.barge_in_threshold):
            # hold the audio at the first speech window: the wire goes quiet within one frame
            self._held = True
            actions.append(PausePlayout(self.utterance_id))
        for ev in self.detector.feed(end, prob):
            actions += self._on_turn_event(ev)
        if (self._ahead_from is not None and self.detector.speaking
                and end - self._ahead_from >= self.s.listen_ahead):
            self._ahead_from = end
            assert self._turn_start is not None
            actions.append(ListenAhead(self._turn_start, end))
        if self._held and not self.detector.in_turn and not self.detector.timing_speech:
            self._held = False
            actions.append(ResumePlayout(self.utterance_id))
        return actions

    def on_transcript(self, turn_id: int, text: str,
                      end_of_message: float | None = None) -> list[Action]:
        """The words of a turn (``end_of_message``: a language model's probability that the
        caller's message ends with them, if one was asked)."""
        text = text.strip()
        spec = self._spec
        if spec is not None and turn_id == spec.turn_id:
            # a speculation's transcript, the caller still paused: its words revise the
            # verdict; maybe draft the reply
            spec.text = text
            spec.end_of_message = end_of_message
            self._cue = words_cue(self.s.eot, text, end_of_message)
            actions = self._revise()
            if self._spec is None:
                return actions  # the turn ended on the revised verdict (spec committed)
            # a pause that sounds unfinished too: if nothing follows, its turn ends only after
            # the longest wait (1.5 s), and a reply drafted from now is ready by then; if the
            # caller goes on, the draft is dropped (Discard)
            if text and self.s.speculate_reply and self._barge is None:
                spec.utterance_id = self._new_id()
                actions.append(Respond(spec.utterance_id, turn_id, text, speculative=True))
            return actions
        if turn_id not in self._words_due:
            return []  # a discarded speculation's
        self._words_due.discard(turn_id)
        if turn_id != self.turn_id or self.state is not State.THINKING:
            return [Unanswered(turn_id)]  # the caller went on: a later turn holds its words
        return self._heard(turn_id, text, end_of_message)

    def on_words_ahead(self, start: int, text: str) -> list[Action]:
        """The words of ``ListenAhead(start, ...)``: read ahead with them if that turn is
        still being heard and no speculation has replaced them (a pause's own transcript)."""
        text = text.strip()
        if (not text or self._ahead_from is None or self._turn_start != start
                or self._spec is not None):
            return []
        return [ReadAhead(text)]

    def on_turn_score(self, pause_id: int, score: float) -> list[Action]:
        """The completeness score asked for by ``ScoreTurn``."""
        if pause_id != self._pause_id or self.state is not State.CALLER_SPEAKING:
            return []  # the caller went on (or the turn ended) before it came
        self._score = score
        return self._revise()

    def on_playout_started(self, utterance_id: int, at: int | None = None) -> list[Action]:
        """``at``: the inbound sample count when the audio began (default: the last VAD
        window fed, which can be a window behind)."""
        if utterance_id == self.utterance_id and self.state is State.THINKING:
            self._playout_at = self._now if at is None else at
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
            # what was just said is read now, before the caller speaks: the gateway's own
            # sentences (a fallback, an offer) are in no cache, and a Prepare at the next
            # turn gives way at the caller's first pause (then the reply read them, 2-3 s)
            return [Prepare()] if self.s.prepare else []
        return []

    def say(self, text: str, after_played: Callable[[], None] | None = None) -> list[Action]:
        """The bot speaks on its own (a transfer failed, a key was pressed): whatever it was
        saying stops; a caller in mid-turn keeps the floor (their turn is still heard).
        ``after_played``: handed on in the ``Say``."""
        if self.state is State.ENDED or not text:
            return []
        actions = self._cancel_utterance()
        self.utterance_id = self._new_id()
        self._utterance_active = True
        if self.state is not State.CALLER_SPEAKING:
            self._enter(State.THINKING)
        return [*actions, Say(self.utterance_id, text, after_played)]

    def on_text_turn(self, text: str) -> list[Action]:
        """A committed caller turn that was not spoken (keypad digits): answer it now."""
        if self.state is State.ENDED or not text.strip():
            return []
        actions = [*self._discard(), *self._cancel_utterance()]
        self.turn_id = self._new_id()
        self._committed_start = None
        if self.state is not State.CALLER_SPEAKING:
            self._enter(State.THINKING)
        return [*actions, Typed(self.turn_id, text.strip()),
                *self._answer(self.turn_id, text.strip())]

    def end(self) -> None:
        self.state = State.ENDED

    def _cancel_utterance(self) -> list[Action]:
        if not self._utterance_active:
            return []
        self._utterance_active = False
        return [Cancel(self.utterance_id)]

    # --- internals ------------------------------------------------------------------------

    def _set_wait(self) -> None:
        self._verdict = verdict(self.s.eot, self._score, self._cue)
        spec = self._spec
        if (self._barge is not None and spec is not None and spec.text is not None
                and false_interruption(spec.text, self.s.interruption_min_words)):
            # only a sound over the held bot ("Mm-mm" reads as trailing off): end the turn
            # now so the bot resumes, not after the longest wait
            self._verdict = Verdict.COMPLETE
        words_due = spec is not None and spec.text is None
        self.detector.end_silence = wait_for(self.s.eot, self._verdict, self.s.end_silence,
                                             words_due)

    def _revise(self) -> list[Action]:
        """Apply the current pause's verdict; end the turn now if its silence has passed."""
        self._set_wait()
        if self.state is not State.CALLER_SPEAKING:
            return []
        ev = self.detector.end_if_silent(self._now)
        return [] if ev is None else self._on_turn_event(ev)

    def _new_pause(self) -> None:
        self._pause_id += 1
        self._score = None
        self._cue = Cue.UNKNOWN
        self._verdict = Verdict.UNSURE
        self.detector.end_silence = self.s.end_silence

    def _heard(self, turn_id: int, text: str,
               end_of_message: float | None = None) -> list[Action]:
        """The committed turn's words: answer them, unless they trail off after an early end
        (then wait for more), or they were only a noise over the bot's held audio."""
        if (text and self._barge is None and self._verdict is Verdict.COMPLETE
                and words_cue(self.s.eot, text, end_of_message) is Cue.CONTINUES
                and self.s.eot.smart and self.s.eot.use_words):
            self._verdict = Verdict.INCOMPLETE
            self._held_answer = (turn_id, text, self._speech_end + self.s.eot.max_silence)
            return []
        if self._barge is not None:
            uid = self._barge[0]
            if false_interruption(text, self.s.interruption_min_words):
                self._barge = None
                self.false_interruptions += 1
                self._enter(State.BOT_SPEAKING)
                return [FalseInterruption(uid, turn_id), Unanswered(turn_id)]
            return [*self._confirm_barge_in(), *self._answer(turn_id, text)]
        return self._answer(turn_id, text)

    def _release_held_answer(self) -> list[Action]:
        assert self._held_answer is not None
        turn_id, text, _ = self._held_answer
        self._held_answer = None
        if turn_id != self.turn_id or self.state is not State.THINKING:
            return []
        return [TurnEnded(turn_id, Reason.INCOMPLETE, self._score,
                          self._now - self._speech_end), *self._answer(turn_id, text)]

    def _confirm_barge_in(self) -> list[Action]:
        assert self._barge is not None
        (uid, start), self._barge = self._barge, None
        self.barge_ins += 1
        if uid == self.utterance_id:
            self._utterance_active = False
        return [Interrupt(uid, start)]

    def _answer(self, turn_id: int, text: str) -> list[Action]:
        if not text:
            self._committed_start = None
            self._enter(State.LISTENING)
            return [Unanswered(turn_id)]
        self.utterance_id = self._new_id()
        self._utterance_active = True
        return [Respond(self.utterance_id, turn_id, text)]

    def _enter(self, state: State) -> None:
        if state is not self.state and (self.state, state) not in TRANSITIONS:
            raise AssertionError(f"no transition {self.state.value} -> {state.value}")
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
        if ev.kind is TurnEventKind.PAUSE:
            start = self._turn_start if self._turn_start is not None else ev.speech_start
            self._speech_end = ev.speech_end
            if self._ahead_from is not None:  # the pause's transcript is read ahead instead
                self._ahead_from = ev.at
            actions = self._discard()
            if self.s.speculate:
                self._spec = _Speculation(self._new_id(), start, ev.speech_end)
                actions.append(Transcribe(self._spec.turn_id, start, ev.speech_end,
                                          speculative=True))
            self._set_wait()
            if self.s.eot.smart and self.s.eot.use_score:
                actions.append(ScoreTurn(self._pause_id, start, ev.at))
            return actions
        if ev.kind is TurnEventKind.RESUME:
            self._new_pause()
            return self._discard()
        if ev.kind is TurnEventKind.END_OF_TURN:
            return self._end_of_turn(ev)
        return []

    def _end_of_turn(self, ev: TurnEvent) -> list[Action]:
        start = self._turn_start if self._turn_start is not None else ev.speech_start
        self._turn_start = None
        self._ahead_from = None
        self._committed_start = start
        self._speech_end = ev.speech_end
        spec, self._spec = self._spec, None
        self._enter(State.THINKING)
        why = Reason.MAX_TURN if ev.max_turn else reason(self._verdict)
        if spec is None or spec.end != ev.speech_end or spec.start != start:
            actions: list[Action] = [] if spec is None else [
                Discard(spec.turn_id, spec.utterance_id)]
            self.turn_id = self._new_id()
            self._words_due.add(self.turn_id)
            return [*actions, Transcribe(self.turn_id, start, ev.speech_end),
                    TurnEnded(self.turn_id, why, self._score, ev.at - ev.speech_end)]
        # the speculation heard exactly this turn: it stands
        self.turn_id = spec.turn_id
        actions = [Commit(spec.turn_id, spec.utterance_id),
                   TurnEnded(spec.turn_id, why, self._score, ev.at - ev.speech_end)]
        if spec.utterance_id is not None:
            self.utterance_id = spec.utterance_id
            self._utterance_active = True
        elif spec.text is not None:
            actions += self._heard(spec.turn_id, spec.text, spec.end_of_message)
        else:  # its transcript is still coming; on_transcript answers it
            self._words_due.add(spec.turn_id)
        return actions

    def _resumed_under_the_reply(self, ev: TurnEvent) -> bool:
        """Speech over the reply that began before the caller could have heard it: they
        went on after a long pause, not in answer to the reply (a pause just over the
        longest wait, then "Sunday?", was taken for a one-word interruption and the reply
        to "are you open on" played on)."""
        return (self.state is State.BOT_SPEAKING and self._committed_start is not None
                and self._playout_at is not None
                and ev.speech_start < self._playout_at + REACTION)

    def _on_speech_start(self, ev: TurnEvent) -> list[Action]:
        self._new_pause()
        if self.state is State.LISTENING:
            self._turn_start = ev.speech_start
            self._enter(State.CALLER_SPEAKING)
            if not self.s.prepare:
                return []
            if self.s.listen_ahead:
                self._ahead_from = ev.speech_start
            return [Prepare()]
        resumed = self._resumed_under_the_reply(ev)
        if self.state is State.THINKING or resumed:
            self._held_answer = None
            # the caller goes on before we answered: drop the reply, hear the whole turn again
            actions: list[Action] = []
            if self._utterance_active:
                self._utterance_active = False
                # a reply held by a tentative barge-in and stopped now was heard: a barge-in
                actions.append(Interrupt(self.utterance_id, ev.speech_start,
                                         barge_in=not resumed))
            self._turn_start = (self._committed_start if self._committed_start is not None
                                else ev.speech_start)
            self._committed_start = None
            self.turn_id = self._new_id()  # makes the pending transcript stale
            self._enter(State.CALLER_SPEAKING)
            return actions
        if self.state is State.BOT_SPEAKING and self.s.barge_in:
            self._turn_start = ev.speech_start
            self._committed_start = None
            self._new_pause()
            self._barge = (self.utterance_id, ev.speech_start)
            self._enter(State.CALLER_SPEAKING)
            if self.s.resume_false_interruptions:
                return []  # the audio stays held until the words are known
            return self._confirm_barge_in()
        return []
