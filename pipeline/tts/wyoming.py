"""Text-to-speech on a Wyoming server (e.g. ``wyoming-piper``): one ``synthesize`` request per
clause, its audio resampled to the bridge rate.

The same ``synthesize(text) -> Iterator[Speech]`` as ``PiperTts``, without word timings (the
protocol carries none: a barge-in's heard words are then estimated from the clause's
length). Where the server's ``info`` offers streaming synthesis, the clause goes out as a
``synthesize-start/-chunk/-stop`` stream; the worker already cuts the reply into clauses, so
either way one clause comes back as one ``Speech``. A failure raises ``TtsUnavailable``: the
reply worker skips the clause and notes it in the turn's record. A circuit breaker shared by
the process's calls stops asking a server that failed 3 times in a row, for 5 s (each
clause would otherwise wait out ``timeout``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

import numpy as np
import soxr

from pipeline.audio.frames import BRIDGE_RATE, float_to_int16
from pipeline.breaker import CircuitBreaker
from pipeline.tts.base import Speech, TtsUnavailable
from pipeline.wyoming.client import ServiceError, exchange, guarded, parse_uri, speech_breaker
from pipeline.wyoming.messages import AudioReader, supports_streaming, synthesize_request
from pipeline.wyoming.protocol import Event

log = logging.getLogger(__name__)


def to_bridge(segments: list[tuple[int, np.ndarray]], volume: float = 1.0) -> bytes:
    """16 kHz PCM16 of int16 segments at their own rates, scaled by ``volume`` (Piper's
    servers send full scale; the in-process voice is scaled the same way)."""
    out = []
    for rate, pcm in segments:
        x = pcm.astype(np.float32) * (volume / 32768.0)
        if rate != BRIDGE_RATE and x.size:
            x = soxr.resample(x, rate, BRIDGE_RATE, quality="HQ")
        out.append(float_to_int16(np.asarray(x)).tobytes())
    return b"".join(out)


class WyomingTts:
    def __init__(self, uri: str, timeout: float = 5.0, volume: float = 0.8, voice: str = "",
                 on_error: Callable[[str], None] = lambda kind: None,
                 breaker: CircuitBreaker | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.address = parse_uri(uri)
        self.breaker = breaker or speech_breaker()
        self.clock = clock
        self.name = f"wyoming:{uri}"
        self.timeout = timeout
        self.volume = volume
        self.voice = voice
        self.word_timing = False
        self.streaming: bool | None = None  # learnt from the server's info at first use
        self._on_error = on_error

    def synthesize(self, text: str) -> Iterator[Speech]:
        """The speech of ``text`` (one ``Speech``); raises ``TtsUnavailable``."""
        if not text.strip():
            return
        try:
            with guarded(self.breaker, self.address, self.clock):
                if self.streaming is None:
                    self.streaming = self._ask_streaming()
                reader = AudioReader(self.streaming)
                exchange(self.address, synthesize_request(text, self.streaming, self.voice),
                         reader.feed, self.timeout)
        except ServiceError as e:
            self._on_error(e.kind)
            raise TtsUnavailable(e.kind, str(e)) from None
        pcm = to_bridge(reader.segments, self.volume)
        if pcm:
            yield Speech(pcm)

    def _ask_streaming(self) -> bool:
        info: list[Event] = []

        def done(ev: Event) -> bool:
            if ev.type == "info":
                info.append(ev)
            return bool(info)

        exchange(self.address, [Event("describe")], done, self.timeout)
        streaming = supports_streaming(info[0])
        log.info("text-to-speech server %s: %s synthesis", self.address.uri,
                 "streaming" if streaming else "whole-text")
        return streaming

    def warm_up(self) -> None:
        """Check the server answers (and learn whether it streams); a server still starting
        is not fatal: clauses are skipped until it is up."""
        try:
            for _ in self.synthesize("Hello."):
                pass
        except TtsUnavailable as e:
            log.warning("text-to-speech server not answering yet: %s", e)
