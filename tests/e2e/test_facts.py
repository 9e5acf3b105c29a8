"""End to end: the business's facts as data reach the caller. A real SIP client (baresip)
asks "Is the shop open today?" of a gateway whose hours say open around the clock every day
but whose closed dates hold today (a one-off closure): only the computed note can tell the
model that."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from testbed.harness import (
    DEFAULT_LLM,
    GatewayProcess,
    active_spans,
    baresip_call,
    espeak,
    need,
    wait_closed,
)
from testbed.heard import answer_after, transcribe


@pytest.fixture(scope="module")
def whisper():
    from pipeline import models
    from pipeline.stt.whisper import WhisperStt

    return WhisperStt(models.resolve().whisper_dir)


def ask(gw: GatewayProcess, question: str, tmp_path, whisper, listen_s: int,
        ) -> tuple[str, dict]:
    """One real call: a caller (espeak through baresip) asks ``question`` and listens
    ``listen_s`` seconds; what it heard (transcribed) and the call's record."""
    rate = 16000
    q = espeak(question, tmp_path / "q.wav", rate=rate)
    source = np.concatenate([np.zeros(5 * rate, np.int16), q,
                             np.zeros(listen_s * rate, np.int16)]).astype(np.int16)
    result = baresip_call(tmp_path / "caller", gw.uri, source, rate)
    spans = active_spans(result.sent, result.rate)
    _, answer = answer_after(result, spans[-1][1])
    text = transcribe(whisper, answer, result.rate).lower()
    [rec] = wait_closed(gw.workdir / "calls.jsonl")
    turns = [(t["caller_text"], t["bot_text"], t["facts_note"]) for t in rec["turns"]]
    print(f"heard {text!r}; turns {turns}")
    return text, rec


def persona(name: str, business: str) -> str:
    """A gateway's config for the business ``name``: its other ``[business]`` lines, and a
    system prompt and greeting of its own."""
    return (f'[business]\nname = "{name}"\n{business}'
            f'[llm]\nsystem_prompt = "You are the receptionist of {name}. Answer in one short '
            f'spoken sentence."\ngreeting = "Hello, {name}, how can I help?"\n')


@contextmanager
def gateway(tmp_path, toml: str) -> Iterator[GatewayProcess]:
    gw = GatewayProcess(tmp_path / "gw", extra_toml=toml, llm=DEFAULT_LLM).start()
    try:
        yield gw
    finally:
        assert gw.stop() == 0, gw.log()[-3000:]


def test_a_closure_today_is_told_from_the_computed_note(tmp_path, whisper):
    need("baresip", "espeak-ng", "sox")
    today = datetime.now(ZoneInfo("Europe/Paris")).date()
    toml = persona("Harbour Books", (
        'timezone = "Europe/Paris"\nhours = ["mon-sun 00:00-24:00"]\n'
        f'closed_dates = ["{today.isoformat()} staff training day"]\n'
        'address = "3 Quay Street"\nprices = []\n'))
    with gateway(tmp_path, toml) as gw:
        text, rec = ask(gw, "Is the shop open today?", tmp_path, whisper, 8)
    assert re.search(r"\b(closed?|not open|aren't open)\b", text), text
    notes = [t["facts_note"] for t in rec["turns"] if t["caller_text"]]
    # open around the clock by its hours: only today's closure can make it closed (the note
    # is about today, or about now if the transcript lost "today")
    assert notes and ("closed all day (staff training day)" in notes[-1]
                      or "is closed now" in notes[-1]), notes


def test_a_two_part_question_gets_its_answered_part_then_the_fallback(tmp_path, whisper):
    """A caller asks the way people do, with a service in their own words and a second
    question the facts do not answer: the price is said, then the business's fallback (both
    computed, said by the gateway)."""
    need("baresip", "espeak-ng", "sox")
    toml = persona("Harbor Street Vets", (
        'timezone = "America/New_York"\nhours = ["mon-fri 08:00-18:00", "sat 09:00-13:00"]\n'
        'address = "48 Harbor Street"\nprices = ["vaccination: 35", "nail trim: 15"]\n'
        'fallback = "I\'m sorry, I don\'t know that, but I can take a message."\n'))
    with gateway(tmp_path, toml) as gw:
        text, rec = ask(gw, "Hi, what do you charge to trim my dog's nails, and do you take "
                        "pet insurance?", tmp_path, whisper, 20)
        assert re.search(r"facts: \d+ embedded", gw.log())
    assert re.search(r"\b(15|fifteen)\b", text), text
    # the fallback, said by the gateway after the price
    assert re.search(r"\b(don't know|take a message)\b", text), text
    bot = " ".join(t["bot_text"] for t in rec["turns"])
    assert "I'm sorry, I don't know that, but I can take a message." in bot, bot


def test_a_name_the_facts_do_not_hold_is_never_said(tmp_path, whisper):
    """Asked for the dentist's name, which the facts do not hold, the 1.5B named one ("Dr.
    John Doe") in 3 of 3 tries despite the note: the gateway says the fallback instead."""
    need("baresip", "espeak-ng", "sox")
    toml = persona("Bright Smile Dental", (
        'timezone = "Europe/London"\nhours = ["mon-fri 08:30-17:30"]\n'
        'address = "22 King Street"\ncurrency = "pounds"\n'
        'prices = ["check-up: 55", "teeth whitening: 299"]\n'
        'fallback = "I\'m not sure about that, but I can take a message for the practice."\n'))
    with gateway(tmp_path, toml) as gw:
        text, rec = ask(gw, "What is the name of your dentist?", tmp_path, whisper, 10)
    assert re.search(r"\b(not sure|take a message)\b", text), text
    bot = " ".join(t["bot_text"] for t in rec["turns"])
    assert "take a message for the practice" in bot and not re.search(
        r"\b(?:Dr|Doctor|Mr|Mrs|Ms)\b", bot), bot
