"""What a business's notifications reach in the tests: an HTTP webhook receiver on loopback
(it answers the status it is told and keeps what it accepted) and an SMTP mailbox (for
aiosmtpd's controller)."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from testbed.harness import free_tcp_port


class Receiver:
    """An HTTP server on loopback: answers ``status``; keeps what it accepted."""

    def __init__(self, port: int = 0) -> None:
        self.status = 200
        self.accepted: list[tuple[dict, bytes, dict]] = []  # (headers, body, parsed)
        self.refused = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with outer.lock:
                    status = outer.status
                    if status == 200:
                        outer.accepted.append((dict(self.headers), body, json.loads(body)))
                    else:
                        outer.refused += 1
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def keys(self) -> list[str]:
        with self.lock:
            return [h["Idempotency-Key"] for h, _, _ in self.accepted]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Mailbox:
    def __init__(self) -> None:
        self.envelopes: list = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's
        self.envelopes.append(envelope)
        return "250 OK"


@contextlib.contextmanager
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    """An SMTP server on a free loopback port (aiosmtpd's controller): (its mailbox, port)."""
    from aiosmtpd.controller import Controller

    box = Mailbox()
    port = free_tcp_port()
    ctl = Controller(box, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        yield box, port
    finally:
        ctl.stop()
