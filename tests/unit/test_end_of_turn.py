"""The end-of-turn verdict and false-interruption recovery, on scripted timelines (no models)."""

from __future__ import annotations

import pytest

from pipeline.core.conversation import (
    Commit,
    Conversation,
    Discard,
    FalseInterruption,
    Interrupt,
    Respond,
    ScoreTurn,
    State,
    Transcribe,
    TurnEnded,
    Unanswered,
)
from pipeline.core.end_of_turn import (
    Cue,
    EndOfTurnSettings,
    Reason,
    Verdict,
    cue,
    false_interruption,
    verdict,
    wait_for,
)
from tests.unit.vad_timelines import MS, feed, settings, timeline

SMART = EndOfTurnSettings(smart=True, min_silence=200 * MS, max_silence=1500 * MS)


@pytest.mark.parametrize("text, expected", [
    ("Are you open on", Cue.CONTINUES),
    ("I'd like to order the", Cue.CONTINUES),
    ("Can I order a cake and", Cue.CONTINUES),
    ("What time do you, um", Cue.CONTINUES),
    ("My number is 5 5 5", Cue.CONTINUES),
    ("my number is five five five one two", Cue.CONTINUES),
    ("My number is 555 123 4567", Cue.ENDS),
    ("Are you open on Sunday?", Cue.ASKS),
    ("Are you open on?", Cue.CONTINUES),  # the mark after a word that needs more
    ("We're open on Sunday!", Cue.ENDS),
    ("Are you open on Sunday", Cue.ENDS),
    ("When do you close...", Cue.CONTINUES),
    ("I want to come in,", Cue.CONTINUES),
    ("", Cue.UNKNOWN),
])
def test_cue_of_the_words_at_a_pause(text, expected):
    assert cue(text) is expected


def test_verdict_table():
    assert verdict(SMART, 0.9, Cue.UNKNOWN) is Verdict.COMPLETE
    assert verdict(SMART, 0.9, Cue.ENDS) is Verdict.COMPLETE
    assert verdict(SMART, 0.9, Cue.CONTINUES) is Verdict.INCOMPLETE  # the words win
    assert verdict(SMART, 0.3, Cue.ENDS) is Verdict.UNSURE
    assert verdict(SMART, 0.05, Cue.ENDS) is Verdict.INCOMPLETE
    assert verdict(SMART, None, Cue.UNKNOWN) is Verdict.UNSURE
    lift = EndOfTurnSettings(smart=True, words_lift_low_scores=True)
    assert verdict(lift, 0.05, Cue.ENDS) is Verdict.UNSURE
    assert verdict(lift, 0.05, Cue.UNKNOWN) is Verdict.INCOMPLETE
    assert verdict(SMART, 0.05, Cue.ASKS) is Verdict.UNSURE  # a whole question: not the longest
    assert verdict(SMART, 0.9, Cue.ASKS) is Verdict.COMPLETE
    no_q = EndOfTurnSettings(smart=True, questions_lift_low_scores=False)
    assert verdict(no_q, 0.05, Cue.ASKS) is Verdict.INCOMPLETE
    off = EndOfTurnSettings(smart=False)
    assert verdict(off, 0.99, Cue.CONTINUES) is Verdict.UNSURE
    assert wait_for(SMART, Verdict.COMPLETE, 500 * MS) == 200 * MS
    assert wait_for(SMART, Verdict.UNSURE, 500 * MS) == 500 * MS
    assert wait_for(SMART, Verdict.INCOMPLETE, 500 * MS) == 1500 * MS


@pytest.mark.parametrize("text, false", [
    ("", True), ("Mm-hmm.", True), ("uh-huh", True), ("Okay.", True), ("Yeah, yeah.", True),
    ("Right", True), ("Hello", True), ("Go f-", True),
    ("Mm-mm, mm-hmm.", True), ("MmMm", True), ("Uh-uh, mm.", True),  # hums however spelt
    ("Mm, the bill", False),
    ("Stop.", False), ("Wait", False), ("No", False),
    ("What about Sunday?", False), ("Can I order a cake?", False),
])
def test_false_interruption_words(text, false):
    assert false_interruption(text, min_words=2) is false


# --- the conversation with the smart end of turn -------------------------------------------

def smart_conversation(**kw) -> Conversation:
    conv = Conversation(settings(eot=SMART, resume_false_interruptions=True,
                                 barge_in_confirm=1000 * MS, **kw))
    (say,) = conv.start("Hello")
    conv.on_playout_started(say.utterance_id)
    conv.on_utterance_done(say.utterance_id)
    return conv


def speak_and_pause(conv: Conversation, speech_ms: int, silence_ms: int, start: int = 0):
    """Caller speech then silence; the pause's ScoreTurn, if any, is returned with the rest."""
    return feed(conv, timeline((0.9, speech_ms), (0.0, silence_ms)), start=start)


def ended(actions) -> list[TurnEnded]:
    return [a for a in actions if isinstance(a, TurnEnded)]


def test_confident_score_ends_the_turn_at_the_short_wait():
    conv = smart_conversation()
    acts = speak_and_pause(conv, 1024, 224)  # the pause is seen at 200 ms
    (score,) = [a for a in acts if isinstance(a, ScoreTurn)]
    assert not ended(acts) and conv.state is State.CALLER_SPEAKING
    acts = conv.on_turn_score(score.pause_id, 0.93)
    (end,) = ended(acts)
    assert end.reason is Reason.COMPLETE and end.score == pytest.approx(0.93)
    assert 200 * MS <= end.waited < 260 * MS
    assert any(isinstance(a, Commit) for a in acts)
    assert conv.state is State.THINKING


def test_low_score_waits_the_longest_and_a_resume_keeps_one_turn():
    conv = smart_conversation()
    acts = speak_and_pause(conv, 1024, 224)
    (score,) = [a for a in acts if isinstance(a, ScoreTurn)]
    assert conv.on_turn_score(score.pause_id, 0.02) == []
    # 1 s of silence (twice today's 500 ms) does not end the turn
    acts = feed(conv, timeline((0.0, 800)), start=1248 * MS)
    assert not ended(acts) and conv.state is State.CALLER_SPEAKING
    # the caller goes on: one turn, from the first word to the last
    acts = speak_and_pause(conv, 800, 224, start=2048 * MS)
    (score,) = [a for a in acts if isinstance(a, ScoreTurn)]
    (spec,) = [a for a in acts if isinstance(a, Transcribe)]
    acts = conv.on_turn_score(score.pause_id, 0.9)
    assert ended(acts)[0].reason is Reason.COMPLETE
    assert Commit(spec.turn_id, None) in acts and spec.start == 0


def test_middling_score_waits_for_the_words_then_the_default_silence():
    conv = smart_conversation()
    acts = speak_and_pause(conv, 1024, 224)
    (score,) = [a for a in acts if isinstance(a, ScoreTurn)]
    (spec,) = [a for a in acts if isinstance(a, Transcribe)]
    assert conv.on_turn_score(score.pause_id, 0.3) == []
    # past the default 500 ms, but the pause's words are not in yet: they may say "and..."
    assert not ended(feed(conv, timeline((0.0, 400)), start=1248 * MS))
    acts = conv.on_transcript(spec.turn_id, "When do you open")
    (end,) = ended(acts)  # they do not: the turn ends at once
    assert end.reason is Reason.TIMEOUT and 600 * MS <= end.waited < 700 * MS


@pytest.mark.parametrize("words, ends_at_once", [
    ("Are you open on Saturday?", True), ("Are you open on Saturday", False)])
def test_a_whole_question_lifts_a_low_score_to_the_default_wait(words, ends_at_once):
    conv = smart_conversation()
    acts = speak_and_pause(conv, 1024, 224)
    (score,) = [a for a in acts if isinstance(a, ScoreTurn)]
    (spec,) = [a for a in acts if isinstance(a, Transcribe)]
    assert conv.on_turn_score(score.pause_id, 0.02) == []  # the audio says: unfinished
    assert not ended(feed(conv, timeline((0.0, 400)), start=1248 * MS))
    acts = conv.on_transcript(spec.turn_id, words)
    if ends_at_once:  # the default 500 ms is past: the question ends the turn now
        (end,) = ended(acts)
        assert end.reason is Reason.TIMEOUT and 600 * MS <= end.waited < 700 * MS
    else:  # no question mark: the low score still waits the longest
        assert not ended(acts)
        assert not ended(feed(conv, timeline((0.0, 800)), start=1648 * MS))


def test_a_pause_that_sounds_unfinished_drafts_its_reply_for_the_longest_wait():
    conv = smart_conversation()
    acts = speak_and_pause(conv, 1024, 224)
    (score,) = [a for a in acts if isinstance(a, ScoreTurn)]
    (spec,) = [a for a in acts if isinstance(a, Transcribe)]
    assert conv.on_turn_score(score.pause_id, 0.02) == []  # unfinished: wait 1.5 s
    (draft,) = [a for a in conv.on_transcript(spec.turn_id, "Are you open on Saturday")
                if isinstance(a, Respond)]
    assert draft.speculative and draft.text == "Are you open on Saturday"
    # nothing more is said: at the longest wait the draft is the answer, nothing asked again
    acts = feed(conv, timeline((0.0, 1400)), start=1248 * MS)
    (end,) = ended(acts)
    assert end.reason is Reason.INCOMPLETE and 1500 * MS <= end.waited < 1560 * MS
    assert Commit(spec.turn_id, draft.utterance_id) in acts
    assert not any(isinstance(a, (Respond, Transcribe)) for a in acts)


def test_an_unfinished_pause_s_draft_is_dropped_when_the_caller_goes_on():
    conv = smart_conversation()
    acts = speak_and_pause(conv, 1024, 224)
    (score,) = [a for a in acts if isinstance(a, ScoreTurn)]
    (spec,) = [a for a in acts if isinstance(a, Transcribe)]
    conv.on_turn_score(score.pause_id, 0.02)
    (draft,) = [a for a in conv.on_transcript(spec.turn_id, "Are you open on")
                if isinstance(a, Respond)]
    acts = speak_and_pause(conv, 640, 224, start=1648 * MS)
    assert Discard(spec.turn_id, draft.utterance_id) in acts
    assert not any(isinstance(a, Commit) and a.turn_id == spec.turn_id for a in acts)


def test_middling_score_without_words_ends_at_the_longest_wait():
    conv = smart_conversation()
    acts = speak_and_pause(conv, 1024, 224)
    (score,) = [a for a in acts if isinstance(a, ScoreTurn)]
    conv.on_turn_score(score.pause_id, 0.3)
    acts = feed(conv, timeline((0.0, 1400)), start=1248 * MS)
    (end,) = ended(acts)
    assert end.reason is Reason.TIMEOUT and 1500 * MS <= end.waited < 1560 * MS


def test_words_that_trail_off_hold_an_early_answer_until_the_longest_wait():
    conv = smart_conversation(speculate_reply=False)
    acts = speak_and_pause(conv, 1024, 224)
    (score,) = [a for a in acts if isinstance(a, ScoreTurn)]
    (spec,) = [a for a in acts if isinstance(a, Transcribe)]
    acts = conv.on_turn_score(score.pause_id, 0.95)  # the audio model says complete
    assert ended(acts)[0].reason is Reason.COMPLETE
    # ... but the words say otherwise: no answer yet
    assert conv.on_transcript(spec.turn_id, "Are you open on") == []  # not Unanswered
    acts = feed(conv, timeline((0.0, 1000)), start=1248 * MS)
    assert not any(isinstance(a, Respond) for a in acts)
    acts = feed(conv, timeline((0.0, 400)), start=2248 * MS)
    (end,) = ended(acts)
    (resp,) = [a for a in acts if isinstance(a, Respond)]
    assert end.reason is Reason.INCOMPLETE and resp.text == "Are you open on"


def test_held_answer_is_dropped_when_the_caller_goes_on():
    conv = smart_conversation(speculate_reply=False)
    acts = speak_and_pause(conv, 1024, 224)
    (score,) = [a for a in acts if isinstance(a, ScoreTurn)]
    (spec,) = [a for a in acts if isinstance(a, Transcribe)]
    conv.on_turn_score(score.pause_id, 0.95)
    conv.on_transcript(spec.turn_id, "Are you open on")
    acts = speak_and_pause(conv, 640, 224, start=2048 * MS)
    (score,) = [a for a in acts if isinstance(a, ScoreTurn)]
    acts += conv.on_turn_score(score.pause_id, 0.95)
    # the whole sentence is heard again, from the first word
    (tr,) = [a for a in acts if isinstance(a, Transcribe)]
    assert tr.start == 0 and Commit(tr.turn_id, None) in acts


def bot_speaking(conv: Conversation) -> tuple[int, int]:
    """Have the caller ask and the bot start answering; returns (utterance, sample now)."""
    acts = speak_and_pause(conv, 1024, 224)
    (score,) = [a for a in acts if isinstance(a, ScoreTurn)]
    (spec,) = [a for a in acts if isinstance(a, Transcribe)]
    conv.on_turn_score(score.pause_id, 0.95)
    (resp,) = conv.on_transcript(spec.turn_id, "When do you open?")
    conv.on_playout_started(resp.utterance_id)
    assert conv.state is State.BOT_SPEAKING
    # the reply plays long enough to be heard: speech now answers it
    assert feed(conv, timeline((0.0, 320)), start=1248 * MS) == []
    return resp.utterance_id, 1568 * MS


def test_backchannel_over_the_bot_resumes_it():
    conv = smart_conversation()
    uid, now = bot_speaking(conv)
    acts = speak_and_pause(conv, 320, 224, start=now)
    assert not any(isinstance(a, Interrupt) for a in acts)  # held, not stopped
    (score,) = [a for a in acts if isinstance(a, ScoreTurn)]
    acts += conv.on_turn_score(score.pause_id, 0.9)
    trs = [a for a in acts if isinstance(a, Transcribe)]
    acts = conv.on_transcript(trs[-1].turn_id, "Mm-hmm.")
    # the bot resumes; the sound was a turn of its own, over and unanswered
    assert acts == [FalseInterruption(uid, trs[-1].turn_id), Unanswered(trs[-1].turn_id)]
    assert conv.state is State.BOT_SPEAKING and conv.false_interruptions == 1
    assert conv.barge_ins == 0


def test_a_question_over_the_bot_interrupts_it_and_is_answered():
    conv = smart_conversation()
    uid, now = bot_speaking(conv)
    acts = speak_and_pause(conv, 640, 224, start=now)
    (score,) = [a for a in acts if isinstance(a, ScoreTurn)]
    acts += conv.on_turn_score(score.pause_id, 0.9)
    trs = [a for a in acts if isinstance(a, Transcribe)]
    acts = conv.on_transcript(trs[-1].turn_id, "And on Sunday?")
    assert isinstance(acts[0], Interrupt) and acts[0].utterance_id == uid
    assert acts[0].speech_start == now  # heard from the caller's first sound
    assert isinstance(acts[1], Respond) and acts[1].text == "And on Sunday?"
    assert conv.barge_ins == 1


def test_a_short_sound_then_silence_waits_for_its_words_past_the_confirm_time():
    conv = smart_conversation()
    uid, now = bot_speaking(conv)
    acts = speak_and_pause(conv, 544, 224, start=now)
    (score,) = [a for a in acts if isinstance(a, ScoreTurn)]
    trs = [a for a in acts if isinstance(a, Transcribe)]
    acts = conv.on_turn_score(score.pause_id, 0.05)  # sounds unfinished: the longest wait
    # 1.2 s after the sound began, the words are not in: silence is no reason to interrupt
    acts += feed(conv, timeline((0.0, 448)), start=now + 768 * MS)
    assert not any(isinstance(a, Interrupt) for a in acts) and conv.barge_ins == 0
    # its words are only a hum: the bot resumes now, not after the longest wait
    acts = conv.on_transcript(trs[-1].turn_id, "Mm-mm")
    assert acts[-2:] == [FalseInterruption(uid, trs[-1].turn_id), Unanswered(trs[-1].turn_id)]
    assert not any(isinstance(a, Interrupt) for a in acts)
    assert conv.state is State.BOT_SPEAKING and conv.false_interruptions == 1


def test_long_speech_over_the_bot_interrupts_without_waiting_for_words():
    conv = smart_conversation()
    uid, now = bot_speaking(conv)
    acts = feed(conv, timeline((0.9, 1100)), start=now)
    (intr,) = [a for a in acts if isinstance(a, Interrupt)]
    assert intr.utterance_id == uid and conv.barge_ins == 1


def test_without_resume_any_speech_over_the_bot_interrupts_at_once():
    conv = smart_conversation()
    conv.s = settings(eot=SMART, resume_false_interruptions=False)
    uid, now = bot_speaking(conv)
    acts = feed(conv, timeline((0.9, 320)), start=now)
    assert [a.utterance_id for a in acts if isinstance(a, Interrupt)] == [uid]
