"""A language model's probability that the caller's message ends after the words heard so far:
the chance that the next token after them closes the sentence or the message (".", "?",
"!" or the chat template's end of message).

"Are you open on" -> ~0.000; "Are you open on Sunday" -> ~0.5; "had he married a more
amiable woman" -> ~0.1 (the 0.5B instruct model, no fine-tuning). LiveKit's turn detector
fine-tunes a Qwen2.5-0.5B for the same question; this asks the bundled instruct model as it
is. One context per process, its system prompt evaluated once; each question re-reads only
the caller's words (about 10-30 tokens).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

SYSTEM = ("You are the phone receptionist of a small business. Callers ask about opening "
          "hours, prices, orders and appointments.")
_ENDERS = (".", "?", "!")


class EndOfMessage:
    def __init__(self, model: Path, threads: int = 2, n_ctx: int = 512) -> None:
        from llama_cpp import Llama

        self._llm = Llama(str(model), n_ctx=n_ctx, n_threads=threads, verbose=False)
        self._vocab = self._llm.n_vocab()
        end = self._llm.tokenize(b"<|im_end|>", add_bos=False, special=True)
        if len(end) != 1:
            raise ValueError(f"{model.name}: no single <|im_end|> token (not a ChatML model)")
        self._enders = np.array(sorted({end[0], *self._sentence_enders()}))
        self._prefix = self._llm.tokenize(
            f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n".encode(),
            add_bos=False, special=True)
        self._lock = threading.Lock()

    def _sentence_enders(self) -> list[int]:
        """Tokens that are a sentence's last mark, alone or before line breaks ("?", ".\\n")."""
        out = []
        for i in range(self._vocab):
            piece = self._llm.detokenize([i]).decode("utf-8", "replace")
            if piece[:1] in _ENDERS and piece[1:].strip("\r\n") == "":
                out.append(i)
        return out

    def probability(self, text: str) -> float:
        """P(the message ends after ``text``); its own final mark is taken off first (the
        speech-to-text writes one at every pause)."""
        import llama_cpp

        words = text.strip().rstrip(".?!,;: ")
        with self._lock:
            llm = self._llm
            tokens = self._prefix + llm.tokenize(words.encode(), add_bos=False, special=False)
            keep = 0  # tokens already evaluated that are still right (the prefix, at least)
            limit = min(llm.n_tokens, len(tokens) - 1)
            while keep < limit and llm.input_ids[keep] == tokens[keep]:
                keep += 1
            llm.n_tokens = keep
            llm._ctx.kv_cache_seq_rm(-1, keep, -1)
            llm.eval(tokens[keep:])
            # llama-cpp-python's ``scores`` stays empty without logits_all: read the last row
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits(llm._ctx.ctx),
                                           shape=(self._vocab,)).astype(np.float64)
        logits -= logits.max()
        p = np.exp(logits)
        return float(p[self._enders].sum() / p.sum())
