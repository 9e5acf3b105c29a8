"""Text-to-speech: Piper on onnxruntime, resampled in one call per clause to the bridge rate.

Piper's VITS voices compute each phoneme's duration (the ``Ceil`` of the duration predictor)
but do not output it; exposing that tensor as a second output (``onnx``, in memory, at load)
gives per-phoneme sample counts at no extra cost, hence where each word of a clause ends in
its audio: a barge-in then keeps exactly the words whose sound was played.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soxr

from pipeline.audio.frames import BRIDGE_RATE, float_to_int16
from pipeline.models import cpu_session
from pipeline.tts.base import Speech

log = logging.getLogger(__name__)

WORD_BREAK = " "  # espeak-ng's phoneme between words


def word_ends(phonemes: list[str], samples: list[int], scale: float = 1.0) -> list[int]:
    """Word end offsets from per-phoneme sample counts (phonemes in order, BOS/EOS included).
    A word ends where the next word break starts; the last one at the end of the audio."""
    ends: list[int] = []
    pos = 0
    for ph, n in zip(phonemes, samples, strict=True):
        if ph == WORD_BREAK and pos:
            ends.append(round(pos * scale))
        pos += n
    if pos:
        ends.append(round(pos * scale))
    return ends


def _with_durations(voice: Path) -> bytes | None:
    """The voice model with its phoneme durations as an extra output, or None if that
    cannot be done (no ``onnx`` package, or a model without the tensor)."""
    try:
        import onnx
        from piper.patch_voice_with_alignment import add_alignment_output
    except ImportError:
        log.warning("the onnx package is missing: heard words are estimated, not timed")
        return None
    model = onnx.load(str(voice))
    try:
        add_alignment_output(model)
    except ValueError as e:  # no single Ceil tensor, or already an output (then use as is)
        if "already" not in str(e):
            log.warning("voice %s: no phoneme durations (%s)", voice.name, e)
            return None
    return model.SerializeToString()


class PiperTts:
    """Shared Piper voice; ``synthesize`` yields one ``Speech`` (16 kHz) per text."""

    def __init__(self, voice: Path, length_scale: float = 1.0, volume: float = 0.8,
                 threads: int = 1, word_timing: bool = True) -> None:
        from piper import PiperVoice
        from piper.config import PiperConfig, SynthesisConfig

        config = PiperConfig.from_dict(json.loads(Path(str(voice) + ".json").read_text()))
        model = _with_durations(voice) if word_timing else None
        # no onnxruntime arena: with it, RssAnon grew +220 MB over 400 varied clauses (still
        # +19 MB/100 at the end), without it +9 MB; synthesis median +2%, total +6%
        # (bench/memory_components.py --component piper, --speed-ab)
        self._voice = PiperVoice(config=config, session=cpu_session(
            model or voice, threads=threads, arena=False))
        self._syn = SynthesisConfig(length_scale=length_scale, volume=volume)
        self.rate = config.sample_rate
        self.word_timing = model is not None
        self._lock = threading.Lock()  # espeak-ng's phonemizer is not thread-safe

    def synthesize(self, text: str) -> Iterator[Speech]:
        """The speech of ``text``, its sentences joined (Piper synthesizes them all before
        returning anyway); whole-chunk resampling adds no latency (soxr HQ)."""
        with self._lock:
            chunks = list(self._voice.synthesize(text, syn_config=self._syn,
                                                 include_alignments=self.word_timing))
        if not chunks:
            return
        scale = BRIDGE_RATE / self.rate
        pcm: list[bytes] = []
        ends: list[int] = []
        timed = True  # one sentence without timings: none for the whole text
        offset = 0
        for chunk in chunks:
            audio = chunk.audio_float_array
            if self.rate != BRIDGE_RATE:
                audio = soxr.resample(audio, self.rate, BRIDGE_RATE, quality="HQ")
            al = chunk.phoneme_alignments
            timed = timed and bool(al)
            if timed:
                ends += [offset + e for e in word_ends([a.phoneme for a in al],
                                                       [a.num_samples for a in al], scale)]
            pcm.append(float_to_int16(np.asarray(audio)).tobytes())
            offset += len(audio)
        yield Speech(b"".join(pcm), ends if timed else [])

    def warm_up(self) -> None:
        for _ in self.synthesize("Hello, the clinic opens at nine in the morning."):
            pass
