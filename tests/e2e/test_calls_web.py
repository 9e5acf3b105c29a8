"""``voicebot calls serve``: the read-only web page of recent calls
(gateway/views/calls_web.py), run as the real command and read over real HTTP; the last test
loads it in headless Chromium.

The journal: the browser test's recorded call (a real soak-run call, its turn WAVs) and a
hand-edited record whose id and fields hold markup, quotes, a slash and non-ASCII text.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from testbed import browser, harness

NASTY_ID = 'x"/../<b>é?#1'
NASTY_URI = "<script>alert(1)</script>\"'&"


def nasty_lines(cid: str = NASTY_ID) -> str:
    lines = [{"v": 1, "type": "open", "id": cid, "call": "call-9", "start": "2026-12-05T02:00:00",
              "remote_uri": NASTY_URI},
             {"v": 1, "type": "turn", "id": cid,
              "turn": {"turn": 1, "caller_text": "<img src=x onerror=alert(2)>",
                       "bot_text": "ok", "speech_end_at": 1.0}},
             {"v": 1, "type": "close", "id": cid, "outcome": "ended_by_caller",
              "duration_seconds": 3.0}]
    return "".join(json.dumps(x) + "\n" for x in lines)


@dataclass
class Served:
    url: str
    journal: Path
    proc: subprocess.Popen


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    journal = tmp_path / "calls.jsonl"
    shutil.copy(browser.TIMELINE_DATA / "calls.jsonl", journal)
    with journal.open("a") as f:
        f.write(nasty_lines())
    proc = subprocess.Popen(
        [*harness.VOICEBOT, "calls", "--journal", str(journal), "serve", "--port", "0",
         "--audio-dir", str(browser.recorded_turn_audio(tmp_path))],
        cwd=harness.ROOT, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        m = re.search(r"on (http://\S+/) ", line)
        assert m, line
        yield Served(m.group(1), journal, proc)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # right after a request: it stops all the same
            try:
                code = proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise
            assert code == 0
        proc.stderr.close()


def get(url: str, method: str = "GET") -> tuple[int, dict[str, str], str]:
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode("utf-8")


def links(page: str) -> list[str]:
    return re.findall(r'<a class="call" href="([^"]*)"', page)


def test_the_list_links_every_call_to_its_timeline(served: Served):
    assert served.url.startswith("http://127.0.0.1:")  # loopback unless told otherwise
    status, headers, page = get(served.url)
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    hrefs = links(page)
    assert len(hrefs) == 2
    assert hrefs[-1] == f"/calls/{browser.RECORDED_CALL}"  # newest first
    for href in hrefs:
        status, _, call = get(served.url.rstrip("/") + href.replace("&amp;", "&"))
        assert status == 200 and 'class="timeline-svg"' in call, href
    # the recorded call's page draws the caller's turn WAVs (--audio-dir)
    _, _, call = get(served.url.rstrip("/") + hrefs[-1])
    assert call.count('class="waveform"') >= 3
    assert f"<h1>Call {browser.RECORDED_CALL}</h1>" in call


def test_every_field_is_escaped_and_an_odd_id_still_resolves(served: Served):
    _, _, page = get(served.url)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    href = links(page)[0]
    assert href == "/calls/x%22%2F..%2F%3Cb%3E%C3%A9%3F%231"  # one path segment
    status, _, call = get(served.url.rstrip("/") + href)
    assert status == 200
    assert "<h1>Call x&quot;/../&lt;b&gt;é?#1</h1>" in call
    assert "<img" not in call and "&lt;img src=x onerror=alert(2)&gt;" in call


def test_read_only_and_current(served: Served):
    assert get(served.url + "calls/nope")[0] == 404
    assert get(served.url + "etc/passwd")[0] == 404
    status, headers, _ = get(served.url, method="POST")
    assert status == 405 and headers["Allow"] == "GET, HEAD"
    before = served.journal.read_bytes()
    # the journal is read at every request: a call written meanwhile is listed at once
    with served.journal.open("a") as f:
        f.write(nasty_lines("call-10-new"))
    assert "/calls/call-10-new" in links(get(served.url)[2])
    assert served.journal.read_bytes().startswith(before)  # nothing of it was rewritten


def test_the_served_pages_in_headless_chromium(served: Served, tmp_path: Path):
    harness.need(browser.CHROMIUM)
    shown = browser.chromium(served.url, tmp_path / "list.png", tmp_path / "chromium")
    assert not browser.console_messages(shown.log, served.url)
    rows = browser.parse_dom(shown.dom).find("calls", tag="table")[0].find(tag="tr")
    assert len(rows) == 3  # the header and two calls
    url = served.url + "calls/" + browser.RECORDED_CALL
    shown = browser.chromium(url, tmp_path / "call.png", tmp_path / "chromium")
    assert not browser.console_messages(shown.log, url)  # no CSP violation, no script error
    dom = browser.parse_dom(shown.dom)
    assert dom.find("bar-bot") and dom.find("waveform", tag="path")
