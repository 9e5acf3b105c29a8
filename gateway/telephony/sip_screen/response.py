"""A stateless answer written from a request's own text (RFC 3261 8.2.6), for what PJSIP's parser
drops before any module sees it: a Request-URI of a scheme PJSIP has no parser for (RFC 4475
3.3.2 and 3.3.3 expect 416), a datagram cut at PJSIP's packet size (513). Pure: the caller
sends the bytes."""

from __future__ import annotations

from gateway.telephony.sip_screen.headers import has_tag
from gateway.telephony.sip_screen.message import Refusal, Request

_COPIED = ("via", "from", "to", "call-id", "cseq")
_NAMES = {"via": "Via", "from": "From", "to": "To", "call-id": "Call-ID", "cseq": "CSeq"}


def stateless_response(req: Request, refusal: Refusal, to_tag: str) -> bytes | None:
    """The refusal as a response to ``req``: its Via headers (all, in order), From, To (with
    ``to_tag`` added when it has none), Call-ID and CSeq copied, the refusal's headers, no body.
    None when there is nothing to answer: an ACK, or a request without the headers a response
    is matched by (RFC 3261 8.1.3.3: the client would drop it)."""
    if req.method == "ACK":
        return None
    values = {name: req.all(name) for name in _COPIED}
    if any(not v or not v[0].strip() for v in values.values()):
        return None
    lines = [f"SIP/2.0 {refusal.status} {refusal.reason}"]
    for name in _COPIED:
        for value in values[name] if name == "via" else values[name][:1]:
            if name == "to" and not has_tag(value):
                value = f"{value};tag={to_tag}"
            lines.append(f"{_NAMES[name]}: {value.replace(chr(13), ' ')}")
    lines += [f"{name}: {value}" for name, value in refusal.headers]
    lines.append("Content-Length: 0")
    # the request's own bytes go back as they came (latin-1 round-trips them), but for a lone
    # CR (``parse`` splits lines at LF): a receiver could take it for a line end
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
