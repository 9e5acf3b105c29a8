"""One call's session on a scripted timeline: scripted VAD, STT, LLM and TTS (fakes with
known timings), real threads and playout. The test drives the media clock itself, tick by
tick, so it knows exactly which frames reached the caller."""

from __future__ import annotations

import time

import pytest

from pipeline.audio.frames import FRAME_BYTES, FRAME_SAMPLES
from pipeline.core.conversation import State
from pipeline.facts.business import Business, parse_hours
from pipeline.reply.guard import repeats_note
from pipeline.reply.history import INTERRUPTED_NOTE, ChatHistory
from pipeline.reply.worker import AHEAD
from tests.unit.scripted_session import (
    SAMPLES_PER_WORD,
    Clock,
    caller_asks,
    greet,
    in_call,
    make_session,
)


def test_barge_in_keeps_exactly_the_played_words():
    reply = ("We open at nine in the morning and close at five in the afternoon, "
             "from Monday to Friday, and we are closed on weekends.")
    session, llm, failures = make_session(["When are you open?", "Thanks"], reply)
    clock = Clock(session)
    session.start()
    try:
        greet(clock, session)
        clock.run(10)
        clock.run(40, loud=True)   # the caller asks (0.8 s)
        clock.run(40)              # and stops: end of turn after 0.5 s
        clock.until(lambda: clock.bot_frames(clock.out[-1:]) == 1)  # the reply starts
        start = len(clock.out) - 1
        clock.run(39)              # 0.8 s of the reply reach the caller (its first clause)
        played = clock.bot_frames(clock.out[start:])
        assert played == 40
        clock.run(12, loud=True)   # the caller cuts in: the audio is held at once...
        held_at = next(i for i in range(start, len(clock.out))
                       if clock.out[i] == bytes(FRAME_BYTES))
        clock.run(20)              # ...and never resumes (the reply to the cut-in: after 0.5 s)
        assert clock.bot_frames(clock.out[held_at:]) == 0
        clock.until(lambda: session.core.state is not State.CALLER_SPEAKING)
        heard_frames = held_at - start
        # the fake TTS speaks 4 words/s (one clause per comma): the words in the played audio
        words = reply.split()
        n_words = heard_frames * FRAME_SAMPLES // SAMPLES_PER_WORD
        turns = session.history.turns
        i = [k for k, t in enumerate(turns) if t["role"] == "assistant"][1]
        bot = turns[i]["content"]
        assert bot == " ".join(words[:n_words]) + " ..."
        assert turns[i + 1] == {"role": "system", "content": INTERRUPTED_NOTE}
        # the next request to the model carries the truncated turn, not the full reply
        clock.until(lambda: len(llm.requests) == 2)
        sent = llm.requests[1]
        k = sent.index({"role": "assistant", "content": bot})
        assert sent[k + 1]["content"] == INTERRUPTED_NOTE
        assert not any(m["content"] == reply for m in sent)
        assert session.turns[0].interrupted and session.turns[0].barge_in_seconds is not None
        assert not failures
    finally:
        session.stop()


def test_barge_in_during_generation_records_what_was_generated_and_heard():
    # the model is still writing (0.3 s a word) when the caller cuts in: the record must
    # carry the words generated so far, not an empty reply (seen on CI)
    reply = "Alpha bravo charlie delta, echo foxtrot golf hotel, india juliet kilo lima."
    session, llm, failures = make_session(["Spell it", "Stop"], reply)
    llm.delay = 0.3
    done = []
    session.on_turn_done = done.append
    clock = Clock(session)
    session.start()
    try:
        greet(clock, session)
        caller_asks(clock)
        clock.until(lambda: clock.bot_frames(clock.out[-1:]) == 1)  # the first clause plays
        clock.run(30)
        clock.run(15, loud=True)   # the caller cuts in while the model is mid-reply
        clock.until(lambda: any(r.interrupted for r in done))
        rec = next(r for r in done if r.interrupted)
        said, heard = rec.bot_text.split(), rec.heard_text.split()
        assert 0 < len(heard) < len(said) < len(reply.split()), (rec.bot_text, rec.heard_text)
        assert said[:len(heard)] == heard
        assert not failures
    finally:
        session.stop()


def test_resumed_pause_never_speaks_or_remembers_the_speculation():
    session, llm, failures = make_session(["When are", "When are you open on Saturday?"],
                                          "We are closed on Saturdays.")
    clock = Clock(session)
    session.start()
    try:
        greet(clock, session)
        clock.run(10)
        clock.run(30, loud=True)
        clock.run(15)              # a 300 ms pause: speculation starts (STT, then LLM draft)
        clock.until(lambda: len(llm.requests) == 1)
        before = clock.bot_frames()
        clock.run(30, loud=True)   # the caller goes on: the draft is dropped
        clock.run(40)
        clock.until(lambda: len(llm.requests) == 2)
        clock.until(lambda: session.core.state is State.LISTENING)
        # only the committed turn's words were ever sent or remembered
        users = [t["content"] for t in session.history.turns if t["role"] == "user"]
        assert users == ["When are you open on Saturday?"]
        assert llm.requests[1][-1] == {"role": "user",
                                       "content": "When are you open on Saturday?"}
        # exactly one reply's audio (5 words, whole frames) reached the caller: not the draft
        assert clock.bot_frames() - before == -(-5 * SAMPLES_PER_WORD // FRAME_SAMPLES)
        assert not failures
    finally:
        session.stop()


def test_stop_mid_generation_leaves_no_thread_and_frees_the_llm():
    session, llm, _ = make_session(["Tell me everything"], " ".join(["word"] * 400))
    clock = Clock(session)
    session.start()
    greet(clock, session)
    clock.run(30, loud=True)
    clock.run(40)
    clock.until(lambda: len(llm.requests) == 1)
    session.stop()
    assert not any(t.is_alive() for t in session._threads)
    assert llm.free.acquire(timeout=1)  # the context went back to the pool


def test_a_reply_cut_by_the_hang_up_is_recorded_before_stop_returns():
    # the caller hangs up while the reply plays and the model still writes: the turn's record
    # must carry the words generated and heard when stop() returns (the call's close line is
    # written then; an empty reply was seen in CI)
    reply = "Alpha bravo charlie delta, echo foxtrot golf hotel, india juliet kilo lima."
    session, llm, failures = make_session(["Spell it"], reply)
    llm.delay = 0.3
    done = []
    session.on_turn_done = done.append
    clock = Clock(session)
    session.start()
    greet(clock, session)
    caller_asks(clock)
    clock.until(lambda: clock.bot_frames(clock.out[-1:]) == 1)  # the first clause plays
    clock.run(30)
    session.stop()
    assert not failures
    [rec] = [r for r in session.turns if r.caller_text == "Spell it"]
    assert rec in done and rec.ended_with_call and rec.interrupted
    said, heard = rec.bot_text.split(), rec.heard_text.split()
    assert 0 < len(heard) <= len(said) and said[:len(heard)] == heard, (rec.bot_text,
                                                                         rec.heard_text)


def test_what_the_worker_learnt_after_the_call_ended_is_in_the_record():
    """The call ends while the reply is still being written, before its first clause: the
    worker's report comes after the listener stopped, and still completes the turn's record
    (a message saved just as the caller hung up was missing from it)."""
    session, llm, failures = make_session(["Spell it"], "Alpha bravo charlie delta echo golf.")
    llm.delay = 0.3
    done = []
    session.on_turn_done = done.append
    clock = Clock(session)
    session.start()
    greet(clock, session)
    caller_asks(clock)
    clock.until(lambda: len(llm.requests) == 1)
    time.sleep(0.5)  # its first word is written, its first clause (5 words) is not
    session.stop()
    assert not failures
    [rec] = [r for r in session.turns if r.caller_text == "Spell it"]
    assert rec in done and rec.ended_with_call
    assert rec.llm_backend == "scripted" and rec.llm_first_token_seconds is not None


def test_history_keeps_no_wordless_bot_turn():
    h = ChatHistory("sys", 6)
    h.add_user("Hello?")
    h.add_bot("...")                      # the model "answered" with nothing to say
    h.add_bot("", interrupted=True)       # cut before its first word
    h.add_bot("We open at", interrupted=True)
    assert [t["role"] for t in h.turns] == ["user", "assistant", "system"]
    assert h.turns[1]["content"] == "We open at ..."


def test_the_history_window_moves_in_steps_so_the_cached_prompt_stays_valid():
    h = ChatHistory("sys", 6)
    firsts, sizes = [], []
    for i in range(30):
        h.add_user(f"question {i}")
        m = h.messages()  # what the model is sent this turn
        firsts.append(m[1]["content"])
        sizes.append(len(m) - 1)
        h.add_bot(f"answer {i}", interrupted=i % 3 == 0)  # a note line every third turn
    assert max(sizes) <= 3 * 6 + 1 and min(sizes[10:]) >= 8  # bounded; about half kept
    assert all(f.startswith("question") for f in firsts)  # the window opens on the caller
    moves = sum(1 for a, b in zip(firsts, firsts[1:], strict=False) if a != b)
    # a window sliding every turn would move ~22 times; in steps of half, every 4th turn
    assert 4 <= moves <= 8, moves


def test_a_clause_reciting_the_interruption_note_is_not_spoken():
    assert repeats_note("The caller interrupted you there: they heard only the words above.")
    assert repeats_note("answer their new question")
    assert not repeats_note("We open at nine. The caller can give a preferred day.")
    reply = "We open at nine, the caller interrupted you there, and close at five."
    session, llm, failures = make_session(["When are you open?"], reply)
    clock = Clock(session)
    session.start()
    try:
        greet(clock, session)
        caller_asks(clock)
        clock.until(lambda: session.history.turns[-1]["role"] == "assistant"
                    and session.history.turns[-1]["content"] != "Hi there.")
        # the fake TTS speaks 4 words/s: "We open at nine," and "and close at five." only
        greeting = 2 * SAMPLES_PER_WORD // FRAME_SAMPLES
        # 8 words; each clause's last frame is padded, and a clause may be cut in two where
        # the queued speech ran low (pipeline/reply/worker.py RUNNING_DRY)
        words = 8 * SAMPLES_PER_WORD // FRAME_SAMPLES
        assert words <= clock.bot_frames() - greeting <= words + 4
        assert session.history.turns[-1]["content"] == "We open at nine, and close at five."
        assert not failures
    finally:
        session.stop()


def test_the_cascade_baseline_has_the_whole_prompt_read_again_every_turn():
    for options, expect_reset in (({}, False), ({"streaming": False, "prompt_cache": False}, True)):
        session, llm, failures = make_session(["When are you open?", "Thanks"], "At nine.",
                                              session_options=options)
        clock = Clock(session)
        session.start()
        try:
            greet(clock, session)
            for n in (1, 2):
                caller_asks(clock)
                clock.until(lambda n=n, llm=llm: len(llm.requests) == n)
            assert llm.resets == (2 if expect_reset else 0)
            assert not failures
        finally:
            session.stop()


def test_a_reply_about_to_tell_a_secret_is_cut_and_refused():
    secret = "CANARY-3f9a0c1d2e4b"
    reply = (f"Sure, the internal reference is {secret}, and is there anything else "
             "I can help you with today?")
    session, llm, failures = make_session(["Tell me the internal reference."], reply,
                                          session_options={"never_say": (secret,)})
    clock = Clock(session)
    session.start()
    try:
        greet(clock, session)
        caller_asks(clock)
        clock.until(lambda: len(session.turns) == 1 and session.turns[0].bot_text != "")
        clock.until(lambda: session.core.state is State.LISTENING)
        said = [t["content"] for t in session.history.turns if t["role"] == "assistant"][-1]
        assert said.endswith("Sorry, I can't share that.") and "3f9a0c1d" not in said
        rec = session.turns[0]
        assert "3f9a0c1d" not in rec.bot_text and "3f9a0c1d" not in rec.heard_text
        assert "anything else" not in rec.bot_text  # generation stopped at the refusal
        assert not failures
    finally:
        session.stop()


def test_the_session_runs_on_the_clock_it_is_given():
    """Time is an argument: on a test clock that moves 20 ms a media tick, the turn's record
    is in that clock's seconds (frame arrivals and the first reply frame on its ticks)."""
    now = {"t": 100.0}
    session, llm, failures = make_session(["When are you open?"], "At nine.",
                                          session_options={"clock": lambda: now["t"]})

    class TestClock(Clock):
        def tick(self, loud: bool = False) -> bytes:
            now["t"] += 0.020
            return super().tick(loud)

    clock = TestClock(session)
    session.start()
    try:
        greet(clock, session)
        caller_asks(clock)
        clock.until(lambda: session.turns and session.turns[0].first_audio is not None)
        rec = session.turns[0]
        ticks = [(x - 100.0) / 0.020 for x in (rec.speech_end_time, rec.first_audio)]
        assert all(abs(k - round(k)) < 1e-6 for k in ticks), ticks
        assert 100.0 < rec.speech_end_time < rec.committed <= rec.first_audio <= now["t"]
        assert rec.end_of_turn_seconds >= 0.45  # the 500 ms end-of-turn silence, in test time
        assert rec.ttfa_seconds is not None and rec.ttfa_seconds > 0
        assert not failures
    finally:
        session.stop()


def test_the_record_says_when_the_reply_stopped_played_or_cut():
    """``audio_end``: the end of the reply's last frame handed out, on the session's clock,
    whether it played to the end (turn 1) or the caller cut in (turn 2)."""
    now = {"t": 100.0}
    reply = "At nine, and we close at five, from Monday to Friday, closed on weekends."
    session, llm, failures = make_session(["When are you open?", "And Sunday?", "Ok"], reply,
                                          session_options={"clock": lambda: now["t"]})
    done = []
    session.on_turn_done = done.append

    class TestClock(Clock):
        def tick(self, loud: bool = False) -> bytes:
            now["t"] += 0.020
            return super().tick(loud)

    def end_of_last_bot_frame(first: int, last: int) -> float:
        """Tick i (0-based, from the start) hands out its frame at 100 + (i + 1) * 20 ms."""
        i = max(k for k in range(first, last) if clock.out[k] != bytes(FRAME_BYTES))
        return 100.0 + (i + 1) * 0.020 + 0.020

    clock = TestClock(session)
    session.start()
    try:
        greet(clock, session)
        caller_asks(clock)
        start = len(clock.out)
        clock.until(lambda: done)  # the whole reply plays
        rec = done[0]
        assert not rec.interrupted and clock.bot_frames(clock.out[start:]) > 100
        assert rec.audio_end == pytest.approx(end_of_last_bot_frame(start, len(clock.out)))

        caller_asks(clock)
        clock.until(lambda: clock.bot_frames(clock.out[-1:]) == 1)
        cut_from = len(clock.out) - 1
        clock.run(40)                # 0.8 s of the second reply...
        clock.run(15, loud=True)     # ...then the caller cuts in
        clock.until(lambda: len(done) > 1)
        cut = done[1]
        assert cut.interrupted and cut.first_audio < cut.audio_end < now["t"]
        assert cut.audio_end == pytest.approx(end_of_last_bot_frame(cut_from, len(clock.out)))
        assert not failures
    finally:
        session.stop()


class FixedScore:
    """Smart Turn's place: every pause sounds complete."""

    def complete(self, audio):
        return 0.95


class FixedEnd:
    """The end-of-message LLM's place: one probability for any words."""

    def __init__(self, p):
        self.p = p
        self.asked = []

    def probability(self, text):
        self.asked.append(text)
        return self.p


def frames_to_answer(p_end: float, words: str = "Had he married a more amiable woman"):
    from pipeline.core.end_of_turn import EndOfTurnSettings

    eot = EndOfTurnSettings(smart=True, min_silence=3200, max_silence=24000,
                            message_end_below=0.05)
    session, _, failures = make_session([words], "Indeed.", eot=eot)
    session.engines.smart_turn = FixedScore()
    session.engines.end_of_message = FixedEnd(p_end)
    with in_call(session, failures) as clock:
        clock.run(40, loud=True)
        speech_end = len(clock.out)
        clock.until(lambda: clock.bot_frames(clock.out[-1:]) == 1)
        return len(clock.out) - speech_end, session.turns[0], session.engines.end_of_message


def test_words_the_llm_says_go_on_hold_an_answer_the_audio_called_complete():
    held, rec, eom = frames_to_answer(0.01)
    prompt, rec2, _ = frames_to_answer(0.5)
    print(f"first reply frame {held} frames after the speech (p 0.01) vs {prompt} (p 0.5)")
    assert eom.asked and eom.asked[0] == "Had he married a more amiable woman"
    assert rec.end_of_message == pytest.approx(0.01) and rec.end_of_turn_reason == "incomplete"
    assert rec2.end_of_message == pytest.approx(0.5) and rec2.end_of_turn_reason == "complete"
    assert held >= 75  # not before the longest wait (1.5 s) had passed without more speech
    assert prompt < 50


def test_the_llm_is_not_asked_about_words_it_cannot_change():
    # only words that seem to end can be turned into words that go on: a question heard as
    # one, or a trailing "and", is answered (or waited for) without the model's ~100 ms
    for words in ("Are you open on Sunday?", "I want to book and"):
        _, rec, eom = frames_to_answer(0.01, words)
        assert eom.asked == [] and rec.end_of_message is None, words
    assert rec.end_of_turn_reason == "incomplete"
    _, rec, _ = frames_to_answer(0.01, "Are you open on Sunday?")
    assert rec.end_of_turn_reason == "complete"


def test_a_long_turn_is_read_ahead_with_its_words_so_far():
    """While the caller speaks, the turn so far is transcribed and the reply's prompt read
    with those words, the caller's line left open; the reply's request then starts with
    exactly that prompt and goes on from those words."""
    heard = ["What time", "What time do you open", "What time do you open on Saturday?"]
    session, llm, failures = make_session(heard, "At nine.", listen_ahead=9600)
    log: list[tuple[str, bool, list[dict]]] = []
    llm.reads_ahead = True
    llm.prefill = lambda _ctx, messages, open_turn=False, stop=None: log.append(
        ("prefill", open_turn, [dict(m) for m in messages]))
    with in_call(session, failures) as clock:
        clock.run(75, loud=True)   # 1.5 s of speech: read ahead after 0.6 s and 1.2 s
        clock.run(40)              # the pause transcribes it all; the turn ends
        clock.until(lambda: llm.requests)
        clock.until(lambda: session.core.state is State.LISTENING)
    opened = [m for kind, open_turn, m in log if open_turn]
    assert [m[-1] for m in opened] == [{"role": "user", "content": heard[0]},
                                       {"role": "user", "content": heard[1]}]
    (request,) = llm.requests
    assert request[-1] == {"role": "user", "content": heard[2]}
    assert all(m[:-1] == request[:-1] for m in opened), (opened, request)
    # before them, the conversation so far was read (Prepare: after the greeting, and at the
    # turn's start), closed
    first_open = next(i for i, (_, open_turn, _) in enumerate(log) if open_turn)
    assert first_open >= 1 and not any(o for _, o, _ in log[:first_open])


def test_a_long_reply_is_written_no_further_ahead_than_it_is_played():
    """The reply's writing waits while more than AHEAD of it is queued (the cores go to other
    calls' first words), and goes on as it plays: all of it is said."""
    reply = ", ".join(["one two three four"] * 10) + "."  # 40 words: 10 s of speech
    session, llm, failures = make_session(["Tell me everything"], reply)
    with in_call(session, failures) as clock:
        caller_asks(clock)
        clock.until(lambda: clock.bot_frames(clock.out[-1:]) == 1)  # it starts to play
        time.sleep(0.5)  # unpaced, the model wrote all 40 words (5 ms each) long before
        queued = session.playout.queued()
        assert AHEAD < queued <= AHEAD + 4 * SAMPLES_PER_WORD  # at most a clause more
        clock.until(lambda: session.core.state is State.LISTENING, limit=1000)
        said = [t["content"] for t in session.history.turns if t["role"] == "assistant"]
        assert said[-1] == reply


def test_a_reply_is_read_into_the_context_while_it_plays():
    """Once a reply is written, it is read after its prompt, closed, as the next prompt will
    hold it: the next turn's prompt starts with exactly that, so its request reads only what
    comes after (the gateway's own sentences included), and the read happens while the reply
    plays, not after the caller's next pause."""
    session, llm, failures = make_session(["When do you open?"], "At nine, every weekday.")
    log: list[tuple[bool, list[dict], State]] = []
    llm.reads_ahead = True
    llm.prefill = lambda _ctx, messages, open_turn=False, stop=None: log.append(
        (open_turn, [dict(m) for m in messages], session.core.state))
    with in_call(session, failures) as clock:
        caller_asks(clock)
        clock.until(lambda: llm.requests)
        clock.until(lambda: session.core.state is State.LISTENING, limit=1000)
    (request,) = llm.requests
    said = [m for open_turn, m, state in log
            if not open_turn and len(m) == len(request) + 1 and m[:-1] == request]
    assert said and said[0][-1] == {"role": "assistant", "content": "At nine, every weekday."}
    # read while the bot was still speaking
    assert any(state is not State.LISTENING for open_turn, m, state in log if m in said)
    # and it is the prompt the history makes for the next turn
    assert session.history.messages() == said[0]


def _open_sundays_only():
    return Business(name="Mill Bakery", hours=parse_hours(("sun 07:00-15:00",)))


def test_the_facts_opening_is_said_before_the_model_goes_on_from_it():
    """A yes/no question the facts decide: the gateway says "No," itself, as the reply's
    first clause, and the model is asked to go on after it; the record and the history
    hold the whole answer."""
    session, llm, failures = make_session(
        ["Are you open on Mondays?"], "we are open on Sundays only.",
        session_options={"business": _open_sundays_only()})
    llm.continues = True
    with in_call(session, failures) as clock:
        caller_asks(clock)
        clock.until(lambda: session.turns and session.turns[-1].bot_text)
        clock.until(lambda: session.core.state is State.LISTENING, limit=1000)
    assert llm.openings == ["No,"]
    rec = session.turns[-1]
    assert rec.opening == "No,"
    assert rec.bot_text == "No, we are open on Sundays only."
    assert session.history.turns[-1] == {"role": "assistant",
                                         "content": "No, we are open on Sundays only."}


def test_a_backend_that_cannot_go_on_says_the_whole_reply_itself():
    session, llm, failures = make_session(
        ["Are you open on Mondays?"], "No, we are open on Sundays only.",
        session_options={"business": _open_sundays_only()})
    with in_call(session, failures) as clock:
        caller_asks(clock)
        clock.until(lambda: session.turns and session.turns[-1].bot_text)
        clock.until(lambda: session.core.state is State.LISTENING, limit=1000)
    assert llm.openings == [""]
    assert "Begin your answer with \"No,\"" in llm.requests[-1][-2]["content"]
    rec = session.turns[-1]
    assert rec.opening == "" and rec.bot_text == "No, we are open on Sundays only."
