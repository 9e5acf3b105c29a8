"""What the caller and the bot said, as the model will see it next turn."""

from __future__ import annotations

import threading

INTERRUPTED_NOTE = ("The caller interrupted you there: they heard only the words above. "
                    "Answer their new question; do not repeat this note.")
"""The system line after a bot turn the caller cut off (``pipeline/reply/guard.py`` keeps the
model from reading it aloud)."""


class ChatHistory:
    """What the caller and the bot said, as the model will see it next turn.

    A bot turn is stored as the words the caller actually heard; an interrupted one is marked,
    so the model knows it was cut off.
    """

    def __init__(self, system_prompt: str, max_turns: int) -> None:
        self.system_prompt = system_prompt
        self.max_turns = max_turns
        self.turns: list[dict[str, str]] = []
        self._start = 0  # first turn the model still sees
        self._lock = threading.Lock()

    def add_user(self, text: str, note: str = "") -> None:
        """The caller's words, after the turn's computed facts note if there is one."""
        with self._lock:
            if note:
                self.turns.append({"role": "system", "content": note, "note": "facts"})
            self.turns.append({"role": "user", "content": text})

    def add_bot(self, heard: str, interrupted: bool = False) -> None:
        text = heard.strip()
        if not any(c.isalnum() for c in text):
            # nothing the caller could hear as words ("...", or cut before the first word):
            # an assistant line of "..." teaches the small model to answer "..." from then on
            return
        with self._lock:
            if interrupted:
                # the note is a separate system line: inside the assistant's own words, the
                # model learned to repeat it aloud
                self.turns.append({"role": "assistant", "content": text + " ..."})
                self.turns.append({"role": "system", "content": INTERRUPTED_NOTE})
            else:
                self.turns.append({"role": "assistant", "content": text})

    def retract_user(self) -> None:
        """Forget the last caller turn (its reply never sounded: the turn was merged)."""
        with self._lock:
            if self.turns and self.turns[-1]["role"] == "user":
                self.turns.pop()
                if self.turns and self.turns[-1].get("note") == "facts":
                    self.turns.pop()

    def recent(self) -> list[dict[str, str]]:
        """The conversation so far (no system prompt, no facts notes)."""
        with self._lock:
            return [t for t in self.turns if "note" not in t]

    def messages(self) -> list[dict[str, str]]:
        """The system prompt and the last turns: at most 3 x ``max_turns`` lines (a caller's
        line and the bot's, with a facts note before it or an interruption note after). The
        window's start moves only when the history outgrows it, and then by half of it at
        once, to a caller's line: a start that slid every turn changed the prompt right after
        the system prompt, so llama.cpp read the whole history again each turn (first token
        2.7 s late in a long bench/media_faults call), where a fixed start leaves it only the
        new lines to read."""
        with self._lock:
            limit = 3 * self.max_turns + 1
            self._start = min(self._start, len(self.turns))
            if len(self.turns) - self._start > limit:
                start = len(self.turns) - (limit // 2 + 1)
                while start < len(self.turns) - 1 and self.turns[start]["role"] != "user":
                    start += 1
                if start > 0 and self.turns[start - 1].get("note") == "facts":
                    start -= 1  # the caller's line keeps its note
                self._start = start
            recent = self.turns[self._start:]
            while recent and recent[0]["role"] == "system" and "note" not in recent[0]:
                recent = recent[1:]
            return [{"role": "system", "content": self.system_prompt},
                    *({"role": t["role"], "content": t["content"]} for t in recent)]
