"""Keypad digits (DTMF) as conversation events, without I/O: time is passed in.

One key asks for a person (the operator digit); other keys are collected into an entry that
ends with the terminator key or after a pause, and is then handed to the conversation as a
caller turn ("I typed 4512 on the keypad").
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

DIGITS = set("0123456789*#ABCD")


class KeyEventKind(enum.Enum):
    OPERATOR = "operator"  # the caller asked for a person
    ENTRY = "entry"        # a digit entry is complete


@dataclass(frozen=True)
class KeyEvent:
    kind: KeyEventKind
    digits: str = ""


@dataclass(frozen=True)
class KeypadSettings:
    """``[dtmf]``: the key that asks for a person, the key that ends an entry, and the pause
    (seconds) that ends one too."""
    operator_digit: str = "0"
    terminator: str = "#"
    inter_digit_timeout: float = 3.0

    def collector(self) -> DtmfCollector:
        """A call's own collector (it holds the digits typed so far)."""
        return DtmfCollector(self.operator_digit, self.terminator, self.inter_digit_timeout)


class DtmfCollector:
    def __init__(self, operator_digit: str = "0", terminator: str = "#",
                 inter_digit_timeout: float = 3.0) -> None:
        self.operator_digit = operator_digit
        self.terminator = terminator
        self.timeout = inter_digit_timeout
        self._digits = ""
        self._last = 0.0

    @property
    def collecting(self) -> bool:
        return bool(self._digits)

    def press(self, digit: str, now: float) -> KeyEvent | None:
        """One key press (``now``: monotonic seconds). Unknown keys are ignored."""
        digit = digit.upper()
        if digit not in DIGITS:
            return None
        if digit == self.operator_digit and not self._digits:
            return KeyEvent(KeyEventKind.OPERATOR)  # alone, not inside an entry (order 1024)
        if digit == self.terminator:
            return self._flush()
        self._digits += digit
        self._last = now
        return None

    def poll(self, now: float) -> KeyEvent | None:
        """Call regularly: ends an entry after the inter-digit timeout."""
        if self._digits and now - self._last >= self.timeout:
            return self._flush()
        return None

    def _flush(self) -> KeyEvent | None:
        digits, self._digits = self._digits, ""
        return KeyEvent(KeyEventKind.ENTRY, digits) if digits else None


def entry_text(digits: str) -> str:
    """How a digit entry reaches the model: as the caller's words."""
    return f"I typed {' '.join(digits)} on the keypad."
