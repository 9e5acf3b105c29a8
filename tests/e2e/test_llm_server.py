"""The LLM server backend against a real server: llama-cpp-python's ``llama_cpp.server``
serving the bundled 0.5B GGUF on loopback (2 threads). Real tokens, real sockets, a real
SIGKILL; nothing faked."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from gateway import config
from gateway.app import system_prompt
from pipeline.audio.frames import PlayoutBuffer
from pipeline.audio.utterance import Utterance
from pipeline.breaker import BreakerState, CircuitBreaker
from pipeline.llm.base import LlmError
from pipeline.llm.chat import stream_chat
from pipeline.llm.server import OpenAiLlm, ServerSettings
from testbed.harness import free_tcp_port
from testbed.llm_server import LlmServer, server_available

pytestmark = pytest.mark.skipif(not server_available(),
                                reason="llama-cpp-python's server extra is not installed "
                                       "(scripts/setup.sh test installs it)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = LlmServer(tmp_path_factory.mktemp("llm")).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def prompt():
    """The product's own system prompt (with the business facts: ~450 tokens)."""
    return system_prompt(config.Config())


def backend(url: str, **kw) -> OpenAiLlm:
    breaker = kw.pop("breaker", None)
    return OpenAiLlm(ServerSettings(url, **kw), breaker=breaker)


def timed(llm: OpenAiLlm, messages, max_tokens=24) -> tuple[float, float, list[str]]:
    """(first piece after, last piece after, pieces) of one streamed reply."""
    t0 = time.monotonic()
    first = last = None
    pieces = []
    for piece in stream_chat(llm.acquire(), messages, max_tokens, 0.0):
        last = time.monotonic() - t0
        first = first if first is not None else last
        pieces.append(piece)
    assert first is not None, "no words"
    return first, last, pieces


def test_streams_real_tokens_and_reuses_the_prompt_prefix(server, prompt):
    llm = backend(server.base_url, first_token_timeout=60)  # measured here, not bounded
    # a fresh server's first request is slow whatever its prompt (first evaluation): not
    # what is measured here
    timed(llm, [{"role": "user", "content": "Hi"}], 2)
    q1 = [{"role": "system", "content": prompt},
          {"role": "user", "content": "Hello, what time do you open on Monday?"}]
    first1, last1, pieces1 = timed(llm, q1)
    reply1 = "".join(pieces1).strip()
    q2 = [*q1, {"role": "assistant", "content": reply1},
          {"role": "user", "content": "And how much is a check-up?"}]
    first2, last2, pieces2 = timed(llm, q2)
    # reset() (the "cascade" baseline) sends cache_prompt: false; llama_cpp.server ignores
    # the field (it reuses its prefix anyway), so only that such a request streams is checked
    chat = llm.acquire()
    chat.reset()
    t0 = time.monotonic()
    first3 = None
    for _ in stream_chat(chat, [q2[0], {"role": "user", "content": "Hi, who are you?"}], 8, 0.0):
        first3 = first3 if first3 is not None else time.monotonic() - t0
    print(f"\nfirst token: turn 1 {first1 * 1000:.0f} ms (system prompt read), turn 2 "
          f"{first2 * 1000:.0f} ms (prefix reused), reply 1 {len(pieces1)} pieces in "
          f"{last1 * 1000:.0f} ms: {reply1!r}; reply 2: {''.join(pieces2).strip()!r}")
    assert len(pieces1) >= 5 and first1 < last1  # streamed, not delivered whole
    assert reply1 and "".join(pieces2).strip()
    # turn 2 reads only its new lines: far less than the ~450-token system prompt of turn 1
    assert first2 < first1 * 0.7, (first1, first2)
    assert first3 is not None


def test_barge_in_aborts_the_stream_at_once_and_the_server_goes_on(server, prompt):
    llm = backend(server.base_url, first_token_timeout=60)
    long_q = [{"role": "system", "content": prompt},
              {"role": "user", "content": "Tell me a long story about the clinic's history."}]
    # 1. abort while the server is still reading the prompt (no token yet): a new prompt so
    #    nothing is cached
    #    The utterance is the worker's: its interrupt() (the listener's barge-in) aborts.
    fresh = [{"role": "system", "content": prompt + " Speak warmly."}, long_q[1]]
    u = Utterance(1, PlayoutBuffer())
    t_abort = []

    def barge_in():
        time.sleep(0.15)
        t_abort.append(time.monotonic())
        u.interrupt()

    threading.Thread(target=barge_in).start()
    got = list(stream_chat(llm.acquire(), fresh, 64, 0.0, lambda: u.cancelled,
                           watch=u.on_cancel))
    ended = time.monotonic()
    assert got == []  # ended quietly: a barge-in is not a failure
    print(f"\naborted before the first token: the stream ended "
          f"{(ended - t_abort[0]) * 1000:.1f} ms after the barge-in")
    assert ended - t_abort[0] < 0.1
    assert not u._on_cancel  # the hook was used once and is gone
    # 2. abort mid-reply: pieces the socket already holds are dropped too
    aborts: list = []

    def watch(abort):
        aborts.append(abort)
        return lambda: None

    pieces = []
    stream = stream_chat(llm.acquire(), long_q, 200, 0.0, watch=watch)
    for piece in stream:
        pieces.append(piece)
        if len(pieces) == 3:
            aborts[0]()
    assert len(pieces) == 3
    assert llm.breaker.state is BreakerState.CLOSED  # aborts are no failures
    # the server serves the next request (it noticed the disconnect)
    first, _, after = timed(llm, long_q[:1] + [{"role": "user", "content": "Hi"}], 8)
    assert after and first < 10


def test_failures_are_bounded_typed_and_trip_the_breaker(server, tmp_path):
    # nobody listens on this port: refused at once
    dead = f"http://127.0.0.1:{free_tcp_port()}/v1"
    llm = backend(dead, breaker=CircuitBreaker(failures=2, cooldown=60))
    msgs = [{"role": "user", "content": "Hi"}]
    for _ in range(2):
        t0 = time.monotonic()
        with pytest.raises(LlmError) as e:
            list(stream_chat(llm.acquire(), msgs, 8, 0.0))
        assert e.value.kind == "connect" and time.monotonic() - t0 < 1.0
    with pytest.raises(LlmError) as e:  # no third connection attempt: the breaker is open
        list(stream_chat(llm.acquire(), msgs, 8, 0.0))
    assert e.value.kind == "circuit_open" and llm.breaker.state is BreakerState.OPEN

    # a server that accepts and then says nothing (a hung process): first-token timeout
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen()
    try:
        llm = backend(f"http://127.0.0.1:{hung.getsockname()[1]}/v1", first_token_timeout=0.5)
        t0 = time.monotonic()
        with pytest.raises(LlmError) as e:
            list(stream_chat(llm.acquire(), msgs, 8, 0.0))
        took = time.monotonic() - t0
    finally:
        hung.close()
    assert e.value.kind == "first_token_timeout" and 0.45 < took < 1.5, took

    # the real server, too slow for the bound: a long new prompt with 0.2 s for the first word
    llm = backend(server.base_url, first_token_timeout=0.2)
    slow = [{"role": "system", "content": "Remember these numbers: "
             + " ".join(str(n) for n in range(300))}, {"role": "user", "content": "Hi"}]
    with pytest.raises(LlmError) as e:
        list(stream_chat(llm.acquire(), slow, 8, 0.0))
    assert e.value.kind == "first_token_timeout"

    # a wrong path: the server answers 404
    llm = backend(server.base_url.removesuffix("/v1") + "/nope")
    with pytest.raises(LlmError) as e:
        list(stream_chat(llm.acquire(), msgs, 8, 0.0))
    assert e.value.kind == "http_status" and "404" in e.value.detail


def test_server_killed_mid_stream_is_a_broken_stream(tmp_path, prompt):
    """Its own server: killed with SIGKILL after the first pieces of a reply."""
    srv = LlmServer(tmp_path).start()
    try:
        llm = backend(srv.base_url, first_token_timeout=60)
        msgs = [{"role": "system", "content": prompt},
                {"role": "user", "content": "Tell me everything about the clinic."}]
        pieces = []
        with pytest.raises(LlmError) as e:
            for piece in stream_chat(llm.acquire(), msgs, 200, 0.0):
                pieces.append(piece)
                if len(pieces) == 2:
                    srv.kill()
        assert e.value.kind == "broken" and 2 <= len(pieces) < 60, (e.value, pieces)
        # down: refused; up again on the same port: answered (the next turn retries)
        with pytest.raises(LlmError) as e:
            list(stream_chat(llm.acquire(), msgs, 8, 0.0))
        assert e.value.kind == "connect"
        srv.start()
        assert "".join(stream_chat(llm.acquire(), msgs, 8, 0.0)).strip()
        assert llm.breaker.state is BreakerState.CLOSED
    finally:
        srv.stop()


def test_tool_router_asks_the_same_server(server):
    """The router's request carries the tools; the server's model answers with a call."""
    from gateway.app import tool_policy
    from pipeline.tools.catalog import parse_tool_call

    cfg = config.Config()
    tools = tool_policy(cfg)
    assert tools is not None
    asked = server.chat_requests()
    llm = OpenAiLlm(ServerSettings(server.base_url, first_token_timeout=60),
                    system_prompt(cfg), cfg.llm.greeting, tools.specs())
    routed = llm.route("What is the status of my order 4512?")
    words = llm.route("What time do you open on Monday?")
    print(f"\nrouter over HTTP: {routed!r} / {words!r}")
    call = parse_tool_call(routed or "")
    assert call is not None and call.name == "order_status", routed
    assert "4512" in str(call.arguments)
    assert words is None
    assert server.chat_requests() == asked + 2
    # a dead server: the router's failure is typed like the reply's (the worker apologises)
    dead = OpenAiLlm(ServerSettings(f"http://127.0.0.1:{free_tcp_port()}/v1"),
                     system_prompt(cfg), "", tools.specs())
    with pytest.raises(LlmError) as e:
        dead.route("Where is my order 4512?")
    assert e.value.kind == "connect"
