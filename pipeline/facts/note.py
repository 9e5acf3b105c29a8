"""The note the model reads before the caller's words each turn: what the clock and the facts
say about what the caller just asked. A small model gets weekdays, "tomorrow", "open at 4 pm
when it closes at 3" and sums wrong; here they are computed, and the model only says them.

It goes after the cached prompt prefix (a system line before the caller's line, kept in the
history like the caller's words), so the prefix cache stays valid turn after turn.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from pipeline.facts import mentions, spoken
from pipeline.facts.business import DAY_NAMES, Business, Item
from pipeline.facts.mentions import DayRef, Mentions, Period
from pipeline.facts.prompt import hours_lines
from pipeline.facts.relevance import Part

_ASKS_DAYS = re.compile(r"\bdays?\b", re.I)
_ASKS_CLOSED = re.compile(r"\b(closed|close|shut|off)\b", re.I)
_CLOSED_WORD = re.compile(r"\b(closed|shut)\b", re.I)
_OPEN_WORD = re.compile(r"\bopen", re.I)
# "do you do nail trims?": whether the business offers an item it lists a price for
_OFFERS = re.compile(r"^\W*(?:(?:and|so|hi|hey|also)\W+)*(?:do|does) (?:you(?: guys| folks| all)?|"
                     r"y'?all|ya|the \w+) (?:do|offer|have|sell|make|bake|carry|stock|provide|"
                     r"fit)\b", re.I)
_WEEK = re.compile(r"\bweek", re.I)  # "on weekdays": days in general, not a day
# asks for a time the business opens or closes, not whether it is open
_ASKS_WHEN = re.compile(r"\b(what time|when|how (late|early|long)|till|until)\b", re.I)


def days_ahead(d: date, today: date) -> str:
    n = (d - today).days
    return {0: "today", 1: "tomorrow"}.get(n, f"in {n} days")


def on_day(d: date, today: date) -> str:
    """ "today (Friday, December 4)", "on Sunday, December 6 (in 2 days)"."""
    n = (d - today).days
    if n in (0, 1):
        return f"{days_ahead(d, today)} ({spoken.day(d)})"
    return f"on {spoken.day(d)} ({days_ahead(d, today)})"


def open_now(b: Business, now: datetime) -> str:
    t = now.hour * 60 + now.minute
    for a, z in b.ranges_on(now.date()):
        if a <= t < z:
            return f"{b.name} is open now, until {spoken.clock(z)} today."
    nxt = next_opening(b, now)
    when = "" if nxt is None else (
        f"; it opens again {'today' if nxt.date() == now.date() else spoken.day(nxt.date())}"
        f" at {spoken.clock(nxt.hour * 60 + nxt.minute)}")
    return f"{b.name} is closed now{when}."


def next_opening(b: Business, now: datetime, horizon: int = 30) -> datetime | None:
    t = now.hour * 60 + now.minute
    for i in range(horizon):
        d = now.date() + timedelta(days=i)
        for a, _ in b.ranges_on(d):
            if i > 0 or a > t:
                return datetime(d.year, d.month, d.day, a // 60, a % 60)
    return None


def closed_reason(b: Business, d: date) -> str:
    why = b.closed_dates.get(d)
    if why:
        return f" ({why})"
    return " (a holiday closure)" if d in b.closed_dates else ""


def spans_of(b: Business, ref: DayRef) -> tuple[tuple[int, int], ...]:
    """The opening ranges of the day asked about: the weekday's hours for "on Saturdays",
    that date's (holidays included) for "Saturday" or "December 24th"."""
    return b.hours.get(ref.day.weekday(), ()) if ref.every else b.ranges_on(ref.day)


def day_line(b: Business, ref: DayRef, today: date) -> str:
    spans = spans_of(b, ref)
    if ref.every:
        day = DAY_NAMES[ref.day.weekday()].capitalize()
        return (f"On {day}s {b.name} is open from {spoken.ranges(spans)}." if spans
                else f"{b.name} is closed every {day}.")
    when = on_day(ref.day, today)
    if spans:
        return f"{when[0].upper()}{when[1:]}, {b.name} is open from {spoken.ranges(spans)}."
    return (f"{when[0].upper()}{when[1:]}, {b.name} is closed all day"
            f"{closed_reason(b, ref.day)}.")


def day_in_question(b: Business, now: datetime) -> DayRef:
    """The day "what time do you open (in the morning)?" asks about, no day named: today
    while it is open or still to open today, else the next day it opens."""
    today = now.date()
    t = now.hour * 60 + now.minute
    if any(t < z for _, z in b.ranges_on(today)):
        return DayRef(today, "today")
    nxt = next_opening(b, now)
    if nxt is None:
        return DayRef(today, "today")
    # named by its weekday: the caller did not say "tomorrow", and may not know it is
    return DayRef(nxt.date(), DAY_NAMES[nxt.weekday()])


def said_day(ref: DayRef, today: date) -> str:
    """ "on Saturdays", "tomorrow", "on Friday, December 11": a day as the answer names it."""
    if ref.every:
        return f"on {DAY_NAMES[ref.day.weekday()].capitalize()}s"
    n = (ref.day - today).days
    # the day as the caller named it: asked about "Tuesday", an answer about "tomorrow" leaves
    # them to work out that it is the same day
    relative = n in (0, 1) and ref.said.lower() in ("today", "tomorrow", "tonight")
    # no comma: inside the quoted answer the 1.5B dropped the date after "Saturday," (2 of 3)
    return days_ahead(ref.day, today) if relative else f"on {spoken.day(ref.day, comma=False)}"


def mixed_days(b: Business, days: list[DayRef], today: date) -> str:
    """The answer to "open on Saturday and Sunday?" when one is open and one is not. Told
    each day's hours and "answer for each", the 1.5B still said only one of them ("No, closed
    every Sunday"), so the gateway words the whole answer."""
    opened = [f"{said_day(r, today)} from {spoken.ranges(spans_of(b, r))}"
              for r in days if spans_of(b, r)]
    shut = [said_day(r, today) for r in days if not spans_of(b, r)]
    return f"{b.name} is open {' and '.join(opened)}, but closed {' and '.join(shut)}."


def hours_answer(b: Business, ref: DayRef, today: date) -> str:
    """ "On Saturday December 5, Riverside Bakery is open from 8 am to 1 pm." """
    spans = spans_of(b, ref)
    when = said_day(ref, today)
    when = when[0].upper() + when[1:]
    if spans:
        return f"{when}, {b.name} is open from {spoken.ranges(spans)}."
    return f"{when}, {b.name} is closed."


def week_days(b: Business, closed_first: bool = False) -> str:
    """ "Riverside Bakery is open on Wednesday, ..., and closed on Monday and Tuesday." """
    closed = b.closed_weekdays()
    if not closed:
        return f"{b.name} is open every day of the week."
    opened = f"open on {spoken.each_weekday([d for d in range(7) if d not in closed])}"
    shut = f"closed on {spoken.each_weekday(closed)}"
    first, then = (shut, opened) if closed_first else (opened, shut)
    return f"{b.name} is {first}, and {then}."


def time_line(b: Business, d: date, t: int, today: date) -> str:
    """A yes/no verdict first: a small model otherwise answers "yes" to a time it was told is
    after closing."""
    spans = b.ranges_on(d)
    at = f"at {spoken.clock(t)} {on_day(d, today)}"
    if not spans:
        return f"No: {at} {b.name} is closed (closed all day{closed_reason(b, d)})."
    for a, z in spans:
        if a <= t < z:
            return f"Yes: {at} {b.name} is open (until {spoken.clock(z)})."
    later = [a for a, _ in spans if a > t]
    if later and later[0] == spans[0][0]:
        return f"No: {at} {b.name} is not open yet; it opens at {spoken.clock(later[0])}."
    if later:
        return (f"No: {at} {b.name} is closed for a break; it opens again at "
                f"{spoken.clock(later[0])}.")
    return (f"No: {at} {b.name} is already closed; it closes at "
            f"{spoken.clock(spans[-1][1])} that day.")


def priced(b: Business, items: tuple[tuple[Item, int | None], ...]) -> list[tuple[Item, int]]:
    """The items that have a price: each with its price entry and its count (1 if none said)."""
    prices = {p.name: p for p in b.prices}
    return [(prices[i.name], q or 1) for i, q in items if i.name in prices]


def price_lines(b: Business, items: tuple[tuple[Item, int | None], ...]) -> list[str]:
    found = priced(b, items)
    if not found:
        return []
    lines, total, named = [], 0.0, []
    for item, n in found:
        cost = n * item.amount
        total += cost
        each = spoken.money(item.amount, b.currency)
        named.append(f"{n} x {item.name}" if n > 1 else f"one {item.name}")
        lines.append(f"{n} x {item.name} at {each} each come to "
                     f"{spoken.money(cost, b.currency)}." if n > 1
                     else f"One {item.name} costs {each}.")
    if len(found) > 1 or found[0][1] > 1:
        # first: the 1.5B model read out a part's cost as the answer when the total came last
        lines.insert(0, f"The answer: {' and '.join(named)} come to "
                        f"{spoken.money(total, b.currency)} in total.")
    return lines


def lead_lines(b: Business, m: Mentions, today: date) -> list[str]:
    lines = []
    for item, _ in m.items:
        lead = next((i for i in b.lead_times if i.name == item.name), None)
        if lead is None:
            continue
        need = int(lead.amount)
        earliest = today + timedelta(days=need)
        while not b.ranges_on(earliest) and earliest < today + timedelta(days=need + 30):
            earliest += timedelta(days=1)
        notice = f"{need} days' notice" if need != 1 else "a day's notice"
        for ref in m.days or ():
            when = on_day(ref.day, today)
            if (ref.day - today).days < need:
                lines.append(f"No: a {item.name} {when} is too soon; it needs {notice}, so "
                             f"the earliest day is {spoken.day(earliest)}.")
            elif not b.ranges_on(ref.day):
                lines.append(f"No: {b.name} is closed {when}, so a {item.name} cannot be "
                             "ready that day.")
            else:
                lines.append(f"Yes: a {item.name} {when} is possible ({notice} needed).")
        if not m.days:
            lines.append(f"A {item.name} needs {notice}: ordered today, the earliest day is "
                         f"{spoken.day(earliest)}.")
    return lines


def period_line(b: Business, ref: DayRef, p: Period, today: date) -> str:
    """ "Saturday morning", "after work": open during any of it is a yes, with that day's
    hours (the caller picks the time)."""
    spans = spans_of(b, ref)
    when = f"on {ref.said}" if ref.every else on_day(ref.day, today)
    at = f"{p.said} {when}"
    if not spans:
        return f"No: {at} {b.name} is closed (closed all day{closed_reason(b, ref.day)})."
    if any(a < p.end and z > p.start for a, z in spans):
        return f"Yes: {at} {b.name} is open; that day's hours: {spoken.ranges(spans)}."
    return f"No: {at} {b.name} is closed; that day's hours: {spoken.ranges(spans)}."


def verdict(lines: list[str], b: Business, m: Mentions, days: list[DayRef],
            now: datetime, asks_closed: bool = False, lead: tuple[str, ...] = (),
            offers: bool = False) -> bool | None:
    """The yes or no a yes/no question gets: a time or lead-time verdict, else whether the
    business is open on the day (or at the moment) asked about. ``asks_closed``: the question
    is whether it is closed ("are you closed on Sundays?"), so the hours' answer turns round
    (not a lead-time verdict's, among ``lead``); ``offers``: the question is whether the
    business does an item (one it prices: yes)."""
    for line in lines:
        if line.startswith(("Yes:", "No:")):
            yes = line.startswith("Yes:")
            return yes if line in lead else yes != asks_closed
    if "hours" not in m.topics:
        # told the item's price, the 1.5B still said "No, we do not offer nail trims"
        return True if m.items and offers else None
    if "week" in m.topics and not days:  # "are you open every day?"
        closed = b.closed_weekdays()
        return len(closed) == 7 if asks_closed else not closed
    if m.now and all(r.day == now.date() for r in days):  # "are you still open (today)?"
        days = []
    if days:
        opens = {bool(spans_of(b, r)) for r in days}
        # "open on weekends?" when Saturday is and Sunday is not: neither yes nor no (a forced
        # "Yes," made the model say only the closed day)
        return opens.pop() != asks_closed if len(opens) == 1 else None
    t = now.hour * 60 + now.minute
    return any(a <= t < z for a, z in b.ranges_on(now.date())) != asks_closed


def head(now: datetime) -> str:
    """The note's first line, whatever the caller asks: it starts every turn's note, so the
    model can read it before the caller's words are known."""
    today = now.date()
    return (f"Note for this turn: it is now {spoken.day(today)}, {today.year}, "
            f"{spoken.clock(now.hour * 60 + now.minute)}.")


ANSWER_ONLY_THE_REST = "Answer only the other question, in one sentence."
DO_NOT_GUESS = "do not guess"


def meaning_lines(b: Business, parts: list[Part], m: Mentions) -> list[str]:
    """What the facts say about each question of the turn that the computed lines above do not
    cover (found by meaning, pipeline/facts/relevance.py): the fact a question is about; for a
    question only near some facts, those facts and the model to judge; for one no fact is
    near, the fallback (after the answered part, if there is one)."""
    out: list[str] = []
    stated = {i.name for i, _ in m.items}
    fallback = f'"{b.fallback}"'
    answered = any(p.known for p in parts)  # a day line alone answers no question
    unknown = [p.text for p in parts if p.unknown]
    for p in parts:
        if p.ruled or p.unknown:
            continue
        if p.known:
            f = p.nearest[0]
            if f.said not in out and not (f.topic == "price" and f.item is not None
                                          and f.item.name in stated):
                out.append(f.said)
        else:
            near = " ".join(f.said for f in p.nearest)
            out.append(f'Nearest facts to "{p.text}": {near} If they answer it, answer from '
                       f"them; if they do not, {DO_NOT_GUESS}: say {fallback}")
    if unknown and not answered and not out:  # (days named in it keep their lines)
        out.append(f"The facts say nothing about this. {DO_NOT_GUESS.capitalize()}: answer "
                   f"exactly {fallback}")
    elif unknown:
        # told to answer the rest and then say the fallback, the 1.5B answered both questions
        # or neither: it answers the known one, and the gateway says the fallback after it
        # (``then_say``)
        asked = " or ".join(f'"{t}"' for t in unknown)
        out.append(f"The facts do not answer {asked}; do not answer it. {ANSWER_ONLY_THE_REST}")
    return out


def begin_with(words: str) -> str:
    """The note's line that gives the answer its opening ``words``."""
    return f'{BEGIN}"{words}"'


BEGIN = "Begin your answer with "
_BEGIN_LINE = re.compile(rf'^{BEGIN}"(.+)"\.?$', re.M)


def opening(note_text: str) -> str:
    """The opening words ``note_text`` gives the answer (``begin_with``), or "": the gateway
    computed them, so it can say them while the model reads the rest of the note."""
    found = _BEGIN_LINE.search(note_text)
    return found.group(1) if found else ""


_ASKS_PRICE = re.compile(r"\b(how much|cost|costs|price|prices|pricing|charge|charges|fee|"
                         r"fees|rate|rates|pay)\b", re.I)


_ASKS_TOTAL = re.compile(r"\b(all together|altogether|in total|total|come to|comes to|"
                         r"add up|would (?:that|it|those|they) be|what would)\b", re.I)


# a price asked for each item, not their sum ("what do X cost, and what about Y?")
_ASKS_EACH = re.compile(r"\b(what about|how about|and what|and how much|each)\b", re.I)


# "an oil change", and "an x-ray", "an MOT": a letter said by its name can start with a vowel
_AN = re.compile(r"[aeiouAEIOU]|[fhlmnrsx][-\s]|[FHLMNRSX][A-Z]")


def _costs(b: Business, item: Item) -> str:
    """ "an x-ray costs 25 pounds" """
    article = "an" if _AN.match(item.name) else "a"
    return f"{article} {item.name} costs {spoken.money(item.amount, b.currency)}"


def plain_answer(b: Business, m: Mentions, text: str, parts: list[Part] | None) -> str:
    """The whole answer, when the turn asks only the price of one item, whether the business
    does one, or only the address (and nothing the facts do not answer): the gateway can say
    it at once."""
    if m.days or m.time is not None or m.period is not None or m.now:
        return ""
    if parts and not all(p.known for p in parts):
        return ""
    found = priced(b, m.items)
    all_priced = bool(found) and len(found) == len(m.items) and not m.topics
    # one item, and not one ordered ahead (its lead time is part of the answer)
    one = (found[0][0] if all_priced and len(found) == 1
           and not any(i.name == found[0][0].name for i in b.lead_times) else None)
    if m.yes_no:
        return f"Yes, {_costs(b, one)}." if one is not None and _OFFERS.search(text) else ""
    if one is not None and found[0][1] == 1 and _ASKS_PRICE.search(text):
        said = _costs(b, one)
        return f"{said[0].upper()}{said[1:]}."
    if (all_priced and (len(found) > 1 or found[0][1] > 1)
            and (_ASKS_PRICE.search(text) or _ASKS_TOTAL.search(text))
            and not _ASKS_EACH.search(text)):
        # a sum: the total first (the 1.5B read out a part's cost as the answer, or summed
        # wrong); the model may go on with the parts
        total = sum(n * item.amount for item, n in found)
        return f"That comes to {spoken.money(total, b.currency)} in total."
    if m.topics == {"address"} and b.address and not m.items and _asks_address(b, text):
        return f"{b.name} is at {b.address}."
    return ""


def answered_part(b: Business, now: datetime, parts: list[Part] | None) -> str:
    """The whole answer to the questions of a turn the facts answer, when every other is one
    no fact is near and each answered one gets a computed answer (``plain_answer``): the
    gateway says it, then the fallback, without the model. Told to answer only the first,
    the 1.5B also answered the other ("No, we do not work on diesels", "No, we do not make
    gum shields") in 5 of 18 tries."""
    if not parts or not any(p.unknown for p in parts) or not any(p.known for p in parts):
        return ""
    if any(p.unknown and any(f.topic == "fact" for f in p.nearest) for p in parts):
        # near a fact in the business's own words, a question judged unknown may be answered
        # by it after all ("do you see kids?" by "we see adults and children"): the model
        # judges it
        return ""
    said: list[str] = []
    for p in parts:
        if p.unknown:
            continue
        if not p.known:  # only near some facts: the model judges them
            return ""
        pm = mentions.find(p.text, now.date(), b.catalog(), b.closed_dates,
                           now.hour * 60 + now.minute)
        words = plain_answer(b, pm, p.text, None)
        if not words:
            return ""
        said.append(words)
    return " ".join(said)


WHOLE = "The whole answer, said for you: "
_WHOLE_LINE = re.compile(rf'^{WHOLE}"(.+)"\.?$', re.M)


def whole_answer(note_text: str) -> str:
    """The turn's whole answer when the note has it (``answered_part`` and the fallback),
    said by the gateway without the model; else ""."""
    found = _WHOLE_LINE.search(note_text)
    return found.group(1) if found else ""


def _asks_address(b: Business, text: str) -> bool:
    """Where the business is, not where something else is ("where can I park?")."""
    names = "|".join(re.escape(w) for w in re.findall(r"[a-z]{4,}", b.name.lower()))
    place = rf"(?:you|y'?all|ya|(?:the|your) (?:{names + '|' if names else ''}place|shop|office))"
    return bool(re.search(rf"\b(?:address|located|location|find you|directions|"
                          rf"where(?:'s| is| are)? {place})\b", text.lower()))


def then_say(b: Business, note_text: str) -> str:
    """What the gateway says after the model's answer to ``note_text``'s turn: the fallback,
    when the turn asked something the facts answer and something they do not (meaning_lines
    asked the model to answer only the first)."""
    return b.fallback if ANSWER_ONLY_THE_REST in note_text else ""


def instead_of_guessing(b: Business, note_text: str) -> str:
    """What the gateway says instead of a clause of the answer that names a person or a number
    the prompt does not hold (pipeline/reply/guard.py ``Guess``): the fallback, when the note
    says the facts may not answer all of the turn; else "" (no watch)."""
    return b.fallback if (DO_NOT_GUESS in note_text.lower()
                          or ANSWER_ONLY_THE_REST in note_text) else ""


def note(b: Business, now: datetime, m: Mentions, text: str,
         parts: list[Part] | None = None) -> str:
    """The note for this turn (``now``: local wall time of the business): verdicts first
    (times, lead times), then the days named, then "now", then prices; then what the facts say
    about the rest of the turn's questions (``parts``, judged by meaning), or the fallback."""
    today = now.date()
    lines: list[str] = []
    t = m.time
    now_t = now.hour * 60 + now.minute
    days = list(m.days)
    if t is not None and not days and t < now_t and not m.now:
        lines.append(f"{spoken.clock(t)} today has already passed.")
        days = [DayRef(today + timedelta(days=1), "tomorrow")]
    timed: set[date] = set()
    if t is None and m.period is not None and (days or not m.now):
        for ref in days or [DayRef(today, "today")]:
            lines.append(period_line(b, ref, m.period, today))
            timed.add(ref.day)
    if t is not None:
        for ref in days or [DayRef(today, "today")]:
            if ref.every:
                inside = any(a <= t < z for a, z in spans_of(b, ref))
                lines.append(f"{'Yes' if inside else 'No'}: at {spoken.clock(t)} on {ref.said} "
                             f"{b.name} is {'open' if inside else 'closed'}.")
            else:
                lines.append(time_line(b, ref.day, t, today))
                timed.add(ref.day)
    lead = tuple(lead_lines(b, m, today))
    lines += lead
    named = [day_line(b, ref, today) for ref in days if ref.every or ref.day not in timed]
    lines += named
    week = "week" in m.topics and not days
    if m.now or ("hours" in m.topics and not days and t is None and not week):
        lines.append(open_now(b, now))
    lines += price_lines(b, m.items)
    if week:
        said = week_days(b, closed_first=bool(_ASKS_CLOSED.search(text)))
        # "which days do you see patients?" got the plain facts ("sees adults and children"),
        # "which days are you closed?" the holiday dates: a question about the days gets the
        # days as its answer's opening words
        asks_days = not m.yes_no and _ASKS_DAYS.search(text)
        lines.append(begin_with(said) if asks_days else said)
        # the closed days are said once, above: "Monday and Tuesday: closed" first in this
        # line drew "you can come in on Monday, Tuesday, ..." (held-out bakery-39, 3 of 3)
        lines.append(f"{b.name}'s opening hours: "
                     + "; ".join(h for h in hours_lines(b) if not h.endswith(": closed")) + ".")
    if "name" in m.topics:
        lines.append(f"The caller has reached {b.name}.")
    # "are you closed on Sundays?" got "Yes," on a Sunday it is open
    asks_closed = bool(_CLOSED_WORD.search(text)) and not _OPEN_WORD.search(text)
    offers = bool(_OFFERS.search(text)) and not days and t is None
    answer = (verdict(lines, b, m, days, now, asks_closed, lead, offers) if m.yes_no
              else None)
    if words := answered_part(b, now, parts):
        lines.append(f'{WHOLE}"{words} {b.fallback}"')
        return "\n".join([head(now), *lines])
    if answer is not None:
        # the 1.5B opened with "Yes" even under a "No:" line (then said why it was no)
        said = answer and plain_answer(b, m, text, parts)
        lines.append(begin_with(said) if said else begin_with("Yes," if answer else "No,") + ".")
    elif (not m.yes_no and m.topics == {"hours"} and t is None and not lead and not m.items
          and ((len(days) == 1 and m.period is None)
               or (not days and _ASKS_WHEN.search(text) and not _WEEK.search(text)))):
        # "how late are you open that day?": told the day's hours, the 1.5B still gave the
        # weekday's closing time (or said "closed"): the day's hours are the answer's words.
        # With no day named ("what time do you open in the morning?"): the day in question's
        ref = days[0] if days else day_in_question(b, now)
        lines.append(begin_with(hours_answer(b, ref, today)))
    elif m.yes_no and "hours" in m.topics and len(days) > 1:
        # the days' own lines beside it still drew "No, closed every Sunday" (1 in 3)
        lines = [line for line in lines if line not in named]
        lines.append(begin_with(mixed_days(b, days, today)))
    elif words := plain_answer(b, m, text, parts):
        lines.append(begin_with(words))
    if parts:
        lines += meaning_lines(b, parts, m)
    return "\n".join([head(now), *lines])
