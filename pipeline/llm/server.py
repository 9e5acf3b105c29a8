"""The language model on a server: any OpenAI-compatible streaming chat endpoint
(``POST {base_url}/chat/completions`` with ``stream: true``): llama.cpp's server,
llama-cpp-python's ``llama_cpp.server``, vLLM, Ollama.

It offers what the embedded ``LlmPool`` offers (``acquire``/``release`` a per-call handle,
``route``, ``warm_up``), and the per-call handle answers ``create_chat_completion`` with
chunks shaped like llama-cpp-python's, so the reply worker streams both the same way
(``pipeline.llm.embedded.stream_chat``).

Failures are bounded in time and typed (``LlmError.kind``), so the worker can turn them into
an apology: connect (``connect_timeout``), the first words (``first_token_timeout``, from the
request to the first text), every later piece (``timeout``). A circuit breaker
(pipeline/breaker.py) shared by the process's calls stops requests to a server that
keeps failing. ``ChatStream.abort`` (any thread) shuts the socket down, so a barge-in ends
the request at once, also while the server is still reading the prompt.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pipeline.breaker import CircuitBreaker
from pipeline.llm.base import ChatReply, LlmError, Watch
from pipeline.llm.chat import first_tool_call, stream_chat
from pipeline.llm.sse import ChunkReader, SseDecoder, StreamError

if TYPE_CHECKING:
    from pipeline.llm.engine import LlmEngine

log = logging.getLogger(__name__)

MAX_LINE = 1 << 20


@dataclass(frozen=True)
class ServerSettings:
    base_url: str
    """Up to the API version, e.g. http://127.0.0.1:8080/v1 (``/chat/completions`` is added)."""
    model: str = ""
    """Sent as the request's ``model``; empty = left out (one-model llama.cpp servers)."""
    api_key: str = field(default="", repr=False)
    connect_timeout: float = 2.0
    first_token_timeout: float = 5.0
    timeout: float = 10.0
    """Longest wait for the next piece once the reply streams."""
    cache_prompt: bool = True
    """Send llama.cpp's own fields (``cache_prompt``, ``repeat_penalty``)."""
    slow_is_down: bool = True
    """A request that times out counts towards the circuit breaker. Not for the engine the
    gateway runs itself: there a timeout means it is busy (4 calls on 2 cores), its death is
    seen by its supervisor, and an open breaker turned one slow turn into 20 s of apologies
    for every call."""


def chat_body(messages: list[dict[str, str]], max_tokens: int, temperature: float,
              settings: ServerSettings, *, top_p: float = 0.9, repeat_penalty: float = 1.1,
              tools: list[dict] | None = None, cache: bool = True) -> dict[str, Any]:
    """The request's JSON. The messages go as given: the system prompt first and the history
    in a stable order, so a server's prefix cache (llama.cpp slots, vLLM's automatic prefix
    caching) reuses what it read last turn."""
    body: dict[str, Any] = {"messages": messages, "stream": True, "max_tokens": max_tokens,
                            "temperature": temperature, "top_p": top_p}
    if settings.model:
        body["model"] = settings.model
    if tools:
        body["tools"] = tools
    if settings.cache_prompt:
        body["cache_prompt"] = cache
        body["repeat_penalty"] = repeat_penalty
    return body


class ChatStream:
    """One streamed request. Iterating yields llama-cpp-python-shaped chunks
    (``{"choices": [{"delta": {"content": text}}]}``) and raises ``LlmError``; ``abort()``
    from another thread ends it at once (the iteration then just stops)."""

    def __init__(self, settings: ServerSettings, body: dict[str, Any],
                 breaker: CircuitBreaker, clock: Callable[[], float] = time.monotonic) -> None:
        self._s = settings
        self._breaker = breaker
        self._clock = clock
        self._aborted = threading.Event()
        self._verdict = False  # the breaker has heard how this request went
        url = urlsplit(settings.base_url)
        cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        self._where = url.netloc
        self._conn = cls(url.hostname or "", url.port, timeout=settings.connect_timeout)
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if settings.api_key:
            headers["Authorization"] = f"Bearer {settings.api_key}"
        self.started = clock()
        self.first_text: float | None = None
        """When the first text arrived (clock time), if it did."""
        try:  # connects (bounded by connect_timeout) and sends the request
            self._conn.request("POST", url.path.rstrip("/") + "/chat/completions",
                               json.dumps(body).encode(), headers)
        except (OSError, http.client.HTTPException) as e:
            self._conn.close()
            self._fail()
            raise LlmError("connect", f"{self._where}: {_reason(e)}") from None
        self._gen = self._chunks()

    def __iter__(self) -> ChatStream:
        return self

    def __next__(self) -> dict[str, Any]:
        return next(self._gen)

    def abort(self) -> None:
        """Any thread: close the connection now (a blocked read returns at once)."""
        self._aborted.set()
        sock = self._conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """The reading thread, when done with it (also after an abort)."""
        self._gen.close()
        self._conn.close()
        if not self._verdict:
            self._verdict = True
            self._breaker.abandoned(self._clock())

    def _fail(self) -> None:
        self._verdict = True
        self._breaker.failed(self._clock())

    def _wait_until(self, deadline: float) -> None:
        left = deadline - self._clock()
        if left <= 0:
            raise TimeoutError
        if self._conn.sock is not None:
            self._conn.sock.settimeout(left)

    def _chunks(self) -> Iterator[dict[str, Any]]:
        s = self._s
        status = 0
        try:
            deadline = self.started + s.first_token_timeout
            self._wait_until(deadline)
            resp = self._conn.getresponse()
            status = resp.status
            if status != 200:
                detail = resp.read(500).decode("utf-8", "replace").strip()
                raise LlmError("http_status", f"HTTP {status} {resp.reason}: {detail[:200]}")
            decoder, reader = SseDecoder(), ChunkReader()
            while not reader.done:
                if self._aborted.is_set():  # pieces already buffered are not wanted
                    return
                if self.first_text is not None:
                    deadline = self._clock() + s.timeout
                self._wait_until(deadline)
                line = resp.readline(MAX_LINE)
                if not line:  # the server closed the stream
                    data = decoder.end()
                    text = reader.read(data) if data is not None else ""
                    if text:
                        yield _chunk(text)
                    if reader.done or reader.finished:
                        break
                    raise LlmError("broken", "the server closed the stream before its end")
                if len(line) == MAX_LINE and not line.endswith(b"\n"):
                    raise LlmError("protocol", f"a line longer than {MAX_LINE} bytes")
                data = decoder.feed_line(line)
                if data is None:
                    continue
                text = reader.read(data)
                if not text:
                    continue
                if self.first_text is None:
                    self.first_text = self._clock()
                    self._verdict = True  # it answers: the server is up
                    self._breaker.succeeded(self.first_text)
                yield _chunk(text)
        except LlmError:
            if self._aborted.is_set():
                return
            self._fail()
            raise
        except StreamError as e:
            self._fail()
            raise LlmError(e.kind, str(e)) from None
        except TimeoutError:
            if self._aborted.is_set():
                return
            if s.slow_is_down:
                self._fail()
            if self.first_text is None:
                raise LlmError("first_token_timeout",
                               f"no words within {s.first_token_timeout:g} s") from None
            raise LlmError("stalled", f"nothing for {s.timeout:g} s mid-reply") from None
        except (OSError, http.client.HTTPException) as e:
            if self._aborted.is_set():
                return  # our own shutdown, not the server's failure
            self._fail()
            kind = "broken" if status == 200 else "connect"
            raise LlmError(kind, f"{self._where}: {_reason(e)}") from None


def _chunk(text: str) -> dict[str, Any]:
    return {"choices": [{"delta": {"content": text}}]}


def _reason(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def after_opening(pieces: Iterator[str], opening: str) -> Iterator[str]:
    """``pieces`` without the ``opening`` they repeat: llama-server streams a prefilled
    assistant message's words before its own (a server that does not is passed through)."""
    held: str | None = ""
    with contextlib.closing(pieces):  # type: ignore[type-var]
        for piece in pieces:
            if held is None:
                yield piece
                continue
            held += piece
            if len(held) < len(opening) and opening.startswith(held):
                continue
            rest = held[len(opening):] if held.startswith(opening) else held
            held = None
            if rest:
                yield rest


class RemoteChat:
    """One call's handle on the server (what ``LlmPool.acquire`` gives for a llama.cpp
    context): the call's requests go through it."""

    def __init__(self, server: OpenAiLlm) -> None:
        self._server = server
        self._cache_next = True

    def reset(self) -> None:
        """The next request reads its whole prompt again (the "cascade" baseline)."""
        self._cache_next = False

    def create_chat_completion(self, messages: list[dict[str, str]], stream: bool = True,
                               max_tokens: int = 96, temperature: float = 0.2,
                               top_p: float = 0.9, repeat_penalty: float = 1.1,
                               tools: list[dict] | None = None) -> ChatStream:
        cache, self._cache_next = self._cache_next, True
        return self._server.open(messages, max_tokens, temperature, top_p=top_p,
                                 repeat_penalty=repeat_penalty, tools=tools, cache=cache)


class OpenAiLlm:
    """The LLM backend on an OpenAI-compatible server, shared by the process's calls."""

    backend = "openai"
    reads_ahead = False  # the server keeps each slot's prompt cache itself

    def __init__(self, settings: ServerSettings, system_prompt: str = "", greeting: str = "",
                 tools: list[dict] | None = None, breaker: CircuitBreaker | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 engine: LlmEngine | None = None, backend: str = "openai") -> None:
        self.settings = settings
        self.engine = engine
        """The llama-server this process started ([llm] backend = "engine"); None: a server
        run by someone else."""
        self.backend = "engine" if engine is not None else backend
        """"engine" also for an engine another process runs (``voicebot workers``)."""
        self.continues = self.backend == "engine"
        """Only llama-server is known to go on from a last assistant message; another server
        (vLLM, llama_cpp.server) may answer it anew."""
        if engine is not None:
            engine.on_restart = self.warm_up
        self.system_prompt = system_prompt
        self.greeting = greeting
        self.tools = tools or None
        self.breaker = breaker or CircuitBreaker()
        self.clock = clock

    def open(self, messages: list[dict[str, str]], max_tokens: int, temperature: float,
             **kw: Any) -> ChatStream:
        if not self.breaker.allow(self.clock()):
            raise LlmError("circuit_open", "the server failed repeatedly; next try in "
                           f"{self.breaker.retry_in(self.clock()):.0f} s")
        body = chat_body(messages, max_tokens, temperature, self.settings, **kw)
        return ChatStream(self.settings, body, self.breaker, self.clock)

    def close(self) -> None:
        """Stop the engine this process started (a server run by someone else stays up)."""
        if self.engine is not None:
            self.engine.stop()

    def acquire(self, timeout: float = 5.0) -> RemoteChat:
        return RemoteChat(self)

    def release(self, chat: RemoteChat) -> None:
        pass

    def stream(self, ctx: RemoteChat, messages: list[dict[str, str]], max_tokens: int,
               temperature: float, cancelled: Callable[[], bool] = lambda: False,
               watch: Watch | None = None, opening: str = "") -> ChatReply:
        if not opening:
            return ChatReply(stream_chat(ctx, messages, max_tokens, temperature, cancelled,
                                         watch=watch))
        # llama-server goes on from a last assistant message (its prefill)
        messages = [*messages, {"role": "assistant", "content": opening}]
        return ChatReply(after_opening(stream_chat(ctx, messages, max_tokens, temperature,
                                                   cancelled, watch=watch), opening))

    def prefill(self, ctx: RemoteChat, messages: list[dict[str, str]],
                open_turn: bool = False, stop: Callable[[], bool] = lambda: False) -> None:
        """Nothing: the server's slot keeps the prompt of the call's last request."""

    def warm_up(self) -> None:
        """Ask once with the calls' prompt prefix (the server caches it, a cold server loads
        its model); the router's prompt first, so a one-context server (llama_cpp.server)
        keeps the calls' prefix. A server that is down is not fatal: calls hear the apology
        until it is up."""
        prefix = [{"role": "system", "content": self.system_prompt}]
        if self.greeting:
            prefix.append({"role": "assistant", "content": self.greeting})
        first = [*prefix, {"role": "user", "content": "Hello"}]
        t0 = self.clock()
        try:
            self.route("Hello")
            if self.engine is not None:
                self.fill_slots(first)
            else:
                for _ in stream_chat(self.acquire(), first, max_tokens=4, temperature=0.0):
                    pass
        except LlmError as e:
            log.warning("LLM server %s did not answer the warm-up (%s); calls hear the "
                        "apology until it does", self.settings.base_url, e)
            return
        log.info("LLM server %s answered the warm-up in %.2f s", self.settings.base_url,
                 self.clock() - t0)

    def fill_slots(self, messages: list[dict[str, str]]) -> None:
        """Read the calls' prompt prefix into every slot of the engine, all at once (each
        request takes an idle slot). A call then starts on a slot that holds it, as the
        embedded backend copies it into each context: 4 calls whose first turns each read
        the ~230-token prefix waited up to 10-15 s for their first words (1.5B, 2 cores)."""
        assert self.engine is not None
        errors: list[LlmError] = []

        def one() -> None:
            try:
                for _ in stream_chat(self.acquire(), messages, 1, 0.0):
                    pass
            except LlmError as e:
                errors.append(e)

        threads = [threading.Thread(target=one, name=f"engine-slot-{i}")
                   for i in range(self.engine.settings.slots)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    def route(self, caller_text: str,
              cancelled: Callable[[], bool] = lambda: False) -> str | None:
        """The tool router (see ``LlmPool.route``), on the server."""
        if self.tools is None:
            return None
        messages = [{"role": "system", "content": self.system_prompt},
                    {"role": "user", "content": caller_text}]
        return first_tool_call(stream_chat(self.acquire(), messages, 64, 0.0, cancelled,
                                           self.tools))
