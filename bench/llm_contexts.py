"""What the LLM costs per call slot: private memory and speed of 4 contexts + the tool router,
one loaded model shared by all of them (the gateway) vs a model loaded per context (before).

    .venv/bin/python -m bench.llm_contexts [--models 1.5b,0.5b]

Each variant runs in its own process (a fresh RssAnon baseline). Prints, per model and
variant: load time, RssAnon added, first-token time with a cold and with a cached prompt
prefix, and the median tokens per second over the 4 contexts.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MODELS = {"1.5b": "qwen2.5-coder-1.5b", "0.5b": "qwen2.5-coder-0.5b"}
VARIANTS = ("per-context", "shared", "shared-no-repack")


def anon_mb() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("RssAnon")) // 1024


def child(name: str, variant: str) -> str:
    from pipeline import models
    from pipeline.llm.chat import stream_chat
    from pipeline.llm.embedded import LlmPool

    path = models.assemble_llm(name)
    before = anon_mb()
    t0 = time.monotonic()
    if variant == "per-context":
        from llama_cpp import Llama

        contexts = [Llama(str(path), n_ctx=2048, n_threads=2, n_threads_batch=2, verbose=False)
                    for _ in range(5)]
    else:
        pool = LlmPool(path, 4, 2, 2048, 0, "You are a receptionist.", "",
                       [{"type": "function", "function": {"name": "x", "parameters": {}}}],
                       repack=variant == "shared")
        contexts = [pool.acquire() for _ in range(4)]
    load = time.monotonic() - t0
    system = {"role": "system", "content": "You are the phone receptionist of a bakery. "
                                           "Answer in one short sentence."}
    speeds, cold = [], 0.0
    for ctx in contexts[:4]:
        t = time.monotonic()
        first, n = None, 0
        for _ in stream_chat(ctx, [system, {"role": "user", "content": "Hello, what do you "
                                            "sell?"}], 48, 0.0):
            first = first or time.monotonic() - t
            n += 1
        cold = cold or first or 0.0
        speeds.append(n / (time.monotonic() - t - (first or 0.0)))
    t = time.monotonic()
    cached = None
    for _ in stream_chat(contexts[0], [system, {"role": "user", "content": "Are you open on "
                                                "Sunday?"}], 8, 0.0):
        cached = cached or time.monotonic() - t
    return (f"{name:20} {variant:17} load {load:4.1f} s  RssAnon +{anon_mb() - before:5d} MB  "
            f"first token cold {cold:.2f} s, cached prefix {cached or 0:.2f} s  "
            f"tokens/s {sorted(speeds)[len(speeds) // 2]:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="1.5b,0.5b")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(child(*args.child), flush=True)
        return
    print("4 call contexts + the tool router's (per-context: 5 models loaded); 2 threads")
    for short in args.models.split(","):
        for variant in VARIANTS:
            out = subprocess.run([sys.executable, "-m", "bench.llm_contexts", "--child",
                                  MODELS[short], variant], cwd=ROOT, capture_output=True,
                                 text=True, check=True)
            print(out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
