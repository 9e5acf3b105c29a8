"""Overload: ramp the INVITE rate against one real gateway (4 call slots) with sipp.

    .venv/bin/python -m bench.overload [--rates 1,2,5,10,20,50,100,200,500] [--seconds 10]
                                       [--hold-ms 3000] [--out FILE] [--json FILE] [--keep DIR]

Starts a gateway (a subprocess with its own journal, as ``testbed.harness.GatewayProcess``)
and, for each rate, runs one sipp caller (``testbed/sipp/overload_uac.xml``: INVITE; 200 ->
ACK, hold ``--hold-ms``, BYE; 503 -> ACK) at that many new calls per second for
``--seconds``, with no limit on the caller's side: past ~4/hold calls per second the gateway
is offered more calls than it has slots, and its admission control (gateway/telephony/admission.py)
must refuse the rest with 503 + Retry-After. All calls' RTP goes to one UDP sink here.

Per step, from sipp's message trace (timestamps of what it sent and received):
attempted, answered (200), refused (503, and how many carried Retry-After), other final
responses, no final response; INVITE-to-final-response time p50/p95/max for answered and
for refused calls (first INVITE sent to first final response received: retransmissions
included); the most calls the caller had answered at once (200 received .. 200 to its BYE);
the gateway's CPU seconds during the step. Between steps the gateway must go idle (every
call ended in its log). At the end: the gateway is alive, answers OPTIONS, and a normal
call (call_hold.xml with an RTP peer) is answered and sends audio.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.report import write_json
from testbed.harness import GatewayProcess, require_tools
from testbed.sip_overload import (
    CAPACITY,
    SCENARIO,
    RtpSink,
    Step,
    analyze,
    cpu_seconds,
    gateway_max_concurrent,
    normal_call_ok,
    options_ok,
    parse_timed_trace,
    pctl,
    run_sipp,
    wait_gateway_idle,
)

# --- the ramp --------------------------------------------------------------------------------

def run_step(gw: GatewayProcess, workdir: Path, sink: RtpSink, rate: float, seconds: float,
             hold_ms: int, name: str) -> Step:
    calls = max(1, int(round(rate * seconds)))
    log_before = len(gw.log_path.read_bytes())
    cpu0, t0 = cpu_seconds(gw.proc.pid), time.monotonic()
    # -rp 100 with rate/10 per period spreads high rates evenly instead of 1 s bursts
    code, trace, _ = run_sipp(workdir, name, f"127.0.0.1:{gw.sip_port}", SCENARIO,
                              rate=rate / 10, rate_period_ms=100, calls=calls,
                              hold_ms=hold_ms, rows=[[str(sink.port)]],
                              timeout_s=int(seconds + hold_ms / 1000 + 40))
    idle = wait_gateway_idle(gw, 30)
    step = analyze(parse_timed_trace(trace), rate, seconds)
    step.wall_s = time.monotonic() - t0
    step.gateway_cpu_s = cpu_seconds(gw.proc.pid) - cpu0
    step.sipp_exit = code
    step.idle_after = idle
    log = gw.log_path.read_bytes()[log_before:].decode("utf-8", "replace")
    step.gateway_max_up = gateway_max_concurrent(log)
    return step


def fmt(v: float | None) -> str:
    return "    -" if v is None else f"{v:5.0f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="1,2,5,10,20,50,100,200,500",
                    help="calls per second, in order")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each step")
    ap.add_argument("--hold-ms", type=int, default=3000, help="how long answered calls last")
    ap.add_argument("--out", metavar="FILE", help="also write the report here")
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--keep", metavar="DIR", help="work in DIR and keep it")
    args = ap.parse_args()
    require_tools("sipp")
    rates = [float(r) for r in args.rates.split(",")]
    workdir = Path(args.keep or tempfile.mkdtemp(prefix="overload-"))
    workdir.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    gw = GatewayProcess(workdir / "gw", extra_toml='user = "bot"')
    sink = RtpSink()
    t_start = time.monotonic()
    try:
        gw.start(timeout=900)  # a shared box: warming up has taken minutes under load
    except BaseException:
        gw.stop()
        sink.close()
        raise
    say(f"overload ramp: rates {args.rates} calls/s, {args.seconds:g} s each, answered calls "
        f"held {args.hold_ms} ms; gateway pid {gw.proc.pid} with {CAPACITY} slots; "
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}, {os.cpu_count()} cores, load avg "
        f"{os.getloadavg()[0]:.2f} (shared box: other tests may run)")
    say(f"logs in {workdir}")
    say()
    say("rate/s  sent/s  tried  200  503(w/R-A)  other  none  max_up(caller/gw)  "
        "200_ms p50/p95/max     503_ms p50/p95/max  gw_cpu_s  idle")
    steps: list[Step] = []
    ok = True
    for rate in rates:
        if gw.proc.poll() is not None:
            say(f"GATEWAY DIED (exit {gw.proc.returncode}) before rate {rate:g}")
            ok = False
            break
        st = run_step(gw, workdir, sink, rate, args.seconds, args.hold_ms, f"rate{rate:g}")
        steps.append(st)
        other = ",".join(f"{k}x{v}" for k, v in st.other.items()) or "0"
        a, r = st.answered_ms, st.refused_ms
        say(f"{rate:6g}  {st.offered_rate:6.1f}  {st.attempted:5d}  {st.answered:3d}  "
            f"{st.refused_503:4d}"
            f"({st.refused_503_retry_after:4d})  {other:>5}  {st.no_final:4d}  "
            f"{st.max_answered_at_once:8d}/{st.gateway_max_up:<8d}  "
            f"{fmt(pctl(a, .5))}/{fmt(pctl(a, .95))}/{fmt(max(a) if a else None)}  "
            f"{fmt(pctl(r, .5))}/{fmt(pctl(r, .95))}/{fmt(max(r) if r else None)}  "
            f"{st.gateway_cpu_s:8.1f}  {'yes' if st.idle_after else 'NO'}")
        if (st.other or st.no_final or st.max_answered_at_once > CAPACITY
                or st.refused_503 != st.refused_503_retry_after or not st.idle_after):
            ok = False
    say()
    alive = gw.proc.poll() is None
    opt = alive and options_ok(gw, workdir)
    normal, detail = normal_call_ok(gw, workdir) if alive else (False, "gateway dead")
    say(f"after the ramp: process alive {alive}, OPTIONS answered {opt}, normal call "
        f"{'works' if normal else 'FAILED'} ({detail})")
    errs = [ln for ln in gw.log().splitlines() if " ERROR " in ln or "Traceback" in ln]
    say(f"gateway log: {len(errs)} ERROR/Traceback line(s)")
    for ln in errs[:10]:
        say("  " + ln[:200])
    code = gw.stop()
    sink.close()
    say(f"gateway exit code {code}; total {time.monotonic() - t_start:.0f} s")
    ok = ok and alive and opt and normal
    say("PASS" if ok else "FAIL")
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")
    write_json(args.json, {"steps": [s.summary() for s in steps], "alive": alive,
                           "options": opt, "normal_call": normal, "normal_call_detail": detail})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
