"""What a voice is: the ``TextToSpeech`` interface, the speech it gives, and its failure."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol


@dataclass
class Speech:
    """One clause's audio (16 kHz PCM16) and where each of its spoken words ends."""

    pcm: bytes
    word_ends: list[int] = field(default_factory=list)
    """Sample offsets (16 kHz) of each phonemized word's end; empty when unknown. espeak may
    join or split words ("in the" -> one, "$60" -> two), so the count can differ from the
    text's words by a few."""


ONSET_LEVEL = 300
"""A PCM16 sample this loud or louder is speech (~-40 dBFS); Piper's quiet lead-in is below."""
ONSET_MARGIN = 320
"""Samples (20 ms) kept before the first loud one: a soft first consonant is not cut."""


def from_onset(speech: Speech) -> Speech:
    """``speech`` from just before its first loud sample. Piper starts every clause with
    40-65 ms of near-silence; before a reply's first clause that is part of the caller's
    wait."""
    import numpy as np

    x = np.frombuffer(speech.pcm, dtype="<i2")
    loud = np.flatnonzero(np.abs(x.astype(np.int32)) >= ONSET_LEVEL)
    cut = 0 if not len(loud) else max(0, int(loud[0]) - ONSET_MARGIN)
    if cut == 0:
        return speech
    return Speech(speech.pcm[2 * cut:], [max(0, e - cut) for e in speech.word_ends])


class TextToSpeech(Protocol):
    """A voice, shared by every call: ``PiperTts`` in process, ``WyomingTts`` on a server."""

    def synthesize(self, text: str) -> Iterator[Speech]:
        """The speech of ``text`` at the bridge rate; a remote voice may raise
        ``TtsUnavailable``."""
        ...

    def warm_up(self) -> None:
        ...


class TtsUnavailable(RuntimeError):
    """A remote voice could not synthesize (server down, refusing, too slow, or dying
    mid-answer). Not a bug: the clause is skipped and the call goes on."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        """What failed, e.g. ``refused`` or ``timeout`` (``pipeline.wyoming.client.KINDS``)."""
