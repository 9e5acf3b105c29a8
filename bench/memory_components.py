"""Memory of each model component under a realistic, varied load, settings A/B side by side.

Loads a component the way ``gateway/app.py`` does (bundled models, verified by
``pipeline.models``), drives it in a loop with varied inputs, and samples the process's
VmRSS, RssAnon, glibc heap (mallinfo2: in use / free inside the heap / mmapped) and Python's
allocated block count every few iterations. Each settings variant runs in its own child
process (one at a time, so one core is busy), with the same random input sequence, so the
variants compare like for like.

    .venv/bin/python -m bench.memory_components [--component piper|whisper|llm|vad|all]
                                                [--iterations N] [--variants a,b]

Components and what an iteration is:
- piper: one clause synthesised (PiperTts.synthesize), a new random sentence about the
  clinic each time (names, times, prices, addresses: many distinct phoneme lengths).
- whisper: one decode (WhisperStt.transcribe) of real speech (pocketsphinx-testdata) cut to
  a random 1-12 s.
- llm: one caller turn: router (with the tools) + an answer streamed in a pooled context with
  the call's history; a "call" is 2-5 turns, then the context goes back to the pool.
- vad: one second of audio scored window by window (fixed shapes; the control).

Slopes are least-squares fits of RssAnon (MB per 100 iterations) over the first and the
second half of the loop (after a short warm-up); "heap free" is memory glibc holds but does
not use (fragmentation or untrimmed top).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time

import numpy as np

# --- measurements ----------------------------------------------------------------------------


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


_libc = ctypes.CDLL("libc.so.6")
_libc.mallinfo2.restype = _Mallinfo2


def malloc_trim() -> None:
    _libc.malloc_trim(0)


def sample() -> dict[str, float]:
    status = {}
    with open("/proc/self/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "Threads"):
                status[k] = int(v.split()[0])
    mi = _libc.mallinfo2()
    return {"rss": status["VmRSS"] / 1024, "anon": status["RssAnon"] / 1024,
            "heap_used": mi.uordblks / 2**20, "heap_free": mi.fordblks / 2**20,
            "mmapped": mi.hblkhd / 2**20, "threads": status["Threads"],
            "py_blocks": sys.getallocatedblocks()}


def slope(points: list[tuple[int, float]]) -> float:
    """Least-squares slope of value over iteration, per 100 iterations."""
    if len(points) < 2:
        return float("nan")
    x = np.array([p[0] for p in points], dtype=float)
    y = np.array([p[1] for p in points], dtype=float)
    if np.ptp(x) == 0:
        return float("nan")
    return float(np.polyfit(x, y, 1)[0] * 100)


# --- varied inputs ---------------------------------------------------------------------------

NAMES = ["Anna", "Mr Okafor", "Dr Lindqvist", "Maria", "Mrs Papadopoulos", "John", "Priya",
         "Dr Chen", "Mr Gallagher", "Sofia", "Kwame", "Yuki", "Ms Fitzgerald", "Tomasz"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "next week", "tomorrow"]
STREETS = ["River Street", "Elm Avenue", "Harbour Road", "Maple Lane", "King's Parade"]
TEMPLATES = [
    "The clinic opens at {h} in the morning and closes at {h2} in the afternoon.",
    "A check-up costs {p} dollars, and a cleaning is {p2} dollars more.",
    "We are at {n} {street}, next to the pharmacy.",
    "{name} can see you on {day} at {h} {m}.",
    "I have booked you with {name} on {day}.",
    "Sorry, {name} is not in on {day}.",
    "Your appointment number is {n} {n2}.",
    "Parking is free for the first {m} minutes.",
    "A filling starts at {p} dollars, depending on the tooth.",
    "Yes.",
    "Of course, {name}.",
    "We are closed on weekends, but you can leave a message and we will call you back on "
    "{day} before {h2}.",
    "The whitening treatment takes about {m} minutes and costs {p} dollars, and most "
    "patients need {n} sessions spread over {n2} weeks.",
    "Thank you for calling Riverside Dental Clinic.",
    "Could you spell your name for me?",
    "{name}, your order {n}{n2} is ready for pickup at {n} {street}.",
]
NUMBER_WORDS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                "eleven", "twelve"]


def clause(rng: random.Random) -> str:
    t = rng.choice(TEMPLATES)
    return t.format(h=rng.choice(NUMBER_WORDS), h2=rng.choice(NUMBER_WORDS),
                    m=rng.choice(["fifteen", "thirty", "forty five", "ten", "twenty"]),
                    p=rng.randint(20, 950), p2=rng.randint(5, 300), n=rng.randint(1, 999),
                    n2=rng.randint(10, 99), name=rng.choice(NAMES), day=rng.choice(DAYS),
                    street=rng.choice(STREETS))


QUESTIONS = [
    "When do you open on {day}?", "How much is a check-up?", "Where are you?",
    "Can I book an appointment with {name} on {day}?", "Do you take new patients?",
    "What's the status of order {n}?", "Is {name} working on {day}?",
    "How much does a filling cost?", "Can I park near {n} {street}?",
    "My tooth hurts since {day}, what should I do?", "Are you open on weekends?",
    "Can you transfer me to the front desk?", "Thanks, that's all.",
    "I'd like to cancel my appointment on {day} at {h}.",
    "Do you do whitening, and how long does it take?",
]


def question(rng: random.Random) -> str:
    return rng.choice(QUESTIONS).format(day=rng.choice(DAYS), name=rng.choice(NAMES),
                                        n=rng.randint(1000, 9999), street=rng.choice(STREETS),
                                        h=rng.choice(NUMBER_WORDS))


def speech_pool() -> np.ndarray:
    """Real read speech (pocketsphinx-testdata), float32 16 kHz, end to end."""
    from testbed.speech_corpus import corpus, read_wav

    parts = []
    for path, _text in corpus():
        pcm, rate = read_wav(path)
        assert rate == 16000
        parts += [pcm.astype(np.float32) / 32768.0, np.zeros(4000, dtype=np.float32)]
    return np.concatenate(parts)


# --- variants --------------------------------------------------------------------------------
# name -> (onnxruntime SessionOptions attributes forced, extra env, behaviour flags)
# Flags: trim = malloc_trim(0) after every "call" (8 iterations); threads = every "call"
# runs in a new thread, as the gateway's per-call threads do.

VARIANTS: dict[str, dict[str, dict]] = {
    "piper": {
        "default": {},
        "arena_on": {"ort": {"enable_mem_pattern": True, "enable_cpu_mem_arena": True}},
        "arena_shrink": {"ort": {"enable_mem_pattern": True, "enable_cpu_mem_arena": True},
                         "flags": {"shrink": True}},
        "no_mem_pattern": {"ort": {"enable_mem_pattern": False}},
        "no_arena": {"ort": {"enable_cpu_mem_arena": False}},
        "no_pattern_no_arena": {"ort": {"enable_mem_pattern": False,
                                        "enable_cpu_mem_arena": False}},
        "trim": {"flags": {"trim": True}},
        "call_threads": {"flags": {"threads": True}},
    },
    "whisper": {
        "default": {},
        "window_per_sample": {"flags": {"window_step": 1}},
        "fixed_window": {"flags": {"fixed_window": True}},
        "onednn_cache0": {"env": {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "0",
                                  "DNNL_PRIMITIVE_CACHE_CAPACITY": "0"}},
        "mkl_no_fast_mm": {"env": {"MKL_DISABLE_FAST_MM": "1"}},
        "trim": {"flags": {"trim": True}},
        "call_threads": {"flags": {"threads": True}},
    },
    "llm": {
        "default": {},
        "sampler_cycle": {"flags": {"keep_sampler": True}},
        "trim": {"flags": {"trim": True}},
    },
    "vad": {
        "default": {},
        "call_threads": {"flags": {"threads": True}},
    },
}
DEFAULT_ITERATIONS = {"piper": 400, "whisper": 600, "llm": 40, "vad": 600}
DEFAULT_VARIANTS = {"piper": "default,arena_on,no_mem_pattern,no_arena,arena_shrink,trim",
                    "whisper": "default,window_per_sample,onednn_cache0,mkl_no_fast_mm,trim",
                    "llm": "default,sampler_cycle,trim", "vad": "default,call_threads"}
CALL_LEN = 8  # iterations per simulated call (trim / thread boundaries)


def force_ort_options(forced: dict) -> None:
    """Make every onnxruntime session created from now on use ``forced`` options (applied
    after pipeline/models.py's own, so the variant wins whatever the pipeline sets)."""
    import onnxruntime as ort

    real = ort.InferenceSession

    def session(path_or_bytes, sess_options=None, providers=None, **kw):
        opts = sess_options or ort.SessionOptions()
        for k, v in forced.items():
            setattr(opts, k, v)
        return real(path_or_bytes, sess_options=opts, providers=providers, **kw)

    ort.InferenceSession = session  # type: ignore[misc]


# --- components (child side) -----------------------------------------------------------------

def load_config():
    from gateway.config import load

    return load("config/voicebot.toml")


def make_piper(flags: dict, threads: int):
    from pipeline import models
    from pipeline.tts.piper import PiperTts

    cfg = load_config()
    tts = PiperTts(models.resolve().piper_voice, cfg.tts.length_scale, cfg.tts.volume)
    if flags.get("shrink"):  # free the arena's unused regions at the end of every run
        import onnxruntime as ort

        sess = tts._voice.session
        ro = ort.RunOptions()
        ro.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

        class Shrinking:
            def __getattr__(self, name):
                return getattr(sess, name)

            def run(self, outputs, feeds, run_options=None):
                return sess.run(outputs, feeds, run_options or ro)

        tts._voice.session = Shrinking()
    tts.warm_up()

    def step(i: int, rng: random.Random) -> None:
        for _ in tts.synthesize(clause(rng)):
            pass
    return step


def make_whisper(flags: dict, threads: int):
    from pipeline import models
    from pipeline.stt import make_stt, whisper

    if flags.get("fixed_window"):
        whisper.MIN_WINDOW_SAMPLES = 13 * 16000  # every encoder input the same shape
    if "window_step" in flags:  # 1: a window per distinct length (before the fix)
        whisper.WINDOW_STEP = flags["window_step"]
    cfg = load_config()
    w = make_stt("whisper", "", language=cfg.stt.language, beam_size=cfg.stt.beam_size,
                 threads=threads, bundled_whisper=models.resolve().whisper_dir)
    w.warm_up()
    pool = speech_pool()

    def step(i: int, rng: random.Random) -> None:
        n = int(rng.uniform(1.0, 12.0) * 16000)
        start = rng.randrange(0, len(pool) - n)
        w.transcribe(pool[start:start + n])
    return step


def make_llm(flags: dict, threads: int):
    from gateway.app import tool_policy
    from pipeline import models
    from pipeline.llm import chat as llm_module
    from pipeline.llm.chat import stream_chat
    from pipeline.llm.embedded import LlmPool
    from pipeline.reply.history import ChatHistory

    if flags.get("keep_sampler"):  # before the fix: the sampler waits for a full gc pass
        llm_module._free_sampler = lambda llm: None
    cfg = load_config()
    tools = tool_policy(cfg)
    pool = LlmPool(models.resolve().llm, 2, threads, cfg.llm.context_tokens, 0,
                   cfg.llm.system_prompt, cfg.llm.greeting, tools.specs() if tools else None)
    pool.warm_up()
    state: dict = {"left": 0}

    def step(i: int, rng: random.Random) -> None:
        if state["left"] == 0:  # a new call: a context from the pool, a fresh history
            if "llm" in state:
                pool.release(state["llm"])
            state.update(llm=pool.acquire(), left=rng.randint(2, 5),
                         history=ChatHistory(cfg.llm.system_prompt, cfg.llm.history_turns))
            if cfg.llm.greeting:
                state["history"].add_bot(cfg.llm.greeting)
        q = question(rng)
        pool.route(q)
        h = state["history"]
        h.add_user(q)
        answer = "".join(stream_chat(state["llm"], h.messages(), cfg.llm.max_tokens,
                                     cfg.llm.temperature))
        h.add_bot(answer)
        state["left"] -= 1
    return step


def make_vad(flags: dict, threads: int):
    from pipeline import models
    from pipeline.audio.vad import SileroModel

    model = SileroModel(models.resolve().vad)
    pool = speech_pool()
    streams = {}

    def step(i: int, rng: random.Random) -> None:
        key = (threading.get_ident(), i // CALL_LEN)  # one stream per call
        s = streams.pop(key, None) or model.stream()
        streams.clear()
        streams[key] = s
        start = rng.randrange(0, len(pool) - 16000)
        s.feed(pool[start:start + 16000])
    return step


def piper_speed_ab(names: list[str], clauses: int, seed: int) -> None:
    """Synthesis time of the same clauses with each variant's session, interleaved clause by
    clause in one process (load on the shared box hits every variant alike)."""
    import onnxruntime as ort

    from pipeline import models
    from pipeline.tts.piper import PiperTts

    cfg = load_config()
    real = ort.InferenceSession
    voices = {}
    for name in names:
        forced = VARIANTS["piper"][name].get("ort", {})

        def session(path_or_bytes, sess_options=None, providers=None, _f=forced, **kw):
            opts = sess_options or ort.SessionOptions()
            for k, v in _f.items():
                setattr(opts, k, v)
            return real(path_or_bytes, sess_options=opts, providers=providers, **kw)

        ort.InferenceSession = session  # type: ignore[misc]
        voices[name] = PiperTts(models.resolve().piper_voice, cfg.tts.length_scale,
                                cfg.tts.volume)
        voices[name].warm_up()
    ort.InferenceSession = real  # type: ignore[misc]
    rng = random.Random(seed)
    times: dict[str, list[float]] = {n: [] for n in names}
    audio_s = 0.0
    for _ in range(clauses):
        text = clause(rng)
        for name in rng.sample(names, len(names)):
            t0 = time.perf_counter()
            n = sum(len(getattr(b, "pcm", b)) for b in voices[name].synthesize(text))
            times[name].append(time.perf_counter() - t0)
        audio_s += n / 2 / 16000
    base = statistics.median(times[names[0]])
    print(f"\n== piper synthesis speed, {clauses} clauses ({audio_s / clauses:.2f} s of audio "
          f"each on average), variants interleaved in one process ==")
    for name in names:
        t = sorted(times[name])
        med = statistics.median(t)
        p90 = t[int(0.9 * (len(t) - 1))]
        print(f"{name:<20} median {med * 1000:6.1f} ms  p90 {p90 * 1000:6.1f} ms  "
              f"total {sum(t):6.1f} s  median vs {names[0]}: {med / base:5.3f}", flush=True)


def whisper_window_check(seed: int, iterations: int) -> None:
    """Window per exact length (step 1 sample, before) vs whole seconds (pipeline default):
    WER on the pocketsphinx-testdata recordings, and decode time on random 1-12 s cuts,
    interleaved in one process."""
    from pipeline import models
    from pipeline.stt import make_stt, whisper
    from testbed.speech_corpus import corpus, load, normalise, wer

    cfg = load_config()
    w = make_stt("whisper", "", language=cfg.stt.language, beam_size=cfg.stt.beam_size,
                 threads=1, bundled_whisper=models.resolve().whisper_dir)
    w.warm_up()
    steps = {"per_sample": 1, "whole_seconds": 16000}
    errs = dict.fromkeys(steps, 0)
    words = 0
    same = 0
    items = corpus()
    for path, ref in items:
        audio = load(path, False)
        hyps = {}
        for name, step in steps.items():
            whisper.WINDOW_STEP = step
            hyps[name] = w.transcribe(audio)
            errs[name] += wer(normalise(ref), normalise(hyps[name]))
        words += len(normalise(ref))
        same += len(set(hyps.values())) == 1
    rng = random.Random(seed)
    pool = speech_pool()
    times: dict[str, list[float]] = {n: [] for n in steps}
    long_turn: list[bool] = []
    for _ in range(iterations):
        n = int(rng.uniform(1.0, 12.0) * 16000)
        start = rng.randrange(0, len(pool) - n)
        long_turn.append(n > 9 * 16000)
        for name in rng.sample(list(steps), len(steps)):
            whisper.WINDOW_STEP = steps[name]
            t0 = time.perf_counter()
            w.transcribe(pool[start:start + n])
            times[name].append(time.perf_counter() - t0)
    print(f"\n== whisper encoder window: {len(items)} recordings ({same} transcripts "
          f"identical), {iterations} random 1-12 s cuts timed, interleaved ==")
    for name in steps:
        t = sorted(times[name])
        longer = [x for x, lt in zip(times[name], long_turn, strict=True) if lt]
        print(f"{name:<14} WER {errs[name] / words:6.1%}  decode median "
              f"{statistics.median(t) * 1000:6.1f} ms  p90 {t[int(0.9 * (len(t) - 1))] * 1000:6.1f}"
              f" ms  turns over 9 s: median {statistics.median(longer) * 1000:6.1f} ms "
              f"(n={len(longer)})", flush=True)


MAKERS = {"piper": make_piper, "whisper": make_whisper, "llm": make_llm, "vad": make_vad}


def child(component: str, variant: str, iterations: int, every: int, threads: int,
          seed: int) -> None:
    spec = VARIANTS[component][variant]
    flags = spec.get("flags", {})
    if spec.get("ort"):
        force_ort_options(spec["ort"])
    t_load = time.monotonic()
    step = MAKERS[component](flags, threads)
    load_s = time.monotonic() - t_load
    rng = random.Random(seed)
    samples: list[dict] = [{"i": 0, **sample()}]
    times: list[float] = []

    def run(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            t0 = time.perf_counter()
            step(i, rng)
            times.append(time.perf_counter() - t0)
            if (i + 1) % every == 0:
                samples.append({"i": i + 1, **sample()})

    for lo in range(0, iterations, CALL_LEN):
        hi = min(lo + CALL_LEN, iterations)
        if flags.get("threads"):
            t = threading.Thread(target=run, args=(lo, hi))
            t.start()
            t.join()
        else:
            run(lo, hi)
        if flags.get("trim"):
            malloc_trim()
        if hi // every != lo // every:
            s = samples[-1]
            print(f"  [{component}/{variant}] {hi}/{iterations}  anon {s['anon']:.1f} MB",
                  file=sys.stderr, flush=True)
    print(json.dumps({"component": component, "variant": variant, "load_s": load_s,
                      "samples": samples, "times": times}))


# --- parent side -----------------------------------------------------------------------------

def summarise(r: dict, warm: int) -> dict:
    s = [x for x in r["samples"] if x["i"] >= warm]
    mid = s[len(s) // 2]["i"]
    first = [(x["i"], x["anon"]) for x in s if x["i"] <= mid]
    second = [(x["i"], x["anon"]) for x in s if x["i"] >= mid]
    t = r["times"][warm:] or r["times"]
    a, b = r["samples"][0], r["samples"][-1]
    return {"before": a, "after": b, "first": slope(first), "second": slope(second),
            "heap_used_slope": slope([(x["i"], x["heap_used"]) for x in s]),
            "heap_free_slope": slope([(x["i"], x["heap_free"]) for x in s]),
            "median_ms": statistics.median(t) * 1000,
            "p90_ms": sorted(t)[int(0.9 * (len(t) - 1))] * 1000}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--component", default="all", choices=[*MAKERS, "all"])
    ap.add_argument("--iterations", type=int, default=0, help="per variant (0: per component)")
    ap.add_argument("--variants", default="", help="comma-separated (default: per component; "
                    "known: " + "; ".join(f"{c}: {','.join(v)}" for c, v in VARIANTS.items()))
    ap.add_argument("--every", type=int, default=0, help="sample every N iterations")
    ap.add_argument("--threads", type=int, default=1,
                    help="CPU threads for Whisper and llama (the gateway uses 2; 1 keeps the "
                    "bench on one core)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--speed-ab", type=int, default=0, metavar="CLAUSES",
                    help="piper: time the variants on the same clauses, interleaved in one "
                    "process (instead of the memory runs)")
    ap.add_argument("--window-check", type=int, default=0, metavar="CUTS",
                    help="whisper: WER and decode time, window per sample vs whole seconds")
    ap.add_argument("--child", nargs=2, metavar=("COMPONENT", "VARIANT"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.iterations, args.every, args.threads,
              args.seed)
        return
    if args.window_check:
        whisper_window_check(args.seed, args.window_check)
        return
    if args.speed_ab:
        piper_speed_ab((args.variants or "default,no_mem_pattern,no_arena").split(","),
                       args.speed_ab, args.seed)
        return
    print("command: .venv/bin/python -m bench.memory_components " + " ".join(sys.argv[1:]))
    print(f"host: {os.cpu_count()} cores, load avg {os.getloadavg()[0]:.2f} at start, "
          f"threads for whisper/llm {args.threads}")
    comps = list(MAKERS) if args.component == "all" else [args.component]
    for comp in comps:
        n = args.iterations or DEFAULT_ITERATIONS[comp]
        every = args.every or max(1, n // 40)
        warm = max(every, n // 10)
        names = (args.variants or DEFAULT_VARIANTS[comp]).split(",")
        print(f"\n== {comp}: {n} iterations per variant, sample every {every}, "
              f"slopes after iteration {warm} ==")
        print(f"{'variant':<20} {'anon0':>7} {'anon1':>7} {'grow':>6} {'/100 1st':>8} "
              f"{'/100 2nd':>8} {'heapU/100':>9} {'heapF/100':>9} {'rss1':>7} "
              f"{'med ms':>7} {'p90 ms':>7}", flush=True)
        for name in names:
            spec = VARIANTS[comp][name]
            env = {**os.environ, **spec.get("env", {})}
            cmd = [sys.executable, "-m", "bench.memory_components", "--child", comp, name,
                   "--iterations", str(n), "--every", str(every), "--threads",
                   str(args.threads), "--seed", str(args.seed)]
            t0 = time.monotonic()
            p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
            if p.returncode != 0:
                print(f"{name:<20} FAILED (exit {p.returncode})", flush=True)
                continue
            r = json.loads(p.stdout.strip().splitlines()[-1])
            s = summarise(r, warm)
            b, a = s["before"], s["after"]
            print(f"{name:<20} {b['anon']:7.1f} {a['anon']:7.1f} {a['anon'] - b['anon']:+6.1f} "
                  f"{s['first']:+8.2f} {s['second']:+8.2f} {s['heap_used_slope']:+9.2f} "
                  f"{s['heap_free_slope']:+9.2f} {a['rss']:7.1f} {s['median_ms']:7.1f} "
                  f"{s['p90_ms']:7.1f}   ({time.monotonic() - t0:.0f} s; heap used/free/mmap "
                  f"{a['heap_used']:.0f}/{a['heap_free']:.0f}/{a['mmapped']:.0f} MB; "
                  f"py blocks {a['py_blocks'] - b['py_blocks']:+d})", flush=True)
    print("\nanon0: RssAnon after loading + warm-up; anon1: at the end; grow: MB; /100: MB "
          "per 100 iterations (least squares), 1st/2nd half; heapU/heapF: glibc heap in use / "
          "free-but-kept, MB per 100 iterations; med/p90: ms per iteration.")


if __name__ == "__main__":
    main()
