"""A read-only web page of recent calls (``voicebot calls serve``): the list at ``/``, each call's
timeline page (gateway/timeline.py) at ``/calls/<id>``.

A separate command on loopback, not a path on the metrics listener: the pages show callers'
numbers and words, which have no place on a port that Prometheus (or anyone it lets in)
scrapes. The journal is read again at every request, so the list is always current; nothing is
ever written. Every field goes through ``clean_text`` and ``html.escape``; the pages load
nothing (a Content-Security-Policy forbids every fetch).
"""

from __future__ import annotations

import html
import logging
import socket
import urllib.parse
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from gateway import records, records_view, timeline

log = logging.getLogger(__name__)

DEFAULT_PORT = 9480
HEADERS = [("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'"),
           ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"),
           ("Cache-Control", "no-store")]
CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fff}
h1{font-size:1.3em}.note{color:#666;font-size:.9em}
table.calls{border-collapse:collapse}
table.calls th,table.calls td{border-bottom:1px solid #ddd;padding:.25em .7em;text-align:left;
vertical-align:top}
table.calls td.from{overflow-wrap:anywhere;max-width:30em}
"""

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def call_href(call_id: Any) -> str:
    """The URL path of a call's page: its id, percent-encoded whatever it holds."""
    return "/calls/" + urllib.parse.quote(str(call_id), safe="")


def list_page(recs: list[dict[str, Any]], journal: Path) -> str:
    """The recent calls, newest first; each id links to the call's timeline page."""
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
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>Recent calls</title><style>{CSS}</style></head><body>"
            "<h1>Recent calls</h1>"
            f'<p class="note">{len(recs)} call(s) from {html.escape(str(journal))}, newest '
            "first; an id opens the call's timeline.</p>"
            f"{table}</body></html>\n")


def _text_response(start: StartResponse, status: str, text: str) -> list[bytes]:
    body = text.encode("utf-8")
    start(status, [("Content-Type", "text/plain; charset=utf-8"),
                   ("Content-Length", str(len(body))), *HEADERS])
    return [body]


def app(journal: Path, audio_dir: str | None = None, limit: int = 100
        ) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """The WSGI application: GET (or HEAD) ``/`` and ``/calls/<id>``, nothing else."""

    def serve(environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            start("405 Method Not Allowed", [("Allow", "GET, HEAD"), *HEADERS])
            return [b""]
        path = environ.get("PATH_INFO", "/")
        folded = records.read(journal)
        if path in ("/", "/calls", "/calls/"):
            recs = folded.records()
            page = list_page(recs[-limit:] if limit > 0 else recs, journal)
        elif path.startswith("/calls/"):
            # PATH_INFO is already percent-decoded (as latin-1 bytes, per PEP 3333)
            cid = path[len("/calls/"):].encode("latin-1").decode("utf-8", "replace")
            rec = folded.calls.get(cid)
            if rec is None:
                return _text_response(start, "404 Not Found", "no such call in the journal\n")
            waves = timeline.turn_waveforms(rec, audio_dir) if audio_dir else {}
            page = timeline.render(rec, waves, state=records_view.state_of(rec))
        else:
            return _text_response(start, "404 Not Found", "not found\n")
        body = page.encode("utf-8")
        start("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                         ("Content-Length", str(len(body))), *HEADERS])
        return [b""] if method == "HEAD" else [body]

    return serve


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        log.debug(format, *args)


def server(journal: Path, address: str = "127.0.0.1", port: int = DEFAULT_PORT,
           audio_dir: str | None = None, limit: int = 100) -> WSGIServer:
    """The HTTP server, bound (port 0: a free one); ``serve_forever()`` runs it."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET

    class _Server(WSGIServer):
        address_family = family

    return make_server(address, port, app(journal, audio_dir, limit), _Server,
                       handler_class=_QuietHandler)
