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
import functools
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pipeline.llm.base import ChatReply, Watch
from pipeline.llm.chat import first_tool_call, pieces_of, stream_chat

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
    reads_ahead = True

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
        contexts = [self.model.context(context_tokens, threads) for _ in range(size)]
        for ctx in contexts:
            self._free.put(ctx)
        # a model without a chat template of its own is asked in llama-cpp-python's chat
        # format, which closes every message: it could only answer an opening anew
        self.continues = bool(contexts and contexts[0].metadata.get("tokenizer.chat_template"))
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

    def prefill(self, llm: Any, messages: list[dict[str, str]], open_turn: bool = False,
                stop: Callable[[], bool] = lambda: False) -> None:
        """Read ``messages`` into context ``llm`` ahead of a request that starts with them:
        llama.cpp keeps the longest common token prefix, so that request reads only the rest.
        ``open_turn``: the last message is not closed (its words may go on), so a request
        whose last message starts with them reads only what follows. ``stop()`` is asked
        between steps of ``PREFILL_STEP`` tokens: reading ahead gives way at once (within a
        step, ~0.1 s) to a request that cannot wait."""
        keep_moved_history(llm, messages)
        tokens = open_prompt(llm, messages) if open_turn else None
        if tokens is None:  # no template of its own: llama-cpp-python's chat format reads it
            for _ in stream_chat(llm, messages, 1, 0.0):
                pass
            return
        read_tokens(llm, tokens, stop)

    def acquire(self, timeout: float = 5.0) -> Any:  # -> Llama
        return self._free.get(timeout=timeout)

    def release(self, llm: Any) -> None:
        self._free.put(llm)

    def stream(self, llm: Any, messages: list[dict[str, str]], max_tokens: int,
               temperature: float, cancelled: Callable[[], bool] = lambda: False,
               watch: Watch | None = None, opening: str = "") -> ChatReply:
        """The reply, after the context's cache was moved to where ``messages`` need it
        (``keep_moved_history``): the request reads only its new lines."""
        keep_moved_history(llm, messages)
        cached = cached_tokens(llm)
        pieces = (go_on(llm, messages, opening, max_tokens, temperature, cancelled) if opening
                  else stream_chat(llm, messages, max_tokens, temperature, cancelled,
                                   watch=watch))
        return ChatReply(pieces, read=lambda: tokens_read(llm, cached))


def go_on(llm: Any, messages: list[dict[str, str]], opening: str, max_tokens: int,
          temperature: float, cancelled: Callable[[], bool] = lambda: False) -> Iterator[str]:
    """The reply to ``messages`` after its ``opening`` words (already said), streamed as
    ``stream_chat`` streams a reply. Only for a model with a chat template of its own."""
    rendered = _rendered(llm, messages)
    if rendered is None:
        raise ValueError("the model has no chat template: it cannot go on from an opening")
    prompt = _tokens(llm, rendered + opening)
    stream = llm.create_completion(prompt, stream=True, max_tokens=max_tokens,
                                   temperature=temperature, top_p=0.9, repeat_penalty=1.1)
    yield from pieces_of(llm, stream, lambda chunk: chunk["choices"][0]["text"], cancelled)


def cached_tokens(llm: Any) -> Any:
    """The tokens in an embedded context's cache (a copy); None for a server's handle."""
    ids = getattr(llm, "input_ids", None)
    return None if ids is None else ids[:llm.n_tokens].copy()


def tokens_read(llm: Any, cached: Any) -> int | None:
    """At a request's first words: the tokens it read that were not in ``cached`` (from
    ``cached_tokens`` before it), the prompt's and any generated before those words."""
    if cached is None:
        return None
    now = llm.input_ids[:llm.n_tokens]
    return len(now) - _common(now, cached)


_CUT = "\u2063\u2063cut\u2063\u2063"  # invisible separators: no caller's words hold them


def _rendered(llm: Any, messages: list[dict[str, str]]) -> str | None:
    """``messages`` as the model's chat template writes them for a request (its reply
    started), as llama-cpp-python renders a chat request; None if the model has no
    template of its own."""
    template = llm.metadata.get("tokenizer.chat_template")
    if not template or not messages:
        return None

    def special(token: int) -> str:
        return "" if token < 0 else llm.detokenize([token], special=True).decode(
            "utf-8", errors="ignore")

    fmt = _formatter(template, special(llm.token_eos()), special(llm.token_bos()))
    return fmt(messages=messages).prompt


@functools.lru_cache(maxsize=4)
def _formatter(template: str, eos: str, bos: str) -> Any:
    """The chat template compiled once per model (compiling it took longer than rendering)."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    return Jinja2ChatFormatter(template, eos, bos)


def _tokens(llm: Any, text: str) -> list[int]:
    return llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)


def open_prompt(llm: Any, messages: list[dict[str, str]]) -> list[int] | None:
    """The tokens of ``messages`` up to the end of the last message's content (not closed,
    no reply started); None if the model has no template of its own."""
    last = {**messages[-1], "content": messages[-1]["content"] + _CUT} if messages else {}
    text = _rendered(llm, [*messages[:-1], last])
    cut = -1 if text is None else text.find(_CUT)
    return None if text is None or cut < 0 else _tokens(llm, text[:cut])


PREFILL_STEP = 8
"""Tokens read per step when reading ahead (~0.1 s for the 1.5B on 2 cores): the longest a
request that cannot wait waits for it."""


def read_tokens(llm: Any, tokens: list[int], stop: Callable[[], bool]) -> None:
    """Evaluate ``tokens`` into ``llm``'s cache after the part it already holds, a step at a
    time, until they are all read or ``stop()``. What was read stays a valid cache prefix."""
    import numpy as np

    have = _common(np.asarray(tokens, dtype=np.intc), llm.input_ids[:llm.n_tokens])
    if have < llm.n_tokens:
        llm._ctx.kv_cache_seq_rm(0, have, -1)
        llm.n_tokens = have
    for at in range(have, len(tokens), PREFILL_STEP):
        if stop():
            return
        llm.eval(tokens[at:at + PREFILL_STEP])


MOVED_MIN = 32
"""Tokens of the prompt that must follow its cached start, further on in the cache, to move
them: fewer are read again rather than searched for."""


def keep_moved_history(llm: Any, messages: list[dict[str, str]]) -> int:
    """Before a request to embedded context ``llm``: when the prompt's history window has
    moved (its oldest lines dropped), the lines still in it are in the cache, later on. Drop
    the cached lines that left the window and shift the rest back into place, as llama.cpp's
    server does with ``--cache-reuse``: the request then reads only its new lines, where it
    would read the whole history again (seconds: ~18 ms a token for the 1.5B on 2 cores).
    Returns the tokens kept that way (0: nothing had moved, or ``llm`` is a server's handle:
    a server shifts its own cache)."""
    import llama_cpp
    import numpy as np

    if cached_tokens(llm) is None:
        return 0
    ctx = llm._ctx
    if ctx.memory is None or not llama_cpp.llama_memory_can_shift(ctx.memory):
        return 0
    text = _rendered(llm, messages)
    if text is None:
        return 0
    prompt = np.asarray(_tokens(llm, text), dtype=np.intc)
    cached = llm.input_ids[:llm.n_tokens].copy()
    start = _common(prompt, cached)
    rest = prompt[start:start + MOVED_MIN]
    if len(rest) < MOVED_MIN or len(cached) - start <= MOVED_MIN:
        return 0
    windows = np.lib.stride_tricks.sliding_window_view(cached[start + 1:], MOVED_MIN)
    found = (windows == rest).all(axis=1).nonzero()[0]
    if not len(found):
        return 0
    at = start + 1 + int(found[0])
    kept = _common(prompt[start:], cached[at:])
    if not ctx.kv_cache_seq_rm(0, start, at):
        return 0
    ctx.kv_cache_seq_shift(0, at, at + kept, start - at)
    ctx.kv_cache_seq_rm(0, start + kept, -1)
    llm.input_ids[start:start + kept] = cached[at:at + kept]
    llm.n_tokens = start + kept
    return kept


def _common(a: Any, b: Any) -> int:
    """Length of the common start of two token arrays."""
    n = min(len(a), len(b))
    differ = (a[:n] != b[:n]).nonzero()[0]
    return int(differ[0]) if len(differ) else n
