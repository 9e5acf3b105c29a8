"""End to end with the LLM on a server: a real SIP caller (baresip) calls the real gateway,
whose LLM is a real ``llama_cpp.server`` (bundled 0.5B GGUF) on loopback
([llm] backend = "openai"). Then the server is killed mid-call (SIGKILL, while it serves the
caller's turn): the caller hears the apology, the call goes on, and once the server is back
the next turn is answered. What the caller heard is transcribed with Whisper."""

from __future__ import annotations

import re
import threading
import time

import numpy as np
import pytest

from pipeline.llm.base import ERROR_KINDS, LlmError
from pipeline.llm.chat import stream_chat
from pipeline.llm.server import OpenAiLlm, ServerSettings
from testbed.harness import (
    GatewayProcess,
    active_spans,
    answered,
    baresip_call,
    espeak,
    free_tcp_port,
    need,
)
from testbed.heard import bot_audio, hear, last_closed_record
from testbed.llm_server import LlmServer, server_available

pytestmark = pytest.mark.skipif(not server_available(),
                                reason="llama-cpp-python's server extra is not installed")

RATE = 16000
API_KEY = "sk-test-4f1c9a7e2b"
APOLOGY = "Sorry, I can't answer that right now. Please ask me again in a moment."


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = LlmServer(tmp_path_factory.mktemp("llm"), api_key=API_KEY).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, server):
    need("baresip", "espeak-ng", "sox")
    gw = GatewayProcess(
        tmp_path_factory.mktemp("gw"), metrics_port=free_tcp_port(),
        env={"TEST_LLM_KEY": API_KEY},
        extra_toml=(f'[llm]\nbackend = "openai"\nbase_url = "{server.base_url}"\n'
                    'api_key_env = "TEST_LLM_KEY"\n'
                    f'apology = "{APOLOGY}"\n'
                    # the box is shared: a loaded 2-core machine reads a turn's new lines in
                    # seconds, not 0.2 s (the kill test's apology comes from the dead socket)
                    "first_token_timeout = 30.0\n"))
    yield from gw.serve()


@pytest.fixture(scope="module")
def whisper():
    from pipeline import models
    from pipeline.stt.whisper import WhisperStt

    return WhisperStt(models.resolve().whisper_dir)


def test_call_answered_through_the_llm_server(gateway, server, whisper, tmp_path):
    assert "LLM: OpenAI-compatible server" in gateway.log()
    asked_before = server.chat_requests()
    q = espeak("What time do you open in the morning?", tmp_path / "q.wav")
    source = np.concatenate([np.zeros(6 * RATE, np.int16), q,
                             np.zeros(20 * RATE, np.int16)]).astype(np.int16)
    result = baresip_call(tmp_path / "caller", gateway.uri, source, RATE)
    q_end = active_spans(result.sent, RATE)[-1][1]
    answer = [s for s in active_spans(result.heard, RATE) if s[0] > q_end]
    assert answer, "the bot never answered"
    text = hear(whisper, bot_audio(result.heard, answer[0][0], len(result.heard) / RATE))
    ttfa = answer[0][0] - q_end
    rec = last_closed_record(gateway)
    turns = [t for t in rec["turns"] if t["caller_text"]]
    print(f"\nLLM on the server: TTFA on the caller's recording {ttfa * 1000:.0f} ms, LLM first "
          f"token {turns[-1]['llm_first_token_seconds']} s; heard {text!r}")
    assert server.chat_requests() > asked_before  # the server answered it, not the gateway
    assert turns and turns[-1]["llm_backend"] == "openai" and not turns[-1]["llm_error"]
    assert turns[-1]["bot_text"] and APOLOGY not in turns[-1]["bot_text"]
    # the model's answer was played (whatever the small model made of the question)
    said = set(re.findall(r"[a-z]+", turns[-1]["bot_text"].lower()))
    heard = set(re.findall(r"[a-z]+", text.lower()))
    assert len(heard) >= 2 and len(said & heard) >= len(said) / 2, (text, turns[-1]["bot_text"])
    m = gateway.metrics()
    assert m[("voicebot_llm_first_token_seconds_count", (("backend", "openai"),))] >= 1
    # the server wants the key (refused without it), the gateway sent it, and never wrote it
    with pytest.raises(LlmError) as e:
        list(stream_chat(OpenAiLlm(ServerSettings(server.base_url)).acquire(),
                         [{"role": "user", "content": "Hi"}], 4, 0.0))
    assert e.value.kind == "http_status" and "401" in e.value.detail
    journal = (gateway.workdir / "calls.jsonl").read_text()
    assert API_KEY not in gateway.log() and API_KEY not in journal
    assert API_KEY not in str(m)


def test_server_killed_mid_call_apology_then_answered_again(gateway, server, whisper,
                                                            tmp_path):
    q1 = espeak("Please tell me about the clinic and its opening hours.", tmp_path / "q1.wav")
    q2 = espeak("How much is a check-up?", tmp_path / "q2.wav")
    gap = np.zeros(15 * RATE, np.int16)
    # after q2, time for the restarted server's first request: it is cold (the whole prompt
    # to read, its first evaluation slow) and the box is shared
    tail = np.zeros(45 * RATE, np.int16)
    source = np.concatenate([np.zeros(6 * RATE, np.int16), q1, gap, q2, tail]).astype(np.int16)
    asked_before = server.chat_requests()
    out: dict = {}
    # the caller hangs up once both turns were answered (the tail is only a longest wait)
    done = answered(gateway.workdir / "calls.jsonl", 2)
    caller = threading.Thread(target=lambda: out.setdefault(
        "result", baresip_call(tmp_path / "caller", gateway.uri, source, RATE, until=done)))
    caller.start()
    # the caller's first turn reaches the server: kill it while it serves that request
    deadline = time.monotonic() + 40
    while server.chat_requests() == asked_before:
        assert time.monotonic() < deadline, "the gateway never asked the server"
        time.sleep(0.02)
    time.sleep(0.25)
    server.kill()
    killed = time.monotonic()
    server.start()
    print(f"\nserver killed 0.25 s into the turn's request, back after "
          f"{time.monotonic() - killed:.1f} s")
    caller.join(120)
    result = out["result"]

    rec = last_closed_record(gateway)
    assert rec["outcome"] == "ended_by_caller" and rec["duration_seconds"] > 20, rec
    turns = [t for t in rec["turns"] if t["caller_text"]]
    failed = [t for t in turns if t["llm_error"]]
    assert failed, turns
    assert all(t["llm_error"] in ERROR_KINDS for t in failed)
    assert APOLOGY in failed[0]["bot_text"], failed[0]
    assert not turns[-1]["llm_error"] and turns[-1]["bot_text"], turns[-1]
    assert APOLOGY not in turns[-1]["bot_text"]

    sent = active_spans(result.sent, RATE, min_gap_ms=1500)
    assert len(sent) == 2, sent
    apology = hear(whisper, bot_audio(result.heard, sent[0][1], sent[1][0]))
    answer = hear(whisper, bot_audio(result.heard, sent[1][1], len(result.heard) / RATE))
    print(f"turn 1: {failed[0]['llm_error']} (said {failed[0]['bot_text']!r}), heard "
          f"{apology!r}; turn 2 (restarted server) first token "
          f"{turns[-1]['llm_first_token_seconds']} s, heard {answer!r}")
    assert "sorry" in apology.lower() and "moment" in apology.lower(), apology
    assert answer and "sorry" not in answer.lower(), answer
    m = gateway.metrics()
    errors = sum(v for (name, labels), v in m.items()
                 if name == "voicebot_llm_errors_total" and ("backend", "openai") in labels)
    assert errors >= 1


def test_gateway_starts_with_the_server_down(tmp_path):
    """A dead LLM server is no reason not to answer calls: the warm-up fails, is logged, and
    the gateway gets ready (its callers hear the apology until the server is up)."""
    need("baresip", "espeak-ng", "sox")
    dead = f"http://127.0.0.1:{free_tcp_port()}/v1"
    gw = GatewayProcess(tmp_path / "gw", extra_toml=f'[llm]\nbackend = "openai"\n'
                                                    f'base_url = "{dead}"\n')
    try:
        gw.start()
        log = gw.log()
        assert f"LLM server {dead} did not answer the warm-up (connect:" in log
        assert "Traceback" not in log
    finally:
        assert gw.stop() == 0
