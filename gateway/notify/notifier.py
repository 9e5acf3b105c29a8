"""Tells the business about messages and finished calls: routes each event to the configured
channels' outboxes (``<state_dir>/outbox/webhook``, ``<state_dir>/outbox/mail``).

The webhook takes the events [notify] webhook_events names; mail takes messages only.
Queuing never raises into a call: a disk that refuses an event is logged and counted.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.calls.records import FailureLog
from gateway.config import NotifyConfig
from gateway.notify.mail import MailSender
from gateway.notify.outbox import Outbox
from gateway.notify.webhook import WebhookSender

if TYPE_CHECKING:
    from gateway.calls.metrics import Metrics

log = logging.getLogger(__name__)

OUTBOX_FOLDER = "outbox"
CHANNELS = ("webhook", "mail")


class Notifier:
    """One Outbox per configured channel; ``message`` and ``call_ended`` queue an event."""

    def __init__(self, cfg: NotifyConfig, state_dir: str | Path,
                 metrics: Metrics | None = None, *, env: Mapping[str, str] | None = None,
                 initial_backoff: float = 1.0, wall: Callable[[], float] = time.time) -> None:
        env = os.environ if env is None else env
        self._metrics = metrics
        self._failures = FailureLog(log, "notify")
        root = Path(state_dir) / OUTBOX_FOLDER
        senders: dict[str, Callable[[dict[str, Any]], None]] = {}
        self._routes: dict[str, list[str]] = {"message": [], "call_end": []}
        if cfg.webhook_url:
            secret = env.get(cfg.webhook_secret_env, "") if cfg.webhook_secret_env else ""
            if not secret:
                log.warning("notify: webhook requests are unsigned: the environment variable "
                            "%s ([notify] webhook_secret_env) is not set",
                            cfg.webhook_secret_env or "(none)")
            senders["webhook"] = WebhookSender(cfg.webhook_url, secret.encode() or None,
                                               cfg.timeout_seconds, wall=wall).send
            for kind in cfg.webhook_events:
                self._routes[kind].append("webhook")
        if cfg.smtp_host:
            user = env.get(cfg.smtp_user_env, "") if cfg.smtp_user_env else ""
            password = env.get(cfg.smtp_password_env, "") if cfg.smtp_password_env else ""
            senders["mail"] = MailSender(cfg.smtp_host, cfg.smtp_port, cfg.smtp_security, user,
                                         password, cfg.mail_from, cfg.mail_to,
                                         cfg.timeout_seconds).send
            self._routes["message"].append("mail")
        for channel in CHANNELS:
            left = root / channel
            if channel not in senders and left.is_dir() and any(left.glob("*.json")):
                log.warning("notify: %s holds undelivered %s events, but that channel is not "
                            "configured: they wait there", left, channel)
        self.outboxes: dict[str, Outbox] = {}
        try:
            for channel, send in senders.items():
                self.outboxes[channel] = Outbox(
                    root / channel, send, name=channel, initial_backoff=initial_backoff,
                    max_backoff=cfg.max_backoff_seconds, on_delivered=self._delivered,
                    on_failed=self._failed, on_depth=self._depth)
        except BaseException:
            self.close(0.0)
            raise

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(self.outboxes)

    def message(self, event: Mapping[str, Any]) -> bool:
        """Queue a message the bot took. False: a channel could not queue it (logged)."""
        key = f"message-{event['id']}" if event.get("id") else f"message-{uuid.uuid4().hex}"
        return self._put("message", event, key)

    def call_ended(self, event: Mapping[str, Any]) -> bool:
        """Queue the end of a call. False: a channel could not queue it (logged)."""
        cid = event.get("call_id")
        return self._put("call_end", event, f"call-{cid}" if cid else f"call-{uuid.uuid4().hex}")

    def depth(self) -> dict[str, int]:
        return {channel: ob.depth() for channel, ob in self.outboxes.items()}

    def close(self, timeout: float = 5.0) -> None:
        """Stop delivering; what is not delivered yet waits on disk for the next start."""
        deadline = time.monotonic() + timeout
        for ob in self.outboxes.values():
            ob.close(max(0.0, deadline - time.monotonic()))

    def _put(self, kind: str, event: Mapping[str, Any], key: str) -> bool:
        ev = dict(event)
        ev.setdefault("event", kind)
        ev.setdefault("key", key)
        ok = True
        for channel in self._routes[kind]:
            try:
                self.outboxes[channel].put(ev)
            except Exception as e:  # noqa: BLE001 - a full disk must not end the call
                ok = False
                self._failures.note(f"queuing a {kind} event for {channel}", e)
                self._failed(channel)
        return ok

    # --- metrics hooks (the outboxes' threads) ------------------------------------------

    def _delivered(self, channel: str) -> None:
        if self._metrics is not None:
            self._metrics.notify_delivered.labels(channel).inc()

    def _failed(self, channel: str) -> None:
        if self._metrics is not None:
            self._metrics.notify_failures.labels(channel).inc()

    def _depth(self, channel: str, n: int) -> None:
        if self._metrics is not None:
            self._metrics.notify_queue_depth.labels(channel).set(n)
