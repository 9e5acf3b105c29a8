"""The PJSIP modules in front of pjsua, registered through the pjsip C API that the pjsua2
extension exports, with ctypes (only stable public structs are touched: ``pjsip_module``,
``pj_str_t``, list links, and the raw-packet fields of ``pjsip_rx_data``).

- **The request screen** (below the transaction layer): every request's raw bytes go through
  ``gateway/telephony/sip_screen/`` before PJSIP's dialog and media code use them; what pjsua would
  choke on (an SDP address pjlib asserts on, a CSeq it answers 500, ...) is answered
  statelessly with the refusal's 4xx/5xx and counted by reason.
- **Admission** (priority APPLICATION-1): pjsua answers an INVITE for which it has no free
  call slot with 486 Busy Here, and this pjsua2 build has 4 slots. A 486 tells a trunk the
  *user* is busy; what we mean is "this server is full, retry later or elsewhere" (503, which
  proxies and Kamailio's dispatcher fail over on). New INVITEs get 503 + Retry-After while
  we are full or draining.
- **Unknown methods** (just above the dialog layer): 501 (PJSIP's dialog layer answered them
  500 "Unhandled by dialog usages" inside a dialog, and dropped them outside one).
- **No dialog** (after pjsua): an in-dialog request nobody took gets 481 (PJSIP dropped it).

``InviteMemory`` recognises a late copy of an INVITE already answered (same Call-ID, From
tag and CSeq, arriving after the ACK ended PJSIP's transaction): PJSIP would make it a second
call; ``Gateway.incoming`` answers it 482 instead (RFC 3261 8.2.2.2, RFC 6026 7.1).
"""

from __future__ import annotations

import ctypes
import logging
import math
import re
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

from gateway.telephony import sip_screen

log = logging.getLogger(__name__)

PJSIP_MOD_PRIORITY_APPLICATION = 64
PJSIP_MOD_PRIORITY_UA_PROXY_LAYER = 32  # the dialog layer (pjsip/sip_module.h)
PJSIP_MOD_PRIORITY_TSX_LAYER = 16  # the transaction layer

KNOWN_METHODS = frozenset({
    "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "INFO", "UPDATE", "PRACK", "REFER",
    "NOTIFY", "SUBSCRIBE", "MESSAGE", "PUBLISH"})
"""Methods PJSIP or pjsua knows (handles, or refuses properly itself); any other method gets
501 Not Implemented (RFC 3261 8.2.1)."""

IN_DIALOG_ONLY = frozenset({"BYE", "UPDATE", "PRACK", "INFO"})
"""Methods that only make sense inside a dialog: one nobody took gets 481 (RFC 3261 15.1.2)."""

TIMER_L = 32.0
"""Seconds a copy of an answered INVITE is still taken for a copy (64*T1: RFC 6026 Timer L)."""


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str
    retry_after: int | None


def request_method(info: bytes) -> str | None:
    """The method of ``pjsip_rx_data_get_info``'s "Request msg METHOD/cseq=N (rdata...)"."""
    if not info.startswith(b"Request msg "):
        return None
    return info[len(b"Request msg "):].split(b"/", 1)[0].decode("ascii", "replace")


def is_unknown_method(info: bytes) -> bool:
    method = request_method(info)
    return method is not None and method not in KNOWN_METHODS


def request_line(msg: str) -> str:
    """The first line of a request's text, leading CRLFs skipped (RFC 3261 7.5)."""
    return msg.lstrip("\r\n").split("\n", 1)[0].rstrip("\r")


def request_uri(msg: str) -> str | None:
    """The Request-URI of a request's text: the middle of its three-part request line.

    As lenient as pjsua, which takes ``invite`` or a line with a leading space for an INVITE
    (``Gateway.incoming`` cannot refuse those: a non-2xx answer aborts the process in pjsip).
    """
    parts = request_line(msg).split()
    return parts[1] if len(parts) == 3 else None


_URI_USER = re.compile(r"sips?:([^@;?>\s]+)@")


def uri_user(uri: str) -> str | None:
    """The user part of a SIP URI (percent-escapes decoded), None without one.

    The Request-URI names whom the request is for (RFC 3261 8.2.2.1); To may say anything,
    so a user check reading To let an INVITE for another user through.
    """
    m = _URI_USER.match(uri)
    return urllib.parse.unquote(m.group(1)) if m else None


_SHORT = {"i": "call-id", "f": "from", "v": "via"}
_WANTED = ("call-id", "from", "cseq", "via")


def invite_key(msg: str) -> tuple[tuple[str, str, str], str] | None:
    """((Call-ID, From tag, CSeq number), top Via branch) of a request's text, None when one
    is missing (such a request cannot be matched, and PJSIP would not have taken it)."""
    head = re.split(r"\r?\n\r?\n", msg, maxsplit=1)[0]
    found: dict[str, str] = {}
    for line in head.splitlines()[1:]:
        name, sep, value = line.partition(":")
        name = name.strip().lower()
        name = _SHORT.get(name, name)
        if sep and name in _WANTED:
            found.setdefault(name, value.strip())  # the first (top) Via
    tag = re.search(r";\s*tag=([^;>\s,]+)", found.get("from", ""), re.I)
    branch = re.search(r";\s*branch=([^;\s,]+)", found.get("via", ""), re.I)
    cseq = found.get("cseq", "").split()
    if not found.get("call-id") or tag is None or not cseq:
        return None
    return (found["call-id"], tag.group(1), cseq[0]), branch.group(1) if branch else ""


class InviteMemory:
    """The INVITEs that reached pjsua in the last ``window`` seconds, to spot late copies.

    PJSIP ends an INVITE server transaction when the ACK of its 2xx arrives, so a copy of that
    INVITE arriving later (a retransmission that crossed the 200 and was delayed, a duplicate
    from the network) matches no transaction and pjsua makes it a second call, with a new To
    tag, whose 200 the caller never ACKs: a call slot held ~32 s and a record for nothing.
    """

    def __init__(self, window: float = TIMER_L, limit: int = 4096,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.window, self.limit, self._clock = window, limit, clock
        self._seen: dict[tuple[str, str, str], tuple[float, str]] = {}

    def check(self, msg: str) -> str | None:
        """Remember this INVITE; return why it is a copy of an earlier one, or None."""
        key = invite_key(msg)
        if key is None:
            return None
        (call_id, _, cseq), branch = key
        now = self._clock()
        oldest = next(iter(self._seen.values()), None)  # insertion order is time order
        if len(self._seen) >= self.limit or (oldest is not None
                                             and oldest[0] + self.window < now):
            self._seen = {k: v for k, v in self._seen.items() if v[0] + self.window >= now}
            while len(self._seen) >= self.limit:  # a flood: forget the oldest
                del self._seen[next(iter(self._seen))]
        before = self._seen.get(key[0])
        if before is not None and before[0] + self.window >= now:
            what = "a retransmission" if branch and branch == before[1] else "a merged request"
            return (f"{what} of an INVITE already taken {now - before[0]:.1f} s ago "
                    f"(Call-ID {call_id}, CSeq {cseq})")
        self._seen[key[0]] = (now, branch)
        return None


class LogBudget:
    """At most ``per_window`` log lines per ``window`` seconds (time passed in); says how many
    were held back when the next window opens."""

    def __init__(self, per_window: int = 20, window: float = 10.0) -> None:
        self.per_window, self.window = per_window, window
        self._start = -math.inf
        self._used = 0
        self.held = 0

    def allow(self, now: float) -> bool:
        if now - self._start >= self.window:
            if self.held:
                log.info("%d more such lines held back in %.0f s", self.held, self.window)
            self._start, self._used, self.held = now, 0, 0
        if self._used < self.per_window:
            self._used += 1
            return True
        self.held += 1
        return False


def decide(is_new_invite: bool, active_calls: int, capacity: int, draining: bool,
           retry_after: int) -> Refusal | None:
    """Whether to refuse a request before pjsua sees it (pure)."""
    if not is_new_invite:
        return None
    if draining:
        return Refusal(503, "Service Unavailable", retry_after)
    if active_calls >= capacity:
        return Refusal(503, "Service Unavailable", retry_after)
    return None


class _PjStr(ctypes.Structure):
    _fields_ = [("ptr", ctypes.c_char_p), ("slen", ctypes.c_ssize_t)]


_ON_RX = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)


class _PjsipModule(ctypes.Structure):
    _fields_ = [
        ("prev", ctypes.c_void_p), ("next", ctypes.c_void_p),
        ("name", _PjStr), ("id", ctypes.c_int), ("priority", ctypes.c_int),
        ("load", ctypes.c_void_p), ("start", ctypes.c_void_p), ("stop", ctypes.c_void_p),
        ("unload", ctypes.c_void_p),
        ("on_rx_request", _ON_RX), ("on_rx_response", ctypes.c_void_p),
        ("on_tx_request", ctypes.c_void_p), ("on_tx_response", ctypes.c_void_p),
        ("on_tsx_state", ctypes.c_void_p),
    ]


_ON_DROPPED = ctypes.CFUNCTYPE(None, ctypes.c_void_p)  # pjsip_tp_on_rx_dropped_cb


class _DroppedData(ctypes.Structure):  # pjsip_tp_dropped_data
    _fields_ = [("tp", ctypes.c_void_p), ("data", ctypes.c_void_p), ("len", ctypes.c_size_t),
                ("status", ctypes.c_int)]


PJSIP_TRANSPORT_UDP = 1


def _pjsua_lib() -> ctypes.CDLL:
    import pjsua2

    so = pjsua2._pjsua2.__file__  # noqa: SLF001 - the extension exports the pjsip C API
    lib = ctypes.CDLL(so)
    lib.pjsua_get_pjsip_endpt.restype = ctypes.c_void_p
    lib.pjsua_pool_create.restype = ctypes.c_void_p
    lib.pjsua_pool_create.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_size_t]
    lib.pjsip_endpt_register_module.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.pjsip_endpt_unregister_module.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.pjsip_rx_data_get_info.restype = ctypes.c_char_p
    lib.pjsip_rx_data_get_info.argtypes = [ctypes.c_void_p]
    lib.pjsip_generic_string_hdr_create.restype = ctypes.c_void_p
    lib.pjsip_generic_string_hdr_create.argtypes = [
        ctypes.c_void_p, ctypes.POINTER(_PjStr), ctypes.POINTER(_PjStr)]
    lib.pj_list_insert_before.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.pjsip_endpt_respond_stateless.argtypes = [
        ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(_PjStr),
        ctypes.c_void_p, ctypes.c_void_p]
    lib.pjsua_call_get_count.restype = ctypes.c_uint
    lib.pjsip_endpt_get_tpmgr.restype = ctypes.c_void_p
    lib.pjsip_endpt_get_tpmgr.argtypes = [ctypes.c_void_p]
    lib.pjsip_tpmgr_set_drop_data_cb.argtypes = [ctypes.c_void_p, _ON_DROPPED]
    lib.pjsip_endpt_send_raw.argtypes = [
        ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t,
        ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    return lib


# Where pjsip_rx_data (pjsip/sip_transport.h, pjproject 2.15.1, x86-64) keeps the datagram
# as it came off the wire: tp_info {pool, transport, tp_data, op_key (34 + 1 pointers)} is 304
# bytes, then pkt_info {timestamp (16), packet[PJSIP_MAX_PKT_LEN], zero, len, ...} and
# msg_info {msg_buf, len, ...}. ``rx_message`` checks each read against the others
# (msg_buf must point into packet) and gives up on a build laid out differently.
RX_POOL = 0
RX_PACKET = 320
RX_PKT_LEN = RX_PACKET + sip_screen.MAX_PACKET + 8
RX_SRC_ADDR = RX_PKT_LEN + 8  # pj_sockaddr (28 bytes), then its length (int)
RX_SRC_ADDR_LEN = RX_SRC_ADDR + 28
RX_SRC_NAME = RX_SRC_ADDR_LEN + 4  # char[PJ_INET6_ADDRSTRLEN = 46]
RX_SRC_PORT = RX_SRC_NAME + 46 + 2
RX_MSG_BUF = RX_SRC_PORT + 4 + 4
RX_MSG_LEN = RX_MSG_BUF + 8


def rx_message(rdata: int) -> tuple[bytes, bool] | None:
    """(the request's raw bytes, whether the datagram filled PJSIP's whole packet buffer),
    or None when the struct does not look as expected (then nothing is screened)."""
    packet = rdata + RX_PACKET
    buf = ctypes.c_void_p.from_address(rdata + RX_MSG_BUF).value or 0
    size = ctypes.c_int.from_address(rdata + RX_MSG_LEN).value
    received = ctypes.c_ssize_t.from_address(rdata + RX_PKT_LEN).value
    if not (packet <= buf and size > 0 and buf + size <= packet + received
            and 0 < received <= sip_screen.MAX_PACKET):
        return None
    return ctypes.string_at(buf, size), received >= sip_screen.MAX_PACKET


def rx_source(rdata: int) -> str:
    """"host:port" the datagram came from (for the log)."""
    name = ctypes.string_at(rdata + RX_SRC_NAME, 46).split(b"\0", 1)[0]
    port = ctypes.c_int.from_address(rdata + RX_SRC_PORT).value
    return f"{name.decode('ascii', 'replace')}:{port}"


def dropped_message(data: int) -> tuple[int, tuple[bytes, bool]] | None:
    """The ``pjsip_rx_data`` a dropped datagram was read into, from the drop callback's data,
    and ``rx_message`` of it.

    PJSIP's UDP transport reads each datagram at the start of ``rdata->pkt_info.packet``,
    skips the CRLFs that may lead it, and hands the drop callback a pointer to what follows;
    ``rx_message`` then checks the struct around it. None for anything else (a stream
    transport's message in the middle of its buffer)."""
    skipped = 0
    while skipped < 64 and ctypes.string_at(data - skipped - 1, 1) in (b"\r", b"\n"):
        skipped += 1
    for lead in range(skipped, -1, -1):
        rdata = data - lead - RX_PACKET
        buf = ctypes.c_void_p.from_address(rdata + RX_MSG_BUF).value or 0
        message = rx_message(rdata) if buf == data else None
        if message is not None:
            return rdata, message
    return None


class InviteGate:
    """The PJSIP modules in front of pjsua (see the module docstring): the request screen
    (``gateway/telephony/sip_screen/``), the 503 admission gate (new INVITEs while
    ``capacity`` calls are up or while draining), the 501 for unknown methods, the 481 for no
    dialog, and the count of what PJSIP's parser drops.

    Create after ``libStart()`` from a pjsua-registered thread; keep a reference for the
    life of the endpoint (the C side points at this object's ctypes memory).
    """

    def __init__(self, capacity: int, retry_after: int,
                 on_refused: Callable[[Refusal], None] = lambda r: None,
                 on_screened: Callable[[sip_screen.Refusal], None] = lambda r: None,
                 on_dropped: Callable[[], None] = lambda: None) -> None:
        self.capacity = capacity
        self.retry_after = retry_after
        self.draining = False
        self.refused = 0
        self._on_refused = on_refused
        self._on_screened = on_screened
        self._lock = threading.Lock()
        self._lib = _pjsua_lib()
        self._endpt = self._lib.pjsua_get_pjsip_endpt()
        self._pool = self._lib.pjsua_pool_create(b"vb-admission", 1024, 1024)
        # The Retry-After header list, built once; respond_stateless clones it per response.
        self._hname = _PjStr(b"Retry-After", len(b"Retry-After"))
        value = str(retry_after).encode()
        self._hvalue_bytes = value
        self._hvalue = _PjStr(value, len(value))
        self._head = (ctypes.c_void_p * 8)()  # a pjsip_hdr used only as the list head
        self._head[0] = self._head[1] = ctypes.addressof(self._head)
        hdr = self._lib.pjsip_generic_string_hdr_create(
            self._pool, ctypes.byref(self._hname), ctypes.byref(self._hvalue))
        self._lib.pj_list_insert_before(ctypes.addressof(self._head), hdr)
        self._reason = _PjStr(b"Service Unavailable", len(b"Service Unavailable"))
        self._reason_501 = _PjStr(b"Not Implemented", len(b"Not Implemented"))
        self.invites = InviteMemory()
        self.unknown_methods = 0
        self.screened = 0
        self.unscreened = 0  # requests whose raw bytes could not be read (see rx_message)
        self._modules: list[tuple[_PjsipModule, object, bytes]] = []
        # The screen: below the transaction layer, so every request is checked, in-dialog
        # ones (a re-INVITE's SDP) and retransmissions too, before anything parses it further.
        self._register(b"mod-voicebot-screen", PJSIP_MOD_PRIORITY_TSX_LAYER - 1, self._on_rx_screen)
        # New INVITEs when full: just above pjsua (in-dialog requests never reach this
        # priority: the dialog layer takes them, so an INVITE here is a new call).
        self._register(b"mod-voicebot-admission", PJSIP_MOD_PRIORITY_APPLICATION - 1,
                       self._on_rx_request)
        # Unknown methods: just above the dialog layer, which would answer them 500 in a
        # dialog (and nobody would answer them outside one); retransmissions were already
        # absorbed by the transaction layer below it (or get the same stateless answer).
        self._register(b"mod-voicebot-methods", PJSIP_MOD_PRIORITY_UA_PROXY_LAYER - 1,
                       self._on_rx_unknown)
        # Last: an in-dialog request (a To tag, or a BYE...) that neither the dialog layer
        # nor pjsua took matches no dialog: 481, where PJSIP's endpoint dropped it
        self._reason_481 = _PjStr(b"Call/Transaction Does Not Exist",
                                  len(b"Call/Transaction Does Not Exist"))
        self.no_dialog = 0
        self._register(b"mod-voicebot-no-dialog", PJSIP_MOD_PRIORITY_APPLICATION + 32,
                       self._on_rx_unhandled)
        # What PJSIP's parser cannot read never reaches a module: its transport manager
        # drops it and tells this callback (which leaves the data as it is)
        self.unparseable = 0
        self._debug_log = LogBudget()
        self._on_dropped = on_dropped
        self._dropped_cb = _ON_DROPPED(self._on_drop)
        self._lib.pjsip_tpmgr_set_drop_data_cb(self._lib.pjsip_endpt_get_tpmgr(self._endpt),
                                               self._dropped_cb)

    def _on_drop(self, data: int) -> None:
        """PJSIP's parser could not read a datagram. A request whose refusal the screen can
        name (a Request-URI scheme PJSIP has no parser for: 416) gets it, written here from
        the request's own text (PJSIP has no parsed message to answer from); the rest (random
        bytes, a keep-alive, a response) stays dropped, and is counted."""
        try:
            with self._lock:
                self.unparseable += 1
            self._on_dropped()
            dropped = _DroppedData.from_address(data)
            if dropped.status == 0 or not dropped.data:
                return
            found = dropped_message(dropped.data)
            if found is None:
                return
            rdata, message = found
            refusal = sip_screen.screen(*message)
            if refusal is None:
                self._log_refused(rdata, message[0], "dropped by PJSIP's parser")
                return
            try:
                request = sip_screen.parse(message[0])
            except sip_screen.Bad:
                return  # no request line and headers to answer from
            answer = sip_screen.stateless_response(request, refusal, secrets.token_hex(5))
            if answer is None:
                return
            with self._lock:
                self.screened += 1
            self._on_screened(refusal)
            self._log_refused(rdata, message[0], f"{refusal.status} {refusal.label}")
            # to where it came from (RFC 3581 rport behaviour: also right behind a NAT)
            addr_len = ctypes.c_int.from_address(rdata + RX_SRC_ADDR_LEN).value
            if addr_len in (16, 28):
                self._lib.pjsip_endpt_send_raw(self._endpt, PJSIP_TRANSPORT_UDP, None, answer,
                                               len(answer), rdata + RX_SRC_ADDR, addr_len,
                                               None, None)
        except Exception:  # noqa: BLE001 - never let an error cross into C
            log.exception("handling a dropped message failed")

    def _log_refused(self, rdata: int, raw: bytes, what: str) -> None:
        """Debug: the first bytes of a request refused or dropped before pjsua (so an
        operator can tell a refusal from a network problem); budgeted, escaped."""
        if log.isEnabledFor(logging.DEBUG) and self._debug_log.allow(time.monotonic()):
            log.debug("request from %s %s; its first bytes: %s", rx_source(rdata), what,
                      sip_screen.printable(raw.decode("latin-1"), 160))

    def _register(self, name: bytes, priority: int, on_rx: Callable[[int], int]) -> None:
        cb = _ON_RX(on_rx)
        mod = _PjsipModule()
        mod.name = _PjStr(name, len(name))
        mod.id = -1
        mod.priority = priority
        mod.on_rx_request = cb
        self._modules.append((mod, cb, name))  # the C side points at all three
        status = self._lib.pjsip_endpt_register_module(self._endpt, ctypes.byref(mod))
        if status != 0:
            raise RuntimeError(f"cannot register {name.decode()} (pj_status {status})")

    def active_calls(self) -> int:
        return int(self._lib.pjsua_call_get_count())

    def _on_rx_screen(self, rdata: int) -> int:
        try:
            message = rx_message(rdata)
            if message is None:
                with self._lock:
                    self.unscreened += 1
                    first = self.unscreened == 1
                if first:
                    log.error("cannot read the raw request from pjsip_rx_data (another pjsip "
                              "build?): requests reach pjsua unscreened")
                return 0
            refusal = sip_screen.screen(*message)
            if refusal is None:
                return 0
            with self._lock:
                self.screened += 1
            self._on_screened(refusal)
            self._log_refused(rdata, message[0], f"refused {refusal.status} {refusal.label}")
            info = self._lib.pjsip_rx_data_get_info(rdata) or b""
            if request_method(info) != "ACK":  # an ACK is never answered
                self._respond(rdata, refusal)
            return 1
        except Exception:  # noqa: BLE001 - never let an error cross into C
            log.exception("request screen failed; passing the request on")
            return 0

    def _respond(self, rdata: int, refusal: sip_screen.Refusal) -> None:
        """Answer statelessly with the refusal's status, reason and extra headers (made in
        the request's own pool, which PJSIP frees with it)."""
        pool = ctypes.c_void_p.from_address(rdata + RX_POOL).value
        head = (ctypes.c_void_p * 8)()
        head[0] = head[1] = ctypes.addressof(head)
        keep = []
        for name, value in refusal.headers:
            hname = name.encode("ascii")
            hvalue = value.encode("ascii", "replace")
            pair = (_PjStr(hname, len(hname)), _PjStr(hvalue, len(hvalue)))
            keep.append(pair)
            hdr = self._lib.pjsip_generic_string_hdr_create(
                pool, ctypes.byref(pair[0]), ctypes.byref(pair[1]))
            if hdr:
                self._lib.pj_list_insert_before(ctypes.addressof(head), hdr)
        reason = refusal.reason.encode("ascii")
        self._lib.pjsip_endpt_respond_stateless(
            self._endpt, rdata, refusal.status, ctypes.byref(_PjStr(reason, len(reason))),
            ctypes.addressof(head) if keep else None, None)

    def _on_rx_request(self, rdata: int) -> int:
        try:
            info = self._lib.pjsip_rx_data_get_info(rdata) or b""
            is_invite = info.startswith(b"Request msg INVITE/")
            refusal = decide(is_invite, self.active_calls(), self.capacity, self.draining,
                             self.retry_after)
            if refusal is None:
                return 0
            # counted before the answer leaves: whoever reads the metric after seeing the
            # 503 (the edge test, a dashboard) must find it counted
            with self._lock:
                self.refused += 1
            self._on_refused(refusal)
            self._lib.pjsip_endpt_respond_stateless(
                self._endpt, rdata, refusal.status, ctypes.byref(self._reason),
                ctypes.addressof(self._head), None)
            return 1
        except Exception:  # noqa: BLE001 - never let an error cross into C; pjsua decides
            log.exception("admission check failed; passing the request to pjsua")
            return 0

    def _on_rx_unhandled(self, rdata: int) -> int:
        try:
            message = rx_message(rdata)
            info = self._lib.pjsip_rx_data_get_info(rdata) or b""
            if message is None or request_method(info) == "ACK":
                return 0
            try:
                request = sip_screen.parse(message[0])
            except sip_screen.Bad:
                return 0
            if not (sip_screen.has_tag(request.first("to") or "")
                    or request.method in IN_DIALOG_ONLY):
                return 0
            self._lib.pjsip_endpt_respond_stateless(
                self._endpt, rdata, 481, ctypes.byref(self._reason_481), None, None)
            with self._lock:
                self.no_dialog += 1
            log.info("answered 481 to a %s for no dialog", request_method(info))
            return 1
        except Exception:  # noqa: BLE001 - never let an error cross into C
            log.exception("no-dialog check failed; leaving the request unanswered")
            return 0

    def _on_rx_unknown(self, rdata: int) -> int:
        try:
            info = self._lib.pjsip_rx_data_get_info(rdata) or b""
            if not is_unknown_method(info):
                return 0
            self._lib.pjsip_endpt_respond_stateless(
                self._endpt, rdata, 501, ctypes.byref(self._reason_501), None, None)
            with self._lock:
                self.unknown_methods += 1
            log.info("answered 501 Not Implemented to a %s request", request_method(info))
            return 1
        except Exception:  # noqa: BLE001 - never let an error cross into C
            log.exception("method check failed; passing the request on")
            return 0
