"""The Wyoming backends against the real servers on loopback: ``wyoming-faster-whisper`` and
``wyoming-piper`` serving the bundled Whisper tiny.en and Piper joe files (no downloads).

The clients alone (words and audio checked, latency printed next to the in-process engines),
then real SIP calls through a gateway using both servers, and the servers killed mid-call:
the call goes on, the bot apologises for an unheard turn, the record and the metrics say
what failed.
"""

from __future__ import annotations

import difflib
import re
import threading
import time

import numpy as np
import pytest

from testbed.harness import (
    GatewayProcess,
    active_spans,
    baresip_call,
    espeak,
    free_tcp_port,
    need,
    wait_closed,
)
from testbed.heard import answer_after, transcribe
from testbed.wyoming_server import WyomingServer


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    pytest.importorskip("wyoming_faster_whisper")
    pytest.importorskip("wyoming_piper")
    root = tmp_path_factory.mktemp("wyoming")
    stt, tts = WyomingServer("stt", root / "stt"), WyomingServer("tts", root / "tts")
    try:
        yield stt.start(), tts.start()
    finally:
        stt.kill()
        tts.kill()


@pytest.fixture(scope="module")
def whisper():
    from pipeline import models
    from pipeline.stt.whisper import WhisperStt

    return WhisperStt(models.resolve().whisper_dir)


def timed(fn, *a):
    t0 = time.monotonic()
    out = fn(*a)
    return out, time.monotonic() - t0


@pytest.fixture(scope="module")
def piper():
    from pipeline import models
    from pipeline.tts.piper import PiperTts

    return PiperTts(models.resolve().piper_voice)


def test_stt_client_transcribes_speech(servers, whisper, piper):
    from pipeline.stt.wyoming import WyomingStt

    # Piper's voice: tiny.en hears it word for word (espeak's, only partly)
    (speech,) = piper.synthesize("The dentist opens at nine on Monday morning.")
    audio = np.frombuffer(speech.pcm, "<i2").astype(np.float32) / 32768
    stt = WyomingStt(servers[0].uri)
    stt.transcribe(audio)  # the server's first decode warms it up
    remote, t_remote = timed(stt.transcribe, audio)
    local, t_local = timed(whisper.transcribe, audio)
    print(f"STT {len(audio) / 16000:.1f} s of speech: wyoming {t_remote * 1000:.0f} ms "
          f"{remote!r}; in process {t_local * 1000:.0f} ms {local!r}")
    words = set(re.findall(r"[a-z0-9]+", remote.lower()))
    assert {"dentist", "monday"} <= words and words & {"nine", "9"}, remote
    assert stt.transcribe(np.zeros(800, np.float32)) == ""  # too short to send at all


def test_tts_client_synthesizes_audio(servers, whisper, piper, tmp_path):
    from pipeline.tts.wyoming import WyomingTts

    text = "The clinic opens at nine in the morning."
    plain = WyomingServer("tts", tmp_path / "plain", "--no-streaming").start()
    try:
        found = {}
        for name, uri in (("streaming", servers[1].uri), ("whole-text", plain.uri)):
            tts = WyomingTts(uri)
            tts.warm_up()
            (speech,), secs = timed(list, tts.synthesize(text))
            found[name] = (tts.streaming, np.frombuffer(speech.pcm, "<i2"), secs)
    finally:
        plain.kill()
    piper.warm_up()
    (ref,), t_local = timed(list, piper.synthesize(text))
    ref_pcm = np.frombuffer(ref.pcm, "<i2")
    print("TTS " + "; ".join(f"wyoming {n} {s * 1000:.0f} ms" for n, (_, _, s) in found.items())
          + f"; in process {t_local * 1000:.0f} ms ({len(ref_pcm) / 16000:.2f} s of audio)")
    assert found["streaming"][0] is True and found["whole-text"][0] is False
    for _, pcm, _ in found.values():
        # the same voice: about the same length as in process (Piper's noise varies it a
        # little), at a level like the in-process volume, and the words come back
        assert abs(len(pcm) - len(ref_pcm)) < 0.25 * len(ref_pcm), (len(pcm), len(ref_pcm))
        assert 0.5 < np.abs(pcm).max() / np.abs(ref_pcm).max() < 1.5
        heard = whisper.transcribe(pcm.astype(np.float32) / 32768).lower()
        assert "clinic" in heard and re.search(r"\b(nine|9)\b", heard), heard


def test_servers_dying_mid_answer(piper, tmp_path):
    """Each real server killed while it works on a long request: the client raises at once
    with kind "closed" (not a hang until the timeout), and counts it."""
    from pipeline.stt.base import SttUnavailable
    from pipeline.stt.wyoming import WyomingStt
    from pipeline.tts.base import TtsUnavailable
    from pipeline.tts.wyoming import WyomingTts

    (speech,) = piper.synthesize("The clinic opens at nine in the morning. " * 8)
    audio = np.tile(np.frombuffer(speech.pcm, "<i2").astype(np.float32) / 32768, 2)
    text = "We open at nine and we close at five, from Monday to Friday. " * 12
    for kind, ask, failure in (
            ("stt", lambda uri, seen: WyomingStt(uri, timeout=30, on_error=seen.append)
             .transcribe(audio), SttUnavailable),
            ("tts", lambda uri, seen: list(WyomingTts(uri, timeout=30, on_error=seen.append)
                                           .synthesize(text)), TtsUnavailable)):
        server = WyomingServer(kind, tmp_path / kind).start()
        seen: list[str] = []
        killer = threading.Timer(0.4, server.kill)
        killer.start()
        t0 = time.monotonic()
        try:
            with pytest.raises(failure) as e:
                ask(server.uri, seen)
        finally:
            killer.cancel()
            server.kill()
        took = time.monotonic() - t0
        print(f"{kind}: {e.value} after {took:.2f} s")
        assert e.value.kind == "closed" and seen == ["closed"]
        assert took < 5.0  # the death is noticed, not waited out


# --- real calls through the gateway ---------------------------------------------------------

@pytest.fixture(scope="module")
def gateway(servers, tmp_path_factory):
    need("baresip", "espeak-ng", "sox")
    stt, tts = servers
    gw = GatewayProcess(tmp_path_factory.mktemp("gw"), metrics_port=free_tcp_port(),
                        extra_toml=(f'[stt]\nbackend = "wyoming"\nuri = "{stt.uri}"\n'
                                    f'timeout_ms = 10000\n'
                                    f'[tts]\nbackend = "wyoming"\nuri = "{tts.uri}"\n'))
    yield from gw.serve()


def call(gw, tmp_path, questions: list[str], at: list[float], seconds: float,
         events: list[tuple[float, object]] = ()):
    """A baresip call saying each question at its time; ``events`` run at their times (s
    after dialling) while the call goes on. Returns the call result and its closed record."""
    rate = 16000
    source = np.zeros(int(seconds * rate), np.int16)
    for q, t in zip(questions, at, strict=True):
        a = espeak(q, tmp_path / f"q{t}.wav", rate=rate)
        source[int(t * rate): int(t * rate) + len(a)] = a
    timers = [threading.Timer(t, fn) for t, fn in events]
    for t in timers:
        t.start()
    try:
        result = baresip_call(tmp_path / "caller", gw.uri, source, rate)
    finally:
        for t in timers:
            t.cancel()
    before = {r["id"] for r in getattr(gw, "seen", [])}
    recs = wait_closed(gw.workdir / "calls.jsonl")
    gw.seen = recs
    (rec,) = [r for r in recs if r["id"] not in before]
    return result, rec


def heard_after(whisper, result, spans, i: int) -> str:
    """What the caller heard between the end of question ``i`` and the next question."""
    _, answer = answer_after(result, spans[i][1])
    if i + 1 < len(spans):
        answer = answer[: int((spans[i + 1][0] - spans[i][1]) * result.rate)]
    return transcribe(whisper, answer, result.rate).lower()


def errors(gw, stage: str) -> float:
    return sum(v for (name, labels), v in gw.metrics().items()
               if name == "voicebot_speech_service_errors_total" and ("stage", stage) in labels)


def test_a_call_through_both_wyoming_servers(gateway, whisper, tmp_path):
    assert "speech-to-text: wyoming:tcp://127.0.0.1" in gateway.log()
    result, rec = call(gateway, tmp_path, ["What time do you open in the morning?"], [6.0], 24.0)
    spans = active_spans(result.sent, result.rate)
    greeting = transcribe(whisper, result.heard[: int(spans[0][0] * result.rate)], result.rate)
    answer = heard_after(whisper, result, spans, 0)
    turns = [(t["caller_text"], t["bot_text"], t["stt_error"], t["tts_error"])
             for t in rec["turns"]]
    print(f"greeting {greeting!r}; answer {answer!r}; turns {turns}")
    assert "help" in greeting.lower() or "riverside" in greeting.lower(), greeting
    asked = [t for t in rec["turns"] if "open" in t["caller_text"].lower()]
    assert asked and asked[0]["bot_text"] and not asked[0]["stt_error"]
    assert len(answer.split()) >= 3, answer  # a spoken answer came back over Wyoming TTS
    assert errors(gateway, "stt") == 0 and errors(gateway, "tts") == 0


def test_stt_server_killed_mid_call(gateway, servers, whisper, tmp_path):
    stt = servers[0]
    try:
        result, rec = call(
            gateway, tmp_path, ["What time do you open?", "Where is the clinic?"], [6.0, 20.0],
            30.0, events=[(5.0, stt.kill), (9.5, stt.start)])
    finally:
        if stt.proc is None or stt.proc.poll() is not None:
            stt.start()  # for the tests after this one
    spans = active_spans(result.sent, result.rate)
    assert len(spans) == 2
    apology, answer = heard_after(whisper, result, spans, 0), heard_after(whisper, result,
                                                                          spans, 1)
    failed = [t for t in rec["turns"] if t["stt_error"]]
    print(f"after Q1 {apology!r}; after Q2 {answer!r}; failed turns {failed}")
    assert rec["outcome"] == "ended_by_caller"
    assert failed and failed[0]["stt_error"].startswith("refused")
    assert "sorry" in apology or "catch" in apology, apology
    heard = [t for t in rec["turns"] if "clinic" in t["caller_text"].lower()]
    assert heard and heard[0]["bot_text"], rec["turns"]  # the server came back: answered
    assert len(answer.split()) >= 3, answer
    assert errors(gateway, "stt") >= 1


def test_tts_server_killed_mid_call(gateway, servers, whisper, tmp_path):
    tts = servers[1]
    try:
        result, rec = call(
            gateway, tmp_path, ["What time do you open?", "Where is the clinic?"], [6.0, 20.0],
            30.0, events=[(5.0, tts.kill), (14.0, tts.start)])
    finally:
        if tts.proc is None or tts.proc.poll() is not None:
            tts.start()
    spans = active_spans(result.sent, result.rate)
    assert len(spans) == 2
    silence_end = spans[1][0] * result.rate
    after_q1 = active_spans(result.heard[int(spans[0][1] * result.rate): int(silence_end)],
                            result.rate)
    answer = heard_after(whisper, result, spans, 1)
    turns = [(t["caller_text"], t["bot_text"], t["tts_error"]) for t in rec["turns"]]
    print(f"bot sound after Q1 {after_q1}; after Q2 {answer!r}; turns {turns}")
    assert rec["outcome"] == "ended_by_caller"
    failed = [t for t in rec["turns"] if t["tts_error"]]
    assert failed and failed[0]["tts_error"].startswith("refused")
    assert failed[0]["bot_text"]  # the words were generated (and logged), not spoken
    # of the failed reply, only speech cached while the server was up can sound (a reply
    # opening with the business's name); nothing synthesized after the kill
    cached = heard_after(whisper, result, spans, 0) if after_q1 else ""
    print(f"heard after Q1: {cached!r}")
    # letters, not words: Whisper splits the name differently from run to run
    # ("riverside den oclinic"); the rest of the reply would add ~3 s of other words
    letters = "".join(ch for ch in cached if ch.isalpha())
    similar = difflib.SequenceMatcher(None, letters, "riversidedentalclinic").ratio()
    assert not letters or similar >= 0.8, (after_q1, cached, similar)
    assert sum(end - start for start, end in after_q1) <= 2.0, after_q1
    answered = [t for t in rec["turns"] if "clinic" in t["caller_text"].lower()]
    assert answered and not answered[0]["tts_error"], rec["turns"]
    assert len(answer.split()) >= 3, answer  # the restarted server speaks again
    assert errors(gateway, "tts") >= 1
