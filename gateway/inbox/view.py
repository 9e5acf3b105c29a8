"""Messages as text: a callback number grouped for reading, a message's local time, and the
terminal's list and detail of messages (``voicebot messages``). Every caller-supplied value
goes through ``clean_text``: a message with any text in it prints without reaching the
terminal's control sequences."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.calls.records import LONG_TEXT_LIMIT, clean_text

PREVIEW = 60
"""The most characters of a message's text the list shows."""
NAME_COLUMN = 24


def callback_digits(x: Any) -> str:
    """The digits of a callback number (what a ``tel:`` link may hold)."""
    return "".join(c for c in clean_text(x) if "0" <= c <= "9")


def format_callback(x: Any) -> str:
    """A callback number grouped for reading: 555 213 4409, 1 555 213 4409, else groups of
    three with the last four kept together (44 20 7946 0958 stays readable enough)."""
    digits = callback_digits(x)
    if digits != clean_text(x):  # not plain digits (an old or hand-edited line): as it is
        return clean_text(x) or "-"
    if len(digits) == 10:
        return f"{digits[:3]} {digits[3:6]} {digits[6:]}"
    if len(digits) == 11 and digits[0] == "1":
        return f"1 {digits[1:4]} {digits[4:7]} {digits[7:]}"
    if len(digits) <= 4:
        return digits or "-"
    head, tail = digits[:-4], digits[-4:]
    groups = [head[max(0, i - 3):i] for i in range(len(head), 0, -3)][::-1]
    return " ".join([*groups, tail])


def local_time(m: Mapping[str, Any], fmt: str = "%Y-%m-%d %H:%M") -> str:
    """When the message was left, in the server's time zone (its ISO ``time`` as written if
    ``ts`` is missing)."""
    ts = m.get("ts")
    if isinstance(ts, int | float) and not isinstance(ts, bool) and math.isfinite(ts):
        try:
            return dt.datetime.fromtimestamp(ts).astimezone().strftime(fmt)
        except (OverflowError, OSError, ValueError):
            pass
    return clean_text(m.get("time") or "?", 40)


def preview(text: Any, width: int = PREVIEW) -> str:
    """The start of a message on one line (escaping already made newlines visible)."""
    s = clean_text(text, LONG_TEXT_LIMIT)
    return s if len(s) <= width else s[:width - 3] + "..."


def format_list(messages: list[Mapping[str, Any]]) -> str:
    """One line per message, as given (newest first): time, ``*`` if unread, name, callback,
    the start of the message, id."""
    rows = [("TIME", " ", "NAME", "CALLBACK", "MESSAGE", "ID")]
    for m in messages:
        name = clean_text(m.get("name") or "-")
        if len(name) > NAME_COLUMN:
            name = name[:NAME_COLUMN - 3] + "..."
        rows.append((local_time(m), " " if m.get("read") else "*", name,
                     format_callback(m.get("callback")), preview(m.get("message")),
                     clean_text(m.get("id"))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join([*(c.ljust(w) for c, w in zip(r, widths, strict=False)), r[-1]])
                     for r in rows)


def format_message(m: Mapping[str, Any], audio: Path | None) -> str:
    """One message in full: who, when, the call it came from, its audio file, its text and the
    exchange that took it."""
    secs = m.get("audio_seconds")
    if audio is not None:
        length = f" ({secs} s)" if isinstance(secs, int | float) else ""
        sound = f"{clean_text(str(audio))}{length}"
    elif m.get("audio"):
        sound = f"missing ({clean_text(m.get('audio'))})"
    else:
        sound = "-"
    lines = [
        f"message {clean_text(m.get('id'))}  ({'read' if m.get('read') else 'unread'})",
        f"  time      {local_time(m, '%Y-%m-%d %H:%M:%S %Z')}  ({clean_text(m.get('time'), 40)})",
        f"  name      {clean_text(m.get('name') or '-')}",
        f"  callback  {format_callback(m.get('callback'))}",
        f"  caller    {clean_text(m.get('caller') or '-')}",
        f"  call      {clean_text(m.get('call_id') or '-')}",
        f"  audio     {sound}",
        "  message",
        f"    {clean_text(m.get('message') or '', LONG_TEXT_LIMIT)}",
    ]
    exchange = m.get("exchange")
    if isinstance(exchange, list) and exchange:
        lines.append("  exchange")
        for x in exchange:
            if isinstance(x, Mapping):
                lines.append(f"    {clean_text(x.get('who', '?'), 16):<6}  "
                             f"{clean_text(x.get('text', ''), LONG_TEXT_LIMIT)}")
    return "\n".join(lines)
