"""Speech-to-text: faster-whisper (CTranslate2) on whole utterances, loaded once per process."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np


class WhisperStt:
    """Shared Whisper model. ``transcribe`` is safe from several call threads at once
    (CTranslate2 queues work on its own thread pool and releases the GIL)."""

    def __init__(self, model_dir: Path, language: str = "en", beam_size: int = 1,
                 threads: int = 2) -> None:
        from faster_whisper import WhisperModel

        self.language = language
        self.beam_size = beam_size
        self._model = WhisperModel(str(model_dir), device="cpu", compute_type="int8",
                                   cpu_threads=threads, num_workers=1, local_files_only=True)
        self._lock = threading.Lock()  # one decode at a time: two would only split 2 cores

    def transcribe(self, audio: np.ndarray) -> str:
        """Text of float32 16 kHz mono audio (empty string for silence)."""
        if audio.size < 1600:  # under 0.1 s: nothing to decode
            return ""
        with self._lock:
            segments, _info = self._model.transcribe(
                audio.astype(np.float32, copy=False), language=self.language,
                beam_size=self.beam_size, without_timestamps=True, vad_filter=False,
                condition_on_previous_text=False, temperature=0.0)
            text = " ".join(s.text.strip() for s in segments)
        return text.strip()

    def warm_up(self) -> None:
        t = np.arange(3 * 16000, dtype=np.float32) / 16000
        self.transcribe(0.1 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 3 * t) > 0))
