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
from pathlib import Path

from testbed.harness import GatewayProcess, require_tools
from testbed.impair import Profile, sip_options
from testbed.media_faults import (
    GATEWAY_TOML,
    MAX_WER_DELTA,
    CallOutcome,
    build_script,
    profiles,
    run_call,
    table,
)
from testbed.speech_corpus import Recording, real_recordings


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
