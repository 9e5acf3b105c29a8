"""The request screen: checks a SIP request's raw bytes before PJSIP's dialog and media code.

pjsua trusts what PJSIP's parser lets through, and some of it aborts the whole process: an SDP
``c=IN IP4`` address of 254 bytes or more reaches ``pj_sockaddr_in_set_str_addr``, whose
assertion ``str_addr->slen < PJ_MAX_HOSTNAME`` (254) kills every call of the worker. The same
helper resolves the ``a=rtcp`` address, so every address-bearing field is held to that limit.
Other deviations are answered loosely by pjsua (500 for a CSeq whose method is another one,
200 for a Content-Length beyond the datagram, nothing at all for a REGISTER).

So ``screen()`` reads the request as it came off the wire (bytes, any encoding) and returns a
``Refusal`` (status, reason phrase, extra headers, a metric label, a detail for the log), or
``None`` to let PJSIP go on. Pure: no I/O, no pjsua. ``gateway/admission.py`` runs it from a
PJSIP module below the transaction layer, so in-dialog requests (a re-INVITE's SDP) are
screened too, and answers statelessly.

The checks follow RFC 3261 (request line, mandatory and single-valued headers, CSeq,
Content-Length on UDP, Contact of a dialog-creating request, Require, URI schemes) and
RFC 4566 (SDP lines and their fields), with the limits PJSIP and PJMEDIA keep:
``PJSIP_MAX_PKT_LEN`` (4000: a longer datagram is cut, so it cannot be read whole: 513),
``PJMEDIA_MAX_SDP_MEDIA`` (16), ``PJMEDIA_MAX_SDP_FMT`` (32), ``PJMEDIA_MAX_SDP_BANDW`` (4).
"""

from __future__ import annotations

import ipaddress
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


def _bad(status: int, reason: str, label: str, detail: str,
         headers: tuple[tuple[str, str], ...] = ()) -> Bad:
    return Bad(Refusal(status, reason, label, _printable(detail), headers))


def _printable(text: str, limit: int = 200) -> str:
    out = "".join(ch if " " <= ch <= "~" else f"\\x{ord(ch):02x}" for ch in text[:limit])
    return out + ("..." if len(text) > limit else "")


# --------------------------------------------------------------------------- the message


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


_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_HEADER_NAME = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_HEAD_END = re.compile(rb"\r?\n\r?\n")


def parse(raw: bytes) -> Request:
    """Split a request into its parts; raises ``Bad`` for what is no SIP request."""
    raw = raw.lstrip(b"\r\n")  # RFC 3261 7.5: CRLFs before the start line are ignored
    m = _HEAD_END.search(raw)
    head, body = (raw[:m.start()], raw[m.end():]) if m else (raw, b"")
    if b"\x00" in head:
        raise _bad(400, "Bad Request", "nul_byte", "a NUL byte in the header")
    text = head.decode("latin-1")  # bytes as they are; names and numbers are ASCII
    lines = re.split(r"\r?\n", text)
    start = lines[0]
    parts = start.split(" ")
    if len(parts) != 3 or not all(parts):
        raise _bad(400, "Bad Request", "request_line", f"malformed request line {start!r}")
    method, uri, version = parts
    if not _TOKEN.fullmatch(method):
        raise _bad(400, "Bad Request", "method", f"method {method!r} is no token")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):  # folded continuation of the previous header
            if not headers:
                raise _bad(400, "Bad Request", "header", "a continuation line first")
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")
            continue
        name, sep, value = line.partition(":")
        name = name.rstrip(" \t")
        if not sep or not _HEADER_NAME.fullmatch(name):
            raise _bad(400, "Bad Request", "header", f"malformed header line {line[:80]!r}")
        lname = name.lower()
        headers.append((COMPACT.get(lname, lname), value.strip(" \t")))
    declared = None
    lengths = [v for n, v in headers if n == "content-length"]
    if lengths:
        if not lengths[0].isdigit() or len(lengths[0]) > 9:
            raise _bad(400, "Bad Request", "content_length",
                       f"Content-Length {lengths[0]!r} is no length")
        declared = int(lengths[0])
    return Request(method, uri, version, tuple(headers), body, declared)


def has_tag(value: str) -> bool:
    """Whether a From/To value carries a tag parameter (outside its <...> URI)."""
    outside = re.sub(r'"(?:[^"\\]|\\.)*"|<[^>]*>', "", value)
    return re.search(r";\s*tag\s*=", outside, re.I) is not None


# --------------------------------------------------------------------------- the checks


def screen(raw: bytes, truncated: bool = False) -> Refusal | None:
    """Why this request must be refused before pjsua sees it, or None.

    ``truncated``: the datagram filled PJSIP's whole packet buffer, so what it read may be
    the first ``MAX_PACKET`` bytes of something longer.
    """
    try:
        req = parse(raw)
        _check_request(req, truncated)
    except Bad as bad:
        return bad.refusal
    return None


def _check_request(req: Request, truncated: bool) -> None:
    if req.version.upper() != "SIP/2.0":
        raise _bad(505, "Version Not Supported", "version", f"version {req.version!r}")
    if req.method not in KNOWN_METHODS:
        raise _bad(501, "Not Implemented", "method", f"method {req.method!r}")
    _check_body_length(req, truncated)
    for name in SINGLE:
        if len(req.all(name)) > 1:
            raise _bad(400, "Bad Request", "duplicate_header", f"{name} given twice")
    _check_cseq(req)
    _check_request_uri(req.uri)
    for name in ("via", "contact", "route", "record-route"):
        for value in req.all(name):
            _check_header_size(name, value)
    for value in req.all("via"):
        _check_via(value)
    for name in ("from", "to"):
        _check_name_addr(name, req.first(name) or "")
    for name in ("route", "record-route"):  # the dialog's route set: PJSIP sends along it
        for value in req.all(name):
            for hop in _split_commas(value):
                _check_uri(_addr_uri(hop), name.title(), frozenset({"sip", "sips"}))
    _check_numbers(req)
    if req.method in NOT_ALLOWED:
        raise _bad(405, "Method Not Allowed", "method", f"{req.method} to a user agent",
                   (("Allow", ALLOW),))
    if req.method in ("ACK", "CANCEL"):
        return  # never answered with a refusal of their own options
    if req.method in DIALOG_CREATING:
        _check_contact(req)
    _check_require(req)
    if req.method in SDP_BEARING and req.body.strip():
        _check_body(req)


def _check_body_length(req: Request, truncated: bool) -> None:
    if truncated:
        raise _bad(513, "Message Too Large", "too_large",
                   f"a datagram of {MAX_PACKET}+ bytes (PJSIP reads {MAX_PACKET})")
    if req.declared_length is None:
        return
    body = len(req.body)
    if req.declared_length > body:
        # RFC 3261 18.3: the datagram ends before the body does
        raise _bad(400, "Bad Request", "content_length",
                   f"Content-Length {req.declared_length} but {body} body bytes")
    if req.declared_length < body and req.body[req.declared_length:].strip(b"\r\n\t "):
        # RFC 3261 18.3 says to discard the excess, but pjsua would read the whole datagram
        raise _bad(400, "Bad Request", "content_length",
                   f"Content-Length {req.declared_length} but {body} body bytes")


_CSEQ = re.compile(r"(\d{1,10})[ \t]+(\S+)")


def _check_cseq(req: Request) -> None:
    value = req.first("cseq") or ""
    m = _CSEQ.fullmatch(value)
    if m is None or int(m.group(1)) > MAX_CSEQ:
        raise _bad(400, "Bad Request", "cseq", f"CSeq {value!r}")
    if m.group(2) != req.method:
        raise _bad(400, "Bad Request", "cseq",
                   f"CSeq method {m.group(2)!r} on a {req.method} request")


def _check_header_size(name: str, value: str) -> None:
    # PJSIP parses these into URIs whose host it may resolve (pj_sockaddr_init asserts on a
    # host of 254+ bytes); far longer than any real one, and every host in them is checked
    if len(value) > MAX_PACKET // 2:
        raise _bad(400, "Bad Request", "header_size", f"{name} of {len(value)} bytes")


_URI = re.compile(r"([A-Za-z][A-Za-z0-9+\-.]*):(.*)", re.S)
_HOSTPORT = re.compile(r"(\[[^\]]*\]|[^:;?>\s]*)(?::([^;?>\s]*))?")
_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9\-_]*[A-Za-z0-9])?"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9\-_]*[A-Za-z0-9])?)*\.?")


def check_host(host: str, what: str) -> None:
    """A host as PJLIB takes it: an IPv4 or bracketed IPv6 literal, or a domain name."""
    if not host or len(host) > MAX_HOST:
        raise _bad(400, "Bad Request", "host", f"{what} host of {len(host)} bytes")
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1] if host.endswith("]") else "x")
        except ValueError:
            raise _bad(400, "Bad Request", "host", f"{what} host {host!r}") from None
        return
    if not _HOSTNAME.fullmatch(host):
        raise _bad(400, "Bad Request", "host", f"{what} host {host!r}")
    if re.fullmatch(r"[\d.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise _bad(400, "Bad Request", "host", f"{what} address {host!r}") from None


def check_port(port: str, what: str, allow_zero: bool = False) -> int:
    if not port.isdigit() or len(port) > 5 or not (0 if allow_zero else 1) <= int(port) <= 65535:
        raise _bad(400, "Bad Request", "port", f"{what} port {port!r}")
    return int(port)


def _check_uri(uri: str, what: str, schemes: frozenset[str] = URI_SCHEMES) -> None:
    m = _URI.fullmatch(uri)
    if m is None:
        raise _bad(400, "Bad Request", "uri", f"{what} {uri[:80]!r} is no URI")
    scheme, rest = m.group(1).lower(), m.group(2)
    if scheme not in schemes:
        raise _bad(416, "Unsupported URI Scheme", "uri_scheme", f"{what} scheme {scheme!r}")
    if scheme == "tel":
        return
    hostport = rest.split("@", 1)[1] if "@" in rest else rest  # no '@' in user or params
    hm = _HOSTPORT.match(hostport)
    assert hm is not None  # every string matches (both groups may be empty)
    check_host(hm.group(1), what)
    if hm.group(2) is not None:
        check_port(hm.group(2), what)
    _check_host_params(rest, what)


_HOST_PARAM = re.compile(r";\s*(maddr|received)\s*=\s*([^;?>\s,]*)", re.I)


def _check_host_params(text: str, what: str) -> None:
    """``maddr`` and ``received`` parameters name hosts PJSIP may send to: same limit."""
    for m in _HOST_PARAM.finditer(text):
        host = m.group(2)
        if ":" in host and not host.startswith("["):  # an IPv6 received= comes bare
            host = f"[{host}]"
        check_host(host, f"{what} {m.group(1).lower()}")


def _check_request_uri(uri: str) -> None:
    if len(uri) > MAX_PACKET // 2:
        raise _bad(414, "Request-URI Too Long", "uri_size", f"a Request-URI of {len(uri)} bytes")
    _check_uri(uri, "Request-URI")


def _check_via(value: str) -> None:
    for via in _split_commas(value):
        m = re.fullmatch(r"SIP\s*/\s*2\.0\s*/\s*([A-Za-z0-9\-]+)\s+([^;]+)(;.*)?", via, re.I | re.S)
        if m is None:
            raise _bad(400, "Bad Request", "via", f"Via {via[:80]!r}")
        hm = _HOSTPORT.fullmatch(m.group(2).strip())
        if hm is None:
            raise _bad(400, "Bad Request", "via", f"Via sent-by {m.group(2)[:80]!r}")
        check_host(hm.group(1), "Via sent-by")
        if hm.group(2) is not None:
            check_port(hm.group(2), "Via sent-by")
        _check_host_params(m.group(3) or "", "Via")


def _split_commas(value: str) -> list[str]:
    """A header's comma-separated values, commas inside quotes and <...> left alone."""
    out, cur, quoted, angle, escaped = [], [], False, False, False
    for ch in value:
        if escaped:
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"' and not angle:
            quoted = not quoted
        elif not quoted and ch in "<>":
            angle = ch == "<"
        elif ch == "," and not quoted and not angle:
            out.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    out.append("".join(cur).strip())
    return [v for v in out if v]


_NAME_ADDR = re.compile(r'\s*(?:"(?:[^"\\]|\\.)*"|[^<"]*)\s*<([^>]*)>(.*)', re.S)


def _addr_uri(value: str) -> str:
    """The URI of a name-addr or addr-spec (RFC 3261 20.10: an addr-spec ends at ';')."""
    m = _NAME_ADDR.fullmatch(value)
    if m is not None:
        return m.group(1).strip()
    if "<" in value or ">" in value:
        raise _bad(400, "Bad Request", "uri", f"unbalanced <> in {value[:80]!r}")
    return value.split(";", 1)[0].strip()


def _check_name_addr(name: str, value: str) -> None:
    _check_uri(_addr_uri(value), name.title())


def _check_contact(req: Request) -> None:
    contacts = [c for v in req.all("contact") for c in _split_commas(v)]
    if req.method == "INVITE" and not contacts:
        return  # pjsua answers 400 itself (RFC 3261 8.1.1.8); REFER/SUBSCRIBE: same
    if len(contacts) > 1:
        raise _bad(400, "Bad Request", "contact",
                   f"{len(contacts)} Contact URIs in a dialog-creating request")
    for contact in contacts:
        uri = _addr_uri(contact)
        _check_uri(uri, "Contact", frozenset({"sip", "sips"}))
        transport = re.search(r";\s*transport\s*=\s*([^;?>\s]*)", uri, re.I)
        if transport and transport.group(1).lower() != "udp" and not req.all("record-route"):
            # the gateway has a UDP transport only: pjsua cannot reach such a Contact and
            # answered 500; through a proxy (Record-Route) the route set decides instead
            raise _bad(400, "Bad Request", "contact",
                       f"Contact transport {transport.group(1)[:20]!r}: this gateway speaks "
                       f"UDP (TCP and TLS end at the edge)")


def _check_require(req: Request) -> None:
    tags = {t.strip().lower() for v in req.all("require") for t in v.split(",") if t.strip()}
    unknown = sorted(tags - SUPPORTED)
    if unknown:
        raise _bad(420, "Bad Extension", "require", f"Require {', '.join(unknown)}",
                   (("Unsupported", ", ".join(_printable(t, 64) for t in unknown[:16])),))


def _check_numbers(req: Request) -> None:
    limits = {"max-forwards": 255, "expires": MAX_UINT32, "min-expires": MAX_UINT32,
              "min-se": MAX_UINT32}
    for name, limit in limits.items():
        value = req.first(name)
        if value is not None and (not value.isdigit() or len(value) > 10
                                  or int(value) > limit):
            raise _bad(400, "Bad Request", "number", f"{name} {value[:40]!r}")
    se = req.first("session-expires")
    if se is not None:
        delta = se.split(";", 1)[0].strip()
        if not delta.isdigit() or len(delta) > 10 or int(delta) > MAX_UINT32:
            raise _bad(400, "Bad Request", "number", f"Session-Expires {se[:40]!r}")


# --------------------------------------------------------------------------- the body


def _check_body(req: Request) -> None:
    encoding = (req.first("content-encoding") or "identity").strip().lower()
    if encoding != "identity":
        raise _bad(415, "Unsupported Media Type", "content_encoding",
                   f"Content-Encoding {encoding[:40]!r}", (("Accept-Encoding", "identity"),))
    ctype = (req.first("content-type") or "").strip()
    mime, _, params = ctype.partition(";")
    mime = mime.strip().lower()
    if mime == "application/sdp":
        check_sdp(req.body)
    elif mime.startswith("multipart/"):
        check_sdp(_sdp_part(req.body, params))
    elif req.method in ("INVITE", "UPDATE"):
        raise _bad(415, "Unsupported Media Type", "content_type",
                   f"body of type {mime[:60]!r}", (("Accept", "application/sdp"),))


def _sdp_part(body: bytes, params: str) -> bytes:
    """The application/sdp part of a multipart body (RFC 5621), or a refusal."""
    m = re.search(r'boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))', params, re.I)
    if m is None:
        raise _bad(400, "Bad Request", "multipart", "multipart body without a boundary")
    delim = b"--" + (m.group(1) or m.group(2)).encode("latin-1")
    if delim not in body:
        raise _bad(400, "Bad Request", "multipart", "the boundary never occurs in the body")
    for part in body.split(delim)[1:]:
        if part.startswith(b"--"):
            break
        pm = _HEAD_END.search(part)
        if pm is None:
            continue
        head = part[:pm.start()].decode("latin-1").lower()
        if re.search(r"^\s*content-type\s*:\s*application/sdp", head, re.M):
            return part[pm.end():]
    raise _bad(415, "Unsupported Media Type", "content_type", "no application/sdp part",
               (("Accept", "application/sdp"),))


_SDP_LINE = re.compile(r"([a-z])=(.*)", re.S)


def check_sdp(body: bytes) -> None:
    """RFC 4566 lines with the field limits PJMEDIA and PJLIB keep; raises ``Bad``."""
    if b"\x00" in body:
        raise _bad(400, "Bad Request", "sdp", "a NUL byte in the SDP")
    lines = [ln for ln in re.split(r"\r?\n", body.decode("latin-1")) if ln]
    if not lines or lines[0] != "v=0":
        raise _bad(400, "Bad Request", "sdp", "SDP does not start with v=0")
    media = 0
    formats: list[str] = []
    bandwidth = 0
    seen: set[str] = set()  # session-level line kinds
    session_c, media_without_c = False, 0
    media_has_c = True
    for line in lines:
        if len(line) > MAX_SDP_LINE:
            raise _bad(400, "Bad Request", "sdp_size", f"SDP line {line[:2]} of {len(line)} bytes")
        m = _SDP_LINE.fullmatch(line)
        if m is None:
            raise _bad(400, "Bad Request", "sdp", f"SDP line {line[:60]!r}")
        kind, value = m.groups()
        if not media:
            seen.add(kind)
        if kind == "o":
            _sdp_origin(value)
        elif kind == "c":
            _sdp_connection(value)
            session_c = session_c or not media
            media_has_c = True
        elif kind == "m":
            media_without_c += not media_has_c
            media += 1
            media_has_c = False
            bandwidth = 0
            if media > MAX_MEDIA:
                raise _bad(488, "Not Acceptable Here", "sdp_media",
                           f"more than {MAX_MEDIA} m= lines")
            formats = _sdp_media(value)
        elif kind == "b":
            bandwidth += 1
            if bandwidth > MAX_BANDWIDTH or not re.fullmatch(r"[\w\-]+:\d{1,10}", value):
                raise _bad(400, "Bad Request", "sdp", f"SDP b={value[:40]!r}")
        elif kind == "t":
            if not re.fullmatch(r"\d{1,20}\s+\d{1,20}\s*", value):
                raise _bad(400, "Bad Request", "sdp", f"SDP t={value[:40]!r}")
        elif kind == "a":
            _sdp_attribute(value, formats)
    if media == 0:
        raise _bad(488, "Not Acceptable Here", "sdp_media", "no m= line")
    media_without_c += not media_has_c
    missing = [k for k in "ost" if k not in seen]
    if missing:  # RFC 4566 5: o=, s= and t= are mandatory
        raise _bad(400, "Bad Request", "sdp", f"SDP without {', '.join(missing)}=")
    if media_without_c and not session_c:
        # RFC 4566 5.7; PJMEDIA copies the offer into its answer and asserts on the
        # result (sdp_neg.c create_answer: status==PJ_SUCCESS), aborting the process
        raise _bad(400, "Bad Request", "sdp", "an m= line without c= and no session c=")


def _sdp_address(nettype: str, addrtype: str, address: str, what: str) -> None:
    if nettype != "IN" or addrtype not in ("IP4", "IP6"):
        raise _bad(488, "Not Acceptable Here", "sdp_address",
                   f"{what} network {nettype[:20]!r} {addrtype[:20]!r}")
    host = address.split("/", 1)[0]  # a multicast address may carry /ttl
    if addrtype == "IP6" and ":" in host:
        host = f"[{host}]"
    try:
        check_host(host, what)
    except Bad as bad:
        raise _bad(488, "Not Acceptable Here", "sdp_address", bad.refusal.detail) from None


def _sdp_origin(value: str) -> None:
    fields = value.split()
    if len(fields) != 6 or not all(f.isdigit() for f in fields[1:3]):
        raise _bad(400, "Bad Request", "sdp", f"SDP o={value[:60]!r}")
    _sdp_address(fields[3], fields[4], fields[5], "SDP o=")


def _sdp_connection(value: str) -> None:
    fields = value.split()
    if len(fields) != 3:
        raise _bad(400, "Bad Request", "sdp", f"SDP c={value[:60]!r}")
    _sdp_address(*fields, "SDP c=")


def _sdp_media(value: str) -> list[str]:
    fields = value.split()
    if len(fields) < 4:
        raise _bad(400, "Bad Request", "sdp", f"SDP m={value[:60]!r}")
    port, _, count = fields[1].partition("/")
    check_port(port, "SDP m=", allow_zero=True)
    if count and (not count.isdigit() or len(count) > 3):
        raise _bad(400, "Bad Request", "sdp", f"SDP m= port count {count[:20]!r}")
    formats = fields[3:]
    if len(formats) > MAX_FORMATS:
        raise _bad(488, "Not Acceptable Here", "sdp_formats",
                   f"{len(formats)} formats on one m= line (PJMEDIA keeps {MAX_FORMATS})")
    if "RTP/" in fields[2].upper():
        for fmt in formats:
            if not fmt.isdigit() or int(fmt) > 127:
                raise _bad(400, "Bad Request", "sdp", f"RTP payload type {fmt[:20]!r}")
    return formats


def _sdp_attribute(value: str, formats: list[str]) -> None:
    name, _, arg = value.partition(":")
    if not _TOKEN.fullmatch(name):
        raise _bad(400, "Bad Request", "sdp", f"SDP attribute {value[:40]!r}")
    if name == "rtpmap":
        m = re.fullmatch(r"(\d{1,3}) ([^/ ]{1,64})/(\d{1,10})(?:/(\d{1,2}))?", arg.strip())
        if m is None or int(m.group(1)) > 127 or not 0 < int(m.group(3)) <= MAX_UINT32:
            raise _bad(400, "Bad Request", "sdp", f"SDP rtpmap {arg[:60]!r}")
    elif name == "fmtp":
        pt = arg.split(" ", 1)[0]
        if not pt.isdigit() or int(pt) > 127:
            raise _bad(400, "Bad Request", "sdp", f"SDP fmtp {arg[:60]!r}")
    elif name == "rtcp":
        # a=rtcp:port [nettype addrtype address] (RFC 3605): PJMEDIA resolves the address
        fields = arg.split()
        check_port(fields[0] if fields else "", "SDP a=rtcp", allow_zero=True)
        if len(fields) == 4:
            _sdp_address(fields[1], fields[2], fields[3], "SDP a=rtcp")
        elif len(fields) != 1:
            raise _bad(400, "Bad Request", "sdp", f"SDP a=rtcp:{arg[:60]!r}")
    elif name in ("ptime", "maxptime") and (not arg.strip().isdigit() or len(arg.strip()) > 5):
        raise _bad(400, "Bad Request", "sdp", f"SDP {name} {arg[:40]!r}")
