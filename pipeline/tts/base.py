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
