"""A raw-UDP prober for hostile SIP input: send one datagram to a SIP peer, read what comes
back, ACK and hang up a call it accepts, then check the peer still answers OPTIONS.

Used by the hostile corpus (``tests/e2e/test_reliability.py``, ``tests/e2e/test_edge.py``) and by
the PROTOS c07-sip suite (``testbed/protos.py``: ``tests/e2e/test_protos.py``, ``bench/protos.py``).

Messages are read as ``surrogateescape`` text and the in-dialog requests built from them are
sent with the same error handler, so From, To and Call-ID holding non-UTF-8 bytes are echoed
byte for byte (an ACK with U+FFFD in place of those bytes would not match the dialog).
"""

from __future__ import annotations

import contextlib
import re
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from testbed.sipp_harness import SipMessage

MAX_DATAGRAM = 65507
"""The largest UDP payload over IPv4; a longer message cannot be sent as one datagram."""

Build = Callable[[dict], bytes]
"""Makes the message to send from the probe's context (``host port lport branch tag callid
rtp``: the peer, the probe's own socket, fresh identifiers, where the RTP goes)."""


def received(data: bytes) -> SipMessage:
    return SipMessage("received", data.decode("utf-8", "surrogateescape"))


def _wire(lines: list[str]) -> bytes:
    return "\r\n".join(lines).encode("utf-8", "surrogateescape")


def _send_request(sock: socket.socket, port: int, method: str, resp: SipMessage, cseq: int,
                  uri: str) -> None:
    lport = sock.getsockname()[1]
    # through a proxy (the edge), in-dialog requests follow the 2xx's Record-Route, reversed
    rr = [v.strip() for v in ",".join(resp.headers("Record-Route")).split(",") if v.strip()]
    lines = [f"{method} {uri} SIP/2.0",
             f"Via: SIP/2.0/UDP 127.0.0.1:{lport};branch=z9hG4bK-{uuid.uuid4().hex[:16]}",
             *([f"Route: {', '.join(reversed(rr))}"] if rr else []),
             f"From: {resp.header('From')}", f"To: {resp.header('To')}",
             f"Call-ID: {resp.header('Call-ID')}", f"CSeq: {cseq} {method}",
             "Max-Forwards: 70", "Content-Length: 0", "", ""]
    sock.sendto(_wire(lines), ("127.0.0.1", port))


def _remote_target(resp: SipMessage, port: int) -> str:
    """The Request-URI of in-dialog requests: the 2xx's Contact (RFC 3261 12.1.2); through
    the edge, the gateway's own address, which the edge's Record-Route leads to."""
    m = re.search(r"<([^>]+)>", resp.header("Contact") or "")
    return m.group(1) if m else f"sip:bot@127.0.0.1:{port}"


def _cseq_number(msg: SipMessage) -> int:
    m = re.match(r"\d+", msg.header("CSeq") or "")
    return int(m.group(0)) if m else 1


def ack_and_bye(sock: socket.socket, port: int, ok: SipMessage) -> float:
    """ACK a 2xx to an INVITE and hang up at once; returns when the BYE left."""
    cseq = _cseq_number(ok)
    target = _remote_target(ok, port)
    _send_request(sock, port, "ACK", ok, cseq, target)
    _send_request(sock, port, "BYE", ok, cseq + 1, target)
    return time.monotonic()


def answer_request(sock: socket.socket, addr: tuple[str, int], req: SipMessage) -> None:
    resp = ["SIP/2.0 200 OK"] + [f"{h}: {req.header(h)}" for h in
                                 ("Via", "From", "To", "Call-ID", "CSeq")]
    sock.sendto(_wire([*resp, "Content-Length: 0", "", ""]), addr)


def ack_non_2xx(sock: socket.socket, port: int, resp: SipMessage, ctx: dict) -> None:
    """ACK a final non-2xx answer to an INVITE (same branch as the INVITE), best effort."""
    if not all(resp.header(h) for h in ("From", "To", "Call-ID", "CSeq", "Via")):
        return
    lines = [f"ACK sip:bot@127.0.0.1:{port} SIP/2.0", f"Via: {resp.header('Via')}",
             f"From: {resp.header('From')}", f"To: {resp.header('To')}",
             f"Call-ID: {resp.header('Call-ID')}",
             f"CSeq: {resp.header('CSeq').split()[0]} ACK", "Max-Forwards: 70",
             "Content-Length: 0", "", ""]
    sock.sendto(_wire(lines), ("127.0.0.1", port))


@dataclass
class Probe:
    outcome: str  # "drop", "not sent" (over one datagram), or the first final status code
    seen: list[str]  # status lines received, in order
    answered: bool = False  # an INVITE got 2xx (then ACKed and ended with BYE)
    bye_status: int | None = None
    call_id: str | None = None  # the Call-ID of the 2xx (as the peer wrote it)
    provisional: bool = False  # a 1xx came (then the wait for a final answer was longer)
    torn_down: bool = False  # no final answer came in time: the ``teardown`` was sent


def probe(port: int, build: Build, rtp_port: int, wait_drop: float = 0.3,
          wait_final: float = 10.0, teardown: Build | None = None
          ) -> tuple[Probe, socket.socket]:
    """Send the datagram ``build`` makes; read what comes back. Returns the socket still
    open: the caller reads late answers from it after its OPTIONS check (pjsua has one SIP
    worker thread, so once the OPTIONS is answered, any answer to this message has been
    sent). ``teardown`` (e.g. a CANCEL of the INVITE) is sent when no final answer came."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    ctx = {"host": "127.0.0.1", "port": port, "lport": sock.getsockname()[1],
           "branch": f"z9hG4bK-{uuid.uuid4().hex[:16]}", "tag": uuid.uuid4().hex[:10],
           "callid": f"{uuid.uuid4().hex}@corpus", "rtp": rtp_port}
    data = build(ctx)
    if len(data) > MAX_DATAGRAM:
        return Probe("not sent", []), sock
    sock.sendto(data, ("127.0.0.1", port))
    result = Probe("drop", [])
    t0 = time.monotonic()
    deadline = t0 + wait_drop
    final: SipMessage | None = None
    bye_sent = 0.0
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data, addr = sock.recvfrom(65535)
        except TimeoutError:
            break
        msg = received(data)
        if msg.status is None:  # a request from the gateway (a BYE): answer it
            if msg.method not in ("ACK", None):
                answer_request(sock, addr, msg)
            continue
        result.seen.append(msg.first_line)
        if msg.cseq_method == "BYE" and result.answered:
            if msg.status >= 200:
                result.bye_status = msg.status
                break
            continue
        if msg.status < 200:
            result.provisional = True
            deadline = max(deadline, t0 + wait_final)
            continue
        if final is None:
            final = msg
            result.outcome = str(msg.status)
            if msg.cseq_method != "INVITE":
                break
            if msg.status >= 300:
                ack_non_2xx(sock, port, msg, ctx)
                break
            # accepted: ACK it and hang up at once (the call must not linger)
            result.answered = True
            result.call_id = msg.header("Call-ID")
            bye_sent = ack_and_bye(sock, port, msg)
            deadline = bye_sent + 8.0
        elif result.answered and msg.cseq_method == "INVITE" and msg.status < 300 \
                and time.monotonic() - bye_sent > 1.0:  # 200 retransmitted: BYE again
            bye_sent = ack_and_bye(sock, port, msg)
    if final is None and teardown is not None:
        sock.sendto(teardown(ctx), ("127.0.0.1", port))
        result.torn_down = True
    return result, sock


def add_late_answers(result: Probe, sock: socket.socket) -> list[SipMessage]:
    """Fold the answers that came after ``probe`` stopped waiting into ``result``: a slow
    answer, not a drop. Call it once the peer has answered a later OPTIONS (then any answer
    to the probe has been sent). Answers to the probe's own CANCEL or BYE are not answers to
    the message. Returns the late messages (requests too)."""
    every = late_answers(sock)
    late = [m for m in every
            if m.status is not None and m.cseq_method not in ("CANCEL", "BYE")]
    if result.outcome == "drop" and late:
        result.seen += [m.first_line for m in late]
        finals = [m for m in late if m.status >= 200]
        if finals:
            result.outcome = str(finals[0].status)
    return every


def late_answers(sock: socket.socket) -> list[SipMessage]:
    out = []
    sock.settimeout(0.05)
    with contextlib.suppress(TimeoutError, OSError):
        while True:
            data, _ = sock.recvfrom(65535)
            out.append(received(data))
    return out


def options_status(port: int, timeout: float = 6.0) -> int | None:
    """Status of a fresh OPTIONS to the gateway (retransmitted every 0.5 s), None if silent."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        lport = sock.getsockname()[1]
        call_id = f"{uuid.uuid4().hex}@ping"
        text = "\r\n".join([
            f"OPTIONS sip:bot@127.0.0.1:{port} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{lport};branch=z9hG4bK-{uuid.uuid4().hex[:16]};rport",
            f"From: <sip:ping@127.0.0.1:{lport}>;tag={uuid.uuid4().hex[:8]}",
            f"To: <sip:bot@127.0.0.1:{port}>", f"Call-ID: {call_id}", "CSeq: 1 OPTIONS",
            "Max-Forwards: 70", "Content-Length: 0", "", ""]).encode()
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            sock.sendto(text, ("127.0.0.1", port))
            sock.settimeout(0.5)
            try:
                data, _ = sock.recvfrom(65535)
            except TimeoutError:
                continue
            msg = received(data)
            if msg.header("Call-ID") == call_id and msg.status and msg.status >= 200:
                return msg.status
    return None
