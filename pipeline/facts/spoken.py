"""Times, days and amounts in the words the bot should say them in (one consistent form:
the model copies what it reads)."""

from __future__ import annotations

from datetime import date

from pipeline.facts.business import DAY_NAMES


def clock(minutes: int) -> str:
    """540 -> "9 am", 930 -> "3:30 pm", 720 -> "12 noon", 1440 -> "midnight"."""
    if minutes in (0, 24 * 60):
        return "midnight"
    h, m = divmod(minutes, 60)
    if h == 12 and m == 0:
        return "12 noon"
    suffix = "am" if h < 12 else "pm"
    h12 = h % 12 or 12
    return f"{h12} {suffix}" if m == 0 else f"{h12}:{m:02d} {suffix}"


def ranges(spans: tuple[tuple[int, int], ...]) -> str:
    """((420, 900),) -> "7 am to 3 pm"; two ranges joined with "and"."""
    return " and ".join(f"{clock(a)} to {clock(b)}" for a, b in spans)


def day(d: date, comma: bool = True) -> str:
    """date(2026, 12, 4) -> "Friday, December 4" ("Friday December 4" without the comma)."""
    return f"{DAY_NAMES[d.weekday()].capitalize()}{',' if comma else ''} {d.strftime('%B')} {d.day}"


def money(amount: float, currency: str) -> str:
    """6.0 -> "6 dollars", 2.5 -> "2.50 dollars"."""
    text = f"{amount:.0f}" if amount == int(amount) else f"{amount:.2f}"
    return f"{text} {currency}"


def each_weekday(days: list[int]) -> str:
    """[2, 3, 4] -> "Wednesday, Thursday and Friday": every day named, for a model that read
    "Wednesday to Sunday" and answered with all seven days."""
    names = [DAY_NAMES[d].capitalize() for d in days]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def weekdays(days: list[int]) -> str:
    """[0, 1, 2, 3, 4] -> "Monday to Friday"; [0, 2] -> "Monday and Wednesday"."""
    if len(days) > 2 and days == list(range(days[0], days[0] + len(days))):
        return f"{DAY_NAMES[days[0]].capitalize()} to {DAY_NAMES[days[-1]].capitalize()}"
    return each_weekday(days)
