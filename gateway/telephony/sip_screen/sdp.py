"""RFC 4566 checks of a request's SDP body (also inside a multipart body), with the limits
PJMEDIA keeps (16 m-lines, 32 formats, 4 bandwidth lines) and PJLIB's host limit."""

from __future__ import annotations

import re

from gateway.telephony.sip_screen.headers import check_host, check_port
from gateway.telephony.sip_screen.message import (
    HEAD_END,
    MAX_BANDWIDTH,
    MAX_FORMATS,
    MAX_MEDIA,
    MAX_SDP_LINE,
    MAX_UINT32,
    TOKEN,
    Bad,
    Request,
    bad,
)


def check_body(req: Request) -> None:
    encoding = (req.first("content-encoding") or "identity").strip().lower()
    if encoding != "identity":
        raise bad(415, "Unsupported Media Type", "content_encoding",
                  f"Content-Encoding {encoding[:40]!r}", (("Accept-Encoding", "identity"),))
    ctype = (req.first("content-type") or "").strip()
    mime, _, params = ctype.partition(";")
    mime = mime.strip().lower()
    if mime == "application/sdp":
        check_sdp(req.body)
    elif mime.startswith("multipart/"):
        check_sdp(_sdp_part(req.body, params))
    elif req.method in ("INVITE", "UPDATE"):
        raise bad(415, "Unsupported Media Type", "content_type",
                  f"body of type {mime[:60]!r}", (("Accept", "application/sdp"),))


def _sdp_part(body: bytes, params: str) -> bytes:
    """The application/sdp part of a multipart body (RFC 5621), or a refusal."""
    m = re.search(r'boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))', params, re.I)
    if m is None:
        raise bad(400, "Bad Request", "multipart", "multipart body without a boundary")
    delim = b"--" + (m.group(1) or m.group(2)).encode("latin-1")
    if delim not in body:
        raise bad(400, "Bad Request", "multipart", "the boundary never occurs in the body")
    for part in body.split(delim)[1:]:
        if part.startswith(b"--"):
            break
        pm = HEAD_END.search(part)
        if pm is None:
            continue
        head = part[:pm.start()].decode("latin-1").lower()
        if re.search(r"^\s*content-type\s*:\s*application/sdp", head, re.M):
            return part[pm.end():]
    raise bad(415, "Unsupported Media Type", "content_type", "no application/sdp part",
              (("Accept", "application/sdp"),))


_SDP_LINE = re.compile(r"([a-z])=(.*)", re.S)


def check_sdp(body: bytes) -> None:
    """RFC 4566 lines with the field limits PJMEDIA and PJLIB keep; raises ``Bad``."""
    if b"\x00" in body:
        raise bad(400, "Bad Request", "sdp", "a NUL byte in the SDP")
    lines = [ln for ln in re.split(r"\r?\n", body.decode("latin-1")) if ln]
    if not lines or lines[0] != "v=0":
        raise bad(400, "Bad Request", "sdp", "SDP does not start with v=0")
    media = 0
    formats: list[str] = []
    bandwidth = 0
    seen: set[str] = set()  # session-level line kinds
    session_c, media_without_c = False, 0
    media_has_c = True
    for line in lines:
        if len(line) > MAX_SDP_LINE:
            raise bad(400, "Bad Request", "sdp_size", f"SDP line {line[:2]} of {len(line)} bytes")
        m = _SDP_LINE.fullmatch(line)
        if m is None:
            raise bad(400, "Bad Request", "sdp", f"SDP line {line[:60]!r}")
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
                raise bad(488, "Not Acceptable Here", "sdp_media",
                          f"more than {MAX_MEDIA} m= lines")
            formats = _sdp_media(value)
        elif kind == "b":
            bandwidth += 1
            if bandwidth > MAX_BANDWIDTH or not re.fullmatch(r"[\w\-]+:\d{1,10}", value):
                raise bad(400, "Bad Request", "sdp", f"SDP b={value[:40]!r}")
        elif kind == "t":
            if not re.fullmatch(r"\d{1,20}\s+\d{1,20}\s*", value):
                raise bad(400, "Bad Request", "sdp", f"SDP t={value[:40]!r}")
        elif kind == "a":
            _sdp_attribute(value, formats)
    if media == 0:
        raise bad(488, "Not Acceptable Here", "sdp_media", "no m= line")
    media_without_c += not media_has_c
    missing = [k for k in "ost" if k not in seen]
    if missing:  # RFC 4566 5: o=, s= and t= are mandatory
        raise bad(400, "Bad Request", "sdp", f"SDP without {', '.join(missing)}=")
    if media_without_c and not session_c:
        # RFC 4566 5.7; PJMEDIA copies the offer into its answer and asserts on the
        # result (sdp_neg.c create_answer: status==PJ_SUCCESS), aborting the process
        raise bad(400, "Bad Request", "sdp", "an m= line without c= and no session c=")


def _sdp_address(nettype: str, addrtype: str, address: str, what: str) -> None:
    if nettype != "IN" or addrtype not in ("IP4", "IP6"):
        raise bad(488, "Not Acceptable Here", "sdp_address",
                  f"{what} network {nettype[:20]!r} {addrtype[:20]!r}")
    host = address.split("/", 1)[0]  # a multicast address may carry /ttl
    if addrtype == "IP6" and ":" in host:
        host = f"[{host}]"
    try:
        check_host(host, what)
    except Bad as refused:
        raise bad(488, "Not Acceptable Here", "sdp_address", refused.refusal.detail) from None


def _sdp_origin(value: str) -> None:
    fields = value.split()
    if len(fields) != 6 or not all(f.isdigit() for f in fields[1:3]):
        raise bad(400, "Bad Request", "sdp", f"SDP o={value[:60]!r}")
    _sdp_address(fields[3], fields[4], fields[5], "SDP o=")


def _sdp_connection(value: str) -> None:
    fields = value.split()
    if len(fields) != 3:
        raise bad(400, "Bad Request", "sdp", f"SDP c={value[:60]!r}")
    _sdp_address(*fields, "SDP c=")


def _sdp_media(value: str) -> list[str]:
    fields = value.split()
    if len(fields) < 4:
        raise bad(400, "Bad Request", "sdp", f"SDP m={value[:60]!r}")
    port, _, count = fields[1].partition("/")
    check_port(port, "SDP m=", allow_zero=True)
    if count and (not count.isdigit() or len(count) > 3):
        raise bad(400, "Bad Request", "sdp", f"SDP m= port count {count[:20]!r}")
    formats = fields[3:]
    if len(formats) > MAX_FORMATS:
        raise bad(488, "Not Acceptable Here", "sdp_formats",
                  f"{len(formats)} formats on one m= line (PJMEDIA keeps {MAX_FORMATS})")
    if "RTP/" in fields[2].upper():
        for fmt in formats:
            if not fmt.isdigit() or int(fmt) > 127:
                raise bad(400, "Bad Request", "sdp", f"RTP payload type {fmt[:20]!r}")
    return formats


def _sdp_attribute(value: str, formats: list[str]) -> None:
    name, _, arg = value.partition(":")
    if not TOKEN.fullmatch(name):
        raise bad(400, "Bad Request", "sdp", f"SDP attribute {value[:40]!r}")
    if name == "rtpmap":
        # no clock rate ("31 LPC") breaks RFC 4566's grammar, yet RFC 4475 3.1.1.1 calls such
        # an offer valid: PJMEDIA skips the format, the other streams still negotiate
        m = re.fullmatch(r"(\d{1,3}) ([^/ ]{1,64})(?:/(\d{1,10})(?:/(\d{1,2}))?)?", arg.strip())
        if (m is None or int(m.group(1)) > 127
                or (m.group(3) is not None and not 0 < int(m.group(3)) <= MAX_UINT32)):
            raise bad(400, "Bad Request", "sdp", f"SDP rtpmap {arg[:60]!r}")
    elif name == "fmtp":
        pt = arg.split(" ", 1)[0]
        if not pt.isdigit() or int(pt) > 127:
            raise bad(400, "Bad Request", "sdp", f"SDP fmtp {arg[:60]!r}")
    elif name == "rtcp":
        # a=rtcp:port [nettype addrtype address] (RFC 3605): PJMEDIA resolves the address
        fields = arg.split()
        check_port(fields[0] if fields else "", "SDP a=rtcp", allow_zero=True)
        if len(fields) == 4:
            _sdp_address(fields[1], fields[2], fields[3], "SDP a=rtcp")
        elif len(fields) != 1:
            raise bad(400, "Bad Request", "sdp", f"SDP a=rtcp:{arg[:60]!r}")
    elif name in ("ptime", "maxptime") and (not arg.strip().isdigit() or len(arg.strip()) > 5):
        raise bad(400, "Bad Request", "sdp", f"SDP {name} {arg[:40]!r}")
