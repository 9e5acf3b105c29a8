"""The business's facts written into the system prompt, always in the same form."""

from __future__ import annotations

from pipeline.facts import spoken
from pipeline.facts.business import DAY_NAMES, Business


def hours_lines(b: Business) -> list[str]:
    """Weekdays with the same hours grouped: "Wednesday to Sunday: 7 am to 3 pm"."""
    groups: list[tuple[tuple[tuple[int, int], ...], list[int]]] = []
    for d in range(7):
        spans = b.hours.get(d, ())
        if groups and groups[-1][0] == spans:
            groups[-1][1].append(d)
        else:
            groups.append((spans, [d]))
    return [f"{spoken.weekdays(days)}: {spoken.ranges(spans) if spans else 'closed'}"
            for spans, days in groups]


def facts_block(b: Business) -> str:
    lines = [f"Business: {b.name}."]
    lines.append("Opening hours: " + "; ".join(hours_lines(b)) + ".")
    closed = [d for d in range(7) if d not in b.hours]
    if closed:
        lines.append("Closed every " + spoken.weekdays(closed) + ".")
    if b.closed_dates:
        lines.append("Also closed on: " + "; ".join(
            spoken.day(d) + f", {d.year}" + (f" ({name})" if name else "")
            for d, name in sorted(b.closed_dates.items())) + ".")
    if b.address:
        lines.append(f"Address: {b.address}.")
    if b.phone:
        lines.append(f"Phone number: {b.phone}.")
    if b.prices:
        lines.append("Prices: " + "; ".join(
            f"{i.name}: {spoken.money(i.amount, b.currency)}" for i in b.prices) + ".")
    if b.lead_times:
        lines.append("Order ahead: " + "; ".join(
            f"a {i.name} must be ordered at least {i.amount:.0f} day"
            f"{'s' if i.amount != 1 else ''} ahead" for i in b.lead_times) + ".")
    lines.extend(f.rstrip(".") + "." for f in b.facts)
    return "\n".join(lines)


def system_prompt(b: Business, style: str) -> str:
    """``style`` (the configured persona and manner of speaking) and the facts, with the
    rules that keep a small model from inventing what is not there."""
    return (f"{style.strip()}\n\nFacts about {b.name} (the only facts you know):\n"
            f"{facts_block(b)}\n\n"
            "Rules: answer only from these facts and from the system note before each "
            "question (it is computed from the clock and the facts, and is always right: "
            "trust it over your own reasoning about days and times). If neither answers the "
            f'question, say exactly: "{b.fallback}" Never guess a yes or no, a price, a '
            "time or a name that is not written here.")


__all__ = ["DAY_NAMES", "facts_block", "hours_lines", "system_prompt"]
