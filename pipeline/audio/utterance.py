"""One bot utterance: its clauses, its audio, and what the caller actually heard of it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline.audio.frames import PlayoutBuffer


@dataclass
class Clause:
    text: str
    samples: int
    word_ends: list[int] = field(default_factory=list)
    """Where each spoken word ends, in samples from the clause's start (TTS timings)."""


@dataclass
class Utterance:
    """Handle for one utterance. ``interrupt()`` stops its generation and playout at once and
    returns the words that had been played; the generating thread polls ``cancelled``."""

    id: int
    playout: PlayoutBuffer
    held: bool = False
    """A speculative utterance keeps its audio until ``release()`` (the turn committed)."""
    clauses: list[Clause] = field(default_factory=list)
    generated_text: str = ""
    finished_generating: bool = False
    interrupted: bool = False
    withheld: bool = False
    """The reply was ended by a refusal instead of a secret (pipeline/reply/guard.py)."""
    after_played: Callable[[], None] | None = None
    """Run (listener thread) once the whole utterance has been played: never if cut off."""
    _cancel: threading.Event = field(default_factory=threading.Event)
    _decided: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _pending: list[bytes] = field(default_factory=list)
    _on_cancel: list[Callable[[], None]] = field(default_factory=list)

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def wait_cancelled(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the utterance to be cancelled (True if it was)."""
        return self._cancel.wait(timeout)

    def on_cancel(self, fn: Callable[[], None]) -> Callable[[], None]:
        """Run ``fn`` (on the interrupting thread) when the utterance is interrupted, or now if
        it was; returns a function that forgets it. For work that polling cannot stop at once,
        e.g. a server stream blocked in a read."""
        with self._lock:
            if not self._cancel.is_set():
                self._on_cancel.append(fn)
                return lambda: self._forget(fn)
        fn()
        return lambda: None

    def _forget(self, fn: Callable[[], None]) -> None:
        with self._lock:
            if fn in self._on_cancel:
                self._on_cancel.remove(fn)

    def add_clause(self, text: str, pcm: bytes, word_ends: list[int] | None = None) -> bool:
        """Queue a synthesized clause for playout; False if the utterance was cancelled."""
        with self._lock:
            if self._cancel.is_set():
                return False
            self.clauses.append(Clause(text, len(pcm) // 2, word_ends or []))
            if self.held:
                self._pending.append(pcm)
            else:
                self.playout.push(self.id, pcm)
        return True

    def release(self) -> None:
        """Start playing a held utterance (what is synthesized so far, then the rest)."""
        with self._lock:
            self.held = False
            for pcm in self._pending:
                self.playout.push(self.id, pcm)
            self._pending.clear()
        self._decided.set()

    def wait_released(self, timeout: float | None = None) -> bool:
        """Block until a held utterance is released (True) or cancelled (False)."""
        if not self.held:
            return not self.cancelled
        self._decided.wait(timeout)
        return not self.cancelled and not self.held

    def interrupt(self) -> str:
        with self._lock:
            self._cancel.set()
            self.interrupted = True
            self._pending.clear()
            hooks, self._on_cancel = self._on_cancel, []
        self._decided.set()
        for fn in hooks:
            fn()
        self.playout.flush(self.id)
        return self.heard_text()

    def spoken_text(self) -> str:
        """The text of every clause queued to be spoken (all of it, when played in full)."""
        return " ".join(c.text for c in self.clauses if c.text)

    def heard_text(self) -> str:
        return heard_words(self.clauses, self.playout.played(self.id))

    def done_playing(self) -> bool:
        return (self.finished_generating and not self.held
                and self.playout.queued(self.id) == 0)


def heard_words(clauses: list[Clause], played: int) -> str:
    """The words of ``clauses`` covered by ``played`` samples. In a clause cut in the middle,
    the words whose audio ended before the cut (TTS word timings; when the phonemizer's word
    count differs from the text's, the same share of the text's words); without timings, the
    share of its words proportional to the share of its audio played."""
    out: list[str] = []
    left = played
    for c in clauses:
        if left >= c.samples:
            out.append(c.text)
            left -= c.samples
            continue
        words = c.text.split()
        if c.word_ends:
            done = sum(1 for e in c.word_ends if e <= left)
            n = done * len(words) // len(c.word_ends)
        else:
            n = int(len(words) * left / c.samples) if c.samples else 0
        if n:
            out.append(" ".join(words[:n]))
        break
    return " ".join(out)
