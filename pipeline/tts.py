"""Text-to-speech: Piper on onnxruntime, resampled in one call per clause to the bridge rate."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soxr

from pipeline.audio import BRIDGE_RATE, float_to_int16
from pipeline.onnx import cpu_session


class PiperTts:
    """Shared Piper voice; ``synthesize`` yields 16 kHz int16 PCM, one piece per sentence."""

    def __init__(self, voice: Path, length_scale: float = 1.0, volume: float = 0.8,
                 threads: int = 1) -> None:
        from piper import PiperVoice
        from piper.config import PiperConfig, SynthesisConfig

        config = PiperConfig.from_dict(json.loads(Path(str(voice) + ".json").read_text()))
        self._voice = PiperVoice(config=config, session=cpu_session(voice, threads=threads))
        self._syn = SynthesisConfig(length_scale=length_scale, volume=volume)
        self.rate = config.sample_rate
        self._lock = threading.Lock()  # espeak-ng's phonemizer is not thread-safe

    def synthesize(self, text: str) -> Iterator[bytes]:
        """PCM16 at 16 kHz for ``text``; whole-chunk resampling adds no latency (soxr HQ)."""
        with self._lock:
            chunks = list(self._voice.synthesize(text, syn_config=self._syn))
        for chunk in chunks:
            audio = chunk.audio_float_array
            if self.rate != BRIDGE_RATE:
                audio = soxr.resample(audio, self.rate, BRIDGE_RATE, quality="HQ")
            yield float_to_int16(np.asarray(audio)).tobytes()

    def warm_up(self) -> None:
        for _ in self.synthesize("Hello, the clinic opens at nine in the morning."):
            pass
