"""End to end: a real SIP client (baresip) calls the real gateway on loopback and talks to it.

The caller's question is spoken by espeak-ng (not the bot's Piper voice); what the caller
hears is transcribed with the same Whisper model and must answer the question.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from testbed.harness import (
    DEFAULT_LLM,
    GatewayProcess,
    active_spans,
    baresip_call,
    espeak,
    need,
)
from testbed.heard import answer_after, transcribe


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    need("baresip", "espeak-ng", "sox")
    gw = GatewayProcess(tmp_path_factory.mktemp("gw"), llm=DEFAULT_LLM).start()
    yield gw
    code = gw.stop()
    assert code == 0, gw.log()[-3000:]


@pytest.fixture(scope="module")
def whisper():
    from pipeline import models
    from pipeline.stt.whisper import WhisperStt

    return WhisperStt(models.resolve().whisper_dir)


def question_audio(tmp_path, text: str, rate: int, lead_s: float, tail_s: float) -> np.ndarray:
    q = espeak(text, tmp_path / "q.wav", rate=rate)
    return np.concatenate([np.zeros(int(lead_s * rate), np.int16), q,
                           np.zeros(int(tail_s * rate), np.int16)]).astype(np.int16)


@pytest.mark.parametrize(("codec", "rate"), [("g722", 16000), ("g711", 8000)])
def test_caller_asks_and_hears_the_answer(gateway, whisper, tmp_path, codec, rate):
    lead, tail = 6.0, 9.0  # the greeting plays first; then the question; then the answer
    source = question_audio(tmp_path, "What time do you open in the morning?", rate, lead, tail)
    result = baresip_call(tmp_path / "caller", gateway.uri, source, rate, codecs=(codec,))

    # the greeting arrives before the caller speaks
    greeting = transcribe(whisper, result.heard[: int(lead * result.rate)], result.rate)
    assert "riverside" in greeting.lower() or "help" in greeting.lower(), greeting

    spans = active_spans(result.sent, result.rate)
    question_end = spans[-1][1]
    ttfa, answer = answer_after(result, question_end)
    text = transcribe(whisper, answer, result.rate)
    print(f"{codec}: TTFA on the caller's recording {ttfa * 1000:.0f} ms; heard {text!r}")
    assert re.search(r"\b(nine|9)(?![0-9])", text.lower()), text  # "9 am", "9am", "nine"
    # a stall, not a figure: the first answer of a call on 2 shared cores took 2.6-4.2 s in
    # CI (latency is measured by bench.turns, p50/p95 over many turns)
    assert ttfa < 5.0
    assert f"codec': '{'G722/16000' if codec == 'g722' else 'PCMU/8000'}" in gateway.log()


def test_two_turns_keep_context(gateway, whisper, tmp_path):
    """A follow-up question relies on the first turn's answer being in the history."""
    rate = 16000
    q1 = espeak("How much is a check-up?", tmp_path / "q1.wav", rate=rate)
    q2 = espeak("And where are you?", tmp_path / "q2.wav", rate=rate)
    gap = np.zeros(int(7.0 * rate), np.int16)
    source = np.concatenate([np.zeros(6 * rate, np.int16), q1, gap, q2, gap]).astype(np.int16)
    result = baresip_call(tmp_path / "caller", gateway.uri, source, rate)
    spans = active_spans(result.sent, result.rate)
    assert len(spans) == 2
    _, a1 = answer_after(result, spans[0][1])
    a1 = a1[: int((spans[1][0] - spans[0][1]) * rate)]
    _, a2 = answer_after(result, spans[1][1])
    t1, t2 = transcribe(whisper, a1, rate).lower(), transcribe(whisper, a2, rate).lower()
    print(f"answers: {t1!r} / {t2!r}")
    assert re.search(r"\b(60|sixty)\b", t1), t1
    assert "river" in t2, t2
