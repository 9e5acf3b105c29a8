"""Cut a stream of LLM text into clauses that can be spoken as soon as they are complete.

A clause ends at a sentence end (. ! ? ;) or, once it has ``min_words``, at a comma, colon or
dash; a run-on clause is cut at ``max_words``. The first clause of a reply may be cut earlier
(``first_max_words``) because the caller is waiting for it. Numbers like "9.30" or "$1,200"
never split.
"""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"[.!?;](?=\s)")
_CLAUSE_END = re.compile(r"[,:\u2014\u2013](?=\s)")
_MARKUP = re.compile(r"[*_#`~>|]+|\[[^\]]*\]|[\[\]]")  # markdown, [notes], stray brackets
_BULLET = re.compile(r"(?m)^\s*(?:[-•]|\d+[.)])\s+")


def clean_for_speech(text: str) -> str:
    """Drop markdown/emoji the model may emit despite the prompt, and fold white space."""
    text = _BULLET.sub(" ", _MARKUP.sub(" ", text))
    text = "".join(ch for ch in text if ch.isascii() or ch.isalpha() or ch in "\u2014\u2013")
    return " ".join(text.split())


class ClauseChunker:
    def __init__(self, min_words: int = 3, max_words: int = 24,
                 first_max_words: int = 12) -> None:
        self.min_words = min_words
        self.max_words = max_words
        self.first_max_words = first_max_words
        self._buf = ""
        self._emitted = 0

    def feed(self, piece: str) -> list[str]:
        """Add generated text; return the clauses it completed."""
        self._buf += piece
        out = []
        while (clause := self._take()) is not None:
            out.append(clause)
        return out

    def flush(self) -> list[str]:
        """End of generation: whatever is left is the last clause."""
        rest = clean_for_speech(self._buf)
        self._buf = ""
        if rest and any(c.isalnum() for c in rest):
            self._emitted += 1
            return [rest]
        return []

    def _take(self) -> str | None:
        buf = self._buf
        cut = None
        m = _SENTENCE_END.search(buf)
        if m and _words(buf[:m.end()]) >= 1:
            cut = m.end()
        else:
            for m in _CLAUSE_END.finditer(buf):
                if _words(buf[:m.end()]) >= self.min_words:
                    cut = m.end()
                    break
        limit = self.first_max_words if self._emitted == 0 else self.max_words
        if cut is None and _words(buf) > limit and buf[-1:].isspace():
            # a run-on clause: cut after the limit's word, at a space the model already sent
            words = buf.split()
            cut = _index_after_words(buf, limit) if len(words) > limit else None
        if cut is None:
            return None
        clause = clean_for_speech(buf[:cut])
        self._buf = buf[cut:]
        if not any(c.isalnum() for c in clause):
            return self._take() if self._buf else None
        self._emitted += 1
        return clause


def _words(s: str) -> int:
    return len(s.split())


def _index_after_words(s: str, n: int) -> int:
    count = 0
    in_word = False
    for i, ch in enumerate(s):
        if ch.isspace():
            if in_word:
                count += 1
                if count == n:
                    return i
            in_word = False
        else:
            in_word = True
    return len(s)

