"""Speech-to-text on a Wyoming server (e.g. ``wyoming-faster-whisper``): the turn's audio
goes out as one ``transcribe`` request, its text comes back.

A whole-utterance backend like in-process Whisper (partials only at pauses), except that the
decoder is not ours: a partial asks the server too (``transcribe_if_idle`` does not know
whether it is idle), and failures are the network's: every one raises ``SttUnavailable``,
which the call turns into an unheard turn and a short apology (``pipeline/stt/transcriber.py``).
A circuit breaker shared by the process's calls stops asking a server that failed several
times in a row (3) for 5 s: the callers hear the apology at once instead of after
``timeout`` each turn; the cool-down is short because a refused request costs nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np

from pipeline.breaker import CircuitBreaker
from pipeline.stt.base import RATE, SttUnavailable, as_int16
from pipeline.stt.whisper import WhisperStream
from pipeline.wyoming.client import ServiceError, exchange, guarded, parse_uri, speech_breaker
from pipeline.wyoming.messages import TranscriptReader, transcribe_request

log = logging.getLogger(__name__)


class WyomingStt:
    streaming = False  # the server hears whole turns: partials only at pauses

    def __init__(self, uri: str, language: str = "en", timeout: float = 8.0,
                 on_error: Callable[[str], None] = lambda kind: None,
                 breaker: CircuitBreaker | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.address = parse_uri(uri)
        self.name = f"wyoming:{uri}"
        self.language = language
        self.breaker = breaker or speech_breaker()
        self.clock = clock
        self.timeout = timeout
        self._on_error = on_error
        """Told the ``ServiceError.kind`` of every failed request (the metrics count it)."""

    def transcribe(self, audio: np.ndarray) -> str:
        """Text of float32 16 kHz mono audio; raises ``SttUnavailable`` if the server fails."""
        if audio.size < 1600:  # under 0.1 s: nothing to hear (as the in-process backend)
            return ""
        reader = TranscriptReader()
        request = transcribe_request(as_int16(audio).astype("<i2").tobytes(), RATE,
                                     self.language)
        try:
            with guarded(self.breaker, self.address, self.clock):
                exchange(self.address, request, reader.feed, self.timeout)
        except ServiceError as e:
            self._on_error(e.kind)
            raise SttUnavailable(e.kind, str(e)) from None
        return reader.text or ""

    def transcribe_if_idle(self, audio: np.ndarray) -> str | None:
        return self.transcribe(audio)

    def stream(self) -> WhisperStream:
        return WhisperStream(self)  # type: ignore[arg-type] - needs only the two transcribes

    def warm_up(self) -> None:
        """Check the server answers; a server still starting is not fatal (calls apologise
        until it is up), so this only logs."""
        try:
            self.transcribe(np.zeros(RATE // 2, dtype=np.float32))
            log.info("speech-to-text server %s answers", self.address.uri)
        except SttUnavailable as e:
            log.warning("speech-to-text server not answering yet: %s", e)
