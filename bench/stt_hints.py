"""How often the speech-to-text hears a business's own words, told them or not.

    .venv/bin/python -m bench.stt_hints [--codec g711u|clean]

A dental clinic's callers name its services and staff ("check-up", "Dr. Patel"). Whisper
tiny.en hears some as other words ("kick up", "not to pretend"), and a reply to a misheard
item gets no computed price. The gateway tells Whisper the ``[business]`` name and items and
``[stt] hints`` (``gateway.app.stt_hints``). This bench speaks 10 phone questions with 4
espeak-ng voices (a different synthesizer than the bot's), through G.711 by default, and
counts the business's words found in the transcript with and without the hints, side by side
in one run. ``bench.wer --backends tiny.en,tiny.en-hints`` checks that the hints do not cost
words on speech about something else.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from pipeline import models
from pipeline.facts.business import Business, parse_items
from pipeline.stt.whisper import WhisperStt
from testbed.harness import espeak
from testbed.speech_corpus import Recording, telephone

BUSINESS = Business(name="Riverside Dental Clinic", prices=parse_items((
    "check-up: 60", "cleaning: 80", "filling: 120", "teeth whitening: 250", "crown: 900",
    "root canal: 700"), "amount"))
STAFF = "Dr. Patel, walk-ins"  # [stt] hints: what the items do not name

# (question, the business's words in it as they must be written)
QUESTIONS = [
    ("How much does a check-up cost?", ["check"]),
    ("How much is a check-up, and how do I book one?", ["check"]),
    ("Do you do teeth whitening?", ["whitening"]),
    ("How much is a filling?", ["filling"]),
    ("Can I get a cleaning on Monday?", ["cleaning"]),
    ("Is Doctor Patel in on Friday?", ["patel"]),
    ("Do you take walk-ins for a toothache?", ["walk-in"]),
    ("How much is a crown?", ["crown"]),
    ("Where is Riverside Dental?", ["riverside dental"]),
    ("I need a root canal, how much?", ["root canal"]),
]
VOICES = ["en-gb-x-rp", "en-us", "en-gb-scotland", "en-029"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--codec", choices=("g711u", "g711a", "clean"), default="g711u")
    args = ap.parse_args()
    whisper = models.resolve().whisper_dir
    hints = f"{STAFF} {BUSINESS.words()}"
    sides = {"alone": WhisperStt(whisper), "told": WhisperStt(whisper, hints=hints)}
    print(f"told: {hints!r}; codec {args.codec}")
    found = {k: 0 for k in sides}
    total = 0
    with tempfile.TemporaryDirectory() as tmp:
        for voice in VOICES:
            for question, words in QUESTIONS:
                pcm = espeak(question, Path(tmp) / "q.wav", voice=voice)
                pcm = telephone(Recording(question, question, pcm, 16000, "synthetic"),
                                args.codec)
                audio = pcm.astype(np.float32) / 32768
                total += len(words)
                heard = {}
                for name, stt in sides.items():
                    heard[name] = stt.transcribe(audio)
                    found[name] += sum(w in heard[name].lower() for w in words)
                print(f"{voice:15} {question!r}\n    alone: {heard['alone']!r}\n"
                      f"    told:  {heard['told']!r}")
    for name in sides:
        print(f"business words heard, {name}: {found[name]} of {total}")


if __name__ == "__main__":
    main()
