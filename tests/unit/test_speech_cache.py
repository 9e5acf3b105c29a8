"""The cache of recurring speech (pipeline/tts/cache.py), around a counting voice."""

from __future__ import annotations

import pytest

from pipeline.tts.base import Speech, TtsUnavailable
from pipeline.tts.cache import CachedTts


class CountingVoice:
    """Speech of 1000 bytes per word; counts syntheses; fails texts with "down"."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def synthesize(self, text: str):
        self.calls.append(text)
        if "down" in text:
            raise TtsUnavailable("refused", "server down")
        n = len(text.split())
        yield Speech(bytes(1000 * n), [1000 * (i + 1) for i in range(n)])

    def warm_up(self) -> None:
        self.calls.append("<warm>")


def said(tts, text):
    return [(len(s.pcm), s.word_ends) for s in tts.synthesize(text)]


def test_phrases_are_synthesized_at_warm_up_and_never_again():
    voice = CountingVoice()
    tts = CachedTts(voice, ["Thank you for calling Riverside Dental, how can I help you today?",
                            "Sure."])
    tts.warm_up(wait=True)
    assert voice.calls == ["<warm>", "Thank you for calling Riverside Dental, how can I help "
                                     "you today?", "Sure."]
    for _ in range(3):  # a long pinned phrase too, and white space does not matter
        assert said(tts, "Thank you for calling  Riverside Dental, how can I help you today?")
    assert len(voice.calls) == 3 and tts.hits == 3


def test_short_clauses_are_kept_long_ones_and_failures_are_not():
    voice = CountingVoice()
    tts = CachedTts(voice, max_words=6)
    assert said(tts, "I'm sorry,") == said(tts, "I'm sorry,") == [(2000, [1000, 2000])]
    long = "The clinic opens at nine in the morning on weekdays."
    said(tts, long), said(tts, long)
    with pytest.raises(TtsUnavailable):
        said(tts, "server down")
    with pytest.raises(TtsUnavailable):
        said(tts, "server down")
    assert voice.calls == ["I'm sorry,", long, long, "server down", "server down"]


def test_a_caller_cannot_change_the_cached_speech():
    tts = CachedTts(CountingVoice())
    (s,) = tts.synthesize("Sure.")
    s.word_ends.append(99)
    assert said(tts, "Sure.") == [(1000, [1000])]


def test_the_least_recently_used_clause_goes_first_within_the_bound():
    voice = CountingVoice()
    tts = CachedTts(voice, max_bytes=5000)
    for text in ("one two", "three four", "five"):  # 5000 bytes: all fit
        said(tts, text)
    said(tts, "one two")  # used again: now the newest
    said(tts, "six seven")  # 7000 bytes: "three four" (oldest) goes
    voice.calls.clear()
    for text in ("one two", "five", "six seven", "three four"):
        said(tts, text)
    assert voice.calls == ["three four"]


def test_a_voice_down_at_start_leaves_the_phrase_for_later():
    voice = CountingVoice()
    tts = CachedTts(voice, ["Hello.", "We are down for maintenance."])
    tts.warm_up(wait=True)  # no exception: the call goes on without the cached phrase
    assert said(tts, "Hello.") and voice.calls.count("Hello.") == 1
