"""A chat request streamed from any backend's per-call context, piece by piece."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from pipeline.llm.base import ChatContext, Watch
from pipeline.tools.catalog import looks_like_tool_call


def first_tool_call(pieces: Iterator[str]) -> str | None:
    """Read a reply only as far as its start tells whether it is a tool call: the call's text
    (JSON) or None (words). The stream is closed either way."""
    parts: list[str] = []
    with contextlib.closing(pieces):  # type: ignore[type-var]
        for piece in pieces:
            parts.append(piece)
            if looks_like_tool_call("".join(parts)) is False:
                return None
    text = "".join(parts)
    return text if looks_like_tool_call(text) else None


def spaced_after(opening: str, piece: str) -> str:
    """The model's first piece after ``opening`` (words already said), spaced from them: a
    model's next word carries its space, mostly."""
    return piece if not opening or piece[:1].isspace() else f" {piece}"


def stream_chat(llm: ChatContext, messages: list[dict[str, str]], max_tokens: int,
                temperature: float, cancelled: Callable[[], bool] = lambda: False,
                tools: list[dict] | None = None, watch: Watch | None = None) -> Iterator[str]:
    """Yield text pieces as they are generated; stops between tokens once ``cancelled()``.
    With ``tools``, the model's chat template describes them and a reply may be a tool call
    (a JSON object, see pipeline/tools/catalog.py); the caller decides what to do with it.

    ``llm`` is a llama.cpp context or a server backend's per-call handle (``RemoteChat``):
    both answer ``create_chat_completion``. ``watch(abort)`` is handed a server stream's
    abort (it returns a function that forgets it): a barge-in closes the connection at once
    instead of at the next token. A server's failure raises ``LlmError``."""
    extra = {"tools": tools} if tools else {}
    stream = llm.create_chat_completion(messages, stream=True, max_tokens=max_tokens,
                                        temperature=temperature, top_p=0.9, repeat_penalty=1.1,
                                        **extra)
    yield from pieces_of(llm, stream, lambda chunk: chunk["choices"][0]["delta"].get("content"),
                         cancelled, watch)


def pieces_of(llm: Any, stream: Any, text: Callable[[dict[str, Any]], str | None],
              cancelled: Callable[[], bool], watch: Watch | None = None) -> Iterator[str]:
    """The text of each of a request's ``stream`` chunks (``text`` finds it in a chunk),
    until ``cancelled()``; the stream and ``llm``'s sampler are freed however it ends."""
    abort = getattr(stream, "abort", None)
    unwatch = watch(abort) if watch is not None and abort is not None else None
    try:
        for chunk in stream:
            if cancelled():
                return
            piece = text(chunk)
            if piece:
                yield piece
    finally:
        if unwatch is not None:
            unwatch()
        stream.close()  # frees llama's generator state (or the connection) at once
        _free_sampler(llm)


def _free_sampler(llm) -> None:
    """Free the request's sampler chain now. llama-cpp-python's LlamaSampler is in a reference
    cycle (its ExitStack callback holds it), so only a full gc pass frees it, and with it
    llama.cpp's n_vocab candidate buffer (~1.8 MB for Qwen): RssAnon grew +1.8 MB per chat,
    flat with this (bench/memory_components.py --component llm)."""
    sampler = getattr(llm, "_sampler", None)
    if sampler is not None and hasattr(sampler, "close"):
        sampler.close()
        llm._sampler = None  # Llama.generate makes a new one per request
