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
    closed = b.closed_weekdays()
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


def system_prompt(b: Business, style: str, notes: bool = True) -> str:
    """``style`` (the configured persona and manner of speaking), then the facts. With
    ``notes`` the fallback is asked for only by a turn's note: told once in the system prompt
    to say it when the facts do not answer, the 1.5B model said it to nearly every question
    (even "are you open on Mondays?", with the hours above it)."""
    head = f"{style.strip()}\n\nFacts about {b.name}:\n{facts_block(b)}\n\n"
    if notes:
        return head + ("Before each caller question you get a note worked out from the clock "
                       "and these facts: it is always right, so answer with what it says.")
    return head + f'If the facts do not answer a question, say: "{b.fallback}"'


__all__ = ["DAY_NAMES", "facts_block", "hours_lines", "system_prompt"]
