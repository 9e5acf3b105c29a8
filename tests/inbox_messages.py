"""The inbox the inbox tests read: messages written by the real store (one with a caller's
name full of markup, a header injection, a bidi override and bytes that were not UTF-8), plus
one line written by hand, whose raw control characters never went through the store's
cleaning and whose audio path points outside the audio folder; and the web server that
serves it, run in this process."""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gateway.inbox.store import MessageStore, NewMessage, messages_path
from gateway.views import calls_web

CALL_ID = "call-1-ab12cd"


HOSTILE_NAME = ("<script>alert(1)</script>\r\nX-Evil: 1\u202eevil"
                + b"\xff\xfe".decode("utf-8", "surrogateescape"))


RAW_ID = "m-20251206-121800-0000aa"


@dataclass
class Inbox:
    journal: Path
    messages: Path
    ids: list[str]
    """Newest first: plain (unread), the raw line (unread), hostile (unread), with audio
    (read)."""
    pcm: bytes


def _pcm() -> bytes:
    t = np.arange(16000) / 16000
    return (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes()


@dataclass
class Server:
    host: str
    port: int

    def request(self, method: str, path: str, body: str | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            hdrs = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
            conn.request(method, path, body=body, headers={**hdrs, **(headers or {})})
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def page(self, path: str = "/messages", **headers: str) -> str:
        status, _, body = self.request("GET", path, headers=headers)
        assert status == 200, (path, status, body)
        return body.decode("utf-8")  # strict: the page is valid UTF-8


@contextlib.contextmanager
def serving(journal: Path, address: str = "127.0.0.1",
            token: str | None = None) -> Iterator[Server]:
    """``calls_web.server`` as ``voicebot calls serve`` builds it, on a free port."""
    srv = calls_web.server(journal, address, 0, None, 100, token)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server("127.0.0.1", srv.server_address[1])
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(10)


T0 = 1765023330.0  # 2025-12-06 12:15:30 UTC


def make_inbox(tmp_path: Path) -> Inbox:
    """Newest first: plain, the raw line, hostile (all unread), one with audio (read)."""
    journal = tmp_path / "calls.jsonl"
    journal.write_text(json.dumps({"v": 1, "type": "open", "id": CALL_ID, "call": "call-1",
                                   "start": "2025-12-06T12:14:00", "remote_uri": "sip:ann@x"})
                       + "\n" + json.dumps({"v": 1, "type": "close", "id": CALL_ID,
                                            "outcome": "ended_by_caller",
                                            "duration_seconds": 70.0}) + "\n")
    path = messages_path(journal)
    now = [T0]
    store = MessageStore(path, wall=lambda: now[0])
    pcm = _pcm()
    voiced = store.save(NewMessage(
        CALL_ID, "sip:5552134409@x", "Ann Lee", "5552134409", "Please call me about the order.",
        [{"who": "bot", "text": "What is your name?"}, {"who": "caller", "text": "Ann Lee"}],
        pcm))
    now[0] = T0 + 60
    hostile = store.save(NewMessage(
        "call-2-cd34ef", "sip:<b>@x", HOSTILE_NAME, "15552134409",
        "hi <img src=x onerror=alert(2)>"))
    now[0] = T0 + 180
    plain = store.save(NewMessage("call-3-ef56ab", "sip:bob@x", "Bob", "4402079460958",
                                  "Is the shop open on Sunday?"))
    now[0] = T0 + 200
    store.mark(voiced["id"])
    store.close()
    # written by hand: raw ESC, CR and a bidi override the store would have escaped, and an
    # audio path out of the audio folder
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps({"v": 1, "type": "message", "id": RAW_ID, "call_id": "x\"/../<i>",
                            "time": "2025-12-06T12:18:00+00:00", "ts": T0 + 150,
                            "caller": "sip:raw@x", "name": "Raw\x1b[31m\u202eName\r",
                            "callback": "555\" onclick=\"x", "message": "line1\nline2\x1b]0;t",
                            "exchange": [], "audio": "../calls.jsonl",
                            "audio_seconds": 1.0}) + "\n")
    return Inbox(journal, path, [plain["id"], RAW_ID, hostile["id"], voiced["id"]], pcm)
