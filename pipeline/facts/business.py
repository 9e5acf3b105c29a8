"""The business's facts as data, parsed from the ``[business]`` config table.

Parsing raises ``ValueError`` naming the entry; the config layer adds the key. Times are
minutes after local midnight, weekdays 0 = Monday (``datetime.weekday``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_ABBR = {name[:3]: i for i, name in enumerate(DAY_NAMES)}


@dataclass(frozen=True)
class Item:
    name: str
    amount: float


@dataclass(frozen=True)
class Business:
    name: str = ""
    timezone: str = "UTC"
    hours: dict[int, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    """Weekday -> opening ranges (start, end) in minutes; a weekday not here is closed."""
    closed_dates: dict[date, str] = field(default_factory=dict)
    """Dates closed whatever the weekday -> their name ("" if none given)."""
    address: str = ""
    phone: str = ""
    prices: tuple[Item, ...] = ()
    currency: str = "dollars"
    lead_times: tuple[Item, ...] = ()
    """Item -> whole days ahead it must be ordered or booked."""
    facts: tuple[str, ...] = ()
    fallback: str = "I'm sorry, I don't know that."

    def catalog(self) -> tuple[Item, ...]:
        """Every item named in prices or lead times, once (what a caller may ask about)."""
        seen: dict[str, Item] = {}
        for item in (*self.prices, *self.lead_times):
            seen.setdefault(item.name, item)
        return tuple(seen.values())

    def words(self) -> str:
        """What callers will say that a speech model may not know: the name and the items
        ("Riverside Dental Clinic: check-up, cleaning.")."""
        items = ", ".join(i.name for i in self.catalog())
        return f"{self.name}: {items}." if self.name and items else (self.name or items)

    def closed_weekdays(self) -> list[int]:
        """Weekdays without opening hours (0 = Monday)."""
        return [d for d in range(7) if not self.hours.get(d)]

    def ranges_on(self, day: date) -> tuple[tuple[int, int], ...]:
        """Opening ranges on ``day`` (none on a closed date)."""
        if day in self.closed_dates:
            return ()
        return self.hours.get(day.weekday(), ())


def parse_days(text: str) -> list[int]:
    """ "mon-fri", "sat", "mon,wed,fri", "fri-mon" (wraps) -> weekdays."""
    days: list[int] = []
    for part in text.lower().split(","):
        ends = part.strip().split("-")
        if len(ends) > 2 or any(e[:3] not in _DAY_ABBR for e in ends):
            raise ValueError(f"{part.strip()!r} is not a day or a range of days (mon..sun)")
        first, last = _DAY_ABBR[ends[0][:3]], _DAY_ABBR[ends[-1][:3]]
        d = first
        while True:
            if d not in days:
                days.append(d)
            if d == last:
                break
            d = (d + 1) % 7
    return days


_RANGE = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


def parse_range(text: str) -> tuple[int, int]:
    m = _RANGE.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a time range HH:MM-HH:MM")
    h1, m1, h2, m2 = map(int, m.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if m1 > 59 or m2 > 59 or not 0 <= start < end <= 24 * 60:
        raise ValueError(f"{text!r}: a range must start before it ends, within one day")
    return start, end


def parse_hours(entries: tuple[str, ...]) -> dict[int, tuple[tuple[int, int], ...]]:
    """ ["mon-fri 08:00-12:00 13:00-17:30", "sat 09:00-13:00"] -> weekday -> ranges."""
    hours: dict[int, list[tuple[int, int]]] = {}
    for entry in entries:
        words = entry.split()
        if len(words) < 2:
            raise ValueError(f"{entry!r}: expected DAYS HH:MM-HH:MM [HH:MM-HH:MM ...]")
        ranges = sorted(parse_range(w) for w in words[1:])
        for a, b in zip(ranges, ranges[1:], strict=False):
            if b[0] < a[1]:
                raise ValueError(f"{entry!r}: the ranges overlap")
        for d in parse_days(words[0]):
            if d in hours:
                raise ValueError(f"{entry!r}: {DAY_NAMES[d]} is already given")
            hours[d] = ranges
    return {d: tuple(r) for d, r in sorted(hours.items())}


def parse_dates(entries: tuple[str, ...]) -> dict[date, str]:
    out = {}
    for entry in entries:
        day, _, name = entry.strip().partition(" ")
        try:
            out[date.fromisoformat(day)] = name.strip()
        except ValueError:
            raise ValueError(f"{entry!r}: expected YYYY-MM-DD [name]") from None
    return out


def parse_items(entries: tuple[str, ...], what: str) -> tuple[Item, ...]:
    """ ["sourdough loaf: 6", "croissant: 2.50"] -> items (``what``: the number's meaning)."""
    items = []
    for entry in entries:
        name, sep, amount = entry.rpartition(":")
        try:
            value = float(amount)
        except ValueError:
            value = -1.0
        if not sep or not name.strip() or value < 0:
            raise ValueError(f"{entry!r}: expected 'item: {what}'")
        items.append(Item(name.strip(), value))
    return tuple(items)
