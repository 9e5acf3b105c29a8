"""The business's inbox as a process and in a browser: ``voicebot calls serve`` refuses another
address without a token, and the inbox page works in headless Chromium."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from gateway.inbox.store import MessageStore, NewMessage, messages_path
from gateway.views import calls_web
from testbed import browser, harness

T0 = 1765023330.0  # 2025-12-06 12:15:30 UTC
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


@pytest.fixture
def inbox(tmp_path: Path) -> Inbox:
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


@pytest.fixture
def served(inbox: Inbox) -> Iterator[Server]:
    with serving(inbox.journal) as s:
        yield s


def test_the_serve_command_refuses_another_address_without_a_token(inbox: Inbox):
    env = {k: v for k, v in os.environ.items() if k != calls_web.TOKEN_ENV}
    proc = subprocess.run(
        [*harness.VOICEBOT, "calls", "--journal", str(inbox.journal), "serve", "--host",
         "0.0.0.0", "--port", "0"], cwd=harness.ROOT, env=env, capture_output=True, text=True,
        timeout=60, check=False)
    assert proc.returncode == 2
    assert "0.0.0.0 is not a loopback address" in proc.stderr
    assert calls_web.TOKEN_ENV in proc.stderr
    env[calls_web.TOKEN_ENV] = "weak"
    proc = subprocess.run(
        [*harness.VOICEBOT, "calls", "--journal", str(inbox.journal), "serve", "--port", "0"],
        cwd=harness.ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "at least 16" in proc.stderr


def test_the_inbox_in_headless_chromium(inbox: Inbox, served: Server, tmp_path: Path):
    harness.need(browser.CHROMIUM)
    shot = Path(os.environ.get("VOICEBOT_INBOX_SCREENSHOT") or tmp_path / "inbox.png")
    shot.parent.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{served.port}/messages"
    shown = browser.chromium(url, shot, tmp_path / "chromium", window=(1200, 700))
    assert not browser.console_messages(shown.log, url)  # no CSP violation, no script error
    dom = browser.parse_dom(shown.dom)
    assert [r.attrs["id"] for r in dom.find("message", tag="tr")] == inbox.ids
    assert len(dom.find("unread", tag="tr")) == 3
    assert not [n for n in dom.walk() if n.tag == "script"]
    (player,) = [n for n in dom.walk() if n.tag == "audio"]
    assert player.attrs["src"] == f"/messages/{inbox.ids[3]}.wav"
    assert shot.stat().st_size > 5000
    pixels = browser.read_png(shot)
    assert pixels.shape[:2] == (700, 1200)
    ink = (pixels[..., :3] < 128).all(axis=-1).mean()
    assert 0.002 < ink < 0.5  # text drawn on a white page, not a blank or a black screen
