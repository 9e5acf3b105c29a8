"""Speech-to-text: faster-whisper (CTranslate2) on whole utterances, loaded once per process."""

from __future__ import annotations

import threading
import zlib
from pathlib import Path

import numpy as np

SHORT_MAX_SAMPLES = 28 * 16000  # longer turns use the standard 30 s windows
PAD_SAMPLES = 16000  # silence after the speech inside the shortened window
MIN_WINDOW_SAMPLES = 10 * 16000  # shorter windows made tiny.en drop words (bench/stt_window.py)


class WhisperStt:
    """Shared Whisper model. ``transcribe`` is safe from several call threads at once
    (CTranslate2 queues work on its own thread pool and releases the GIL)."""

    def __init__(self, model_dir: Path, language: str = "en", beam_size: int = 1,
                 threads: int = 2, short_window: bool = True) -> None:
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer

        self.language = language
        self.beam_size = beam_size
        self.short_window = short_window
        self._model = WhisperModel(str(model_dir), device="cpu", compute_type="int8",
                                   cpu_threads=threads, num_workers=1, local_files_only=True)
        self._tokenizer = Tokenizer(self._model.hf_tokenizer, self._model.model.is_multilingual,
                                    task="transcribe", language=language)
        self._lock = threading.Lock()  # one decode at a time: two would only split 2 cores

    def transcribe(self, audio: np.ndarray) -> str:
        """Text of float32 16 kHz mono audio (empty string for silence)."""
        if audio.size < 1600:  # under 0.1 s: nothing to decode
            return ""
        if self.short_window and audio.size <= SHORT_MAX_SAMPLES:
            with self._lock:
                text = self._transcribe_short(audio)
            if text is not None:
                return text
        with self._lock:
            segments, _info = self._model.transcribe(
                audio.astype(np.float32, copy=False), language=self.language,
                beam_size=self.beam_size, without_timestamps=True, vad_filter=False,
                condition_on_previous_text=False, temperature=0.0)
            text = " ".join(s.text.strip() for s in segments)
        return text.strip()

    def _transcribe_short(self, audio: np.ndarray) -> str | None:
        """Decode with the encoder window cut to the utterance (+ 1 s of silence) instead of
        Whisper's fixed 30 s: CTranslate2 accepts the shorter input, and the encoder cost
        falls ~5x for a 3 s question (0.3 s -> 0.05 s here) with the same transcripts on our
        recordings (bench/stt_window.py measures both)."""
        import ctranslate2

        n = min(len(audio) + PAD_SAMPLES, 30 * 16000)
        padded = np.zeros(max(n, MIN_WINDOW_SAMPLES), dtype=np.float32)
        padded[: len(audio)] = audio
        feats = np.ascontiguousarray(self._model.feature_extractor(padded)[:, : len(padded) // 160])
        enc = self._model.model.encode(ctranslate2.StorageView.from_array(feats[None]),
                                       to_cpu=False)
        tok = self._tokenizer
        seconds = len(audio) / 16000
        res = self._model.model.generate(
            enc, [[*tok.sot_sequence, tok.no_timestamps]], beam_size=self.beam_size,
            max_length=int(8 * seconds) + 16, suppress_blank=True, suppress_tokens=[-1])
        text = tok.decode(res[0].sequences_ids[0]).strip()
        # the short window occasionally loops on a syllable: detect it as Whisper does
        # (gzip compression ratio) and let the caller decode the standard way instead
        if text and len(text) / len(zlib.compress(text.encode())) > 2.0:
            return None
        return text

    def warm_up(self) -> None:
        t = np.arange(3 * 16000, dtype=np.float32) / 16000
        self.transcribe(0.1 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 3 * t) > 0))
