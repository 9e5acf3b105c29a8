"""Cut a stream of LLM text into clauses that can be spoken as soon as they are complete.

A clause ends at a sentence end (. ! ? ;) or, once it has ``min_words``, at a comma, colon or
dash; a run-on clause is cut at ``max_words``. The caller is waiting for the opening of a reply
(its first ``first_max_words`` words): there a comma ends a clause after any word ("Yes,",
"Sorry,", "Riverside Dental,": synthesized in a few tens of ms, often cached) and a run-on
clause is cut at ``first_max_words``, so the next clause is ready before the first has played.
A reply that opens with one of ``names`` (the business's) has that name as its first clause.
Numbers like "9.30" or "$1,200" never split. ``cut`` ends a clause at the last whole word when
the speech queued before it is about to run out.
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
                 first_max_words: int = 12, names: tuple[str, ...] = ()) -> None:
        self.min_words = min_words
        self.names = tuple(n.lower() for n in names if n.strip())
        self.max_words = max_words
        self.first_max_words = first_max_words
        self._buf = ""
        self._words = 0  # words emitted so far

    def feed(self, piece: str) -> list[str]:
        """Add generated text; return the clauses it completed."""
        self._buf += piece
        out = []
        while (clause := self._take()) is not None:
            out.append(clause)
        return out

    def cut(self) -> list[str]:
        """The whole words so far as a clause, if there are ``min_words`` of them: the speech
        queued before is about to run out, and a pause mid-sentence is worse than a clause
        cut at a word."""
        buf = self._buf
        end = len(buf.rstrip())
        end = end if end < len(buf) else max(buf.rfind(" "), 0)  # a word still coming stays
        if _words(buf[:end]) < self.min_words:
            return []
        clause = clean_for_speech(buf[:end])
        if not any(c.isalnum() for c in clause):
            return []
        self._buf = buf[end:]
        self._words += _words(clause)
        return [clause]

    def flush(self) -> list[str]:
        """End of generation: whatever is left is the last clause."""
        rest = clean_for_speech(self._buf)
        self._buf = ""
        if rest and any(c.isalnum() for c in rest):
            return [rest]
        return []

    def _take(self) -> str | None:
        buf = self._buf
        cut = self._opening_name(buf) if self._words == 0 else None
        if cut is None:
            cut = self._punctuation(buf)
        limit = self.first_max_words if self._opening else self.max_words
        words = _words(buf)
        if cut is None and (words > limit or (words == limit and buf[-1:].isspace())):
            # a run-on clause: cut after the limit's word once it is whole: a space followed
            # it, or the next word has begun (a model's tokens mostly start with their space:
            # "The clinic is located at 12 River Street." waited for its full stop)
            cut = _index_after_words(buf, limit)
        if cut is None:
            return None
        clause = clean_for_speech(buf[:cut])
        self._buf = buf[cut:]
        if not any(c.isalnum() for c in clause):
            return self._take() if self._buf else None
        self._words += _words(clause)
        return clause

    @property
    def _opening(self) -> bool:
        """Still within the reply's first ``first_max_words`` words."""
        return self._words < self.first_max_words

    def _punctuation(self, buf: str) -> int | None:
        """Where the first clause of ``buf`` ends at punctuation, if it does yet."""
        m = _SENTENCE_END.search(buf)
        if m and _words(buf[:m.end()]) >= 1:
            return m.end()
        least = 1 if self._opening else self.min_words
        for m in _CLAUSE_END.finditer(buf):
            if _words(buf[:m.end()]) >= least:
                return m.end()
        return None

    def _opening_name(self, buf: str) -> int | None:
        """Where a name that opens the reply ends, once the next word has begun ("Riverside
        Dental Clinic's" is not the name)."""
        start = len(buf) - len(buf.lstrip())
        for name in self.names:
            end = start + len(name)
            if (buf[start:end].lower() == name and len(buf) > end + 1 and buf[end].isspace()
                    and not buf[end + 1:].isspace()):
                return end
        return None


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

