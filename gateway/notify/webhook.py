"""Delivery by webhook: each event POSTed as JSON to the business's URL.

The request (what a receiver sees):

- body: the event as UTF-8 JSON (without the gateway's local ``audio_path``);
- ``Content-Type: application/json``;
- ``Idempotency-Key``: the same on every retry of one event (an event may arrive twice:
  keep the keys seen and ignore a repeat);
- ``X-Voicebot-Event``: ``message`` or ``call_end``;
- ``X-Voicebot-Timestamp``: when this attempt was sent, Unix seconds;
- with a secret, ``X-Voicebot-Signature: sha256=<hex>``, the HMAC-SHA256 under the secret of
  ``<timestamp>.<body>`` (the timestamp header, a dot, the body's bytes as received).

To verify: recompute the HMAC over the raw body (before parsing it) and compare in constant
time; reject a timestamp far from your clock (a replay). ``verify`` does both. Any 2xx
answer is success; anything else, a redirect included, is retried later.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from gateway.calls.records import LONG_TEXT_LIMIT, clean_text, jsonable

INTERNAL_FIELDS = frozenset({"audio_path"})
"""Event fields that stay in the gateway (a path on its disk means nothing to a receiver)."""


class DeliveryError(Exception):
    """The receiver did not accept the event (retried later)."""


def signature(secret: bytes, timestamp: str | int, body: bytes) -> str:
    """The ``X-Voicebot-Signature`` value of a body sent at ``timestamp``."""
    mac = hmac.new(secret, f"{timestamp}.".encode("ascii") + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: bytes, timestamp: str | int, body: bytes | str, sig: str, *,
           now: float | None = None, tolerance: float = 300.0) -> bool:
    """True if ``sig`` (the X-Voicebot-Signature header) signs ``body`` at ``timestamp``; with
    ``now`` (Unix seconds), also only if the timestamp is within ``tolerance`` of it."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if now is not None and abs(now - ts) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, str(timestamp), body), sig)


def body_of(event: dict[str, Any]) -> bytes:
    """The JSON body of ``event``: valid UTF-8 whatever bytes a caller's words brought."""
    body = jsonable({k: v for k, v in event.items() if k not in INTERNAL_FIELDS})
    if isinstance(event.get("message"), str):  # a long message is not cut at TEXT_LIMIT
        body["message"] = clean_text(event["message"], LONG_TEXT_LIMIT)
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _header(x: Any, limit: int) -> str:
    # http.client sends header values as Latin-1: anything else would fail every attempt
    return clean_text(x, limit).encode("ascii", "backslashreplace").decode("ascii")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # urllib would follow a 301/302 as a GET without the body: the event would be "sent"
    # to a page that never saw it
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class WebhookSender:
    """POSTs events to ``url``, signed when ``secret`` is set."""

    def __init__(self, url: str, secret: bytes | None, timeout: float = 10.0, *,
                 wall: Callable[[], float] = time.time) -> None:
        self.url = url
        self._secret = secret or None
        self._timeout = timeout
        self._wall = wall
        self._opener = urllib.request.build_opener(_NoRedirect)

    def request(self, event: dict[str, Any]) -> urllib.request.Request:
        body = body_of(event)
        ts = str(int(self._wall()))
        headers = {"Content-Type": "application/json",
                   "Idempotency-Key": _header(event["key"], 200),
                   "X-Voicebot-Event": _header(event.get("event", ""), 40),
                   "X-Voicebot-Timestamp": ts,
                   "User-Agent": "voicebot-gateway"}
        if self._secret is not None:
            headers["X-Voicebot-Signature"] = signature(self._secret, ts, body)
        return urllib.request.Request(self.url, data=body, headers=headers, method="POST")

    def send(self, event: dict[str, Any]) -> None:
        """Deliver ``event`` or raise (DeliveryError, OSError)."""
        req = self.request(event)
        try:
            with self._opener.open(req, timeout=self._timeout) as resp:
                status = resp.status
                resp.read(65536)
        except urllib.error.HTTPError as e:
            e.close()
            raise DeliveryError(f"webhook answered HTTP {e.code}") from None
        except urllib.error.URLError as e:
            raise DeliveryError(f"webhook unreachable: {e.reason}") from None
        if not 200 <= status < 300:
            raise DeliveryError(f"webhook answered HTTP {status}")
