"""A remote speech server failing inside a call (scripted timeline, like
test_session_timeline): the turn is unheard and the bot apologises (STT), or the clause is
skipped (TTS); the record says what failed, and the call goes on."""

from __future__ import annotations

import numpy as np

from pipeline.core.conversation import TurnSettings
from pipeline.engines import Engines
from pipeline.options import SessionOptions
from pipeline.session import CallSession
from pipeline.stt.base import SttUnavailable
from pipeline.tts.base import Speech, TtsUnavailable
from tests.unit.scripted_session import (
    Clock,
    ScriptedLlm,
    ScriptedVad,
    caller_asks,
    greet,
)

APOLOGY = "Sorry, the line is bad. Again please?"


class FailingStt:
    """Fails the turns whose index is in ``fail`` (as a dead server would)."""

    def __init__(self, texts, fail):
        self.texts, self.fail, self.calls = list(texts), set(fail), 0

    def transcribe(self, audio):
        self.calls += 1
        if self.calls - 1 in self.fail:
            raise SttUnavailable("refused", "refused: tcp://127.0.0.1:1 refused the connection")
        return self.texts.pop(0)


class FailingTts:
    """Speaks 4 words/s, except texts containing ``fail_on``."""

    def __init__(self, fail_on):
        self.fail_on, self.asked = fail_on, []

    def synthesize(self, text):
        self.asked.append(text)
        if self.fail_on in text:
            raise TtsUnavailable("timeout", "timeout: no complete answer within 5.0 s")
        yield Speech(np.full(len(text.split()) * 4000, 3000, "<i2").tobytes())


def session_with(stt, tts, reply):
    ts = TurnSettings(threshold=0.5, end_silence=8000, min_speech=2400, min_barge_in=3200,
                      pause=3200, max_turn=480000, barge_in=True, barge_in_threshold=0.5)
    engines = Engines(vad=ScriptedVad(), stt=stt, llm=ScriptedLlm(reply), tts=tts)
    options = SessionOptions(settings=ts, greeting="Hi there.", system_prompt="Be brief.",
                             echo_tail_ms=0, stt_apology=APOLOGY)
    records, failures = [], []
    s = CallSession("t1", engines, options, on_turn_done=records.append,
                    on_failure=lambda stage, e: failures.append((stage, e)))
    return s, engines.llm, records, failures


def bot_lines(session):
    return [t["content"] for t in session.history.turns if t["role"] == "assistant"]


def test_stt_failure_is_an_unheard_turn_with_an_apology_and_the_next_turn_works():
    session, llm, records, failures = session_with(
        FailingStt(["When are you open?"], fail={0}), FailingTts("never"), "At nine.")
    clock = Clock(session)
    session.start()
    try:
        greet(clock, session)
        caller_asks(clock)  # the server is down for this turn
        clock.until(lambda: APOLOGY in bot_lines(session))
        assert llm.requests == []  # nothing was made up from an unheard turn
        assert len(records) == 1 and records[0].caller_text == ""
        assert records[0].stt_error.startswith("refused")
        caller_asks(clock)  # back up: the next turn is heard and answered
        clock.until(lambda: "At nine." in bot_lines(session))
        assert records[-1].caller_text == "When are you open?" and not records[-1].stt_error
        assert failures == []
    finally:
        session.stop()


def test_tts_failure_skips_the_reply_records_it_and_the_call_goes_on():
    reply = "We open at nine, SECRET-BROKEN clause here, and we close at five."
    session, llm, records, failures = session_with(
        FailingStt(["When are you open?", "Thanks"], fail=set()), FailingTts("BROKEN"), reply)
    tts = session.engines.tts
    clock = Clock(session)
    session.start()
    try:
        greet(clock, session)
        caller_asks(clock)
        clock.until(lambda: len(records) == 1)
        rec = records[0]
        assert rec.tts_error.startswith("timeout")
        # the clause before the failure was spoken; the failing one and the rest were not
        # even tried (each would wait for the same dead server)
        assert tts.asked[-1].startswith("SECRET-BROKEN") and "close at five" not in " ".join(
            tts.asked)
        assert rec.first_audio is not None and "nine" in rec.heard_text
        caller_asks(clock)  # the call goes on
        clock.until(lambda: len(records) == 2)
        assert failures == []
    finally:
        session.stop()
