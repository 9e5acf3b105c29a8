"""A phone number from the caller's words, as digits.

The speech-to-text writes digits every way a caller says them: "555-213-4409", "(555) 213
4409", "five five five, two one three", "oh" for zero, "double four", "eight hundred". Only
digits are kept; other words are skipped, so "my number is five five five" gives "555".
"""

from __future__ import annotations

import re

UNITS = {"zero": "0", "nought": "0", "one": "1", "two": "2", "three": "3", "four": "4",
         "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9"}
TEENS = {"ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13", "fourteen": "14",
         "fifteen": "15", "sixteen": "16", "seventeen": "17", "eighteen": "18",
         "nineteen": "19"}
TENS = {"twenty": "2", "thirty": "3", "forty": "4", "fifty": "5", "sixty": "6",
        "seventy": "7", "eighty": "8", "ninety": "9"}
REPEAT = {"double": 2, "triple": 3}
ZERO_LETTER = {"oh", "o"}
"""Zero as a letter: a digit only beside other digits ("Oh, it's 5 5 5" starts with no 0)."""

TOKEN = re.compile(r"\d+|[a-z]+")


def _is_digitish(tok: str) -> bool:
    return tok.isdigit() or tok in UNITS or tok in TEENS or tok in TENS or tok in REPEAT


def spoken_digits(text: str) -> str:
    """The digits ``text`` says, in order."""
    toks = TOKEN.findall(text.lower().replace("-", " "))
    out: list[str] = []
    repeat = 1
    i = 0
    while i < len(toks):
        tok = toks[i]
        prev = toks[i - 1] if i else ""
        nxt = toks[i + 1] if i + 1 < len(toks) else ""
        if tok in ZERO_LETTER:
            tok = "zero" if _is_digitish(prev) or _is_digitish(nxt) or prev in REPEAT else ""
        if tok in REPEAT:
            repeat = REPEAT[tok]
        elif tok.isdigit():
            out.append(tok[0] * repeat + tok[1:])
            repeat = 1
        elif tok in UNITS:
            out.append(UNITS[tok] * repeat)
            repeat = 1
        elif tok in TEENS:
            out.append(TEENS[tok])
            repeat = 1
        elif tok in TENS:  # "fifty five" is 55, "fifty" alone 50
            if nxt in UNITS and nxt != "zero":
                out.append(TENS[tok] + UNITS[nxt])
                i += 1
            else:
                out.append(TENS[tok] + "0")
            repeat = 1
        elif tok == "hundred" and out:
            out.append("00")
        elif tok == "thousand" and out:
            out.append("000")
        i += 1
    return "".join(out)


def read_back(digits: str) -> str:
    """Digits as the bot says them back: one by one, in groups as the caller would say them
    (3-3-4 for ten digits, else threes and a last group of up to four; what comes before
    the last ten, a country code, on its own): "5 5 5, 2 1 3, 4 4 0 9",
    "1, 5 5 5, 2 1 3, 4 4 0 9"."""
    groups: list[str] = [digits[:-10]] if len(digits) > 10 else []
    rest = digits[-10:]
    while len(rest) > 4:
        groups.append(rest[:3])
        rest = rest[3:]
    if rest:
        groups.append(rest)
    return ", ".join(" ".join(g) for g in groups)
