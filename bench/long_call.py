"""A long call: does every answer come as fast at the 30th question as at the 3rd?

    .venv/bin/python -m bench.long_call [--questions 30] [--json FILE] [--keep DIR]

One call to a gateway with the default config (the bundled 1.5B, the Riverside Dental
``[business]`` facts), from the scripted pjsua2 caller of bench/turns.py, asking the questions
of that bench in turn (espeak-ng's voice), each after the last answer has played. The history
window (``[llm] history_turns``) fills after ~6 questions and then moves; the cache must
follow it (pipeline/reply/llm.py ``keep_moved_history``) rather than read the conversation
again. Printed per question, from the gateway's record: the LLM's first token, the prompt
tokens it read after the request and the caller's TTFA; then the call's median and the
largest turn's ratio to it (the aim: every turn within 2x the median).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from bench.turns import (
    QUESTIONS,
    TWO_PART,
    Caller,
    CallerAudio,
    ask,
    pct,
    progress,
    wait_quiet,
)
from tests.harness import GatewayProcess, espeak, require_tools, wait_closed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=int, default=30)
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--keep", help="work directory to keep (logs, records)")
    args = ap.parse_args()
    require_tools("espeak-ng")
    work = Path(args.keep or tempfile.mkdtemp(prefix="long-call-"))
    work.mkdir(parents=True, exist_ok=True)
    asks = [(QUESTIONS + TWO_PART)[i % (len(QUESTIONS) + len(TWO_PART))]
            for i in range(args.questions)]
    clips = {t: espeak(t, work / f"q{i}.wav") for i, t in enumerate(dict.fromkeys(asks))}
    gw = GatewayProcess(work / "gateway").start()
    caller = Caller()
    heard = []
    try:
        audio = CallerAudio()
        call = caller.call(gw.uri, audio)
        wait_quiet(audio)  # the greeting
        for i, text in enumerate(asks, 1):
            t = ask(audio, clips[text], "streaming", text, "question")
            wait_quiet(audio)
            t.caller_jb_ms = caller.jitter_delay_ms(call)
            heard.append(t)
            progress(f"{i}: {text!r} ttfa {t.ttfa_ms}")
        caller.hangup(call)
        call = None
    finally:
        caller.close()
        gw.stop()
    (record,) = wait_closed(work / "gateway" / "calls.jsonl")
    turns = [t for t in record["turns"] if t.get("llm_first_token_seconds") is not None]
    first = [t["llm_first_token_seconds"] * 1000 for t in turns]
    median = pct(first, 0.5)
    print(f"# bench.long_call: {args.questions} questions in one call, default config, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f} at the end")
    print(" turn  llm_first_token_ms  tokens_read  words (the gateway's record)")
    for i, t in enumerate(turns):
        read = t.get("prompt_tokens_read")
        print(f" {i + 1:4}  {t['llm_first_token_seconds'] * 1000:18.0f}  "
              f"{'?' if read is None else read:>11}  {t['caller_text'][:50]}")
    print("caller TTFA per question (ms, at the caller; a question heard as two turns, or "
          "answered without the LLM, has no line above):")
    print("  " + " ".join("-" if h.ttfa_ms is None else f"{h.ttfa_ms - h.caller_jb_ms:.0f}"
                          for h in heard))
    ttfas = [h.ttfa_ms - h.caller_jb_ms for h in heard if h.ttfa_ms is not None]
    worst = max(first)
    out = {"questions": args.questions, "answered": len(turns),
           "llm_first_token_ms": {"p50": median, "p95": pct(first, 0.95), "max": worst},
           "worst_over_median": worst / median,
           "caller_ttfa_ms": {"p50": pct(ttfas, 0.5), "p95": pct(ttfas, 0.95),
                              "max": max(ttfas)},
           "tokens_read": [t.get("prompt_tokens_read") for t in turns]}
    print(f"LLM first token: p50 {median:.0f} ms, p95 {out['llm_first_token_ms']['p95']:.0f} ms,"
          f" max {worst:.0f} ms = {worst / median:.2f}x the median (aim: <= 2x)")
    print(f"caller TTFA: n={len(ttfas)} p50 {out['caller_ttfa_ms']['p50']:.0f} ms, "
          f"p95 {out['caller_ttfa_ms']['p95']:.0f} ms, max {max(ttfas):.0f} ms; "
          f"answered {len(turns)} of {args.questions}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    sys.stdout.flush()
    os._exit(0)  # skip pjsua2 destructors (see bench/turns.py Caller.close)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
