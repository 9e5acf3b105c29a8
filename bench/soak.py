"""Soak: a real gateway under N concurrent talking calls for a while; watch for leaks and drift.

    .venv/bin/python -m bench.soak [--calls 2] [--minutes 30] [--out FILE] [--keep DIR]

Starts one gateway (a subprocess, like ``testbed.harness.GatewayProcess``, with its own journal
and /metrics port) and keeps ``--calls`` calls up for ``--minutes`` from a pjsua2 caller in
this process (``bench.turns``' scripted caller). Each call waits for the greeting, asks 2-5
spoken questions (espeak-ng, a different voice than the bot's), waiting for each answer to
finish, hangs up, and the next call starts at once: calls begin and end throughout the run,
so the whole pipeline (VAD -> Whisper -> llama.cpp -> Piper) runs continuously.

Every 5 s it samples the gateway process: RSS (/proc/PID/status VmRSS, and RssAnon: VmRSS
counts the LLM's read-only file mapping once per llama context), open file descriptors
(/proc/PID/fd), threads (/proc/PID/status Threads) and active calls (voicebot_active_calls on
/metrics). Every minute it prints a row with those figures (at the minute's end), the
gateway's CPU over the minute (% of one core, /proc/PID/stat), the calls started and ended,
and the TTFA of that minute's turns, p50/p95: at the caller (its jitter buffer delay
subtracted, as in ``bench.turns``) and as the gateway recorded it (call journal,
``turns[].ttfa_seconds``; a turn belongs to the minute in which its line appeared).

Baselines: fds and threads once the gateway is ready, and again idle after one warm-up call
(the first call creates thread pools that stay). At the end the callers stop, every call is
hung up, and once /metrics shows no call up, fds and threads must be back to the warm-up
baseline (leak verdict). Whether memory keeps growing: the RSS slope (least squares over all
samples, and over the second half alone, MB per minute), and the trend of quarter medians
(the anonymous RSS's median over each quarter of the run; the growth per minute from the
second quarter's median to the last one's). Heap use is a sawtooth of +-100 MB as calls
start and end, which makes a least-squares slope over 10-20 minutes swing by several MB/min
on a flat series; medians a quarter-run apart do not. The verdict: over 1 MB/min from the
second quarter to the last is growing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import socket
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.report import leave, write_json
from bench.turns import (
    QUESTIONS,
    Caller,
    CallerAudio,
    ask,
    make_port,
    new_call,
    pct,
    wait_quiet,
)
from testbed.harness import GatewayProcess, espeak, require_tools

SAMPLE_S = 5.0
_GATEWAYS: list[GatewayProcess] = []
_ALIVE: list = []
EXTRA_QUESTIONS = [
    "Do I need an appointment for a blood test?",
    "Is there parking near the clinic?",
    "What is your phone number?",
    "Do you see children?",
]


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the gateway process, seen from outside ------------------------------------------------

def proc_stats(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = int(re.search(r"^VmRSS:\s+(\d+)", status, re.M).group(1))
    anon_kb = int(re.search(r"^RssAnon:\s+(\d+)", status, re.M).group(1))
    threads = int(re.search(r"^Threads:\s+(\d+)", status, re.M).group(1))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    # utime + stime (fields 14 and 15 of /proc/PID/stat; the name in field 2 has no spaces)
    ticks = sum(int(x) for x in Path(f"/proc/{pid}/stat").read_text().split()[13:15])
    return {"rss_mb": rss_kb / 1024, "anon_mb": anon_kb / 1024, "threads": threads, "fds": fds,
            "cpu_s": ticks / os.sysconf("SC_CLK_TCK")}


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def metric(text: str, name: str) -> float | None:
    m = re.search(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? ([0-9.eE+-]+)", text, re.M)
    return float(m.group(1)) if m else None


def active_calls(port: int) -> float | None:
    try:
        return metric(scrape(port), "voicebot_active_calls")
    except OSError:
        return None


class JournalTail:
    """New turn lines of the call journal since the last look (ttfa_seconds of each)."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset = path, 0

    def new_turns(self) -> list[dict]:
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        end = data.rfind(b"\n", self.offset) + 1
        if end <= self.offset:
            return []
        chunk, self.offset = data[self.offset:end], end
        out = []
        for raw in chunk.splitlines():
            with contextlib.suppress(ValueError):
                obj = json.loads(raw)
                if obj.get("type") == "turn":
                    out.append(obj.get("turn") or {})
        return out


# --- the callers ---------------------------------------------------------------------------

class Slot:
    """One caller media port, reused call after call (ports are never destroyed mid-run)."""

    def __init__(self, caller: Caller, index: int) -> None:
        self.audio = CallerAudio()
        self.port = make_port(lambda: self.audio)
        self.port.createPort(f"soak{index}", caller.fmt)


PJ_ETOOMANY = 70010  # pjsua: no free call slot


def describe(e: BaseException) -> str:
    """An error's type and text; pjsua2's ``Error`` has an empty ``str()``, its text is in
    ``info()`` (a soak once reported 11 failed calls with no message at all)."""
    info = getattr(e, "info", None)
    text = str(e) or (info() if callable(info) else "")
    return f"{type(e).__name__}: {text}".strip()


def place_call(caller: Caller, slot: Slot, uri: str):
    pj = caller.pj
    port = slot.port

    c = new_call(pj, caller.acc, port)
    caller.keep.append(c)  # never destroyed mid-run (see bench.turns.Caller.close)
    # This caller has 4 call slots too, and pjsua frees a slot only after the DISCONNECTED
    # callback returns, which is what wakes the loop that redials: the first makeCall can
    # find the slot still taken (PJ_ETOOMANY; a 30-min soak counted 113 such "failed calls"
    # that never reached the gateway). Retry that one error briefly.
    for attempt in range(20):
        try:
            c.makeCall(uri, pj.CallOpParam(True))
            break
        except pj.Error as e:
            if e.status != PJ_ETOOMANY or attempt == 19:
                raise
            time.sleep(0.1)
    if not c.connected.wait(10):
        with contextlib.suppress(pj.Error):
            c.hangup(pj.CallOpParam())
        # its slot in this caller (4 at most) must be free before the next makeCall
        c.gone.wait(10)
        raise RuntimeError(f"call to {uri} did not connect ({c.last_status or 'no answer'})")
    return c


@dataclass
class TurnSample:
    t: float  # monotonic, when the answer started
    ttfa_ms: float | None


@dataclass
class Shared:
    lock: threading.Lock = field(default_factory=threading.Lock)
    turns: list[TurnSample] = field(default_factory=list)
    started: int = 0
    ended: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def call_loop(caller: Caller, slot: Slot, uri: str, clips: dict, stop: threading.Event,
              shared: Shared, rng: random.Random, name: str) -> None:
    caller.ep.libRegisterThread(name)
    texts = list(clips)
    while not stop.is_set():
        slot.audio = CallerAudio()
        call = None
        try:
            with shared.lock:
                shared.started += 1
            call = place_call(caller, slot, uri)
            wait_quiet(slot.audio, timeout=30)  # the greeting
            for _ in range(rng.randint(2, 5)):
                if stop.is_set() or call.gone.is_set():
                    break
                text = rng.choice(texts)
                t = ask(slot.audio, clips[text], "soak", text, "question")
                jb = caller.jitter_delay_ms(call)
                with shared.lock:
                    shared.turns.append(TurnSample(
                        time.monotonic(), None if t.ttfa_ms is None else t.ttfa_ms - jb))
                wait_quiet(slot.audio, timeout=40)
                time.sleep(rng.uniform(0.2, 1.0))
        except Exception as e:  # noqa: BLE001 - counted, reported; the soak goes on
            with shared.lock:
                shared.failed += 1
                shared.errors.append(f"{time.strftime('%H:%M:%S')} {name}: {describe(e)}")
            time.sleep(2)
        finally:
            if call is not None:
                caller.hangup(call)
            with shared.lock:
                shared.ended += 1
            slot.audio = CallerAudio()  # drop the call's audio; the port lives on


# --- the run -------------------------------------------------------------------------------

def idle_line(label: str, st: dict[str, float]) -> str:
    return (f"{label:<21} RSS {st['rss_mb']:7.1f} MB  anon {st['anon_mb']:7.1f} MB  "
            f"fds {st['fds']:4d}  threads {st['threads']:3d}")


def fmt_ms(v: list[float], q: float) -> str:
    return f"{pct(v, q):5.0f}" if v else "    -"


def slope_mb_per_min(samples: list[tuple[float, float]]) -> float:
    if len(samples) < 3:
        return float("nan")
    t = np.array([s[0] for s in samples]) / 60.0
    y = np.array([s[1] for s in samples])
    return float(np.polyfit(t, y, 1)[0])


def quarter_medians(samples: list[tuple[float, float]]) -> list[float]:
    """The median value over each quarter of the run (by time)."""
    if len(samples) < 8:
        return []
    end = samples[-1][0]
    return [float(np.median([v for t, v in samples if q * end / 4 <= t <= (q + 1) * end / 4]))
            for q in range(4)]


def quarter_trend(medians: list[float], seconds: float) -> float:
    """MB per minute from the 2nd quarter's median to the 4th's (half a run apart)."""
    return (medians[3] - medians[1]) / (seconds / 2 / 60) if medians else float("nan")


def wait_idle(metrics_port: int, timeout: float = 60.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if active_calls(metrics_port) == 0:
            return True
        time.sleep(0.5)
    return False


def run(args: argparse.Namespace, workdir: Path, out) -> int:  # noqa: C901, PLR0915
    def say(line: str = "") -> None:
        print(line, flush=True)
        if out is not None:
            out.write(line + "\n")
            out.flush()

    clips = {}
    for text in QUESTIONS + EXTRA_QUESTIONS:
        clips[text] = espeak(text, workdir / f"q{len(clips)}.wav")
    mport = free_tcp_port()
    gw = GatewayProcess(workdir / "gw", extra_toml=(
        f'[metrics]\nlisten_address = "127.0.0.1"\nport = {mport}\n'
        f'[records]\npath = "{workdir / "gw" / "calls.jsonl"}"\n'),
        env=dict(kv.split("=", 1) for kv in args.gateway_env))
    t_ready = time.monotonic()
    try:
        gw.start(timeout=900)  # a shared box: warming up has taken minutes under load
    except BaseException:
        gw.stop()
        raise
    _GATEWAYS.append(gw)  # stopped by main() whatever happens
    pid = gw.proc.pid
    say(f"soak: {args.calls} concurrent call(s) for {args.minutes} min against gateway pid {pid}"
        f" (sip {gw.sip_port}, metrics {mport}), started {time.strftime('%Y-%m-%d %H:%M:%S')}"
        f", host {os.cpu_count()} cores, load avg {os.getloadavg()[0]:.2f} at start"
        + (f", gateway env {' '.join(args.gateway_env)}" if args.gateway_env else ""))
    say(f"gateway ready in {time.monotonic() - t_ready:.1f} s; logs in {workdir}")
    time.sleep(2)
    at_ready = proc_stats(pid)
    caller = Caller()
    slots = [Slot(caller, i) for i in range(args.calls)]
    _ALIVE.extend([caller, slots])  # pjsua2 objects live until os._exit (see Caller.close)
    shared = Shared()
    # warm-up: one call, then idle, for the baseline
    stop = threading.Event()

    def warm_call() -> None:
        caller.ep.libRegisterThread("warmup")
        slot = slots[0]
        slot.audio = CallerAudio()
        c = place_call(caller, slot, gw.uri)
        try:
            wait_quiet(slot.audio, timeout=30)
            ask(slot.audio, clips[QUESTIONS[0]], "soak", QUESTIONS[0], "question")
            wait_quiet(slot.audio, timeout=40)
        finally:
            caller.hangup(c)
            slot.audio = CallerAudio()

    warm = threading.Thread(target=warm_call, name="warmup", daemon=True)
    warm.start()
    warm.join(120)
    if not wait_idle(mport):
        say("WARNING: the warm-up call did not end")
    time.sleep(3)
    baseline = proc_stats(pid)
    say(idle_line("idle at ready:", at_ready))
    say(idle_line("idle after warm-up:", baseline) + "   (leak baseline)")
    say()
    say(" min  calls+  calls-  up  RSS_MB  anon_MB  cpu%   fds  thr  turns  miss  caller_TTFA_ms"
        " p50/p95  gateway_TTFA_ms p50/p95  load")
    journal = JournalTail(workdir / "gw" / "calls.jsonl")
    journal.new_turns()  # the warm-up's turns are not part of the soak
    threads = [threading.Thread(target=call_loop, name=f"caller{i}", daemon=True,
                                args=(caller, slots[i], gw.uri, clips, stop, shared,
                                      random.Random(args.seed * 100 + i), f"caller{i}"))
               for i in range(args.calls)]
    t0 = time.monotonic()
    for i, th in enumerate(threads):
        th.start()
        if i + 1 < len(threads):
            time.sleep(7)  # stagger: calls should not begin and end in lockstep
    rss_samples: list[tuple[float, float]] = []
    anon_samples: list[tuple[float, float]] = []
    rows: list[dict] = []
    seen_turns = 0
    last = {"started": 0, "ended": 0}
    end_at = t0 + args.minutes * 60
    minute = 0
    alive = True
    cpu_prev, t_prev = proc_stats(pid)["cpu_s"], time.monotonic()
    while alive and time.monotonic() < end_at:
        minute += 1
        m_end = min(end_at, t0 + minute * 60)
        while time.monotonic() < m_end:
            time.sleep(min(SAMPLE_S, max(0.05, m_end - time.monotonic())))
            if gw.proc.poll() is not None:
                alive = False
                break
            with contextlib.suppress(OSError):
                st = proc_stats(pid)
                rss_samples.append((time.monotonic() - t0, st["rss_mb"]))
                anon_samples.append((time.monotonic() - t0, st["anon_mb"]))
        if not alive:
            say(f"GATEWAY EXITED with {gw.proc.returncode} during minute {minute}")
            break
        st = proc_stats(pid)
        # the gateway's CPU over the minute, in % of one core (100 = one core busy)
        st["cpu_pct"] = 100 * (st["cpu_s"] - cpu_prev) / max(1e-3, time.monotonic() - t_prev)
        cpu_prev, t_prev = st["cpu_s"], time.monotonic()
        up = active_calls(mport)
        with shared.lock:
            new = shared.turns[seen_turns:]
            seen_turns = len(shared.turns)
            started, ended = shared.started, shared.ended
        caller_v = [t.ttfa_ms for t in new if t.ttfa_ms is not None]
        missed = sum(1 for t in new if t.ttfa_ms is None)
        gw_v = [t["ttfa_seconds"] * 1000 for t in journal.new_turns()
                if t.get("ttfa_seconds") is not None]
        row = {"minute": minute, "calls_started": started - last["started"],
               "calls_ended": ended - last["ended"], "active_calls": up, **st,
               "turns": len(new), "missed": missed,
               "caller_ttfa_p50": pct(caller_v, 0.5) if caller_v else None,
               "caller_ttfa_p95": pct(caller_v, 0.95) if caller_v else None,
               "gateway_ttfa_p50": pct(gw_v, 0.5) if gw_v else None,
               "gateway_ttfa_p95": pct(gw_v, 0.95) if gw_v else None,
               "gateway_turns": len(gw_v), "load1": os.getloadavg()[0]}
        rows.append(row)
        last = {"started": started, "ended": ended}
        say(f"{minute:4d}  {row['calls_started']:6d}  {row['calls_ended']:6d}  "
            f"{'-' if up is None else int(up):>2}  {st['rss_mb']:6.1f}  {st['anon_mb']:7.1f}  "
            f"{st['cpu_pct']:4.0f}  {st['fds']:4d}  "
            f"{st['threads']:3d}  {len(new):5d}  {missed:4d}        "
            f"{fmt_ms(caller_v, 0.5)} / {fmt_ms(caller_v, 0.95)}"
            f"          {fmt_ms(gw_v, 0.5)} / {fmt_ms(gw_v, 0.95)}   {row['load1']:4.2f}")
    # wind down: let the callers finish their turn and hang up
    stop.set()
    for th in threads:
        th.join(90)
    caller.ep.hangupAllCalls()
    idle_ok = wait_idle(mport, 60) if gw.proc.poll() is None else False
    time.sleep(5)
    final = proc_stats(pid) if gw.proc.poll() is None else None
    with shared.lock:
        all_turns = list(shared.turns)
        failed, errors = shared.failed, list(shared.errors)
        started_total, ended_total = shared.started, shared.ended

    say()
    say("== summary ==")
    say(f"calls placed {started_total}, ended {ended_total}, failed {failed}; turns "
        f"{len(all_turns)}, without an answer {sum(1 for t in all_turns if t.ttfa_ms is None)}")
    for e in errors[:10]:
        say(f"  caller error: {e}")
    full = [r for r in rows if r["turns"]]
    if full:
        first, lastr = full[0], full[-1]
        say("                    RSS_MB  anon_MB   fds  threads  caller TTFA p50/p95  gateway TTFA "
            "p50/p95")
        for label, r in (("first minute", first), ("last minute", lastr)):
            say(f"{label:<18} {r['rss_mb']:7.1f}  {r['anon_mb']:7.1f}  {r['fds']:4d}  "
                f"{r['threads']:7d}  "
                f"{_ms(r['caller_ttfa_p50'])} / {_ms(r['caller_ttfa_p95'])}        "
                f"{_ms(r['gateway_ttfa_p50'])} / {_ms(r['gateway_ttfa_p95'])}")
    cv = [t.ttfa_ms for t in all_turns if t.ttfa_ms is not None]
    if cv:
        say(f"whole run, caller TTFA: n={len(cv)} p50 {pct(cv, .5):.0f} ms, p95 "
            f"{pct(cv, .95):.0f} ms, max {max(cv):.0f} ms")
    def second_half(samples: list[tuple[float, float]]) -> list[tuple[float, float]]:
        return [x for x in samples if x[0] >= (samples[-1][0] / 2 if samples else 0)]

    s_all = slope_mb_per_min(rss_samples)
    s_half = slope_mb_per_min(second_half(rss_samples))
    a_all = slope_mb_per_min(anon_samples)
    a_half = slope_mb_per_min(second_half(anon_samples))
    say(f"RSS slope: {s_all:+.2f} MB/min over the run, {s_half:+.2f} MB/min over its second "
        f"half ({len(rss_samples)} samples every {SAMPLE_S:.0f} s)")
    say(f"anonymous RSS slope: {a_all:+.2f} MB/min over the run, {a_half:+.2f} MB/min over "
        f"its second half (RSS also counts the LLM's file mapping once per llama context)")
    a_quarters = quarter_medians(anon_samples)
    a_trend = quarter_trend(a_quarters, anon_samples[-1][0] if anon_samples else 0.0)
    say("anonymous RSS medians by quarter of the run: "
        + " ".join(f"{m:.0f}" for m in a_quarters)
        + f" MB; 2nd -> 4th quarter: {a_trend:+.2f} MB/min")
    if rss_samples:
        say(f"RSS min {min(s[1] for s in rss_samples):.1f} MB, max "
            f"{max(s[1] for s in rss_samples):.1f} MB")
    verdict_ok = True
    if final is None:
        say("LEAK CHECK: gateway not running at the end")
        verdict_ok = False
    else:
        dfd = final["fds"] - baseline["fds"]
        dth = final["threads"] - baseline["threads"]
        say(idle_line("idle at the end:", final) + f"   (no call up: {idle_ok})")
        say(f"vs warm-up baseline:  RSS {final['rss_mb'] - baseline['rss_mb']:+7.1f} MB  "
            f"anon {final['anon_mb'] - baseline['anon_mb']:+7.1f} MB  "
            f"fds {dfd:+4d}  threads {dth:+3d}")
        leak_fd, leak_th = dfd > 0, dth > 0
        grow = a_trend == a_trend and a_trend > 1.0  # heap > 1 MB/min, 2nd -> 4th quarter
        verdict_ok = idle_ok and not leak_fd and not leak_th and not grow
        say("verdict: " + ("no leak seen (fds and threads back to baseline, RSS flat)"
                           if verdict_ok else
                           "LEAK SUSPECTED: " + ", ".join(
                               x for x, bad in (("fds", leak_fd), ("threads", leak_th),
                                                ("RSS growing", grow),
                                                ("calls left up", not idle_ok)) if bad)))
    errs = [ln for ln in gw.log().splitlines() if " ERROR " in ln or "Traceback" in ln]
    say(f"gateway log: {len(errs)} ERROR/Traceback line(s)")
    for ln in errs[:10]:
        say("  " + ln[:200])
    code = gw.stop()
    say(f"gateway exit code {code}")
    write_json(args.json, {
        "rows": rows, "baseline": baseline, "at_ready": at_ready, "final": final,
        "rss_slope_mb_per_min": s_all, "rss_slope_second_half": s_half,
        "anon_slope_mb_per_min": a_all, "anon_slope_second_half": a_half,
        "anon_quarter_medians": a_quarters, "anon_quarter_trend_mb_per_min": a_trend,
        "anon_samples": anon_samples, "rss_samples": rss_samples, "failed_calls": failed,
        "errors": errors})
    caller.close()
    return 0 if verdict_ok and failed == 0 else 1


def _ms(v: float | None) -> str:
    return "    -" if v is None else f"{v:5.0f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=2, help="concurrent calls (1-4, default 2)")
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", metavar="FILE", help="also write the report here")
    ap.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    ap.add_argument("--keep", metavar="DIR", help="work in DIR and keep it")
    ap.add_argument("--gateway-env", metavar="KEY=VALUE", action="append", default=[],
                    help="extra environment for the gateway (e.g. MALLOC_ARENA_MAX=2)")
    args = ap.parse_args()
    require_tools("espeak-ng", "sox")
    if not 1 <= args.calls <= 4:
        ap.error("--calls must be 1-4 (the gateway takes 4 calls)")
    out = open(args.out, "w") if args.out else None  # noqa: SIM115
    try:
        if args.keep:
            Path(args.keep).mkdir(parents=True, exist_ok=True)
            code = run(args, Path(args.keep), out)
        else:
            code = run(args, Path(tempfile.mkdtemp(prefix="soak-")), out)
    finally:
        for gw in _GATEWAYS:
            gw.stop()
        if out is not None:
            out.close()
    leave(code)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
