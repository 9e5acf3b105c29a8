"""Speech-to-text: faster-whisper (CTranslate2) on whole utterances, loaded once per process.

The default backend. Whisper has no streaming decoder: finals are decoded at the end of the
turn, and partials only by re-decoding the turn so far when the caller pauses, and only when
the decoder is idle (``WhisperStream.pause``; see ``pipeline/stt/base.py``). Other backends:
``pipeline/stt/vosk.py``; ``make_stt`` (``pipeline/stt/__init__.py``) picks one from ``[stt]``.
"""

from __future__ import annotations

import re
import threading
import zlib
from pathlib import Path

import numpy as np

from pipeline.stt.base import (
    RATE,
    StreamClock,
    Transcript,
    as_int16,
)

SHORT_MAX_SAMPLES = 28 * 16000  # longer turns use the standard 30 s windows
PAD_SAMPLES = 16000  # silence after the speech inside the shortened window
MIN_WINDOW_SAMPLES = 10 * 16000  # shorter windows made tiny.en drop words (bench/stt_window.py)
MIN_WORDS_PER_SECOND = 1.5  # slow speech, with the turn's pre- and post-roll around it
WINDOW_STEP = 16000  # windows in whole seconds: each distinct shape costs oneDNN cache memory


def looks_looped(text: str) -> bool:
    """Whether a decode repeats itself the way a looping decoder does: a phrase of 3+ words
    twice in a row, or any shorter one 3+ times. The short window loops on impaired audio
    ("five five" -> "5, 5, 5, 5, 5, 5, 5"; "go forward ten meters" written twice: call
    recordings of bench/media_faults.py) where the standard decode does not; a caller who
    really repeats himself only costs the standard decode's time."""
    words = re.findall(r"[\w']+", text.lower())
    for n in range(1, len(words) // 2 + 1):
        for i in range(len(words) - 2 * n + 1):
            reps = 1
            while words[i + reps * n: i + (reps + 1) * n] == words[i: i + n]:
                reps += 1
            if reps >= 3 or (reps >= 2 and n >= 3):
                return True
    return False


def said_once(text: str, seconds: float) -> str | None:
    """A whole sentence written again after itself ("Where is the clinic? Where is the
    clinic?", the last copy maybe cut short), as that sentence once, if it is words enough
    for ``seconds`` of speech; None for any other repetition. The short window's decoder, at
    the end of a short question, sometimes starts it over instead of ending: the standard
    decode after it cost 400-500 ms more and heard "check-up" as "kick up" where the short one
    had it right. A sentence too short for the audio may hide words the loop dropped."""
    first = re.match(r"\s*(.+?[.?!])(?=\s|$)", text)
    if first is None:
        return None
    sentence = first.group(1)
    rest = text[first.end():].strip()
    while rest.startswith(sentence):
        rest = rest[len(sentence):].strip()
    enough = len(sentence.split()) >= MIN_WORDS_PER_SECOND * seconds
    return sentence if sentence.startswith(rest) and enough else None


class WhisperStt:
    """Shared Whisper model. ``transcribe`` is safe from several call threads at once
    (CTranslate2 queues work on its own thread pool and releases the GIL)."""

    streaming = False  # partials only at pauses (WhisperStream.pause)

    def __init__(self, model_dir: Path, language: str = "en", beam_size: int = 1,
                 threads: int = 2, short_window: bool = True, name: str = "",
                 hints: str = "") -> None:
        """``hints``: words the callers will say that the model may not know (the business's
        name, what it sells), given to the decoder as the text before the turn's."""
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer

        self.name = name or f"whisper:{Path(model_dir).name}"
        self.language = language
        self.beam_size = beam_size
        self.short_window = short_window
        self._model = WhisperModel(str(model_dir), device="cpu", compute_type="int8",
                                   cpu_threads=threads, num_workers=1, local_files_only=True)
        self._tokenizer = Tokenizer(self._model.hf_tokenizer, self._model.model.is_multilingual,
                                    task="transcribe", language=language)
        self._lock = threading.Lock()  # one decode at a time: two would only split 2 cores
        self.hints = " ".join(hints.split())
        # Whisper's previous-text prompt: tiny.en heard "check-up" as "kick up" without it
        self._prompt = ([self._tokenizer.sot_prev,
                         *self._tokenizer.encode(" " + self.hints)[:100]]
                        if self.hints else [])

    def transcribe(self, audio: np.ndarray) -> str:
        """Text of float32 16 kHz mono audio (empty string for silence)."""
        return self._decode(audio, wait=True) or ""

    def transcribe_if_idle(self, audio: np.ndarray) -> str | None:
        """Like ``transcribe``, but None at once if another decode is running: for optional
        work (partials) that must never queue behind, or slow down, the decodes that matter."""
        return self._decode(audio, wait=False)

    def stream(self) -> WhisperStream:
        return WhisperStream(self)

    def _decode(self, audio: np.ndarray, wait: bool) -> str | None:
        if audio.size < 1600:  # under 0.1 s: nothing to decode
            return ""
        if not self._lock.acquire(blocking=wait):
            return None
        try:
            if self.short_window and audio.size <= SHORT_MAX_SAMPLES:
                text = self._transcribe_short(audio)
                if text is not None:
                    return text
            segments, _info = self._model.transcribe(
                audio.astype(np.float32, copy=False), language=self.language,
                beam_size=self.beam_size, without_timestamps=True, vad_filter=False,
                condition_on_previous_text=False, temperature=0.0,
                hotwords=self.hints or None)
            return " ".join(s.text.strip() for s in segments).strip()
        finally:
            self._lock.release()

    def _transcribe_short(self, audio: np.ndarray) -> str | None:
        """The short-window decode, or None when it looks wrong (the standard decode then)."""
        text = self._decode_short(audio)
        # the short window occasionally loops: detect it as Whisper does (gzip compression
        # ratio) or by its repeated phrases, and let the caller decode the standard way,
        # unless the loop is one sentence written over again
        if text and (len(text) / len(zlib.compress(text.encode())) > 2.0 or looks_looped(text)):
            return said_once(text, len(audio) / 16000)
        return text

    def _decode_short(self, audio: np.ndarray) -> str:
        """Decode with the encoder window cut to the utterance (+ 1 s of silence) instead of
        Whisper's fixed 30 s: CTranslate2 accepts the shorter input, and the encoder cost
        falls ~5x for a 3 s question (0.3 s -> 0.05 s here) with the same transcripts on our
        recordings (bench/stt_window.py measures both)."""
        import ctranslate2

        n = min(len(audio) + PAD_SAMPLES, 30 * 16000)
        # Rounded up to whole seconds: CTranslate2's oneDNN keeps the primitives of every input
        # shape it sees (~1 MB each, never freed): +24 MB per 100 decodes of 1-12 s turns,
        # flat with at most 21 shapes (bench/memory_components.py --component whisper).
        n = -(-n // WINDOW_STEP) * WINDOW_STEP
        padded = np.zeros(max(n, MIN_WINDOW_SAMPLES), dtype=np.float32)
        padded[: len(audio)] = audio
        feats = np.ascontiguousarray(self._model.feature_extractor(padded)[:, : len(padded) // 160])
        enc = self._model.model.encode(ctranslate2.StorageView.from_array(feats[None]),
                                       to_cpu=False)
        tok = self._tokenizer
        seconds = len(audio) / 16000
        prompt = [*self._prompt, *tok.sot_sequence, tok.no_timestamps]
        res = self._model.model.generate(
            enc, [prompt], beam_size=self.beam_size,
            max_length=len(prompt) + int(8 * seconds) + 16, suppress_blank=True,
            suppress_tokens=[-1])
        return tok.decode(res[0].sequences_ids[0]).strip()

    def warm_up(self) -> None:
        t = np.arange(3 * 16000, dtype=np.float32) / 16000
        self.transcribe(0.1 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 3 * t) > 0))


class WhisperStream(StreamClock):
    """A call's turn buffer for a whole-utterance backend (``SttStream``).

    ``feed`` only appends (no decode on the audio path); ``pause`` re-decodes the turn so far
    if the model is idle and there is new audio since the last partial; ``end_turn`` decodes
    the whole turn (waiting for the model if need be)."""

    MAX_TURN_SAMPLES = 130 * RATE  # the longest turn (120 s) plus margin; older audio is cut

    def __init__(self, stt: WhisperStt) -> None:
        self._stt = stt
        self._chunks: list[np.ndarray] = []
        self._buffered = 0
        super().__init__()
        self._partial_at = -1  # position of the last partial made

    def feed(self, pcm: bytes | np.ndarray) -> Transcript | None:
        x = as_int16(pcm).copy()
        self._chunks.append(x)
        self._buffered += len(x)
        self._position += len(x)
        if self._buffered > self.MAX_TURN_SAMPLES:  # rare: keep the newest audio only
            audio = np.concatenate(self._chunks)[-self.MAX_TURN_SAMPLES:]
            self._chunks, self._buffered = [audio], len(audio)
        return None

    def _audio(self) -> np.ndarray:
        if not self._chunks:
            return np.zeros(0, dtype=np.float32)
        if len(self._chunks) > 1:
            self._chunks = [np.concatenate(self._chunks)]
        return self._chunks[0].astype(np.float32) * (1.0 / 32768.0)

    def pause(self) -> Transcript | None:
        if self._position == self._partial_at:
            return None  # nothing new: the last partial still holds
        text = self._stt.transcribe_if_idle(self._audio())
        if text is None:
            return None  # the decoder is busy: skip this partial, never queue it
        self._partial_at = self._position
        return Transcript(text, False, self._turn_start, self._position)

    def end_turn(self) -> Transcript:
        text = self._stt.transcribe(self._audio())
        t = Transcript(text, True, self._turn_start, self._position)
        self.reset()
        return t

    def reset(self) -> None:
        self._chunks, self._buffered = [], 0
        self._turn_start = self._position
        self._partial_at = -1

    def close(self) -> None:
        self.reset()
