"""The conversation core fed any sequence of its inputs: it never raises, every change of
state is one of its table (``TRANSITIONS``: ``_enter`` raises on any other), and every
committed turn ends once: answered, or reported unanswered, never both."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.audio.vad import WINDOW
from pipeline.core.conversation import (
    Conversation,
    ListenAhead,
    Respond,
    Say,
    ScoreTurn,
    State,
    Transcribe,
    TurnSettings,
    Typed,
    Unanswered,
)
from pipeline.core.end_of_turn import EndOfTurnSettings

MS = 16
EXAMPLES = int(os.environ.get("VOICEBOT_FUZZ_EXAMPLES", "300"))
WORDS = ["", "mm-hmm", "stop", "What time do you open?", "Are you open on", "yes",
         "I'd like to book a cleaning for Monday morning please"]

events = st.lists(st.one_of(
    st.tuples(st.just("vad"), st.sampled_from([0.02, 0.9]), st.integers(1, 60)),
    st.tuples(st.just("words"), st.integers(0, 20), st.sampled_from(WORDS),
              st.one_of(st.none(), st.floats(0, 1))),
    st.tuples(st.just("score"), st.integers(0, 20), st.floats(0, 1)),
    st.tuples(st.just("play"), st.integers(0, 20)),
    st.tuples(st.just("done"), st.integers(0, 20)),
    st.tuples(st.just("ahead"), st.integers(0, 20), st.sampled_from(WORDS)),
    st.tuples(st.just("say"), st.sampled_from(["Transferring you.", ""])),
    st.tuples(st.just("keys"), st.sampled_from(["1234", " ", "0"])),
), max_size=80)


def pick(items: list, i: int):
    return items[i % len(items)] if items else None


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events, st.booleans(), st.booleans())
def test_any_sequence_of_inputs_keeps_to_the_table(script, smart, speculate):
    conv = Conversation(TurnSettings(
        threshold=0.5, end_silence=500 * MS, min_speech=150 * MS, min_barge_in=200 * MS,
        pause=200 * MS, max_turn=4000 * MS, speculate=speculate,
        eot=EndOfTurnSettings(smart=smart, min_silence=200 * MS, max_silence=1500 * MS),
        resume_false_interruptions=True, barge_in_confirm=1000 * MS, listen_ahead=600 * MS))
    actions = list(conv.start("Hello"))
    now = 0
    for ev in script:
        kind = ev[0]
        if kind == "vad":
            for _ in range(ev[2]):
                now += WINDOW
                actions += conv.on_vad(now, ev[1])
        elif kind == "words" and (t := pick([a for a in actions
                                              if isinstance(a, Transcribe)], ev[1])):
            actions += conv.on_transcript(t.turn_id, ev[2], ev[3])
        elif kind == "score" and (s := pick([a for a in actions
                                              if isinstance(a, ScoreTurn)], ev[1])):
            actions += conv.on_turn_score(s.pause_id, ev[2])
        elif kind in ("play", "done") and (u := pick([a for a in actions
                                                      if isinstance(a, Respond | Say)], ev[1])):
            actions += (conv.on_playout_started(u.utterance_id) if kind == "play"
                        else conv.on_utterance_done(u.utterance_id))
        elif kind == "ahead" and (la := pick([a for a in actions
                                              if isinstance(a, ListenAhead)], ev[1])):
            actions += conv.on_words_ahead(la.start, ev[2])
        elif kind == "say":
            actions += conv.say(ev[1])
        elif kind == "keys":
            actions += conv.on_text_turn(ev[1])
        assert conv.state in State
    unanswered = [a.turn_id for a in actions if isinstance(a, Unanswered)]
    assert len(unanswered) == len(set(unanswered)), "a turn reported unanswered twice"
    answered = {a.turn_id for a in actions if isinstance(a, Respond) and not a.speculative}
    assert not answered & set(unanswered), "a turn both answered and unanswered"
    typed = [a.turn_id for a in actions if isinstance(a, Typed)]
    assert set(typed) <= answered
