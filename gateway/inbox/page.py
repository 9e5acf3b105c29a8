"""The business's inbox on the calls web server (gateway/views/calls_web.py): the messages callers
left, newest first (``/messages``), each one's audio (``/messages/<id>.wav``), and marking one
read or unread (POST ``/messages/<id>/read`` or ``/unread``, then back to the list): the
server's only write.

A POST must carry this process's form token (a hidden field of the page, random at every
start) and, when the browser names the page it came from (``Origin``), come from this same
host: another site cannot mark messages by posting a form here, as it can neither read the
token nor pass for this origin. The messages file is read again at every request.
"""

from __future__ import annotations

import hmac
import html
import re
import secrets
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.calls.records import LONG_TEXT_LIMIT, clean_text
from gateway.inbox import view
from gateway.inbox.store import MessageStore, read_messages

ID = re.compile(r"m-[0-9]{8}-[0-9]{6}-[0-9a-f]{6}")
"""A message id as the store makes them: nothing else names a file or a mark."""
FORM_LIMIT = 4096
"""The largest form body read: the token is all a mark needs."""
CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fff}
h1{font-size:1.3em}.note{color:#666;font-size:.9em}
table.messages{border-collapse:collapse;width:100%}
table.messages th,table.messages td{border-bottom:1px solid #ddd;padding:.35em .6em;
text-align:left;vertical-align:top}
tr.unread td{font-weight:600}
td.dot{color:#1a73e8;width:1em}
td.text{overflow-wrap:anywhere;max-width:40em}td.text audio{display:block;margin-top:.3em}
td.name{overflow-wrap:anywhere;max-width:14em}
details{font-weight:400;color:#555;margin-top:.3em}
button{font:inherit;font-weight:400}
"""


@dataclass(frozen=True)
class Reply:
    status: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def text_reply(status: str, text: str, *headers: tuple[str, str]) -> Reply:
    return Reply(status, [("Content-Type", "text/plain; charset=utf-8"), *headers],
                 text.encode("utf-8"))


def _e(x: Any, limit: int | None = None) -> str:
    """A caller-supplied value for HTML: escaped as text first, then as markup."""
    return html.escape(clean_text(x) if limit is None else clean_text(x, limit))


def _call_href(call_id: Any) -> str:
    # the calls page's path (calls_web.call_href): importing it would make an import circle
    return "/calls/" + urllib.parse.quote(str(call_id), safe="")


def _row(m: Mapping[str, Any], token: str, store: MessageStore) -> str:
    mid = m.get("id")
    valid = isinstance(mid, str) and ID.fullmatch(mid) is not None
    unread = not m.get("read")
    digits = view.callback_digits(m.get("callback"))
    number = _e(view.format_callback(m.get("callback")))
    callback = f'<a class="callback" href="tel:{digits}">{number}</a>' if digits else number
    text = f'<div class="message">{_e(m.get("message") or "", LONG_TEXT_LIMIT)}</div>'
    if valid and store.audio_path(m) is not None:
        text += f'<audio controls preload="none" src="/messages/{mid}.wav"></audio>'
    exchange = m.get("exchange")
    if isinstance(exchange, list) and exchange:
        said = "".join(f"<li><b>{_e(x.get('who', '?'), 16)}</b>: "
                       f"{_e(x.get('text', ''), LONG_TEXT_LIMIT)}</li>"
                       for x in exchange if isinstance(x, Mapping))
        text += f"<details><summary>How it was taken</summary><ul>{said}</ul></details>"
    call = (f'<a class="call" href="{html.escape(_call_href(clean_text(m["call_id"])))}">call'
            "</a>") if m.get("call_id") else ""
    action = ""
    if valid:
        verb = "read" if unread else "unread"
        action = (f'<form method="post" action="/messages/{mid}/{verb}">'
                  f'<input type="hidden" name="token" value="{html.escape(token)}">'
                  f'<button type="submit">Mark {verb}</button></form>')
    when = f'<time datetime="{_e(m.get("time") or "", 40)}">{_e(view.local_time(m))}</time>'
    dot = '<td class="dot" title="unread">●</td>' if unread else '<td class="dot"></td>'
    return (f'<tr class="{"message unread" if unread else "message"}" id="{_e(mid, 64)}">{dot}'
            f'<td class="time">{when}</td><td class="name">{_e(m.get("name") or "-")}</td>'
            f'<td class="number">{callback}</td><td class="text">{text}</td><td>{call}</td>'
            f"<td>{action}</td></tr>")


def title(unread: int) -> str:
    return f"Messages ({unread} unread)" if unread else "Messages"


def inbox_page(messages: list[dict[str, Any]], path: Path, token: str) -> str:
    """The messages, as given (newest first); unread ones in bold with a dot."""
    store = MessageStore(path)
    unread = sum(1 for m in messages if not m.get("read"))
    rows = "".join(_row(m, token, store) for m in messages)
    table = ('<table class="messages"><thead><tr><th></th><th>Time</th><th>Name</th>'
             "<th>Callback</th><th>Message</th><th>Call</th><th></th></tr></thead>"
             f"<tbody>{rows}</tbody></table>") if rows else '<p class="empty">No messages.</p>'
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{title(unread)}</title><style>{CSS}</style></head><body>"
            '<p class="note"><a href="/">Recent calls</a></p>'
            f"<h1>{title(unread)}</h1>"
            f'<p class="note">{len(messages)} message(s) from {html.escape(str(path))}, newest '
            "first; times are the server's.</p>"
            f"{table}</body></html>\n")


def _same_origin(environ: Mapping[str, Any]) -> bool:
    """Whether the request's ``Origin`` (if the browser sent one) is this host."""
    origin = environ.get("HTTP_ORIGIN")
    if origin is None:
        return True  # not a browser, or an old one: the form token still holds
    try:
        parts = urllib.parse.urlsplit(origin)
    except ValueError:
        return False
    host = str(environ.get("HTTP_HOST", ""))
    return parts.scheme in ("http", "https") and bool(host) \
        and parts.netloc.lower() == host.lower()


def _form(environ: Mapping[str, Any]) -> dict[str, list[str]] | None:
    try:
        size = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if not 0 <= size <= FORM_LIMIT:
        return None
    body = environ["wsgi.input"].read(size) if size else b""
    return urllib.parse.parse_qs(body.decode("utf-8", "replace"))


class Inbox:
    """The inbox's routes over one messages file (``handle``)."""

    def __init__(self, path: Path, form_token: str | None = None) -> None:
        self.path = path
        self.form_token = form_token or secrets.token_urlsafe(32)
        self._store = MessageStore(path)

    def unread(self) -> int:
        return sum(1 for m in read_messages(self.path) if not m.get("read"))

    def _find(self, mid: str) -> dict[str, Any] | None:
        if ID.fullmatch(mid) is None:
            return None
        return next((m for m in read_messages(self.path) if m.get("id") == mid), None)

    def handle(self, method: str, path: str, environ: Mapping[str, Any]) -> Reply:
        """A request for ``/messages`` or below (``path``: the decoded PATH_INFO)."""
        if path in ("/messages", "/messages/"):
            if method == "POST":
                return Reply("405 Method Not Allowed", [("Allow", "GET, HEAD")])
            page = inbox_page(read_messages(self.path), self.path, self.form_token)
            return Reply("200 OK", [("Content-Type", "text/html; charset=utf-8")],
                         page.encode("utf-8"))
        rest = path[len("/messages/"):]
        if rest.endswith(".wav"):
            if method == "POST":
                return Reply("405 Method Not Allowed", [("Allow", "GET, HEAD")])
            m = self._find(rest[:-len(".wav")])
            wav = self._store.audio_path(m) if m is not None else None
            if wav is None:
                return text_reply("404 Not Found", "no such message audio\n")
            data = wav.read_bytes()
            return Reply("200 OK", [("Content-Type", "audio/wav")], data)
        mid, _, verb = rest.partition("/")
        if verb not in ("read", "unread"):
            return text_reply("404 Not Found", "not found\n")
        if method != "POST":  # a GET never writes (a link, a prefetch, a crawler)
            return Reply("405 Method Not Allowed", [("Allow", "POST")])
        return self._mark(mid, verb == "read", environ)

    def _mark(self, mid: str, read: bool, environ: Mapping[str, Any]) -> Reply:
        if not _same_origin(environ):
            return text_reply("403 Forbidden", "a form of another site\n")
        form = _form(environ)
        if form is None:
            return text_reply("413 Content Too Large", "form too large\n")
        given = (form.get("token") or [""])[0].encode("utf-8", "surrogatepass")
        if not hmac.compare_digest(given, self.form_token.encode()):
            return text_reply("403 Forbidden", "missing or stale form token: reload the page\n")
        if self._find(mid) is None:
            return text_reply("404 Not Found", "no such message\n")
        try:
            self._store.mark(mid, read)
        except OSError as e:
            return text_reply("500 Internal Server Error", f"cannot write the mark: {e}\n")
        finally:
            self._store.close()  # a mark is rare: no journal thread waits between them
        return Reply("303 See Other", [("Location", "/messages")])
