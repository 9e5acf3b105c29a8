"""Speech-to-text backends behind one interface (``pipeline/stt/base.py``): Whisper on whole
utterances (``whisper.py``, the default), Vosk streaming (``vosk.py``), pocketsphinx for the
WER bench (``pocketsphinx.py``), or a Wyoming server (``wyoming.py``). ``make_stt`` picks and
loads one from the ``[stt]`` settings.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipeline.stt.base import SpeechToText, SttModelError


def make_stt(backend: str, model: str = "", *, language: str = "en", beam_size: int = 1,
             threads: int = 2, bundled_whisper: Path | None = None, uri: str = "",
             timeout: float = 8.0, hints: str = "",
             on_error: Callable[[str], None] = lambda kind: None) -> SpeechToText:
    """The configured backend, loaded (the ``[stt]`` settings).

    ``model`` empty means the bundled model: ``bundled_whisper`` (resolved and verified by
    ``pipeline.models``) for Whisper; Vosk has none and needs a path. Raises
    ``SttModelError`` naming the setting when the model is missing or of the wrong kind,
    before any native code reads it. ``wyoming`` loads nothing: it asks the server at
    ``uri`` (``on_error`` is told the kind of each failed request)."""
    if backend == "whisper":
        from pipeline.stt.whisper import WhisperStt

        folder = Path(model) if model else bundled_whisper
        if folder is None or not (folder / "model.bin").is_file():
            raise SttModelError(f"[stt] model = {model!r}: no model.bin in {folder} "
                                "(expected a CTranslate2 Whisper model directory)")
        return WhisperStt(folder, language, beam_size, threads, hints=hints)
    if backend == "vosk":
        from pipeline.stt.vosk import VoskStt

        return VoskStt(model)
    if backend == "wyoming":
        from pipeline.stt.wyoming import WyomingStt

        return WyomingStt(uri, language, timeout, on_error)
    raise SttModelError(f"[stt] backend = {backend!r}: expected 'whisper', 'vosk' or 'wyoming'")
