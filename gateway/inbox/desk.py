"""Where one call's messages go: the message store, then the business's channels.

The reply worker calls ``CallDesk.save`` (``pipeline.messages.taking.MessageDesk``) on its own
thread before the bot says the message is saved; the store has it on disk when that returns.
Telling the business (``Notifier.message``) only queues the event on disk: a receiver that is
down never slows the call, and the outbox delivers once it is back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from gateway.inbox.store import MessageStore, NewMessage
from pipeline.messages.taking import TakenMessage

log = logging.getLogger(__name__)


class MessageNotifier(Protocol):
    def message(self, event: dict[str, Any]) -> bool: ...


def message_event(line: dict[str, Any], audio: Path | None) -> dict[str, Any]:
    """The notification of a saved message (``audio_path``: the WAV on this machine, which
    mail attaches; never sent to a webhook)."""
    keys = ("id", "call_id", "time", "ts", "caller", "name", "callback", "message",
            "audio_seconds")
    event: dict[str, Any] = {"event": "message", **{k: line.get(k) for k in keys}}
    if audio is not None:
        event["audio_path"] = str(audio.resolve())
    return event


class CallDesk:
    def __init__(self, store: MessageStore, notifier: MessageNotifier | None, call_id: str,
                 caller_uri: str, on_saved: Callable[[str], None] = lambda mid: None) -> None:
        self.store = store
        self.notifier = notifier
        self.call_id = call_id
        """The call record's id."""
        self.caller_uri = caller_uri
        self.on_saved = on_saved
        """Told each saved message's id (the call's record lists them)."""

    def save(self, message: TakenMessage) -> str:
        line = self.store.save(NewMessage(
            self.call_id, self.caller_uri, message.name, message.callback, message.text,
            [{"who": who, "text": text} for who, text in message.exchange], message.audio))
        mid = str(line["id"])
        log.info("message %s saved (call %s)", mid, self.call_id)
        try:
            self.on_saved(mid)
        except Exception:  # noqa: BLE001 - the message is saved: the caller hears so
            log.exception("recording message %s with its call", mid)
        if self.notifier is not None:
            self.notifier.message(message_event(line, self.store.audio_path(line)))
        return mid


class MessageOffice:
    """The process's message store and notifier; hands each call its desk."""

    def __init__(self, store: MessageStore, notifier: MessageNotifier | None) -> None:
        self.store = store
        self.notifier = notifier

    def desk(self, call_id: str, caller_uri: str,
             on_saved: Callable[[str], None] = lambda mid: None) -> CallDesk:
        return CallDesk(self.store, self.notifier, call_id, caller_uri, on_saved)
