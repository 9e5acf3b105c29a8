"""The web pages of recent calls and messages (``voicebot calls serve``): the list of calls at
``/``, each call's timeline page (gateway/views/timeline.py) at ``/calls/<id>``, and the business's
inbox of messages at ``/messages`` (gateway/inbox/page.py).

A separate command on loopback, not a path on the metrics listener: the pages show callers'
numbers and words, which have no place on a port that Prometheus (or anyone it lets in)
scrapes. The journal is read again at every request, so the list is always current; the one
write is marking a message read or unread. Every field goes through ``clean_text`` and
``html.escape``; the pages run no script and load nothing but a message's audio from this
server (the Content-Security-Policy).

Who may look: on loopback without a token, only requests that name a loopback host (a web
page elsewhere cannot rebind its own name to this server to read it). On any other address the
server needs an access token (``VOICEBOT_INBOX_TOKEN``), then checked on every request: a
cookie set by opening ``/?token=...`` once, or an ``Authorization: Bearer`` header.
"""

from __future__ import annotations

import hmac
import html
import ipaddress
import logging
import re
import socket
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from gateway.calls import records
from gateway.calls.recording import recording_file
from gateway.inbox.page import Inbox, Reply, text_reply
from gateway.inbox.store import messages_path
from gateway.views import records_view, timeline

log = logging.getLogger(__name__)

DEFAULT_PORT = 9480
TOKEN_ENV = "VOICEBOT_INBOX_TOKEN"
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9._~-]{16,}")
"""Long enough not to be guessed, and nothing that a URL, a cookie or a header must escape."""
COOKIE = "voicebot_inbox"
HEADERS = [("Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; media-src 'self'; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
           ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"),
           ("Cache-Control", "no-store")]
CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fff}
h1{font-size:1.3em}.note{color:#666;font-size:.9em}
table.calls{border-collapse:collapse}
table.calls th,table.calls td{border-bottom:1px solid #ddd;padding:.25em .7em;text-align:left;
vertical-align:top}
table.calls td.from{overflow-wrap:anywhere;max-width:30em}
.inbox{font-size:1.05em}.inbox.unread{font-weight:600}
"""

StartResponse = Callable[[str, list[tuple[str, str]]], Any]

RECORDING_SUFFIX = "/recording.wav"


def call_href(call_id: Any) -> str:
    """The URL path of a call's page: its id, percent-encoded whatever it holds."""
    return "/calls/" + urllib.parse.quote(str(call_id), safe="")


def list_page(recs: list[dict[str, Any]], journal: Path, unread: int | None = None) -> str:
    """The recent calls, newest first; each id links to the call's timeline page. With
    ``unread``: a link to the messages, with how many are unread."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in records_view.LIST_COLUMNS)
    body = []
    for r, row in zip(reversed(recs), reversed(records_view.list_rows(recs)), strict=True):
        link = (f'<a class="call" href="{html.escape(call_href(r.get("id")))}">'
                f"{html.escape(row[0])}</a>")
        cells = "".join(f"<td>{html.escape(c)}</td>" for c in row[1:-1])
        body.append(f'<tr><td>{link}</td>{cells}<td class="from">{html.escape(row[-1])}</td>'
                    "</tr>")
    table = (f'<table class="calls"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}'
             "</tbody></table>") if body else '<p class="empty">No calls yet.</p>'
    inbox = ""
    if unread is not None:
        inbox = (f'<p><a class="inbox{" unread" if unread else ""}" href="/messages">Messages'
                 f"{f' ({unread} unread)' if unread else ''}</a></p>")
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>Recent calls</title><style>{CSS}</style></head><body>"
            f"{inbox}<h1>Recent calls</h1>"
            f'<p class="note">{len(recs)} call(s) from {html.escape(str(journal))}, newest '
            "first; an id opens the call's timeline.</p>"
            f"{table}</body></html>\n")


class AccessError(ValueError):
    """The server may not serve as asked (another address than loopback without a token, or a
    token too weak to guard the pages)."""


def _send(start: StartResponse, method: str, reply: Reply) -> list[bytes]:
    start(reply.status, [*reply.headers, ("Content-Length", str(len(reply.body))), *HEADERS])
    return [b""] if method == "HEAD" else [reply.body]


def _loopback_name(host: Any) -> bool:
    """Whether a ``Host`` header names this machine's loopback (any port: an SSH tunnel)."""
    try:
        name = urllib.parse.urlsplit(f"//{host}").hostname or ""
    except ValueError:
        return False
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _tokens_presented(environ: Mapping[str, Any]) -> list[str]:
    found = []
    scheme, _, value = str(environ.get("HTTP_AUTHORIZATION", "")).partition(" ")
    if scheme.lower() == "bearer":
        found.append(value.strip())
    for part in str(environ.get("HTTP_COOKIE", "")).split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            found.append(value)
    return found


def _matches(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), token.encode())


def _guard(environ: Mapping[str, Any], path: str, token: str | None) -> Reply | None:
    """None if the request may go on; else the answer: refused, or the token's cookie set."""
    if token is None:
        if "HTTP_HOST" in environ and not _loopback_name(environ["HTTP_HOST"]):
            return text_reply("403 Forbidden", "this server answers to loopback names only (serve "
                              f"with {TOKEN_ENV} set to reach it by another name)\n")
        return None
    query = urllib.parse.parse_qs(str(environ.get("QUERY_STRING", "")))
    if "token" in query and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
        if _matches(query["token"][0], token):
            # the token leaves the address bar (and the history) at once
            home = "/messages" if path.startswith("/messages") else "/"
            return Reply("303 See Other", [
                ("Location", home),
                ("Set-Cookie", f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict")])
    elif any(_matches(given, token) for given in _tokens_presented(environ)):
        return None
    return text_reply("401 Unauthorized", "this server needs its access token: open "
                      "/?token=TOKEN once, or send Authorization: Bearer TOKEN\n",
                      ("WWW-Authenticate", 'Bearer realm="voicebot"'))


def app(journal: Path, audio_dir: str | None = None, limit: int = 100,
        access_token: str | None = None
        ) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """The WSGI application: GET (or HEAD) ``/``, ``/calls/<id>`` and the inbox's pages, POST
    only to mark a message (gateway/inbox/page.py). With ``access_token``, every request must
    present it."""
    inbox = Inbox(messages_path(journal))

    def serve(environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        # PATH_INFO is already percent-decoded (as latin-1 bytes, per PEP 3333)
        path = environ.get("PATH_INFO", "/").encode("latin-1").decode("utf-8", "replace")
        refused = _guard(environ, path, access_token)
        if refused is not None:
            return _send(start, method, refused)
        if path == "/messages" or path.startswith("/messages/"):
            if method not in ("GET", "HEAD", "POST"):
                return _send(start, method, Reply("405 Method Not Allowed",
                                                  [("Allow", "GET, HEAD, POST")]))
            return _send(start, method, inbox.handle(method, path, environ))
        if method not in ("GET", "HEAD"):
            return _send(start, method, Reply("405 Method Not Allowed", [("Allow", "GET, HEAD")]))
        folded = records.read(journal)
        if path in ("/", "/calls", "/calls/"):
            recs = folded.records()
            page = list_page(recs[-limit:] if limit > 0 else recs, journal, inbox.unread())
        elif path.startswith("/calls/") and path.endswith(RECORDING_SUFFIX):
            rec = folded.calls.get(path[len("/calls/"):-len(RECORDING_SUFFIX)])
            wav = recording_file(journal, rec) if rec is not None else None
            if wav is None:
                return _send(start, method, text_reply("404 Not Found", "no recording\n"))
            return _send(start, method, Reply("200 OK", [("Content-Type", "audio/wav")],
                                              wav.read_bytes()))
        elif path.startswith("/calls/"):
            rec = folded.calls.get(path[len("/calls/"):])
            if rec is None:
                return _send(start, method,
                             text_reply("404 Not Found", "no such call in the journal\n"))
            waves = timeline.turn_waveforms(rec, audio_dir) if audio_dir else {}
            href = (call_href(rec.get("id")) + RECORDING_SUFFIX
                    if recording_file(journal, rec) is not None else None)
            page = timeline.render(rec, waves, state=records_view.state_of(rec),
                                   recording=href, play=True)
        else:
            return _send(start, method, text_reply("404 Not Found", "not found\n"))
        return _send(start, method, Reply("200 OK", [("Content-Type", "text/html; charset=utf-8")],
                                          page.encode("utf-8")))

    return serve


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        log.debug(format, *args)


def server(journal: Path, address: str = "127.0.0.1", port: int = DEFAULT_PORT,
           audio_dir: str | None = None, limit: int = 100, access_token: str | None = None
           ) -> WSGIServer:
    """The HTTP server, bound (port 0: a free one); ``serve_forever()`` runs it. Raises
    ``AccessError`` for another address than loopback without ``access_token``."""
    if access_token is not None and not TOKEN_SHAPE.fullmatch(access_token):
        raise AccessError(f"{TOKEN_ENV} must be at least 16 letters, digits or - . _ ~ "
                          "(e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))')")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET

    class _Server(WSGIServer):
        address_family = family

    srv = make_server(address, port, app(journal, audio_dir, limit, access_token), _Server,
                      handler_class=_QuietHandler)
    # the address actually bound decides (a host name, "" or 0.0.0.0 all end up as one)
    if access_token is None and not ipaddress.ip_address(srv.server_address[0]).is_loopback:
        srv.server_close()
        raise AccessError(f"{address or '(all addresses)'} is not a loopback address: the "
                          "pages show callers' numbers, words and messages, so serving them "
                          f"there needs an access token in {TOKEN_ENV}")
    return srv
