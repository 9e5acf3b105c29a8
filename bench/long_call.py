"""A long call: does every answer come as fast at the 30th question as at the 3rd?

    .venv/bin/python -m bench.long_call [--questions 30] [--calls 1] [--json FILE] [--keep DIR]

One call to a gateway with the default config (the bundled 1.5B, the Riverside Dental
``[business]`` facts), from the scripted pjsua2 caller of bench/turns.py, asking the questions
of that bench in turn (espeak-ng's voice), each after the last answer has played. The history
window (``[llm] history_turns``) fills after ~6 questions and then moves; the cache must
follow it (pipeline/llm/embedded.py ``keep_moved_history``) rather than read the conversation
again. Printed per question, from the gateway's record: the LLM's first token, the prompt
tokens it read after the request and the caller's TTFA; then the call's median and the
largest turn's ratio to it (the aim: every turn within 2x the median).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.report import leave, write_json
from bench.turns import (
    QUESTIONS,
    TWO_PART,
    Caller,
    CallerAudio,
    Turn,
    ask,
    pct,
    progress,
    wait_quiet,
)
from testbed.harness import GatewayProcess, espeak, require_tools, wait_closed


def _talk(audio: CallerAudio, asks: list[str], clips: dict, tag: str) -> list[Turn]:
    """One caller's questions, each after the last answer has played (runs on its own
    thread: it only reads and queues audio; pjsua2 is touched by the main thread)."""
    heard = []
    wait_quiet(audio)  # the greeting
    for i, text in enumerate(asks, 1):
        t = ask(audio, clips[text], "streaming", text, "question")
        wait_quiet(audio)
        heard.append(t)
        progress(f"{tag} {i}: {text!r} ttfa {t.ttfa_ms}")
    return heard


def _run(caller: Caller, gw: GatewayProcess, asks: list[str], clips: dict, calls: int,
         stagger_s: float) -> list[list[Turn]]:
    """``calls`` callers at once, started ``stagger_s`` apart; the turns each heard."""
    pj_calls = []
    results: list[list[Turn]] = [[] for _ in range(calls)]
    threads = []
    for n in range(calls):
        if n:
            time.sleep(stagger_s)
        audio = CallerAudio()
        pj_calls.append(caller.call(gw.uri, audio))

        def run(n: int = n, audio: CallerAudio = audio) -> None:
            results[n] = _talk(audio, asks, clips, f"call {n + 1}/{calls}")
        th = threading.Thread(target=run, daemon=True)
        th.start()
        threads.append(th)
    for th in threads:
        th.join()
    for n, c in enumerate(pj_calls):
        for t in results[n]:
            t.caller_jb_ms = caller.jitter_delay_ms(c)
        caller.hangup(c)
    return results


def _ttfas(turns: list[Turn]) -> list[float]:
    return [t.ttfa_ms - t.caller_jb_ms for t in turns if t.ttfa_ms is not None]


def _summary(ttfas: list[float], asked: int) -> dict:
    return {"n": len(ttfas), "asked": asked, "p50": pct(ttfas, 0.5), "p95": pct(ttfas, 0.95),
            "max": max(ttfas)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=int, default=30)
    ap.add_argument("--calls", type=int, default=1,
                    help="after the single call, this many at once (each asking --questions)")
    ap.add_argument("--stagger", type=float, default=2.5,
                    help="seconds between the concurrent calls' starts")
    ap.add_argument("--toml", default="",
                    help='config lines added to the default, e.g. \'[llm]\\nbackend = "engine"\'')
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--keep", help="work directory to keep (logs, records)")
    args = ap.parse_args()
    require_tools("espeak-ng")
    work = Path(args.keep or tempfile.mkdtemp(prefix="long-call-"))
    work.mkdir(parents=True, exist_ok=True)
    asks = [(QUESTIONS + TWO_PART)[i % (len(QUESTIONS) + len(TWO_PART))]
            for i in range(args.questions)]
    clips = {t: espeak(t, work / f"q{i}.wav") for i, t in enumerate(dict.fromkeys(asks))}
    gw = GatewayProcess(work / "gateway",
                        extra_toml=args.toml.replace("\\n", "\n")).start()
    caller = Caller()  # one pjsua2 endpoint per process
    try:
        (alone,) = _run(caller, gw, asks, clips, 1, 0.0)
        together = (_run(caller, gw, asks, clips, args.calls, args.stagger)
                    if args.calls > 1 else [])
    finally:
        caller.close()
        gw.stop()
    records = wait_closed(work / "gateway" / "calls.jsonl")
    turns = [t for t in records[0]["turns"] if t.get("llm_first_token_seconds") is not None]
    first = [t["llm_first_token_seconds"] * 1000 for t in turns]
    median = pct(first, 0.5)
    print(f"# bench.long_call: {args.questions} questions in one call"
          + (f", then {args.calls} such calls at once ({args.stagger} s apart)"
             if together else "")
          + f", default config{' + ' + repr(args.toml) if args.toml else ''}, "
          f"{os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.2f} at the end")
    print("the single call, turn by turn (the gateway's record):")
    print(" turn  llm_first_token_ms  tokens_read  words")
    for i, t in enumerate(turns):
        read = t.get("prompt_tokens_read")
        print(f" {i + 1:4}  {t['llm_first_token_seconds'] * 1000:18.0f}  "
              f"{'?' if read is None else read:>11}  {t['caller_text'][:50]}")
    print("caller TTFA per question (ms, at the caller; a question heard as two turns, or "
          "answered without the LLM, has no line above):")
    print("  " + " ".join("-" if h.ttfa_ms is None else f"{h.ttfa_ms - h.caller_jb_ms:.0f}"
                          for h in alone))
    worst = max(first)
    one = _summary(_ttfas(alone), len(alone))
    out = {"questions": args.questions, "answered": len(turns),
           "llm_first_token_ms": {"p50": median, "p95": pct(first, 0.95), "max": worst},
           "worst_over_median": worst / median,
           "caller_ttfa_ms": one,
           "tokens_read": [t.get("prompt_tokens_read") for t in turns]}
    print(f"LLM first token: p50 {median:.0f} ms, p95 {out['llm_first_token_ms']['p95']:.0f} ms,"
          f" max {worst:.0f} ms = {worst / median:.2f}x the median (aim: <= 2x)")
    print(f"caller TTFA, one call: n={one['n']} p50 {one['p50']:.0f} ms, "
          f"p95 {one['p95']:.0f} ms, max {one['max']:.0f} ms; unanswered "
          f"{one['asked'] - one['n']} of {one['asked']}")
    if together:
        for n, heard in enumerate(together, 1):
            print(f"call {n} of {args.calls}: " + " ".join(
                "-" if h.ttfa_ms is None else f"{h.ttfa_ms - h.caller_jb_ms:.0f}"
                for h in heard))
        many = _summary([x for heard in together for x in _ttfas(heard)],
                        sum(len(h) for h in together))
        llm_many = [t["llm_first_token_seconds"] * 1000 for r in records[1:]
                    for t in r["turns"] if t.get("llm_first_token_seconds") is not None]
        many["llm_first_token_p50"] = pct(llm_many, 0.5)
        many["llm_first_token_p95"] = pct(llm_many, 0.95)
        many["p95_over_single_p95"] = many["p95"] / one["p95"]
        out["concurrent"] = {"calls": args.calls, "caller_ttfa_ms": many}
        print(f"caller TTFA, {args.calls} calls at once: n={many['n']} p50 {many['p50']:.0f} "
              f"ms, p95 {many['p95']:.0f} ms, max {many['max']:.0f} ms; unanswered "
              f"{many['asked'] - many['n']} of {many['asked']}; p95 = "
              f"{many['p95_over_single_p95']:.2f}x the single call's (aim: <= 1.5x); "
              f"LLM first token p50 {many['llm_first_token_p50']:.0f} / p95 "
              f"{many['llm_first_token_p95']:.0f} ms")
    write_json(args.json, out)
    leave()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
