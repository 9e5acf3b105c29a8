"""Whisper with its fixed 30 s encoder window vs a window cut to the utterance.

Prints WER and decode time per mode on real recordings (Debian pocketsphinx-testdata),
clean and after G.711 mu-law at 8 kHz, so the shortcut in pipeline/stt/whisper.py stays justified.

    .venv/bin/python -m bench.stt_window [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from testbed.speech_corpus import corpus, load, normalise, wer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args()
    from pipeline import models
    from pipeline.stt.whisper import WhisperStt

    stt = WhisperStt(models.resolve().whisper_dir)
    stt.warm_up()
    results = {}
    items = corpus()
    for telephone in (False, True):
        for short in (False, True):
            stt.short_window = short
            errs = words = 0
            times = []
            for path, ref in items:
                audio = load(path, telephone)
                t0 = time.perf_counter()
                hyp = stt.transcribe(audio)
                times.append(time.perf_counter() - t0)
                errs += wer(normalise(ref), normalise(hyp))
                words += len(normalise(ref))
            key = f"{'g711' if telephone else 'clean'}/{'short' if short else '30s'}"
            results[key] = {"wer": errs / words, "words": words,
                            "p50_s": statistics.median(times),
                            "p95_s": sorted(times)[int(0.95 * (len(times) - 1))]}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{len(items)} utterances, Whisper tiny.en int8, beam 1")
    print(f"{'input/window':<14} {'WER':>6} {'p50 s':>7} {'p95 s':>7}")
    for k, r in results.items():
        print(f"{k:<14} {r['wer']:6.1%} {r['p50_s']:7.3f} {r['p95_s']:7.3f}")
    for inp in ("clean", "g711"):
        print(f"{inp}: short/30s decode time ratio "
              f"{results[inp + '/short']['p50_s'] / results[inp + '/30s']['p50_s']:.2f}")


if __name__ == "__main__":
    main()
