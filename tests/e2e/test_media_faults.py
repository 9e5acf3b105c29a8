"""Media faults: the bot still understands a caller whose RTP is mangled on the way.

The real gateway is called by a real SIP client (baresip, G.711 PCMU) that speaks real
recordings (the five pocketsphinx-testdata librivox sentences, 75 words) through the seeded
relay of testbed/impair.py, three calls in a row on one gateway:

1. packet faults at once: 5 % loss, 20 +/- 10 ms jitter, 1 % reordering, 5 % duplicates,
   malformed RTP in place of 2 % of the packets, 2 % garbage datagrams, and a 2 s gap in
   both directions while the bot is answering the first sentence;
2. stream faults, each in the middle of a sentence: an SSRC change (with new sequence and
   timestamp bases), a sequence jump of +5000, a timestamp jump of +60 s;
3. the clean path (the same relay, no faults): the baseline, and the later call that must
   work.

The gateway's own speech-to-text (turns[].caller_text of its call record) must score within
10 points of the clean WER on each faulty call; after the gap the bot's voice must reach the
caller again and the caller's words the bot (which answers them); the gateway must answer
OPTIONS after the faults and exit 0 on SIGTERM. Per fault, on all twelve recordings:
``python -m bench.media_faults``."""

from __future__ import annotations

import struct

import pytest

from testbed.impair import (
    sip_options,
)

SSRC = 0x1234ABCD


def rtp(seq: int, ts: int | None = None, ssrc: int = SSRC, pt: int = 0) -> bytes:
    ts = seq * 160 if ts is None else ts
    return struct.pack("!BBHII", 0x80, pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + bytes(160)


SEED = 6


def between(times: list[float], a: float, b: float) -> int:
    return sum(a <= t < b for t in times)


def test_bot_understands_the_caller_through_media_faults(tmp_path):
    from testbed.harness import GatewayProcess, need
    from testbed.media_faults import (
        GATEWAY_TOML,
        MAX_WER_DELTA,
        build_script,
        gap_window,
        profiles,
        run_call,
        table,
        words_after,
    )
    from testbed.speech_corpus import DATA, real_recordings

    need("baresip")
    if not DATA.is_dir():
        pytest.skip("needs pocketsphinx-testdata")
    # the five librivox sentences (75 words, 25 s), one call of ~50 s per path
    script = build_script([r for r in real_recordings() if r.name.startswith("librivox/")],
                          tail=3.0)
    profs = profiles(script)
    g0, gap_s = gap_window(script)
    g1 = g0 + gap_s
    gw = GatewayProcess(tmp_path / "gw", extra_toml=GATEWAY_TOML).start()
    try:
        # every fault in one call: packet faults (loss, jitter, reordering, duplicates, the
        # gap, malformed RTP, garbage) and stream faults (SSRC change, sequence and timestamp
        # jumps); bench.media_faults measures each alone
        bad = run_call(gw, tmp_path / "all", script, "all", *profs["all"], seed=SEED)
        alive = sip_options("127.0.0.1", gw.sip_port)
        # the clean path: the same relay without faults, the same recordings; a later call
        clean = run_call(gw, tmp_path / "clean", script, "clean", *profs["clean"], seed=SEED)
        alive_after = sip_options("127.0.0.1", gw.sip_port)
    finally:
        code = gw.stop()
    print(f"\n{table(clean, [(bad, profs['all'][0])])}")
    for o in (clean, bad):
        print(f"{o.name}: {profs[o.name][0].describe()}")
        for p in o.per_recording:
            print(f"  {p['name']:<45} {p['errors']:2d}/{p['words']:2d} {p['hyp']!r}")
        print(f"  whole call: {o.errors}/{len(o.ref)} = {o.wer:.1%}")
    log = gw.log()[-3000:]
    # nothing crashed: OPTIONS answered after the faults, a later call, a clean exit
    assert alive is not None and alive.startswith("SIP/2.0 200"), (alive, log)
    assert alive_after is not None and alive_after.startswith("SIP/2.0 200"), log
    assert code == 0, log
    assert bad.relay_errors == clean.relay_errors == []
    # every fault really hit the caller's RTP, and the gateway's stream saw it
    hit = bad.relay["to_gateway"]
    for k in ("lost", "gap", "reordered", "duplicate", "malformed", "garbage"):
        assert hit.get(k, 0) > 0, (k, hit)
    assert hit.get("rewritten", 0) > 0.5 * hit["rtp"], hit  # from the SSRC change on
    assert clean.relay["to_gateway"].get("out") == clean.relay["to_gateway"].get("rtp")
    for o in (clean, bad):
        assert o.rtp.get("codec") == "PCMU/8000", o.rtp
        assert o.record.get("outcome") == "ended_by_caller", o.record
    assert bad.rtp["rx_dup"] > 0 and clean.rtp["rx_dup"] == 0, (bad.rtp, clean.rtp)
    # the bot understood: every recording was heard, WER within 10 points of the clean path
    assert clean.wer <= 0.15, clean.per_recording  # the path itself works
    for o in (clean, bad):
        assert all(p["covered"] for p in o.per_recording), (o.name, o.per_recording)
        assert o.wer - clean.wer <= MAX_WER_DELTA, (o.name, o.wer, clean.wer)
    # the gap: the bot was talking when it hit, nothing crossed it either way...
    tc, tg = bad.times["to_caller"], bad.times["to_gateway"]
    assert between(tc["loud_received"], g0, g1) >= 10, "the bot was not talking in the gap"
    # (a packet that came in just before the gap may leave in it: delayed up to 80 ms)
    assert between(tc["sent"], g0 + 0.1, g1) == 0 and between(tg["sent"], g0 + 0.1, g1) == 0
    assert between(tg["received"], g0, g1) >= 0.8 * gap_s / 0.020  # the caller sent on
    # ...then the bot's voice reached the caller again (the relay's record, and what baresip
    # decoded and recorded) and the caller's speech reached the bot, which answered it
    assert between(tc["loud_sent"], g1, g1 + 60) >= 50, tc["loud_sent"][-5:]
    assert any(e > g1 + 1.0 for _, e in bad.heard_spans), bad.heard_spans
    errors, words = words_after(bad, g1)
    assert words >= 40 and errors <= 0.3 * words, (errors, words, bad.turns)
    assert any(t.get("first_audio_at") is not None and t["speech_start_sample"] / 16000 > g1
               for t in bad.turns), bad.turns  # the bot answered speech from after the gap
