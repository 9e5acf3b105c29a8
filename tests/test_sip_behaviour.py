"""SIP behaviour of the real gateway, driven by sipp (and one raw-socket UAC) on loopback.

One gateway for the whole module (it takes ~20 s to start), configured with
``[sip] user = "bot"`` so the wrong-user test needs no second gateway; every other test dials
``sip:bot@127.0.0.1:<port>``. The scenarios live in ``tests/sipp/``; every sipp run writes
its ``-trace_msg`` and ``-trace_err`` logs to the test's tmp dir, and the assertions read the
responses from those logs (status lines, headers), not from sipp's counters alone.

Media: a sipp call's SDP points the gateway's RTP at an ``RtpPeer`` of this module (a UDP
socket that records every packet the gateway sends and answers with mu-law silence), so a
test can check that the gateway really sends audio (its spoken greeting) on each call.

Ports: every socket is on 127.0.0.1 with a free ephemeral port (never 5060-5099 or 22222).
Every sipp process and RTP peer is stopped in teardown; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import re
import shutil
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
import pytest

from tests.harness import GatewayProcess, active_spans, free_udp_port

pytestmark = pytest.mark.e2e

SIPP_DIR = Path(__file__).resolve().parent / "sipp"
CAPACITY = 4  # the pjsua2 wheel's PJSUA_MAX_CALLS; [sip] max_calls defaults to it
RETRY_AFTER = 10  # [sip] retry_after_seconds default


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
        head = re.split(r"\r?\n\r?\n", self.text, maxsplit=1)[0]
        for line in head.splitlines()[1:]:
            key, sep, value = line.partition(":")
            if sep and key.strip().lower() == name.lower():
                return value.strip()
        return None

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
    come from, so pjsua never has a reason to switch its remote address.
    """

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.02)
        self.port = self.sock.getsockname()[1]
        self.received: list[tuple[float, int, bytes]] = []  # (monotonic time, PT, payload)
        self.remote: tuple[str, int] | None = None
        self.sent = 0
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

    def audio(self) -> np.ndarray:
        """The PCMU the gateway sent, decoded (8 kHz), in arrival order."""
        chunks = [_ulaw_to_linear(p) for _, pt, p in list(self.received) if pt == 0]
        return np.concatenate(chunks) if chunks else np.zeros(0, np.int16)

    def voiced_seconds(self) -> float:
        return sum(b - a for a, b in active_spans(self.audio(), 8000))


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


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    if shutil.which("sipp") is None:
        pytest.skip("needs sipp (apt-get install sip-tester)")
    gw = GatewayProcess(tmp_path_factory.mktemp("gw"), extra_toml='user = "bot"')
    try:
        gw.start()
    except BaseException:
        gw.stop()
        raise
    yield gw
    code = gw.stop()
    assert code == 0, f"gateway exit code {code}:\n{gw.log()[-4000:]}"


@pytest.fixture
def cleanup():
    """Collects sipp runs and RTP peers; kills / closes all of them after the test."""
    things: list[SippRun | RtpPeer] = []
    yield things
    for thing in things:
        with contextlib.suppress(Exception):
            thing.kill() if isinstance(thing, SippRun) else thing.close()


@pytest.fixture
def sipp(gateway, tmp_path, cleanup):
    """sipp(name, scenario, **kw) -> a not yet started SippRun aimed at the gateway."""
    def make(name: str, scenario: str, **kw) -> SippRun:
        run = SippRun(tmp_path / "sipp", name, scenario, f"127.0.0.1:{gateway.sip_port}", **kw)
        cleanup.append(run)
        return run

    gateway_idle(gateway)
    return make


@pytest.fixture
def rtp_peers(cleanup):
    def make(n: int) -> list[RtpPeer]:
        peers = [RtpPeer() for _ in range(n)]
        cleanup.extend(peers)
        return peers

    return make


def hold_calls(sipp, rtp_peers, name: str, n: int, hold_ms: int) -> tuple[SippRun, list]:
    """n concurrent answered calls (call_hold.xml), each with its own RTP peer; started."""
    peers = rtp_peers(n)
    run = sipp(name, "call_hold.xml", calls=n, hold_ms=hold_ms,
               inject=[[str(p.port)] for p in peers]).start()
    return run, peers


def assert_full_capacity(gateway, sipp, rtp_peers, name: str = "capacity") -> None:
    """CAPACITY new concurrent calls are all answered and served, and end (no leaked slot).

    Run right after an earlier call ended, as a caller would: a call the gateway admits must
    also get its conversation (the greeting), not just a 200 OK.
    """
    log = GatewayLog(gateway)
    run, peers = hold_calls(sipp, rtp_peers, name, CAPACITY, hold_ms=6000)
    run.wait()
    gateway_byes = [m for m in run.messages if m.direction == "received" and m.method == "BYE"]
    assert not gateway_byes, "the gateway hung up a fresh call:\n" + gateway_byes[0].text
    run.assert_ok()
    assert sorted(outcomes(run.messages, "INVITE").values()) == [200] * CAPACITY, run.report()
    for p in peers:
        assert len(p.received) > 100, f"port {p.port}: {len(p.received)} RTP packets in 6 s"
        assert p.voiced_seconds() > 0.5, f"port {p.port}: no greeting\n{log.text()[-3000:]}"
    log.wait_all_ended(expect=CAPACITY)


# --------------------------------------------------------------------------- tests


def test_options_gets_200(sipp):
    run = sipp("options", "options.xml", timeout_s=10).run()
    run.assert_ok()
    reply = final_response(run.messages, "OPTIONS")
    assert reply.first_line == "SIP/2.0 200 OK", run.report()
    allow = {m.strip() for m in (reply.header("Allow") or "").split(",")}
    accept = reply.header("Accept") or ""
    print(f"\nOPTIONS 200: Allow: {reply.header('Allow')}\n  Accept: {accept}\n"
          f"  Supported: {reply.header('Supported')}\n  User-Agent: {reply.header('User-Agent')}")
    assert {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS"} <= allow, reply.text
    assert "application/sdp" in accept, reply.text


@pytest.mark.parametrize(("pt", "rtpmap"), [("3", "GSM/8000"), ("111", "opus/48000/2")],
                         ids=["gsm", "opus"])
def test_unsupported_codec_gets_488_and_leaves_no_call(gateway, sipp, rtp_peers, pt, rtpmap):
    log = GatewayLog(gateway)
    run = sipp(f"codec-{pt}", "invite_refused.xml", timeout_s=10,
               keys={"rtp_port": str(free_udp_port()), "pt": pt, "rtpmap": rtpmap}).run()
    run.assert_ok()
    reply = final_response(run.messages, "INVITE")
    assert reply.status == 488, run.report()
    assert reply.first_line == "SIP/2.0 488 Not Acceptable Here", run.report()
    print(f"\n{rtpmap}: {reply.first_line}; Warning: {reply.header('Warning')}")
    time.sleep(0.5)
    assert log.calls() == {}, f"the refused INVITE left a call behind:\n{log.text()}"

    # the next real call still works: answered, RTP both ways, ended
    call, [peer] = hold_calls(sipp, rtp_peers, f"after-{pt}", 1, hold_ms=1500)
    call.wait()
    call.assert_ok()
    assert final_response(call.messages, "INVITE").status == 200, call.report()
    assert len(peer.received) > 10, "no RTP from the gateway on the call after the 488"
    log.wait_all_ended(expect=1)


def test_wrong_user_gets_404(gateway, sipp):
    log = GatewayLog(gateway)
    run = sipp("wrong-user", "invite_refused.xml", service="alice", timeout_s=10,
               keys={"rtp_port": str(free_udp_port()), "pt": "0", "rtpmap": "PCMU/8000"}).run()
    run.assert_ok()
    reply = final_response(run.messages, "INVITE")
    assert reply.first_line == "SIP/2.0 404 Not Found", run.report()
    calls = log.wait_all_ended(expect=1)
    [events] = calls.values()
    assert "alice" in events["refused:"], log.text()
    assert events["ended:"].startswith("404"), log.text()


def test_bye_from_caller_ends_the_call(gateway, sipp, rtp_peers):
    log = GatewayLog(gateway)
    run, [peer] = hold_calls(sipp, rtp_peers, "bye", 1, hold_ms=3000)
    run.wait()
    run.assert_ok()
    msgs = run.messages
    assert final_response(msgs, "INVITE").status == 200, run.report()
    bye_reply = final_response(msgs, "BYE")
    assert bye_reply.first_line == "SIP/2.0 200 OK", run.report()
    assert len(peer.received) > 50, f"only {len(peer.received)} RTP packets in 3 s"

    [(name, events)] = log.wait_all_ended(expect=1).items()
    ended = events["ended:"]
    assert ended.startswith("200 Normal call clearing"), log.text()
    rx = re.search(r"'rx_packets': (\d+)", ended)
    assert rx and int(rx.group(1)) > 0, f"the gateway got none of our RTP: {ended}"
    # the slot is free again: the full capacity is available
    assert_full_capacity(gateway, sipp, rtp_peers, "after-bye")


def test_capacity_fifth_call_gets_503_with_retry_after(gateway, sipp, rtp_peers):
    log = GatewayLog(gateway)
    hold_ms = 14000
    run, peers = hold_calls(sipp, rtp_peers, "four", CAPACITY, hold_ms=hold_ms)
    started = time.monotonic()

    def media_up() -> int:
        return sum(1 for ev in log.calls().values() if "media up" in ev)

    wait_until(f"{CAPACITY} calls with media up", lambda: media_up() == CAPACITY
               and all(p.received for p in peers), 10, lambda: run.report() + log.text())

    fifth = sipp("fifth", "invite_refused.xml", timeout_s=10,
                 keys={"rtp_port": str(free_udp_port()), "pt": "0", "rtpmap": "PCMU/8000"})
    fifth.run()
    refused_at = time.monotonic()
    assert time.monotonic() - started < hold_ms / 1000 - 3, "too slow: the 4 calls may be gone"
    fifth.assert_ok()
    reply = final_response(fifth.messages, "INVITE")
    assert reply.first_line == "SIP/2.0 503 Service Unavailable", fifth.report()
    retry_after = reply.header("Retry-After")
    assert retry_after is not None, f"503 without Retry-After:\n{reply.text}"
    assert re.fullmatch(r"\d+", retry_after) and int(retry_after) == RETRY_AFTER, reply.text
    assert f"refused a call: {CAPACITY}/{CAPACITY} calls active (503, Retry-After " \
           f"{RETRY_AFTER})" in log.text()

    assert run.wait() == 0, run.report()
    run.assert_ok()
    msgs = run.messages
    assert sorted(outcomes(msgs, "INVITE").values()) == [200] * CAPACITY, run.report()
    assert sorted(outcomes(msgs, "BYE").values()) == [200] * CAPACITY, run.report()
    for p in peers:
        # the calls kept their audio after the refusal, and it carried the spoken greeting
        after = p.packets_after(refused_at)
        assert after > 100, f"port {p.port}: {after} RTP packets after the 503"
        voiced = p.voiced_seconds()
        print(f"\ncall on port {p.port}: {len(p.received)} packets, {voiced:.1f} s voiced")
        assert voiced > 1.0, f"port {p.port}: the gateway sent no greeting ({voiced:.2f} s)"

    calls = log.wait_all_ended(expect=CAPACITY)
    assert len(calls) == CAPACITY, log.text()  # the 503 never reached pjsua's call slots
    assert all(ev["ended:"].startswith("200") for ev in calls.values()), log.text()
    assert_full_capacity(gateway, sipp, rtp_peers, "after-503")


# --- CANCEL --------------------------------------------------------------------------------


def invite_then_cancel(sip_port: int, rtp_port: int, timeout: float = 10.0) -> list[SipMessage]:
    """Send an INVITE and its CANCEL back to back, then finish whichever way it went.

    sipp cannot do this: it runs each scenario step in a later pass of its event loop, by
    which time pjsua's 100 (and often its 200) has arrived, so the CANCEL would go out after
    the final response. Here both datagrams leave within microseconds. Outcomes (RFC 3261
    9.2): 200 (CANCEL) + 487 (INVITE) -> ACK; or 200 (INVITE) -> ACK + BYE, the CANCEL then
    answered 200 or 481.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    lport = sock.getsockname()[1]
    remote = ("127.0.0.1", sip_port)
    uri = f"sip:bot@127.0.0.1:{sip_port}"
    call_id = f"{uuid.uuid4().hex}@127.0.0.1"
    from_ = f"<sip:canceller@127.0.0.1:{lport}>;tag={uuid.uuid4().hex[:10]}"
    to = f"<{uri}>"
    branch = f"z9hG4bK-{uuid.uuid4().hex[:16]}"
    log: list[SipMessage] = []

    def send(method: str, cseq: int, to_hdr: str, br: str, body: str = "") -> None:
        lines = [f"{method} {uri} SIP/2.0",
                 f"Via: SIP/2.0/UDP 127.0.0.1:{lport};branch={br}",
                 f"From: {from_}", f"To: {to_hdr}", f"Call-ID: {call_id}",
                 f"CSeq: {cseq} {method}", "Max-Forwards: 70"]
        if method == "INVITE":
            lines += [f"Contact: <sip:canceller@127.0.0.1:{lport}>",
                      "Content-Type: application/sdp"]
        text = "\r\n".join([*lines, f"Content-Length: {len(body)}", "", body])
        sock.sendto(text.encode(), remote)
        log.append(SipMessage("sent", text))

    sdp = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
           f"m=audio {rtp_port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n")
    try:
        send("INVITE", 1, to, branch, sdp)
        send("CANCEL", 1, to, branch)
        deadline = time.monotonic() + timeout
        invite_final: SipMessage | None = None
        cancel_final: SipMessage | None = None
        bye_sent_at: float | None = None
        bye_final: SipMessage | None = None
        dialog_to = ""
        bye_branch = f"z9hG4bK-{uuid.uuid4().hex[:16]}"
        while time.monotonic() < deadline:
            if bye_final is not None or (invite_final is not None and invite_final.status >= 300
                                         and cancel_final is not None):
                break
            sock.settimeout(0.2)
            try:
                data, _ = sock.recvfrom(65535)
            except TimeoutError:
                data = b""
            if data:
                msg = SipMessage("received", data.decode("utf-8", "replace"))
                log.append(msg)
                if msg.status is None:
                    if msg.method == "BYE":  # the gateway hung up first: answer it
                        resp = ["SIP/2.0 200 OK"] + [
                            f"{h}: {msg.header(h)}" for h in ("Via", "From", "To", "Call-ID",
                                                              "CSeq")]
                        sock.sendto(("\r\n".join([*resp, "Content-Length: 0", "", ""])).encode(),
                                    remote)
                    continue
                if msg.cseq_method == "CANCEL" and msg.status >= 200:
                    cancel_final = cancel_final or msg
                elif msg.cseq_method == "INVITE" and msg.status >= 200:
                    first = invite_final is None
                    invite_final = invite_final or msg
                    if msg.status >= 300:  # ACK a non-2xx: same branch, its To tag
                        send("ACK", 1, msg.header("To") or to, branch)
                    else:  # ACK the 2xx (every retransmission too): a new transaction
                        dialog_to = msg.header("To") or to
                        send("ACK", 1, dialog_to, f"z9hG4bK-{uuid.uuid4().hex[:16]}")
                        if first:
                            send("BYE", 2, dialog_to, bye_branch)
                            bye_sent_at = time.monotonic()
                elif msg.cseq_method == "BYE" and msg.status >= 200:
                    bye_final = msg
            if bye_sent_at is not None and bye_final is None \
                    and time.monotonic() - bye_sent_at > 1.0:  # retransmit the BYE
                send("BYE", 2, dialog_to, bye_branch)
                bye_sent_at = time.monotonic()
        if cancel_final is None:  # a late answer to the CANCEL, if any
            sock.settimeout(0.5)
            with contextlib.suppress(TimeoutError):
                data, _ = sock.recvfrom(65535)
                log.append(SipMessage("received", data.decode("utf-8", "replace")))
        return log
    finally:
        sock.close()


def test_cancel_right_after_invite_leaves_no_call(gateway, sipp, rtp_peers):
    log = GatewayLog(gateway)
    [peer] = rtp_peers(1)
    msgs = invite_then_cancel(gateway.sip_port, peer.port)
    flow = "\n".join(f"  {m.direction:8} {m.first_line} ({m.header('CSeq')})" for m in msgs)
    print(f"\nINVITE + CANCEL:\n{flow}")
    invite = final_response(msgs, "INVITE")
    cancel_replies = [m.status for m in responses(msgs, "CANCEL")]
    if invite.status == 487:  # the CANCEL took effect before the answer
        assert 200 in cancel_replies, flow
        assert any(m.method == "ACK" for m in msgs if m.direction == "sent"), flow
    else:  # the 200 won the race: the call was set up and we ended it with BYE
        assert invite.status == 200, flow
        assert set(cancel_replies) <= {200, 481}, flow
        assert final_response(msgs, "BYE").status == 200, flow

    calls = log.wait_all_ended(expect=1)
    assert len(calls) == 1, log.text()
    [(name, events)] = calls.items()
    print(f"gateway: {name} ended: {events['ended:'][:60]}")
    # no slot leaked: the full capacity is still there
    assert_full_capacity(gateway, sipp, rtp_peers, "after-cancel")


# --- shutdown (keep last: it stops the module's gateway) ------------------------------------


def test_shutdown_with_calls_up_hangs_up_and_exits_cleanly(gateway, sipp, rtp_peers):
    """SIGTERM with every slot busy: each caller gets a BYE and the process exits 0."""
    log = GatewayLog(gateway)
    run, peers = hold_calls(sipp, rtp_peers, "at-shutdown", CAPACITY, hold_ms=30000)
    wait_until(f"{CAPACITY} calls with media up",
               lambda: sum(1 for ev in log.calls().values() if "media up" in ev) == CAPACITY,
               10, lambda: run.report() + log.text())
    code = gateway.stop()
    assert code == 0, f"gateway exit code {code} on SIGTERM with calls up:\n{log.text()[-3000:]}"
    wait_until("a BYE from the gateway on every call", lambda: len(
        {m.header("Call-ID") for m in run.messages
         if m.direction == "received" and m.method == "BYE"}) == CAPACITY, 10, run.report)
    run.kill()
    calls = log.calls()
    assert len(calls) == CAPACITY and all("ended:" in ev for ev in calls.values()), log.text()
