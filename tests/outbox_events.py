"""What the notification tests share: the webhook secret, a short back-off, events to queue,
and a wait in real time for what the outbox's thread does."""

from __future__ import annotations

import time
from collections.abc import Callable

SECRET = b"s3cret"
FAST = 0.05  # initial backoff in these tests (1 s in service)


def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


def event(n: int, **kw) -> dict:
    return {"event": "message", "key": f"message-m-{n}", "id": f"m-{n}", "name": f"caller {n}",
            **kw}
