"""Taking a message, without I/O: the bot asks for the caller's name, a callback number (read
back digit by digit, corrected until the caller says it is right) and the message, then
saves it and says when the business will see it.

The language model plays no part: a 1.5B model asked to collect these answers greeted the
caller by the name they gave and answered the number with "I don't know that". Each of the
caller's turns goes to ``MessageTaker.turn``, which returns what to say; the last step
carries the message to save (the reply worker saves it before saying it was saved).

A number said in pieces ("555" ... "213" ... "4409", a pause between the groups) is put
together: while fewer than ``min_digits`` digits are heard the bot says nothing and listens
on. The keypad works everywhere a number is asked for (its digits reach here as words).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Protocol

from pipeline.messages.digits import read_back, spoken_digits
from pipeline.tools.catalog import confirmation


@dataclass(frozen=True)
class MessagePrompts:
    """What the bot says while taking a message (configurable: [messages])."""
    ask_name: str = "Sure, I can take a message. What is your name?"
    ask_name_again: str = "Sorry, I didn't get your name. What is your name?"
    ask_number: str = "Thank you. What number should we call you back on?"
    offer_caller_number: str = ("Thank you. Should we call you back on the number you are "
                                "calling from, {number}?")
    read_back: str = "I have {number}. Is that right?"
    read_back_keypad: str = ("I have {number}. Is that right? If it is still not, you can type "
                             "it on the keypad.")
    """Said from the third read-back on: speech keeps mishearing it, the keypad does not."""
    read_back_again: str = "Sorry, is {number} right? Please say yes or no."
    keyed_number: str = "Thank you, I have {number}. And what is your message?"
    ask_number_again: str = "Sorry. Please say the number again, or type it on the keypad."
    ask_message: str = "And what is your message?"
    ask_more: str = "Got it. Is there anything you'd like to add?"
    go_ahead: str = "Go ahead."
    saved: str = "Thank you. Your message is saved, and {seen}. Anything else I can help with?"
    seen: str = "the team will see it within one business day"
    not_saved: str = ("I'm sorry, I could not save your message. Please call again later. "
                      "Anything else I can help with?")
    cancelled: str = "Alright, no message then. What else can I do for you?"


@dataclass(frozen=True)
class TakenMessage:
    name: str
    callback: str
    text: str
    exchange: tuple[tuple[str, str], ...]
    """(who, text) of everything said while taking it: who is "bot" or "caller"."""
    audio: bytes
    """The caller's speech of the message (16-bit mono PCM at 16 kHz)."""


class MessageDesk(Protocol):
    """Where a call's messages go (the gateway's store, which also notifies the business)."""

    def save(self, message: TakenMessage) -> str:
        """Save durably; returns its id. Raises if it could not be saved."""
        ...


@dataclass(frozen=True)
class Step:
    say: str
    """What the bot says now ("": nothing, keep listening)."""
    save: TakenMessage | None = None
    """Save this before saying ``say`` (if saving fails, say ``not_saved`` instead)."""
    done: bool = False
    """The message is taken (or abandoned): the next turns go to the model again."""


class Stage(enum.Enum):
    NAME = "name"
    NUMBER = "number"              # asked for a number
    CALLER_NUMBER = "caller_number"  # asked whether the caller's own number will do
    CHECK_NUMBER = "check_number"  # read back, waiting for "yes" or a correction
    MESSAGE = "message"
    MORE = "more"                  # asked "anything to add?"
    ADDING = "adding"              # the caller said yes to that: the next turn is more message
    DONE = "done"


# explicit wishes to stop; "no" alone is an answer to the question asked, never a cancel
CANCEL = re.compile(r"\b(never ?mind|forget (it|about it)|cancel|don'?t (want|need) to "
                    r"(leave|give)|no message)\b", re.IGNORECASE)
NAME_LEAD = re.compile(
    r"^\s*(?:(?:uh+|um+|er+|ah+|oh|yeah|yes|sure|okay|ok|hi|hello|well|so)\b[\s,.!]*)*"
    r"(?:(?:my|the) name(?:'s| is)|name'?s|this is|it'?s|it is|i'?m|i am|call me)?\s*",
    re.IGNORECASE)
NAME_TAIL = re.compile(r"\s*(?:,|\bhere\b|\band\b|\bmy (?:number|phone)\b|\bcall me\b).*$",
                       re.IGNORECASE)
WORDS = re.compile(r"[^\W\d_]+(?:['-][^\W\d_]+)*")
DONE_WORDS = re.compile(r"\b(that'?s (it|all|everything)|nothing( else)?|no(pe)?|i'?m (good|done)"
                        r"|all good)\b", re.IGNORECASE)


def caller_name(text: str) -> str:
    """The name in an answer to "what is your name?": "Uh, my name's Anna Berg." -> "Anna
    Berg" (at most four words; "" if there is none)."""
    rest = NAME_TAIL.sub("", NAME_LEAD.sub("", text, count=1))
    words = WORDS.findall(rest)
    return " ".join(words[:4])


def number_of_uri(uri: str) -> str:
    """The digits of a From URI's user part, if it looks like a phone number (7-15 digits)."""
    m = re.search(r"(?:sips?|tel):\+?([\d\-.()]+)[@;>]?", uri)
    digits = re.sub(r"\D", "", m.group(1)) if m else ""
    return digits if 7 <= len(digits) <= 15 else ""


def _content_words(text: str) -> int:
    """Words beyond a yes or no ("yes, tell her I'll be late" has some; "yes please" none)."""
    filler = {"yes", "yeah", "yep", "sure", "please", "ok", "okay", "no", "nope", "oh", "um",
              "uh", "well", "actually", "so", "and", "i", "do", "would", "like", "to", "add",
              "thanks", "thank", "you"}
    return sum(1 for w in WORDS.findall(text.lower()) if w not in filler)


@dataclass
class MessageTaker:
    prompts: MessagePrompts = field(default_factory=MessagePrompts)
    caller_uri: str = ""
    min_digits: int = 7
    max_digits: int = 15
    stage: Stage = Stage.NAME
    name: str = ""
    number: str = ""
    message: list[str] = field(default_factory=list)
    audio: list[bytes] = field(default_factory=list)
    exchange: list[tuple[str, str]] = field(default_factory=list)
    _name_tries: int = 0
    _read_backs: int = 0
    _unclear_answers: int = 0

    @property
    def wants_audio(self) -> bool:
        """The next turn is (part of) the message: its audio is kept."""
        return self.stage in (Stage.MESSAGE, Stage.MORE, Stage.ADDING)

    @property
    def done(self) -> bool:
        return self.stage is Stage.DONE

    def start(self) -> Step:
        return self._say(self.prompts.ask_name)

    def turn(self, text: str, audio: bytes = b"", keyed: str = "") -> Step:
        """The caller said ``text`` (its speech ``audio``, kept if it is the message), or
        typed the digits ``keyed`` on the keypad (``text`` then words them)."""
        self.exchange.append(("caller", text))
        if CANCEL.search(text) and self.stage is not Stage.MESSAGE:
            self.stage = Stage.DONE
            return self._say(self.prompts.cancelled, done=True)
        number_stages = (Stage.NUMBER, Stage.CALLER_NUMBER, Stage.CHECK_NUMBER)
        if keyed and self.stage in number_stages and len(keyed) >= self.min_digits:
            # keys are never misheard: said back once, no question asked
            self.number = keyed[: self.max_digits]
            self.stage = Stage.MESSAGE
            return self._say(self.prompts.keyed_number.format(number=read_back(self.number)))
        match self.stage:
            case Stage.NAME:
                return self._on_name(text)
            case Stage.NUMBER:
                return self._on_digits(spoken_digits(text), add=True)
            case Stage.CALLER_NUMBER:
                return self._on_caller_number(text)
            case Stage.CHECK_NUMBER:
                return self._on_check(text)
            case Stage.MESSAGE:
                return self._on_message(text, audio)
            case Stage.MORE:
                return self._on_more(text, audio)
            case Stage.ADDING:
                self._keep(text, audio)
                return self._finish()
        return Step("", done=True)

    # --- stages ------------------------------------------------------------------------------

    def _on_name(self, text: str) -> Step:
        name = caller_name(text)
        digits = spoken_digits(text)
        if not name and self._name_tries == 0 and len(digits) < self.min_digits:
            self._name_tries += 1
            return self._say(self.prompts.ask_name_again)
        self.name = name
        if len(digits) >= self.min_digits:  # "Anna Berg, 555 213 4409": both at once
            return self._on_digits(digits, add=False)
        own = number_of_uri(self.caller_uri)
        if own:
            self.number = own
            self.stage = Stage.CALLER_NUMBER
            return self._say(self.prompts.offer_caller_number.format(number=read_back(own)))
        self.stage = Stage.NUMBER
        return self._say(self.prompts.ask_number)

    def _on_caller_number(self, text: str) -> Step:
        digits = spoken_digits(text)
        if len(digits) >= 3:  # another number, said at once
            self.number = ""
            return self._on_digits(digits, add=True)
        yes = confirmation(text)
        if yes:
            return self._ask_message()
        self.number = ""
        self.stage = Stage.NUMBER
        return self._say(self.prompts.ask_number.removeprefix("Thank you. "))

    def _on_digits(self, digits: str, add: bool) -> Step:
        self.stage = Stage.NUMBER
        if not digits:  # "hello?" after the bot went quiet on part of a number: start over
            self.number = ""
            return self._say(self.prompts.ask_number_again)
        if len(digits) >= self.min_digits:  # a whole number: said again from the start
            add = False
        self.number = (self.number + digits) if add else digits
        if len(self.number) > self.max_digits:  # not one number: start over
            self.number = ""
            return self._say(self.prompts.ask_number_again)
        if len(self.number) < self.min_digits:
            return Step("")  # a pause between digit groups: listen on
        self.stage = Stage.CHECK_NUMBER
        self._read_backs += 1
        self._unclear_answers = 0
        prompt = self.prompts.read_back if self._read_backs < 3 else self.prompts.read_back_keypad
        return self._say(prompt.format(number=read_back(self.number)))

    def _on_check(self, text: str) -> Step:
        digits = spoken_digits(text)
        yes = confirmation(text)
        if digits and not yes:
            joined = self.number + digits
            self.number = ""
            if len(digits) >= self.min_digits:  # the number again, corrected
                return self._on_digits(digits, add=False)
            if yes is None and len(joined) <= self.max_digits:
                return self._on_digits(joined, add=False)  # the rest, read back too early
            return self._say(self.prompts.ask_number_again)  # "no, the last one is 8"
        if yes:
            return self._ask_message()
        if yes is None and self._unclear_answers < 1:  # neither yes nor no nor digits
            self._unclear_answers += 1
            return self._say(self.prompts.read_back_again.format(number=read_back(self.number)))
        self.number = ""
        self.stage = Stage.NUMBER
        return self._say(self.prompts.ask_number_again)

    def _ask_message(self) -> Step:
        self.stage = Stage.MESSAGE
        return self._say(self.prompts.ask_message)

    def _on_message(self, text: str, audio: bytes) -> Step:
        self._keep(text, audio)
        self.stage = Stage.MORE
        return self._say(self.prompts.ask_more)

    def _on_more(self, text: str, audio: bytes) -> Step:
        words = _content_words(DONE_WORDS.sub(" ", text))
        if confirmation(text) is False and words < 4:  # "no, that's all" misheard: a no
            return self._finish()
        if words >= 2:
            self._keep(text, audio)  # more of the message, said at once
            return self._finish()
        if confirmation(text) and not DONE_WORDS.search(text):
            self.stage = Stage.ADDING
            return self._say(self.prompts.go_ahead)
        return self._finish()

    def _keep(self, text: str, audio: bytes) -> None:
        if text.strip():
            self.message.append(text.strip())
        if audio:
            self.audio.append(audio)

    def _finish(self) -> Step:
        self.stage = Stage.DONE
        taken = TakenMessage(self.name, self.number, " ".join(self.message),
                             tuple(self.exchange), b"".join(self.audio))
        return self._say(self.prompts.saved.format(seen=self.prompts.seen), save=taken,
                         done=True)

    def _say(self, text: str, save: TakenMessage | None = None, done: bool = False) -> Step:
        if text:
            self.exchange.append(("bot", text))
        return Step(text, save, done)
