"""A durable at-least-once queue for one delivery channel: one JSON file per event.

``put`` returns once the event's file is on disk (written to a temporary name, fsynced,
renamed, the folder fsynced); a daemon thread hands the files, oldest first, to ``send``
and deletes each one ``send`` accepted. A failed send is retried after 1 s, doubling up to
``max_backoff``; the event is never dropped and later events wait behind it (the receiver
sees them in order). A new Outbox on the same folder delivers what an earlier process left.
A file that is not an event (not JSON) is moved to ``bad/`` and counted.

One Outbox per folder at a time (an flock on ``.lock``, released when its delivery thread
ends, also by a crash): two would send every event twice. Worker processes need one folder
each.

File names are ``<20-digit sequence>-<key token>.json``: the sequence keeps the order, the
token (the key made file-safe, plus a hash of it) finds an event already queued.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.calls.records import FailureLog, clean_text

log = logging.getLogger(__name__)

BAD_FOLDER = "bad"
_NAME = re.compile(r"^(\d{20})-([A-Za-z0-9._-]+)\.json$")


class OutboxBusy(OSError):
    """Another Outbox (in this or another process) delivers from that folder."""


def _nothing(*_: Any) -> None:
    pass


def key_token(key: str) -> str:
    """A file-name-safe token that differs for different keys."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", key)[:60]
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return f"{safe}.{digest}"


def backoff(attempts: int, initial: float, cap: float) -> float:
    """Seconds to wait after the ``attempts``-th failure in a row (1, 2, 3...)."""
    return min(initial * 2 ** min(attempts - 1, 60), cap)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Outbox:
    """Queue and deliver the events of one channel (``name``: its label in metrics)."""

    def __init__(self, directory: str | Path, send: Callable[[dict[str, Any]], None], *,
                 name: str = "outbox", initial_backoff: float = 1.0,
                 max_backoff: float = 300.0,
                 on_delivered: Callable[[str], None] = _nothing,
                 on_failed: Callable[[str], None] = _nothing,
                 on_depth: Callable[[str, int], None] = _nothing,
                 clock: Callable[[], float] = time.monotonic,
                 wall_ns: Callable[[], int] = time.time_ns) -> None:
        self.dir = Path(directory)
        self.name = name
        self._send = send
        self._initial, self._max = initial_backoff, max_backoff
        self._on_delivered, self._on_failed, self._on_depth = on_delivered, on_failed, on_depth
        self._clock, self._wall_ns = clock, wall_ns
        self._failures = FailureLog(log, f"{name} delivery")
        self._cond = threading.Condition()
        self._closing = False
        self.attempts = 0
        """Failed attempts at the oldest event so far (0 after a delivery)."""
        self.last_error = ""
        self.bad = 0
        """Files moved to ``bad/`` by this Outbox."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise OutboxBusy(f"{self.dir} is in use by another outbox") from None
        self._pending: list[str] = []  # file names, oldest first
        self._tokens: set[str] = set()
        self._seq = 0
        try:
            self._load()
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._thread = threading.Thread(target=self._run, name=f"outbox-{name}", daemon=True)
        self._thread.start()

    def _load(self) -> None:
        for p in self.dir.iterdir():
            if p.name == ".lock":
                continue
            if p.name.endswith(".tmp"):  # a put cut short by a crash: never acknowledged
                with contextlib.suppress(OSError):
                    p.unlink()
            elif p.is_file():
                m = _NAME.match(p.name)
                if m is None:
                    self._set_aside(p.name, "not an outbox file name")
                    continue
                self._pending.append(p.name)
                self._tokens.add(m.group(2))
                self._seq = max(self._seq, int(m.group(1)))
        self._pending.sort()
        self._on_depth(self.name, len(self._pending))

    def depth(self) -> int:
        """Events not yet delivered (the one being sent included)."""
        with self._cond:
            return len(self._pending)

    def put(self, event: dict[str, Any]) -> bool:
        """Queue ``event`` durably (it must have a ``key``). False: an event with that key is
        queued already. Raises OSError if the disk refuses it."""
        key = event["key"]
        token = key_token(str(key))
        # ensure_ascii: a caller's undecodable bytes (lone surrogates) survive the round trip
        data = json.dumps(event, ensure_ascii=True, default=str).encode("ascii")
        with self._cond:
            if token in self._tokens:
                return False
            # the wall clock orders events across restarts; +1 keeps them apart within one
            self._seq = max(self._seq + 1, self._wall_ns())
            name = f"{self._seq:020d}-{token}.json"
            tmp = self.dir / f".{name}.tmp"
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.dir / name)
            _fsync_dir(self.dir)
            self._pending.append(name)
            self._tokens.add(token)
            self._on_depth(self.name, len(self._pending))
            self._cond.notify_all()
        return True

    def close(self, timeout: float = 5.0) -> bool:
        """Stop delivering (what is queued stays on disk). False: a send still runs."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # --- the delivery thread -------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._deliver()
        finally:
            os.close(self._lock_fd)  # releases the flock: a new Outbox may take the folder

    def _deliver(self) -> None:
        retry_at = 0.0
        while True:
            with self._cond:
                while not self._closing and (not self._pending or self._clock() < retry_at):
                    wait = retry_at - self._clock() if self._pending else None
                    self._cond.wait(wait)
                if self._closing:
                    return
                name = self._pending[0]
            event = self._read(name)
            if event is None:
                self._forget(name)
                continue
            try:
                self._send(event)
            except Exception as e:  # noqa: BLE001 - any failure: retry later, never drop
                self.attempts += 1
                self.last_error = clean_text(f"{type(e).__name__}: {e}", 300)
                self._failures.note(f"sending {self.name}", e)
                self._on_failed(self.name)
                retry_at = self._clock() + backoff(self.attempts, self._initial, self._max)
                continue
            self.attempts, retry_at = 0, 0.0
            try:
                (self.dir / name).unlink()
            except FileNotFoundError:
                pass
            except OSError as e:  # delivered again after a restart: the receiver dedupes
                self._failures.note(f"deleting a delivered {self.name} file", e)
            self._forget(name)
            self._on_delivered(self.name)

    def _read(self, name: str) -> dict[str, Any] | None:
        """The event in ``name``; None if it is gone or was set aside as corrupt."""
        try:
            raw = (self.dir / name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            self._set_aside(name, f"unreadable: {e}")
            return None
        try:
            event = json.loads(raw)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            self._set_aside(name, "not a JSON object")
            return None
        return event

    def _set_aside(self, name: str, why: str) -> None:
        bad = self.dir / BAD_FOLDER
        try:
            bad.mkdir(exist_ok=True)
            os.replace(self.dir / name, bad / name)
        except OSError as e:  # it stays where it is: skipped now, tried again at the next start
            why = f"{why}; moving it to {BAD_FOLDER}/ failed too: {e}"
        self.bad += 1
        log.error("%s outbox: %s is %s: set aside, not delivered", self.name,
                  clean_text(name, 200), why)

    def _forget(self, name: str) -> None:
        with self._cond:
            if name in self._pending:
                self._pending.remove(name)
            m = _NAME.match(name)
            if m is not None:
                self._tokens.discard(m.group(2))
            self._on_depth(self.name, len(self._pending))
