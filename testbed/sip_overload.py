"""Many calls from sipp against one gateway: run sipp, read its timed trace, count what
was answered and refused, and check the gateway is still whole afterwards."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
import re
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from testbed.harness import GatewayProcess, free_udp_port
from testbed.sipp_harness import SIPP_DIR, RtpPeer, SipMessage, call_events

SCENARIO = "overload_uac.xml"
CAPACITY = 4


# --- sipp and its trace ----------------------------------------------------------------------

@dataclass
class TimedMessage(SipMessage):
    t: float = 0.0  # epoch seconds (sipp's clock)


_ENTRY_HEAD = re.compile(r"^-{20,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)[^\n]*\n", re.M)


def parse_timed_trace(path: Path) -> list[TimedMessage]:
    """The messages of a sipp ``-trace_msg`` log with their timestamps, in order."""
    if not path.exists():
        return []
    text = path.read_text("utf-8", "replace")
    heads = list(_ENTRY_HEAD.finditer(text))
    out: list[TimedMessage] = []
    for i, h in enumerate(heads):
        body = text[h.end(): heads[i + 1].start() if i + 1 < len(heads) else len(text)]
        m = re.match(r"\s*UDP message (sent|received)[^\n]*\n\s*\n", body)
        if not m:
            continue
        t = dt.datetime.strptime(h.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
        out.append(TimedMessage(m.group(1), body[m.end():].strip() + "\r\n", t))
    return out


class RtpSink:
    """One UDP port that takes (and drops) every call's RTP."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.packets = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rtp-sink", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                self.sock.recvfrom(4096)
                self.packets += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def run_sipp(workdir: Path, name: str, target: str, scenario: str, *, rate: float, calls: int,
             hold_ms: int, rows: list[list[str]] | None = None, timeout_s: int = 60,
             rate_period_ms: int = 1000) -> tuple[int, Path, str]:
    """Run sipp to completion; (exit code, message trace, screen output)."""
    workdir.mkdir(parents=True, exist_ok=True)
    trace = workdir / f"{name}_messages.log"
    cmd = ["sipp", target, "-sf", str(SIPP_DIR / scenario), "-s", "bot", "-i", "127.0.0.1",
           "-p", str(free_udp_port()), "-mp", str(free_udp_port()), "-cp", str(free_udp_port()),
           "-m", str(calls), "-l", "10000", "-r", str(rate), "-rp", str(rate_period_ms),
           "-d", str(hold_ms), "-timeout", f"{timeout_s}s", "-max_invite_retrans", "4",
           "-trace_msg", "-message_file", str(trace), "-nostdin"]
    if rows is not None:
        inf = workdir / f"{name}.csv"
        inf.write_text("SEQUENTIAL\n" + "".join(";".join(r) + ";\n" for r in rows))
        cmd += ["-inf", str(inf)]
    proc = subprocess.run(cmd, cwd=workdir, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=timeout_s + 30)
    return proc.returncode, trace, (proc.stdout + proc.stderr).decode("utf-8", "replace")


# --- analysis (pure) -------------------------------------------------------------------------

@dataclass
class CallView:
    call_id: str
    invite_at: float
    final_status: int | None = None
    final_at: float | None = None
    retry_after: str | None = None
    bye_done_at: float | None = None  # 200 to our BYE received (or the BYE sent, if none)

    @property
    def setup_ms(self) -> float | None:
        return None if self.final_at is None else (self.final_at - self.invite_at) * 1000


def calls_of(msgs: list[TimedMessage]) -> dict[str, CallView]:
    calls: dict[str, CallView] = {}
    for m in msgs:
        cid = m.header("Call-ID") or ""
        if m.direction == "sent" and m.method == "INVITE":
            if cid not in calls:
                calls[cid] = CallView(cid, m.t)
        elif m.direction == "received" and m.status is not None and cid in calls:
            c = calls[cid]
            if m.cseq_method == "INVITE" and m.status >= 200 and c.final_status is None:
                c.final_status, c.final_at = m.status, m.t
                c.retry_after = m.header("Retry-After")
            elif m.cseq_method == "BYE" and m.status >= 200 and c.bye_done_at is None:
                c.bye_done_at = m.t
        elif m.direction == "sent" and m.method == "BYE" and cid in calls:
            calls[cid].bye_sent_at = m.t  # type: ignore[attr-defined]
    return calls


def max_concurrent(intervals: list[tuple[float, float]]) -> int:
    """Most intervals open at one instant (an end at t comes before a start at t)."""
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals],
                    key=lambda e: (e[0], e[1]))
    most = cur = 0
    for _, d in events:
        cur += d
        most = max(most, cur)
    return most


def gateway_max_concurrent(log: str) -> int:
    """Most calls up at once in the gateway's own log (incoming .. ended/refused, in order)."""
    cur = most = 0
    up: set[str] = set()
    for line in log.splitlines():
        m = re.search(r"\[(call-\d+)\] gateway\.sip: (incoming from|ended:|refused:)", line)
        if not m:
            continue
        name, ev = m.groups()
        if ev == "incoming from":
            up.add(name)
        else:
            up.discard(name)
        cur = len(up)
        most = max(most, cur)
    return most


def pctl(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


@dataclass
class Step:
    rate: float
    seconds: float
    attempted: int = 0
    offered_rate: float = 0.0  # INVITEs per second actually sent (first to last INVITE)
    answered: int = 0
    refused_503: int = 0
    refused_503_retry_after: int = 0
    other: dict[str, int] = field(default_factory=dict)
    no_final: int = 0
    answered_ms: list[float] = field(default_factory=list)
    refused_ms: list[float] = field(default_factory=list)
    max_answered_at_once: int = 0
    gateway_max_up: int = 0
    gateway_cpu_s: float = 0.0
    wall_s: float = 0.0
    sipp_exit: int = 0
    idle_after: bool = True

    def summary(self) -> dict:
        d = dataclasses.asdict(self)
        for key in ("answered_ms", "refused_ms"):
            v = d.pop(key)
            d[key.replace("_ms", "")] = {"p50_ms": pctl(v, .5), "p95_ms": pctl(v, .95),
                                        "max_ms": max(v) if v else None}
        return d


def analyze(msgs: list[TimedMessage], rate: float, seconds: float) -> Step:
    step = Step(rate, seconds)
    calls = calls_of(msgs)
    step.attempted = len(calls)
    sent = sorted(c.invite_at for c in calls.values())
    if len(sent) > 1 and sent[-1] > sent[0]:
        step.offered_rate = (len(sent) - 1) / (sent[-1] - sent[0])
    intervals = []
    for c in calls.values():
        if c.final_status is None:
            step.no_final += 1
        elif c.final_status == 200:
            step.answered += 1
            step.answered_ms.append(c.setup_ms)
            end = c.bye_done_at or getattr(c, "bye_sent_at", None) or c.final_at + 3600
            intervals.append((c.final_at, end))
        elif c.final_status == 503:
            step.refused_503 += 1
            step.refused_ms.append(c.setup_ms)
            if c.retry_after and c.retry_after.strip().isdigit():
                step.refused_503_retry_after += 1
        else:
            key = str(c.final_status)
            step.other[key] = step.other.get(key, 0) + 1
    step.max_answered_at_once = max_concurrent(intervals)
    return step


# --- the gateway, seen from outside ----------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_gateway_idle(gw: GatewayProcess, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        evs = call_events(gw.log())
        if all("ended:" in ev or "refused:" in ev for ev in evs.values()):
            return True
        time.sleep(0.2)
    return False


def options_ok(gw: GatewayProcess, workdir: Path) -> bool:
    code, trace, _ = run_sipp(workdir, f"options{time.monotonic_ns()}",
                              f"127.0.0.1:{gw.sip_port}", "options.xml", rate=1, calls=1,
                              hold_ms=0, timeout_s=10)
    msgs = parse_timed_trace(trace)
    return code == 0 and any(m.direction == "received" and m.status == 200 for m in msgs)


def normal_call_ok(gw: GatewayProcess, workdir: Path, hold_ms: int = 2500) -> tuple[bool, str]:
    """One ordinary call (call_hold.xml): answered, the gateway's audio arrives, BYE 200."""
    peer = RtpPeer()
    try:
        t0 = time.monotonic()
        code, trace, screen = run_sipp(workdir, f"normal{time.monotonic_ns()}",
                                       f"127.0.0.1:{gw.sip_port}", "call_hold.xml", rate=1,
                                       calls=1, hold_ms=hold_ms, rows=[[str(peer.port)]],
                                       timeout_s=20)
        msgs = parse_timed_trace(trace)
        c = next(iter(calls_of(msgs).values()), None)
        pkts = peer.packets_after(t0)
    finally:
        peer.close()
    ok = (code == 0 and c is not None and c.final_status == 200 and c.bye_done_at is not None
          and pkts > 25)
    detail = (f"sipp exit {code}, INVITE -> {None if c is None else c.final_status}, "
              f"BYE answered {c is not None and c.bye_done_at is not None}, "
              f"{pkts} RTP packets from the gateway")
    return ok, detail
