"""The conversation core and turn detector on scripted VAD timelines (no models, no sleeps)."""

from __future__ import annotations

from pipeline.audio.vad import WINDOW
from pipeline.core.conversation import (
    Commit,
    Conversation,
    Discard,
    Interrupt,
    ListenAhead,
    PausePlayout,
    Prepare,
    ReadAhead,
    Respond,
    ResumePlayout,
    Say,
    State,
    Transcribe,
    Typed,
    Unanswered,
)
from pipeline.core.turns import TurnDetector, TurnEventKind
from tests.unit.vad_timelines import MS, feed, settings, timeline

# --- turn detector ---------------------------------------------------------------------------

def make_detector(**kw) -> TurnDetector:
    s = settings(**kw)
    return TurnDetector(s.threshold, s.end_silence, s.min_speech, s.pause, s.max_turn)


def run(det: TurnDetector, tl):
    return [ev for end, p in tl for ev in det.feed(end, p)]


def test_turn_ends_after_configured_silence():
    det = make_detector()
    evs = run(det, timeline((0.0, 320), (0.9, 1024), (0.0, 800)))
    kinds = [e.kind for e in evs]
    assert kinds == [TurnEventKind.SPEECH_START, TurnEventKind.PAUSE, TurnEventKind.END_OF_TURN]
    start, end = evs[-1].speech_start, evs[-1].speech_end
    assert start == 320 * MS and end == (320 + 1024) * MS
    assert evs[-1].at - end >= 500 * MS  # decided only after the silence
    assert evs[-1].at - end < 500 * MS + WINDOW


def test_short_blip_is_not_a_turn():
    det = make_detector()
    assert run(det, timeline((0.0, 320), (0.95, 64), (0.0, 2000))) == []


def test_hysteresis_keeps_a_soft_word_ending_in_the_turn():
    # 0.4 is below the threshold but above the release level (0.35): still speech
    det = make_detector()
    evs = run(det, timeline((0.9, 320), (0.4, 640), (0.9, 320), (0.0, 700)))
    ends = [e for e in evs if e.kind is TurnEventKind.END_OF_TURN]
    assert len(ends) == 1 and ends[0].speech_end == 1280 * MS


def test_pause_then_resume_is_one_turn():
    det = make_detector()
    evs = run(det, timeline((0.9, 512), (0.0, 320), (0.9, 512), (0.0, 700)))
    kinds = [e.kind for e in evs]
    assert kinds == [TurnEventKind.SPEECH_START, TurnEventKind.PAUSE, TurnEventKind.RESUME,
                     TurnEventKind.PAUSE, TurnEventKind.END_OF_TURN]


def test_endless_speech_is_cut_at_max_turn():
    det = make_detector(max_turn=2000 * MS)
    evs = run(det, timeline((0.9, 3000)))
    ends = [e for e in evs if e.kind is TurnEventKind.END_OF_TURN]
    assert ends and ends[0].at - ends[0].speech_start >= 2000 * MS


# --- conversation ----------------------------------------------------------------------------

def answered_conversation() -> tuple[Conversation, int]:
    """A conversation whose greeting has played and whose bot is now answering turn 1."""
    conv = Conversation(settings())
    (say,) = conv.start("Hello")
    assert isinstance(say, Say) and conv.state is State.THINKING
    conv.on_playout_started(say.utterance_id)
    conv.on_utterance_done(say.utterance_id)
    assert conv.state is State.LISTENING
    return conv, say.utterance_id


def test_full_turn_transcribes_then_responds():
    conv, _ = answered_conversation()
    acts = feed(conv, timeline((0.0, 320), (0.9, 1024), (0.0, 800)))
    (tr,) = [a for a in acts if isinstance(a, Transcribe)]
    assert conv.state is State.THINKING
    assert tr.start == 320 * MS and tr.end == 1344 * MS
    (resp,) = conv.on_transcript(tr.turn_id, "When do you open?")
    assert isinstance(resp, Respond) and resp.text == "When do you open?"
    conv.on_playout_started(resp.utterance_id)
    assert conv.state is State.BOT_SPEAKING
    conv.on_utterance_done(resp.utterance_id)
    assert conv.state is State.LISTENING


def test_a_turn_begun_in_silence_prepares_the_reply_once():
    conv, _ = answered_conversation()
    acts = feed(conv, timeline((0.0, 320), (0.9, 512), (0.0, 300), (0.9, 512), (0.0, 800)))
    # at the turn's first words only: not again when the caller goes on after a pause
    assert [type(a) for a in acts].count(Prepare) == 1
    assert isinstance(acts[0], Prepare)
    tr = [a for a in acts if isinstance(a, Transcribe)][-1]
    (resp,) = [a for a in conv.on_transcript(tr.turn_id, "When do you open?")
               if isinstance(a, Respond)]
    conv.on_playout_started(resp.utterance_id)
    # over the bot's words (a barge-in) the model is busy with the reply: nothing to prepare
    acts = feed(conv, timeline((0.9, 600), (0.0, 700)), start=3000 * MS)
    assert not [a for a in acts if isinstance(a, Prepare)] and conv.barge_ins == 1
    # and once the reply has played, the conversation so far is read before the caller speaks
    assert conv.on_utterance_done(resp.utterance_id) == []  # cut by the barge-in: no longer
    off, _ = answered_conversation()
    off.s = settings(prepare=False)
    assert not [a for a in feed(off, timeline((0.9, 512), (0.0, 700)))
                if isinstance(a, Prepare)]


def test_the_conversation_is_read_ahead_once_the_bot_has_spoken():
    conv = Conversation(settings())
    (say,) = conv.start("Hello")
    conv.on_playout_started(say.utterance_id)
    assert conv.on_utterance_done(say.utterance_id) == [Prepare()]
    assert conv.state is State.LISTENING
    assert conv.on_utterance_done(say.utterance_id) == []  # once
    off = Conversation(settings(prepare=False))
    (say,) = off.start("Hello")
    assert off.on_utterance_done(say.utterance_id) == []


def test_a_long_turn_is_listened_to_ahead_while_it_goes_on():
    conv, _ = answered_conversation()
    conv.s = settings(listen_ahead=600 * MS)
    acts = feed(conv, timeline((0.0, 320), (0.9, 1400)))
    ahead = [a for a in acts if isinstance(a, ListenAhead)]
    # after each 600 ms of the turn (to the next VAD window), from its first speech sample,
    # the audio so far
    start = ahead[0].start
    assert len(ahead) == 2 and all(a.start == start for a in ahead)
    assert 0 <= ahead[0].end - start - 600 * MS < WINDOW
    assert 0 <= ahead[1].end - ahead[0].end - 600 * MS < WINDOW
    # the words so far are read ahead while the turn is still being heard
    assert conv.on_words_ahead(start, " What time do ") == [ReadAhead("What time do")]
    assert conv.on_words_ahead(start, "  ") == []
    assert conv.on_words_ahead(start + WINDOW, "What") == []  # another turn's
    # a pause: its own transcript (the speculation) replaces the words heard ahead
    acts = feed(conv, timeline((0.0, 250)), start=1720 * MS)
    assert [a for a in acts if isinstance(a, Transcribe) and a.speculative]
    assert conv.on_words_ahead(start, "What time do you") == []
    # the caller goes on: listening ahead resumes, counted from the pause
    acts = feed(conv, timeline((0.9, 700)), start=1970 * MS)
    (again,) = [a for a in acts if isinstance(a, ListenAhead)]
    assert again.start == start and again.end >= 1970 * MS + 400 * MS
    assert conv.on_words_ahead(start, "What time do you open") == [
        ReadAhead("What time do you open")]
    # once the turn has ended, late words are not read
    feed(conv, timeline((0.0, 800)), start=2670 * MS)
    assert conv.state is State.THINKING
    assert conv.on_words_ahead(start, "What time do you open") == []


def test_nothing_is_listened_to_ahead_over_the_bot_or_when_off():
    conv, _ = answered_conversation()
    conv.s = settings(listen_ahead=600 * MS)
    acts = feed(conv, timeline((0.9, 512), (0.0, 700)))
    tr = [a for a in acts if isinstance(a, Transcribe)][-1]
    (resp,) = [a for a in conv.on_transcript(tr.turn_id, "When do you open?")
               if isinstance(a, Respond)]
    conv.on_playout_started(resp.utterance_id)
    # a barge-in: the model is busy with the reply being cut
    acts = feed(conv, timeline((0.9, 1500), (0.0, 700)), start=3000 * MS)
    assert conv.barge_ins == 1 and not [a for a in acts if isinstance(a, ListenAhead)]
    off, _ = answered_conversation()
    assert not [a for a in feed(off, timeline((0.9, 2000), (0.0, 700)))
                if isinstance(a, ListenAhead)]


def test_empty_transcript_goes_back_to_listening():
    conv, _ = answered_conversation()
    acts = feed(conv, timeline((0.9, 512), (0.0, 700)))
    (tr,) = [a for a in acts if isinstance(a, Transcribe)]
    assert conv.on_transcript(tr.turn_id, "  ") == [Unanswered(tr.turn_id)]
    assert conv.state is State.LISTENING


def test_a_keypad_turn_is_typed_then_answered():
    conv, _ = answered_conversation()
    typed, resp = conv.on_text_turn(" 1234 ")
    assert typed == Typed(resp.turn_id, "1234")
    assert isinstance(resp, Respond) and resp.text == "1234"


def test_what_the_bot_says_on_its_own_carries_what_comes_after_it():
    conv, _ = answered_conversation()
    then = lambda: None  # noqa: E731
    (say,) = conv.say("Transferring you now.", then)
    assert say.after_played is then


def test_barge_in_holds_audio_at_onset_then_interrupts():
    conv, _ = answered_conversation()
    acts = feed(conv, timeline((0.9, 512), (0.0, 700)))
    (tr,) = [a for a in acts if isinstance(a, Transcribe)]
    (resp,) = conv.on_transcript(tr.turn_id, "Tell me everything")
    conv.on_playout_started(resp.utterance_id)
    t0 = 1600 * MS  # the reply could be heard by then
    acts = feed(conv, timeline((0.9, 96)), start=t0)
    assert [type(a) for a in acts] == [PausePlayout]  # held within one VAD window
    acts = feed(conv, timeline((0.9, 256)), start=t0 + 96 * MS)
    (intr,) = [a for a in acts if isinstance(a, Interrupt)]
    assert intr.utterance_id == resp.utterance_id
    assert conv.state is State.CALLER_SPEAKING and conv.barge_ins == 1
    # the interrupting speech becomes the next turn, starting at its onset
    acts = feed(conv, timeline((0.0, 700)), start=t0 + 352 * MS)
    (tr2,) = [a for a in acts if isinstance(a, Transcribe)]
    assert tr2.start == t0  # the onset: the first speech window's start


def test_cough_during_bot_speech_resumes_playout():
    conv, _ = answered_conversation()
    acts = feed(conv, timeline((0.9, 512), (0.0, 700)))
    (tr,) = [a for a in acts if isinstance(a, Transcribe)]
    (resp,) = conv.on_transcript(tr.turn_id, "Hi")
    conv.on_playout_started(resp.utterance_id)
    acts = feed(conv, timeline((0.9, 64), (0.0, 200)), start=2000 * MS)
    assert [type(a) for a in acts] == [PausePlayout, ResumePlayout]
    assert conv.state is State.BOT_SPEAKING and conv.barge_ins == 0


def test_no_barge_in_when_disabled():
    conv = Conversation(settings(barge_in=False))
    (say,) = conv.start("Hello")
    conv.on_playout_started(say.utterance_id)
    acts = feed(conv, timeline((0.9, 1000)))
    assert acts == [] and conv.state is State.BOT_SPEAKING


def test_caller_continuing_before_the_answer_merges_the_turn():
    conv, _ = answered_conversation()
    acts = feed(conv, timeline((0.0, 320), (0.9, 512), (0.0, 600)))
    (tr1,) = [a for a in acts if isinstance(a, Transcribe)]
    # the caller goes on while we transcribe: the reply to the first half must not play
    acts = feed(conv, timeline((0.9, 512), (0.0, 600)), start=1440 * MS)
    (tr2,) = [a for a in acts if isinstance(a, Transcribe)]
    assert tr2.start == tr1.start  # one turn: from the first word to the last
    # its words are in the merged turn: the first half is over, unanswered
    assert conv.on_transcript(tr1.turn_id, "first half") == [Unanswered(tr1.turn_id)]
    (resp,) = conv.on_transcript(tr2.turn_id, "first half and second half")
    assert isinstance(resp, Respond)


def test_caller_going_on_as_the_reply_starts_is_heard_as_one_turn():
    conv, _ = answered_conversation()
    acts = feed(conv, timeline((0.0, 320), (0.9, 512), (0.0, 600)))
    (tr1,) = [a for a in acts if isinstance(a, Transcribe)]
    (resp,) = conv.on_transcript(tr1.turn_id, "Are you open on")
    # the caller's next word begins, then the reply's audio starts before it counts as speech
    acts = feed(conv, timeline((0.9, 64)), start=1440 * MS)
    conv.on_playout_started(resp.utterance_id)
    assert conv.state is State.BOT_SPEAKING
    acts += feed(conv, timeline((0.9, 448), (0.0, 600)), start=1504 * MS)
    # the reply stops, and not as a barge-in: the caller had not heard it
    (intr,) = [a for a in acts if isinstance(a, Interrupt)]
    assert intr.utterance_id == resp.utterance_id and not intr.barge_in
    (tr2,) = [a for a in acts if isinstance(a, Transcribe)]
    assert tr2.start == tr1.start  # one turn, not a one-word interruption of the reply
    assert conv.barge_ins == 0
    # speech that begins once the reply could have been heard interrupts it
    for gap_ms, merged in ((96, True), (320, False)):
        conv2, _ = answered_conversation()
        acts = feed(conv2, timeline((0.0, 320), (0.9, 512), (0.0, 600)))
        (tr1,) = [a for a in acts if isinstance(a, Transcribe)]
        (resp,) = conv2.on_transcript(tr1.turn_id, "Are you open on")
        conv2.on_playout_started(resp.utterance_id, at=1440 * MS)
        acts = feed(conv2, timeline((0.0, gap_ms), (0.9, 448), (0.0, 600)), start=1440 * MS)
        (tr2,) = [a for a in acts if isinstance(a, Transcribe)]
        assert (tr2.start == tr1.start) is merged and conv2.barge_ins == (not merged), gap_ms


def test_going_on_after_a_held_barge_in_stops_the_reply_as_a_barge_in():
    conv, _ = answered_conversation()
    conv.s = settings(resume_false_interruptions=True)  # held until its words are known
    acts = feed(conv, timeline((0.0, 320), (0.9, 512), (0.0, 600)))
    (tr1,) = [a for a in acts if isinstance(a, Transcribe)]
    (resp,) = conv.on_transcript(tr1.turn_id, "How do I book?")
    conv.on_playout_started(resp.utterance_id, at=1440 * MS)
    # "Wait." over the bot (its audio held), a pause that ends that turn, then more words
    acts = feed(conv, timeline((0.0, 1000), (0.9, 320), (0.0, 600), (0.9, 320)),
                start=1440 * MS)
    intr = next(a for a in acts if isinstance(a, Interrupt))
    assert intr.utterance_id == resp.utterance_id and intr.barge_in  # the caller heard it


def test_speech_while_reply_is_generating_interrupts_the_silent_reply():
    conv, _ = answered_conversation()
    acts = feed(conv, timeline((0.9, 512), (0.0, 600)))
    (tr,) = [a for a in acts if isinstance(a, Transcribe)]
    (resp,) = conv.on_transcript(tr.turn_id, "question")
    acts = feed(conv, timeline((0.9, 512)), start=1200 * MS)  # before any audio played
    (intr,) = [a for a in acts if isinstance(a, Interrupt)]
    assert intr.utterance_id == resp.utterance_id
    # a late "done" from the interrupted utterance changes nothing
    conv.on_utterance_done(resp.utterance_id)
    assert conv.state is State.CALLER_SPEAKING


# --- speculation -----------------------------------------------------------------------------

def test_pause_speculates_and_the_commit_releases_the_held_reply():
    conv, _ = answered_conversation()
    acts = feed(conv, timeline((0.0, 320), (0.9, 1024), (0.0, 256)))
    (spec,) = [a for a in acts if isinstance(a, Transcribe)]
    assert spec.speculative and conv.state is State.CALLER_SPEAKING
    (draft,) = conv.on_transcript(spec.turn_id, "When do you open?")
    assert isinstance(draft, Respond) and draft.speculative
    acts = feed(conv, timeline((0.0, 512)), start=1600 * MS)
    assert not [a for a in acts if isinstance(a, Transcribe)]  # no second decode
    (commit,) = [a for a in acts if isinstance(a, Commit)]
    assert commit.turn_id == spec.turn_id and commit.utterance_id == draft.utterance_id
    assert conv.state is State.THINKING
    conv.on_playout_started(draft.utterance_id)
    assert conv.state is State.BOT_SPEAKING


def test_resumed_pause_discards_the_speculation():
    conv, _ = answered_conversation()
    acts = feed(conv, timeline((0.0, 320), (0.9, 1024), (0.0, 256)))
    (spec,) = [a for a in acts if isinstance(a, Transcribe)]
    (draft,) = conv.on_transcript(spec.turn_id, "When do you")
    acts = feed(conv, timeline((0.9, 512)), start=1600 * MS)  # the caller goes on
    (discard,) = [a for a in acts if isinstance(a, Discard)]
    assert discard.turn_id == spec.turn_id and discard.utterance_id == draft.utterance_id
    acts = feed(conv, timeline((0.0, 800)), start=2112 * MS)
    trs = [a for a in acts if isinstance(a, Transcribe)]
    # a new speculation at the next pause, then the commit takes it: the whole turn
    assert trs and trs[-1].start == 320 * MS and trs[-1].end == 2112 * MS
    assert [a for a in acts if isinstance(a, Commit)][0].turn_id == trs[-1].turn_id
    # the stale transcript of the discarded speculation changes nothing
    assert conv.on_transcript(spec.turn_id, "When do you") == []


def test_speculative_transcript_arriving_after_the_commit_is_answered():
    conv, _ = answered_conversation()
    acts = feed(conv, timeline((0.0, 320), (0.9, 1024), (0.0, 800)))
    (spec,) = [a for a in acts if isinstance(a, Transcribe)]
    (commit,) = [a for a in acts if isinstance(a, Commit)]
    assert commit.utterance_id is None and conv.state is State.THINKING
    (resp,) = conv.on_transcript(spec.turn_id, "When do you open?")
    assert isinstance(resp, Respond) and not resp.speculative


def test_without_speculation_one_transcription_at_the_end():
    conv = Conversation(settings(speculate=False))
    acts = feed(conv, timeline((0.0, 320), (0.9, 1024), (0.0, 800)))
    (tr,) = [a for a in acts if isinstance(a, Transcribe)]
    assert not tr.speculative and not [a for a in acts if isinstance(a, Commit)]
