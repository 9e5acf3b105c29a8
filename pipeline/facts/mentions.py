"""What a caller's words refer to that the facts can answer: days, a time of day, "now",
items with quantities. Pure text rules over a transcript (Whisper writes "4 p.m.",
"December 24th", digits); ``Mentions.follow`` carries the last turn's day and items into an
elliptical follow-up ("And on Sunday?", "And three of them?")."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

from pipeline.facts.business import DAY_NAMES, Item

MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
          "september", "october", "november", "december")
_NUMBER_WORDS = {w: i for i, w in enumerate(
    ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
     "eleven", "twelve"))}
_NUMBER_WORDS.update({"a": 1, "an": 1, "single": 1, "dozen": 12, "couple": 2,
                      "thirteen": 13, "fourteen": 14, "fifteen": 15, "twenty": 20})


@dataclass(frozen=True)
class Period:
    """A stretch of the day said loosely: minutes after midnight, [start, end)."""
    start: int
    end: int
    said: str
    """The caller's words ("in the morning", "after work")."""


@dataclass(frozen=True)
class DayRef:
    day: date
    said: str
    """The caller's words for it ("tomorrow", "Sunday", "December 24th")."""
    every: bool = False
    """Said in the plural ("on Mondays"): the weekday in general."""


@dataclass(frozen=True)
class Mentions:
    days: tuple[DayRef, ...] = ()
    time: int | None = None
    """A time of day the caller named, minutes after midnight."""
    period: Period | None = None
    """A part of the day named loosely ("Saturday morning", "after work", "tonight")."""
    now: bool = False
    items: tuple[tuple[Item, int | None], ...] = ()
    """Items named, each with the quantity said before it (None: no quantity)."""
    quantity: int | None = None
    """A bare quantity ("three of them"), for the items of the turn before."""
    back: int | None = None
    """How many of the turn before's items a word pointing back at them counts, beside
    items named now ("three of those and two croissants", "that plus an oil change")."""
    topics: frozenset[str] = field(default_factory=frozenset)
    """Facts the question is about: "hours", "address", "phone", "name"."""

    elliptical: bool = False
    """Said as a follow-up ("And on Sunday?", "What about three?")."""
    yes_no: bool = False
    """A yes/no question (a follow-up to one is one too: "Are you open Saturday?" "And
    Sunday?")."""

    def follow(self, before: Mentions | None) -> Mentions:
        """An elliptical follow-up borrows what it leaves out from the turn before."""
        if before is None:
            return self
        if self.back is not None and self.items and before.items:
            # the pointing word is a follow-up whatever comes first ("so if I did that plus
            # an oil change...")
            named = {i.name for i, _ in self.items}
            return replace(self, items=tuple(
                (i, self.back) for i, _ in before.items if i.name not in named) + self.items)
        if not self.elliptical:
            return self
        out = self
        if (not self.days and before.days
                and (self.time is not None or self.period or "hours" in self.topics)):
            # "Open Saturday?" "How late?": the hours of the day the caller was asking about
            out = replace(out, days=before.days)
        if not self.items and before.items and self.quantity is not None:
            out = replace(out, items=tuple((i, self.quantity) for i, _ in before.items))
        if (self.days or self.time is not None or self.period) and not self.topics \
                and not self.items:
            out = replace(out, topics=out.topics | (before.topics & {"hours"}),
                          yes_no=out.yes_no or before.yes_no)
        return out

    @property
    def empty(self) -> bool:
        return not (self.days or self.time is not None or self.period or self.now
                    or self.items or self.topics)


def words_of(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text.lower().replace("’", "'"))


def number(word: str) -> int | None:
    if word.isdigit():
        return int(word)
    return _NUMBER_WORDS.get(word)


# --- days --------------------------------------------------------------------------------

def find_days(text: str, today: date, closed_names: dict[date, str] | None = None,
              ) -> list[DayRef]:
    low = text.lower().replace("’", "'")
    found: list[tuple[int, DayRef]] = []

    def add(pos: int, ref: DayRef) -> None:
        if all(r.day != ref.day or r.every != ref.every for _, r in found):
            found.append((pos, ref))

    for m in re.finditer(r"\b(day after tomorrow|tomorrow|today|tonight|this (?:morning|"
                         r"afternoon|evening))\b", low):
        w = m.group(1)
        if w == "day after tomorrow":
            add(m.start(), DayRef(today + timedelta(days=2), "the day after tomorrow"))
        elif w == "tomorrow":
            if not low[max(0, m.start() - 10):m.start()].endswith("after "):
                add(m.start(), DayRef(today + timedelta(days=1), "tomorrow"))
        else:
            add(m.start(), DayRef(today, "today"))
    for m in re.finditer(r"\b(next |this |on )?(monday|tuesday|wednesday|thursday|friday|"
                         r"saturday|sunday)(s)?\b", low):
        wd = DAY_NAMES.index(m.group(2))
        ahead = (wd - today.weekday()) % 7
        if m.group(1) == "next " and ahead == 0:
            ahead = 7
        name = m.group(2).capitalize()
        add(m.start(), DayRef(today + timedelta(days=ahead), name + ("s" if m.group(3) else ""),
                              every=bool(m.group(3))))
    for m in re.finditer(r"\bweekends?\b", low):
        for wd in (5, 6):
            ahead = (wd - today.weekday()) % 7
            add(m.start(), DayRef(today + timedelta(days=ahead), DAY_NAMES[wd].capitalize(),
                                  every=m.group(0).endswith("s")))
    month = "|".join(MONTHS) + r"|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
    day_no = r"(\d{1,2})(?:st|nd|rd|th)?"
    for m in re.finditer(rf"\b(?:({month})\.? (?:the )?{day_no}|(?:the )?{day_no} of ({month}))\b",
                         low):
        mon_word = m.group(1) or m.group(4)
        day_txt = m.group(2) or m.group(3)
        mon = next(i for i, n in enumerate(MONTHS, 1) if n.startswith(mon_word[:3]))
        d = _dated(today, mon, int(day_txt))
        if d is not None:
            add(m.start(), DayRef(d, d.strftime("%B ") + str(d.day)))
    dated = any(r.said[:3].lower() in [m[:3] for m in MONTHS] for _, r in found)
    if not dated:  # "the 24th" alone: this month, or the next if it has passed
        for m in re.finditer(r"\bthe (\d{1,2})(st|nd|rd|th)\b", low):
            mon, year = today.month, today.year
            if int(m.group(1)) < today.day:
                mon, year = (1, year + 1) if mon == 12 else (mon + 1, year)
            d = _dated(date(year, mon, 1), mon, int(m.group(1)))
            if d is not None:
                add(m.start(), DayRef(d, d.strftime("%B ") + str(d.day)))
    named = [(d, n) for d, n in (closed_names or {}).items() if n and len(n) > 3 and d >= today]
    named += [(d, n) for n, d in _holidays(today)]
    taken = ""
    for d, name in sorted(named, key=lambda dn: -len(dn[1])):  # "christmas eve" first
        i = low.find(name.lower())
        if i >= 0 and re.search(rf"\b{re.escape(name.lower())}\b", low) and \
                name.lower() not in taken:
            taken += "|" + name.lower()
            add(i, DayRef(d, name))
    # "Monday the 28th": the date says which Monday
    dates = {r.day.weekday() for _, r in found if not r.said.endswith("day") or " " in r.said}
    found = [(i, r) for i, r in found
             if not (r.said.capitalize() in [d.capitalize() for d in DAY_NAMES]
                     and r.day.weekday() in dates
                     and any(o.day != r.day and o.day.weekday() == r.day.weekday()
                             for _, o in found))]
    return [ref for _, ref in sorted(found, key=lambda pr: pr[0])]


def _holidays(today: date) -> list[tuple[str, date]]:
    out = []
    for name, (mon, day) in HOLIDAYS.items():
        d = _dated(today, mon, day)
        if d is not None:
            out.append((name, d))
    return out


def _dated(today: date, month: int, day: int) -> date | None:
    """That month and day, this year or (once passed) the next."""
    for year in (today.year, today.year + 1):
        try:
            d = date(year, month, day)
        except ValueError:
            return None
        if d >= today:
            return d
    return None


# --- time of day -------------------------------------------------------------------------

_AM = r"(?:a\.? ?m\.?|in the morning)"
_PM = r"(?:p\.? ?m\.?|in the afternoon|in the evening|at night|tonight)"
_HOUR_WORD = r"(\d{1,2}|" + "|".join(list(_NUMBER_WORDS)[1:13]) + ")"
_CLOCK = re.compile(rf"\b{_HOUR_WORD}(?:[:.](\d{{2}}))?(?: o'clock)? ?({_AM}|{_PM})?(?![\w:])")
"""An hour, maybe minutes, o'clock, am/pm: "4", "2:45", "9.30 a.m.", "four o'clock"."""


_LATER = re.compile(r"\bin (?:about |around |roughly |maybe |like )?(?:(an?|one|half an?|"
                    r"\d{1,3}|a few|a couple(?: of)?|" + "|".join(list(_NUMBER_WORDS)[2:13])
                    + r"|fifteen|twenty|thirty|forty|forty-five|fifty) "
                    r"(hours?|minutes?|mins?)(?: and a half)?|half an hour)\b")


def later(text: str) -> int | None:
    """Minutes from now of a time said relative to it ("in an hour or so", "in 20 minutes",
    "in half an hour"), or None."""
    m = _LATER.search(text.lower())
    if m is None:
        return None
    if m.group(1) is None:
        return 30
    amount = {"a few": 3, "a couple": 2, "a couple of": 2, "half an": 0.5, "half a": 0.5,
              "forty-five": 45}.get(m.group(1))
    if amount is None:
        amount = number(m.group(1)) or {"thirty": 30, "forty": 40, "fifty": 50}.get(
            m.group(1), 1)
    if "and a half" in m.group(0):
        amount += 0.5
    return round(amount * (60 if m.group(2).startswith("hour") else 1))


_MINUTE_WORDS = {"fifteen": 15, "thirty": 30, "forty-five": 45, "forty five": 45}
_SPELLED = re.compile(rf"\b{_HOUR_WORD}[- ]({'|'.join(_MINUTE_WORDS)})\b(?!-)")


def _spelled_minutes(low: str) -> str:
    """Times said in words as a clock reads ("seven-thirty" -> "7:30"), and a loose hour
    ("one-ish" -> "around one"): read as no time at all, they left the day's loose period
    ("first thing", "lunchtime") to decide, which the hour contradicted."""
    def clock(m: re.Match[str]) -> str:
        h = number(m.group(1))
        return f"{h}:{_MINUTE_WORDS[m.group(2)]:02d}" if h is not None else m.group(0)

    low = re.sub(rf"(?<!half )(?<!past )(?<!to )\b{_HOUR_WORD}-?ish\b", r"around \1", low)
    low = re.sub(rf"\b{_HOUR_WORD}-?ish\b", r"\1", low)  # "half three-ish"
    return _SPELLED.sub(clock, low)


def find_time(text: str, now: int | None = None) -> int | None:
    """The first time of day named, minutes after midnight. Without am/pm, 1-6 o'clock is
    read as afternoon and 7-11 as morning (what a caller of a day-time business means).
    ``now`` (minutes after midnight): a time said relative to it ("in an hour") counts."""
    low = _spelled_minutes(text.lower().replace("’", "'"))
    if now is not None and (ahead := later(low)) is not None and now + ahead < 24 * 60:
        return now + ahead
    if re.search(r"\b(noon|midday)\b", low):
        return 12 * 60
    # "half three" is half past three (British), not a half of anything ("half an hour")
    m = re.search(rf"\b(half past|quarter past|quarter to|half) {_HOUR_WORD}\b(?! (?:of|an?)\b)",
                  low)
    if m:
        h = number(m.group(2)) or 0
        base = _hour(h, low[m.end():m.end() + 20])
        if base is None:
            return None
        shift = {"half past": 30, "half": 30, "quarter past": 15, "quarter to": -15}[m.group(1)]
        return base * 60 + shift
    for m in _CLOCK.finditer(low):
        has_clock = m.group(2) is not None or m.group(3) is not None or "o'clock" in m.group(0)
        before = low[max(0, m.start() - 8):m.start()]
        if has_clock or re.search(r"\b(at|by|till|until|after|before|around|about)\s$",
                                  before):
            h = number(m.group(1))
            if h is not None:
                base = _hour(h, m.group(3) or "")
                if base is not None:
                    return base * 60 + int(m.group(2) or 0)
    return None


def _hour(h: int, suffix: str) -> int | None:
    if h > 24:
        return None
    if h > 12:
        return h if h < 24 else None
    if re.match(_PM, suffix.strip()):
        return h if h == 12 else h + 12
    if re.match(_AM, suffix.strip()):
        return 0 if h == 12 else h
    return h + 12 if 1 <= h <= 6 else h


# what callers mean by a loose time of day (a day-time business's sense of it)
_PERIODS = (
    (r"\bafter work\b", 17 * 60 + 30, 19 * 60, "after work"),
    (r"\bbefore work\b", 6 * 60, 8 * 60 + 30, "before work"),
    (r"\bafter school\b", 15 * 60, 17 * 60, "after school"),
    # "early tomorrow morning", "late on Saturday afternoon": up to two words between
    (r"\b(?:first thing|early (?:\w+ ){0,2}mornings?|at opening)\b", 6 * 60, 10 * 60,
     "first thing in the morning"),
    (r"\b(?:late (?:\w+ ){0,2}mornings?|mid-? ?mornings?)\b", 10 * 60, 12 * 60,
     "late in the morning"),
    (r"\bearly (?:\w+ ){0,2}afternoons?\b", 12 * 60, 14 * 60 + 30, "early in the afternoon"),
    (r"\b(?:late (?:\w+ ){0,2}afternoons?|end of the (?:day|afternoon))\b", 15 * 60 + 30,
     17 * 60 + 30, "late in the afternoon"),
    (r"\bearly (?:\w+ ){0,2}evenings?\b", 17 * 60, 19 * 60, "early in the evening"),
    (r"\b(?:lunch ?time|lunch ?break|over lunch|at lunch)\b", 12 * 60, 13 * 60 + 30,
     "at lunchtime"),
    (r"\b(?:tonight|at night)\b", 18 * 60, 22 * 60, "in the evening"),
    (r"\bevenings?\b", 17 * 60, 21 * 60, "in the evening"),
    (r"\bafternoons?\b", 12 * 60, 17 * 60, "in the afternoon"),
    (r"\bmornings?\b", 8 * 60, 12 * 60, "in the morning"),
)


def find_period(text: str) -> Period | None:
    """A loose time of day ("Saturday morning", "after work", "tonight"); a clock time said
    with it ("around ten in the morning") is ``find_time``'s."""
    low = text.lower()
    for pat, start, end, said in _PERIODS:
        if re.search(pat, low):
            return Period(start, end, said)
    return None


_WHEN = re.compile(
    r"\b(?:(?:on |at |by |around |about |for |this |next |in the )?(?:(?:the )?day after "
    r"tomorrow|tomorrow|today|tonight|weekends?|(?:monday|tuesday|wednesday|thursday|friday|"
    r"saturday|sunday)s?|mornings?|afternoons?|evenings?|after work|lunch ?time|noon|midday|"
    r"(?:over |during )?(?:the )?holidays?|christmas(?: eve| day)?|new year'?s(?: eve| day)?|"
    r"boxing day|thanksgiving|easter|halloween|valentine'?s day))"
    r"\b|\b(?:at |by |around |about |until |till |after |before )?\d{1,2}(?:[:.]\d\d)?"
    r"(?: ?[ap]\.? ?m\.?| o'clock)?(?![\w:])", re.I)


def without_times(text: str) -> str:
    """The question with its days and times taken out: what it asks about then ("do you do
    surgery on Saturdays?" -> "do you do surgery?")."""
    return re.sub(r"\s+([?.!,])", r"\1", re.sub(r"\s+", " ", _WHEN.sub(" ", text))).strip()


# --- items -------------------------------------------------------------------------------

def stem(word: str) -> str:
    """Crude: plural and verb endings off, then the first 5 letters ("loaves" ~ "loaf",
    "cancellation" ~ "cancelled")."""
    w = word.lower()
    # "es" is a plural's only after a hiss ("boxes", "sandwiches"); "cakes" is "cake" + "s"
    for end, repl in (("ves", "f"), ("ies", "y"), ("ches", "ch"), ("shes", "sh"), ("xes", "x"),
                      ("zes", "z"), ("sses", "ss"), ("s", "")):
        if len(w) > 3 and w.endswith(end) and (end != "s" or not w.endswith("ss")):
            w = w[: -len(end)] + repl
            break
    return w[:5]


def _names_at(ws: list[str], i: int, s: str, name: list[str], head: str) -> bool:
    """Whether word ``i`` (stem ``s``) is the last word of a saying of the item ``name``. A
    name ending in a short word ("check-up", "drop-off") needs both: "finish up" is no
    check-up ("check-up", "check up", "checkups")."""
    if len(name) > 1 and len(name[-1]) <= 3:
        joined = name[-2] + name[-1]
        return (ws[i] in (joined, joined + "s")
                or (i > 0 and ws[i - 1] == name[-2] and ws[i] in (name[-1], name[-1] + "s")))
    return s == head


_OF_THE = frozenset(("of", "the", "those", "these", "your"))


def find_items(text: str, items: tuple[Item, ...]) -> list[tuple[Item, int | None]]:
    """Items whose name's last word (or whole name) the caller said, with the quantity said
    just before it ("two sourdough loaves" -> 2)."""
    ws = words_of(text)
    stems = [stem(w) for w in ws]
    out: list[tuple[Item, int | None]] = []
    for item in items:
        name = words_of(item.name)
        head = stem(name[-1])
        for i, s in enumerate(stems):
            if not _names_at(ws, i, s, name, head):
                continue
            # the words before the head must agree with the name's (any they share)
            qty = None
            j = i - 1
            # "four of the cinnamon rolls": the words pointing into the items are not between
            # the count and the name the way an adjective is
            between = 0
            while j >= 0 and i - j - between <= len(name) + 1:
                if ws[j] in _OF_THE and j + 1 < i:
                    between += 1
                q = number(ws[j])
                if q is not None:
                    qty = q * (12 if j + 1 < len(ws) and ws[j + 1] == "dozen" and q != 12
                               else 1)
                    if ws[j] == "dozen" and j > 0 and ws[j - 1] == "half":
                        qty = 6
                    break
                j -= 1
            out.append((item, qty))
            break
    # a longer name that matched beats a shorter one with the same head ("birthday cake" vs
    # "cake") only if its other words were said
    return _best(out, stems)


def _best(found: list[tuple[Item, int | None]], stems: list[str]) -> list[tuple[Item, int | None]]:
    by_head: dict[str, list[tuple[Item, int | None]]] = {}
    for pair in found:
        by_head.setdefault(stem(words_of(pair[0].name)[-1]), []).append(pair)
    out = []
    for group in by_head.values():
        if len(group) == 1:
            out.extend(group)
            continue
        scored = sorted(group, key=lambda p: -sum(
            stem(w) in stems for w in words_of(p[0].name)[:-1]))
        best = sum(stem(w) in stems for w in words_of(scored[0][0].name)[:-1])
        out.extend(p for p in scored
                   if sum(stem(w) in stems for w in words_of(p[0].name)[:-1]) == best)
    return out


def find_quantity(text: str) -> int | None:
    """A bare quantity ("and three of them?", "what about 4?")."""
    m = re.search(r"\b(\d+|" + "|".join(list(_NUMBER_WORDS)[1:]) + r")\b(?! ?(?:am|pm|a\.m|p\.m|"
                  r"o'clock|in the))", text.lower())
    if not m or m.group(1) in ("a", "an"):
        return None
    return number(m.group(1))


_POINTER = r"(?:those|these|them|that|it|this)"


def find_back_reference(text: str) -> int | None:
    """How many of the items of the turn before a word points back at: "three of those" ->
    3, "two of them" -> 2, "that plus ..." / "plus that" -> 1; None: no such word."""
    low = text.lower().replace("’", "'")
    nums = "|".join(list(_NUMBER_WORDS)[1:])
    m = re.search(rf"\b(\d+|{nums}) (?:more )?of {_POINTER}\b", low)
    if m and m.group(1) not in ("a", "an"):
        return number(m.group(1))
    if re.search(rf"\b{_POINTER},? (?:plus|along with|as well as|together with)\b"
                 rf"|\b(?:plus|along with|as well as|together with) {_POINTER}\b", low):
        return 1
    return None


# --- topics ------------------------------------------------------------------------------

TOPIC_WORDS = {
    "hours": r"\b(open|opens|opening|close|closes|closing|closed|hours|when|how (late|early)|"
             r"shut|shuts|finish|finishes|wrap (it )?up|wraps up|lock up|call it a day)\b",
    "address": r"\b(address|where|located|location|find you|directions|street)\b",
    "phone": r"\b(phone|number|call you|reach you)\b",
    "name": r"\b(who is this|who am i|who('s| is) (this|speaking)|(who|which \w+|what \w+) "
            r"(have|did) i (call|called|reach|reached|got)|(what|which) (place|business|shop|"
            r"company|office) is this|what is this place|name of|who are you|your name)\b",
    "week": r"\b((what|which) days|days (are|do) you|days? of the week|opening hours|your hours|"
            r"(open|closed|work)\w*( on)? (every ?day|each day|all week|(seven|7) days|daily))\b",
}
# a person's name is not the business's ("what's the name of your dentist?": the facts name
# no one, and told the business's name the 1.5B answered "Dr. John Smith")
_PERSON = (r"(?:dentist|doctor|vet|owner|manager|boss|mechanic|receptionist|hygienist|nurse|"
           r"surgeon|person|guy|lady|woman|man|technician|groomer|baker|chef|stylist|"
           r"therapist|assistant)s?")
_PERSON_NAME = re.compile(rf"\bname of (?:the |your |this |that |a )?(?:\w+ )?{_PERSON}\b"
                          rf"|\b{_PERSON}'s name\b|\b{_PERSON}'?s'? names\b")
# coming in on a day asks for its hours ("can I bring my car in on Saturday or Sunday?");
# without a day or a time it does not ("can I bring my dog in?")
VISIT = re.compile(r"\b(visit|come (in|by|over|round|along)|stop (by|in)|drop (by|in|off)|"
                   r"pop (in|by)|bring (\w+ ){0,3}in)\b")
YES_NO = re.compile(r"^\W*(?:and |so |but |ok(?:ay)? |hi |hello |then )?(are|is|can|could|will|"
                    r"would|do|does|may|might|should|shall|am)\b", re.I)


# said on the phone without its auxiliary ("You guys open tomorrow?", "Anyone there at 8?")
CASUAL_YES_NO = re.compile(r"^\W*(?:(?:and|so|but|ok(?:ay)?|hi|hey|hello|then|um+|uh+|oh|"
                           r"cool|great|right)\W+)*(?:you|y'?all|ya|anyone|anybody|someone|"
                           r"somebody|any chance|open|closed|still)\b(?!.*\b(?:what|when|where|"
                           r"which|who|why|how)\b)[^?]*\?", re.I)


# a question whose auxiliary comes after a clause of its own ("if I come in an hour will you
# still be open?"), no question word before it ("what time will you open?" is none)
INNER_YES_NO = re.compile(r"^(?:(?!\b(?:what|when|where|which|who|why|how)\b).)*?\b(?:are|is|can|"
                          r"could|will|would|do|does|may|might|should|shall)\s+(?:you|ya|y'?all|"
                          r"we|it|there|they|someone|anyone|anybody|somebody|he|she)\b[^?]*\?",
                          re.I)


def is_yes_no(text: str) -> bool:
    """A yes/no question: a sentence of it starts with an auxiliary verb ("I can only come
    Friday. Are you open then?"), has one before its subject after a clause ("if I come at 4
    will you be open?"), or is a question that leaves it out ("You open Sunday?")."""
    parts = re.split(r"(?<=[.!?,])\s+", text)
    sentences = re.split(r"(?<=[.!?])\s+", text)
    return (any(YES_NO.search(p) for p in parts)
            or any(CASUAL_YES_NO.search(p) or INNER_YES_NO.search(p) for p in sentences))
NOW_WORDS = r"\b(now|right now|at the moment|currently|still open|yet)\b"


def yes_no_about_facts(text: str, today: date, items: tuple[Item, ...]) -> bool:
    """A yes/no question about what the facts decide: of a turn of several sentences, the
    yes/no one names a day, a time, the hours or an item, or points back at a statement that
    does; not one beside another question that asks about them ("Do you guys deliver? And
    what time do you close Saturdays?" is no yes/no about Saturday: its "Yes," said they
    deliver)."""
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]
    if len(sentences) < 2:
        return is_yes_no(text)

    def about_facts(s: str) -> bool:
        low = s.lower()
        return bool(find_days(s, today) or find_time(s) is not None or find_period(s)
                    or find_items(s, items) or re.search(NOW_WORDS, low)
                    or re.search(TOPIC_WORDS["hours"], low)
                    or re.search(TOPIC_WORDS["week"], low))

    # "... bring her by around eleven. Would that be alright?" is about the sentence before
    asked = [s for s in sentences if about_facts(s) and s.rstrip().endswith("?")]
    return any(is_yes_no(s) and (about_facts(s) or not asked) for s in sentences)


ELLIPTICAL = re.compile(r"^\W*(?:(?:ok(?:ay)?|cool|great|right|alright|all right|perfect|"
                        r"thanks|thank you|oh|um+|uh+|so|and so)\W+)*(and|or|what about|how about|"
                        r"also)\b|\b(?:that|the same) day\b|\bthen\W*$")
"""A follow-up: it starts like one ("Okay, and on Sunday?") or points back at the day before
("how late are you open that day?")."""

# fixed-date holidays a caller may name (a configured closed date's own name also counts)
HOLIDAYS = {"christmas eve": (12, 24), "christmas day": (12, 25), "christmas": (12, 25),
            "boxing day": (12, 26), "new year's eve": (12, 31), "new year's day": (1, 1),
            "new year's": (1, 1), "valentine's day": (2, 14), "halloween": (10, 31)}


def find(text: str, today: date, items: tuple[Item, ...],
         closed_names: dict[date, str] | None = None, now: int | None = None) -> Mentions:
    """What ``text`` refers to, said on ``today`` at ``now`` (minutes after midnight; None:
    a time relative to now, "in an hour", is not understood)."""
    low = text.lower().replace("’", "'")
    found_items = tuple(find_items(text, items))
    days = tuple(find_days(text, today, closed_names))
    time = find_time(text, now)
    period = None if time is not None else find_period(text)
    topics = {t for t, pat in TOPIC_WORDS.items() if re.search(pat, low)}
    if _PERSON_NAME.search(low):
        topics.discard("name")
    if (days or time is not None or period is not None) and VISIT.search(low):
        topics.add("hours")
    return Mentions(
        elliptical=bool(ELLIPTICAL.search(low)) or len(words_of(low)) <= 3,
        yes_no=yes_no_about_facts(text, today, items),
        days=days,
        time=time,
        period=period,
        now=bool(re.search(NOW_WORDS, low)),
        items=found_items,
        quantity=None if found_items else find_quantity(text),
        back=find_back_reference(text) if found_items else None,
        topics=frozenset(topics))
