"""Crash consistency: kill -9 the gateway at random moments during calls, restart, check records.

    .venv/bin/python -m bench.crash_loop [--rounds 20] [--seed 1] [--json FILE]

Each round starts a gateway on loopback (sharing one call journal across rounds), drives a
stream of calls at it with sipp (call_hold.xml: 4 at a time, a new one every ~0.5 s, each
held 1.5-3 s, RTP from a local peer), waits a random 0.5-8 s after the first call arrived,
and kills the gateway with SIGKILL. So the kill lands on calls in every state: INVITE just
in, record being written, 200 OK in flight, media up, conversation running, BYE in flight.

The next round's start closes what the crash left open (``records.recover``: outcome
``aborted``); a last start after the final round closes the last round's. Then, for every
call the caller saw answered (a 200 to its INVITE in sipp's message trace), the journal must
hold exactly one record (matched by SIP Call-ID), with exactly one ``open`` and one
``close`` line. Records of calls the gateway answered but whose 200 never reached the caller
(killed in between) are allowed and counted. Exit status 0 when every round passes.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.report import write_json
from gateway.calls import records
from testbed.harness import GatewayProcess, free_udp_port, require_tools
from testbed.sipp_harness import SIPP_DIR, RtpPeer, outcomes, parse_sipp_trace


def sipp_stream(workdir: Path, name: str, target: str, ports: list[int],
                hold_ms: int) -> tuple[subprocess.Popen, Path]:
    inf = workdir / f"{name}.csv"
    inf.write_text("SEQUENTIAL\n" + "".join(f"{p};\n" for p in ports))
    trace = workdir / f"{name}_messages.log"
    cmd = ["sipp", target, "-sf", str(SIPP_DIR / "call_hold.xml"), "-s", "bot",
           "-i", "127.0.0.1", "-p", str(free_udp_port()), "-mp", str(free_udp_port()),
           "-cp", str(free_udp_port()), "-m", "400", "-l", "4", "-r", "2", "-d", str(hold_ms),
           "-timeout", "120s", "-trace_msg", "-message_file", str(trace),
           "-inf", str(inf), "-nostdin"]
    out = (workdir / f"{name}_screen.log").open("wb")
    proc = subprocess.Popen(cmd, cwd=workdir, stdin=subprocess.DEVNULL, stdout=out,
                            stderr=subprocess.STDOUT)
    return proc, trace


def journal_lines(path: Path) -> tuple[dict[str, collections.Counter], int]:
    """{record id: Counter of line types}, number of unparsable lines."""
    kinds: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    torn = 0
    for raw in path.read_bytes().splitlines():
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
            kinds[obj["id"]][obj["type"]] += 1
        except (ValueError, KeyError, TypeError):
            torn += 1
    return kinds, torn


def check(journal: Path, answered: dict[str, int]) -> dict:
    """Every call answered at the caller (Call-ID -> round) has exactly one closed record."""
    folded = records.read(journal)
    kinds, torn = journal_lines(journal)
    by_call_id: dict[str, list[dict]] = collections.defaultdict(list)
    for rec in folded.records():
        by_call_id[rec.get("sip_call_id") or ""].append(rec)
    problems = []
    for call_id, rnd in answered.items():
        recs = by_call_id.get(call_id, [])
        if len(recs) != 1:
            problems.append(f"round {rnd}: {call_id}: {len(recs)} records")
            continue
        rec = recs[0]
        k = kinds[rec["id"]]
        if rec["state"] != "closed" or k["open"] != 1 or k["close"] != 1:
            problems.append(f"round {rnd}: {call_id}: state {rec['state']}, lines {dict(k)}")
    unmatched = [r for cid, rs in by_call_id.items() if cid not in answered for r in rs]
    open_left = [r["id"] for r in folded.records() if r["state"] != "closed"]
    dup_close = [rid for rid, k in kinds.items() if k["close"] > 1 or k["open"] > 1]
    outcomes_seen = collections.Counter(r.get("outcome") for r in folded.records())
    return {"answered": len(answered), "records": len(folded.records()),
            "not_seen_answered_by_caller": len(unmatched), "open_left": open_left,
            "duplicate_lines": dup_close, "torn_lines": torn,
            "outcomes": dict(outcomes_seen), "problems": problems,
            "ok": not problems and not open_left and not dup_close}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", metavar="FILE", help="write the results here as JSON")
    ap.add_argument("--workdir", metavar="DIR", help="keep logs here (default: a temp dir)")
    args = ap.parse_args(argv)
    require_tools("sipp")
    rnd = random.Random(args.seed)
    base = Path(args.workdir or tempfile.mkdtemp(prefix="crash_loop-"))
    base.mkdir(parents=True, exist_ok=True)
    journal = base / "calls.jsonl"
    answered: dict[str, int] = {}
    rows = []
    t_start = time.monotonic()
    print(f"crash loop: {args.rounds} rounds, seed {args.seed}, logs in {base}", flush=True)
    for i in range(1, args.rounds + 2):
        last = i == args.rounds + 1  # one more start: closes what the last kill left open
        wd = base / f"round-{i:02d}"
        wd.mkdir(exist_ok=True)
        gw = GatewayProcess(wd, extra_toml=f'\n[records]\npath = "{journal}"\n')
        t0 = time.monotonic()
        gw.start()
        started = time.monotonic() - t0
        recovered = ""
        for line in gw.log().splitlines():
            if "left open by a crash as aborted" in line:
                recovered = line.split("closed ", 1)[-1].split(" call(s)")[0]
        if last:
            code = gw.stop()
            print(f"final start: recovered {recovered or 0} record(s); exit {code}", flush=True)
            break
        peers = [RtpPeer() for _ in range(8)]
        hold = rnd.randint(1500, 3000)
        proc, trace = sipp_stream(wd, "stream", f"127.0.0.1:{gw.sip_port}",
                                  [p.port for p in peers], hold)
        try:
            end = time.monotonic() + 30
            while "incoming from" not in gw.log() and time.monotonic() < end:
                time.sleep(0.05)
            delay = rnd.uniform(0.5, 8.0)
            time.sleep(delay)
            live = gw.log().count("media up") - gw.log().count("ended:")
            gw.proc.send_signal(signal.SIGKILL)
            gw.proc.wait(10)
            time.sleep(1.0)  # let the caller see what was in flight
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)  # sipp flushes its trace and exits
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            for p in peers:
                p.close()
            gw.stop()
        msgs = parse_sipp_trace(trace)
        ok_ids = [cid for cid, st in outcomes(msgs, "INVITE").items() if st == 200]
        for cid in ok_ids:
            answered[cid] = i
        row = {"round": i, "start_s": round(started, 1), "recovered_at_start": recovered or "0",
               "kill_after_s": round(delay, 2), "calls_up_at_kill": live,
               "answered_this_round": len(ok_ids), "hold_ms": hold}
        rows.append(row)
        print(f"round {i:2d}: start {started:4.1f} s, recovered {row['recovered_at_start']:>2}, "
              f"kill after {delay:4.2f} s with ~{live} call(s) up, {len(ok_ids)} answered",
              flush=True)
    result = check(journal, answered)
    result["rounds"] = rows
    result["minutes"] = round((time.monotonic() - t_start) / 60, 1)
    print(f"\n{args.rounds} rounds in {result['minutes']} min: {result['answered']} calls "
          f"answered at the caller, {result['records']} records "
          f"({result['not_seen_answered_by_caller']} answered by the gateway whose 200 the "
          f"caller never saw), outcomes {result['outcomes']}, torn lines "
          f"{result['torn_lines']}, open left {len(result['open_left'])}, duplicate lines "
          f"{len(result['duplicate_lines'])}")
    for p in result["problems"][:20]:
        print("  PROBLEM", p)
    print("PASS" if result["ok"] else "FAIL")
    write_json(args.json, result)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
