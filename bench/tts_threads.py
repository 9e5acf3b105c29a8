"""Piper's synthesis time per clause with 1 and 2 threads ([tts] threads).

    .venv/bin/python -m bench.tts_threads

The bundled voice, six clauses from one word to seven, the median of 7 syntheses each.
"""

from __future__ import annotations

import statistics
import time

from pipeline import models
from pipeline.tts.piper import PiperTts

CLAUSES = ["Yes,", "Sure.", "I'm sorry, I don't know that.", "We open at nine in the morning.",
           "The clinic is at 12 River Street,", "A check-up costs sixty dollars."]


def main() -> None:
    voice = models.resolve().piper_voice
    for threads in (1, 2):
        tts = PiperTts(voice, threads=threads)
        tts.warm_up()
        for clause in CLAUSES:
            times = []
            for _ in range(7):
                t0 = time.perf_counter()
                (speech,) = tts.synthesize(clause)
                times.append(time.perf_counter() - t0)
            print(f"threads {threads}  {statistics.median(times) * 1000:5.0f} ms  "
                  f"audio {len(speech.pcm) / 32000:.2f} s  {clause}")


if __name__ == "__main__":
    main()
