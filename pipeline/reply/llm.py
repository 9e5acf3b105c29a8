"""The language model: llama.cpp, streamed token by token.

llama.cpp keeps one KV cache per context and reuses the longest common token prefix of the
previous request, so a call that keeps its own context pays for the system prompt once (at
warm-up) and then only for the new turn. Contexts are therefore pooled: one per call slot,
handed to a call for its whole life and never shared between two calls at once.

All contexts share one loaded model (``SharedModel``). llama.cpp repacks the weights into an
interleaved copy in anonymous memory when it loads a model (``use_extra_bufts``: the faster
matrix kernels need it), so a ``Llama`` per slot, each loading the file, held one private
copy of the weights per call (+701 MB each for the 1.5B model).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class SharedModel:
    """One GGUF loaded once; ``context()`` makes a ``Llama`` that uses it (its own KV cache).

    llama-cpp-python's ``Llama`` loads its own model; it is given this one through the
    module attribute it loads with, swapped for the duration of the constructor (under a
    lock: the swap is process-wide). The borrowed handle's ``close`` does nothing, so no
    context frees the model another context still runs on; the model lives as long as the
    process (the pool's contexts do too).
    """

    _swap = threading.Lock()

    def __init__(self, path: Path, gpu_layers: int = 0, repack: bool = True,
                 batch_tokens: int = 128) -> None:
        import llama_cpp
        from llama_cpp import _internals

        self.path = path
        self.gpu_layers = gpu_layers
        # tokens evaluated per step (llama.cpp's n_ubatch). Each context reserves a work buffer
        # in proportion, and a long prompt fills it: 303 MB per 1.5B context at 512 (the
        # default), 76 MB at 128, which reads a prompt about as fast on a CPU
        self.batch_tokens = batch_tokens
        params = llama_cpp.llama_model_default_params()
        params.n_gpu_layers = 0x7FFFFFFF if gpu_layers == -1 else gpu_layers
        params.use_mmap = True
        # repack=False: the weights stay in the (shared, file-backed) mmap; the faster kernels
        # that need the interleaved copy are not used
        params.use_extra_bufts = repack
        self._params = params
        self._model = _internals.LlamaModel(path_model=str(path), params=params, verbose=False)

    def context(self, n_ctx: int, threads: int) -> Any:  # -> llama_cpp.Llama
        import llama_cpp.llama as llama_module
        from llama_cpp import Llama

        shared = self._model

        class Borrowed:
            """The shared model for one ``Llama`` (which closes it when it is closed)."""

            def __init__(self, **_: Any) -> None:
                pass

            def __getattr__(self, name: str) -> Any:
                return getattr(shared, name)

            def close(self) -> None:
                pass

        with self._swap, _patched(llama_module.internals, "LlamaModel", Borrowed):
            return Llama(str(self.path), n_ctx=n_ctx, n_threads=threads,
                         n_threads_batch=threads, n_gpu_layers=self.gpu_layers,
                         n_ubatch=self.batch_tokens, verbose=False)


def load_cache(llm: Any, state: Any) -> None:
    """``Llama.load_state`` without its logits: that writes the state's tokens x vocabulary
    floats into the context's score table (121 MB per context for the 1.5B and a 200-token
    prompt), a table only ``logits_all`` reads; here only the tokens and the KV cache are
    set."""
    import ctypes

    import llama_cpp

    llm.input_ids = state.input_ids.copy()
    llm.n_tokens = state.n_tokens
    llm._requires_eval = True  # as load_state: the last token is evaluated again for its logits
    size = state.llama_state_size
    data = (ctypes.c_uint8 * size).from_buffer_copy(state.llama_state)
    if llama_cpp.llama_state_set_data(llm._ctx.ctx, data, size) != size:
        raise RuntimeError("llama.cpp refused the KV cache state")


@contextlib.contextmanager
def _patched(owner: Any, name: str, value: Any) -> Iterator[None]:
    old = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, old)


class LlmPool:
    """The embedded backend: llama.cpp in this process, a context per call slot."""

    backend = "embedded"

    def __init__(self, model: Path, size: int, threads: int = 2, context_tokens: int = 2048,
                 gpu_layers: int = 0, system_prompt: str = "", greeting: str = "",
                 tools: list[dict] | None = None, repack: bool = True,
                 batch_tokens: int = 128) -> None:
        self.system_prompt = system_prompt
        self.greeting = greeting
        self.tools = tools or None
        self.model = SharedModel(model, gpu_layers, repack, batch_tokens)
        self._free: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.size = size
        for _ in range(size):
            self._free.put(self.model.context(context_tokens, threads))
        # Tool routing has its own context (shared by the calls, one turn at a time): with
        # the conversation in its prompt the small model answers in words and never calls a
        # tool (bench/tool_choice.py); its prefix (system prompt + tools) stays cached.
        self._router = None if not self.tools else self.model.context(1024, threads)
        self._router_lock = threading.Lock()

    def close(self) -> None:
        """Nothing to stop: the contexts go with the process."""

    def warm_up(self) -> None:
        """Evaluate the system prompt (and greeting) in every context: every call's first
        request shares that prefix, so no caller waits for it."""
        prefix = [{"role": "system", "content": self.system_prompt}]
        if self.greeting:
            prefix.append({"role": "assistant", "content": self.greeting})
        held = [self._free.get() for _ in range(self.size)]
        try:
            first = held[0]
            for _ in stream_chat(first, [*prefix, {"role": "user", "content": "Hello"}],
                                 max_tokens=4, temperature=0.0):
                pass
            # the other contexts get a copy of that KV cache (same model, same size): the
            # 1.5B model read a 450-token prompt in ~2.8 s, once per context
            state = first.save_state()
            for llm in held[1:]:
                load_cache(llm, state)
            del state
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
        messages = [{"role": "system", "content": self.system_prompt},
                    {"role": "user", "content": caller_text}]
        with self._router_lock:
            return first_tool_call(stream_chat(self._router, messages, 64, 0.0, cancelled,
                                               self.tools))

    def prefill(self, llm: Any, messages: list[dict[str, str]]) -> None:
        """Read ``messages`` into context ``llm`` ahead of a request that starts with them:
        llama.cpp keeps the longest common token prefix, so that request reads only the rest.
        (One token is generated: llama-cpp-python has no evaluate-only chat call.)"""
        for _ in stream_chat(llm, messages, 1, 0.0):
            pass

    def acquire(self, timeout: float = 5.0):  # -> Llama
        return self._free.get(timeout=timeout)

    def release(self, llm) -> None:
        self._free.put(llm)


def first_tool_call(pieces: Iterator[str]) -> str | None:
    """Read a reply only as far as its start tells whether it is a tool call: the call's text
    (JSON) or None (words). The stream is closed either way."""
    from pipeline.reply.tools import looks_like_tool_call

    parts: list[str] = []
    with contextlib.closing(pieces):  # type: ignore[type-var]
        for piece in pieces:
            parts.append(piece)
            if looks_like_tool_call("".join(parts)) is False:
                return None
    text = "".join(parts)
    return text if looks_like_tool_call(text) else None


def stream_chat(llm, messages: list[dict[str, str]], max_tokens: int, temperature: float,
                cancelled: Callable[[], bool] = lambda: False,
                tools: list[dict] | None = None,
                watch: Callable[[Callable[[], None]], Callable[[], None]] | None = None,
                ) -> Iterator[str]:
    """Yield text pieces as they are generated; stops between tokens once ``cancelled()``.
    With ``tools``, the model's chat template describes them and a reply may be a tool call
    (a JSON object, see pipeline/reply/tools.py); the caller decides what to do with it.

    ``llm`` is a llama.cpp context or a server backend's per-call handle (``RemoteChat``):
    both answer ``create_chat_completion``. ``watch(abort)`` is handed a server stream's
    abort (it returns a function that forgets it): a barge-in closes the connection at once
    instead of at the next token. A server's failure raises ``LlmError``."""
    extra = {"tools": tools} if tools else {}
    stream = llm.create_chat_completion(messages, stream=True, max_tokens=max_tokens,
                                        temperature=temperature, top_p=0.9, repeat_penalty=1.1,
                                        **extra)
    abort = getattr(stream, "abort", None)
    unwatch = watch(abort) if watch is not None and abort is not None else None
    try:
        for chunk in stream:
            if cancelled():
                return
            piece = chunk["choices"][0]["delta"].get("content")
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
