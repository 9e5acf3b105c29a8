"""The business's inbox as a process and in a browser: ``voicebot calls serve`` refuses another
address without a token, and the inbox page works in headless Chromium."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.views import calls_web
from testbed import browser, harness
from tests.inbox_messages import Inbox, Server, make_inbox, serving


@pytest.fixture
def inbox(tmp_path: Path) -> Inbox:
    return make_inbox(tmp_path)


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
