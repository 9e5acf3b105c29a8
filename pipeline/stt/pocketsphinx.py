"""PocketSphinx 5 (CMU Sphinx, the en-us model inside the wheel): a streaming recognizer.

Not a configured backend: its word error rate is several times Whisper's (see
``bench/wer.py``), so it only serves the benchmark, as the cheap streaming alternative a user
may weigh. It implements the same interface (``pipeline/stt/base.py``), so wiring it into
``[stt] backend`` would take one branch in ``pipeline.stt.whisper.make_stt``.

A PocketSphinx decoder holds both the model and the utterance state (it cannot share a model
between decoders), so each stream loads its own copy (~0.3 s, ~30 MB).
"""

from __future__ import annotations

import re
import threading
from typing import Any

import numpy as np

from pipeline.stt.base import RATE, StreamClock, SttModelError, Transcript, Word, as_int16

FRAME_RATE = 100  # PocketSphinx frames per second (its segment times)
_FILLER = re.compile(r"^(<.*>|\[.*\]|\+\+.*\+\+)$")  # <s>, <sil>, [NOISE], ++garbage++


def _decoder() -> Any:
    try:
        from pocketsphinx import Decoder
    except ImportError:
        raise SttModelError("pocketsphinx is not installed: pip install pocketsphinx==5.1.1") \
            from None
    return Decoder(samprate=RATE, loglevel="FATAL")


def _clean(word: str) -> str:
    return re.sub(r"\(\d+\)$", "", word)  # alternate pronunciations: "the(2)"


class PocketsphinxStt:
    streaming = True

    def __init__(self) -> None:
        self.name = "pocketsphinx:en-us"
        self._shared = _decoder()  # for transcribe(), one utterance at a time
        self._lock = threading.Lock()

    def stream(self) -> PocketsphinxStream:
        return PocketsphinxStream()

    def transcribe(self, audio: np.ndarray) -> str:
        return self._decode(audio, wait=True) or ""

    def transcribe_if_idle(self, audio: np.ndarray) -> str | None:
        return self._decode(audio, wait=False)

    def _decode(self, audio: np.ndarray, wait: bool) -> str | None:
        if audio.size < 1600:
            return ""
        if not self._lock.acquire(blocking=wait):
            return None
        try:
            d = self._shared
            d.start_utt()
            d.process_raw(as_int16(audio).tobytes(), full_utt=True)
            d.end_utt()
            hyp = d.hyp()
        finally:
            self._lock.release()
        return " ".join(_clean(w) for w in (hyp.hypstr if hyp else "").split())

    def warm_up(self) -> None:
        self.transcribe(np.zeros(RATE, dtype=np.float32))


class PocketsphinxStream(StreamClock):
    """One call's decoder (``SttStream``): a partial after every frame that changes it."""

    def __init__(self) -> None:
        self._d = _decoder()
        super().__init__()
        self._in_utt = False
        self._last = ""

    def feed(self, pcm: bytes | np.ndarray) -> Transcript | None:
        x = as_int16(pcm)
        if not len(x):
            return None
        if not self._in_utt:
            self._d.start_utt()
            self._in_utt = True
        self._d.process_raw(x.tobytes())
        self._position += len(x)
        return self.pause()

    def pause(self) -> Transcript | None:
        hyp = self._d.hyp() if self._in_utt else None
        text = " ".join(_clean(w) for w in (hyp.hypstr if hyp else "").split())
        if text == self._last:
            return None
        self._last = text
        return Transcript(text, False, self._turn_start, self._position)

    def end_turn(self) -> Transcript:
        words: list[Word] = []
        text = ""
        if self._in_utt:
            self._d.end_utt()
            hyp = self._d.hyp()
            text = " ".join(_clean(w) for w in (hyp.hypstr if hyp else "").split())
            # segment frames count from the utterance start, which is this turn's start
            words = [Word(_clean(s.word), self._turn_start + s.start_frame * RATE // FRAME_RATE,
                          self._turn_start + (s.end_frame + 1) * RATE // FRAME_RATE)
                     for s in self._d.seg() if not _FILLER.match(s.word)]
        t = Transcript(text, True, self._turn_start, self._position, tuple(words))
        self._next_turn()
        return t

    def reset(self) -> None:
        if self._in_utt:
            self._d.end_utt()
        self._next_turn()

    def close(self) -> None:
        self.reset()
        self._d = None

    def _next_turn(self) -> None:
        self._in_utt = False
        self._last = ""
        self._turn_start = self._position
