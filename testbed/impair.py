"""A seeded UDP impairment relay between a SIP caller and the gateway (media faults).

Two parts:

- The impairment logic, pure and deterministic: :class:`Impairer` takes each packet with the
  time it arrived (seconds since the stream began) and returns what to send and when
  (:class:`Out`), drawing every random decision from ``random.Random`` streams seeded from
  one seed (one stream per kind of fault, so turning one fault on or off does not change
  which packets the others hit). Given a packet sequence and a seed it is exactly
  reproducible: which packets are dropped, duplicated, delayed, reordered or mangled.
- :class:`SipMediaRelay`: a small threaded UDP forwarder. The caller dials the relay's SIP
  port; SIP passes through unchanged except the SDP bodies, whose ``c=``, ``m=audio`` and
  ``a=rtcp`` lines are rewritten to the relay's own RTP ports (both ways), so every RTP
  packet flows through the relay and is impaired on its way (caller -> gateway and/or
  gateway -> caller, each with its own :class:`Profile`). Responses come back to the relay
  because the caller's Via asks for ``rport`` (RFC 3581); in-dialog requests (ACK, BYE) may go
  directly to the Contact, which carries no SDP.

Faults (see :class:`Profile`): random loss, a delay of ``jitter_ms +/- jitter_spread_ms``
(uniform), reordering (a packet held back ``reorder_ms`` so that later ones overtake it),
duplicates, gaps (every packet dropped in a time window), an SSRC change (new SSRC, new
sequence and timestamp bases, as a caller's re-originated stream), sequence number and
timestamp jumps, truncated/malformed RTP packets in place of real ones, and garbage datagrams
injected between real ones. RTCP and non-RTP datagrams are forwarded untouched.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import random
import re
import selectors
import socket
import struct
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

# --- RTP helpers -----------------------------------------------------------------------------

RTP_HEADER = struct.Struct("!BBHII")  # V/P/X/CC, M/PT, seq, timestamp, SSRC


def is_rtp(data: bytes) -> bool:
    """An RTP packet (version 2, not an RTCP packet type 200-204 multiplexed on the port)."""
    return len(data) >= 12 and data[0] >> 6 == 2 and not 72 <= (data[1] & 0x7F) <= 76


def rtp_fields(data: bytes) -> tuple[int, int, int, int]:
    """(payload type, sequence number, timestamp, SSRC)."""
    _, mpt, seq, ts, ssrc = RTP_HEADER.unpack_from(data)
    return mpt & 0x7F, seq, ts, ssrc


def rewrite_rtp(data: bytes, seq_add: int = 0, ts_add: int = 0, ssrc: int | None = None) -> bytes:
    """The packet with its sequence number and timestamp shifted (mod 2^16 / 2^32) and, if
    given, another SSRC; the payload is untouched."""
    b0, mpt, seq, ts, old = RTP_HEADER.unpack_from(data)
    head = RTP_HEADER.pack(b0, mpt, (seq + seq_add) & 0xFFFF, (ts + ts_add) & 0xFFFFFFFF,
                           old if ssrc is None else ssrc)
    return head + data[12:]


MALFORMED = ("short", "header_only", "csrc_overrun", "extension_overrun", "padding_overrun",
             "bad_version")


def malform(data: bytes, kind: str) -> bytes:
    """A damaged copy of an RTP packet, of one of the :data:`MALFORMED` kinds: cut inside the
    fixed header, cut right after it, claiming 15 CSRCs it does not carry, an extension whose
    length runs past the end, a padding count larger than the payload, RTP version 1."""
    if kind == "short":
        return data[:7]
    if kind == "header_only":
        return data[:12]
    if kind == "csrc_overrun":
        return bytes([(data[0] & 0xF0) | 0x0F]) + data[1:20]
    if kind == "extension_overrun":  # X bit, then a header extension of 0xFFFF words
        return bytes([data[0] | 0x10]) + data[1:12] + b"\xbe\xde\xff\xff" + data[12:24]
    if kind == "padding_overrun":  # P bit, last octet says 255 octets of padding
        return bytes([data[0] | 0x20]) + data[1:40] + b"\xff"
    if kind == "bad_version":
        return bytes([(data[0] & 0x3F) | 0x40]) + data[1:]
    raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(MALFORMED)}")


# --- the impairment logic --------------------------------------------------------------------

@dataclass(frozen=True)
class Profile:
    """What to do to one direction's RTP. Times are seconds since the stream's first packet."""

    name: str = "clean"
    loss: float = 0.0
    """Probability that a packet is dropped."""
    jitter_ms: float = 0.0
    jitter_spread_ms: float = 0.0
    """Each packet is delayed uniformly in ``jitter_ms +/- jitter_spread_ms``."""
    reorder: float = 0.0
    """Probability that a packet is held back ``reorder_ms`` more (later packets overtake it)."""
    reorder_ms: float = 50.0
    duplicate: float = 0.0
    """Probability that a packet is sent twice (the copy 0-30 ms later)."""
    gaps: tuple[tuple[float, float], ...] = ()
    """(start, seconds): every packet of the window is dropped."""
    ssrc_change_at: float | None = None
    """From then on: another SSRC, and the sequence and timestamp restart at random bases."""
    seq_jump_at: float | None = None
    seq_jump: int = 5000
    """Added to every later sequence number (pjmedia's MAX_DROPOUT is 3000: a restart)."""
    ts_jump_at: float | None = None
    ts_jump: int = 8000 * 60
    """Added to every later timestamp (60 s at 8 kHz)."""
    truncate: float = 0.0
    """Probability that a packet is replaced by a malformed copy (see :func:`malform`)."""
    garbage: float = 0.0
    """Probability that a datagram of 1-200 random octets follows a packet."""

    @property
    def active(self) -> bool:
        return self != Profile(name=self.name)

    def describe(self) -> str:
        parts = []
        if self.loss:
            parts.append(f"{self.loss:.0%} loss")
        if self.jitter_ms or self.jitter_spread_ms:
            parts.append(f"delay {self.jitter_ms:g}+/-{self.jitter_spread_ms:g} ms")
        if self.reorder:
            parts.append(f"{self.reorder:.0%} reordered (+{self.reorder_ms:g} ms)")
        if self.duplicate:
            parts.append(f"{self.duplicate:.0%} duplicated")
        parts += [f"gap {d:g} s at {s:g} s" for s, d in self.gaps]
        if self.ssrc_change_at is not None:
            parts.append(f"SSRC change at {self.ssrc_change_at:g} s")
        if self.seq_jump_at is not None:
            parts.append(f"seq +{self.seq_jump} at {self.seq_jump_at:g} s")
        if self.ts_jump_at is not None:
            parts.append(f"ts +{self.ts_jump} at {self.ts_jump_at:g} s")
        if self.truncate:
            parts.append(f"{self.truncate:.0%} malformed")
        if self.garbage:
            parts.append(f"{self.garbage:.0%} garbage injected")
        return ", ".join(parts) or "none"


@dataclass(frozen=True)
class Out:
    due: float
    """When to send it (same clock as the ``t`` given to :meth:`Impairer.process`)."""
    data: bytes
    what: str
    """"pass", "late" (delayed), "reordered", "duplicate", "malformed:KIND", "garbage"."""


KINDS = ("loss", "jitter", "reorder", "duplicate", "ssrc", "truncate", "garbage")


@dataclass
class Impairer:
    """Applies a :class:`Profile` to a packet stream, deterministically from ``seed``."""

    profile: Profile
    seed: int = 0
    counts: Counter = field(default_factory=Counter)
    """Packets by fate: in, rtp, other (passed untouched), gap, lost, reordered, duplicate,
    malformed, garbage, ssrc_changed, seq_jumped, ts_jumped, out."""

    def __post_init__(self) -> None:
        self.rng = {k: random.Random(f"{self.seed}:{k}") for k in KINDS}
        self._ssrc: int | None = None
        self._seq_add = 0
        self._ts_add = 0
        self._done: set[str] = set()

    def _events(self, t: float) -> None:
        p = self.profile
        if p.ssrc_change_at is not None and t >= p.ssrc_change_at and "ssrc" not in self._done:
            self._done.add("ssrc")
            r = self.rng["ssrc"]
            self._ssrc = r.getrandbits(32)
            self._seq_add += r.randrange(1 << 16)
            self._ts_add += r.getrandbits(32)
        if p.seq_jump_at is not None and t >= p.seq_jump_at and "seq" not in self._done:
            self._done.add("seq")
            self._seq_add += p.seq_jump
        if p.ts_jump_at is not None and t >= p.ts_jump_at and "ts" not in self._done:
            self._done.add("ts")
            self._ts_add += p.ts_jump

    def process(self, t: float, data: bytes) -> list[Out]:
        """What becomes of one datagram that arrived at ``t``: zero or more sends."""
        p, c, rng = self.profile, self.counts, self.rng
        c["in"] += 1
        if not is_rtp(data):
            c["other"] += 1
            c["out"] += 1
            return [Out(t, data, "pass")]
        c["rtp"] += 1
        # every packet draws the same numbers whatever the profile: decisions stay put
        u_loss = rng["loss"].random()
        delay = rng["jitter"].uniform(p.jitter_ms - p.jitter_spread_ms,
                                      p.jitter_ms + p.jitter_spread_ms) / 1000.0
        u_reorder = rng["reorder"].random()
        u_dup, dup_lag = rng["duplicate"].random(), rng["duplicate"].uniform(0.0, 0.030)
        u_trunc, trunc_kind = rng["truncate"].random(), rng["truncate"].choice(MALFORMED)
        u_garbage = rng["garbage"].random()
        junk = rng["garbage"].randbytes(rng["garbage"].randint(1, 200))
        if any(s <= t < s + d for s, d in p.gaps):
            c["gap"] += 1
            return []
        if u_loss < p.loss:
            c["lost"] += 1
            return []
        self._events(t)
        if self._ssrc is not None or self._seq_add or self._ts_add:
            data = rewrite_rtp(data, self._seq_add, self._ts_add, self._ssrc)
            c["rewritten"] += 1
        what = "late" if delay > 0 else "pass"
        if u_reorder < p.reorder:
            delay += p.reorder_ms / 1000.0
            what = "reordered"
            c["reordered"] += 1
        if u_trunc < p.truncate:
            data = malform(data, trunc_kind)
            what = f"malformed:{trunc_kind}"
            c["malformed"] += 1
        out = [Out(t + max(delay, 0.0), data, what)]
        if u_dup < p.duplicate:
            out.append(Out(out[0].due + dup_lag, data, "duplicate"))
            c["duplicate"] += 1
        if u_garbage < p.garbage:
            out.append(Out(out[0].due + 0.001, junk, "garbage"))
            c["garbage"] += 1
        c["out"] += len(out)
        return out


# --- SDP rewriting ---------------------------------------------------------------------------

@dataclass(frozen=True)
class SdpMedia:
    ip: str
    port: int
    rtcp_port: int


def split_sip(msg: bytes) -> tuple[str, bytes]:
    head, _, body = msg.partition(b"\r\n\r\n")
    return head.decode("utf-8", "replace"), body


def rewrite_sdp(msg: bytes, ip: str, port: int) -> tuple[bytes, SdpMedia | None]:
    """A SIP message with its SDP's audio address replaced by ``ip:port`` (RTCP: port + 1),
    and the address it named; messages without SDP come back unchanged with None."""
    head, body = split_sip(msg)
    if not body or not re.search(r"(?im)^(content-type|c)\s*:\s*application/sdp", head):
        return msg, None
    lines = body.decode("utf-8", "replace").split("\r\n")
    orig_ip, orig_port, orig_rtcp, in_audio = None, None, None, False
    out = []
    for line in lines:
        if line.startswith("m="):
            in_audio = line.startswith("m=audio ")
            if in_audio:
                f = line.split(" ")
                orig_port = int(f[1])
                f[1] = str(port)
                line = " ".join(f)
        elif line.startswith("c=IN IP4 ") and (in_audio or orig_port is None):
            if orig_ip is None or in_audio:
                orig_ip = line.split()[2]
            line = f"c=IN IP4 {ip}"
        elif line.startswith("a=rtcp:") and in_audio:
            f = line[len("a=rtcp:"):].split(" ")
            orig_rtcp = int(f[0])
            line = f"a=rtcp:{port + 1}" + (f" IN IP4 {ip}" if len(f) > 1 else "")
        out.append(line)
    if orig_port is None or orig_ip is None:
        return msg, None
    new_body = "\r\n".join(out).encode()
    head = re.sub(r"(?im)^(content-length|l)\s*:\s*\d+", lambda m: f"{m.group(1)}: "
                  f"{len(new_body)}", head)
    media = SdpMedia(orig_ip, orig_port, orig_rtcp if orig_rtcp else orig_port + 1)
    return head.encode() + b"\r\n\r\n" + new_body, media


# --- the relay -------------------------------------------------------------------------------

def _bind_pair(host: str) -> tuple[socket.socket, socket.socket]:
    """Two UDP sockets on an even port and the next one (RTP, RTCP)."""
    for _ in range(200):
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind((host, 0))
        port = probe.getsockname()[1] & ~1
        probe.close()
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            a.bind((host, port))
            b.bind((host, port + 1))
            return a, b
        except OSError:
            a.close()
            b.close()
    raise OSError("no free even/odd UDP port pair")


@dataclass
class Direction:
    """One way of the media: its impairer, what it sent, when (relay clock)."""

    name: str
    impairer: Impairer
    received: list[tuple[float, bytes]] = field(default_factory=list)
    """(relay time, packet) of every RTP packet that came in."""
    sent: list[tuple[float, bytes]] = field(default_factory=list)
    """(relay time, packet) of every RTP packet sent on (after the faults)."""


class SipMediaRelay:
    """Caller <-> relay <-> gateway on loopback; RTP impaired per direction.

    ``to_gateway`` applies to the caller's RTP (what the bot hears), ``to_caller`` to the
    gateway's (what the caller hears). Times in the profiles count from the first RTP packet
    the relay sees, either way (:attr:`origin`, ``time.monotonic``)."""

    def __init__(self, gateway: tuple[str, int], to_gateway: Profile = Profile(),
                 to_caller: Profile = Profile(), seed: int = 0, host: str = "127.0.0.1") -> None:
        self.host = host
        self.gateway = gateway
        self.dirs = {"to_gateway": Direction("to_gateway", Impairer(to_gateway, seed)),
                     "to_caller": Direction("to_caller", Impairer(to_caller, seed + 1))}
        self.sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sip.bind((host, 0))
        self.caller_rtp, self.caller_rtcp = _bind_pair(host)  # the caller sends here
        self.gw_rtp, self.gw_rtcp = _bind_pair(host)  # the gateway sends here
        self.caller_sip: tuple[str, int] | None = None
        self.caller_media: SdpMedia | None = None
        self.gateway_media: SdpMedia | None = None
        self.origin: float | None = None
        self.sip_log: list[tuple[float, str, str]] = []
        """(monotonic, "->gw"/"->caller", first line) of every SIP message relayed."""
        self.errors: list[str] = []
        self._heap: list[tuple[float, int, socket.socket, bytes, tuple[str, int], str]] = []
        self._n = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="impair-relay", daemon=True)

    @property
    def port(self) -> int:
        return self.sip.getsockname()[1]

    def uri(self, user: str = "bot") -> str:
        return f"sip:{user}@{self.host}:{self.port}"

    def counts(self, direction: str) -> Counter:
        return self.dirs[direction].impairer.counts

    def start(self) -> SipMediaRelay:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for s in (self.sip, self.caller_rtp, self.caller_rtcp, self.gw_rtp, self.gw_rtcp):
            s.close()

    def __enter__(self) -> SipMediaRelay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # the loop: receive, decide, queue; send what is due
    def _run(self) -> None:
        # the relay's own timing must not be the fault: on a busy shared host a plain thread
        # wakes tens of ms late, so raise this thread's priority where allowed (root)
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), -10)
        sel = selectors.DefaultSelector()
        for s in (self.sip, self.caller_rtp, self.caller_rtcp, self.gw_rtp, self.gw_rtcp):
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
        while not self._stop.is_set():
            now = time.monotonic()
            while self._heap and self._heap[0][0] <= now:
                _, _, sock, data, addr, dname = heapq.heappop(self._heap)
                with contextlib.suppress(OSError):
                    sock.sendto(data, addr)
                if dname and is_rtp(data):
                    self.dirs[dname].sent.append((now - (self.origin or now), data))
            wait = 0.05 if not self._heap else max(0.0, min(0.05, self._heap[0][0] - now))
            for key, _ in sel.select(wait):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                while True:
                    try:
                        data, addr = sock.recvfrom(65535)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        break
                    try:
                        self._on_datagram(sock, data, addr)
                    except Exception as e:  # noqa: BLE001 - keep relaying; report it
                        self.errors.append(f"{type(e).__name__}: {e}")
        sel.close()

    def _queue(self, due: float, sock: socket.socket, data: bytes, addr: tuple[str, int],
               direction: str = "") -> None:
        self._n += 1
        heapq.heappush(self._heap, (due, self._n, sock, data, addr, direction))

    def _on_datagram(self, sock: socket.socket, data: bytes, addr: tuple[str, int]) -> None:
        now = time.monotonic()
        if sock is self.sip:
            self._on_sip(data, addr, now)
            return
        if sock is self.caller_rtp and self.gateway_media:
            self._media(now, "to_gateway", self.gw_rtp, data,
                        (self.gateway_media.ip, self.gateway_media.port))
        elif sock is self.gw_rtp and self.caller_media:
            self._media(now, "to_caller", self.caller_rtp, data,
                        (self.caller_media.ip, self.caller_media.port))
        elif sock is self.caller_rtcp and self.gateway_media:  # RTCP: untouched
            self._queue(now, self.gw_rtcp, data,
                        (self.gateway_media.ip, self.gateway_media.rtcp_port))
        elif sock is self.gw_rtcp and self.caller_media:
            self._queue(now, self.caller_rtcp, data,
                        (self.caller_media.ip, self.caller_media.rtcp_port))

    def _media(self, now: float, direction: str, out_sock: socket.socket, data: bytes,
               dest: tuple[str, int]) -> None:
        if self.origin is None and is_rtp(data):
            self.origin = now
        t0 = self.origin if self.origin is not None else now
        if is_rtp(data):
            self.dirs[direction].received.append((now - t0, data))
        for o in self.dirs[direction].impairer.process(now - t0, data):
            self._queue(t0 + o.due, out_sock, o.data, dest, direction)

    def _on_sip(self, data: bytes, addr: tuple[str, int], now: float) -> None:
        first = data.split(b"\r\n", 1)[0].decode("utf-8", "replace")
        if addr == self.gateway:
            if self.caller_sip is None:
                return
            data, media = rewrite_sdp(data, self.host, self.caller_rtp.getsockname()[1])
            if media:
                self.gateway_media = media
            self.sip_log.append((now, "->caller", first))
            self._queue(now, self.sip, data, self.caller_sip)
        else:
            self.caller_sip = addr
            data, media = rewrite_sdp(data, self.host, self.gw_rtp.getsockname()[1])
            if media:
                self.caller_media = media
            self.sip_log.append((now, "->gw", first))
            self._queue(now, self.sip, data, self.gateway)

    def report(self) -> dict[str, dict[str, int]]:
        return {k: dict(d.impairer.counts) for k, d in self.dirs.items()}


def loud_times(packets: list[tuple[float, bytes]], threshold: float = 500.0,
               payload_type: int = 0) -> list[float]:
    """Times of the G.711 mu-law packets (``payload_type`` 0) whose audio is louder than
    ``threshold`` RMS (16-bit scale): where someone was talking."""
    import numpy as np

    from testbed.speech_corpus import ulaw_decode

    out = []
    for t, pkt in packets:
        if len(pkt) <= 12 or rtp_fields(pkt)[0] != payload_type:
            continue
        pcm = ulaw_decode(np.frombuffer(pkt[12:], dtype=np.uint8)).astype(np.float64)
        if np.sqrt((pcm ** 2).mean()) > threshold:
            out.append(t)
    return out


# --- a SIP probe -----------------------------------------------------------------------------

def sip_options(host: str, port: int, timeout: float = 2.0) -> str | None:
    """Send one OPTIONS over UDP; the status line of the first reply, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(timeout)
        lport = s.getsockname()[1]
        tag = uuid.uuid4().hex[:8]
        msg = (f"OPTIONS sip:bot@{host}:{port} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP 127.0.0.1:{lport};branch=z9hG4bK{uuid.uuid4().hex[:16]};rport\r\n"
               f"Max-Forwards: 70\r\nTo: <sip:bot@{host}:{port}>\r\n"
               f"From: <sip:probe@127.0.0.1>;tag={tag}\r\nCall-ID: {uuid.uuid4().hex}@probe\r\n"
               f"CSeq: 1 OPTIONS\r\nContact: <sip:probe@127.0.0.1:{lport}>\r\n"
               "Accept: application/sdp\r\nContent-Length: 0\r\n\r\n")
        try:
            s.sendto(msg.encode(), (host, port))
            data, _ = s.recvfrom(65535)
        except OSError:
            return None
        return data.decode("utf-8", "replace").split("\r\n", 1)[0]
