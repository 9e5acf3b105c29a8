"""The business's inbox: ``/messages`` on the ``voicebot calls serve`` web server (gateway/inbox/
page.py, gateway/views/calls_web.py) run in this process and read and marked over real HTTP on
loopback, and the ``voicebot messages`` command.

The messages are written by the real store (gateway/inbox/store.py), one with a caller's name
full of markup, a header injection, a bidi override and bytes that were not UTF-8, plus one
line written by hand (as an older writer or an editor might), whose raw control characters
never went through the store's cleaning and whose audio path points outside the audio folder."""

from __future__ import annotations

import json
import re
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.inbox.store import read_messages
from gateway.views import calls_web
from tests.inbox_messages import CALL_ID, RAW_ID, Inbox, Server, make_inbox, serving

TOKEN = "correct-horse-battery-staple-42"


@pytest.fixture
def inbox(tmp_path: Path) -> Inbox:
    return make_inbox(tmp_path)


@pytest.fixture
def served(inbox: Inbox) -> Iterator[Server]:
    with serving(inbox.journal) as s:
        yield s


def rows(page: str) -> list[tuple[str, str]]:
    """(id, class) of each message row, in page order."""
    return [(m.group(2), m.group(1))
            for m in re.finditer(r'<tr class="([^"]*)" id="([^"]*)">', page)]


def form_token(page: str) -> str:
    tokens = set(re.findall(r'<input type="hidden" name="token" value="([^"]*)">', page))
    assert len(tokens) == 1, tokens
    return tokens.pop()


def test_the_inbox_lists_newest_first_with_the_unread_count(inbox: Inbox, served: Server):
    status, headers, body = served.request("GET", "/messages")
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp and "media-src 'self'" in csp
    assert "form-action 'self'" in csp and "script" not in csp
    page = body.decode("utf-8")
    assert "<title>Messages (3 unread)</title>" in page
    assert rows(page) == [(inbox.ids[0], "message unread"), (inbox.ids[1], "message unread"),
                          (inbox.ids[2], "message unread"), (inbox.ids[3], "message")]
    assert page.count("Mark read</button>") == 3 and page.count("Mark unread</button>") == 1
    # the callback numbers: grouped to read, dialable
    assert '<a class="callback" href="tel:5552134409">555 213 4409</a>' in page
    assert '<a class="callback" href="tel:15552134409">1 555 213 4409</a>' in page
    assert '<a class="callback" href="tel:4402079460958">440 207 946 0958</a>' in page
    # only the message with audio has a player, and it points at this server
    players = re.findall(r"<audio [^>]*>", page)
    assert players == [f'<audio controls preload="none" src="/messages/{inbox.ids[3]}.wav">']
    # each message links to its call's page, which this server shows
    assert f'href="/calls/{CALL_ID}"' in page
    assert f"<h1>Call {CALL_ID}</h1>" in served.page(f"/calls/{CALL_ID}")
    # the calls list links to the inbox with the unread count
    home = served.page("/")
    assert '<a class="inbox unread" href="/messages">Messages (3 unread)</a>' in home


def test_every_caller_field_is_escaped(inbox: Inbox, served: Server):
    status, headers, body = served.request("GET", "/messages")
    page = body.decode("utf-8")
    assert "x-evil" not in headers
    for raw in ("<script", "<img", "<i>", "\u202e", "\x1b", "\r", "onclick=\""):
        assert raw not in page, raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt;\\x0d\\x0aX-Evil: 1\\u202eevil\\xff\\xfe" in page
    assert "hi &lt;img src=x onerror=alert(2)&gt;" in page
    # the hand-written line: escaped by the page itself, its odd call id one path segment,
    # its callback with no digits to dial beyond the real ones
    assert "Raw\\x1b[31m\\u202eName\\x0d" in page and "line1\\x0aline2\\x1b]0;t" in page
    assert 'href="/calls/x%22%2F..%2F%3Ci%3E"' in page
    assert 'href="tel:555"' in page and "555&quot; onclick=&quot;x" in page


def test_the_audio_is_the_wav_file_and_nothing_else_is_served(inbox: Inbox, served: Server):
    voiced = inbox.ids[3]
    status, headers, body = served.request("GET", f"/messages/{voiced}.wav")
    wav = inbox.messages.parent / "messages" / f"{voiced}.wav"
    assert status == 200 and headers["content-type"] == "audio/wav"
    assert body == wav.read_bytes() and int(headers["content-length"]) == len(body)
    with wave.open(str(wav)) as w:
        assert w.readframes(w.getnframes()) == inbox.pcm
    status, headers, body = served.request("HEAD", f"/messages/{voiced}.wav")
    assert status == 200 and body == b"" and int(headers["content-length"]) == wav.stat().st_size
    (inbox.messages.parent / "secret.wav").write_bytes(b"RIFF secret")
    for path in ["/messages/../secret.wav", "/messages/..%2Fsecret.wav",
                 "/messages/%2e%2e/%2e%2e/etc/passwd.wav", f"/messages/{voiced}.wav/..",
                 "/messages/m-20991231-235959-abcdef.wav",  # the right shape, no such message
                 f"/messages/{inbox.ids[0]}.wav",  # a message without audio
                 f"/messages/{RAW_ID}.wav",  # its line names a file out of the audio folder
                 f"/messages/{voiced.upper()}.wav", f"/messages/{voiced}%00.wav"]:
        status, _, body = served.request("GET", path)
        assert status == 404, path
        assert b"secret" not in body and b"calls.jsonl" not in body


def test_marking_needs_the_form_token_and_this_origin(inbox: Inbox, served: Server):
    hostile = inbox.ids[2]
    token = form_token(served.page())
    before = inbox.messages.read_bytes()
    own = f"http://127.0.0.1:{served.port}"
    for body, headers in [(None, {}), ("token=", {}), ("token=guess", {}),
                          (f"token={token}", {"Origin": "http://evil.example"}),
                          (f"token={token}", {"Origin": "null"}),
                          (f"token={token}", {"Origin": f"http://127.0.0.1:{served.port + 1}"})]:
        status, _, _ = served.request("POST", f"/messages/{hostile}/read", body, headers)
        assert status == 403, (body, headers)
    # a GET never writes, whatever it carries
    assert served.request("GET", f"/messages/{hostile}/read?token={token}")[0] == 405
    assert inbox.messages.read_bytes() == before

    status, headers, _ = served.request("POST", f"/messages/{hostile}/read", f"token={token}",
                                        {"Origin": own})
    assert status == 303 and headers["location"] == "/messages"
    assert {m["id"]: m["read"] for m in read_messages(inbox.messages)}[hostile] is True
    page = served.page()
    assert "<title>Messages (2 unread)</title>" in page
    assert dict(rows(page))[hostile] == "message"
    assert f'action="/messages/{hostile}/unread"' in page

    # no Origin (not a browser): the token alone will do
    assert served.request("POST", f"/messages/{hostile}/unread", f"token={token}")[0] == 303
    assert "<title>Messages (3 unread)</title>" in served.page()
    # a well-formed token for a message that is not there: nothing written
    after = inbox.messages.read_bytes()
    status, _, _ = served.request("POST", "/messages/m-20991231-235959-abcdef/read",
                                  f"token={token}")
    assert status == 404 and inbox.messages.read_bytes() == after


def test_the_form_token_is_new_at_every_start(inbox: Inbox, served: Server):
    with serving(inbox.journal) as other:
        assert form_token(other.page()) != form_token(served.page())
        stale = form_token(served.page())
        status, _, _ = other.request("POST", f"/messages/{inbox.ids[0]}/read", f"token={stale}")
        assert status == 403


def test_a_loopback_server_answers_only_to_loopback_names(served: Server):
    # a page elsewhere that rebinds its own name to 127.0.0.1 sends its name as the Host
    status, _, body = served.request("GET", "/messages", headers={"Host": "evil.example"})
    assert status == 403 and b"Messages" not in body
    assert served.request("GET", "/", headers={"Host": "evil.example:80"})[0] == 403
    for host in ("localhost:8000", "127.0.0.1", "[::1]:9480"):  # e.g. an SSH tunnel's port
        assert served.request("GET", "/messages", headers={"Host": host})[0] == 200, host


def test_another_address_needs_an_access_token(inbox: Inbox):
    with pytest.raises(calls_web.AccessError, match="VOICEBOT_INBOX_TOKEN"):
        calls_web.server(inbox.journal, "0.0.0.0", 0)
    with pytest.raises(calls_web.AccessError, match="at least 16"):
        calls_web.server(inbox.journal, "0.0.0.0", 0, access_token="short")
    with pytest.raises(calls_web.AccessError, match="at least 16"):
        calls_web.server(inbox.journal, "0.0.0.0", 0, access_token="sixteen chars; x=y")

    before = inbox.messages.read_bytes()
    with serving(inbox.journal, "0.0.0.0", TOKEN) as s:
        for path in ("/", "/messages", f"/messages/{inbox.ids[3]}.wav", f"/calls/{CALL_ID}"):
            status, headers, body = s.request("GET", path)
            assert status == 401 and headers["www-authenticate"].startswith("Bearer"), path
            assert b"Ann" not in body and b"RIFF" not in body
        for headers in ({"Authorization": "Bearer wrong-token-wrong-token"},
                        {"Authorization": f"Basic {TOKEN}"},
                        {"Cookie": "voicebot_inbox=wrong-token-wrong-token"},
                        {"Cookie": f"other={TOKEN}"}):
            assert s.request("GET", "/messages", headers=headers)[0] == 401, headers
        assert s.request("GET", "/?token=wrong-token-wrong-token")[0] == 401
        # a POST without the access token is refused before its form is looked at
        status, _, _ = s.request("POST", f"/messages/{inbox.ids[0]}/read", "token=x")
        assert status == 401 and inbox.messages.read_bytes() == before

        assert "Messages (3 unread)" in s.page(Authorization=f"Bearer {TOKEN}")
        # a browser: the token once in the address, then a cookie (the address is cleaned)
        status, headers, _ = s.request("GET", f"/messages?token={TOKEN}")
        assert status == 303 and headers["location"] == "/messages"
        cookie = headers["set-cookie"]
        assert cookie.startswith(f"voicebot_inbox={TOKEN};")
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        jar = cookie.split(";")[0]
        page = s.page(Cookie=f"theme=dark; {jar}", Host="inbox.example:9480")
        assert "Messages (3 unread)" in page
        assert s.request("GET", f"/messages/{inbox.ids[3]}.wav", headers={"Cookie": jar})[0] \
            == 200
        status, _, _ = s.request("POST", f"/messages/{inbox.ids[0]}/read",
                                 f"token={form_token(page)}", {"Cookie": jar})
        assert status == 303
    assert inbox.messages.read_bytes() != before


def test_the_command_lists_newest_first_marks_unread_and_escapes(inbox: Inbox, capsys):
    assert main(["messages", "--journal", str(inbox.journal)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["TIME", "NAME", "CALLBACK", "MESSAGE", "ID"]
    assert [line.split()[-1] for line in lines[1:]] == inbox.ids
    unread = [line for line in lines[1:] if re.match(r"\S+ \S+  \*  ", line)]
    assert len(unread) == 3 and inbox.ids[3] not in "".join(unread)
    assert "555 213 4409" in out and "1 555 213 4409" in out
    for raw in ("\x1b", "\r", "\u202e", "\udcff"):
        assert raw not in out, repr(raw)
    assert "<script>alert(1)</scr..." in out  # the name, cut to its column
    assert "line1\\x0aline2\\x1b]0;t" in out

    assert main(["messages", "--journal", str(inbox.journal), "--unread"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[-1] for line in out.splitlines()[1:]] == inbox.ids[:3]


def test_the_command_prints_json_lines(inbox: Inbox, capsys):
    assert main(["messages", "--journal", str(inbox.journal), "--json"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out and "\r" not in out
    got = [json.loads(line) for line in out.splitlines()]
    assert [m["id"] for m in got] == inbox.ids
    assert [m["read"] for m in got] == [False, False, False, True]
    assert got[1]["name"] == "Raw\\x1b[31m\\u202eName\\x0d"
    assert main(["messages", "--journal", str(inbox.journal), "--json", "--unread"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3


def test_the_command_shows_one_in_full(inbox: Inbox, capsys):
    voiced = inbox.ids[3]
    assert main(["messages", "--journal", str(inbox.journal), "show", voiced]) == 0
    out = capsys.readouterr().out
    wav = (inbox.messages.parent / "messages" / f"{voiced}.wav").resolve()
    assert f"  audio     {wav} (1.0 s)" in out
    assert f"  call      {CALL_ID}" in out
    assert "Please call me about the order." in out and "(read)" in out
    assert "What is your name?" in out
    assert main(["messages", "--journal", str(inbox.journal), "show", RAW_ID]) == 0
    out = capsys.readouterr().out
    assert "missing (../calls.jsonl)" in out and "\x1b" not in out
    assert main(["messages", "--journal", str(inbox.journal), "show", RAW_ID, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == RAW_ID


def test_the_command_marks_and_refuses_unknown_ids(inbox: Inbox, capsys):
    j = str(inbox.journal)
    hostile = inbox.ids[2]
    assert main(["messages", "--journal", j, "read", hostile[:-2]]) == 0  # a unique prefix
    assert {m["id"]: m["read"] for m in read_messages(inbox.messages)}[hostile] is True
    assert main(["messages", "--journal", j, "unread", inbox.ids[3]]) == 0
    assert all(not m["read"] for m in read_messages(inbox.messages) if m["id"] != hostile)
    capsys.readouterr()
    before = inbox.messages.read_bytes()
    for args in (["show", "m-nope"], ["read", "m-nope\x1b[2J"], ["unread", "m-"]):
        assert main(["messages", "--journal", j, *args]) == 1, args
        err = capsys.readouterr().err
        assert "no message" in err or "matches 4 messages" in err
        assert "\x1b" not in err
    assert inbox.messages.read_bytes() == before


def test_the_command_finds_the_messages_beside_the_configured_journal(inbox: Inbox, tmp_path,
                                                                       capsys):
    cfg = tmp_path / "voicebot.toml"
    cfg.write_text(f'[records]\npath = "{inbox.journal}"\n')
    assert main(["--config", str(cfg), "messages"]) == 0
    assert inbox.ids[0] in capsys.readouterr().out
    assert main(["--config", str(cfg), "messages", "--journal", str(tmp_path / "x" / "c.jsonl")
                 ]) == 0
    assert "no messages in" in capsys.readouterr().err
