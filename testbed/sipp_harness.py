"""Helpers for driving the real gateway with sipp and raw RTP on loopback: sipp processes
and their -trace_msg logs parsed into SIP messages, an RTP peer that records what the gateway
sends, the gateway log's per-call events, and bounded waits. Used by the SIP test modules and
by the benches that place calls with sipp."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import socket
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from testbed.harness import GatewayProcess, active_spans, free_udp_port

SIPP_DIR = Path(__file__).resolve().parent / "sipp"


# --------------------------------------------------------------------------- sip messages


@dataclass
class SipMessage:
    direction: str  # "sent" or "received"
    text: str

    @property
    def first_line(self) -> str:
        return self.text.split("\r\n", 1)[0].split("\n", 1)[0].strip()

    @property
    def status(self) -> int | None:
        m = re.match(r"SIP/2\.0 (\d{3}) ", self.first_line)
        return int(m.group(1)) if m else None

    @property
    def method(self) -> str | None:
        """The request method (None for a response)."""
        return None if self.status is not None else self.first_line.split(" ", 1)[0]

    def header(self, name: str) -> str | None:
        values = self.headers(name)
        return values[0] if values else None

    def headers(self, name: str) -> list[str]:
        """Every value of the header ``name``, in order."""
        head = re.split(r"\r?\n\r?\n", self.text, maxsplit=1)[0]
        out = []
        for line in head.splitlines()[1:]:
            key, sep, value = line.partition(":")
            if sep and key.strip().lower() == name.lower():
                out.append(value.strip())
        return out

    @property
    def cseq_method(self) -> str | None:
        cseq = self.header("CSeq")
        return cseq.split()[-1] if cseq else None

    @property
    def body(self) -> str:
        parts = re.split(r"\r?\n\r?\n", self.text, maxsplit=1)
        return parts[1] if len(parts) > 1 else ""


def parse_sipp_trace(path: Path) -> list[SipMessage]:
    """The messages of a sipp ``-trace_msg`` log, in order (its 'Unexpected' echoes left out)."""
    if not path.exists():
        return []
    out: list[SipMessage] = []
    text = path.read_text("utf-8", "replace")
    for entry in re.split(r"^-{20,}[^\n]*\n", text, flags=re.M):
        m = re.match(r"\s*UDP message (sent|received)[^\n]*\n\s*\n", entry)
        if m:
            out.append(SipMessage(m.group(1), entry[m.end():].strip() + "\r\n"))
    return out


def timed_trace(path: Path) -> list[tuple[float, SipMessage]]:
    """(wall-clock time, message) for each message of a sipp -trace_msg log, in order."""
    if not path.exists():
        return []
    out: list[tuple[float, SipMessage]] = []
    text = path.read_text("utf-8", "replace")
    parts = re.split(r"^-{20,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\n", text, flags=re.M)
    for stamp, entry in zip(parts[1::2], parts[2::2], strict=True):
        m = re.match(r"\s*UDP message (sent|received)[^\n]*\n\s*\n", entry)
        if m:
            t = dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()
            out.append((t, SipMessage(m.group(1), entry[m.end():].strip() + "\r\n")))
    return out


def responses(messages: list[SipMessage], cseq_method: str) -> list[SipMessage]:
    return [m for m in messages if m.direction == "received" and m.status is not None
            and m.cseq_method == cseq_method]


def outcomes(messages: list[SipMessage], cseq_method: str) -> dict[str, int]:
    """{Call-ID: status of the first final response to cseq_method} (retransmissions aside)."""
    out: dict[str, int] = {}
    for m in responses(messages, cseq_method):
        if m.status >= 200:
            out.setdefault(m.header("Call-ID") or "", m.status)
    return out


def final_response(messages: list[SipMessage], cseq_method: str) -> SipMessage:
    finals = [m for m in responses(messages, cseq_method) if m.status >= 200]
    assert finals, f"no final response to {cseq_method}: {[m.first_line for m in messages]}"
    return finals[0]


# --------------------------------------------------------------------------- processes


@dataclass
class SippRun:
    """One sipp process: ``start()``, then ``wait()``; its logs are in ``workdir``."""

    workdir: Path
    name: str
    scenario: str
    target: str  # "127.0.0.1:<port>"
    service: str = "bot"
    calls: int = 1
    hold_ms: int | None = None  # -d: the <pause/> length
    keys: dict[str, str] = field(default_factory=dict)
    inject: list[list[str]] | None = None  # -inf rows, read SEQUENTIAL ([field0], ...)
    timeout_s: int = 40
    proc: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.trace = self.workdir / f"{self.name}_messages.log"
        self.errors = self.workdir / f"{self.name}_errors.log"
        self.screen = self.workdir / f"{self.name}_screen.log"

    def command(self) -> list[str]:
        cmd = ["sipp", self.target, "-sf", str(SIPP_DIR / self.scenario), "-s", self.service,
               "-i", "127.0.0.1", "-p", str(free_udp_port()), "-mp", str(free_udp_port()),
               "-cp", str(free_udp_port()), "-m", str(self.calls), "-l", str(self.calls),
               "-r", "50", "-timeout", f"{self.timeout_s}s", "-timeout_error",
               "-trace_msg", "-message_file", str(self.trace),
               "-trace_err", "-error_file", str(self.errors), "-nostdin"]
        if self.hold_ms is not None:
            cmd += ["-d", str(self.hold_ms)]
        for k, v in self.keys.items():
            cmd += ["-key", k, v]
        if self.inject is not None:
            inf = self.workdir / f"{self.name}.csv"
            inf.write_text("SEQUENTIAL\n" + "".join(";".join(r) + ";\n" for r in self.inject))
            cmd += ["-inf", str(inf)]
        return cmd

    def start(self) -> SippRun:
        self._out = self.screen.open("wb")
        self.proc = subprocess.Popen(self.command(), cwd=self.workdir, stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=subprocess.STDOUT)
        return self

    def wait(self, timeout: float | None = None) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout if timeout is not None else self.timeout_s + 15)
        finally:
            self._out.close()

    def run(self) -> SippRun:
        self.start()
        self.wait()
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.returncode

    @property
    def messages(self) -> list[SipMessage]:
        return parse_sipp_trace(self.trace)

    def report(self) -> str:
        """What to show when an assertion about this run fails."""
        errors = self.errors.read_text("utf-8", "replace") if self.errors.exists() else ""
        screen = self.screen.read_bytes().decode("utf-8", "replace") if self.screen.exists() \
            else ""
        flow = "\n".join(f"  {m.direction:8} {m.first_line}" for m in self.messages)
        return (f"sipp {self.name} exited {self.returncode}\nflow:\n{flow}\n"
                f"errors:\n{errors[-3000:]}\nscreen (tail):\n{screen[-1500:]}")

    def assert_ok(self) -> None:
        assert self.returncode == 0, self.report()
        # -trace_err also logs harmless notes; an aborted or failed call is never harmless
        errors = self.errors.read_text("utf-8", "replace") if self.errors.exists() else ""
        assert "Aborting call" not in errors and "timed out" not in errors, self.report()


def _ulaw_to_linear(data: bytes) -> np.ndarray:
    u = ~np.frombuffer(data, dtype=np.uint8)
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = ((mantissa.astype(np.int32) << 3) + 0x84) << exponent
    return np.where(sign != 0, 0x84 - magnitude, magnitude - 0x84).astype(np.int16)


class RtpPeer:
    """The caller's media end: records the gateway's RTP, answers with mu-law silence.

    Symmetric RTP: it sends from the port it advertised to wherever the gateway's packets
    come from, so pjsua never has a reason to switch its remote address. ``quiet = True``
    stops sending (a phone on hold without music).
    """

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.02)
        self.port = self.sock.getsockname()[1]
        self.received: list[tuple[float, int, bytes]] = []  # (monotonic time, PT, payload)
        self.remote: tuple[str, int] | None = None
        self.sent = 0
        self.quiet = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rtp-{self.port}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        ssrc, seq, ts = 0x5EED0000 | (self.port & 0xFFFF), 0, 0
        next_tx = time.monotonic()
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(2048)
                if len(data) >= 12 and data[0] >> 6 == 2:
                    cc = data[0] & 0x0F
                    self.received.append((time.monotonic(), data[1] & 0x7F, data[12 + 4 * cc:]))
                    self.remote = addr
            except (TimeoutError, OSError):
                pass
            now = time.monotonic()
            if self.remote is not None and now >= next_tx:
                if not self.quiet:
                    pkt = struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
                    with contextlib.suppress(OSError):
                        self.sock.sendto(pkt + b"\xff" * 160, self.remote)
                        self.sent += 1
                seq, ts = seq + 1, ts + 160
                next_tx = max(next_tx + 0.02, now - 0.1)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()

    def packets_after(self, t: float) -> int:
        return sum(1 for when, _, _ in self.received if when > t)

    def packets_between(self, a: float, b: float) -> int:
        return sum(1 for when, _, _ in self.received if a < when <= b)

    def audio(self) -> np.ndarray:
        """The PCMU the gateway sent, decoded (8 kHz), in arrival order."""
        chunks = [_ulaw_to_linear(p) for _, pt, p in list(self.received) if pt == 0]
        return np.concatenate(chunks) if chunks else np.zeros(0, np.int16)

    def voiced_seconds(self) -> float:
        return sum(b - a for a, b in active_spans(self.audio(), 8000))


class RawUac:
    """A hand-driven SIP UAC on one UDP socket, for flows sipp cannot express (messages sent
    back to back, copies of one INVITE). Every message both ways is logged with its time
    since the UAC was made; a BYE from the gateway is answered 200 at once."""

    def __init__(self, sip_port: int, user: str) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.lport = self.sock.getsockname()[1]
        self.remote = ("127.0.0.1", sip_port)
        self.uri = f"sip:bot@127.0.0.1:{sip_port}"
        self.user = user
        self.call_id = f"{uuid.uuid4().hex}@127.0.0.1"
        self.from_ = f"<sip:{user}@127.0.0.1:{self.lport}>;tag={uuid.uuid4().hex[:10]}"
        self.t0 = time.monotonic()
        self.log: list[tuple[float, SipMessage]] = []

    @staticmethod
    def branch() -> str:
        return f"z9hG4bK-{uuid.uuid4().hex[:16]}"

    @staticmethod
    def sdp(rtp_port: int) -> str:
        return ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                f"m=audio {rtp_port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n")

    def request(self, method: str, cseq: int, to: str, branch: str, body: str = "") -> str:
        lines = [f"{method} {self.uri} SIP/2.0",
                 f"Via: SIP/2.0/UDP 127.0.0.1:{self.lport};branch={branch}",
                 f"From: {self.from_}", f"To: {to}", f"Call-ID: {self.call_id}",
                 f"CSeq: {cseq} {method}", "Max-Forwards: 70"]
        if method == "INVITE":
            lines.append(f"Contact: <sip:{self.user}@127.0.0.1:{self.lport}>")
        if body:
            lines.append("Content-Type: application/sdp")
        return "\r\n".join([*lines, f"Content-Length: {len(body)}", "", body])

    def send(self, text: str) -> None:
        self.sock.sendto(text.encode(), self.remote)
        self.log.append((time.monotonic() - self.t0, SipMessage("sent", text)))

    def receive(self, timeout: float) -> SipMessage | None:
        """The next message from the gateway, or None after ``timeout`` seconds."""
        self.sock.settimeout(max(0.01, timeout))
        try:
            data, _ = self.sock.recvfrom(65535)
        except TimeoutError:
            return None
        msg = SipMessage("received", data.decode("utf-8", "replace"))
        self.log.append((time.monotonic() - self.t0, msg))
        if msg.method == "BYE":  # the gateway hung up: answer it
            resp = ["SIP/2.0 200 OK"] + [f"{h}: {msg.header(h)}"
                                         for h in ("Via", "From", "To", "Call-ID", "CSeq")]
            self.sock.sendto("\r\n".join([*resp, "Content-Length: 0", "", ""]).encode(),
                             self.remote)
        return msg

    def listen(self, until: Callable[[SipMessage], bool], seconds: float) -> SipMessage | None:
        """Receive for up to ``seconds``; the first message ``until`` accepts, else None."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            msg = self.receive(end - time.monotonic())
            if msg is None:
                break
            if until(msg):
                return msg
        return None

    def close(self) -> None:
        self.sock.close()


# --------------------------------------------------------------------------- gateway log

CALL_EVENT = re.compile(r"\[(call-\d+)\] gateway\.sip: (incoming from|refused:|ended:|media up)"
                        r"(.*)$", re.M)


def call_events(log: str) -> dict[str, dict[str, str]]:
    """{call name: {event: rest of the line}} for the gateway's per-call SIP log lines."""
    calls: dict[str, dict[str, str]] = {}
    for name, event, rest in CALL_EVENT.findall(log):
        calls.setdefault(name, {})[event] = rest.strip()
    return calls


def wait_until(what: str, predicate: Callable[[], bool], timeout: float,
               detail: Callable[[], str] = lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    if predicate():
        return
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{detail()}")


class GatewayLog:
    """The part of the gateway's log written since this object was made."""

    def __init__(self, gw: GatewayProcess) -> None:
        self.gw = gw
        self.offset = len(gw.log_path.read_bytes())

    def text(self) -> str:
        return self.gw.log_path.read_bytes()[self.offset:].decode("utf-8", "replace")

    def calls(self) -> dict[str, dict[str, str]]:
        return call_events(self.text())

    def open_calls(self) -> list[str]:
        return [n for n, ev in self.calls().items() if "ended:" not in ev]

    def wait_all_ended(self, expect: int | None = None, timeout: float = 20.0) -> dict:
        def done() -> bool:
            calls = self.calls()
            return (expect is None or len(calls) >= expect) and not self.open_calls()

        wait_until(f"{expect if expect is not None else 'all'} call(s) to end in the gateway "
                   "log", done, timeout, lambda: self.text()[-4000:])
        return self.calls()


def gateway_idle(gw: GatewayProcess, timeout: float = 20.0) -> None:
    """Every call the gateway ever logged has ended (nothing left over from earlier tests)."""
    def idle() -> bool:
        return all("ended:" in ev for ev in call_events(gw.log()).values())

    wait_until("the gateway to have no call up", idle, timeout, lambda: gw.log()[-4000:])

CAPACITY = 4  # the pjsua2 wheel's PJSUA_MAX_CALLS; [sip] max_calls defaults to it
RETRY_AFTER = 10  # [sip] retry_after_seconds default


def hold_calls(sipp, rtp_peers, name: str, n: int, hold_ms: int) -> tuple[SippRun, list]:
    """n concurrent answered calls (call_hold.xml), each with its own RTP peer; started."""
    peers = rtp_peers(n)
    run = sipp(name, "call_hold.xml", calls=n, hold_ms=hold_ms,
               inject=[[str(p.port)] for p in peers]).start()
    return run, peers


def assert_full_capacity(gateway, sipp, rtp_peers, name: str = "capacity",
                         capacity: int = CAPACITY) -> None:
    """``capacity`` new concurrent calls are all answered and served, and end (no leaked slot).

    Run right after an earlier call ended, as a caller would: a call the gateway admits must
    also get its conversation (the greeting), not just a 200 OK.
    """
    log = GatewayLog(gateway)
    run, peers = hold_calls(sipp, rtp_peers, name, capacity, hold_ms=6000)
    run.wait()
    gateway_byes = [m for m in run.messages if m.direction == "received" and m.method == "BYE"]
    assert not gateway_byes, "the gateway hung up a fresh call:\n" + gateway_byes[0].text
    run.assert_ok()
    assert sorted(outcomes(run.messages, "INVITE").values()) == [200] * capacity, run.report()
    for p in peers:
        assert len(p.received) > 100, f"port {p.port}: {len(p.received)} RTP packets in 6 s"
        assert p.voiced_seconds() > 0.5, f"port {p.port}: no greeting\n{log.text()[-3000:]}"
    log.wait_all_ended(expect=capacity)


def spoken_call(gateway: GatewayProcess, tmp_path: Path, *lines: tuple[str, float]) -> dict:
    """baresip says each line after the given silence (s), then waits; returns the record."""
    from gateway.calls import records
    from testbed.harness import baresip_call, espeak, need

    need("baresip", "espeak-ng", "sox")
    gateway_idle(gateway)
    rate = 16000
    parts = []
    for i, (text, pause) in enumerate(lines):
        parts += [np.zeros(int(pause * rate), np.int16),
                  espeak(text, tmp_path / f"line{i}.wav", rate=rate)]
    parts.append(np.zeros(10 * rate, np.int16))
    t0 = time.time()
    baresip_call(tmp_path / "caller", gateway.uri, np.concatenate(parts).astype(np.int16), rate)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        found = [r for r in records.read(gateway.workdir / "calls.jsonl").records()
                 if r.get("start_ts", 0) >= t0 - 1 and r.get("outcome")]
        if found:
            return found[-1]
        time.sleep(0.2)
    raise AssertionError("no closed record for the spoken call")


def sipp_maker(gateway, tmp_path, cleanup: list):
    """make(name, scenario, **kw) -> a not yet started SippRun aimed at ``gateway``."""
    def make(name: str, scenario: str, **kw) -> SippRun:
        run = SippRun(tmp_path / "sipp", name, scenario, f"127.0.0.1:{gateway.sip_port}", **kw)
        cleanup.append(run)
        return run

    return make
