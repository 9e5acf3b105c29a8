"""The screen's limits and answers, and a request split into its parts (``parse``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_PACKET = 4000
"""PJSIP_MAX_PKT_LEN of the pjsua2 build: its UDP transport reads at most this many bytes of a
datagram (the ``packet`` field of ``pjsip_rx_data``); the rest is lost."""

MAX_HOST = 253
"""The longest host name or address PJLIB takes (``slen < PJ_MAX_HOSTNAME`` = 254 asserts)."""

MAX_MEDIA = 16  # PJMEDIA_MAX_SDP_MEDIA
MAX_FORMATS = 32  # PJMEDIA_MAX_SDP_FMT
MAX_BANDWIDTH = 4  # PJMEDIA_MAX_SDP_BANDW
MAX_SDP_LINE = 1024
"""Longer SDP lines than any real offer has (fmtp, crypto and candidate lines stay far below);
PJMEDIA's parser takes up to the packet length, and what it keeps it copies whole."""

MAX_UINT32 = 2**32 - 1
MAX_CSEQ = 2**31 - 1  # RFC 3261 8.1.1.5

KNOWN_METHODS = frozenset({
    "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "INFO", "UPDATE", "PRACK", "REFER",
    "NOTIFY", "SUBSCRIBE", "MESSAGE", "PUBLISH"})
"""Methods PJSIP or pjsua knows; any other method gets 501 Not Implemented (RFC 3261 8.2.1)."""

NOT_ALLOWED = frozenset({"REGISTER", "PUBLISH"})
"""Known methods a user agent that is no registrar or presence server refuses with 405."""

ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE, PRACK, REFER, NOTIFY, SUBSCRIBE, MESSAGE"

SUPPORTED = frozenset({"100rel", "replaces", "timer", "norefersub", "path"})
"""Option tags pjsua implements; a Require naming another one gets 420 (RFC 3261 8.2.2.3)."""

URI_SCHEMES = frozenset({"sip", "sips", "tel"})

SINGLE = ("call-id", "from", "to", "cseq", "max-forwards", "content-length", "content-type",
          "content-encoding", "expires", "min-expires", "session-expires", "min-se")
"""Headers a request may carry once (RFC 3261 7.3.1: no comma lists of these)."""

COMPACT = {"i": "call-id", "f": "from", "t": "to", "v": "via", "m": "contact",
           "l": "content-length", "c": "content-type", "e": "content-encoding",
           "k": "supported", "s": "subject", "x": "session-expires", "o": "event",
           "r": "refer-to", "b": "referred-by", "u": "allow-events"}

REASONS = ("nul_byte", "request_line", "method", "header", "content_length", "version",
           "duplicate_header", "cseq", "header_size", "host", "port", "uri", "uri_scheme",
           "uri_size", "via", "contact", "require", "number", "too_large", "content_encoding",
           "content_type", "multipart", "sdp", "sdp_size", "sdp_media", "sdp_address",
           "sdp_formats")
"""Every ``Refusal.label``: the metric's label values, all created at start."""

DIALOG_CREATING = frozenset({"INVITE", "SUBSCRIBE", "REFER"})
SDP_BEARING = frozenset({"INVITE", "UPDATE", "ACK", "PRACK"})


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str
    label: str  # the metric's reason label: a short fixed word, never request data
    detail: str = ""  # for the log (bounded, printable)
    headers: tuple[tuple[str, str], ...] = ()


class Bad(Exception):
    """A refusal found deep in a check (raised, caught in ``screen``)."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.detail)
        self.refusal = refusal


def bad(status: int, reason: str, label: str, detail: str,
        headers: tuple[tuple[str, str], ...] = ()) -> Bad:
    return Bad(Refusal(status, reason, label, printable(detail), headers))


def printable(text: str, limit: int = 200) -> str:
    out = "".join(ch if " " <= ch <= "~" else f"\\x{ord(ch):02x}" for ch in text[:limit])
    return out + ("..." if len(text) > limit else "")


@dataclass(frozen=True)
class Request:
    method: str
    uri: str
    version: str
    headers: tuple[tuple[str, str], ...]  # (lower-case long name, value), in order
    body: bytes
    declared_length: int | None  # Content-Length, None when absent

    def all(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n == name]

    def first(self, name: str) -> str | None:
        return next((v for n, v in self.headers if n == name), None)


TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_HEADER_NAME = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
HEAD_END = re.compile(rb"\r?\n\r?\n")


def parse(raw: bytes) -> Request:
    """Split a request into its parts; raises ``Bad`` for what is no SIP request."""
    raw = raw.lstrip(b"\r\n")  # RFC 3261 7.5: CRLFs before the start line are ignored
    m = HEAD_END.search(raw)
    head, body = (raw[:m.start()], raw[m.end():]) if m else (raw, b"")
    if b"\x00" in head:
        raise bad(400, "Bad Request", "nul_byte", "a NUL byte in the header")
    text = head.decode("latin-1")  # bytes as they are; names and numbers are ASCII
    lines = re.split(r"\r?\n", text)
    start = lines[0]
    parts = start.split(" ")
    if len(parts) != 3 or not all(parts):
        raise bad(400, "Bad Request", "request_line", f"malformed request line {start!r}")
    method, uri, version = parts
    if not TOKEN.fullmatch(method):
        raise bad(400, "Bad Request", "method", f"method {method!r} is no token")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):  # folded continuation of the previous header
            if not headers:
                raise bad(400, "Bad Request", "header", "a continuation line first")
            name, value = headers[-1]
            headers[-1] = (name, (value + " " + line.strip(" \t")).strip(" \t"))
            continue
        name, sep, value = line.partition(":")
        name = name.rstrip(" \t")
        if not sep or not _HEADER_NAME.fullmatch(name):
            raise bad(400, "Bad Request", "header", f"malformed header line {line[:80]!r}")
        lname = name.lower()
        headers.append((COMPACT.get(lname, lname), value.strip(" \t")))
    declared = None
    lengths = [v for n, v in headers if n == "content-length"]
    if lengths:
        if not lengths[0].isdigit() or len(lengths[0]) > 9:
            raise bad(400, "Bad Request", "content_length",
                      f"Content-Length {lengths[0]!r} is no length")
        declared = int(lengths[0])
    return Request(method, uri, version, tuple(headers), body, declared)
