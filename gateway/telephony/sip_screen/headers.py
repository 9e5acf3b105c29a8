"""RFC 3261 checks of a request's start line and headers, with the limits PJSIP and PJLIB keep
(a host of 254+ bytes aborts the process in pjlib)."""

from __future__ import annotations

import ipaddress
import re

from gateway.telephony.sip_screen.message import (
    MAX_CSEQ,
    MAX_HOST,
    MAX_PACKET,
    MAX_UINT32,
    SUPPORTED,
    URI_SCHEMES,
    Request,
    bad,
    printable,
)


def check_body_length(req: Request, truncated: bool) -> None:
    if truncated:
        raise bad(513, "Message Too Large", "too_large",
                  f"a datagram of {MAX_PACKET}+ bytes (PJSIP reads {MAX_PACKET})")
    if req.declared_length is None:
        return
    body = len(req.body)
    if req.declared_length > body:
        # RFC 3261 18.3: the datagram ends before the body does
        raise bad(400, "Bad Request", "content_length",
                  f"Content-Length {req.declared_length} but {body} body bytes")
    if (req.declared_length < body and req.first("content-type") is not None
            and req.body[req.declared_length:].strip(b"\r\n\t ")):
        # RFC 3261 18.3 says to discard the excess, but PJSIP's parser takes the rest of the
        # datagram for the body whenever there is a Content-Type (without one it reads no body,
        # so the excess is discarded as the RFC says)
        raise bad(400, "Bad Request", "content_length",
                  f"Content-Length {req.declared_length} but {body} body bytes")


_CSEQ = re.compile(r"(\d{1,10})[ \t]+(\S+)")


def check_cseq(req: Request) -> None:
    value = req.first("cseq") or ""
    m = _CSEQ.fullmatch(value)
    if m is None or int(m.group(1)) > MAX_CSEQ:
        raise bad(400, "Bad Request", "cseq", f"CSeq {value!r}")
    if m.group(2) != req.method:
        raise bad(400, "Bad Request", "cseq",
                  f"CSeq method {m.group(2)!r} on a {req.method} request")


def check_header_size(name: str, value: str) -> None:
    # PJSIP parses these into URIs whose host it may resolve (pj_sockaddr_init asserts on a
    # host of 254+ bytes); far longer than any real one, and every host in them is checked
    if len(value) > MAX_PACKET // 2:
        raise bad(400, "Bad Request", "header_size", f"{name} of {len(value)} bytes")


_URI = re.compile(r"([A-Za-z][A-Za-z0-9+\-.]*):(.*)", re.S)
_HOSTPORT = re.compile(r"(\[[^\]]*\]|[^:;?>\s]*)(?::([^;?>\s]*))?")
_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9\-_]*[A-Za-z0-9])?"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9\-_]*[A-Za-z0-9])?)*\.?")


def check_host(host: str, what: str) -> None:
    """A host as PJLIB takes it: an IPv4 or bracketed IPv6 literal, or a domain name."""
    if not host or len(host) > MAX_HOST:
        raise bad(400, "Bad Request", "host", f"{what} host of {len(host)} bytes")
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1] if host.endswith("]") else "x")
        except ValueError:
            raise bad(400, "Bad Request", "host", f"{what} host {host!r}") from None
        return
    if not _HOSTNAME.fullmatch(host):
        raise bad(400, "Bad Request", "host", f"{what} host {host!r}")
    if re.fullmatch(r"[\d.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise bad(400, "Bad Request", "host", f"{what} address {host!r}") from None


def check_port(port: str, what: str, allow_zero: bool = False) -> int:
    if not port.isdigit() or len(port) > 5 or not (0 if allow_zero else 1) <= int(port) <= 65535:
        raise bad(400, "Bad Request", "port", f"{what} port {port!r}")
    return int(port)


def _check_uri(uri: str, what: str, schemes: frozenset[str] = URI_SCHEMES) -> None:
    m = _URI.fullmatch(uri)
    if m is None:
        raise bad(400, "Bad Request", "uri", f"{what} {uri[:80]!r} is no URI")
    scheme, rest = m.group(1).lower(), m.group(2)
    if scheme not in schemes:
        raise bad(416, "Unsupported URI Scheme", "uri_scheme", f"{what} scheme {scheme!r}")
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


def check_request_uri(uri: str) -> None:
    if len(uri) > MAX_PACKET // 2:
        raise bad(414, "Request-URI Too Long", "uri_size", f"a Request-URI of {len(uri)} bytes")
    _check_uri(uri, "Request-URI")


def check_via(value: str) -> None:
    for via in _split_commas(value):
        m = re.fullmatch(r"SIP\s*/\s*2\.0\s*/\s*([A-Za-z0-9\-]+)\s+([^;]+)(;.*)?", via, re.I | re.S)
        if m is None:
            raise bad(400, "Bad Request", "via", f"Via {via[:80]!r}")
        hm = _HOSTPORT.fullmatch(m.group(2).strip())
        if hm is None:
            raise bad(400, "Bad Request", "via", f"Via sent-by {m.group(2)[:80]!r}")
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
        raise bad(400, "Bad Request", "uri", f"unbalanced <> in {value[:80]!r}")
    return value.split(";", 1)[0].strip()


def check_name_addr(name: str, value: str) -> None:
    _check_uri(_addr_uri(value), name.title())


def check_contact(req: Request) -> None:
    contacts = [c for v in req.all("contact") for c in _split_commas(v)]
    if req.method == "INVITE" and not contacts:
        return  # pjsua answers 400 itself (RFC 3261 8.1.1.8); REFER/SUBSCRIBE: same
    if len(contacts) > 1:
        raise bad(400, "Bad Request", "contact",
                  f"{len(contacts)} Contact URIs in a dialog-creating request")
    for contact in contacts:
        uri = _addr_uri(contact)
        _check_uri(uri, "Contact", frozenset({"sip", "sips"}))
        transport = re.search(r";\s*transport\s*=\s*([^;?>\s]*)", uri, re.I)
        if transport and transport.group(1).lower() != "udp" and not req.all("record-route"):
            # the gateway has a UDP transport only: pjsua cannot reach such a Contact and
            # answered 500; through a proxy (Record-Route) the route set decides instead
            raise bad(400, "Bad Request", "contact",
                      f"Contact transport {transport.group(1)[:20]!r}: this gateway speaks "
                      f"UDP (TCP and TLS end at the edge)")


def check_route_set(req: Request) -> None:
    """The dialog's route set (Route, Record-Route): PJSIP sends along it."""
    for name in ("route", "record-route"):
        for value in req.all(name):
            for hop in _split_commas(value):
                _check_uri(_addr_uri(hop), name.title(), frozenset({"sip", "sips"}))


def has_tag(value: str) -> bool:
    """Whether a From/To value carries a tag parameter (outside its <...> URI)."""
    outside = re.sub(r'"(?:[^"\\]|\\.)*"|<[^>]*>', "", value)
    return re.search(r";\s*tag\s*=", outside, re.I) is not None


def check_require(req: Request) -> None:
    tags = {t.strip().lower() for v in req.all("require") for t in v.split(",") if t.strip()}
    unknown = sorted(tags - SUPPORTED)
    if unknown:
        raise bad(420, "Bad Extension", "require", f"Require {', '.join(unknown)}",
                  (("Unsupported", ", ".join(printable(t, 64) for t in unknown[:16])),))


def check_numbers(req: Request) -> None:
    limits = {"max-forwards": 255, "expires": MAX_UINT32, "min-expires": MAX_UINT32,
              "min-se": MAX_UINT32}
    for name, limit in limits.items():
        value = req.first(name)
        if value is not None and (not value.isdigit() or len(value) > 10
                                  or int(value) > limit):
            raise bad(400, "Bad Request", "number", f"{name} {value[:40]!r}")
    se = req.first("session-expires")
    if se is not None:
        delta = se.split(";", 1)[0].strip()
        if not delta.isdigit() or len(delta) > 10 or int(delta) > MAX_UINT32:
            raise bad(400, "Bad Request", "number", f"Session-Expires {se[:40]!r}")
