"""The request screen: checks a SIP request's raw bytes before PJSIP's dialog and media code.

pjsua trusts what PJSIP's parser lets through, and some of it aborts the whole process: an SDP
``c=IN IP4`` address of 254 bytes or more reaches ``pj_sockaddr_in_set_str_addr``, whose
assertion ``str_addr->slen < PJ_MAX_HOSTNAME`` (254) kills every call of the worker. The same
helper resolves the ``a=rtcp`` address, so every address-bearing field is held to that limit.
Other deviations are answered loosely by pjsua (500 for a CSeq whose method is another one,
200 for a Content-Length beyond the datagram, nothing at all for a REGISTER).

So ``screen()`` reads the request as it came off the wire (bytes, any encoding) and returns a
``Refusal`` (status, reason phrase, extra headers, a metric label, a detail for the log), or
``None`` to let PJSIP go on. Pure: no I/O, no pjsua. ``gateway/telephony/admission.py`` runs
it from a PJSIP module below the transaction layer, so in-dialog requests (a re-INVITE's SDP) are
screened too, and answers statelessly.

The checks follow RFC 3261 (request line, mandatory and single-valued headers, CSeq,
Content-Length on UDP, Contact of a dialog-creating request, Require, URI schemes) and
RFC 4566 (SDP lines and their fields), with the limits PJSIP and PJMEDIA keep:
``PJSIP_MAX_PKT_LEN`` (4000: a longer datagram is cut, so it cannot be read whole: 513),
``PJMEDIA_MAX_SDP_MEDIA`` (16), ``PJMEDIA_MAX_SDP_FMT`` (32), ``PJMEDIA_MAX_SDP_BANDW`` (4).
"""

from __future__ import annotations

from gateway.telephony.sip_screen import headers as h
from gateway.telephony.sip_screen.headers import has_tag
from gateway.telephony.sip_screen.message import (
    ALLOW,
    DIALOG_CREATING,
    KNOWN_METHODS,
    MAX_PACKET,
    NOT_ALLOWED,
    REASONS,
    SDP_BEARING,
    SINGLE,
    Bad,
    Refusal,
    Request,
    bad,
    parse,
    printable,
)
from gateway.telephony.sip_screen.response import stateless_response
from gateway.telephony.sip_screen.sdp import check_body

__all__ = ["MAX_PACKET", "REASONS", "Bad", "Refusal", "has_tag", "parse", "printable", "screen",
           "stateless_response"]


def screen(raw: bytes, truncated: bool = False) -> Refusal | None:
    """Why this request must be refused before pjsua sees it, or None.

    ``truncated``: the datagram filled PJSIP's whole packet buffer, so what it read may be
    the first ``MAX_PACKET`` bytes of something longer.
    """
    try:
        req = parse(raw)
        check_request(req, truncated)
    except Bad as refused:
        return refused.refusal
    return None


def check_request(req: Request, truncated: bool) -> None:
    if req.version.upper() != "SIP/2.0":
        raise bad(505, "Version Not Supported", "version", f"version {req.version!r}")
    if req.method not in KNOWN_METHODS:
        raise bad(501, "Not Implemented", "method", f"method {req.method!r}")
    h.check_body_length(req, truncated)
    for name in SINGLE:
        if len(req.all(name)) > 1:
            raise bad(400, "Bad Request", "duplicate_header", f"{name} given twice")
    h.check_cseq(req)
    h.check_request_uri(req.uri)
    for name in ("via", "contact", "route", "record-route"):
        for value in req.all(name):
            h.check_header_size(name, value)
    for value in req.all("via"):
        h.check_via(value)
    for name in ("from", "to"):
        h.check_name_addr(name, req.first(name) or "")
    h.check_route_set(req)
    h.check_numbers(req)
    if req.method in NOT_ALLOWED:
        raise bad(405, "Method Not Allowed", "method", f"{req.method} to a user agent",
                  (("Allow", ALLOW),))
    if req.method in ("ACK", "CANCEL"):
        return  # never answered with a refusal of their own options
    if req.method in DIALOG_CREATING:
        h.check_contact(req)
    h.check_require(req)
    if req.method in SDP_BEARING and req.body.strip():
        check_body(req)
