"""TTFA and barge-in benchmark: a scripted pjsua2 caller against real gateways.

    .venv/bin/python -m bench.turns [--turns N] [--llm qwen2.5-coder-0.5b] [--json FILE]

Starts gateways with the same bundled models in each ``[turn] mode``: ``streaming`` (the
default), ``sequential`` (whole transcript, whole reply, whole speech; every per-stage speed-up
kept, the system prompt's KV state included) and ``cascade`` (sequential, and the LLM re-reads
the whole prompt every turn, as a 2022-style cascade does), and calls them in turn from a
caller in this process. The caller is a pjsua2 user agent whose media port plays
scripted speech (espeak-ng, a different synthesizer than the bot's) and records what comes
back; both directions are counted in the caller's 20 ms media ticks, so every figure is
measured on the audio at the caller's end of the call (sent: as it goes to the wire;
received: after the caller's jitter buffer, whose delay is reported and subtracted).

Measured per turn:
- TTFA: end of the caller's question (last non-silent 10 ms of what was sent) to the first
  non-silent audio of the bot's answer received.
- barge-in latency: onset of the caller's interruption to the bot's last audio received.
- false barge-ins: with the caller's line echoing the bot's audio back (attenuated 10-20 dB,
  delayed 40-200 ms), the bot's answers must not be cut without the caller speaking.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from bench.report import leave, write_json
from testbed.harness import GatewayProcess, espeak, free_udp_port, require_tools

FRAME = 320  # samples per 20 ms tick at 16 kHz
RATE = 16000
LOUD = 300.0  # RMS of a 10 ms window that counts as audio (the bot's speech is ~3000)

QUESTIONS = [
    "What time do you open in the morning?",
    "Where is the clinic?",
    "How much does a check-up cost?",
    "Are you open on Saturday?",
    "When do you close in the afternoon?",
    "Can I book an appointment for Monday?",
    "What is your address?",
    "Are you open on Sundays?",
]
LONG_ASKS = [
    "Please tell me everything about the clinic, the hours, the address and the prices.",
    "Can you explain in detail how to book an appointment and what a check-up includes?",
]
# Questions whose answer takes two sentences: where streaming has the most to overlap (the
# one-line answers above leave the sequential baseline little to wait for)
TWO_PART = [
    "What are your opening hours, and what is your address?",
    "How much is a check-up, and how do I book one?",
    "When do you close today, and are you open on Saturday?",
    "Where are you, and when do you open in the morning?",
]
INTERRUPTIONS = ["Sorry, what is the address?", "Wait, how much is it?"]


# --- the caller ------------------------------------------------------------------------------

def _pj():
    import pjsua2 as pj

    return pj


class CallerAudio:
    """What the caller's media port plays and hears, tick by tick (clock thread only)."""

    def __init__(self, echo_gain: float = 0.0, echo_delay_ticks: int = 0) -> None:
        self.out: collections.deque[np.ndarray] = collections.deque()
        self.sent: list[np.ndarray] = []
        self.recv: list[np.ndarray] = []
        self.echo_gain = echo_gain
        self.echo_delay = echo_delay_ticks
        self.lock = threading.Lock()

    def tick_out(self) -> np.ndarray:
        frame = self.out.popleft() if self.out else np.zeros(FRAME, np.int16)
        if self.echo_gain and len(self.recv) > self.echo_delay:
            echo = self.recv[-1 - self.echo_delay].astype(np.float32) * self.echo_gain
            frame = np.clip(frame.astype(np.float32) + echo, -32768, 32767).astype(np.int16)
        self.sent.append(frame)
        return frame

    def tick_in(self, pcm: np.ndarray) -> None:
        self.recv.append(pcm)

    def play(self, pcm: np.ndarray) -> int:
        """Queue speech; returns the tick at which its first sample goes out."""
        with self.lock:
            start = len(self.sent) + len(self.out)
            n = -(-len(pcm) // FRAME)
            padded = np.zeros(n * FRAME, np.int16)
            padded[: len(pcm)] = pcm
            self.out.extend(padded.reshape(n, FRAME))
        return start


def make_port(current: Callable[[], CallerAudio]):
    """A caller media port feeding ``current()`` (a port reused call after call gets each
    call's CallerAudio this way)."""
    pj = _pj()
    from gateway.telephony.media_port import read_vector

    class Port(pj.AudioMediaPort):
        # AttributeError: a tick that races the port's destruction
        # (see gateway/telephony/media_port.py)
        def onFrameReceived(self, frame):  # noqa: N802
            if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO:
                pcm = np.frombuffer(read_vector(frame.buf), dtype="<i2")
                if len(pcm) != FRAME:
                    pcm = np.resize(pcm, FRAME)
            else:
                pcm = np.zeros(FRAME, np.int16)
            with contextlib.suppress(AttributeError):
                current().tick_in(pcm)

        def onFrameRequested(self, frame):  # noqa: N802
            with contextlib.suppress(AttributeError):
                frame.buf = pj.ByteVector(current().tick_out().tobytes())
                frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
                frame.size = FRAME * 2

    return Port()


def new_call(pj, acc, port):
    """A pjsua2 Call that connects its audio both ways to ``port`` once media is up;
    ``connected`` and ``gone`` are set at media-up and at DISCONNECTED."""

    class C(pj.Call):
        def __init__(self, acc) -> None:
            super().__init__(acc)
            self.connected = threading.Event()
            self.gone = threading.Event()
            self.last_status = ""  # the final answer or the reason it ended

        def onCallMediaState(self, prm):  # noqa: N802
            ci = self.getInfo()
            media = ci.media
            for i in range(len(media)):
                if (media[i].type == pj.PJMEDIA_TYPE_AUDIO
                        and media[i].status == pj.PJSUA_CALL_MEDIA_ACTIVE):
                    am = self.getAudioMedia(i)
                    am.startTransmit(port)
                    port.startTransmit(am)
                    self.connected.set()

        def onCallState(self, prm):  # noqa: N802
            ci = self.getInfo()
            if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                self.last_status = f"{ci.lastStatusCode} {ci.lastReason}"
                self.gone.set()

    return C(acc)


class Caller:
    def __init__(self) -> None:
        pj = _pj()
        from gateway.telephony.media_port import init_fast_path, pcm_format

        self.pj = pj
        self.ep = pj.Endpoint()
        self.ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 1
        cfg.logConfig.level = 0
        cfg.logConfig.consoleLevel = 0
        mc = cfg.medConfig
        mc.clockRate = mc.sndClockRate = RATE
        mc.audioFramePtime = 20
        mc.noVad = True
        mc.ecTailLen = 0
        mc.quality = 8
        self.ep.libInit(cfg)
        t = pj.TransportConfig()
        t.port = free_udp_port()
        t.boundAddress = "127.0.0.1"
        self.ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, t)
        self.ep.libStart()
        self.ep.audDevManager().setNullDev()
        for c in self.ep.codecEnum2():
            self.ep.codecSetPriority(c.codecId, 255 if c.codecId.startswith("G722") else 0)
        init_fast_path()
        acfg = pj.AccountConfig()
        acfg.idUri = f"sip:bench@127.0.0.1:{t.port}"
        acfg.mediaConfig.transportConfig.port = 45000 + random.randint(0, 50) * 20
        acfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
        self.acc = pj.Account()
        self.acc.create(acfg)
        self.fmt = pcm_format()
        self.keep: list = []

    def call(self, uri: str, audio: CallerAudio):
        pj = self.pj
        port = make_port(lambda: audio)
        port.createPort(f"bench{id(audio)}", self.fmt)
        c = new_call(pj, self.acc, port)
        c.port = port
        self.keep.append(c)  # never destroyed mid-run: see close()
        c.makeCall(uri, pj.CallOpParam(True))
        if not c.connected.wait(10):
            raise RuntimeError(f"call to {uri} did not connect")
        return c

    def jitter_delay_ms(self, call) -> float:
        try:
            return float(call.getStreamStat(0).jbuf.avgDelayMsec)
        except self.pj.Error:
            return 0.0

    def hangup(self, call) -> None:
        with contextlib.suppress(self.pj.Error):
            call.hangup(self.pj.CallOpParam())
        call.gone.wait(5)

    def close(self) -> None:
        """Hang up everything. The pjsua2 objects are left to the process exit (main() ends
        with os._exit): destroying Calls and ports while the library runs races its
        threads, and after libDestroy their destructors assert."""
        self.ep.hangupAllCalls()
        time.sleep(0.5)


# --- analysis (pure) -------------------------------------------------------------------------

def loud_windows(frames: list[np.ndarray], lo_tick: int = 0) -> np.ndarray:
    """Per-10 ms loudness flags of the received frames from ``lo_tick`` on."""
    if len(frames) <= lo_tick:
        return np.zeros(0, bool)
    x = np.concatenate(frames[lo_tick:]).astype(np.float64).reshape(-1, FRAME // 2)
    return np.sqrt((x ** 2).mean(axis=1)) > LOUD


def first_loud_ms(frames: list[np.ndarray], from_tick: int) -> float | None:
    """Time (ms, from tick 0) of the first loud 10 ms at or after ``from_tick``."""
    loud = loud_windows(frames, from_tick)
    idx = np.flatnonzero(loud)
    return None if idx.size == 0 else from_tick * 20 + idx[0] * 10.0


def last_loud_before_gap_ms(frames: list[np.ndarray], from_tick: int,
                            gap_ms: int = 400) -> float | None:
    """End (ms) of the loud stretch that is running at ``from_tick`` (ends at a gap)."""
    loud = loud_windows(frames, from_tick)
    need = gap_ms // 10
    last = None
    quiet = 0
    for i, on in enumerate(loud):
        if on:
            last, quiet = i, 0
        else:
            quiet += 1
            if quiet >= need:
                break
    return None if last is None else from_tick * 20 + (last + 1) * 10.0


def line_levels(audio: CallerAudio) -> str:
    """Peaks so far of what the caller heard and what it sent back: with only its echo on
    the line, what it sent stays ``echo_gain`` under what it heard."""
    def peak(frames: list[np.ndarray]) -> int:
        return max((int(np.abs(f.astype(np.int32)).max()) for f in frames), default=0)

    # copies of lists the clock thread appends to (``audio.lock`` guards only ``out``)
    heard, sent = peak(list(audio.recv)), peak(list(audio.sent))
    return f"heard {heard}, sent {sent}, echo gain {audio.echo_gain:.2f}"


def speech_bounds_ms(pcm: np.ndarray) -> tuple[float, float]:
    """(first, last+1) loud 10 ms of a clip, in ms from its start."""
    x = pcm[: len(pcm) // 160 * 160].astype(np.float64).reshape(-1, 160)
    idx = np.flatnonzero(np.sqrt((x ** 2).mean(axis=1)) > LOUD)
    return idx[0] * 10.0, (idx[-1] + 1) * 10.0


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


# --- scenarios -------------------------------------------------------------------------------

@dataclass
class Turn:
    mode: str
    kind: str  # question | two_part | barge_in | echo
    text: str
    ttfa_ms: float | None = None
    barge_in_ms: float | None = None
    caller_jb_ms: float = 0.0


@dataclass
class Run:
    turns: list[Turn] = field(default_factory=list)
    false_barge_ins: dict[str, int] = field(default_factory=dict)
    still_talking: list[str] = field(default_factory=list)
    """Calls hung up on a bot still talking 60 s after a measured turn."""
    stages: list[dict] = field(default_factory=list)
    """The streaming gateway's own records of the question calls' turns (its stage times)."""


STAGES = (
    ("end-of-turn wait", lambda t: t["end_of_turn_seconds"]),
    ("STT not overlapped, hand-offs",
     lambda t: t["ttfa_bridge_seconds"] - t["end_of_turn_seconds"]
     - t["tts_first_audio_seconds"]),
    ("LLM first token", lambda t: _first_token(t)),
    ("first clause: tokens + synthesis",
     lambda t: t["tts_first_audio_seconds"] - _first_token(t)),
    ("wire (jitter buffer in, a frame out)",
     lambda t: t["ttfa_seconds"] - t["ttfa_bridge_seconds"]),
)
"""The stages of a turn's TTFA as the gateway records them (seconds), in order: their sum is
the gateway's TTFA at the caller's side of its port (``ttfa_seconds``). The STT job often
starts at a pause before the end of turn; only what is left of it after the end of turn adds
to the TTFA (the second stage, with the queue hand-offs)."""


def _first_token(t: dict) -> float:
    """The LLM's first token as far as the caller waited for it: not at all when the reply
    opened with the facts' words (the model read the note while they were synthesized)."""
    return 0.0 if t.get("opening") else t["llm_first_token_seconds"]


def opened(turns: list[dict]) -> tuple[int, int, float | None, float | None]:
    """Of the answered turns: how many opened with the facts' words, how many in all, and
    the gateway TTFA p50 (ms) of those and of the others."""
    answered = [t for t in turns if t.get("ttfa_seconds") is not None]
    by = [[t["ttfa_seconds"] * 1000 for t in answered if bool(t.get("opening")) is o]
          for o in (True, False)]
    return (len(by[0]), len(answered), pct(by[0], 0.5) if by[0] else None,
            pct(by[1], 0.5) if by[1] else None)


def stage_table(turns: list[dict]) -> list[tuple[str, int, float, float]]:
    """Per stage: name, n, median and p95 (ms), over the answered turns that have every time
    (a tool turn has no LLM stream; a speculative answer's STT may precede the end of turn; a
    reply opened with the facts' words may have nothing after them)."""
    whole = [t for t in turns if t.get("ttfa_seconds") is not None and all(
        t.get(k) is not None for k in ("end_of_turn_seconds", "stt_seconds",
                                       "tts_first_audio_seconds", "ttfa_bridge_seconds"))
        and (t.get("opening") or t.get("llm_first_token_seconds") is not None)]
    rows = []
    for name, of in (*STAGES, ("gateway TTFA (the sum)", lambda t: t["ttfa_seconds"]),
                     ("STT job (may start at a pause)", lambda t: t["stt_seconds"])):
        v = [of(t) * 1000 for t in whole]
        if v:
            rows.append((name, len(v), pct(v, 0.5), pct(v, 0.95)))
    return rows


def from_the_pause(turns: list[dict]) -> tuple[int, int]:
    """Of the answered turns, how many were answered from the transcript made at the caller's
    pause (the speculation stood: no decode after the end of turn), and how many in all."""
    answered = [t for t in turns if t.get("ttfa_seconds") is not None]
    return sum(1 for t in answered if t.get("speculative")), len(answered)


def tokens_read(turns: list[dict]) -> tuple[int, float, float] | None:
    """n, median and p95 of the prompt tokens each reply read after its request (the rest
    was read ahead); None when the backend does not say."""
    v = [t["prompt_tokens_read"] for t in turns if t.get("prompt_tokens_read") is not None]
    return (len(v), pct(v, 0.5), pct(v, 0.95)) if v else None


def wait_quiet(audio: CallerAudio, quiet_ms: int = 900, timeout: float = 60.0) -> None:
    """Wait until the bot has said something and then been quiet for ``quiet_ms`` (60 s at
    most: the "tell me everything" asks can get a full 96-token answer, ~30 s of speech)."""
    t_end = time.monotonic() + timeout
    heard = False
    while time.monotonic() < t_end:
        time.sleep(0.1)
        n = len(audio.recv)
        if n < quiet_ms // 20:
            continue
        tail = loud_windows(audio.recv, n - quiet_ms // 20)
        heard = heard or bool(loud_windows(audio.recv, max(0, n - 100)).any())
        if heard and not tail.any() and not audio.out:
            return
    raise TimeoutError("the bot did not go quiet")


def settle(audio: CallerAudio, run: Run, what: str, quiet_ms: int = 900) -> None:
    """After a measured turn, let the bot finish before the hang-up. Nothing here is measured,
    so a bot still talking after 60 s is counted and hung up on (the 0.5B, answering after a
    barge-in, once talked past 60 s and the whole run died)."""
    try:
        wait_quiet(audio, quiet_ms=quiet_ms)
    except TimeoutError:
        run.still_talking.append(what)
        progress(f"{what}: the bot still talked after 60 s; hanging up")


def ask(audio: CallerAudio, clip: np.ndarray, mode: str, text: str, kind: str) -> Turn:
    start_tick = audio.play(clip)
    _, end_ms = speech_bounds_ms(clip)
    q_end_ms = start_tick * 20 + end_ms
    deadline = time.monotonic() + len(clip) / RATE + 20
    while time.monotonic() < deadline:
        time.sleep(0.05)
        first = first_loud_ms(audio.recv, int(q_end_ms // 20))
        if first is not None:
            return Turn(mode, kind, text, ttfa_ms=first - q_end_ms)
    return Turn(mode, kind, text)


def barge(audio: CallerAudio, ask_clip: np.ndarray, cut_clip: np.ndarray, mode: str,
          text: str, after_s: float) -> Turn:
    turn = ask(audio, ask_clip, mode, text, "barge_in")
    if turn.ttfa_ms is None:
        return turn
    # wait until the answer has been playing for after_s, then interrupt
    time.sleep(after_s)
    cut_tick = audio.play(cut_clip)
    onset_ms = cut_tick * 20 + speech_bounds_ms(cut_clip)[0]
    time.sleep(len(cut_clip) / RATE + 1.5)
    end = last_loud_before_gap_ms(audio.recv, max(0, int(onset_ms // 20) - 5))
    if end is not None:
        turn.barge_in_ms = max(0.0, end - onset_ms)
    return turn


def interruptions(log: str, skip: int) -> list[str]:
    """The gateway's "bot interrupted" lines after the first ``skip`` ones: the bot stopped
    audio the caller was hearing (a reply dropped before it played is logged otherwise)."""
    return [line for line in log.splitlines() if "bot interrupted" in line][skip:]


_ALIVE: list = []


MODES = ("streaming", "sequential", "cascade")
BASELINES = MODES[1:]


def ratio_key(base: str) -> str:
    """The JSON key of streaming's TTFA over ``base``'s (the sequential one keeps its old name)."""
    return "ttfa_ratio_p50" if base == "sequential" else f"ttfa_ratio_{base}_p50"


def progress(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def run_bench(turns: int, echo_turns: int, barge_turns: int, workdir: Path, seed: int,
              llm: str = "", turn_toml: str = "", modes: tuple[str, ...] = MODES) -> Run:
    rng = random.Random(seed)
    clips = {}
    for text in QUESTIONS + TWO_PART + LONG_ASKS + INTERRUPTIONS:
        clips[text] = espeak(text, workdir / f"q{len(clips)}.wav")
    gateways = {}
    for mode in modes:
        (workdir / mode).mkdir(exist_ok=True)
        gateways[mode] = GatewayProcess(
            workdir / mode, extra_toml=f'[turn]\nmode = "{mode}"\n{turn_toml}', llm=llm).start()
    progress("gateways ready")
    caller = Caller()
    _ALIVE.append(caller)  # pjsua2 objects live until os._exit (see Caller.close)
    run = Run()
    try:
        # 1) plain questions, then two-part ones, the modes taking turns call by call
        per_call = 4
        calls = [(QUESTIONS[i % len(QUESTIONS): i % len(QUESTIONS) + per_call], "question")
                 for i in range(0, turns, per_call)] + [(TWO_PART, "two_part")]
        for texts, kind in calls:
            for mode, gw in gateways.items():
                audio = CallerAudio()
                call = caller.call(gw.uri, audio)
                wait_quiet(audio)  # the greeting
                for text in texts:
                    t = ask(audio, clips[text], mode, text, kind)
                    progress(f"{mode}: {text!r} ttfa {t.ttfa_ms}")
                    wait_quiet(audio)
                    t.caller_jb_ms = caller.jitter_delay_ms(call)
                    run.turns.append(t)
                caller.hangup(call)
                call = None  # no Call may outlive the library
        # the streaming gateway's records of these calls (calls 1..len(calls))
        run.stages = [t for r in gateways["streaming"].closed_records()
                      if int(r["call"].split("-")[1]) <= len(calls) for t in r["turns"]]
        # 2) barge-in (streaming only: it is the product), with and without echo
        for j in range(barge_turns):
            echo = j % 2 == 1
            gw = gateways["streaming"]
            before = len(interruptions(gw.log(), 0))
            audio = CallerAudio(echo_gain=10 ** (-rng.uniform(10, 20) / 20) if echo else 0.0,
                                echo_delay_ticks=rng.randint(2, 10) if echo else 0)
            call = caller.call(gw.uri, audio)
            wait_quiet(audio)
            ask_text = LONG_ASKS[j % len(LONG_ASKS)]
            t = barge(audio, clips[ask_text], clips[INTERRUPTIONS[j % 2]], "streaming",
                      ask_text, after_s=rng.uniform(0.8, 1.6))
            t.caller_jb_ms = caller.jitter_delay_ms(call)
            run.turns.append(t)
            settle(audio, run, f"barge{j}")
            caller.hangup(call)
            call = None
            cuts = interruptions(gw.log(), before)
            progress(f"barge{j}{' with echo' if echo else ''}: {len(cuts)} interruption(s) "
                     + " | ".join(cuts))
            if echo:  # one interruption is the caller's; any other came from the echo
                run.false_barge_ins[f"barge{j}"] = max(0, len(cuts) - 1)
        # 3) echo only: the bot must never interrupt itself
        for k in range(echo_turns):
            gw = gateways["streaming"]
            before = len(interruptions(gw.log(), 0))
            audio = CallerAudio(echo_gain=10 ** (-rng.uniform(10, 20) / 20),
                                echo_delay_ticks=rng.randint(2, 10))
            call = caller.call(gw.uri, audio)
            wait_quiet(audio)
            greeting = line_levels(audio)
            text = LONG_ASKS[k % len(LONG_ASKS)]
            t = ask(audio, clips[text], "streaming", text, "echo")
            settle(audio, run, f"echo{k}", quiet_ms=1500)
            t.caller_jb_ms = caller.jitter_delay_ms(call)
            run.turns.append(t)
            caller.hangup(call)
            call = None
            cuts = interruptions(gw.log(), before)
            progress(f"echo{k}: {len(cuts)} interruption(s) " + " | ".join(cuts)
                     + f" [greeting: {greeting}]")
            run.false_barge_ins[f"echo{k}"] = len(cuts)
    finally:
        caller.close()
        for gw in gateways.values():
            gw.stop()
    return run


def summarize(run: Run) -> dict:
    out: dict = {"turns": [asdict(t) for t in run.turns]}
    for kind, suffix in (("question", ""), ("two_part", "_two_part")):
        for mode in MODES:
            v = [t.ttfa_ms - t.caller_jb_ms for t in run.turns
                 if t.mode == mode and t.kind == kind and t.ttfa_ms is not None]
            if v:
                out[f"ttfa_{mode}{suffix}"] = {"n": len(v), "p50_ms": pct(v, 0.5),
                                               "p95_ms": pct(v, 0.95), "max_ms": max(v)}
        for base in BASELINES:
            if f"ttfa_streaming{suffix}" in out and f"ttfa_{base}{suffix}" in out:
                out[f"{ratio_key(base)}{suffix}"] = (out[f"ttfa_streaming{suffix}"]["p50_ms"]
                                         / out[f"ttfa_{base}{suffix}"]["p50_ms"])
    b = [t.barge_in_ms - t.caller_jb_ms for t in run.turns if t.barge_in_ms is not None]
    if b:
        out["barge_in"] = {"n": len(b), "p50_ms": pct(b, 0.5), "p95_ms": pct(b, 0.95),
                           "max_ms": max(b)}
    out["stages"] = stage_table(run.stages)
    out["prompt_tokens_read"] = tokens_read(run.stages)
    out["from_the_pause"] = from_the_pause(run.stages)
    out["opened"] = opened(run.stages)
    out["missed"] = sum(1 for t in run.turns if t.ttfa_ms is None)
    out["barge_in_attempts_without_cut"] = sum(
        1 for t in run.turns if t.kind == "barge_in" and t.barge_in_ms is None)
    out["false_barge_ins"] = sum(run.false_barge_ins.values())
    out["false_barge_ins_by_call"] = dict(run.false_barge_ins)
    out["echo_turns"] = len(run.false_barge_ins)
    out["still_talking"] = run.still_talking
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--turns", type=int, default=8, help="questions per mode (default 8)")
    ap.add_argument("--echo-turns", type=int, default=4,
                    help="long answers with the caller's line echoing (default 4)")
    ap.add_argument("--barge-turns", type=int, default=8,
                    help="long answers the caller interrupts, half of them with echo (default 8)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--llm", default="", help="[llm] bundled (default: the config's default)")
    ap.add_argument("--turn", metavar="TOML", default="",
                    help="more [turn] settings (TOML lines), e.g. "
                         "'end_of_message_model = \"qwen2.5-coder-0.5b\"'")
    ap.add_argument("--modes", default=",".join(MODES),
                    help="the [turn] modes to call (default all; streaming is required)")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    ap.add_argument("--keep", metavar="DIR",
                    help="work in DIR and keep it (gateway logs, journals, turn audio)")
    args = ap.parse_args()
    modes = tuple(m for m in MODES if m in args.modes.split(","))
    if "streaming" not in modes:
        ap.error("--modes must include streaming")
    require_tools("espeak-ng", "sox")
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
        run = run_bench(args.turns, args.echo_turns, args.barge_turns, Path(args.keep), args.seed,
                        args.llm, args.turn, modes)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-turns-") as tmp:
            run = run_bench(args.turns, args.echo_turns, args.barge_turns, Path(tmp), args.seed,
                            args.llm, args.turn, modes)
    res = summarize(run)
    for t in run.turns:
        ttfa = "-" if t.ttfa_ms is None else f"{t.ttfa_ms:.0f}"
        cut = "-" if t.barge_in_ms is None else f"{t.barge_in_ms:.0f}"
        print(f"{t.mode:<10} {t.kind:<9} ttfa {ttfa:>5} barge {cut:>5} "
              f"jb {t.caller_jb_ms:>3.0f}  {t.text[:50]}")
    print()
    print("figures at the caller, its own jitter-buffer delay subtracted (ms):")
    for key in [f"ttfa_{m}" for m in MODES] + [f"ttfa_{m}_two_part" for m in MODES] + [
            "barge_in"]:
        if key in res:
            r = res[key]
            print(f"  {key:<25} n={r['n']:<3} p50 {r['p50_ms']:6.0f}  p95 {r['p95_ms']:6.0f}"
                  f"  max {r['max_ms']:6.0f}")
    for base in BASELINES:
        key = ratio_key(base)
        for suffix, what in (("", "one-line answers"), ("_two_part", "two-part answers")):
            if f"{key}{suffix}" in res:
                print(f"  TTFA streaming/{base} (p50), {what}: {res[f'{key}{suffix}']:.2f}")
    print(f"  false barge-ins with echo: {res['false_barge_ins']} over {res['echo_turns']} "
          "calls with echo (echo only, and barge-in with echo); barge-ins that did not cut: "
          f"{res['barge_in_attempts_without_cut']}; turns without an answer: {res['missed']}")
    print()
    print("the streaming gateway's stages, question calls (its records; ms):")
    for name, n, p50, p95 in res["stages"]:
        print(f"  {name:<38} n={n:<3} p50 {p50:6.0f}  p95 {p95:6.0f}")
    if res["prompt_tokens_read"] is not None:
        n, p50, p95 = res["prompt_tokens_read"]
        print(f"  {'prompt tokens read after the request':<38} n={n:<3} p50 {p50:6.0f}  "
              f"p95 {p95:6.0f}  (tokens, not ms)")
    n_open, n_all, open_p50, rest_p50 = res["opened"]
    print(f"  opened with the facts' words (the LLM's first token off the wait): {n_open} of "
          f"{n_all}" + ("" if open_p50 is None else f", gateway TTFA p50 {open_p50:.0f}")
          + ("" if rest_p50 is None else f" (the others {rest_p50:.0f})"))
    spec, answered = res["from_the_pause"]
    print(f"  answered from the pause's transcript (no decode after the end of turn): "
          f"{spec} of {answered}")
    if res["still_talking"]:
        print(f"  hung up on a bot still talking 60 s after the turn: {res['still_talking']}")
    write_json(args.json, res)
    leave()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
