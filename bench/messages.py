"""Taking messages: is the callback number exact, and are the name and the gist kept?

    .venv/bin/python -m bench.messages [--codecs clean,g711u] [--json]

Callers (``bench/data/messages.json``, written by a helper that had not read the code): each
gives a name, a callback number (some in groups said as separate turns, with a pause
between), confirms or corrects the read-back, says a message and whether to add to it. Every
turn is spoken by espeak-ng (several voices, none the bot's Piper), sent through a phone
codec (``testbed.speech_corpus.telephone``), transcribed by the gateway's default speech-to-text
(Whisper tiny.en, as the session calls it) and handed to the gateway's message taker
(``pipeline/messages/taking.py``) as a call's turns would be.

A caller listens: after a read-back that is not their number, they say "No, it's ..." with
the number again, more slowly (twice at most), then type it on the keypad, which the bot
offers (reported apart: "by voice alone" counts the numbers right without it); a case's own
scripted correction (the caller gave a wrong number first) is said first where it has one.
Scoring is strict: the saved callback equals the expected digits; every word of the expected
name is in the saved name; every gist word is in the saved message. Every verdict is
printed. Cases m11-m14 are held out: nothing in the taker was changed after looking at them;
they are reported apart.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.core.dtmf import entry_text
from pipeline.messages.digits import read_back, spoken_digits
from pipeline.messages.taking import MessageTaker, Stage
from testbed.speech_corpus import Recording, telephone

ROOT = Path(__file__).resolve().parent.parent

DATA = ROOT / "bench" / "data" / "messages.json"
HELD_OUT = ("m11", "m12", "m13", "m14")
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def speak(text: str, voice: str, tmp: Path, wpm: int = 140) -> np.ndarray:
    """espeak-ng's speech of ``text`` (int16 at 16 kHz)."""
    raw = tmp / "line.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(raw), text], check=True)
    out = subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", "-e", "signed",
                          "-t", "raw", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(out, dtype="<i2")


@dataclass
class Outcome:
    case: str
    codec: str
    callback: str = ""
    name: str = ""
    message: str = ""
    first_read_back_right: bool = False
    corrections_by_listener: int = 0
    keypad: bool = False
    """The caller typed the number in the end."""
    turns: list[tuple[str, str, str]] = field(default_factory=list)
    """(caller said, heard as, bot said)."""
    verdicts: dict[str, bool] = field(default_factory=dict)


class Caller:
    """One scripted caller on one codec, talking to a ``MessageTaker`` through the STT."""

    def __init__(self, case: dict, codec: str, stt, tmp: Path) -> None:
        self.case, self.codec, self.stt, self.tmp = case, codec, stt, tmp
        self.taker = MessageTaker()
        self.out = Outcome(case["id"], codec)
        self.bot = self.taker.start().say

    def say(self, text: str, wpm: int = 140) -> str:
        pcm = telephone(Recording("line", text, speak(text, self.case["voice"], self.tmp, wpm),
                                  16000, "synthetic"), self.codec)
        heard = self.stt.transcribe(pcm.astype(np.float32) / 32768)
        step = self.taker.turn(heard, pcm.astype("<i2").tobytes())
        if step.save is not None:
            self.out.callback, self.out.name = step.save.callback, step.save.name
            self.out.message = step.save.text
        self.out.turns.append((text, heard, step.say))
        if step.say:
            self.bot = step.say
        return step.say

    def run(self) -> Outcome:
        c, want = self.case, self.case["expect"]["callback"]
        self.say(c["name_turn"])
        if self.taker.stage is Stage.NAME:  # "Sorry, I didn't get your name": again
            self.say(f"My name is {c['expect']['name']}.", self.slower())
        for part in c["number_turns"]:
            self.say(part)
        said = spoken_digits(" ".join(c["number_turns"]))  # a slip of the caller's in some
        slip = c["correction"]
        first = True
        for _ in range(8):  # read-backs and their answers
            if self.taker.stage is Stage.NUMBER:  # asked again, or quiet on part of it
                self.repeat(want)
                continue
            if self.taker.stage is not Stage.CHECK_NUMBER:
                break
            heard = "".join(re.findall(r"\d", self.bot))
            if first:
                self.out.first_read_back_right = heard == said
                first = False
            if slip:  # the caller's own slip, corrected as scripted
                self.say(slip)
                slip = ""
            elif heard == want:
                self.say((c["confirm_again"] if c["correction"] else c["confirm"])
                         or "Yes, that's right.")
            else:
                self.repeat(want, "No, it's ")
        if self.taker.stage is Stage.MESSAGE:
            self.say(c["message"])
            if self.taker.stage is Stage.MORE:
                self.say(c["add"])
        return self.score()

    def repeat(self, want: str, lead: str = "") -> None:
        """The number again: said more slowly, and after two tries typed on the keypad (the
        bot offers it), which reaches the taker as the session words it."""
        self.out.corrections_by_listener += 1
        if self.out.corrections_by_listener <= 2:
            self.say(f"{lead}{self.number_said(want)}", self.slower())
            return
        self.out.keypad = True
        text = entry_text(want)
        step = self.taker.turn(text, keyed=want)
        self.out.turns.append((f"(keys {want}#)", text, step.say))
        self.bot = step.say or self.bot

    def slower(self) -> int:
        """A caller who was misheard says it again more slowly each time."""
        return max(90, 140 - 20 * self.out.corrections_by_listener)

    @staticmethod
    def number_said(digits: str) -> str:
        """The number as a caller repeats it: one digit at a time, in its groups."""
        groups = read_back(digits).split(", ")
        return ". ".join(", ".join(WORDS[int(d)] for d in g.split()) for g in groups) + "."

    def score(self) -> Outcome:
        o, e = self.out, self.case["expect"]
        o.verdicts["callback"] = o.callback == e["callback"]
        o.verdicts["callback_by_voice"] = o.verdicts["callback"] and not o.keypad
        o.verdicts["name"] = bool(o.name) and all(
            w.lower() in o.name.lower().split() for w in e["name"].split())
        o.verdicts["gist"] = all(re.search(rf"\b{re.escape(g.lower())}", o.message.lower())
                                 for g in e["gist"])
        return o


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--codecs", default="clean,g711u",
                    help="clean (16 kHz, as G.722 nearly is), g711u, g711a, g722 (needs ffmpeg)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--stt", choices=("tiny.en", "base"), default="tiny.en",
                    help="tiny.en: the gateway's default; base: Whisper base ([stt] model)")
    args = ap.parse_args()
    from pipeline import models
    from pipeline.stt.whisper import WhisperStt

    stt = WhisperStt(models.resolve().whisper_dir if args.stt == "tiny.en"
                     else models.whisper_base_dir())
    cases = json.loads(DATA.read_text())
    outcomes: list[Outcome] = []
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        for codec in args.codecs.split(","):
            for case in cases:
                o = Caller(case, codec, stt, Path(tmp)).run()
                outcomes.append(o)
                mark = " ".join(f"{k}={'ok' if v else 'WRONG'}" for k, v in o.verdicts.items())
                print(f"\n[{o.case} {codec} {case['voice']}] {mark}  first read-back "
                      f"{'right' if o.first_read_back_right else 'wrong'}, "
                      f"{o.corrections_by_listener} correction(s) by the listening caller")
                print(f"  saved: name={o.name!r} callback={o.callback!r} "
                      f"(want {case['expect']['name']!r} {case['expect']['callback']!r})")
                print(f"  message={o.message!r} (gist {case['expect']['gist']})")
                for said, heard, bot in o.turns:
                    print(f"    caller {said!r}\n      heard {heard!r}\n      bot   {bot!r}")
    print(f"\n=== summary ({time.monotonic() - t0:.0f} s) ===")
    summary = {}
    for codec in sorted({o.codec for o in outcomes}):
        for part, ids in (("tuned", None), ("held out", HELD_OUT)):
            rows = [o for o in outcomes if o.codec == codec
                    and ((o.case in HELD_OUT) == (ids is not None))]
            n = len(rows)
            counts = {k: sum(o.verdicts[k] for o in rows)
                      for k in ("callback", "callback_by_voice", "name", "gist")}
            first = sum(o.first_read_back_right for o in rows)
            fixed = sum(o.corrections_by_listener > 0 and o.verdicts["callback"] for o in rows)
            summary[f"{codec} {part}"] = {"n": n, **counts, "first_read_back_right": first}
            print(f"{codec:6} {part:8} n={n:2}  callback exact {counts['callback']}/{n} "
                  f"(by voice alone {counts['callback_by_voice']}/{n}, first read-back "
                  f"right {first}/{n}, right after the caller corrected it {fixed})  "
                  f"name {counts['name']}/{n}  gist {counts['gist']}/{n}")
    if args.json:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
