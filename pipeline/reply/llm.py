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


INTERRUPTED_NOTE = ("The caller interrupted you there: they heard only the words above. "
                    "Answer their new question; do not repeat this note.")


def _words(text: str) -> list[str]:
    return "".join(c.lower() if c.isalnum() else " " for c in text).split()


_NOTE_GRAMS = {tuple(_words(INTERRUPTED_NOTE)[i:i + 4])
               for i in range(len(_words(INTERRUPTED_NOTE)) - 3)}


def repeats_note(clause: str) -> bool:
    """True if ``clause`` recites our interruption note (4 words in a row of it): after a run
    of interruptions the 0.5B model once read the note aloud (bench/turns.py, echo call)."""
    w = _words(clause)
    return any(tuple(w[i:i + 4]) in _NOTE_GRAMS for i in range(len(w) - 3))


class ChatHistory:
    """What the caller and the bot said, as the model will see it next turn.

    A bot turn is stored as the words the caller actually heard; an interrupted one is marked,
    so the model knows it was cut off.
    """

    def __init__(self, system_prompt: str, max_turns: int) -> None:
        self.system_prompt = system_prompt
        self.max_turns = max_turns
        self.turns: list[dict[str, str]] = []
        self._start = 0  # first turn the model still sees
        self._lock = threading.Lock()

    def add_user(self, text: str) -> None:
        with self._lock:
            self.turns.append({"role": "user", "content": text})

    def add_bot(self, heard: str, interrupted: bool = False) -> None:
        text = heard.strip()
        if not any(c.isalnum() for c in text):
            # nothing the caller could hear as words ("...", or cut before the first word):
            # an assistant line of "..." teaches the small model to answer "..." from then on
            return
        with self._lock:
            if interrupted:
                # the note is a separate system line: inside the assistant's own words, the
                # model learned to repeat it aloud
                self.turns.append({"role": "assistant", "content": text + " ..."})
                self.turns.append({"role": "system", "content": INTERRUPTED_NOTE})
            else:
                self.turns.append({"role": "assistant", "content": text})

    def retract_user(self) -> None:
        """Forget the last caller turn (its reply never sounded: the turn was merged)."""
        with self._lock:
            if self.turns and self.turns[-1]["role"] == "user":
                self.turns.pop()

    def recent(self) -> list[dict[str, str]]:
        """The conversation so far (no system prompt)."""
        with self._lock:
            return list(self.turns)

    def messages(self) -> list[dict[str, str]]:
        """The system prompt and the last turns, at most ``max_turns`` (user, bot, maybe a
        note: 3 lines each). The window's start moves only when the history outgrows it, and
        then by half of it at once, to a caller's line: a start that slid every turn changed
        the prompt right after the system prompt, so llama.cpp read the whole history again
        each turn (first token 2.7 s late in a long bench/media_faults call), where a fixed
        start leaves it only the new lines to read."""
        with self._lock:
            limit = 3 * self.max_turns + 1
            self._start = min(self._start, len(self.turns))
            if len(self.turns) - self._start > limit:
                start = len(self.turns) - (limit // 2 + 1)
                while start < len(self.turns) - 1 and self.turns[start]["role"] != "user":
                    start += 1
                self._start = start
            recent = self.turns[self._start:]
            while recent and recent[0]["role"] == "system":
                recent = recent[1:]
            return [{"role": "system", "content": self.system_prompt}, *recent]
