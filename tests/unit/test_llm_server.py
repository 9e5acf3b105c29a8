"""The LLM server backend against scripted HTTP servers in this process: a busy engine times
out one turn without opening the breaker, and each way a server misbehaves fails with its
kind (the real server is tests/e2e/test_llm_server.py)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest

from pipeline.breaker import BreakerState, CircuitBreaker
from pipeline.llm.base import LlmError
from pipeline.llm.chat import stream_chat
from pipeline.llm.server import OpenAiLlm, ServerSettings
from testbed.llm_server import server_available

pytestmark = pytest.mark.skipif(not server_available(),
                                reason="llama-cpp-python's server extra is not installed "
                                       "(scripts/setup.sh test installs it)")


def backend(url: str, **kw) -> OpenAiLlm:
    breaker = kw.pop("breaker", None)
    return OpenAiLlm(ServerSettings(url, **kw), breaker=breaker)


def test_a_busy_engine_times_out_a_turn_without_opening_the_breaker():
    """The engine the gateway runs (``slow_is_down=False``): a request that gets no words in
    time fails that turn only; the next request is still sent (a server run by someone else
    would have its breaker opened by the same timeouts)."""
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    msgs = [{"role": "user", "content": "Hi"}]
    try:
        url = f"http://127.0.0.1:{busy.getsockname()[1]}/v1"
        engine = backend(url, first_token_timeout=0.2, slow_is_down=False,
                         breaker=CircuitBreaker(failures=1, cooldown=60))
        remote = backend(url, first_token_timeout=0.2,
                         breaker=CircuitBreaker(failures=1, cooldown=60))
        for _ in range(2):
            with pytest.raises(LlmError) as e:
                list(stream_chat(engine.acquire(), msgs, 8, 0.0))
            assert e.value.kind == "first_token_timeout"
        assert engine.breaker.state is BreakerState.CLOSED
        with pytest.raises(LlmError):
            list(stream_chat(remote.acquire(), msgs, 8, 0.0))
        with pytest.raises(LlmError) as e:
            list(stream_chat(remote.acquire(), msgs, 8, 0.0))
        assert e.value.kind == "circuit_open"
    finally:
        busy.close()


class ScriptedHttpServer:
    """A misbehaving server on a real loopback socket: answers each connection with the given
    bytes (then, with ``stall``, keeps it open without a word)."""

    def __init__(self, reply: bytes, stall: bool = False) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.reply, self.stall = reply, stall
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.sock.accept()
                self.conns.append(conn)
                conn.recv(65536)
                conn.sendall(self.reply)
                if not self.stall:
                    conn.close()

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


def sse_reply(*events: bytes) -> bytes:
    body = b"".join(b"data: " + e + b"\n\n" for e in events)
    return (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def sse_chunked(*events: bytes) -> bytes:
    """Headers and these events, chunked as a streaming server sends them (no end chunk)."""
    out = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n")
    for e in events:
        data = b"data: " + e + b"\n\n"
        out += b"%x\r\n%s\r\n" % (len(data), data)
    return out


HELLO = b'{"choices": [{"delta": {"content": "Hello"}}]}'


@pytest.mark.parametrize(("reply", "stall", "kind", "pieces"), [
    # words, then silence: stalled after [llm] timeout (mid-reply, not first-token)
    (sse_chunked(HELLO), True, "stalled", ["Hello"]),
    (sse_chunked(), True, "first_token_timeout", []),  # headers, then nothing
    (sse_reply(HELLO, b"{oops"), False, "protocol", ["Hello"]),
    (sse_reply(b'{"error": {"message": "out of memory"}}'), False, "server_error", []),
    (sse_reply(HELLO), False, "broken", ["Hello"]),  # closed without [DONE] or a finish
    (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy", False,
     "http_status", []),
])
def test_misbehaving_servers_fail_with_their_kind(reply, stall, kind, pieces):
    srv = ScriptedHttpServer(reply, stall)
    try:
        llm = backend(srv.url, first_token_timeout=1.0, timeout=0.5)
        got = []
        t0 = time.monotonic()
        with pytest.raises(LlmError) as e:
            for piece in stream_chat(llm.acquire(), [{"role": "user", "content": "Hi"}], 8, 0.0):
                got.append(piece)
        assert e.value.kind == kind and got == pieces, (e.value, got)
        assert time.monotonic() - t0 < 1.5
    finally:
        srv.close()
    # a whole reply from the same kind of server is fine
    srv = ScriptedHttpServer(sse_reply(HELLO, b"[DONE]"))
    try:
        assert list(stream_chat(backend(srv.url).acquire(), [], 8, 0.0)) == ["Hello"]
    finally:
        srv.close()


def test_a_stream_that_repeats_the_opening_is_cut_after_it():
    from pipeline.llm.server import after_opening

    def go(*pieces: str) -> str:
        return "|".join(after_opening((p for p in pieces), "Yes, we"))

    assert go("Yes", ",", " we", " open", " at 8.") == " open| at 8."
    assert go("Yes, we open", " at 8.") == " open| at 8."
    # a server that streams only what follows the opening
    assert go(" open", " at 8.") == " open| at 8."
    assert go("No", ", we open.") == "No|, we open."
