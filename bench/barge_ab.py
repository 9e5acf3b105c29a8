"""Barge-in latency A/B: two streaming gateways that differ only in one [turn] setting,
called alternately by the scripted pjsua2 caller of bench/turns.py (same clips, same clock).

    .venv/bin/python -m bench.barge_ab [--trials 8] [--key min_barge_in_ms]
                                       [--a 200] [--b 120] [--json FILE]

Each trial asks a long question, cuts in 1-2 s into the answer and measures, at the caller,
the onset of its interruption to the bot's last audio (the caller's jitter-buffer delay
subtracted). Half the trials have the caller's line echoing the bot (10-20 dB down, 40-200 ms
late). Prints p50/p95 per arm and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from pathlib import Path

from bench.report import leave, write_json
from bench.turns import (
    _ALIVE,
    INTERRUPTIONS,
    LONG_ASKS,
    Caller,
    CallerAudio,
    barge,
    pct,
    progress,
    wait_quiet,
)
from testbed.harness import GatewayProcess, espeak, require_tools


def run(trials: int, key: str, values: dict[str, str], workdir: Path, seed: int) -> dict:
    rng = random.Random(seed)
    clips = {t: espeak(t, workdir / f"c{i}.wav")
             for i, t in enumerate(LONG_ASKS + INTERRUPTIONS)}
    gws = {}
    for arm, value in values.items():
        (workdir / arm).mkdir(exist_ok=True)
        gws[arm] = GatewayProcess(workdir / arm, extra_toml=f"[turn]\n{key} = {value}").start()
    progress("gateways ready")
    caller = Caller()
    _ALIVE.append(caller)
    out: dict[str, list[float]] = {arm: [] for arm in values}
    missed: dict[str, int] = {arm: 0 for arm in values}
    try:
        for j in range(trials):
            echo = j % 2 == 1
            gain = 10 ** (-rng.uniform(10, 20) / 20) if echo else 0.0
            delay = rng.randint(2, 10) if echo else 0
            after = rng.uniform(1.0, 2.0)
            ask_text = LONG_ASKS[j % len(LONG_ASKS)]
            cut_text = INTERRUPTIONS[(j // 2) % len(INTERRUPTIONS)]
            for arm, gw in gws.items():  # the same trial on both arms, back to back
                audio = CallerAudio(echo_gain=gain, echo_delay_ticks=delay)
                call = caller.call(gw.uri, audio)
                wait_quiet(audio)
                t = barge(audio, clips[ask_text], clips[cut_text], arm, ask_text, after)
                jb = caller.jitter_delay_ms(call)
                wait_quiet(audio)
                caller.hangup(call)
                call = None
                if t.barge_in_ms is None:
                    missed[arm] += 1
                else:
                    out[arm].append(t.barge_in_ms - jb)
                progress(f"trial {j} {arm} ({key}={values[arm]}, echo {echo}): "
                         f"{t.barge_in_ms} ms (jb {jb:.0f})")
    finally:
        caller.close()
        for gw in gws.values():
            gw.stop()
    res = {"key": key, "values": values, "missed": missed, "arms": {}}
    for arm, v in out.items():
        if v:
            res["arms"][arm] = {"n": len(v), "p50_ms": pct(v, 0.5), "p95_ms": pct(v, 0.95),
                                "all_ms": [round(x) for x in v]}
    if all(arm in res["arms"] for arm in values):
        res["ratio_p50_a_over_b"] = res["arms"]["a"]["p50_ms"] / res["arms"]["b"]["p50_ms"]
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--key", default="min_barge_in_ms")
    ap.add_argument("--a", default="200")
    ap.add_argument("--b", default="120")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    require_tools("espeak-ng", "sox")
    with tempfile.TemporaryDirectory(prefix="bench-barge-") as tmp:
        res = run(args.trials, args.key, {"a": args.a, "b": args.b}, Path(tmp), args.seed)
    for arm in ("a", "b"):
        r = res["arms"].get(arm)
        label = f"{arm}: {args.key} = {res['values'][arm]}"
        if r:
            print(f"  {label:<40} n={r['n']:<2} p50 {r['p50_ms']:5.0f}  p95 "
                  f"{r['p95_ms']:5.0f}  all {r['all_ms']}")
        print(f"  {'':<40} missed (no cut): {res['missed'][arm]}")
    if "ratio_p50_a_over_b" in res:
        print(f"  p50 ratio a/b: {res['ratio_p50_a_over_b']:.2f}")
    write_json(args.json, res)
    leave()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
