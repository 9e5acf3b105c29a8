"""The language model: llama.cpp, streamed token by token.

llama.cpp keeps one KV cache per context and reuses the longest common token prefix of the
previous request, so a call that keeps its own context pays for the system prompt once (at
warm-up) and then only for the new turn. Contexts are therefore pooled: one per call slot,
each a separate ``Llama`` (weights are mmapped), handed to a call for its whole life and
never shared between two calls at once.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)


class LlmPool:
    def __init__(self, model: Path, size: int, threads: int = 2, context_tokens: int = 2048,
                 gpu_layers: int = 0, system_prompt: str = "", greeting: str = "",
                 tools: list[dict] | None = None) -> None:
        from llama_cpp import Llama

        self.system_prompt = system_prompt
        self.greeting = greeting
        self.tools = tools or None
        self._free: queue.SimpleQueue[Llama] = queue.SimpleQueue()
        self.size = size
        for _ in range(size):
            llm = Llama(str(model), n_ctx=context_tokens, n_threads=threads,
                        n_threads_batch=threads, n_gpu_layers=gpu_layers, verbose=False)
            self._free.put(llm)
        # Tool routing has its own context (shared by the calls, one turn at a time): with
        # the conversation in its prompt the small model answers in words and never calls a
        # tool (bench/tool_choice.py); its prefix (system prompt + tools) stays cached.
        self._router = None if not self.tools else Llama(
            str(model), n_ctx=1024, n_threads=threads, n_threads_batch=threads,
            n_gpu_layers=gpu_layers, verbose=False)
        self._router_lock = threading.Lock()

    def warm_up(self) -> None:
        """Evaluate the system prompt (and greeting) in every context: every call's first
        request shares that prefix, so no caller waits for it."""
        prefix = [{"role": "system", "content": self.system_prompt}]
        if self.greeting:
            prefix.append({"role": "assistant", "content": self.greeting})
        held = [self._free.get() for _ in range(self.size)]
        try:
            for llm in held:
                for _ in stream_chat(llm, [*prefix, {"role": "user", "content": "Hello"}],
                                     max_tokens=4, temperature=0.0):
                    pass
        finally:
            for llm in held:
                self._free.put(llm)
        self.route("Hello")

    def route(self, caller_text: str,
              cancelled: Callable[[], bool] = lambda: False) -> str | None:
        """The tool call the caller's words ask for, as the model wrote it (JSON), or None
        when the reply would be words (decided by its first token)."""
        if self._router is None:
            return None
        from pipeline.reply.tools import looks_like_tool_call

        messages = [{"role": "system", "content": self.system_prompt},
                    {"role": "user", "content": caller_text}]
        parts: list[str] = []
        with self._router_lock:
            for piece in stream_chat(self._router, messages, 64, 0.0, cancelled, self.tools):
                parts.append(piece)
                if looks_like_tool_call("".join(parts)) is False:
                    return None
        text = "".join(parts)
        return text if looks_like_tool_call(text) else None

    def acquire(self, timeout: float = 5.0):  # -> Llama
        return self._free.get(timeout=timeout)

    def release(self, llm) -> None:
        self._free.put(llm)


def stream_chat(llm, messages: list[dict[str, str]], max_tokens: int, temperature: float,
                cancelled: Callable[[], bool] = lambda: False,
                tools: list[dict] | None = None) -> Iterator[str]:
    """Yield text pieces as they are generated; stops between tokens once ``cancelled()``.
    With ``tools``, the model's chat template describes them and a reply may be a tool call
    (a JSON object, see pipeline/reply/tools.py); the caller decides what to do with it."""
    extra = {"tools": tools} if tools else {}
    stream = llm.create_chat_completion(messages, stream=True, max_tokens=max_tokens,
                                        temperature=temperature, top_p=0.9, repeat_penalty=1.1,
                                        **extra)
    try:
        for chunk in stream:
            if cancelled():
                return
            piece = chunk["choices"][0]["delta"].get("content")
            if piece:
                yield piece
    finally:
        stream.close()  # frees llama's generator state at once, also on cancel
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
