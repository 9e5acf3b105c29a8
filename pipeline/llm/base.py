"""What the gateway asks of a language model, whichever backend runs it.

Two backends implement ``Llm``: ``embedded.LlmPool`` (llama.cpp in this process, a context
per call) and ``server.OpenAiLlm`` (an OpenAI-compatible server, or the llama-server the
gateway starts itself). A call takes a ``ChatContext`` for its whole life (``acquire``) and
streams its replies from it (``stream``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

ERROR_KINDS = ("connect", "http_status", "first_token_timeout", "stalled", "broken",
               "protocol", "server_error", "circuit_open")
"""What went wrong with a request (the call record's ``llm_error``, the metrics' ``kind``)."""


class LlmError(RuntimeError):
    """A request to the LLM server failed; ``kind`` is one of ``ERROR_KINDS``."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


Abort = Callable[[], None]
Watch = Callable[[Abort], Callable[[], None]]
"""Handed a request's abort (any thread); returns a function that forgets it."""


class ChatReply:
    """A reply as it streams; ``prompt_tokens_read`` is known once its first piece came.
    Iterate it once: the request ends (its stream closed) when the iteration does."""

    def __init__(self, pieces: Iterator[str],
                 read: Callable[[], int | None] = lambda: None) -> None:
        self._pieces = pieces
        self._read = read
        self.prompt_tokens_read: int | None = None
        """The prompt tokens the request read beyond the context's cache (None: the backend
        does not say, or no piece came)."""

    def __iter__(self) -> Iterator[str]:
        with contextlib.closing(self._pieces):  # type: ignore[type-var]
            first = True
            for piece in self._pieces:
                if first:
                    self.prompt_tokens_read = self._read()
                    first = False
                yield piece


class ChatContext(Protocol):
    """One call's conversation on the model: a llama.cpp context, or a server handle.
    Chunks are shaped like llama-cpp-python's (``choices[0].delta.content``)."""

    def create_chat_completion(self, messages: list[dict[str, str]], stream: bool = True,
                               max_tokens: int = 96, temperature: float = 0.2,
                               top_p: float = 0.9, repeat_penalty: float = 1.1,
                               tools: list[dict] | None = None) -> Iterable[dict[str, Any]]:
        ...

    def reset(self) -> None:
        """The next request reads its whole prompt again (the no-cache baseline)."""
        ...


class Llm(Protocol):
    """The model, shared by every call of the process."""

    backend: str
    """Its name in records and metrics: "embedded", "engine" or "openai"."""
    reads_ahead: bool
    """``prefill`` reads a prompt's start into a call's context before its reply is asked for
    (a server keeps its own prompt cache: nothing to read ahead)."""
    continues: bool
    """``stream`` can go on from an ``opening`` already said (llama.cpp's template, or
    llama-server's assistant prefill); a server that would answer it anew cannot."""

    def acquire(self, timeout: float = 5.0) -> ChatContext:
        """A context for one call, held until ``release``."""
        ...

    def release(self, ctx: ChatContext) -> None:
        ...

    def stream(self, ctx: ChatContext, messages: list[dict[str, str]], max_tokens: int,
               temperature: float, cancelled: Callable[[], bool] = lambda: False,
               watch: Watch | None = None, opening: str = "") -> ChatReply:
        """The reply to ``messages``, streamed; stops between tokens once ``cancelled()``;
        ``watch`` gets the request's abort (a barge-in ends it at once). ``opening``: the
        reply's first words, already said (only if ``continues``): the stream is what follows
        them. A server's failure raises ``LlmError``."""
        ...

    def prefill(self, ctx: ChatContext, messages: list[dict[str, str]],
                open_turn: bool = False, stop: Callable[[], bool] = lambda: False) -> None:
        """Read ``messages`` into ``ctx`` ahead of a request that starts with them
        (``open_turn``: the last one is the caller's words so far); gives way once
        ``stop()``. Does nothing unless ``reads_ahead``."""
        ...

    def route(self, caller_text: str,
              cancelled: Callable[[], bool] = lambda: False) -> str | None:
        """The tool call the caller's words ask for (JSON as the model wrote it), or None."""
        ...

    def warm_up(self) -> None:
        ...

    def close(self) -> None:
        ...
