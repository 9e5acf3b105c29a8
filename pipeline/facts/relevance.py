"""Which of the business's facts a caller's question is about, by meaning rather than by words.

Callers say "what do you guys charge for trimming a dog's nails?" where the facts say "nail
trim: 15"; "shots" where they say "vaccination". Each fact is embedded once (a few phrasings
of what a caller may ask about it); each question part is embedded as it is said, and its
nearest facts are those with the highest cosine. A part whose nearest fact is far is one the
facts do not answer.

The caller's turn is cut into parts first, so that "How much are the shots, and do I need an
appointment?" is judged as two questions: one the facts answer, one they do not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from pipeline.facts import spoken
from pipeline.facts.business import Business, Item
from pipeline.facts.embedder import Embedder
from pipeline.facts.mentions import stem, words_of
from pipeline.facts.prompt import facts_block, hours_lines

KNOWN = 0.65
"""A part whose nearest fact is at least this close is about that fact (a priced item this
close counts as named: "shots" for "vaccination")."""
UNKNOWN = 0.3
"""A part whose nearest fact is below this is about something the facts do not hold; between
the two, the model is shown the nearest facts and decides."""


@dataclass(frozen=True)
class Fact:
    said: str
    """The fact as the note states it ("A nail trim costs 15 dollars.")."""
    probes: tuple[str, ...]
    """What a caller might ask about it: the texts embedded for matching."""
    topic: str
    """"hours", "address", "phone", "price", "lead" or "fact"."""
    item: Item | None = None


@dataclass(frozen=True)
class Part:
    """One question of the caller's turn and the facts nearest to it."""
    text: str
    score: float
    """Cosine of the nearest fact (0 when the facts are empty)."""
    nearest: tuple[Fact, ...]
    """The facts at least ``UNKNOWN`` close, nearest first (at most 2)."""
    unfamiliar: tuple[str, ...] = ()
    """Its content words that appear nowhere in the facts (by stem): "credit", "cards"."""
    ruled: bool = False
    """The computed rules (pipeline/facts/mentions.py) found what it asks about: a day, a
    time, an item, an hours or contact question."""

    @property
    def known(self) -> bool:
        return self.ruled or self.score >= KNOWN

    @property
    def unknown(self) -> bool:
        """No fact is near; or some are, but not close, and it names what the facts never
        mention: shown the nearest facts, the 1.5B answered "do you take credit cards?" with
        "yes" and "what's the dentist's name?" with the practice's name, every time."""
        return not self.ruled and (self.score < UNKNOWN or (not self.known
                                                            and bool(self.unfamiliar)))


def facts_of(b: Business) -> list[Fact]:
    """Every fact a caller can ask about, each with the questions it answers. Not the name:
    the rules know "who did I call?", and by meaning "who is the vet on duty?" or "what's the
    owner's name?" came nearest to it, which the facts do not answer."""
    out = [
        Fact(f"{b.name}'s opening hours: " + "; ".join(hours_lines(b)) + ".",
             ("When are you open?", "What are your opening hours?",
              "Can I come in on Saturday?", "Is anyone there on Monday to see me?",
              "Are you closed on Sundays?", "What time do you close today?"), "hours"),
    ]
    if b.address:
        out.append(Fact(f"{b.name}'s address: {b.address}.",
                        ("What is your address?", "Where are you located?",
                         "How do I find you?"), "address"))
    if b.phone:
        out.append(Fact(f"{b.name}'s phone number: {b.phone}.",
                        ("What is your phone number?", "What number can I call you on?"),
                        "phone"))
    for item in b.prices:
        out.append(Fact(f"One {item.name} costs {spoken.money(item.amount, b.currency)}.",
                        (f"How much is a {item.name}?", f"{item.name} price",
                         f"Do you do {item.name}?"), "price", item))
    for item in b.lead_times:
        days = f"{item.amount:.0f} day{'s' if item.amount != 1 else ''}"
        out.append(Fact(f"A {item.name} must be ordered or booked at least {days} ahead.",
                        (f"Can I get a {item.name} on Friday?",
                         f"How far ahead do I need to book a {item.name}?"), "lead", item))
    for fact in b.facts:
        text = fact.rstrip(".") + "."
        out.append(Fact(text, (text,), "fact"))
    return out


# Greetings, hedges and fillers said before or around a question: they carry no topic, and a
# part made only of them is no question.
_YOU = re.compile(r"\b(?:you guys|you folks|you all|y'all)\b", re.I)
_FILLER = re.compile(
    r"\b(?:(?:hi|hello|hey) there|hi|hello|hey|yeah|yes|yep|ok(?:ay)?|so|well|um+|uh+|er+|erm|"
    r"like|just|"
    r"quick question|one more (?:thing|question)|sorry|excuse me|good (?:morning|afternoon|"
    r"evening)|i was (?:just )?wondering|i wonder(?:ed)?|i wanted to (?:ask|check|know|see|"
    r"find out)|i(?:'d| would) like to (?:ask|know|check)|can you tell me|could you tell me|"
    r"do you know|i was hoping|please|thanks?(?: you)?)\b",
    re.I)
_ASK_START = re.compile(
    r"^(?:and |so |but |also |then |or )?(?:what|what's|when|where|where's|who|why|how|which|"
    r"is|isn't|are|aren't|am|do|does|did|can|could|will|would|may|might|should|have|has)\b",
    re.I)
_ASK_ANY = re.compile(
    r"\?|\b(?:i need|i'd like|i would like|i want|i'm looking for|looking for|how much|what time|"
    r"wondering (?:if|whether|what|when|how|about)|any way)\b", re.I)
_SPLIT = re.compile(
    r"(?<=[?.!])\s+|,?\s+\b(?:and|also|plus|oh and)\s+(?=(?:what|when|where|who|how|which|is|"
    r"are|do|does|can|could|will|would|should|may|i need|i'd)\b)", re.I)


def strip_fillers(text: str) -> str:
    """ "Hi, um, what do you guys charge" -> "what do you charge"."""
    text = _FILLER.sub(" ", _YOU.sub("you", text))
    return re.sub(r"\s+", " ", re.sub(r"\s+([,.?!])", r"\1", text)).strip(" ,.")


_FUNCTION_TEXT = """
a an the and or but so then also what what's when where which who how about is isn't are aren't
am do does did can could will would may might should shall have has there it it's that this
you your we us our i me my any at on in of for to from with be been get come go open
work works working"""
_FUNCTION_WORDS = frozenset(_FUNCTION_TEXT.split())


_COMMON_TEXT = """
a about above after again against all am an and any are aren't as at be because been before
being below between both but by can can't cannot could couldn't did didn't do does doesn't doing
don't down during each few for from further get got had has have having he her here hers him his
how i i'd i'll i'm i've if in into is isn't it it's its just let's like me more most my no nor
not of off on once only or other our out over own please sorry pardon excuse same she should so
some such than thank
thanks that that's the their them then there there's these they this those through to too under
until up very was we we're were what what's when where which while who whom why will with would
you you're your yours yes hi hello hey okay ok well um uh also much many ask asking wanted want
wonder wondering know tell need could maybe sure really still just kind sort thing things
something anything way today tomorrow now have offer offers sell sells buy make makes take takes
bring come go get there's any
"""
_COMMON = frozenset(_COMMON_TEXT.split())


def has_topic(text: str) -> bool:
    """Whether a question names anything beyond its question words ("and what about?" does
    not: it asks about the turn before, or about a day or time taken out of it)."""
    words = re.findall(r"[a-z']+", strip_fillers(text).lower())
    return any(w not in _FUNCTION_WORDS for w in words)


def asks(piece: str) -> bool:
    """A piece of a turn that asks something (a question, or a need: "I need a cake")."""
    return bool(_ASK_ANY.search(piece) or _ASK_START.search(strip_fillers(piece)))


def parts_of(text: str) -> list[str]:
    """The questions of a turn: split at sentence ends and at "and" before a new question. A
    piece that asks nothing ("yeah hi", "my kid's birthday is Saturday") is context for the
    question after it (or, at the end, the one before). No question: no parts."""
    out: list[str] = []
    context = ""
    for piece in (p.strip() for p in _SPLIT.split(text) if p and p.strip()):
        content = strip_fillers(piece)
        if not content:
            continue
        if asks(piece):
            out.append(f"{context}. {content}" if context else content)
            context = ""
        else:
            context = f"{context}. {content}" if context else content
    if context and out:
        out[-1] = f"{out[-1]} {context}."
    return out


class FactIndex:
    """The business's facts embedded once (shared read-only by every call)."""

    def __init__(self, business: Business, embedder: Embedder) -> None:
        self.business = business
        self._embedder = embedder
        self.facts = facts_of(business)
        rows, owners = [], []
        for i, fact in enumerate(self.facts):
            for probe in fact.probes:
                rows.append(embedder.embed(probe))
                owners.append(i)
        self._matrix = np.stack(rows) if rows else np.zeros((0, 1), dtype=np.float32)
        self._stems = {stem(w) for w in words_of(facts_block(business))}
        self._owner = np.array(owners)

    def unfamiliar(self, text: str) -> tuple[str, ...]:
        return tuple(w for w in words_of(strip_fillers(text))
                     if w not in _COMMON and not w.isdigit() and len(w) > 2
                     and stem(w) not in self._stems)

    def part(self, text: str) -> Part:
        if not len(self._owner):
            return Part(text, 0.0, (), self.unfamiliar(text))
        sims = self._matrix @ self._embedder.embed(text)
        best = np.full(len(self.facts), -1.0)
        np.maximum.at(best, self._owner, sims)
        order = np.argsort(-best)
        nearest = tuple(self.facts[i] for i in order[:2] if best[i] >= UNKNOWN)
        return Part(text, float(best[order[0]]), nearest, self.unfamiliar(text))

    def judge(self, text: str) -> list[Part]:
        return [self.part(p) for p in parts_of(text)]

    def items(self, parts: list[Part]) -> list[Item]:
        """Items the caller named in other words ("shots" for "vaccination")."""
        out: list[Item] = []
        for p in parts:
            item = p.nearest[0].item if p.score >= KNOWN and p.nearest else None
            if item is not None and item not in out:
                out.append(item)
        return out
