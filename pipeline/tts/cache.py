"""Speech that recurs, synthesized once: the greeting, the fallback, the apology, the holding
phrase and short clauses like "Sure." or "I'm sorry," are said on most calls; each time they
were synthesized anew, and the caller waited for it.

``CachedTts`` wraps any voice (``TextToSpeech``). One instance serves one voice with one set
of settings, so the text alone is the key. Phrases given at start are kept for the process's
life; other short clauses (up to ``max_words``) are kept least-recently-used, bounded by
``max_bytes`` of audio. A failed synthesis is never cached.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator

from pipeline.tts.base import Speech, TextToSpeech, TtsUnavailable

log = logging.getLogger(__name__)


class CachedTts:
    """A ``TextToSpeech`` that remembers what it synthesized (see the module's doc)."""

    def __init__(self, voice: TextToSpeech, phrases: Iterable[str] = (), max_words: int = 6,
                 max_bytes: int = 16 << 20) -> None:
        self.voice = voice
        self.phrases = [p for p in dict.fromkeys(phrases) if p.strip()]
        self.max_words = max_words
        self.max_bytes = max_bytes
        self._pinned: dict[str, list[Speech]] = {}
        self._recent: OrderedDict[str, list[Speech]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def synthesize(self, text: str) -> Iterator[Speech]:
        key = " ".join(text.split())
        with self._lock:
            found = self._pinned.get(key)
            if found is None and (found := self._recent.get(key)) is not None:
                self._recent.move_to_end(key)
            if found is not None:
                self.hits += 1
            else:
                self.misses += 1
        if found is None:
            found = list(self.voice.synthesize(text))  # TtsUnavailable: nothing is kept
            if found and len(key.split()) <= self.max_words:
                self._keep(key, found)
        for s in found:
            yield Speech(s.pcm, list(s.word_ends))

    def _keep(self, key: str, speech: list[Speech]) -> None:
        size = sum(len(s.pcm) for s in speech)
        with self._lock:
            if key in self._pinned or key in self._recent or size > self.max_bytes:
                return
            self._recent[key] = speech
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, old = self._recent.popitem(last=False)
                self._bytes -= sum(len(s.pcm) for s in old)

    def warm_up(self, wait: bool = False) -> None:
        """Warm the voice, then synthesize the phrases given at start on a thread of their own
        (the gateway is ready meanwhile: a phrase said before it is cached is synthesized
        then, as without the cache). A remote voice that is down leaves them to be
        synthesized when said."""
        self.voice.warm_up()
        thread = threading.Thread(target=self._pin_phrases, name="speech-cache", daemon=True)
        thread.start()
        if wait:
            thread.join()

    def _pin_phrases(self) -> None:
        for phrase in self.phrases:
            key = " ".join(phrase.split())
            try:
                speech = list(self.voice.synthesize(phrase))
            except TtsUnavailable as e:
                log.warning("not cached (text-to-speech failed: %s): %r", e, phrase)
                continue
            with self._lock:
                self._pinned[key] = speech
