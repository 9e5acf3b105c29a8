"""The LLM engine ([llm] backend = "engine"): llama.cpp's llama-server, the one
scripts/setup.sh builds, run by ``pipeline.llm.engine.LlmEngine`` with the bundled 0.5B.
Real server, real requests: two conversations answered at once, the server killed and
restarted, stopped with its owner (also when the owner is SIGKILLed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from pipeline.llm.base import LlmError
from pipeline.llm.chat import stream_chat
from pipeline.llm.engine import EngineSettings, LlmEngine
from pipeline.llm.server import OpenAiLlm, ServerSettings
from testbed.harness import SMALL_LLM

BINARY = Path(sys.prefix) / "bin" / "llama-server"


needs_engine = pytest.mark.skipif(not BINARY.is_file(),
                                  reason="no llama-server (scripts/setup.sh install builds it)")


def settings(**kw) -> EngineSettings:
    from pipeline import models

    base = dict(binary=BINARY, model=models.assemble_llm(SMALL_LLM), slots=3,
                context_per_slot=1024, threads=2, batch_tokens=128)
    return EngineSettings(**{**base, **kw})


def ask(llm: OpenAiLlm, question: str) -> str:
    messages = [{"role": "system", "content": "Answer in one short sentence."},
                {"role": "user", "content": question}]
    return "".join(stream_chat(llm.acquire(), messages, 24, 0.0))


@pytest.fixture(scope="module")
def engine():
    e = LlmEngine(settings(), restart_min=0.2)
    e.start()
    yield e
    e.stop()


def client(engine: LlmEngine) -> OpenAiLlm:
    return OpenAiLlm(ServerSettings(engine.base_url, first_token_timeout=60.0, timeout=30.0),
                     engine=engine)


@needs_engine
def test_two_conversations_are_answered_at_once(engine):
    llm = client(engine)
    assert llm.backend == "engine"
    answers: dict[str, str] = {}
    spans: dict[str, tuple[float, float]] = {}

    def run(q: str) -> None:
        t0 = time.monotonic()
        answers[q] = ask(llm, q)
        spans[q] = (t0, time.monotonic())

    qs = ["What is the capital of France?", "What colour is the sky on a clear day?"]
    threads = [threading.Thread(target=run, args=(q,)) for q in qs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    print(f"\n{answers}")
    assert "paris" in answers[qs[0]].lower(), answers
    assert "blue" in answers[qs[1]].lower(), answers
    # decoded together: the two requests overlapped in time instead of queueing
    (a0, a1), (b0, b1) = spans[qs[0]], spans[qs[1]]
    assert max(a0, b0) < min(a1, b1)


@needs_engine
def test_the_engine_goes_on_from_an_opening_already_said(engine):
    """llama-server continues a last assistant message (its assistant prefill): the stream
    holds only what follows the words the gateway said."""
    llm = client(engine)
    assert llm.continues
    messages = [{"role": "system", "content": "Answer in one short sentence."},
                {"role": "user", "content": "What is the capital of France?"}]
    rest = "".join(llm.stream(llm.acquire(), messages, 24, 0.0,
                              opening="The capital of France is"))
    print(f"\n{rest!r}")
    assert "paris" in rest.lower() and "capital of france" not in rest.lower()


@needs_engine
def test_a_killed_engine_is_restarted_and_answers_again(engine):
    llm = client(engine)
    pid = engine.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(LlmError):  # dead: the call hears the apology
        for _ in range(100):
            ask(llm, "Say hi.")
            time.sleep(0.05)
    deadline = time.monotonic() + 120
    while not (engine.alive() and engine.pid() != pid and engine.restarts >= 1):
        assert time.monotonic() < deadline, "the engine was not restarted"
        time.sleep(0.2)
    assert "paris" in ask(llm, "What is the capital of France?").lower()


@needs_engine
def test_the_engine_dies_with_its_owner_even_when_killed(tmp_path):
    # the gateway SIGKILLed must not leave a 1 GB server behind: the kernel ends it
    script = tmp_path / "owner.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from tests.e2e.test_engine import settings
        from pipeline.llm.engine import LlmEngine
        e = LlmEngine(settings(slots=1))
        e.start()
        print(e.pid(), flush=True)
        time.sleep(600)
    """))
    owner = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None
        child = int(owner.stdout.readline())
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait(10)
        deadline = time.monotonic() + 15
        while Path(f"/proc/{child}").exists() and _state(child) != "Z":
            assert time.monotonic() < deadline, "llama-server outlived its owner"
            time.sleep(0.1)
    finally:
        if owner.poll() is None:
            owner.kill()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "gone"


@needs_engine
def test_a_call_is_answered_through_the_engine(tmp_path):
    """The gateway starts the engine itself ([llm] backend = "engine"), a baresip caller asks
    and hears the answer, the record says who answered, and the engine ends with the
    gateway."""
    import numpy as np

    from pipeline import models
    from pipeline.stt.whisper import WhisperStt
    from testbed.harness import (
        GatewayProcess,
        active_spans,
        answered,
        baresip_call,
        espeak,
        need,
    )
    from testbed.heard import bot_audio, hear, last_closed_record
    RATE = 16000  # noqa: N806 (G.722, the default codec)

    need("baresip", "espeak-ng", "sox")
    # greedy: the small model's answer to the same prompt is the same every run (sampled, it
    # sometimes said it had no information about the hours it was given)
    gw = GatewayProcess(tmp_path / "gw",
                        extra_toml='[llm]\nbackend = "engine"\ntemperature = 0.0\n')
    gw.start()
    try:
        log = gw.log()
        assert "LLM engine ready on http://127.0.0.1:" in log, log[-3000:]
        # the facts decide "No," (the clinic is closed on Saturdays): the gateway says it and
        # the engine goes on after it (llama-server's assistant prefill)
        # (espeak's "Are you open on Saturday?" reaches tiny.en as "You open ..." or "I'll open
        # on Saturday.", a statement with no yes or no to begin with)
        q = espeak("Is the clinic open on Saturday?", tmp_path / "q.wav")
        # the caller hangs up once the answer was played (40 s is only the longest wait: a
        # check that the engine answers, not of how fast; bench.soak measures that)
        source = np.concatenate([np.zeros(6 * RATE, np.int16), q,
                                 np.zeros(40 * RATE, np.int16)]).astype(np.int16)
        result = baresip_call(tmp_path / "caller", gw.uri, source, RATE,
                              until=answered(gw.workdir / "calls.jsonl", 1))
        q_end = active_spans(result.sent, RATE)[-1][1]
        answer = [s for s in active_spans(result.heard, RATE) if s[0] > q_end]
        assert answer, "the bot never answered"
        text = hear(WhisperStt(models.resolve().whisper_dir),
                    bot_audio(result.heard, answer[0][0], len(result.heard) / RATE))
        rec = last_closed_record(gw)
        turn = [t for t in rec["turns"] if t["caller_text"]][-1]
        print(f"\nengine: TTFA {(answer[0][0] - q_end) * 1000:.0f} ms, LLM first token "
              f"{turn['llm_first_token_seconds']} s; heard {text!r}")
        assert turn["llm_backend"] == "engine" and not turn["llm_error"], turn
        assert turn["opening"] == "No,", turn
        # the engine's words follow the opening, not a second answer of its own
        rest = turn["bot_text"][len("No,"):].strip()
        assert rest and not rest.lower().startswith(("no,", "yes")), turn["bot_text"]
        assert text.lower().startswith("no") and len(text.split()) >= 3, text
        engine_pid = int(gw.log().split("LLM engine ready on ")[1].split("(pid ")[1].split(")")[0])
        assert Path(f"/proc/{engine_pid}").exists()
    finally:
        assert gw.stop() == 0
    deadline = time.monotonic() + 15
    while Path(f"/proc/{engine_pid}").exists() and _state(engine_pid) != "Z":
        assert time.monotonic() < deadline, "the engine outlived the gateway"
        time.sleep(0.1)


@needs_engine
def test_voicebot_llm_server_runs_the_engine_alone(tmp_path):
    """The model box's command: the same engine in the foreground, ended by SIGTERM."""
    from testbed.harness import free_tcp_port

    port = free_tcp_port()
    proc = subprocess.Popen([str(Path(sys.prefix) / "bin" / "voicebot"), "llm-server",
                             "--port", str(port), "--slots", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "llm-server ready" in line:
                break
        assert lines and f"http://127.0.0.1:{port}/v1" in lines[-1], "".join(lines)[-3000:]
        llm = OpenAiLlm(ServerSettings(f"http://127.0.0.1:{port}/v1", first_token_timeout=60.0))
        assert "paris" in ask(llm, "What is the capital of France?").lower()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        with pytest.raises(LlmError):
            ask(llm, "Still there?")
    finally:
        if proc.poll() is None:
            proc.kill()
