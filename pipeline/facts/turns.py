"""One call's notes: the note for each caller turn, with the turn before as context for an
elliptical follow-up ("And on Sunday?")."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

from pipeline.facts import mentions
from pipeline.facts.business import Business
from pipeline.facts.note import (
    head,
    instead_of_guessing,
    note,
    opening,
    then_say,
    whole_answer,
)
from pipeline.facts.relevance import FactIndex, Part, has_topic


class CallFacts:
    def __init__(self, business: Business, index: FactIndex | None = None) -> None:
        """``index``: the facts embedded, to judge questions by meaning (None: only the
        computed rules, and no fallback is asked for)."""
        self.business = business
        self.index = index
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
        said = mentions.find(text, now.date(), b.catalog(), b.closed_dates,
                             now.hour * 60 + now.minute)
        m = said.follow(self._last)
        parts: list[Part] = []
        if self.index is not None and m == said:  # a follow-up is about the turn before
            parts, m = self.judge(text, m, now)
        if commit:
            self._last = m
        return note(b, now, m, text, parts)

    @staticmethod
    def opening(note_text: str) -> str:
        """The answer's opening words the note of a turn gives, or "" (said by the gateway
        while the model reads the note)."""
        return opening(note_text)

    @staticmethod
    def whole_answer(note_text: str) -> str:
        """The turn's whole answer, computed (the answered part, then the fallback): said by
        the gateway without the model; or ""."""
        return whole_answer(note_text)

    def then_say(self, note_text: str) -> str:
        """Said by the gateway after the model's answer to the turn of ``note_text`` (the
        fallback after the answered half of a two-part question), or ""."""
        return then_say(self.business, note_text)

    def instead_of_guessing(self, note_text: str) -> str:
        """Said by the gateway instead of a guess in the answer to ``note_text``'s turn (a
        name or a number no fact holds, on a turn the facts may not answer), or ""."""
        return instead_of_guessing(self.business, note_text)

    def judge(self, text: str, m: mentions.Mentions, now: datetime,
              ) -> tuple[list[Part], mentions.Mentions]:
        """Each question of the turn with its nearest facts; items named in other words, and
        a yes/no question about a day whose nearest fact is the opening hours, added to what
        the rules found."""
        assert self.index is not None
        b = self.business
        parts = []
        for p in self.index.judge(text):
            pm = mentions.find(p.text, now.date(), b.catalog(), b.closed_dates,
                               now.hour * 60 + now.minute)
            ruled = bool(pm.items or pm.topics or pm.now)
            if not ruled and not pm.empty:  # a day or a time: what is asked about then?
                asked = mentions.without_times(p.text)
                topic = self.index.part(asked)
                if not has_topic(asked) or (
                        topic.nearest and topic.nearest[0].topic == "hours"):
                    # "is there any way someone could see my cat this Sunday?"
                    m = replace(m, topics=m.topics | {"hours"})
                    ruled = True
                elif not (p.known and p.nearest[0].topic != "hours"):
                    # "do you do surgery on Saturdays?": the surgery is the question (a part
                    # already near a fact other than the hours keeps it: "a catering tray for
                    # Saturday" was a lead time, the tray alone too far from the platter)
                    p = replace(topic, text=p.text)
            parts.append(replace(p, ruled=ruled))
        named = {i.name for i, _ in m.items}
        extra = [(i, m.quantity) for i in self.index.items(parts) if i.name not in named]
        if extra:
            m = replace(m, items=m.items + tuple(extra), quantity=None)
        return parts, m
