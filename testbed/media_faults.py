"""A call of real recordings through impaired media: the call script, the impairment
profiles, and what the gateway heard, scored by word error rate."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from gateway.calls import records
from testbed.harness import GatewayProcess, active_spans, baresip_call
from testbed.impair import Profile, SipMediaRelay, loud_times
from testbed.speech_corpus import Recording, normalise, resample, wer

RATE = 8000  # G.711 end to end
MAX_WER_DELTA = 0.10  # the aim: impaired WER at most 10 points above the clean path
GAP_SECONDS = 2.0
GATEWAY_TOML = (
    # (continues the harness's [sip] table) PCMU first, as a G.711 trunk would have it
    'codecs = ["PCMU", "PCMA", "G722"]\n'
    # a short greeting keeps calls short; the bot still answers every turn
    '[llm]\ngreeting = "Hello, Riverside Dental."\n')


# --- the call script -------------------------------------------------------------------------

@dataclass
class Script:
    """What the caller says: recordings at known times (seconds from the call's media start)."""

    source: np.ndarray
    rate: int
    items: list[tuple[Recording, float, float]]
    """(recording, start, end) in the source."""
    pauses: list[tuple[float, float]]
    """The silences between recordings (the bot answers in them)."""

    @property
    def seconds(self) -> float:
        return len(self.source) / self.rate


def build_script(recs: list[Recording], rate: int = RATE, lead: float = 2.5,
                 pause: float = 5.0, gap_pause: float = 5.0, tail: float = 6.0) -> Script:
    """Silence, then each recording followed by a pause in which the bot answers (the next
    recording may cut in: barge-in). The pauses are long enough for a busy 2-core machine:
    a caller who speaks again before the bot has answered continues the same turn (by design
    of the conversation engine), and a turn that keeps growing is transcribed worse."""
    parts = [np.zeros(int(lead * rate), np.int16)]
    items, pauses, t = [], [], lead
    for i, r in enumerate(recs):
        pcm = resample(r.pcm, r.rate, rate)
        items.append((r, t, t + len(pcm) / rate))
        t += len(pcm) / rate
        parts.append(pcm)
        gap = tail if i == len(recs) - 1 else gap_pause if i == 0 else pause
        parts.append(np.zeros(int(gap * rate), np.int16))
        if i < len(recs) - 1:
            pauses.append((t, t + gap))
        t += gap
    return Script(np.concatenate(parts).astype(np.int16), rate, items, pauses)


def gap_window(script: Script) -> tuple[float, float]:
    """(start, seconds): 1.5 s into the pause after the first recording, when the bot is
    answering it (its reply starts 1-2 s after the caller stops), ending 1.5 s before the
    next recording."""
    start = script.pauses[0][0] if script.pauses else script.items[0][2]
    return round(start + 1.5, 2), GAP_SECONDS


def mid(script: Script, i: int) -> float:
    _, a, b = script.items[i % len(script.items)]
    return round((a + b) / 2, 2)


def profiles(script: Script) -> dict[str, tuple[Profile, Profile]]:
    """(caller -> gateway, gateway -> caller) per profile, timed on the script."""
    gap = (gap_window(script),)
    one = {
        "clean": Profile(),
        "loss5": Profile(loss=0.05),
        "jitter": Profile(jitter_ms=20, jitter_spread_ms=10),
        "reorder": Profile(reorder=0.01),
        "dup": Profile(duplicate=0.05),
        "gap": Profile(gaps=gap),
        "ssrc": Profile(ssrc_change_at=mid(script, 1)),
        "seqjump": Profile(seq_jump_at=mid(script, 2)),
        "tsjump": Profile(ts_jump_at=mid(script, 3)),
        "malformed": Profile(truncate=0.02, garbage=0.02),
    }
    # the packet-level faults together, the stream-level ones together, and everything
    one["network"] = Profile(loss=0.05, jitter_ms=20, jitter_spread_ms=10, reorder=0.01,
                             duplicate=0.05, gaps=gap, truncate=0.02, garbage=0.02)
    one["stream"] = Profile(ssrc_change_at=mid(script, 1), seq_jump_at=mid(script, 2),
                            ts_jump_at=mid(script, 3))
    one["all"] = replace(one["network"], ssrc_change_at=mid(script, 1),
                         seq_jump_at=mid(script, 2), ts_jump_at=mid(script, 3))
    return {k: (replace(p, name=k), Profile(name=k, gaps=p.gaps)) for k, p in one.items()}


# --- one call --------------------------------------------------------------------------------

@dataclass
class CallOutcome:
    name: str
    record: dict
    turns: list[dict]
    """The final turns (superseded ones left out), in order."""
    ref: list[str]
    hyp: list[str]
    errors: int
    per_recording: list[dict]
    relay: dict
    heard_spans: list[tuple[float, float]]
    """Loud stretches of what the caller heard (seconds from its recording's start)."""
    seconds: float
    times: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    """Relay times (s from its first RTP packet) per direction: RTP packets "received" and
    "sent" on, and those carrying sound ("loud_received", "loud_sent")."""
    sip_log: list[str] = field(default_factory=list)
    relay_errors: list[str] = field(default_factory=list)
    spans: list[tuple[str, float, float]] = field(default_factory=list)
    """(recording, start, end) of the script."""

    @property
    def wer(self) -> float:
        return self.errors / max(len(self.ref), 1)

    @property
    def rtp(self) -> dict:
        return self.record.get("rtp") or {}

    @property
    def merged(self) -> int:
        """Final turns holding more than one recording: the caller spoke again before the bot
        answered, and the conversation engine went on with the same turn (its audio then
        holds the pause; Whisper tends to repeat a sentence in it). A turn-taking effect,
        mostly of the machine's load, not of the media path."""
        return sum(sum(overlap(t, s, e) > 0.3 for _, s, e in self.spans) > 1
                   for t in self.turns)

    @property
    def unheard(self) -> int:
        """Final turns without a transcript (the call ended before it was transcribed)."""
        return sum(not (t.get("caller_text") or "").strip() for t in self.turns)


def wait_closed(journal: Path, n: int, timeout: float = 30.0) -> list[dict]:
    """The journal's records once at least ``n`` exist and all are closed."""
    end = time.monotonic() + timeout
    recs: list[dict] = []
    while time.monotonic() < end:
        recs = records.read(journal).records()
        if len(recs) >= n and all(r["state"] == "closed" for r in recs):
            return recs
        time.sleep(0.3)
    raise TimeoutError(f"{len(recs)} records, not all closed: {recs[-1:]}")


def settled(journal: Path, n: int, quiet: float = 3.0, timeout: float = 30.0) -> dict:
    """The ``n``-th record once closed and its turns have stopped changing for ``quiet``
    seconds (the last turn of a call can be written after its close, by its pipeline)."""
    wait_closed(journal, n)
    end = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < end:
        rec = records.read(journal).records()[n - 1]
        key = json.dumps(rec.get("turns"), sort_keys=True)
        if key != last:
            last, since = key, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
        time.sleep(0.3)
    return rec


def overlap(t: dict, start: float, end: float) -> float:
    """Seconds a turn (sample positions, 16 kHz from the media start) overlaps a span."""
    a, b = t.get("speech_start_sample"), t.get("speech_end_sample")
    if a is None or b is None:
        return 0.0
    return min(b / 16000, end) - max(a / 16000, start)


def words_after(o: CallOutcome, t: float) -> tuple[int, int]:
    """(errors, words): the recordings that start after ``t`` against the final turns that
    start after it (what the bot understood of the caller's speech after a gap)."""
    ref = normalise(" ".join(p["ref"] for p in o.per_recording if p["start"] >= t))
    hyp = normalise(" ".join(x.get("caller_text") or "" for x in o.turns
                             if (x.get("speech_start_sample") or 0) / 16000 >= t - 0.3))
    return wer(ref, hyp), len(ref)


def superseded(t: dict, turns: list[dict]) -> bool:
    """A turn the caller went on with: a later turn of the record starts where it starts (the
    pipeline re-transcribes the resumed turn from its start) and covers it."""
    a, b = t.get("speech_start_sample"), t.get("speech_end_sample")
    return any(u.get("turn", 0) > t.get("turn", 0) and u.get("speech_start_sample") == a
               and (u.get("speech_end_sample") or 0) >= (b or 0) for u in turns)


def assign(turns: list[dict], script: Script) -> list[list[dict]]:
    """Each turn to the recording it overlaps most (the turn's sample positions, 16 kHz from
    the media start; the script's spans widened by 0.5 s each side)."""
    out: list[list[dict]] = [[] for _ in script.items]
    for t in turns:
        a, b = t.get("speech_start_sample"), t.get("speech_end_sample")
        if a is None or b is None:
            continue
        a, b = a / 16000, b / 16000
        best, score = None, 0.0
        for i, (_, s, e) in enumerate(script.items):
            ov = min(b, e + 0.5) - max(a, s - 0.5)
            if ov > score:
                best, score = i, ov
        if best is not None:
            out[best].append(t)
    return out


def run_call(gw: GatewayProcess, workdir: Path, script: Script, name: str,
             to_gateway: Profile, to_caller: Profile, seed: int = 1) -> CallOutcome:
    """One baresip call through the relay; the gateway's record of it, scored."""
    journal = gw.workdir / "calls.jsonl"
    before = len(records.read(journal).records())
    t0 = time.monotonic()
    with SipMediaRelay(("127.0.0.1", gw.sip_port), to_gateway, to_caller, seed=seed) as relay:
        result = baresip_call(workdir, relay.uri(), script.source, script.rate,
                              codecs=("g711",), seconds=script.seconds + 1.0)
        time.sleep(0.5)  # the relay's last queued packets
    seconds = time.monotonic() - t0
    rec = settled(journal, before + 1)
    turns = rec.get("turns") or []
    final = sorted((t for t in turns if not superseded(t, turns)), key=lambda t: t["turn"])
    by_rec = assign(final, script)
    per = []
    for (r, s, e), ts in zip(script.items, by_rec, strict=True):
        ref = normalise(r.text)
        hyp = " ".join(t.get("caller_text") or "" for t in ts)
        per.append({"name": r.name, "start": s, "end": e, "ref": r.text, "hyp": hyp,
                    "errors": wer(ref, normalise(hyp)), "words": len(ref),
                    "turns": [t.get("turn") for t in ts],
                    "covered": any(overlap(t, s, e) > 0 for t in final),
                    "answered": any(t.get("first_audio_at") is not None for t in ts)})
    # scored over the whole call: every recording in order against every final turn in order
    # (a turn the caller resumed before the bot answered holds several recordings; any
    # words heard outside the recordings count as insertions)
    ref_all = normalise(" ".join(r.text for r, _, _ in script.items))
    hyp_all = normalise(" ".join(t.get("caller_text") or "" for t in final))
    heard = active_spans(result.heard, result.rate, min_gap_ms=200)
    times = {k: {"received": [t for t, _ in d.received], "sent": [t for t, _ in d.sent],
                 "loud_received": loud_times(d.received), "loud_sent": loud_times(d.sent)}
             for k, d in relay.dirs.items()}
    return CallOutcome(name, rec, final, ref_all, hyp_all, wer(ref_all, hyp_all), per,
                       relay.report(), heard, seconds, times,
                       [f"{d} {line}" for _, d, line in relay.sip_log], relay.errors,
                       [(r.name, s, e) for r, s, e in script.items])


# --- the table -------------------------------------------------------------------------------

STATS = ("jb_delay_ms_avg", "rx_packets", "rx_lost", "rx_dup", "rx_reorder", "rx_discard",
         "jb_lost", "jb_discard", "jb_empty")


def table(clean: CallOutcome, rows: list[tuple[CallOutcome, Profile]]) -> str:
    lines = [f"{'profile':<10} {'WER clean':>9} {'impaired':>8} {'delta':>6} {'ok':>3} "
             f"{'merged':>6} {'unheard':>7} "
             + " ".join(f"{s.removesuffix('_ms_avg'):>10}" for s in STATS)
             + "  relay (caller->gateway)"]

    def row(o: CallOutcome, ok: str) -> str:
        rtp = o.rtp
        relay = o.relay.get("to_gateway", {})
        did = ", ".join(f"{k} {v}" for k, v in relay.items()
                        if k not in ("in", "rtp", "out", "other", "rewritten") and v)
        return (f"{o.name:<10} {clean.wer:9.1%} {o.wer:8.1%} "
                f"{(o.wer - clean.wer) * 100:+5.1f}p {ok:>3} {o.merged:>6} {o.unheard:>7} "
                + " ".join(f"{rtp.get(s, '-')!s:>10}" for s in STATS) + f"  {did or '-'}")

    lines.append(row(clean, "-"))
    for o, _ in rows:
        lines.append(row(o, "yes" if o.wer - clean.wer <= MAX_WER_DELTA else "NO"))
    return "\n".join(lines)
