"""Does the bot still understand the caller when the network misbehaves?

    .venv/bin/python -m bench.media_faults [--profiles LIST] [--seed N] [--json] [--keep DIR]

A real caller (baresip, G.711 PCMU at 8 kHz) speaks real recordings (pocketsphinx-testdata:
librivox read speech, the "cards" utterances, goforward, a tidigits string) to the real
gateway, through the seeded impairment relay of testbed/impair.py. The same recordings, in the
same call script, are played once on a clean path (through the relay, no faults) and once
per impairment profile. What the gateway's own speech-to-text heard is read from its call
record (turns[].caller_text); word error rate is scored as bench/wer.py does (normalised
text, word edit distance), over every recording of the call. Printed per profile: the WER
clean and impaired and their difference (the issue's bar: at most +10 points), turns that
merged several recordings or were never transcribed (turn-taking effects of a busy machine,
not of the media path: read the WER of such a call with care), and the
gateway's own RTP / jitter-buffer statistics from the record (rx_lost, rx_dup, rx_reorder,
jb_lost, jb_discard, jb_empty) with the relay's counts of what it did.

Profiles (caller -> gateway, unless noted): loss5 (5 % random loss), jitter (delay
20 +/- 10 ms), reorder (1 % of packets held back 50 ms), dup (5 % duplicated), gap (every
packet dropped for 2 s in both directions, in the pause after the first recording, while the
bot answers it), ssrc (new SSRC with new sequence/timestamp bases mid-sentence), seqjump
(sequence +5000 mid-sentence), tsjump (timestamp +60 s mid-sentence), malformed (2 % of
packets replaced by truncated/malformed RTP, 2 % garbage datagrams injected), network (loss,
jitter, reorder, dup, gap, malformed at once), stream (ssrc, seqjump, tsjump in one call), all
(every one of these at once).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from gateway import records
from testbed.harness import GatewayProcess, active_spans, baresip_call, require_tools
from testbed.impair import Profile, SipMediaRelay, loud_times, sip_options
from testbed.speech_corpus import Recording, normalise, real_recordings, resample, wer

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


def corpus(limit: int | None = None) -> list[Recording]:
    recs = [r for r in real_recordings() if r.seconds >= 1.0]
    return recs[:limit] if limit else recs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--profiles", default="loss5,jitter,reorder,dup,gap,ssrc,seqjump,tsjump,"
                    "malformed,network,stream",
                    help="comma-separated, from those above and 'all' (clean always runs "
                         "first)")
    ap.add_argument("--recordings", type=int, default=0,
                    help="use only the first N real recordings (default: all 12)")
    ap.add_argument("--seed", type=int, default=6)
    ap.add_argument("--json", action="store_true", help="also print every call as JSON")
    ap.add_argument("--keep", default="", metavar="DIR", help="keep the work files here")
    args = ap.parse_args(argv)
    require_tools("baresip", "sox")
    recs = corpus(args.recordings or None)
    script = build_script(recs)
    profs = profiles(script)
    names = [n for n in args.profiles.split(",") if n and n != "clean"]
    for n in names:
        if n not in profs:
            ap.error(f"unknown profile {n!r}; choose from {', '.join(profs)}")
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="media-faults-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"{len(recs)} real recordings ({sum(r.seconds for r in recs):.0f} s of speech), "
          f"one call of {script.seconds:.0f} s per profile, G.711 PCMU 8 kHz, seed {args.seed}",
          file=sys.stderr)
    gw = GatewayProcess(work / "gw", extra_toml=GATEWAY_TOML).start()
    outcomes: list[tuple[CallOutcome, Profile]] = []
    try:
        clean = run_call(gw, work / "clean", script, "clean", *profs["clean"], seed=args.seed)
        print(f"clean: WER {clean.wer:.1%} ({clean.seconds:.0f} s)", file=sys.stderr)
        for n in names:
            o = run_call(gw, work / n, script, n, *profs[n], seed=args.seed)
            outcomes.append((o, profs[n][0]))
            print(f"{n}: WER {o.wer:.1%} ({o.seconds:.0f} s)", file=sys.stderr)
        alive = sip_options("127.0.0.1", gw.sip_port)
    finally:
        code = gw.stop()
    print(table(clean, outcomes))
    print("profiles (caller -> gateway; gap also gateway -> caller):")
    for o, p in outcomes:
        print(f"  {o.name:<10} {p.describe()}")
    print(f"gateway after the calls: OPTIONS -> {alive!r}; exit code on SIGTERM: {code}")
    if args.json:
        print(json.dumps([{"name": o.name, "wer": o.wer, "rtp": o.rtp, "relay": o.relay,
                           "recordings": o.per_recording} for o, _ in [(clean, None),
                                                                       *outcomes]], indent=2))
    for o, _ in [(clean, None), *outcomes]:
        for p in o.per_recording:
            if p["errors"]:
                print(f"  {o.name:<10} {p['name']:<40} {p['errors']}/{p['words']}: "
                      f"{p['hyp']!r}", file=sys.stderr)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    ok = all(o.wer - clean.wer <= MAX_WER_DELTA for o, _ in outcomes) and code == 0 \
        and alive is not None and alive.startswith("SIP/2.0 200")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
