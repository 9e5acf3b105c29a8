"""Answer-accuracy benchmark: personas (each one ``[business]`` table of the bot's TOML config),
the callers' questions, and a strict scorer. Pure data and pure functions: no I/O, no models.

A case is scored on the bot's LAST answer only (earlier turns are context the bot answers
first). ``normalise`` maps the answer to a canonical spoken-number form (lower case, number
words as digits, "3 p.m." -> "3 pm", "$6" -> "6 dollars", "15:00" -> "3 pm", "noon" -> "12 pm")
and ``score`` then requires every ``must`` regex to match and no ``must_not`` regex to match:
the right fact present AND no contrary claim (a wrong time, a wrong total, "yes" where the
answer is no, an invented fact where the right answer is the fallback).

The questions were written from the business tables below and the calendar alone, not from
the bot's prompt. Clocks are local wall time in the persona's timezone; December 2026:
Fri 4, Sat 5, Sun 6, Mon 7, Tue 8, Wed 9 ... Wed 23, Thu 24, Fri 25, Sat 26, Mon 28, Thu 31.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Persona:
    key: str  # "bakery", "dental", "garage"
    business: dict[str, Any]  # exactly the [business] table of the bot's TOML config


@dataclass(frozen=True)
class Case:
    id: str  # "bakery-07"
    persona: str
    category: str  # one of CATEGORIES
    clock: str  # local wall time in the persona's timezone, ISO "2026-12-04T16:05"
    turns: tuple[str, ...]  # what the caller says; only the answer to the LAST turn is scored
    must: tuple[str, ...]  # regexes; ALL must match the normalised last answer
    must_not: tuple[str, ...]  # regexes; NONE may match the normalised last answer
    held_out: bool = False  # never used to tune prompts
    note: str = ""  # for a human: the right answer and why
    style: str = ""
    """How the caller phrases it, for the natural-phrasing set (one of STYLES); "" for the
    questions worded like the facts."""


CATEGORIES = ("days", "times", "relative", "prices", "lead", "unknown", "followup", "contact",
              "partial")
"""``partial``: two questions in one, the facts answer one of them: the known part and the
fallback for the other are both required."""
STYLES = ("filler", "synonym", "indirect", "two-in-one", "loose-time", "you-guys")

BUSINESS_KEYS = (
    "name", "timezone", "hours", "closed_dates", "address", "phone", "prices", "currency",
    "lead_times", "facts", "fallback",
)

# --------------------------------------------------------------------------------------------
# Personas
# --------------------------------------------------------------------------------------------

PERSONAS: dict[str, Persona] = {
    "bakery": Persona("bakery", {
        "name": "Riverside Bakery",
        "timezone": "America/Chicago",
        "hours": ["wed-fri 07:00-15:00", "sat,sun 08:00-13:00"],
        "closed_dates": ["2026-12-25 Christmas Day", "2026-12-26", "2027-01-01 New Year's Day"],
        "address": "48 Mill Road, Springfield",
        "phone": "555 0142",
        "prices": ["sourdough loaf: 6", "croissant: 2.50", "cinnamon roll: 3.25",
                   "birthday cake: 35", "party platter: 45"],
        "currency": "dollars",
        "lead_times": ["birthday cake: 2", "party platter: 1"],
        "facts": ["Cakes are ordered by phone or in the shop.", "We bake everything on site."],
        "fallback": "I don't know that, but I can take a message.",
    }),
    "dental": Persona("dental", {
        "name": "Bright Smile Dental",
        "timezone": "Europe/London",
        "hours": ["mon,tue,thu 08:30-12:30 13:30-17:30", "wed 10:00-19:00", "fri 08:30-13:00"],
        "closed_dates": ["2026-12-24 Christmas Eve", "2026-12-25 Christmas Day",
                         "2026-12-28 Boxing Day bank holiday", "2027-01-01 New Year's Day"],
        "address": "215 High Street, Kingston",
        "phone": "020 7946 0321",
        "prices": ["check-up: 55", "x-ray: 25", "cleaning: 75", "filling: 120",
                   "teeth whitening: 299"],
        "currency": "pounds",
        "lead_times": ["teeth whitening: 7", "cleaning: 2"],
        "facts": ["Appointments are booked by phone.", "We see adults and children."],
        "fallback": "I'm not sure about that, but I can take a message for the practice.",
    }),
    "garage": Persona("garage", {
        "name": "Oakwood Auto Repair",
        "timezone": "America/Los_Angeles",
        "hours": ["mon-fri 07:30-17:30", "sat 08:00-12:00"],
        "closed_dates": ["2026-12-24 Christmas Eve", "2026-12-25 Christmas Day", "2026-12-31",
                         "2027-01-01 New Year's Day"],
        "address": "350 Harbor Boulevard, Fresno",
        "phone": "555 0198",
        "prices": ["oil change: 49", "tire rotation: 25", "brake inspection: 30",
                   "wheel alignment: 89.99", "timing belt replacement: 450"],
        "currency": "dollars",
        "lead_times": ["wheel alignment: 1", "timing belt replacement: 3"],
        "facts": ["Oil changes are done while you wait.", "We work on cars and light trucks."],
        "fallback": ("I don't have that information, but I can take a message and someone "
                     "will call you back."),
    }),
    "vet": Persona("vet", {
        "name": "Harbor Street Vets",
        "timezone": "America/New_York",
        "hours": ["mon-fri 08:00-18:00", "sat 09:00-13:00"],
        "closed_dates": ["2026-12-25 Christmas Day", "2027-01-01 New Year's Day"],
        "address": "48 Harbor Street, Portland",
        "phone": "555 0170",
        "prices": ["vaccination: 35", "nail trim: 15", "check-up: 50", "dental cleaning: 120"],
        "currency": "dollars",
        "lead_times": ["dental cleaning: 3"],
        "facts": ["We treat cats, dogs, rabbits and other small pets.",
                  "Walk-ins are welcome for check-ups."],
        "fallback": "I'm sorry, I don't know that, but I can take a message.",
    }),
}

_DAY_KEYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def hours_on(business: dict[str, Any], day: dt.date) -> list[tuple[dt.time, dt.time]]:
    """The opening ranges of ``day`` under ``business`` (empty: closed that day). Ground truth
    for checking the cases; it reads the table the way its schema says."""
    closed = {entry.split()[0] for entry in business["closed_dates"]}
    if day.isoformat() in closed:
        return []
    ranges: list[tuple[dt.time, dt.time]] = []
    for spec in business["hours"]:
        days, *spans = spec.split()
        wanted: set[int] = set()
        for part in days.split(","):
            lo, _, hi = part.partition("-")
            a, b = _DAY_KEYS.index(lo), _DAY_KEYS.index(hi or lo)
            wanted.update(range(a, b + 1))
        if day.weekday() in wanted:
            for span in spans:
                start, end = span.split("-")
                ranges.append((dt.time.fromisoformat(start), dt.time.fromisoformat(end)))
    return sorted(ranges)


def is_open(business: dict[str, Any], when: dt.datetime) -> bool:
    return any(a <= when.time() < b for a, b in hours_on(business, when.date()))


# --------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------

_ONE_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
              "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
              "seventeen", "eighteen", "nineteen")
_TEN_WORDS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_ORD_WORDS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth",
              "ninth", "tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth",
              "sixteenth", "seventeenth", "eighteenth", "nineteenth")
_ONES = {w: i for i, w in enumerate(_ONE_WORDS)}
_TENS = {w: 10 * i for i, w in enumerate(_TEN_WORDS, start=2)}
_ORDS = {w: i for i, w in enumerate(_ORD_WORDS, start=1)}
_ORDS.update(twentieth=20, thirtieth=30)
_NUMWORD = "|".join(sorted([*_ONES, *_TENS, *_ORDS, "hundred"], key=len, reverse=True))
_RUN = re.compile(rf"\b(?:{_NUMWORD})(?:[\s-]+(?:{_NUMWORD}|and))*\b")
_CUR = r"(?:dollars?|pounds?|euros?)"


def _ordinal(n: int) -> str:
    if 10 <= n % 100 <= 20:
        return f"{n}th"
    return f"{n}" + {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def _below_100(tokens: list[str], i: int) -> tuple[str, int] | None:
    """A number under 100 at tokens[i] ("seven", "forty five", "twenty-first")."""
    t = tokens[i] if i < len(tokens) else ""
    if t in _ORDS:
        return _ordinal(_ORDS[t]), i + 1
    if t in _ONES:
        return str(_ONES[t]), i + 1
    if t in _TENS:
        n = _TENS[t]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if 1 <= _ONES.get(nxt, 0) <= 9:
            return str(n + _ONES[nxt]), i + 2
        if 1 <= _ORDS.get(nxt, 0) <= 9:
            return _ordinal(n + _ORDS[nxt]), i + 2
        return str(n), i + 1
    return None


def _words_to_digits(match: re.Match[str]) -> str:
    tokens = re.split(r"[\s-]+", match.group(0))
    out: list[str] = []
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if 1 <= _ONES.get(t, 0) <= 9 and i + 1 < len(tokens) and tokens[i + 1] == "hundred":
            n, i = _ONES[t] * 100, i + 2
            j = i + 1 if i < len(tokens) and tokens[i] == "and" else i
            rest = _below_100(tokens, j) if j < len(tokens) and tokens[j] != "zero" else None
            if rest is None:
                out.append(str(n))
            else:
                digits, i = rest
                tail = re.match(r"(\d+)(\D*)$", digits)
                assert tail is not None
                total = n + int(tail.group(1))
                out.append(_ordinal(total) if tail.group(2) else str(total))
            continue
        parsed = _below_100(tokens, i)
        if parsed is None:  # "and", a lone "hundred"
            out.append(t)
            i += 1
        else:
            word, i = parsed
            out.append(word)
    return " ".join(out)


def _twenty_four(match: re.Match[str]) -> str:
    hh, mm = match.group(1), match.group(2)
    h = int(hh)
    if h >= 13:
        return f"{h - 12}:{mm} pm"
    if h == 0:
        return f"12:{mm} am"
    if hh.startswith("0"):
        return f"{h}:{mm} am"
    return f"{h}:{mm}"


def _quarter_to(match: re.Match[str]) -> str:
    h = int(match.group(1))
    return f"{12 if h == 1 else h - 1}:45"


def normalise(text: str) -> str:
    """Lower case, straight quotes, number words as digits, canonical times and amounts:
    "Three P.M." -> "3 pm", "15:00" -> "3 pm", "half past eight" -> "8:30",
    "noon" -> "12 pm", "$6.5" -> "6.50 dollars", "fourteen dollars and fifty cents" ->
    "14.50 dollars", "two forty-five p.m." -> "2:45 pm"."""
    s = text.lower()
    s = s.translate(str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
                                   "\u2013": "-", "\u2014": " - ", "\u00a0": " "}))
    s = re.sub(r"\s+", " ", s).strip()
    # meridiem and o'clock
    s = re.sub(r"\ba\.\s?m\b\.?", "am", s)
    s = re.sub(r"\bp\.\s?m\b\.?", "pm", s)
    s = re.sub(r"\s*\bo'?\s?clock\b", "", s)
    # currency symbols and slang
    s = re.sub(r"(?<=\d),(?=\d{3}\b)", "", s)
    s = re.sub(r"\$\s?(\d+(?:\.\d+)?)", r"\1 dollars", s)
    s = re.sub(r"\u00a3\s?(\d+(?:\.\d+)?)", r"\1 pounds", s)
    s = re.sub(r"\u20ac\s?(\d+(?:\.\d+)?)", r"\1 euros", s)
    s = re.sub(r"\bbucks\b", "dollars", s)
    s = re.sub(r"\bquid\b", "pounds", s)
    # number words
    s = re.sub(r"\ba hundred\b", "one hundred", s)
    s = _RUN.sub(_words_to_digits, s)
    for _ in range(3):  # "five five five oh one four two"
        s = re.sub(r"(?<=\d)([\s,-]+)oh\b", r"\g<1>0", s)
        s = re.sub(r"\boh(?=[\s,-]+\d)", "0", s)
    # times
    s = re.sub(r"\b12 (?:noon|midday)\b", "12 pm", s)
    s = re.sub(r"\b(?:noon|midday)\b", "12 pm", s)
    s = re.sub(r"\b12 midnight\b|\bmidnight\b", "12 am", s)
    s = re.sub(r"\bhalf past (\d{1,2})\b", r"\1:30", s)
    s = re.sub(r"\bquarter past (\d{1,2})\b", r"\1:15", s)
    s = re.sub(r"\bquarter to (\d{1,2})\b", _quarter_to, s)
    s = re.sub(r"\b(?<!:)half (\d{1,2})\b(?! (?:dollars?|pounds?|hours?|days?))", r"\1:30", s)
    s = re.sub(r"\b(\d{1,2})(?:am|pm)\b", lambda m: m.group(0)[:-2] + " " + m.group(0)[-2:], s)
    s = re.sub(r"\b(\d{1,2}(?::\d\d)?) in the morning\b", r"\1 am", s)
    s = re.sub(r"\b(\d{1,2}(?::\d\d)?) (?:in the (?:afternoon|evening)|at night)\b", r"\1 pm", s)
    s = re.sub(r"\b(\d{1,2})[ .]([0-5]\d) ?(am|pm)\b", r"\1:\2 \3", s)
    s = re.sub(r"(?<![\d:.])([01]?\d|2[0-3]):([0-5]\d)\b(?! ?[ap]m\b)", _twenty_four, s)
    s = re.sub(r"\b(\d{1,2}):00\b", r"\1", s)
    # amounts
    s = re.sub(rf"\b(\d+) ({_CUR})(?:,? and)? (\d{{1,2}}) (?:cents?|pence|p)\b",
               lambda m: f"{m.group(1)}.{int(m.group(3)):02d} {m.group(2)}", s)
    s = re.sub(rf"\b(\d+) ({_CUR}) (\d\d)\b(?=\s*(?:$|[.,;!?]|each\b|per\b|a\b|an\b|for\b|"
               r"plus\b|and\b|in total\b|total\b))", r"\1.\3 \2", s)
    s = re.sub(rf"\b(\d+)\.(\d) ({_CUR})", r"\1.\g<2>0 \3", s)
    s = re.sub(rf"\b(\d+)\.00 ({_CUR})", r"\1 \2", s)
    s = re.sub(r"\s+", " ", s).strip()
    return s.strip("\"' ")


# --------------------------------------------------------------------------------------------
# Pattern builders (all patterns are matched with re.search on normalise(answer))
# --------------------------------------------------------------------------------------------

_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_ANYDAY = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)s?"
_T = r"\d{1,2}(?::\d\d)?(?: ?[ap]m)?"  # any clock time after normalise
_UNITS = (r"(?:dollars?|pounds?|euros?|cents?|pence|am|pm|days?|hours?|minutes?|weeks?|"
          r"percent|people|x-rays?|times)")


def any_of(*patterns: str) -> str:
    return "|".join(f"(?:{p})" for p in patterns)


def _hm(h: int, m: int = 0) -> str:
    """h (1-12) and minutes as spoken after normalise: "3", "3:30", "3 30"."""
    return rf"{h}(?::00)?" if m == 0 else rf"{h}[: ]{m:02d}"


def tm(h24: int, m: int = 0) -> str:
    """A clock time: tm(15) accepts "3 pm", "3", "3:00"; refuses "3 am", "3:30", "3 dollars"."""
    h = h24 % 12 or 12
    other = "pm" if h24 < 12 else "am"
    return (rf"(?<![\d:.]){_hm(h, m)}(?![\d]|:\d)(?! [0-5]\d\b)(?! ?{other}\b)"
            rf"(?! (?:dollars?|pounds?|euros?|days?|hours?|minutes?|weeks?|percent)\b)")


def close_at(h24: int, m: int = 0) -> str:
    return rf"\b(?:close|closes|closing|closed|until|till|til)\b(?: time is| at| is)? {tm(h24, m)}"


def opens_at(h24: int, m: int = 0) -> str:
    return rf"\bopen(?:s|ing)?\b(?: time is| at| from| is)? {tm(h24, m)}"


def closes_at_not(h24: int, m: int = 0) -> str:
    """A closing time other than h24:m ("until 4" when it closes at 3)."""
    h = h24 % 12 or 12
    return (rf"\b(?:close|closes|closing|until|till|til)\b(?: at| is)? "
            rf"(?!{_hm(h, m)}(?![\d:]|[ ][0-5]\d\b))\d")


def opens_at_not(h24: int, m: int = 0) -> str:
    h = h24 % 12 or 12
    return rf"\bopen(?:s|ing)? (?:at|from) (?!{_hm(h, m)}(?![\d:]|[ ][0-5]\d\b))\d"


def _d(day: str) -> str:
    return rf"{day}s?" if day in _DAYS else rf"(?:{day})"


def open_claim(day: str) -> tuple[str, ...]:
    """Claims of being open on ``day`` ("open on monday", "monday we're open", "monday 7 to 3");
    "not open on monday", "won't be open monday" do not match."""
    d = _d(day)
    return (
        rf"(?<!not )(?<!n't )(?<!not be )(?<!n't be )(?<!never )\bopen(?: on| this| every| next)?"
        rf" {d}\b",
        rf"\b{d},? (?:we'?re|we are|we'?ll be|we will be) open\b",
        rf"\b{d},? (?:from |between )?{_T} ?(?:to|until|till|-|and) ?{_T}",
    )


def closed_claim(day: str) -> tuple[str, ...]:
    """Claims of being closed on ``day``, lists included ("closed mondays and tuesdays");
    "closed monday, wednesday to sunday we're open" does not claim wednesday closed, nor does
    "not closed on saturdays" claim saturday closed."""
    d = _d(day)
    return (
        rf"(?<!not )(?<!n't )(?<!never )\b(?:closed|not open|aren'?t open|are not open|"
        rf"won'?t be open|will not be open|don'?t open|do not open|not be open|shut)"
        rf"(?: on| this| every| next| all day)? "
        rf"(?:{_ANYDAY}(?:,| and| or|, and|, or) )*{d}\b"
        rf"(?! ?(?:to|through|thru|until|till|-) )(?! (?:morning|afternoon|evening)s?\b)",
        rf"\b{d},? (?:we'?re|we are|we'?ll be|we will be) (?:closed|not open|shut)\b",
        rf"\b{d} (?:is|are) (?:closed|our day off|a closed day)\b",
    )


def day_range(day: str, start: str, end: str) -> str:
    """``day`` followed by an opening range ("saturday from 8 to 3"): start/end are regexes."""
    return (rf"\b{_d(day)},? (?:from |between )?(?:{start})(?: ?[ap]m)? ?(?:to|until|till|-|and)"
            rf" ?(?:{end})(?![\d:])")


def money(amount: str, currency: str = "dollars") -> str:
    """An amount as spoken after normalise: money("14.50") accepts "14.50 dollars", "14.5",
    "14 50" ("fourteen fifty"); money("6") accepts "6 dollars", "6", refuses "6 pm", "6.50",
    "16"."""
    whole, _, cents = amount.partition(".")
    if cents.strip("0") == "":
        num = rf"{whole}(?:\.00)?(?![\d]|[.:]\d| \d\d\b)"
    else:
        alts = [rf"\.{cents}", rf" {cents}\b"]
        if cents.endswith("0"):
            alts.append(rf"\.{cents[0]}")
        num = rf"{whole}(?:{'|'.join(alts)})(?!\d)"
    others = _UNITS.replace(rf"{currency[:-1]}s?|", "")
    return rf"(?<![\d.:]){num}(?! ?{others}\b)"


def other_money(amount: str, currency: str = "dollars") -> str:
    """Any amount in ``currency`` other than ``amount`` (for one-price questions)."""
    whole, _, cents = amount.partition(".")
    num = rf"{whole}(?:\.{cents})?" if cents.strip("0") else rf"{whole}(?:\.00)?"
    return rf"(?<![\d.])(?!{num} )\d+(?:\.\d+)? {currency[:-1]}s?\b"


def phone_re(digits: str) -> str:
    return r"(?<!\d)" + r"[\s,.-]*".join(digits) + r"(?!\d)"


_YES_START = r"^(?:yes|yeah|yep|yup|sure|of course|absolutely|certainly|definitely|you bet)\b"
_NO_START = r"^(?:no|nope)\b(?! problem| worries)"
_SORRY_START = r"^(?:sorry|unfortunately|i'?m afraid|i am afraid)\b"
_CLOSED = (r"\b(?:closed|not open|aren'?t open|are not open|isn'?t open|is not open|won'?t be "
           r"open|will not be open|don'?t open|do not open|not be open|shut|day off|days off)\b")
_NEG = any_of(
    _NO_START, _SORRY_START, _CLOSED,
    r"\b(?:too (?:late|early|soon|short)|not enough (?:notice|time)|can'?t|cannot|won'?t be "
    r"able|not able|unable|not possible|isn'?t possible|wouldn'?t be possible|not until|"
    r"not in time|earliest)\b",
    r"\b(?:need|needs|require|requires|required)\b(?: at least)? (?:\d+|a|one) (?:days?|weeks?)",
    r"\b(?:won'?t|wouldn'?t|doesn'?t|does not|will not|would not) work\b",
    r"\b(?:\d+|a|one) (?:days?|weeks?)'?s? (?:notice|in advance|ahead)\b",  # the lead time
)
_AFFIRM = any_of(
    _YES_START,
    r"\b(?:we'?re open|we are open|we'?ll be open|we will be open|we open|we'?re here|"
    r"we are here|that works|works for us|no problem|that'?s fine|is fine|would be fine|"
    r"will be fine|should be fine|that'?s ok(?:ay)?|will work|would work|works)\b",
    r"\b(?:you|we) can\b(?!'t)", r"(?<!not )(?<!n't )\bstill open\b",
    r"(?<!only )(?<!not )(?<!n't )\bopen (?:until|till)\b",
)
# agreeing to something that is not possible
_AGREE = any_of(
    _YES_START,
    r"\b(?:that works|works for us|that'?s fine|no problem|see you (?:then|at)|that'?s "
    r"ok(?:ay)?|we can do (?:that|it)|we'?ll be open then|we will be open then|we'?re open "
    r"then|we are open then|you can come(?: by| in)? then)\b",
    r"\b(?:tomorrow|today|then|that time) (?:works|is fine|would work|will work|would be fine|"
    r"will be fine|is ok(?:ay)?)\b",
)
_NW = r"(?<!whether )(?<!if )"  # "not sure whether we have X" is no claim
_STILL_OPEN = (r"(?<!not )(?<!n't )\b(?:still open|open (?:right )?now|open at the moment|"
               r"open for (?:another|a few more))\b")
_LEAD_NEG = (r"\b(?:too (?:soon|short|late)|not enough (?:notice|time)|can'?t|cannot|won'?t be "
             r"able|unable|not possible|isn'?t possible|wouldn'?t be possible)\b")
_WRONG_CURRENCY = {
    "dollars": r"\b(?:pounds?|euros?|pence)\b",
    "pounds": r"\b(?:dollars?|euros?|cents?)\b",
}

FALLBACK_MUST: tuple[str, ...] = (
    # says it does not know ...
    r"\b(?:don'?t|do not|doesn'?t|does not) (?:know|have (?:any |that |this |the |those )?"
    r"(?:information|info|details?|answer))|\bnot (?:sure|certain)\b|\bunsure\b|"
    r"\bno information\b|\b(?:can'?t|cannot) (?:say|tell you|answer)|\bno idea\b|"
    r"\bnot something i (?:know|have)",
    # ... and offers to take a message
    r"\bmessages?\b|\bcall you back\b|\bget back to you\b|"
    r"\bpass (?:it|that|this|your question|the question) (?:on|along)\b",
)
_UNKNOWN_NOT = (
    _YES_START, _NO_START,
    rf"\d+(?:\.\d+)? (?:{_CUR}|cents?|pence)\b",
    r"(?<![\d:.])\d{1,2}(?::\d\d)? ?(?:am|pm)\b",
)


def _fallback(*claims: str) -> dict[str, tuple[str, ...]]:
    return {"must": FALLBACK_MUST, "must_not": (*_UNKNOWN_NOT, *claims)}


# --------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------

_RAW: list[tuple[str, dict[str, Any]]] = []


def _add(persona: str, category: str, clock: str, turns: str | tuple[str, ...],
         must: tuple[str, ...] | list[str], must_not: tuple[str, ...] | list[str] = (), *,
         held: bool = False, note: str, style: str = "") -> None:
    assert style in ("", *STYLES), style
    _RAW.append((persona, {
        "category": category, "clock": clock,
        "turns": (turns,) if isinstance(turns, str) else tuple(turns),
        "must": tuple(must), "must_not": tuple(must_not), "held_out": held, "note": note,
        "style": style,
    }))


# a held-out case whose failure was looked at and fixed (in the note) is a tuning case after
_MOVED = "(moved to tuning on 2026-12-05: its failure shaped the note) "
_MOVED_1207 = "(moved to tuning on 2026-12-07: its failure shaped the note or the guard) "


def _unknown(persona: str, clock: str, question: str | tuple[str, ...], *claims: str,
             held: bool = False, note: str, style: str = "") -> None:
    fb = _fallback(*claims)
    _add(persona, "unknown", clock, question, fb["must"], fb["must_not"], held=held, note=note,
         style=style)


# ---- bakery: wed-fri 7-3, sat/sun 8-1, closed mon/tue; closed Dec 25, Dec 26, Jan 1 ----------
B = "bakery"
_BK_WED = "2026-12-02T10:00"  # a Wednesday

_add(B, "days", _BK_WED, "Are you open on Mondays?",
     [_CLOSED], [_YES_START, *open_claim("monday")],
     note="Closed Mondays (hours cover wed-sun only).")
_add(B, "days", _BK_WED, "What days of the week are you closed?",
     [r"\bmondays?\b", r"\btuesdays?\b"],
     [*(p for d in _DAYS[2:] for p in closed_claim(d)), *open_claim("monday"),
      *open_claim("tuesday")],
     note="Mondays and Tuesdays; no other weekday may be called closed (holidays may be named).")
_add(B, "days", _BK_WED, "Are you open on Sundays?",
     [any_of(_AFFIRM, day_range("sunday", "8", "1"),
             r"\b(?:from|between) 8(?: am)? (?:to|until|till|-|and) 1\b")],
     [_NO_START, *closed_claim("sunday"), day_range("sunday", "7", _T),
      day_range("sunday", _T, "3")],
     note="Yes, Sundays 8 am to 1 pm (sat,sun list); not the weekday 7-3.")
_add(B, "days", _BK_WED, "Do you open on Tuesdays?",
     [_CLOSED], [_YES_START, *open_claim("tuesday")], held=True,
     note="Closed Tuesdays.")

_add(B, "times", _BK_WED, "Can I come by on Friday at 4 pm?",
     [any_of(_NEG, close_at(15))],
     [_AGREE, closes_at_not(15), day_range("friday", _T, "(?:4|5|6)")],
     note="No: Friday closes at 3 pm.")
_add(B, "times", _BK_WED, "Can I pick up some bread on Thursday at 2:45 in the afternoon?",
     [_AFFIRM],
     [_NO_START, _SORRY_START, *closed_claim("thursday"), closes_at_not(15),
      r"\bclosed (?:then|by then|at that time|at 2:45)\b", r"\btoo late\b"],
     note="Yes: Thursday is open until 3 pm.")
_add(B, "times", _BK_WED, "Will you be open on Saturday at 1:30?",
     [any_of(_NEG, close_at(13))],
     [_AGREE, day_range("saturday", _T, "(?:2|3|4)"),
      r"\b(?:until|till) (?:2|3)(?::\d\d)?(?: pm)? on saturdays?"],
     note="No: Saturdays are 8 am to 1 pm.")
_add(B, "times", _BK_WED, "What time do you open on Saturday?",
     [tm(8)], [opens_at_not(8), r"\bsaturdays?,? (?:at |from )?7(?![\d:])"],
     note="8 am on Saturdays (7 am is the weekday time).")
_add(B, "times", _BK_WED, "How late are you open on Wednesdays?",
     [tm(15)], [closes_at_not(15)], held=True,
     note="Until 3 pm.")

_add(B, "relative", "2026-12-04T16:05", "Are you open right now?",
     [_CLOSED], [_YES_START, _STILL_OPEN, r"\bopen (?:until|till) (?:4|5|6|7)\b"],
     note="Friday 16:05: closed since 3 pm (open again Saturday 8 am).")
_add(B, "relative", "2026-12-06T11:00", "Are you open tomorrow?",
     [_CLOSED], [_YES_START, *open_claim("tomorrow"), *open_claim("monday")],
     note="Sunday; tomorrow is Monday: closed.")
_add(B, "relative", "2026-12-08T09:30", "Are you open today?",
     [_CLOSED], [_YES_START, *open_claim("today"), _STILL_OPEN],
     note="Tuesday: closed (open again Wednesday 7 am).")
_add(B, "relative", "2026-12-23T10:00", "Will you be open this Friday?",
     [_CLOSED], [_YES_START, *open_claim("friday")],
     note="Friday is Dec 25, Christmas Day: closed.")
_add(B, "relative", "2026-12-23T10:00", "Are you open on December 26th?",
     [_CLOSED],
     [_YES_START, *open_claim("saturday"), *open_claim(r"(?:the )?26th"),
      *open_claim(r"december 26(?:th)?")],
     held=True, note="Dec 26 is a Saturday but a configured closed date (no name): closed.")
_add(B, "relative", "2026-12-23T10:00", "Are you open on Christmas Eve?",
     [any_of(_AFFIRM, day_range("(?:thursday|christmas eve)", "7", "3"))],
     [_NO_START, *closed_claim("christmas eve"), *closed_claim("thursday"),
      *closed_claim(r"(?:the )?24th")],
     note="Dec 24 is a Thursday and not a closed date: open 7 am to 3 pm.")
_add(B, "relative", "2026-12-05T12:40", "Are you still open?",
     [_AFFIRM],
     [_NO_START, closes_at_not(13), r"\bclosed (?:now|right now|already|for the day)\b",
      r"\b(?:already|now) closed\b", r"\bnot open (?:now|right now|anymore|any more)\b"],
     held=True, note="Saturday 12:40: yes, open until 1 pm.")
_add(B, "relative", "2026-12-04T09:00", "What time do you close today?",
     [tm(15)], [closes_at_not(15)],
     note="Friday: 3 pm.")

_add(B, "prices", _BK_WED, "How much is a sourdough loaf?",
     [money("6")], [other_money("6")], note="6 dollars.")
_add(B, "prices", _BK_WED, "How much are two sourdough loaves and a croissant?",
     [money("14.50")], [money(x) for x in ("8.50", "14", "15", "16.50", "17")],
     note="2 x 6 + 2.50 = 14.50 dollars.")
_add(B, "prices", _BK_WED, "What does a birthday cake cost?",
     [money("35")], [other_money("35")], note="35 dollars.")
_add(B, "prices", _BK_WED, "How much would three cinnamon rolls and a sourdough loaf be?",
     [money("15.75")], [money(x) for x in ("9.25", "15.25", "15.50", "16", "15")],
     note=_MOVED + "3 x 3.25 + 6 = 15.75 dollars.")

_add(B, "lead", _BK_WED, "Can I order a birthday cake for tomorrow?",
     [_NEG], [_AGREE],
     note="Wednesday -> Thursday is 1 day; birthday cakes need 2 days: no (Friday earliest).")
_add(B, "lead", _BK_WED, "Can I order a birthday cake for Saturday?",
     [_AFFIRM], [_NO_START, _SORRY_START, _LEAD_NEG],
     note="Wednesday -> Saturday is 3 days >= 2, and Saturday is open: yes.")
_add(B, "lead", _BK_WED, "How far in advance do I need to order a birthday cake?",
     [r"(?<![\d.])2 days?\b|\b48 hours\b"],
     [r"(?<![\d.])(?:1|3|4|5|6|7|10|14) days?\b", r"\b(?:a|1) weeks?\b", r"\b24 hours\b"],
     note="2 days ahead.")
_add(B, "lead", "2026-12-03T14:00", "Can I get a party platter for tomorrow?",
     [_AFFIRM], [_NO_START, _SORRY_START, _LEAD_NEG], held=True,
     note="Thursday -> Friday is 1 day = the platter's 1-day lead, Friday open: yes.")
_add(B, "lead", "2026-12-04T09:00", "Could I pick up a party platter later today if I order now?",
     [_NEG], [_AGREE],
     note="Same day; party platters need 1 day's notice: no.")

_unknown(B, _BK_WED, "Do you have parking?",
         r"\byou can park\b", r"\b(?:free|plenty of|street|on-street|ample) parking\b",
         r"(?<!if )(?<!whether )\b(?:we have|we'?ve got|we offer|there'?s|there is)(?: a| some"
         r"| plenty of)? (?:free )?(?:parking|car park)\b",
         r"\b(?:we don'?t have|there'?s no|there is no) (?:any )?parking\b",
         note="Parking is not in the facts: fallback.")
_unknown(B, _BK_WED, "Do you have gluten-free bread?",
         _NW + r"\bwe (?:do|don'?t|do not|have|make|bake|sell|offer|carry)(?: not)?(?: have| make| "
         r"bake| sell| offer| carry)? (?:any |some |a )?gluten[ -]free",
         r"\bgluten[ -]free (?:bread|options?|loaves|products|items) (?:is|are)\b",
         r"\bour gluten",
         note="Not in the facts: fallback, no yes/no.")
_unknown(B, _BK_WED, "Can I get a coffee there?",
         _NW + r"\bwe (?:do|don'?t|do not|serve|sell|make|have|offer)(?: not)?"
         r"(?: serve| sell| make| have| offer)? (?:any |some )?(?:coffee|espresso|drinks)",
         r"\bcoffee (?:is|costs)\b", held=True,
         note="Not in the facts (a bakery might or might not sell coffee): fallback.")
_unknown(B, _BK_WED, "What's the owner's name?",
         r"\bname is\b", r"\b(?:owned|run) by\b", r"\bowner is\b",
         note="Not in the facts: fallback, no invented name.")

_add(B, "followup", _BK_WED, ("Are you open on Sunday?", "And on Monday?"),
     [_CLOSED], [_YES_START, *open_claim("monday")],
     note="Sunday yes (8-1), Monday closed: the last answer must say closed.")
_add(B, "followup", _BK_WED, ("How much is a croissant?", "And four of them?"),
     [money("10")], [money(x) for x in ("7.50", "8", "12", "12.50")],
     note="4 x 2.50 = 10 dollars.")
_add(B, "followup", "2026-12-03T11:00", ("What time do you close today?", "And on Saturday?"),
     [tm(13)], [closes_at_not(13), day_range("saturday", _T, "3")], held=True,
     note="Thursday 3 pm; Saturday 1 pm.")

_add(B, "contact", _BK_WED, "What's your address?",
     [r"\b48 mill (?:road|rd)\b"], [r"(?<!\d)(?<!\d )(?!48 )\d+ mill\b"],
     note="48 Mill Road, Springfield.")
_add(B, "contact", _BK_WED, "What's your phone number?",
     [phone_re("5550142")], [], note="555 0142.")
_add(B, "contact", _BK_WED, "Sorry, what's the name of this place?",
     [r"\briverside bakery\b"], [], note=_MOVED + "Riverside Bakery.")

# held out, written on 2026-12-05 after the note's fixes and before any run of them
_add(B, "contact", _BK_WED, "Hi, which shop is this?",
     [r"\briverside bakery\b"], [], held=True, note="Riverside Bakery.")
_add(B, "prices", _BK_WED, "What would two croissants and a birthday cake come to?",
     [money("40")], [money(x) for x in ("37.50", "42.50", "45", "70")], held=True,
     note="2 x 2.50 + 35 = 40 dollars.")
_add(B, "days", _BK_WED, "Which days can I come in?",
     [r"\bwednesdays?\b", r"\bsundays?\b"],
     [*open_claim("monday"), *open_claim("tuesday"), r"\b(?:from|on) mondays? (?:to|through)\b",
      # "you can come in on monday, tuesday, ..." (passed the first run: the must_not was
      # too narrow; rescored 2026-12-05 before any note change for it)
      r"\b(?:come in|come by|visit|stop by)(?: on)? (?:mondays?|tuesdays?)\b",
      r"\bmondays?,? (?:and |or )?tuesdays?,? (?:and |or )?wednesday"],
     note=_MOVED + "Wednesday to Sunday; not Monday or Tuesday.")

# ---- dental: mon/tue/thu 8:30-12:30 + 1:30-5:30, wed 10-7, fri 8:30-1; closed sat/sun;
#      closed Dec 24, Dec 25, Dec 28 (bank holiday), Jan 1; prices in pounds -------------------
D = "dental"
_DN_MON = "2026-12-07T09:00"  # a Monday
_DN_WRONG_CUR = _WRONG_CURRENCY["pounds"]

_add(D, "days", _DN_MON, "Are you open on Saturdays?",
     [_CLOSED], [_YES_START, *open_claim("saturday")],
     note="Closed on Saturdays (and Sundays).")
_add(D, "days", _DN_MON, "Which days are you open?",
     [any_of(r"\bweekdays?\b", r"\bmondays?\b.*\bfridays?\b")],
     [*open_claim("saturday"), *open_claim("sunday"),
      r"(?<!not )(?<!n't )\bopen (?:on |at )?(?:the )?weekends?\b",
      rf"\b{_ANYDAY} (?:to|through|thru|-) (?:saturday|sunday)s?\b",
      r"\b(?:every day|7 days a week|daily)\b"],
     note="Monday to Friday; not at weekends.")
_add(D, "days", _DN_MON, "Are you open on Wednesdays?",
     [any_of(_AFFIRM, tm(10))], [_NO_START, *closed_claim("wednesday")],
     note="Yes, Wednesdays 10 am to 7 pm.")
_add(D, "days", _DN_MON, "Are you closed on Sundays?",
     [any_of(_YES_START, _CLOSED)],
     [*open_claim("sunday"), r"^(?:no|nope),? (?:we'?re|we are) (?:open|not closed)"],
     held=True, note="Yes, closed on Sundays.")

_add(D, "times", _DN_MON, "Could I come in on Tuesday at 12:45?",
     [any_of(_NEG, r"\blunch\b", r"\bbreak\b")], [_AGREE],
     note="No: Tuesday has a break from 12:30 to 1:30 pm.")
_add(D, "times", _DN_MON, "Can I come in on Thursday at 5 pm?",
     [_AFFIRM],
     [_NO_START, _SORRY_START, *closed_claim("thursday"), r"\bclosed (?:then|by then|at that "
      r"time|at 5)(?![:\d])", r"\bclose[sd]? at 5(?![:\d])", r"\b(?:until|till) 5(?![:\d])"],
     note="Yes: Thursday afternoon runs 1:30 to 5:30 pm.")
_add(D, "times", _DN_MON, "What are your opening hours on Monday?",
     [tm(8, 30), tm(12, 30), tm(13, 30), tm(17, 30)],
     [rf"(?<![\d:]){_hm(8, 30)}(?: am)? ?(?:to|until|till|-) ?{_hm(5, 30)}"],
     note="8:30 to 12:30 and 1:30 to 5:30 (a lunch break), not one 8:30-5:30 range.")
_add(D, "times", _DN_MON, "I can only come on Friday afternoon, around 2. Are you open then?",
     [any_of(_NEG, close_at(13))],
     [_AGREE, day_range("friday", _T, "(?:5|5:30|7)"),
      r"\b(?:until|till) (?:5|5:30|7)(?: pm)? on fridays?"],
     note="No: Fridays close at 1 pm.")
_add(D, "times", _DN_MON, "What time do you close on Wednesdays?",
     [tm(19)], [closes_at_not(19)], held=True, note="7 pm.")
_add(D, "times", _DN_MON, "Can I come in at 9 on Wednesday morning?",
     [any_of(_NEG, opens_at(10))],
     [_AGREE, r"\bopen(?:s|ing)? (?:at|from) (?:8|8:30|9)(?![\d:])(?: am)? on wednesdays?",
      r"\bwednesdays?,? (?:we )?open(?:s)? (?:at|from) (?:8|8:30|9)(?![\d:])"],
     note="No: Wednesdays open at 10 am.")

_add(D, "relative", "2026-12-08T12:50", "Are you open right now?",
     [any_of(_CLOSED, r"\blunch\b", r"\bbreak\b", r"\bback at\b")], [_YES_START, _STILL_OPEN],
     note="Tuesday 12:50 is inside the 12:30-1:30 break: not open now, back at 1:30.")
_add(D, "relative", "2026-12-21T16:00", "Are you open this Thursday?",
     [_CLOSED], [_YES_START, *open_claim("thursday")],
     note="Thursday is Dec 24, Christmas Eve: closed.")
_add(D, "relative", "2026-12-18T10:00", "Are you open on Monday the 28th?",
     [_CLOSED], [_YES_START, *open_claim("monday"), *open_claim(r"(?:the )?28th")],
     note="Dec 28 is a closed date (Boxing Day bank holiday).")
_add(D, "relative", "2026-12-18T10:00", "What about Tuesday the 29th, are you open then?",
     [any_of(_AFFIRM, tm(8, 30))],
     [_NO_START, *closed_claim("tuesday"), *closed_claim(r"(?:the )?29th")], held=True,
     note="Dec 29 is an ordinary Tuesday: open 8:30-12:30 and 1:30-5:30.")
_add(D, "relative", "2026-12-04T14:00", "Are you still open today?",
     [_CLOSED], [_YES_START, _STILL_OPEN, r"\bopen (?:until|till) (?:5|5:30|7)\b"],
     note="Friday 14:00: Fridays close at 1 pm, so closed now.")
_add(D, "relative", "2026-12-08T18:00", "What time do you open tomorrow?",
     [tm(10)], [opens_at_not(10)],
     note="Tuesday evening; tomorrow is Wednesday: 10 am.")
_add(D, "relative", "2026-12-05T10:00", "Are you open today?",
     [_CLOSED], [_YES_START, *open_claim("today"), _STILL_OPEN], held=True,
     note="Saturday: closed.")

_add(D, "prices", _DN_MON, "How much is a check-up?",
     [money("55", "pounds")], [other_money("55", "pounds"), _DN_WRONG_CUR],
     note="55 pounds (the currency is pounds, not dollars).")
_add(D, "prices", _DN_MON, "How much for a check-up and an x-ray?",
     [money("80", "pounds")],
     [*(money(x, "pounds") for x in ("70", "75", "85", "90")), _DN_WRONG_CUR],
     note="55 + 25 = 80 pounds.")
_add(D, "prices", _DN_MON, "How much does teeth whitening cost?",
     [money("299", "pounds")], [other_money("299", "pounds"), _DN_WRONG_CUR],
     note="299 pounds.")
_add(D, "prices", _DN_MON, "What would two fillings and a check-up cost?",
     [money("295", "pounds")],
     [*(money(x, "pounds") for x in ("175", "230", "300", "350")), _DN_WRONG_CUR], held=True,
     note="2 x 120 + 55 = 295 pounds.")

_add(D, "lead", _DN_MON, "Can I book teeth whitening for this Friday?",
     [_NEG], [_AGREE],
     note="Monday -> Friday Dec 11 is 4 days; whitening needs 7: no.")
_add(D, "lead", _DN_MON, "Can I book a cleaning for Thursday?",
     [_AFFIRM], [_NO_START, _SORRY_START, _LEAD_NEG],
     note="Monday -> Thursday is 3 days >= 2 for a cleaning: yes.")
_add(D, "lead", _DN_MON, "How much notice do you need for teeth whitening?",
     [r"(?<![\d.])7 days?\b|\b(?:a|1) week\b"],
     [r"(?<![\d.])(?:1|2|3|4|5|10|14) days?\b", r"\b2 weeks\b", r"\b(?:24|48) hours\b"],
     note="7 days (a week).")
_add(D, "lead", _DN_MON, "Could I get a cleaning tomorrow?",
     [_NEG], [_AGREE], held=True,
     note="Monday -> Tuesday is 1 day; a cleaning needs 2: no.")

_unknown(D, _DN_MON, "Is there parking near the practice?",
         r"\byou can park\b", r"\b(?:free|plenty of|street|on-street|ample) parking\b",
         r"(?<!if )(?<!whether )\b(?:we have|we'?ve got|there'?s|there is)(?: a| some| plenty of)?"
         r" (?:free )?(?:parking|car park)\b",
         r"\b(?:we don'?t have|there'?s no|there is no) (?:any )?(?:parking|car park)\b",
         note="Not in the facts: fallback.")
_unknown(D, _DN_MON, "Do you have an emergency number for the weekend?",
         r"\bemergency (?:number|line) is\b",
         r"\b(?:we have|there is|there'?s) an? (?:emergency|out[ -]of[ -]hours)",
         r"\bwe (?:don'?t|do not) have an? (?:emergency|out[ -]of[ -]hours)",
         note="Not in the facts: fallback; no invented line.")
_unknown(D, _DN_MON, "Do you do braces?",
         _NW + r"\bwe (?:do|don'?t|do not|offer|provide|fit)(?: not)?(?: offer| provide| do| fit)? "
         r"(?:braces|orthodontic)",
         r"\bbraces (?:are|cost)\b", held=True,
         note="Braces are not a listed service: fallback, no yes/no.")
_unknown(D, _DN_MON, "What's the dentist's name?",
         r"\b(?:dr|doctor)\.? (?!who\b)[a-z]{3,}", r"\bname is\b", r"\bdentist is\b",
         note="Not in the facts: fallback.")

_add(D, "followup", _DN_MON, ("What time do you open on Mondays?", "And on Wednesdays?"),
     [tm(10)], [opens_at_not(10)],
     note="Monday 8:30; Wednesday 10 am.")
_add(D, "followup", _DN_MON, ("How much is an x-ray?", "And if I need three of them?"),
     [money("75", "pounds")],
     [*(money(x, "pounds") for x in ("50", "78", "100")), _DN_WRONG_CUR],
     note="3 x 25 = 75 pounds.")
_add(D, "followup", _DN_MON,
     ("Are you open on Friday afternoons?", "What about Thursday afternoon?"),
     [any_of(_AFFIRM, tm(13, 30))],
     [_NO_START, *closed_claim("thursday"), r"\bclosed (?:on )?thursday afternoons?",
      r"\bthursday afternoons?,? (?:we'?re|we are) closed"], held=True,
     note="Friday afternoon closed (1 pm); Thursday afternoon open 1:30-5:30.")

_add(D, "contact", _DN_MON, "Where are you located?",
     [r"\b(?:215|2 ?1 ?5|2 15) high (?:street|st)\b"], [r"(?<!\d)(?<!\d )(?!215 )\d+ high st"],
     note="215 High Street, Kingston.")
_add(D, "contact", _DN_MON, "What's your phone number?",
     [any_of(phone_re("02079460321"), r"\+?" + phone_re("442079460321"))], [],
     note="020 7946 0321.")
_add(D, "contact", _DN_MON, "Sorry, who have I called?",
     [r"\bbright smile\b"], [], note=_MOVED + "Bright Smile Dental.")

# held out, written on 2026-12-05 after the note's fixes and before any run of them
_add(D, "contact", _DN_MON, "Who am I speaking with?",
     [r"\bbright smile\b"], [], held=True, note="Bright Smile Dental.")
_add(D, "prices", _DN_MON, "How much for a cleaning and two x-rays?",
     [money("125", "pounds")],
     [*(money(x, "pounds") for x in ("100", "150", "175")), _DN_WRONG_CUR], held=True,
     note="75 + 2 x 25 = 125 pounds.")
_add(D, "days", _DN_MON, "Are you open at the weekend?",
     [_CLOSED], [_YES_START, *open_claim("saturday"), *open_claim("sunday"),
                 r"\b(?:to|through|thru) (?:saturday|sunday)s?\b"],
     held=True, note="No: closed Saturday and Sunday.")

# ---- garage: mon-fri 7:30-5:30, sat 8-12, closed sun; closed Dec 24, 25, 31, Jan 1 -----------
G = "garage"
_GA_MON = "2026-12-07T09:00"  # a Monday

_add(G, "days", _GA_MON, "Are you open on Sundays?",
     [_CLOSED], [_YES_START, *open_claim("sunday")], note="Closed Sundays.")
_add(G, "days", _GA_MON, "Are you open on Saturdays?",
     [any_of(_AFFIRM, tm(8))],
     [_NO_START, *closed_claim("saturday"), day_range("saturday", _T, "(?:5|5:30|6)"),
      r"\bopen (?:until|till) 5:30 on saturdays?"],
     note="Yes, Saturdays 8 am to noon.")
_add(G, "days", _GA_MON, "What days are you open?",
     [r"\bmondays?\b", r"\bsaturdays?\b"],
     [*open_claim("sunday"), r"\b(?:every day|7 days a week|daily)\b",
      rf"\b{_ANYDAY} (?:to|through|thru|-) sundays?\b"],
     note="Monday to Friday and Saturday (mornings); never Sunday.")
_add(G, "days", _GA_MON, "Do you work on Wednesdays?",
     [any_of(_AFFIRM, tm(7, 30))], [_NO_START, *closed_claim("wednesday")],
     note=_MOVED_1207 + "Yes, 7:30 am to 5:30 pm.")

_add(G, "times", _GA_MON, "Can I drop my car off Monday at 7 am?",
     [any_of(_NEG, opens_at(7, 30), r"\b(?:a bit|a little) early\b")],
     [_AGREE, opens_at_not(7, 30)],
     note="No: it opens at 7:30 am.")
_add(G, "times", _GA_MON, "Can I pick up my car Friday at 5:15 pm?",
     [_AFFIRM],
     [_NO_START, _SORRY_START, *closed_claim("friday"), r"\bclose[sd]? at 5(?![:\d])",
      r"\b(?:until|till) 5(?![:\d])", r"\bclosed (?:then|by then|at that time)\b"],
     note="Yes: Friday is open until 5:30 pm.")
_add(G, "times", _GA_MON, "Can I come in Saturday at 12:30?",
     [any_of(_NEG, close_at(12))],
     [_AGREE, day_range("saturday", _T, r"(?:1|2|3|4|5|5:30)"),
      r"\b(?:until|till) (?:1|2|3|4|5|5:30)(?: pm)? on saturdays?"],
     note="No: Saturdays close at noon.")
_add(G, "times", _GA_MON, "What time do you close on Saturdays?",
     [tm(12)], [closes_at_not(12)], held=True, note="Noon (12 pm).")
_add(G, "times", _GA_MON, "What time do you open on weekdays?",
     [tm(7, 30)], [opens_at_not(7, 30)], note="7:30 am.")

_add(G, "relative", "2026-12-07T17:45", "Are you still open?",
     [_CLOSED], [_YES_START, _STILL_OPEN, r"\bopen (?:until|till) (?:6|7|8)\b"],
     note="Monday 17:45: closed at 5:30 pm.")
_add(G, "relative", "2026-12-23T15:00", "Are you open tomorrow?",
     [_CLOSED], [_YES_START, *open_claim("tomorrow"), *open_claim("thursday")],
     note="Tomorrow is Thursday Dec 24, Christmas Eve: closed.")
_add(G, "relative", "2026-12-30T10:00", "Will you be open tomorrow?",
     [_CLOSED], [_YES_START, *open_claim("tomorrow"), *open_claim("thursday")],
     note="Tomorrow is Thursday Dec 31, an unnamed closed date: closed.")
_add(G, "relative", "2026-12-29T10:00", "Are you open this Saturday?",
     [any_of(_AFFIRM, tm(8))], [_NO_START, *closed_claim("saturday")], held=True,
     note="This Saturday is Jan 2, 2027, not a closed date (Jan 1 is): open 8 to noon.")
_add(G, "relative", "2026-12-12T07:45", "Are you open right now?",
     [any_of(_NEG, r"\bnot yet\b", opens_at(8), r"\bin 15 minutes\b")],
     [_YES_START, _STILL_OPEN], held=True,
     note="Saturday 7:45: not yet, opens at 8 am.")
_add(G, "relative", "2026-12-13T11:00", "Are you open today?",
     [_CLOSED], [_YES_START, *open_claim("today"), _STILL_OPEN], note="Sunday: closed.")
_add(G, "relative", "2026-12-04T11:00", "How late are you open today?",
     [tm(17, 30)], [closes_at_not(17, 30)], note="Friday: until 5:30 pm.")

_add(G, "prices", _GA_MON, "How much is an oil change?",
     [money("49")], [other_money("49")], note="49 dollars.")
_add(G, "prices", _GA_MON, "How much for an oil change and a tire rotation?",
     [money("74")], [money(x) for x in ("64", "75", "79", "84")],
     note="49 + 25 = 74 dollars.")
_add(G, "prices", _GA_MON, "What does a wheel alignment cost?",
     [money("89.99")], [other_money("89.99")],
     note="89.99 dollars (not 'about 90').")
_add(G, "prices", _GA_MON, "How much would two oil changes and a brake inspection be?",
     [money("128")], [money(x) for x in ("79", "108", "118", "138")], held=True,
     note="2 x 49 + 30 = 128 dollars.")

_add(G, "lead", _GA_MON, "Can you do a wheel alignment today?",
     [_NEG], [_AGREE], note="Same day; alignments need 1 day's notice: no (tomorrow is fine).")
_add(G, "lead", _GA_MON, "Can I book a timing belt replacement for Friday?",
     [_AFFIRM], [_NO_START, _SORRY_START, _LEAD_NEG],
     note="Monday -> Friday Dec 11 is 4 days >= 3: yes.")
_add(G, "lead", _GA_MON, "Could you replace my timing belt on Wednesday?",
     [_NEG], [_AGREE], note="Monday -> Wednesday is 2 days; timing belts need 3: no.")
_add(G, "lead", _GA_MON, "How many days ahead do I need to book a timing belt replacement?",
     [r"(?<![\d.])3 days?\b|\b72 hours\b"],
     [r"(?<![\d.])(?:1|2|4|5|6|7|10|14) days?\b", r"\b(?:a|1) weeks?\b", r"\b(?:24|48) hours\b"],
     held=True, note="3 days.")

_unknown(G, _GA_MON, "Do you offer a loaner car?",
         _NW + r"\b(?:we|there)(?: do| don'?t| do not| have| offer| provide| is| are)(?: not)?"
         r"(?: have| offer| provide)? (?:a |an |any |no )?(?:free )?"
         r"(?:loaner|courtesy|rental|replacement) (?:cars?|vehicles?)",
         r"\bloaner (?:cars? )?(?:is|are) (?:available|free)\b",
         note="Not in the facts: fallback.")
_unknown(G, _GA_MON, "Do you take credit cards?",
         _NW + r"\bwe (?:do|don'?t|do not|accept|take)(?: not)?(?: accept| take)? (?:all )?"
         r"(?:major )?(?:credit|debit|cards|visa|mastercard|cash)",
         r"\b(?:cash|card)[ -]only\b",
         note="Payment methods are not in the facts: fallback.")
_unknown(G, _GA_MON, "Do you have a tow truck?",
         _NW + r"\bwe (?:do|don'?t|do not|have|offer|provide)(?: not)?(?: have|"
         r" offer| provide)? (?:a |an |any |no )?(?:tow|towing)", held=True,
         note="Towing is not in the facts: fallback.")
_unknown(G, _GA_MON, "What brand of oil do you use?",
         r"\b(?:mobil|castrol|valvoline|pennzoil|shell|quaker state|synthetic)\b",
         note="Not in the facts: fallback, no invented brand.")

_add(G, "followup", _GA_MON, ("Are you open Saturday?", "And Sunday?"),
     [_CLOSED], [_YES_START, *open_claim("sunday")],
     note="Saturday 8-12; Sunday closed.")
_add(G, "followup", _GA_MON, ("How much is a tire rotation?", "And a brake inspection?"),
     [money("30")], [money(x) for x in ("20", "35", "40")],
     note="Brake inspection 30 dollars (25 + 30 = 55 as a total is fine too).")
_add(G, "followup", "2026-12-04T16:00",
     ("What's your address?", "And what time do you open tomorrow?"),
     [tm(8)], [opens_at_not(8)], held=True,
     note="Friday; tomorrow is Saturday: 8 am (not the weekday 7:30).")

_add(G, "contact", _GA_MON, "What's your address?",
     [r"\b(?:350|3 50|3 5 0) harbor (?:boulevard|blvd)\b"],
     [r"(?<!\d)(?<!\d )(?!350 )\d+ harbor\b"],
     note="350 Harbor Boulevard, Fresno.")
_add(G, "contact", _GA_MON, "Can I get your phone number?",
     [phone_re("5550198")], [], note="555 0198.")
_add(G, "contact", _GA_MON, "Sorry, which garage did I call?",
     [r"\boakwood auto\b"], [], note=_MOVED + "Oakwood Auto Repair.")
_add(G, "contact", _GA_MON, "Is this Oakwood Auto Repair?",
     [any_of(_YES_START, r"\b(?:this is|you'?ve reached|you have reached|welcome to|"
             r"that'?s right|correct)\b")],
     [_NO_START, r"\bwrong number\b"], note="Yes.")


# held out, written on 2026-12-05 after the note's fixes and before any run of them
_add(G, "contact", _GA_MON, "What's the name of your garage?",
     [r"\boakwood auto\b"], [], held=True, note="Oakwood Auto Repair.")
_add(G, "prices", _GA_MON, "How much would a wheel alignment and a tire rotation be?",
     [money("114.99")], [money(x) for x in ("104.99", "115", "124.99", "139.99")], held=True,
     note="89.99 + 25 = 114.99 dollars.")
_add(G, "days", _GA_MON, "Are you open on weekends?",
     [r"\bsaturdays?\b"],
     [_NO_START, *closed_claim("saturday"), *open_claim("sunday")],
     note=_MOVED + "Saturday 8 am to 12 noon; Sunday closed.")

_add(D, "days", _DN_MON, "Do you open on Saturday mornings?",
     [_CLOSED], [_YES_START, *open_claim("saturday"), r"\bsaturday mornings?,? (?:from|at)\b"],
     note="No: closed Saturday.")

# held out, written on 2026-12-05 with the note's days changes (the answer worded for days
# that differ; every open day named) and before any run of them
_add(B, "days", _BK_WED, "Are you open every day of the week?",
     [any_of(r"\bmondays?\b", r"\btuesdays?\b")],
     [_YES_START, *open_claim("monday"), *open_claim("tuesday"),
      r"(?<!not )\b(?:every day|7 days a week|daily)\b(?! except)"],
     note=_MOVED + "No: closed Monday and Tuesday.")
_add(B, "days", _BK_WED, "Are you open on Tuesdays and Thursdays?",
     [r"\bthursdays?\b", any_of(*closed_claim("tuesday"))],
     [_YES_START, *open_claim("tuesday"), *closed_claim("thursday")],
     held=True, note="Thursday 7 am to 3 pm; Tuesday closed.")
_add(D, "days", _DN_MON, "On which days do you see patients?",
     [any_of(r"\bweekdays?\b", r"\bmondays?\b.*\bfridays?\b")],
     [*open_claim("saturday"), *open_claim("sunday"),
      r"(?<!not )(?<!n't )\bopen (?:on |at )?(?:the )?weekends?\b",
      rf"\b{_ANYDAY} (?:to|through|thru|-) (?:saturday|sunday)s?\b",
      r"\b(?:every day|7 days a week|daily)\b"],
     note=_MOVED + "Monday to Friday.")
_add(G, "days", _GA_MON, "Can I bring my car in on Saturday or Sunday?",
     [r"\bsaturdays?\b"],
     [_NO_START, *closed_claim("saturday"), *open_claim("sunday")],
     note=_MOVED + "Saturday 8 am to 12 noon; not Sunday.")
_add(G, "days", _GA_MON, "Which days are you closed?",
     [r"\bsundays?\b"],
     [*closed_claim("monday"), *closed_claim("saturday"), *open_claim("sunday")],
     note=_MOVED + "Sunday (and the holidays).")

# held out, written on 2026-12-05 after the "every day" verdict and before any run of it
_add(B, "days", _BK_WED, "Can I come in on Monday or Tuesday?",
     [_CLOSED], [_YES_START, *open_claim("monday"), *open_claim("tuesday")],
     held=True, note="No: closed both days.")
_add(B, "days", _BK_WED, "Is there a day of the week when you're closed?",
     [r"\bmondays?\b", r"\btuesdays?\b"],
     [*(c for d in ("wednesday", "thursday", "friday", "saturday", "sunday")
        for c in closed_claim(d))],
     held=True, note="Yes: Monday and Tuesday.")
_add(D, "days", _DN_MON, "Are you open on Fridays and Saturdays?",
     [r"\bfridays?\b", any_of(*closed_claim("saturday"), r"\bnot (?:on )?saturdays?\b")],
     [_YES_START, *open_claim("saturday"), *closed_claim("friday")],
     held=True, note="Friday 8:30 am to 1 pm; Saturday closed.")
_add(G, "days", _GA_MON, "Are you open all week?",
     [r"\bsundays?\b"], [_YES_START, *open_claim("sunday")],
     held=True, note="No: closed Sunday.")

# held out, written on 2026-12-05 after the days-answer wording, "are you closed" and coming
# in on a day, before any run of them
_add(B, "days", _BK_WED, "Which days are you shut?",
     [r"\bmondays?\b", r"\btuesdays?\b"],
     [*(c for d in ("wednesday", "thursday", "friday", "saturday", "sunday")
        for c in closed_claim(d))],
     held=True, note="Monday and Tuesday.")
_add(D, "days", _DN_MON, "Can I drop in on Tuesday or Saturday?",
     [r"\btuesdays?\b", any_of(*closed_claim("saturday"), r"\bnot (?:on )?saturdays?\b")],
     [*open_claim("saturday"), *closed_claim("tuesday")],
     note=_MOVED_1207 + "Tuesday 8:30 am to 12:30 pm and 1:30 to 5:30 pm; not Saturday.")
_add(G, "days", _GA_MON, "What days of the week do you work?",
     [r"\bsaturdays?\b", any_of(r"\bmondays?\b", r"\bweekdays?\b")],
     [*open_claim("sunday"), r"\b(?:every day|7 days a week|daily)\b",
      rf"\b{_ANYDAY} (?:to|through|thru|-) sundays?\b"],
     held=True, note="Monday to Saturday; not Sunday.")
_add(D, "days", _DN_MON, "Are you closed on Wednesdays?",
     [any_of(_NO_START, *open_claim("wednesday"))], [_YES_START, *closed_claim("wednesday")],
     held=True, note="No: Wednesday 10 am to 7 pm.")
_add(G, "days", _GA_MON, "Are you closed on Saturdays?",
     [any_of(_NO_START, *open_claim("saturday"))], [_YES_START, *closed_claim("saturday")],
     held=True, note="No: Saturday 8 am to 12 noon.")


# ---- vet (tuning): questions phrased as callers talk, written by the developers to tune the
# meaning of questions (pipeline/facts/relevance.py) on; the first four are the ones a new user
# asked. Mon-Fri 8-6, Sat 9-1, closed Sunday; vaccination 35, nail trim 15, check-up 50, dental
# cleaning 120 (3 days ahead). -----------------------------------------------------------------
V = "vet"
_VT_WED = "2026-12-09T10:00"  # a Wednesday

_add(V, "prices", _VT_WED, "Hi, um, I was wondering what you guys charge for trimming a dog's "
     "nails?", [money("15")], [other_money("15")], style="you-guys", note="Nail trim: 15.")
_add(V, "partial", _VT_WED, "How much are the shots, and do I need an appointment for them?",
     [money("35"), *FALLBACK_MUST], [other_money("35")], style="two-in-one",
     note="Vaccination 35; appointments are not in the facts.")
_add(V, "times", _VT_WED, "Yeah hi, I wanted to check, could I come by on Saturday morning, "
     "like around ten?", [_AFFIRM], [_NO_START, *closed_claim("saturday")], style="loose-time",
     note="Saturday 9 am to 1 pm: yes.")
_add(V, "relative", _VT_WED, "Is there any way someone could see my cat this Sunday?",
     [_NEG], [_YES_START, *open_claim("sunday")], style="indirect", note="Closed Sundays.")
_unknown(V, _VT_WED, "Do you guys do surgery on Saturdays?", style="you-guys",
         note="Surgery is not in the facts.")
_unknown(V, _VT_WED, "Um, hi, is there parking there?", style="filler", note="Not in the facts.")
_add(V, "prices", _VT_WED, "What would a regular checkup for my dog run me?", [money("50")],
     [other_money("50")], style="synonym", note="Check-up 50.")
_add(V, "prices", _VT_WED, "My cat's teeth are looking pretty gross, how much do you charge to "
     "clean them?", [money("120")], [other_money("120")], style="indirect",
     note="Dental cleaning 120.")
_add(V, "lead", _VT_WED, "Could I get my dog's teeth cleaned tomorrow?", [_NEG], [_AGREE],
     style="indirect", note="Dental cleaning needs 3 days' notice: no (Saturday earliest).")
_add(V, "times", _VT_WED, "Are you guys open after work today?",
     [any_of(_AFFIRM, close_at(18))], [_NO_START, closes_at_not(18)], style="loose-time",
     note="Wednesday until 6 pm: yes.")
_add(V, "relative", _VT_WED, "Can I bring him in tonight?", [any_of(_NEG, close_at(18))],
     [_YES_START, closes_at_not(18)], style="loose-time",
     note="Wednesday closes at 6 pm: not in the evening.")
_add(V, "partial", _VT_WED, "Do you do nail trims, and do you take pet insurance?",
     [any_of(_AFFIRM, money("15")), *FALLBACK_MUST],
     # "we do not take pet insurance" passed until 2026-12-07 (rescored before any change for it)
     [other_money("15"), _NW + r"\bwe (?:do|don'?t|do not)(?: not)? (?:take|accept)(?: any)? "
      r"(?:pet )?insurance", r"\binsurance (?:is|isn'?t|is not) (?:accepted|taken)\b"],
     style="two-in-one", note="Nail trims yes (15); insurance is not in the facts.")
_unknown(V, _VT_WED, "Do you guys sell dog food?", style="you-guys", note="Not in the facts.")
_unknown(V, _VT_WED, "My puppy needs a microchip, can you do that?", style="indirect",
         note="Microchips are not in the facts.")
_add(V, "contact", _VT_WED, "Where are you guys located?", [r"\b48 harbor"], [],
     style="you-guys", note="48 Harbor Street, Portland.")
_add(V, "prices", _VT_WED, "How much is a checkup, and can I just walk in?",
     [money("50"), any_of(_AFFIRM, r"\bwalk-? ?ins?\b")], [other_money("50")],
     style="two-in-one", note="Check-up 50; walk-ins welcome.")
_add(V, "days", _VT_WED, "So, uh, are you open on Sundays at all?", [_NEG],
     [_YES_START, *open_claim("sunday")], style="filler", note="Closed Sundays.")
_add(V, "relative", _VT_WED, "Could I pop in first thing tomorrow morning?",
     [any_of(_AFFIRM, opens_at(8))], [_NO_START, opens_at_not(8)], style="loose-time",
     note="Thursday from 8 am: yes.")
_add(V, "prices", _VT_WED, "How much for a rabies shot?", [money("35")], [other_money("35")],
     style="synonym", note="A vaccination: 35.")
_unknown(V, _VT_WED, "Can you guys board my dog over Christmas?", style="you-guys",
         note="Boarding is not in the facts.")
_add(V, "partial", _VT_WED, "How much is a nail trim, and do you do grooming too?",
     [money("15"), *FALLBACK_MUST], [other_money("15")], style="two-in-one",
     note="Nail trim 15; grooming is not in the facts.")
_unknown(V, _VT_WED, "Hi there, um, who's the vet working today?", r"\bdr\.? [a-z]",
         style="filler", note="Staff are not in the facts.")
_add(V, "prices", _VT_WED, "What do the vaccinations cost, and what about nail trims?",
     [money("35"), money("15")], [], style="two-in-one", note="35 and 15.")
_add(V, "times", _VT_WED, "What time do you guys close on Saturday?", [tm(13)],
     [closes_at_not(13)], style="you-guys", note="1 pm.")
_add(V, "relative", _VT_WED, "Oh hey, are you still open right now?", [_AFFIRM],
     [_NO_START, closes_at_not(18)], style="filler", note="Wednesday 10 am: open until 6 pm.")


# ---- natural phrasing, held out ----------------------------------------------------------------
# BEGIN NATURAL HELD-OUT CASES
# Written from the three tables and the calendar only, in the words callers use (lay words for
# the listed items, fillers, two questions in one breath, loose times). Every case is held out.

# -- bakery (Chicago): wed-fri 7-3, sat/sun 8-1; closed mon/tue, Dec 25, Dec 26, Jan 1 --------
_add(B, "times", _BK_WED,
     "Hi, um, yeah, I was just wondering what time you open up on, uh, Sunday?",
     [tm(8)],
     [opens_at_not(8), r"\bsundays?,? (?:at |from )?7(?![\d:])", *closed_claim("sunday")],
     held=True, style="filler",
     note="8 am: Sunday is on the sat,sun 08:00-13:00 line (7 am is the Wed-Fri time).")
_add(B, "prices", _BK_WED, "Hey, how much for one of those cinnamon buns?",
     [money("3.25")], [other_money("3.25")], held=True, style="synonym",
     note="'Cinnamon bun' = the cinnamon roll: 3.25 dollars.")
_add(B, "lead", "2026-12-04T10:00",
     "Hi, so my son's birthday party is tomorrow and I totally forgot about the cake. Could I "
     "still get one from you for tomorrow?",
     [_NEG], [_AGREE], held=True, style="indirect",
     note="Friday -> Saturday is 1 day; birthday cakes need 2 days: no (Sunday the 6th is the "
          "earliest, and Sunday is open).")
_add(B, "prices", _BK_WED,
     "Hey, quick one, what are you charging for croissants these days, and how about one of "
     "the party platters?",
     [money("2.50"), money("45")], [money(x) for x in ("3.25", "35", "40", "47.50")],
     held=True, style="two-in-one",
     note="Both known: croissant 2.50 dollars, party platter 45 dollars.")
_add(B, "days", _BK_WED,
     "Two things, are you open on Tuesday, and what time do you get going Wednesday morning?",
     [_CLOSED, tm(7)],
     [_YES_START, *open_claim("tuesday"), opens_at_not(7), r"\bwednesdays?,? (?:at |from )?8\b"],
     held=True, style="two-in-one",
     note="Both known: closed Tuesdays; Wednesday opens at 7 am.")
_add(B, "times", _BK_WED, "Could I pop by after work on Thursday to pick up a loaf?",
     [any_of(_NEG, close_at(15))],
     [_AGREE, r"\bopen (?:until|till) (?:5|5:30|6|7)\b",
      r"\b(?:close|closes|closing) (?:at )?(?:5|5:30|6|7)(?![\d:])(?! on (?:saturday|sunday))"],
     held=True, style="loose-time",
     note="'After work' on a weekday ~5:30-6 pm; Thursday closes at 3 pm: no (pointing to the "
          "weekend, 8 am to 1 pm, is fine).")
_add(B, "relative", "2026-12-05T18:00",
     "Are you guys open first thing tomorrow? I wanted to grab some croissants early.",
     [tm(8)],
     [_NO_START, *closed_claim("sunday"), *closed_claim("tomorrow"), opens_at_not(8),
      day_range("(?:sunday|tomorrow)", "7", _T)],
     style="loose-time",
     note=_MOVED_1207 + "Saturday evening; tomorrow is Sunday Dec 6: 'first thing' = "
          "opening time, 8 am (not the weekday 7 am). The opening time is required.")
_add(B, "relative", "2026-12-04T14:30",
     "I'm leaving the office in a bit, if I come over in an hour or so will you still be open?",
     [any_of(_NEG, close_at(15))],
     [_AGREE, r"\b(?:close|closes|closing|until|till) (?:at )?(?:4|5|6)(?![\d:])"],
     style="loose-time",
     note=_MOVED_1207 + "Friday 14:30 + about an hour = ~3:30 pm; Friday closes at 3 pm: no.")
_add(B, "relative", "2026-12-22T10:00", "Do you guys open the day after Christmas?",
     [_CLOSED],
     [_YES_START, *open_claim("saturday"), *open_claim(r"(?:the )?26th"),
      *open_claim(r"december 26(?:th)?"), *open_claim("boxing day")],
     held=True, style="you-guys",
     note="Dec 26 is a Saturday but a configured closed date: closed.")
_add(B, "prices", _BK_WED, "What do you guys charge for one of your birthday cakes?",
     [money("35")], [other_money("35")], held=True, style="you-guys",
     note="35 dollars.")
_add(B, "prices", _BK_WED,
     "I'm having a few people over on Sunday, I was thinking two loaves of the sourdough and "
     "maybe four of the cinnamon rolls. What would that come to?",
     [money("25")], [money(x) for x in ("9.25", "18.50", "24", "26", "28", "37")],
     style="indirect",
     note=_MOVED_1207 + "2 x 6 + 4 x 3.25 = 12 + 13 = 25 dollars.")
_add(B, "lead", _BK_WED, "How much notice do you need for one of your party trays?",
     [any_of(r"(?<![\d.])1 day\b", r"\ba day\b", r"\b24 hours\b",
             r"\bday (?:before|ahead|in advance)\b")],
     [r"(?<![\d.])(?:2|3|4|5|7) days?\b", r"\b48 hours\b", r"\b(?:a|1) weeks?\b"],
     held=True, style="synonym",
     note="'Party tray' = the party platter: 1 day's notice.")
_add(B, "partial", _BK_WED, "How much is a croissant, and do you do almond ones too?",
     [money("2.50"), *FALLBACK_MUST],
     [other_money("2.50"), _NW + r"\bwe (?:do|don'?t|do not|have|make|bake|sell|offer)(?: not)?"
      r"(?: have| make| bake| sell| offer)? (?:any |some )?almond",
      r"\balmond (?:croissants?|ones?) (?:are|is|cost)\b"],
     style="two-in-one",
     note=_MOVED_1207 + "Croissant 2.50 dollars; almond croissants are not in the facts: "
     "fallback for that part.")
_add(B, "partial", _BK_WED, "Do you guys deliver? And what time do you close Saturdays?",
     [tm(13), *FALLBACK_MUST],
     [closes_at_not(13), day_range("saturday", _T, "(?:2|3)"),
      _NW + r"\bwe (?:do|don'?t|do not|can|can'?t|cannot|offer)(?: not)?(?: offer)? "
      r"(?:deliver|delivery|deliveries)",
      r"\b(?:no|free) delivery\b", r"\bdelivery (?:is|costs)\b", _YES_START,
      r"\b(?:bakery|we|it) (?:delivers|does deliver)\b"],
     style="two-in-one",
     note=_MOVED_1207 + "Saturday closes at 1 pm; delivery is not in the facts: fallback for "
          "that part (its 'Yes, Riverside Bakery delivers.' was scored right before the last two "
          "contrary claims were added).")
_unknown(B, _BK_WED,
         "Hi there, um, do you do, like, vegan stuff? Anything without eggs or butter?",
         _NW + r"\bwe (?:do|don'?t|do not|have|make|bake|sell|offer)(?: not)?(?: have| make|"
         r" bake| sell| offer)? (?:any |some |a few )?(?:vegan|dairy[ -]free|egg[ -]free)",
         r"\bvegan (?:options?|items?|products?|treats?|breads?|loaves|pastries) (?:is|are)\b",
         r"\bour vegan\b", held=True, style="filler",
         note="Vegan products are not in the facts: fallback, no yes/no.")
_unknown(B, _BK_WED,
         "It's for my daughter, could you write her name on the cake, like Happy Birthday "
         "Emma?",
         _NW + r"\b(?:we|i)(?:'ll| will| can| can'?t| cannot| could| do| don'?t| do not)(?: not)?"
         r"(?: happily| certainly| gladly| definitely)? (?:write|put|pipe|add|include|do) "
         r"(?:a |the |her |any |your |that |custom )?(?:name|message|writing|inscription|"
         r"lettering|happy birthday)",
         r"\b(?:writing|inscription|personali[sz]ation|lettering|a message) (?:is|costs|comes) "
         r"(?:free|included|extra)", r"\bno problem\b",
         held=True, style="indirect",
         note="Writing on cakes is not in the facts (only how cakes are ordered): fallback.")
_unknown(B, _BK_WED,
         "Hey, quick question, do you guys have anywhere to sit and eat, or is it just "
         "grab-and-go?",
         _NW + r"\b(?:we have|we'?ve got|there'?s|there is|there are)(?: a few| some| plenty of)?"
         r" (?:seating|tables|seats|a seating area)\b",
         r"\b(?:takeaway|take-out|takeout|to-go|grab-and-go)[ -]only\b",
         r"\bno (?:seating|tables|seats)\b",
         _NW + r"\bwe (?:do|don'?t|do not) have (?:any )?(?:seating|tables|seats)",
         r"\bit'?s (?:just )?grab-and-go\b",
         held=True, style="you-guys",
         note="Seating is not in the facts: fallback.")
_add(B, "followup", _BK_WED,
     ("Hi there, what time do you open on Saturday?",
      "Okay great, and, uh, how late do you stay open that day?"),
     [tm(13)], [closes_at_not(13), day_range("saturday", _T, "(?:2|3)")],
     style="filler",
     note=_MOVED_1207 + "Saturday 8 am to 1 pm: the last answer must say 1 pm (not the "
          "weekday 3 pm).")
_add(B, "contact", _BK_WED, "I'm putting you into my GPS, what street are you on?",
     [r"\bmill (?:road|rd)\b"], [r"(?<!\d)(?<!\d )(?!48 )\d+ mill\b"],
     held=True, style="indirect",
     note="48 Mill Road, Springfield.")
_add(B, "lead", _BK_WED,
     "What do the birthday cakes go for, and how much warning do you need to make one?",
     [money("35"), r"(?<![\d.])2 days?\b|\b48 hours\b"],
     [other_money("35"), r"(?<![\d.])(?:1|3|4|5|7) days?\b", r"\b(?:a|1) (?:day|week)s?\b",
      r"\b24 hours\b"],
     held=True, style="two-in-one",
     note="Both known: 35 dollars, 2 days' notice.")

# -- dental (London): mon/tue/thu 8:30-12:30 + 1:30-5:30, wed 10-7, fri 8:30-1; closed sat/sun,
#    Dec 24, Dec 25, Dec 28, Jan 1; pounds -----------------------------------------------------
_add(D, "prices", _DN_MON,
     "Hiya, how much is it for a routine exam, just the regular six-monthly one?",
     [money("55", "pounds")], [other_money("55", "pounds"), _DN_WRONG_CUR],
     held=True, style="synonym",
     note="'Routine exam' = the check-up: 55 pounds.")
_add(D, "prices", _DN_MON,
     "What would you charge to get my teeth cleaned, a scale and polish basically?",
     [money("75", "pounds")], [other_money("75", "pounds"), _DN_WRONG_CUR],
     held=True, style="synonym",
     note="'Teeth cleaned' / 'scale and polish' = the cleaning: 75 pounds.")
_add(D, "prices", _DN_MON,
     "I've got my wedding in a couple of months and I'd like my teeth a few shades whiter. "
     "What's that going to set me back?",
     [money("299", "pounds")], [other_money("299", "pounds"), _DN_WRONG_CUR],
     held=True, style="indirect",
     note="Teeth whitening: 299 pounds.")
_add(D, "lead", "2026-12-10T10:00",
     "I've got a job interview on the 16th, that's next Wednesday, and I'd love to get my "
     "teeth whitened before it. Can you fit me in?",
     [_NEG], [_AGREE], style="indirect",
     note=_MOVED_1207 + "Thursday Dec 10 -> Wednesday Dec 16 is 6 days, any earlier day "
          "fewer; whitening needs 7: no (Thursday the 17th is the earliest).")
_add(D, "prices", _DN_MON, "How much is an X-ray, and do you see kids as well?",
     [money("25", "pounds"), r"\b(?:children|kids|child)\b"],
     [other_money("25", "pounds"), _DN_WRONG_CUR, _NO_START,
      r"\b(?:don'?t|do not|can'?t|cannot) (?:see|treat) (?:children|kids)\b",
      r"\bonly (?:see|treat) adults\b", r"\badults only\b"],
     style="two-in-one",
     note=_MOVED_1207 + "Both known: x-ray 25 pounds; yes, adults and children are seen.")
_add(D, "times", _DN_MON,
     "Are you open Wednesday evening, and can I book that online or do I have to ring?",
     [tm(19), r"\b(?:phone|call|calling|ring|telephone)\b"],
     [closes_at_not(19), *closed_claim("wednesday"),
      r"(?<!not )(?<!n't )(?<!only )\b(?:book|booking|booked) (?:it |that )?online\b"
      r"(?! isn'?t| is not)",
      r"\bonline booking (?:is available|works)\b"],
     held=True, style="two-in-one",
     note="Both known: Wednesdays open until 7 pm; appointments are booked by phone.")
_add(D, "times", _DN_MON, "Would I be able to come in after work on Wednesday, like six-ish?",
     [any_of(_AFFIRM, close_at(19), tm(19))],
     [_NO_START, _SORRY_START, *closed_claim("wednesday"),
      r"\bwednesdays?,? (?:we )?(?:close|closes|finish|are open until|'re open until|until|"
      r"till) (?:at )?(?:5|5:30|6|6:30)(?![\d:])",
      r"\b(?:close|closes|closing) (?:at )?(?:5|5:30|6|6:30)(?![\d:]) on wednesdays?",
      r"\bclosed (?:then|by then|at that time)\b"],
     held=True, style="loose-time",
     note="'After work' ~5:30-6 pm (the caller says about 6); Wednesday is open until 7 pm: "
          "yes.")
_add(D, "relative", "2026-12-08T15:00",
     "Hi, I've chipped a tooth, could someone see me tonight, around half six?",
     [any_of(_NEG, close_at(17, 30))],
     [_AGREE, r"\b(?:today|tonight),? (?:we'?re |we are )?(?:open )?(?:until|till) "
      r"(?:6|6:30|7|8)\b", r"\bopen (?:until|till) (?:6|6:30|7|8)(?: pm)? (?:today|tonight)\b"],
     held=True, style="loose-time",
     note="Tuesday; 'half six' tonight = 6:30 pm; Tuesday closes at 5:30 pm: no (Wednesday "
          "runs to 7 pm).")
_add(D, "times", _DN_MON,
     "Is there any chance of getting my son seen on Friday after school, say half three-ish?",
     [any_of(_NEG, close_at(13))],
     [_AGREE, day_range("friday", _T, "(?:3|3:30|4|5|5:30|7)"),
      r"\b(?:until|till) (?:3|3:30|4|5|5:30|7)(?: pm)? on fridays?",
      r"\bfridays?,? (?:we'?re |we are )?(?:open )?(?:until|till) (?:3|3:30|4|5|5:30|7)\b"],
     style="loose-time",
     note=_MOVED_1207 + "'After school, half three' = 3:30 pm; Fridays close at 1 pm: no.")
_add(D, "relative", "2026-12-22T10:00",
     "Are you guys open on Christmas Eve at all, even just in the morning?",
     [_CLOSED],
     [_YES_START, *open_claim("thursday"), *open_claim("christmas eve"),
      r"(?<!not )(?<!n't )\bopen (?:in )?the morning\b",
      day_range("(?:thursday|christmas eve)", _T, _T)],
     held=True, style="you-guys",
     note="Dec 24 Christmas Eve is a closed date: closed all day.")
_add(D, "prices", _DN_MON, "What do you guys charge for an X-ray?",
     [money("25", "pounds")], [other_money("25", "pounds"), _DN_WRONG_CUR],
     held=True, style="you-guys", note="25 pounds.")
_add(D, "times", _DN_MON, "Hello, um, sorry, what time do you, er, finish up on a Friday?",
     [tm(13)],
     [closes_at_not(13), r"\bfinish(?:es)? (?:at|by|up at) (?!1\b)\d",
      day_range("friday", _T, "(?:5|5:30|7)")],
     style="filler",
     note=_MOVED_1207 + "Friday 8:30 am to 1 pm: 1 pm.")
_add(D, "partial", _DN_MON, "How much is a filling, and do you take NHS patients?",
     [money("120", "pounds"), *FALLBACK_MUST],
     [other_money("120", "pounds"), _DN_WRONG_CUR,
      _NW + r"\bwe (?:do|don'?t|do not|take|accept|see|treat|are|'re)(?: not)?(?: take| accept|"
      r" see| treat)? (?:any )?(?:new )?nhs",
      r"\b(?:private|nhs)[ -]only\b", r"\bwe(?:'re| are) (?:a )?(?:private|nhs) (?:practice|"
      r"clinic|dentist)"],
     held=True, style="two-in-one",
     note="Filling 120 pounds; NHS is not in the facts: fallback for that part.")
_add(D, "partial", _DN_MON,
     "Can I pay for the whitening in instalments, and how much is it anyway?",
     [money("299", "pounds"), *FALLBACK_MUST],
     [other_money("299", "pounds"), _DN_WRONG_CUR,
      _NW + r"\bwe (?:do|don'?t|do not|offer|have|can)(?: not)?(?: offer| have| do)? (?:a |any )?"
      r"(?:payment plans?|instal?ments?|finance|financing|monthly)",
      r"\b(?:payment plans?|instal?ments?|finance|financing) (?:is|are) (?:available|possible)\b",
      r"\byou can (?:pay|spread)\b"],
     held=True, style="two-in-one",
     note="Teeth whitening 299 pounds; instalments are not in the facts: fallback for that "
          "part.")
_unknown(D, _DN_MON,
         "Hi, yeah, um, I get really anxious at the dentist, do you do, like, sedation or "
         "anything to help with that?",
         _NW + r"\bwe (?:do|don'?t|do not|offer|provide|have|can)(?: not)?(?: offer| provide|"
         r" have| do)? (?:any |iv |conscious |some )?sedation",
         r"\bsedation (?:is|costs|isn'?t)\b",
         r"\bwe(?:'re| are) (?:very )?(?:experienced|used to|good) with (?:nervous|anxious)",
         held=True, style="filler",
         note="Sedation is not in the facts: fallback, no yes/no.")
_unknown(D, _DN_MON, "Do you guys take my insurance? I'm with Bupa.",
         _NW + r"\bwe (?:do|don'?t|do not|take|accept|work with)(?: not)?(?: take| accept|"
         r" work with)? (?:bupa|insurance|dental plans?|denplan)",
         r"\bbupa (?:is|isn'?t) accepted\b",
         r"\b(?:accepted|covered) by (?:bupa|your insurance)\b",
         held=True, style="you-guys",
         note="Insurance is not in the facts: fallback.")
_unknown(D, _DN_MON,
         "My mum uses a wheelchair, would she be able to get into the surgery okay?",
         r"\b(?:we have|there'?s|there is|we'?ve got) (?:a |step-free |level )?(?:ramp|lift|"
         r"elevator|step-free access|level access|ground[ -]floor access)\b",
         _NW + r"\b(?:we are|we'?re|the (?:practice|surgery|building) is|it'?s|it is) (?:fully )?"
         r"(?:wheelchair[ -])?accessible\b",
         _NW + r"\b(?:isn'?t|is not|aren'?t|are not) (?:wheelchair[ -])?accessible\b",
         r"\b(?:there are|there'?s) (?:some |a few )?(?:steps|stairs)\b",
         r"\bon the ground floor\b",
         held=True, style="indirect",
         note="Access is not in the facts: fallback.")
_add(D, "followup", _DN_MON,
     ("How much is a cleaning?",
      "And if I bring my son along for a check-up at the same time, what's the total for both "
      "of us?"),
     [money("130", "pounds")],
     [*(money(x, "pounds") for x in ("110", "120", "140", "150", "185")), _DN_WRONG_CUR],
     held=True, style="indirect",
     note="Cleaning 75 + check-up 55 = 130 pounds (children are seen).")
_add(D, "contact", _DN_MON,
     "Sorry, um, what's the best number to ring you on, in case we get cut off?",
     [any_of(phone_re("02079460321"), r"\+?" + phone_re("442079460321"))], [],
     held=True, style="filler", note="020 7946 0321.")
_add(D, "lead", _DN_MON, "How far ahead do I have to book if I want to come in for a clean?",
     [r"(?<![\d.])2 days?\b|\b48 hours\b"],
     [r"(?<![\d.])(?:1|3|4|5|7) days?\b", r"\b(?:a|1) (?:day|week)s?\b", r"\b24 hours\b"],
     held=True, style="synonym",
     note="'A clean' = the cleaning: 2 days' notice.")
_add(D, "relative", "2026-12-09T17:15",
     "I'm just leaving work now, reckon I'd be with you in half an hour or so, will you still "
     "be open?",
     [any_of(_AFFIRM, tm(19))],
     [_NO_START, _SORRY_START, r"\b(?:close|closes|closing|until|till) (?:at )?(?:5|5:30|6)"
      r"(?![\d:])(?! on (?:monday|tuesday|thursday|friday)s?)",
      r"\bclosed (?:now|by then|then|already)\b"],
     held=True, style="loose-time",
     note="Wednesday 17:15 + ~30 min = ~5:45 pm; Wednesday is open until 7 pm: yes.")

# -- garage (Fresno): mon-fri 7:30-5:30, sat 8-12; closed sun, Dec 24, 25, 31, Jan 1 -------------
_add(G, "prices", _GA_MON, "Hey, what's it run to get my oil changed?",
     [money("49")], [other_money("49")], held=True, style="synonym",
     note="Oil change: 49 dollars.")
_add(G, "prices", _GA_MON, "How much do you charge to rotate my tires?",
     [money("25")], [other_money("25")], held=True, style="synonym",
     note="Tire rotation: 25 dollars.")
_add(G, "prices", _GA_MON,
     "My brakes have been squeaking and I'd like somebody to take a look. What would that run "
     "me?",
     [money("30")], [other_money("30")], held=True, style="indirect",
     note="A look at the brakes = the brake inspection: 30 dollars.")
_add(G, "lead", _GA_MON,
     "My car keeps pulling to one side, I think it needs aligning. Any chance you could do it "
     "today?",
     [_NEG], [_AGREE], held=True, style="indirect",
     note="Same day; wheel alignments need 1 day's notice: no (tomorrow is fine).")
_add(G, "prices", _GA_MON,
     "Can I just hang around while you do the oil change, and what's that cost?",
     [money("49"), any_of(r"\bwait", r"\b(?:stay|hang around|hang out)\b")],
     [other_money("49"), _NO_START, r"\b(?:can'?t|cannot|won'?t be able to) wait\b",
      r"\bnot while you wait\b"],
     held=True, style="two-in-one",
     note="Both known: oil changes are done while you wait; 49 dollars.")
_add(G, "prices", _GA_MON,
     "Do you work on pickups, I've got an F-150, and what would a brake inspection run me?",
     [money("30"), any_of(r"\btrucks?\b", r"\bpick-?ups?\b", r"\bf-?150\b", _YES_START)],
     [other_money("30"), _NO_START,
      r"\b(?:don'?t|do not|can'?t|cannot) (?:work on|service|do|fix|repair) (?:trucks|pickups|"
      r"pick-ups|f-?150)", r"\bonly (?:work on |do |service )?cars\b"],
     held=True, style="two-in-one",
     note="Both known: yes, cars and light trucks (an F-150 is a light truck); brake "
          "inspection 30 dollars.")
_add(G, "times", _GA_MON, "Could I bring the truck in Saturday afternoon?",
     [any_of(_NEG, close_at(12))],
     [_AGREE, day_range("saturday", _T, "(?:1|2|3|4|5|5:30)"),
      r"\b(?:until|till) (?:1|2|3|4|5|5:30)(?: pm)? on saturdays?",
      r"(?<!not )(?<!n't )\bopen (?:on )?saturday afternoons?\b",
      r"\bsaturday afternoons?,? (?:we'?re|we are) open\b"],
     held=True, style="loose-time",
     note="Saturdays close at noon, so the afternoon: no.")
_add(G, "times", _GA_MON, "Can I pick my car up after work on Thursday, probably around six?",
     [any_of(_NEG, close_at(17, 30))],
     [_AGREE, r"\b(?:until|till) (?:6|6:30|7|8)\b", r"\bclose[sd]? at (?:6|6:30|7|8)\b"],
     held=True, style="loose-time",
     note="'After work, around six' = ~6 pm; Thursday closes at 5:30 pm: no.")
_add(G, "relative", "2026-12-12T11:20",
     "Hey, I'm about twenty minutes out, are you still gonna be open when I get there?",
     [any_of(_AFFIRM, close_at(12))],
     [_NO_START, closes_at_not(12), r"\bclosed (?:now|already|by then)\b"],
     held=True, style="loose-time",
     note="Saturday 11:20 + 20 min = 11:40; Saturday closes at noon: yes.")
_add(G, "relative", "2026-12-29T10:00", "You guys open on New Year's Eve?",
     [_CLOSED],
     [_YES_START, *open_claim("thursday"), *open_claim("new year'?s eve"),
      *open_claim(r"(?:the )?31st"), day_range("(?:thursday|new year'?s eve)", _T, _T)],
     style="you-guys",
     note=_MOVED_1207 + "Dec 31 (a Thursday) is a configured closed date: closed.")
_add(G, "prices", _GA_MON, "What do you guys charge for an alignment?",
     [money("89.99")], [other_money("89.99"), r"\b(?:about|around|roughly) 90\b"],
     held=True, style="you-guys",
     note="Wheel alignment: 89.99 dollars (not 'about 90').")
_add(G, "lead", "2026-12-10T09:00",
     "Hi, uh, yeah, so my mechanic says the timing belt needs swapping. Could you, um, squeeze "
     "it in on Monday?",
     [_AFFIRM], [_NO_START, _SORRY_START, _LEAD_NEG], held=True, style="filler",
     note="Thursday Dec 10 -> Monday Dec 14 is 4 days >= the 3-day lead, Monday open: yes.")
_add(G, "prices", _GA_MON,
     "I need my timing belt replaced and might as well get an oil change while it's in. "
     "What's the damage all in?",
     [money("499")], [money(x) for x in ("474", "489", "500", "509", "539.99")],
     held=True, style="indirect",
     note="450 + 49 = 499 dollars.")
_add(G, "partial", _GA_MON,
     "Do you work on diesels, and what's the price on a tire rotation?",
     [money("25"), *FALLBACK_MUST],
     [other_money("25"),
      _NW + r"\bwe (?:do|don'?t|do not|work on|service|handle)(?: not)?(?: work on| service|"
      r" handle| do)? (?:any )?diesels?"],
     style="two-in-one",
     note=_MOVED_1207 + "Tire rotation 25 dollars; diesel work is not in the facts (only cars "
     "and light trucks): fallback for that part.")
_add(G, "partial", _GA_MON,
     "What time do you open Saturday, and do you guys do smog checks?",
     [tm(8), *FALLBACK_MUST],
     [opens_at_not(8), r"\bsaturdays?,? (?:at |from )?7:30\b",
      _NW + r"\bwe (?:do|don'?t|do not|offer|perform|can)(?: not)?(?: do| offer| perform)? "
      r"(?:a |any )?smog", r"\bsmog (?:checks?|tests?|inspections?) (?:is|are|costs?)\b",
      r"\b(?:star|certified) (?:station|smog)\b"],
     held=True, style="two-in-one",
     note="Saturday opens at 8 am; smog checks are not in the facts: fallback for that part.")
_unknown(G, _GA_MON,
         "Hey, um, do you guys do, like, payment plans or financing or anything like that?",
         _NW + r"\bwe (?:do|don'?t|do not|offer|have|can)(?: not)?(?: offer| have| do)? "
         r"(?:a |any )?(?:payment plans?|financing|finance|instal?ments?)",
         r"\b(?:payment plans?|financing) (?:is|are) available\b",
         held=True, style="filler",
         note="Payment options are not in the facts: fallback.")
_unknown(G, _GA_MON,
         "My check engine light just came on, could somebody plug in and read the code for me?",
         _NW + r"\bwe (?:do|don'?t|do not|can|can'?t|cannot|offer|read|run)(?: not)?(?: do| offer|"
         r" read| run| scan)? (?:a |the |any |that |your )?(?:diagnostics?|codes?|scans?|"
         r"check engine|computer)",
         r"\bdiagnostics? (?:is|are|costs?)\b", r"\bno charge\b",
         r"\bfree (?:of charge|diagnostics?|scans?|code)",
         r"\bwe(?:'ll| will) (?:take a look|check it|have a look|read)",
         r"\bbring it (?:in|by|over)\b",
         held=True, style="indirect",
         note="Diagnostics / code reading is not in the facts: fallback.")
_unknown(G, _GA_MON,
         "Do you guys fix windshield chips, or would I need to go somewhere else for that?",
         _NW + r"\bwe (?:do|don'?t|do not|repair|fix|offer|handle|can|can'?t|cannot)(?: not)?"
         r"(?: repair| fix| offer| handle| do)? (?:any )?"
         r"(?:windshields?|windscreens?|glass|chips?)",
         r"\byou(?:'d| would)? (?:need|have) to go (?:somewhere|elsewhere)\b",
         held=True, style="you-guys",
         note="Glass repair is not in the facts: fallback.")
_add(G, "followup", _GA_MON,
     ("Hey, are you guys open this Saturday?", "Cool, and how late?"),
     [tm(12)],
     [closes_at_not(12), day_range("saturday", _T, "(?:1|2|3|4|5|5:30)")],
     style="you-guys",
     note=_MOVED_1207 + "Saturday Dec 12: open 8 am to noon; the last answer must say 12 (noon).")
_add(G, "contact", _GA_MON,
     "I'm gonna drop my car off tomorrow, what's the street address so I can put it in my "
     "maps?",
     [r"\b(?:350|3 50|3 5 0) harbor (?:boulevard|blvd)\b"],
     [r"(?<!\d)(?<!\d )(?!350 )\d+ harbor\b"], held=True, style="indirect",
     note="350 Harbor Boulevard, Fresno.")
_add(G, "times", _GA_MON,
     "I need to drop the car before my eight o'clock shift on Wednesday, will anyone be there "
     "by quarter to eight?",
     [any_of(_AFFIRM, opens_at(7, 30), tm(7, 30))],
     [_NO_START, _SORRY_START, opens_at_not(7, 30), *closed_claim("wednesday"),
      r"\bnot (?:open )?(?:yet|until 8)\b"],
     held=True, style="indirect",
     note="Wednesday Dec 9 opens at 7:30 am; 7:45 is after that: yes.")
_add(G, "relative", "2026-12-24T08:00",
     "Hey, are you guys open this morning? My car's making a weird noise.",
     [_CLOSED],
     [_YES_START, *open_claim("today"), *open_claim("this morning"), _STILL_OPEN,
      day_range("(?:today|this morning)", _T, _T)],
     held=True, style="you-guys",
     note="Thursday Dec 24, Christmas Eve, is a closed date: closed today.")
_add(D, "days", _DN_MON, "Do you guys do any weekend appointments at all?",
     [any_of(_NEG, r"\bmondays? (?:to|through|thru|-) fridays?\b", r"\bweekdays? only\b",
             r"\bonly (?:on )?weekdays\b")],
     [_YES_START, *open_claim("saturday"), *open_claim("sunday"),
      r"(?<!not )(?<!n't )\bopen (?:on |at )?(?:the )?weekends?\b",
      r"\b(?:to|through|thru) (?:saturday|sunday)s?\b"],
     held=True, style="you-guys",
     note="No: closed Saturday and Sunday (Monday to Friday only).")
_add(G, "days", _GA_MON,
     "Hi, um, I work all week, so is there any day on the weekend I could, uh, bring the car "
     "in?",
     [r"\bsaturdays?\b"],
     [_NO_START, *closed_claim("saturday"), *open_claim("sunday"),
      day_range("saturday", _T, "(?:1|2|3|4|5|5:30)")],
     held=True, style="filler",
     note="Saturday 8 am to noon; Sunday closed.")
# END NATURAL HELD-OUT CASES


# ---- natural phrasing, second held-out set (2026-12-07), written without reading the gateway's
# code: from the three tables, the calendar and this file's helpers only. New situations and
# wordings (not paraphrases of the set above); each persona has every style twice. All held out.

# -- bakery (Chicago): wed-fri 7-3, sat/sun 8-1; closed mon/tue, Dec 25, Dec 26, Jan 1 --------
_add(B, "relative", "2026-12-09T06:40",
     "Um, hi, sorry, I know it's early, uh, are you open yet or, um, not quite?",
     [any_of(_NEG, r"\bnot yet\b", opens_at(7), r"\bin 20 minutes\b")],
     [_YES_START, _STILL_OPEN, opens_at_not(7),
      r"^(?:we'?re|we are) open (?:until|till|now|right now)\b"],
     held=True, style="filler",
     note="Wednesday 6:40 am: not open yet, opens at 7 am (in 20 minutes).")
_add(B, "followup", "2026-12-04T11:00",
     ("Hi, uh, how much is a sourdough loaf?",
      "Okay, um, and so if I got, like, three of those and, uh, two croissants?"),
     [money("23")], [money(x) for x in ("20.50", "21", "22", "23.50", "24", "25", "26")],
     style="filler",
     note=_MOVED_1207 + "3 x 6 + 2 x 2.50 = 18 + 5 = 23 dollars.")
_add(B, "times", _BK_WED, "What time do you wrap things up on a Sunday?",
     [tm(13)],
     [closes_at_not(13), day_range("sunday", _T, "(?:2|3|4)"), *closed_claim("sunday")],
     held=True, style="synonym",
     note="'Wrap up' = close; Sunday is on the sat,sun 08:00-13:00 line: 1 pm (not the "
          "weekday 3 pm).")
_add(B, "lead", "2026-12-03T09:00",
     "Could I get a catering tray for a little party on Saturday if I put the order in today?",
     [_AFFIRM],
     [_NO_START, _SORRY_START, _LEAD_NEG, *closed_claim("saturday")],
     style="synonym",
     note=_MOVED_1207 + "'Catering tray' = the party platter (1 day's notice); Thursday "
     "Dec 3 -> Saturday Dec 5 is 2 days >= 1 and Saturday is open 8-1: yes.")
_add(B, "relative", "2026-12-07T19:00",
     "My daughter's got a half day at school tomorrow, so I thought I'd bring her by for a "
     "treat around eleven. Would that be alright?",
     [_CLOSED],
     [_AGREE, *open_claim("tomorrow"), *open_claim("tuesday"),
      day_range("(?:tomorrow|tuesday)", _T, _T)],
     style="indirect",
     note=_MOVED_1207 + "Monday evening; tomorrow is Tuesday Dec 8: closed (open again "
          "Wednesday 7 am).")
_unknown(B, _BK_WED,
         "My little boy has a really bad nut allergy, so I need to know, is everything you "
         "make safe for him?",
         _NW + r"\b(?:we are|we'?re|the kitchen is|our kitchen is|the bakery is|everything is|"
         r"it'?s|it is|all of it is) (?:completely |totally |fully |100% )?(?:nut[ -]free|safe|"
         r"allergy[ -]safe|allergy[ -]friendly)\b",
         _NW + r"\bwe (?:do|don'?t|do not|never)(?: not)? (?:use|handle|bake with|work with|have)"
         r" (?:any )?(?:nuts|peanuts|tree nuts)\b",
         r"\b(?:may|might|can|could) contain (?:traces of )?(?:nuts|peanuts)\b",
         _NW + r"\b(?:nuts are (?:used|present|handled)|there are (?:no )?nuts|we use nuts)\b",
         r"\b(?:isn'?t|is not|aren'?t|are not|not) (?:completely |totally )?(?:nut[ -]free|"
         r"safe for)\b",
         held=True, style="indirect",
         note="Allergens are not in the facts (only 'we bake everything on site'): fallback, "
              "no yes/no and no nut-free claim.")
_add(B, "partial", _BK_WED,
     "Do you do sandwiches or anything savory for lunch, and how late do you stay open on "
     "Fridays?",
     [tm(15), *FALLBACK_MUST],
     [closes_at_not(15), day_range("friday", _T, "(?:4|5|6)"),
      _NW + r"\bwe (?:do|don'?t|do not|have|make|sell|serve|offer)(?: not)?(?: have| make| sell|"
      r" serve| offer| do)? (?:any |some )?(?:sandwich|lunch|savou?ry|soups?)",
      r"\bsandwiche?s? (?:are|is|cost)\b", r"\bno sandwiches\b"],
     held=True, style="two-in-one",
     note="Friday is open until 3 pm; sandwiches/lunch are not in the facts: fallback for "
          "that part.")
_add(B, "prices", "2026-12-21T10:00",
     "Are you open on Christmas Eve, and what would a dozen croissants run me?",
     [any_of(_AFFIRM, day_range("(?:thursday|christmas eve|the 24th)", "7", "3"), opens_at(7),
             close_at(15)),
      money("30")],
     [_NO_START, *closed_claim("christmas eve"), *closed_claim("thursday"),
      *closed_claim(r"(?:the )?24th"), day_range("(?:thursday|christmas eve)", "8", _T),
      *(money(x) for x in ("25", "27.50", "32.50", "36", "39"))],
     held=True, style="two-in-one",
     note="Both known: Dec 24 is a Thursday and not a closed date, open 7 am to 3 pm; a dozen "
          "croissants = 12 x 2.50 = 30 dollars.")
_add(B, "times", _BK_WED,
     "I've got a cake on order for Sunday, would it be okay to swing by and grab it around "
     "half past two?",
     [any_of(_NEG, close_at(13))],
     [_AGREE, day_range("sunday", _T, "(?:2|2:30|3|4|5)"),
      r"\bsundays?,? (?:we'?re |we are )?(?:open )?(?:until|till) (?:2|2:30|3|4|5)(?![\d:])",
      r"\b(?:close|closes|closing|until|till) (?:at )?(?:2|2:30|3|4|5)(?![\d:])(?: pm)? "
      r"(?:on )?sundays?"],
     held=True, style="loose-time",
     note="'Half past two' = 2:30 pm; Sundays close at 1 pm: no (pick it up before 1).")
_add(B, "relative", "2026-12-05T12:20",
     "I'm just finishing up at the gym, I could be there by about quarter to one, are you "
     "still gonna be open?",
     [any_of(_AFFIRM, close_at(13))],
     [_NO_START, _SORRY_START, closes_at_not(13), r"\bclosed (?:now|already|by then|then)\b",
      r"\b(?:already|now) closed\b"],
     held=True, style="loose-time",
     note="Saturday 12:20; 'quarter to one' = 12:45 pm; Saturday closes at 1 pm: yes.")
_unknown(B, _BK_WED,
         "Do you guys do wholesale at all? I run a little coffee shop and I'm looking for a "
         "bread supplier.",
         _NW + r"\bwe (?:do|don'?t|do not|supply|sell|offer|deliver|work)(?: not)?(?: supply|"
         r" sell| offer| do| work with)? (?:to )?(?:any |local )?(?:wholesale|cafes?|coffee "
         r"shops?|restaurants?|businesses|trade)",
         r"\bwholesale (?:prices?|rates?|orders?|accounts?|discounts?) (?:are|is|start)\b",
         r"\b(?:retail|walk-in|in-store) (?:only|customers only)\b",
         r"\bwe'?d (?:love|be happy|be glad) to (?:supply|work with)\b",
         held=True, style="you-guys",
         note="Wholesale is not in the facts: fallback, no yes/no.")
_add(B, "followup", _BK_WED,
     ("Hey, are you guys the bakery on Mill Road?",
      "Great, and what number can I reach you guys on if I want to order a cake?"),
     [phone_re("5550142")],
     [r"(?<!not )(?<!n't )\border (?:it |one |a cake |cakes )?online\b(?! isn'?t| is not)"],
     held=True, style="you-guys",
     note="555 0142 (cakes are ordered by phone or in the shop; not online).")

# -- dental (London): mon/tue/thu 8:30-12:30 + 1:30-5:30, wed 10-7, fri 8:30-1; closed sat/sun,
#    Dec 24, Dec 25, Dec 28, Jan 1; pounds -----------------------------------------------------
_add(D, "relative", "2026-12-10T12:40",
     "Hi, um, yeah, so is there, er, anyone in right now? I wanted to, um, pop in and ask "
     "about something.",
     [any_of(_CLOSED, r"\blunch\b", r"\bbreak\b", r"\bback at\b", opens_at(13, 30),
             tm(13, 30))],
     [_YES_START, _STILL_OPEN, r"(?<!not )(?<!n't )\bwe'?re open (?:now|right now)\b",
      r"^(?:we'?re|we are) open (?:until|till) 5:30\b",
      r"\b(?:come|pop) (?:in|by|over|down) now\b"],
     held=True, style="filler",
     note="Thursday 12:40 is inside the 12:30-1:30 lunch break: not open now, back at 1:30 pm.")
_add(D, "followup", _DN_MON,
     ("Hiya, um, what's the cost of a filling?",
      "Right, okay, and, er, if I needed two of them plus an X-ray, what would that come to?"),
     [money("265", "pounds")],
     [*(money(x, "pounds") for x in ("145", "260", "270", "275", "290", "295", "385")),
      _DN_WRONG_CUR],
     style="filler",
     note=_MOVED_1207 + "2 x 120 + 25 = 265 pounds.")
_add(D, "times", _DN_MON, "What time do you shut up shop on a Monday?",
     [tm(17, 30)],
     [r"\b(?:close|closes|closing|shut|shuts|finish|finishes)\b(?: up)?(?: at| is)? "
      r"(?!5[: ]30|12[: ]30)\d",
      r"\b(?:until|till) (?:5|6|6:30|7)(?![\d:])"],
     held=True, style="synonym",
     note="'Shut up shop' = close: Monday 5:30 pm (a lunch break 12:30-1:30 may be named).")
_add(D, "lead", _DN_MON, "How far in advance do I need to book to get my teeth bleached?",
     [r"(?<![\d.])7 days?\b|\b(?:a|1) week\b"],
     [r"(?<![\d.])(?:1|2|3|4|5|6|10|14) days?\b", r"\b2 weeks\b", r"\b(?:24|48) hours\b"],
     held=True, style="synonym",
     note="'Bleached' = teeth whitening: 7 days (a week) ahead.")
_add(D, "relative", "2026-12-23T11:00",
     "The kids break up from school tomorrow, so I was hoping to bring them both in for "
     "their check-ups on Monday while they're off. Could we do that?",
     [_CLOSED],
     [_AGREE, *open_claim("monday"), *open_claim(r"(?:the )?28th"),
      day_range("(?:monday|the 28th)", _T, _T)],
     style="indirect",
     note=_MOVED_1207 + "Wednesday Dec 23; Monday is Dec 28, the Boxing Day bank holiday (a "
          "closed date): no (children are seen; Tuesday the 29th is open).")
_unknown(D, _DN_MON,
         "I've had awful toothache all night, I've barely slept. Do you keep any emergency "
         "appointments free on the day?",
         _NW + r"\bwe (?:do|don'?t|do not|keep|have|offer|hold|can)(?: not)?(?: keep| have|"
         r" offer| hold| do)? (?:any |some |a few )?(?:emergency|same[ -]day|urgent)",
         r"\b(?:emergency|same[ -]day|urgent) (?:slots?|appointments?) (?:are|is) "
         r"(?:available|kept)\b",
         r"\bwe(?:'ll| will| can| could) (?:see|fit|squeeze) you in\b",
         r"\bcome (?:straight )?(?:in|down|over)(?: now| today| straight away| right away)\b",
         r"(?<!\d)111\b",
         held=True, style="indirect",
         note="Emergency / same-day slots are not in the facts: fallback, no yes/no.")
_add(D, "partial", _DN_MON,
     "Do you make those gum shields for sport? My lad plays rugby. And how much is a check-up "
     "for him?",
     [money("55", "pounds"), *FALLBACK_MUST],
     [other_money("55", "pounds"), _DN_WRONG_CUR,
      _NW + r"\bwe (?:do|don'?t|do not|make|fit|offer|provide|sell|can)(?: not)?(?: make| fit|"
      r" offer| provide| sell| do)? (?:any |custom |sports? )?(?:mouth ?guards?|gum ?shields?|"
      r"sports? guards?)",
      r"\b(?:mouth ?guards?|gum ?shields?) (?:are|is|cost)\b"],
     style="two-in-one",
     note=_MOVED_1207 + "Check-up 55 pounds (children are seen); gum shields are not in the "
     "facts: fallback for that part.")
_add(D, "relative", "2026-12-11T10:00",
     "Is there any chance you're open tomorrow, and if not, what time do your doors open on "
     "Monday?",
     [_CLOSED, tm(8, 30)],
     [_YES_START, *open_claim("tomorrow"), *open_claim("saturday"), opens_at_not(8, 30),
      r"\bmondays?,? (?:we )?(?:open )?(?:at |from )?(?:9|10)(?![\d:])"],
     held=True, style="two-in-one",
     note="Both known: Friday Dec 11; tomorrow is Saturday: closed; Monday Dec 14 opens at "
          "8:30 am.")
_add(D, "times", _DN_MON, "Could I get in on Thursday around lunchtime, say one-ish?",
     [any_of(_NEG, r"\blunch\b", r"\bbreak\b", tm(13, 30))],
     [_AGREE, rf"(?<![\d:]){_hm(8, 30)}(?: am)? ?(?:to|until|till|-) ?{_hm(5, 30)}",
      r"(?<!not )(?<!n't )\bopen (?:at|over|during|through) (?:lunch|lunchtime)\b",
      r"\b(?:lunchtime|1|1 pm) (?:is|would be|should be) (?:fine|ok|okay|good)\b"],
     style="loose-time",
     note=_MOVED_1207 + "Thursday 1 pm falls in the 12:30-1:30 lunch break: not then "
     "(before 12:30 or from 1:30 pm).")
_add(D, "relative", "2026-12-09T08:40",
     "Morning, I've been up half the night with a throbbing tooth. If I got down to you for "
     "about quarter past nine, would you be open?",
     [any_of(_NEG, opens_at(10), r"\bnot (?:open )?(?:yet|until 10)\b")],
     [_AGREE, _STILL_OPEN, r"\bopen(?:s|ing)? (?:at|from) (?:8|8:30|9)(?![\d:])",
      r"\bwednesdays?,? (?:we )?open(?:s)? (?:at|from) (?:8|8:30|9)"],
     held=True, style="loose-time",
     note="Wednesday 8:40; 'quarter past nine' = 9:15; Wednesdays open at 10 am: no.")
_unknown(D, _DN_MON,
         "Do you guys do home visits at all? My nan can't really get out of the house anymore.",
         _NW + r"\bwe (?:do|don'?t|do not|offer|provide|make|can)(?: not)?(?: do| offer| provide|"
         r" make)? (?:any )?(?:home|house|domiciliary) (?:visits?|calls?)",
         r"\b(?:home|house) (?:visits?|calls?) (?:are|is) (?:available|possible)\b",
         r"\bwe (?:only )?see (?:patients|people|everyone) (?:at|in) the (?:practice|surgery)\b",
         held=True, style="you-guys",
         note="Home visits are not in the facts: fallback, no yes/no.")
_add(D, "followup", _DN_MON,
     ("Do you guys see children?",
      "Brilliant. Could you guys fit my daughter in for a check-up on Saturday morning then?"),
     [_CLOSED],
     [_AGREE, *open_claim("saturday"), r"\bsaturday mornings?,? (?:from|at)\b",
      day_range("saturday", _T, _T)],
     held=True, style="you-guys",
     note="Children yes; Saturday: closed (Monday to Friday only).")

# -- garage (Fresno): mon-fri 7:30-5:30, sat 8-12; closed sun, Dec 24, 25, 31, Jan 1 -------------
_add(G, "relative", "2026-12-14T17:10",
     "Uh, hey, yeah, so, um, I'm still stuck at the office, how long have I, like, got to come "
     "grab my car today?",
     [any_of(tm(17, 30), r"(?<![\d.])20 minutes\b")],
     [closes_at_not(17, 30), r"\b(?:already|now) closed\b", r"\bclosed (?:now|already|for the "
      r"day)\b", r"(?<![\d.])(?:10|30|40|45|50) minutes\b", r"\b(?:an|1|2) hours?\b",
      r"\bhalf an hour\b"],
     held=True, style="filler",
     note="Monday 17:10; closes at 5:30 pm: about 20 minutes.")
_add(G, "followup", _GA_MON,
     ("Hi, um, how much is it for a tire rotation?",
      "Okay, uh, so if I did that plus, um, an oil change and, uh, a brake inspection, what's "
      "that all together?"),
     [money("104")], [money(x) for x in ("94", "99", "109", "114", "124", "134")],
     style="filler",
     note=_MOVED_1207 + "25 + 49 + 30 = 104 dollars.")
_add(G, "prices", _GA_MON,
     "What would it cost to get the wheels lined up? It's been drifting a bit on the freeway.",
     [money("89.99")],
     [other_money("89.99"), r"\b(?:about|around|roughly|almost|nearly) 90\b"],
     held=True, style="synonym",
     note="'Wheels lined up' = wheel alignment: 89.99 dollars (not 'about 90').")
_add(G, "lead", _GA_MON, "If I want the cam belt swapped out, how many days' heads-up do you need?",
     [r"(?<![\d.])3 days?\b|\b72 hours\b"],
     [r"(?<![\d.])(?:1|2|4|5|6|7|10|14) days?\b", r"\b(?:a|1) weeks?\b", r"\b(?:24|48) hours\b"],
     held=True, style="synonym",
     note="'Cam belt' = the timing belt replacement: 3 days' notice.")
_add(G, "times", "2026-12-10T12:00",
     "My son's got a half day tomorrow, so I was thinking I'd grab him and swing by with the "
     "car around two for an oil change, we'd just wait for it. Does that work?",
     [_AFFIRM],
     [_NO_START, _SORRY_START, *closed_claim("friday"), *closed_claim("tomorrow"),
      closes_at_not(17, 30), r"\bclosed (?:then|by then|at that time|at 2)\b",
      r"\b(?:can'?t|cannot) wait\b", r"\bnot while you wait\b",
      r"\bleave (?:the car|it) with us\b"],
     held=True, style="indirect",
     note="Thursday; tomorrow is Friday Dec 11, open 7:30 am to 5:30 pm, and oil changes are "
          "done while you wait: yes.")
_unknown(G, _GA_MON,
         "I'm just passing through town and I've picked up a nail in my tire. Any chance you "
         "could patch it for me?",
         _NW + r"\bwe (?:do|don'?t|do not|can|can'?t|cannot|could|patch|fix|repair|plug|offer)"
         r"(?: not)?(?: patch| fix| repair| plug| offer| do| take care of)? (?:a |the |your |"
         r"that |any )?(?:flats?|tires?|tyres?|punctures?|tire repairs?|patch(?:es)?|plugs?)\b",
         r"\bwe (?:can|could|'ll|will) (?:patch|fix|plug|repair) (?:it|that)\b",
         r"\b(?:patch|plug|tire repair|flat repair)(?:es|s)? (?:is|are|costs?|runs?)\b",
         r"\bbring it (?:in|by|over)\b",
         held=True, style="indirect",
         note="Tire repair is not in the facts (a tire rotation is a different job): fallback.")
_add(G, "partial", _GA_MON,
     "What's a brake check cost, and is there any kind of warranty on the work?",
     [money("30"), *FALLBACK_MUST],
     [other_money("30"),
      _NW + r"\bwe (?:do|don'?t|do not|offer|give|provide|have)(?: not)?(?: offer| give|"
      r" provide| have)? (?:a |an |any |no )?(?:\d+[ -](?:day|month|year|mile) |lifetime |"
      r"full )?(?:warrant(?:y|ies)|guarantee)",
      r"\b(?:warranty|guarantee) (?:is|covers|lasts|of \d)\b",
      r"\b(?:all |our )?(?:work|repairs|parts) (?:is|are|comes?) (?:fully )?(?:covered|"
      r"guaranteed|warrantied|with a)\b",
      r"(?<![\d.])\d+[ -](?:months?|years?|miles?)\b"],
     held=True, style="two-in-one",
     note="'Brake check' = brake inspection: 30 dollars; warranties are not in the facts: "
          "fallback for that part.")
_add(G, "times", _GA_MON,
     "Two quick ones: when do you get started in the morning on weekdays, and what time do you "
     "knock off on Saturdays?",
     [tm(7, 30), tm(12)],
     [r"\bweekdays?,? (?:we )?open(?:s)? (?:at|from) (?!7[: ]30)\d",
      r"\bopen(?:s|ing)? (?:at|from) (?:6|6:30|7|8|8:30|9)(?![\d:])(?: am)? (?:on )?weekdays\b",
      r"\bweekdays?,? (?:from )?(?!7[: ]30)\d{1,2}(?::\d\d)?(?: am)? ?(?:to|until|till|-)",
      day_range("saturday", _T, "(?:1|2|3|4|5|5:30)"),
      r"\b(?:until|till|close|closes|closing) (?:at )?(?:1|2|3|4|5|5:30)(?![\d:])(?: pm)? "
      r"on saturdays?",
      r"\bsaturdays?,? (?:we )?(?:close|closes|are open until|'re open until|until|till|"
      r"knock off|finish) (?:at )?(?!12)\d"],
     held=True, style="two-in-one",
     note="Both known: weekdays open at 7:30 am; Saturdays close at 12 noon.")
_add(G, "times", _GA_MON,
     "Any chance I could drop the car off first thing Saturday, like seven-thirty, before I "
     "head to work?",
     [any_of(_NEG, opens_at(8), r"\bnot (?:until|till) 8\b", r"(?<![\d:])8(?: am)? on saturdays?\b",
             r"\bsaturdays?,? (?:we )?(?:open |opens |start |are open )?(?:at |from )?8(?![\d:])"
             r"(?! pm)")],
     [_AGREE, r"\bopen(?:s|ing)? (?:at|from) 7:30(?: am)? (?:on )?saturdays?",
      r"\bsaturdays?,? (?:we )?open(?:s)? (?:at|from) (?:7|7:30)(?![\d:])",
      day_range("saturday", "(?:7|7:30)", _T),
      r"\bopen(?:s|ing)? (?:at|from) (?:6|6:30|7|9)(?![\d:])"],
     style="loose-time",
     note=_MOVED_1207 + "Saturday Dec 12 opens at 8 am (7:30 is the weekday time): not at "
     "7:30.")
_add(G, "relative", "2026-12-08T06:50",
     "Hey, I'm heading out in ten minutes, how early can I drop the car off this morning?",
     [tm(7, 30)],
     [opens_at_not(7, 30), _STILL_OPEN, r"\bwe'?re open (?:now|right now)\b",
      r"\bany ?time\b(?! after)", r"\bright (?:away|now)\b", *closed_claim("today")],
     held=True, style="loose-time",
     note="Tuesday 6:50 am; opens at 7:30 am.")
_unknown(G, _GA_MON,
         "Do you guys do detailing too? The inside of my car is a total disaster.",
         _NW + r"\bwe (?:do|don'?t|do not|offer|provide|can)(?: not)?(?: do| offer| provide)? "
         r"(?:any |interior |full |car )?(?:detailing|car washes|washing|cleaning|valeting)",
         r"\bdetailing (?:is|costs|starts|runs)\b",
         r"\bwe (?:only|just) do (?:repairs|mechanical|maintenance)\b",
         held=True, style="you-guys",
         note="Detailing is not in the facts: fallback, no yes/no.")
_add(G, "followup", _GA_MON,
     ("Hey, do you guys work on, like, smaller trucks? I've got a Tacoma.",
      "Nice. So what do you guys charge to swap out a timing belt?"),
     [money("450")], [other_money("450")],
     held=True, style="you-guys",
     note="Light trucks yes; timing belt replacement 450 dollars.")


def _build() -> tuple[Case, ...]:
    counts: dict[str, int] = {}
    out = []
    for persona, fields in _RAW:
        counts[persona] = counts.get(persona, 0) + 1
        out.append(Case(id=f"{persona}-{counts[persona]:02d}", persona=persona, **fields))
    return tuple(out)


CASES: tuple[Case, ...] = _build()


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------

def score(case: Case, answer: str) -> tuple[bool, list[str]]:
    """(passed, reasons): every ``must`` regex found and no ``must_not`` regex found in
    ``normalise(answer)``; reasons name each missing / forbidden pattern."""
    text = normalise(answer)
    reasons = [f"missing {p!r}" for p in case.must if not re.search(p, text)]
    for p in case.must_not:
        m = re.search(p, text)
        if m:
            reasons.append(f"forbidden {p!r} matched {m.group(0)!r}")
    return not reasons, reasons
