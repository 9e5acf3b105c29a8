"""Model servers vs in-process models: the same talking calls over 2 gateway workers, with
the LLM on ONE shared server and then with the models in each worker, on this box, in one run.

    .venv/bin/python -m bench.model_servers [--llm qwen2.5-coder-0.5b] [--calls 8]
        [--workers 2] [--seconds 300] [--phases server,engine,embedded] [--out FILE] [--json FILE]

Each phase starts ``--workers`` gateways (``testbed.harness.GatewayProcess``, as ``voicebot
workers`` would run them: own ports and journal) and keeps ``--calls`` calls up for
``--seconds``, split evenly over the workers (4 at most each: the pjsua2 wheel's cap). The
callers are ``bench.soak``'s: a pjsua2 user agent per worker (one process holds 4 calls, so
each is a subprocess of this bench), every call waiting for the greeting, asking 2-5 spoken
questions (espeak-ng), waiting for each answer, hanging up, redialling at once.

- ``server``: one ``python -m llama_cpp.server`` (``testbed.llm_server.LlmServer``, the bundled
  GGUF, ``--interrupt_requests False``, ``--server-threads``) serves every call of both
  workers (``[llm] backend = "openai"``); STT and TTS stay in the workers. llama-cpp-python's
  server (0.3.x) has no ``--n_parallel``: it answers one request at a time from one KV cache,
  so the calls queue for it and each request re-reads its call's history after the shared
  system prompt. That is the figure measured; ``llama-server --parallel N`` or vLLM would
  serve several at once. ``[llm] first_token_timeout`` is raised (``--first-token-timeout``,
  60 s) so a queued turn is measured, not replaced by the apology; turns that still failed
  are counted (``llm errors``, from the journals).
- ``engine``: one llama-server with a slot per call of every worker (what ``voicebot workers``
  starts for ``[llm] backend = "engine"``: ``gateway.workers.start_shared_engine``), every
  call's reply decoded in the same batch; STT and TTS stay in the workers.
- ``embedded``: the same workers with the LLM in process (the default backend).

Measured per phase, over the time the callers run: TTFA at the caller (its jitter buffer's
delay subtracted, as in ``bench.turns``) and as the gateways recorded it, p50/p95; CPU
seconds (/proc/PID/stat utime + stime) and private memory (RssAnon, /proc/PID/status:
median and peak of samples every 2 s) per worker and for the server. Between the phases,
with no call up, the HTTP hop on loopback: a trivial request (``GET /v1/models``), and the
first-token time of the same prompt (the product's system prompt, cached on both sides, and
one question) in process (``LlmPool``) vs over HTTP (``OpenAiLlm``), timed in turns so both
see the same load; the hop is the median of the paired differences.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench.report import leave, write_json
from bench.soak import (
    EXTRA_QUESTIONS,
    JournalTail,
    Shared,
    Slot,
    call_loop,
    proc_stats,
)
from bench.turns import QUESTIONS, Caller, pct
from testbed.harness import (
    DEFAULT_LLM,
    SMALL_LLM,
    GatewayProcess,
    espeak,
    read_wav,
    require_tools,
)

ROOT = Path(__file__).resolve().parent.parent

PHASES = ("server", "engine", "embedded")
SAMPLE_S = 2.0
MAX_CALLS_PER_WORKER = 4  # [sip] max_calls: the pjsua2 wheel's cap, for callers too


def split_calls(calls: int, workers: int) -> list[int]:
    """Calls per worker, as even as can be (8 over 2 -> [4, 4]; 5 over 2 -> [3, 2])."""
    if workers < 1 or calls < workers:
        raise ValueError("need at least one call per worker")
    split = [calls // workers + (1 if i < calls % workers else 0) for i in range(workers)]
    if split[0] > MAX_CALLS_PER_WORKER:
        raise ValueError(f"{calls} calls over {workers} workers is {split[0]} calls on one: "
                         f"a worker takes {MAX_CALLS_PER_WORKER}")
    return split


def p50_p95(values: list[float]) -> tuple[float | None, float | None]:
    return (pct(values, 0.5), pct(values, 0.95)) if values else (None, None)


# --- one caller process: N calls against one worker ------------------------------------------

def caller_main(args: argparse.Namespace) -> None:
    """Runs in a subprocess (a pjsua2 process holds 4 calls); writes its turns as JSON."""
    clips = {text: read_wav(Path(path))[0]
             for text, path in json.loads(Path(args.clips).read_text()).items()}
    caller = Caller()
    slots = [Slot(caller, i) for i in range(args.calls)]
    shared, stop = Shared(), threading.Event()
    threads = [threading.Thread(target=call_loop, name=f"caller{i}", daemon=True,
                                args=(caller, slots[i], args.caller, clips, stop, shared,
                                      random.Random(args.seed * 100 + i), f"caller{i}"))
               for i in range(args.calls)]
    for th in threads:
        th.start()
        time.sleep(args.stagger)  # calls should not begin and end in lockstep
    time.sleep(max(0.0, args.seconds - args.stagger * len(threads)))
    stop.set()
    for th in threads:
        th.join(90)  # each finishes the turn it is in, then hangs up
    caller.close()
    with shared.lock:
        write_json(args.json, {
            "ttfa_ms": [t.ttfa_ms for t in shared.turns], "started": shared.started,
            "ended": shared.ended, "failed": shared.failed, "errors": shared.errors},
            indent=None)
    leave()


# --- processes watched from outside -----------------------------------------------------------

@dataclass
class Watched:
    """CPU and private memory of one process over the measured window."""

    name: str
    pid: int
    calls: int = 0
    anon_mb: list[float] = field(default_factory=list)
    anon_ready_mb: float | None = None
    cpu_start: float = 0.0
    cpu_s: float = 0.0

    def begin(self) -> None:
        """At the window's start: ready, no call up yet."""
        st = proc_stats(self.pid)
        self.cpu_start, self.anon_ready_mb = st["cpu_s"], st["anon_mb"]

    def sample(self) -> None:
        st = proc_stats(self.pid)
        self.anon_mb.append(st["anon_mb"])
        self.cpu_s = st["cpu_s"] - self.cpu_start

    def row(self) -> dict:
        med = statistics.median(self.anon_mb) if self.anon_mb else None
        return {"process": self.name, "calls": self.calls, "cpu_s": self.cpu_s,
                "anon_ready_mb": self.anon_ready_mb, "anon_median_mb": med,
                "anon_peak_mb": max(self.anon_mb, default=None),
                "anon_per_call_mb": med / self.calls if med and self.calls else None}


def start_llm_server(workdir: Path, llm: str, threads: int):
    from pipeline import models
    from testbed.llm_server import LlmServer

    # the 1.5B on a busy 2-core box takes a while to load
    return LlmServer(workdir, model=models.assemble_llm(llm), threads=threads).start(timeout=600)


class SharedEngine:
    """The engine ``voicebot workers`` starts for its workers, with the watched process's
    ``proc.pid`` and ``stop()`` of the other servers here."""

    def __init__(self, llm: str, workers: int) -> None:
        from gateway import config
        from gateway.workers import start_shared_engine

        cfg = config.build({"llm": {"backend": "engine", "bundled": llm}})
        self.engine = start_shared_engine(cfg, workers)
        self.base_url = self.engine.base_url
        self.proc = self  # Watched reads proc.pid

    @property
    def pid(self) -> int:
        pid = self.engine.pid()
        assert pid is not None
        return pid

    def stop(self) -> None:
        self.engine.stop()


def start_workers(workdir: Path, n: int, llm: str, llm_toml: str) -> list[GatewayProcess]:
    workers = []
    try:
        for i in range(n):
            (workdir / f"w{i}").mkdir(parents=True, exist_ok=True)
            # RTP ranges of their own (GatewayProcess derives one from the SIP port otherwise)
            workers.append(GatewayProcess(workdir / f"w{i}", rtp_port=20000 + 400 * i,
                                          extra_toml=llm_toml, llm=llm))
            workers[-1].start(timeout=900)  # loading under load has taken minutes
    except BaseException:
        for w in workers:
            w.stop()
        raise
    return workers


def run_phase(phase: str, args: argparse.Namespace, workdir: Path, clips: Path,
              say) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    server, workers = None, []
    llm_toml = ""
    try:
        if phase == "server":
            server = start_llm_server(workdir, args.llm, args.server_threads)
            llm_toml = (f'[llm]\nbackend = "openai"\nbase_url = "{server.base_url}"\n'
                        f"first_token_timeout = {args.first_token_timeout}\n")
        elif phase == "engine":
            server = SharedEngine(args.llm, args.workers)
            llm_toml = (f'[llm]\nbackend = "engine"\nengine_url = "{server.base_url}"\n'
                        f"first_token_timeout = {args.first_token_timeout}\n")
        workers = start_workers(workdir, args.workers, args.llm, llm_toml)
        result = drive(phase, args, workdir, clips, workers, server, say)
        if phase == "server" and args.hop_reps:
            for w in workers:  # the hop is timed on a quiet box
                w.stop()
            result["hop"] = hop_cost(server, args.llm, args.hop_reps)
        return result
    finally:
        for w in workers:
            w.stop()
        if server is not None:
            server.stop()


def drive(phase: str, args: argparse.Namespace, workdir: Path, clips: Path,
          workers: list[GatewayProcess], server, say) -> dict:
    split = split_calls(args.calls, args.workers)
    watched = [Watched(f"worker {i}", w.proc.pid, calls=n)
               for i, (w, n) in enumerate(zip(workers, split, strict=True))]
    if server is not None:
        watched.append(Watched("llm server", server.proc.pid))
    for w in watched:
        w.begin()
    say(f"{phase}: {args.calls} calls over {args.workers} workers for {args.seconds:.0f} s, "
        f"load avg {os.getloadavg()[0]:.2f} at start")
    callers = []
    for i, (w, n) in enumerate(zip(workers, split, strict=True)):
        out = workdir / f"caller{i}.json"
        log = (workdir / f"caller{i}.log").open("wb")
        callers.append((out, subprocess.Popen(
            [sys.executable, "-m", "bench.model_servers", "--caller", w.uri, "--calls", str(n),
             "--seconds", str(args.seconds), "--clips", str(clips), "--seed", str(i + 1),
             "--stagger", str(args.stagger), "--json", str(out)],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)))
    t0 = time.monotonic()
    while any(p.poll() is None for _, p in callers):
        time.sleep(SAMPLE_S)
        for w in watched:
            try:
                w.sample()
            except OSError as e:  # a process gone: say so, the figures stop there
                say(f"  {w.name} (pid {w.pid}) gone: {e}")
    seconds = time.monotonic() - t0
    caller_ms, started, failed, errors = [], 0, 0, []
    for out, proc in callers:
        if proc.returncode != 0 or not out.exists():
            errors.append(f"caller exited {proc.returncode} (log next to {out})")
            continue
        got = json.loads(out.read_text())
        caller_ms += got["ttfa_ms"]
        started, failed = started + got["started"], failed + got["failed"]
        errors += got["errors"]
    turns = [t for w in workers for t in JournalTail(w.workdir / "calls.jsonl").new_turns()]
    gw_ms = [t["ttfa_seconds"] * 1000 for t in turns if t.get("ttfa_seconds") is not None]
    answered = [v for v in caller_ms if v is not None]
    return {"phase": phase, "seconds": seconds, "calls_placed": started, "calls_failed": failed,
            "caller_errors": errors[:10], "turns": len(caller_ms),
            "turns_unanswered": len(caller_ms) - len(answered),
            "caller_ttfa_ms": p50_p95(answered), "gateway_ttfa_ms": p50_p95(gw_ms),
            "llm_errors": sum(1 for t in turns if t.get("llm_error")),
            "processes": [w.row() for w in watched], "load1_end": os.getloadavg()[0]}


# --- the HTTP hop on loopback -----------------------------------------------------------------

def first_piece_ms(handle, messages: list[dict[str, str]]) -> float:
    from pipeline.llm.chat import stream_chat

    t0, first = time.perf_counter(), None
    for _ in stream_chat(handle, messages, 4, 0.0):  # read to the end: the server stays clean
        first = first if first is not None else (time.perf_counter() - t0) * 1000
    return first if first is not None else float("nan")


def paired_ms(a, b, reps: int) -> tuple[float, float, float]:
    """Medians of ``a()`` and ``b()`` (each returns its own ms), timed in turns (a, b, a,
    b, ...: on a shared box both see the same load), and the median of the paired differences
    b - a. One warm call each first: the prompt's prefix is cached from there on."""
    a()
    b()
    pairs = [(a(), b()) for _ in range(reps)]
    return (statistics.median(x for x, _ in pairs), statistics.median(y for _, y in pairs),
            statistics.median(y - x for x, y in pairs))


def hop_cost(server, llm: str, reps: int) -> dict[str, float]:
    from gateway import config
    from gateway.app import system_prompt
    from pipeline import models
    from pipeline.llm.embedded import LlmPool
    from pipeline.llm.server import OpenAiLlm, ServerSettings

    def trivial() -> float:
        t0 = time.perf_counter()
        with urllib.request.urlopen(f"{server.base_url}/models", timeout=10) as r:
            r.read()
        return (time.perf_counter() - t0) * 1000

    messages = [{"role": "system", "content": system_prompt(config.Config())},
                {"role": "user", "content": QUESTIONS[0]}]
    remote = OpenAiLlm(ServerSettings(server.base_url, first_token_timeout=120,
                                      timeout=60)).acquire()
    # the same model and settings in this process (freed on return, before the next phase)
    local = LlmPool(models.assemble_llm(llm), 1, server.threads,
                    server.context_tokens).acquire()
    in_process, over_http, hop = paired_ms(lambda: first_piece_ms(local, messages),
                                           lambda: first_piece_ms(remote, messages), reps)
    return {"trivial_request_ms": statistics.median(trivial() for _ in range(max(reps, 20))),
            "first_token_in_process_ms": in_process, "first_token_over_http_ms": over_http,
            "first_token_hop_ms": hop}


# --- the report --------------------------------------------------------------------------------

def _ms(v: float | None) -> str:
    return "    -" if v is None else f"{v:5.0f}"


def _mb(v: float | None) -> str:
    return "     -" if v is None else f"{v:6.0f}"


def report(results: list[dict], header: str) -> list[str]:
    lines = [header, "",
             "phase     turns  unanswered  llm_errors  calls/failed  caller TTFA p50/p95 ms"
             "  gateway TTFA p50/p95 ms"]
    for r in results:
        lines.append(
            f"{r['phase']:<9} {r['turns']:5d}  {r['turns_unanswered']:10d}  {r['llm_errors']:10d}"
            f"  {r['calls_placed']:5d}/{r['calls_failed']:<6d}  "
            f"{_ms(r['caller_ttfa_ms'][0])} / {_ms(r['caller_ttfa_ms'][1])}           "
            f"{_ms(r['gateway_ttfa_ms'][0])} / {_ms(r['gateway_ttfa_ms'][1])}")
    lines += ["", "phase     process      calls  CPU s (window)  RssAnon ready  median / peak MB"
                  "  per call MB"]
    for r in results:
        for p in r["processes"]:
            lines.append(
                f"{r['phase']:<9} {p['process']:<11} {p['calls'] or '-':>6}  "
                f"{p['cpu_s']:7.1f} ({r['seconds']:4.0f} s)  {_mb(p['anon_ready_mb'])}"
                f"        {_mb(p['anon_median_mb'])} / "
                f"{_mb(p['anon_peak_mb'])}          {_mb(p['anon_per_call_mb'])}")
    for r in results:
        for e in r["caller_errors"]:
            lines.append(f"  {r['phase']} caller error: {e}")
        if "hop" in r:
            h = r["hop"]
            lines += ["", "HTTP hop on loopback (no call up; medians):"] + [
                f"  {what:<48} {h[key]:+8.1f} ms" if key == "first_token_hop_ms"
                else f"  {what:<48} {h[key]:8.1f} ms" for what, key in (
                    ("GET /v1/models", "trivial_request_ms"),
                    ("first token, same cached prompt, in process", "first_token_in_process_ms"),
                    ("first token, same cached prompt, over HTTP", "first_token_over_http_ms"),
                    ("over HTTP minus in process, paired (the hop)", "first_token_hop_ms"))]
    return lines


def make_clips(workdir: Path) -> Path:
    manifest = {}
    for text in QUESTIONS + EXTRA_QUESTIONS:
        path = workdir / f"q{len(manifest)}.wav"
        espeak(text, path)
        manifest[text] = str(path)
    out = workdir / "clips.json"
    out.write_text(json.dumps(manifest))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llm", default=DEFAULT_LLM,
                    help=f"[llm] bundled: {DEFAULT_LLM} (default) or {SMALL_LLM}")
    ap.add_argument("--calls", type=int, default=8, help="concurrent calls (default 8)")
    ap.add_argument("--workers", type=int, default=2, help="gateway workers (default 2)")
    ap.add_argument("--seconds", type=float, default=300.0,
                    help="how long each phase keeps the calls up (default 300)")
    ap.add_argument("--phases", default=",".join(PHASES),
                    help="comma-separated, run in this order (default server,embedded)")
    ap.add_argument("--server-threads", type=int, default=2,
                    help="llama_cpp.server --n_threads (default 2)")
    ap.add_argument("--first-token-timeout", type=float, default=60.0,
                    help="[llm] first_token_timeout of the server phase (default 60 s)")
    ap.add_argument("--hop-reps", type=int, default=7,
                    help="paired requests for the hop (default 7; 0: skip it)")
    ap.add_argument("--stagger", type=float, default=3.0,
                    help="seconds between a worker's calls starting (default 3)")
    ap.add_argument("--out", metavar="FILE", help="also write the report here")
    ap.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    ap.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (logs, journals)")
    # the caller subprocess (one per worker)
    ap.add_argument("--caller", metavar="URI", help=argparse.SUPPRESS)
    ap.add_argument("--clips", help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.caller:
        caller_main(args)
    require_tools("espeak-ng", "sox")
    phases = [p for p in args.phases.split(",") if p]
    if not set(phases) <= set(PHASES):
        ap.error(f"--phases: choose from {', '.join(PHASES)}")
    try:
        split_calls(args.calls, args.workers)
    except ValueError as e:
        ap.error(str(e))
    workdir = Path(args.keep or tempfile.mkdtemp(prefix="model-servers-"))
    workdir.mkdir(parents=True, exist_ok=True)
    out = open(args.out, "w") if args.out else None  # noqa: SIM115

    def say(line: str = "") -> None:
        print(line, flush=True)
        if out is not None:
            out.write(line + "\n")
            out.flush()

    header = (f"model_servers: {args.calls} calls over {args.workers} workers, {args.llm}, "
              f"{args.seconds:.0f} s per phase, server threads {args.server_threads}, "
              f"{time.strftime('%Y-%m-%d %H:%M:%S')}, {os.cpu_count()} cores, load avg "
              f"{os.getloadavg()[0]:.2f} at start; work dir {workdir}")
    say(header)
    try:
        clips = make_clips(workdir)
        results = [run_phase(p, args, workdir / p, clips, say) for p in phases]
        say()
        for line in report(results, header)[1:]:
            say(line)
        write_json(args.json, {"args": vars(args), "results": results})
    finally:
        if out is not None:
            out.close()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
