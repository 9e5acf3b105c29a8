"""One call's notes: the note for each caller turn, with the turn before as context for an
elliptical follow-up ("And on Sunday?")."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from pipeline.facts import mentions
from pipeline.facts.business import Business
from pipeline.facts.note import head, note


class CallFacts:
    def __init__(self, business: Business) -> None:
        self.business = business
        self._zone = ZoneInfo(business.timezone)
        self._last: mentions.Mentions | None = None

    def local(self, wall: float) -> datetime:
        """Unix time -> the business's local wall time (naive)."""
        return datetime.fromtimestamp(wall, self._zone).replace(tzinfo=None)

    def head(self, wall: float) -> str:
        """The start of any note at Unix time ``wall`` (before the caller's words are known)."""
        return head(self.local(wall))

    def note(self, text: str, wall: float, commit: bool = True) -> str:
        """The note for the caller's ``text`` said at Unix time ``wall``; ``commit``: the turn
        stands (a speculative one may still change), so the next turn may follow it."""
        now = self.local(wall)
        b = self.business
        m = mentions.find(text, now.date(), b.catalog(), b.closed_dates).follow(self._last)
        if commit:
            self._last = m
        return note(b, now, m, text)
