"""The impairment relay's logic (testbed/impair.py): seeded, exactly reproducible, each fault
doing what it says and nothing else, SDP rewritten so that RTP flows through it; and a
journal fix (a transcript that arrives after the caller hung up is kept). The call through
the relay is tests/e2e/test_media_faults.py."""

from __future__ import annotations

import socket
import struct
import time

from testbed.impair import (
    MALFORMED,
    Impairer,
    Profile,
    SipMediaRelay,
    is_rtp,
    malform,
    rewrite_sdp,
    rtp_fields,
    sip_options,
)

SSRC = 0x1234ABCD


def rtp(seq: int, ts: int | None = None, ssrc: int = SSRC, pt: int = 0) -> bytes:
    ts = seq * 160 if ts is None else ts
    return struct.pack("!BBHII", 0x80, pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + bytes(160)


def stream(n: int, start: int = 1000) -> list[tuple[float, bytes]]:
    """``n`` packets 20 ms apart."""
    return [(i * 0.020, rtp(start + i)) for i in range(n)]


def run(profile: Profile, packets: list[tuple[float, bytes]], seed: int = 7):
    imp = Impairer(profile, seed)
    return imp, [(i, o) for i, (t, p) in enumerate(packets) for o in imp.process(t, p)]


def test_same_seed_same_fate_and_another_seed_another():
    p = Profile(loss=0.05, jitter_ms=20, jitter_spread_ms=10, reorder=0.01, duplicate=0.05,
                truncate=0.02, garbage=0.02)
    pk = stream(3000)
    _, a = run(p, pk, seed=1)
    _, b = run(p, pk, seed=1)
    _, c = run(p, pk, seed=2)
    assert a == b
    assert a != c


def test_each_fault_hits_the_same_packets_whatever_else_is_on():
    pk = stream(4000)
    _, alone = run(Profile(loss=0.05), pk)
    _, mixed = run(Profile(loss=0.05, jitter_ms=20, jitter_spread_ms=10, duplicate=0.05,
                           garbage=0.02), pk)
    assert {i for i, _ in alone} == {i for i, _ in mixed}


def test_loss_rate():
    imp, out = run(Profile(loss=0.05), stream(20000))
    assert 0.044 <= imp.counts["lost"] / 20000 <= 0.056
    assert len(out) == 20000 - imp.counts["lost"]
    assert all(o.due == i * 0.020 and o.what == "pass" for i, o in out)


def test_jitter_delays_within_bounds_without_reordering():
    imp, out = run(Profile(jitter_ms=20, jitter_spread_ms=10), stream(5000))
    delays = [o.due - i * 0.020 for i, o in out]
    assert min(delays) >= 0.010 - 1e-9 and max(delays) <= 0.030 + 1e-9
    assert 0.019 < sum(delays) / len(delays) < 0.021
    dues = [o.due for _, o in out]
    assert dues == sorted(dues)  # 20 +/- 10 ms on a 20 ms stream never reorders by itself


def test_reordered_packets_arrive_after_their_successor():
    imp, out = run(Profile(jitter_ms=20, jitter_spread_ms=10, reorder=0.01), stream(10000))
    n = imp.counts["reordered"]
    assert 60 <= n <= 140
    pos = {i: k for k, (i, _) in enumerate(sorted(out, key=lambda x: x[1].due))}
    late = {i for i, o in out if o.what == "reordered"}
    assert len(late) == n
    for i in late:
        nxt = next((j for j in range(i + 1, 10000) if j not in late), None)
        assert nxt is None or pos[i] > pos[nxt]
    # everything else keeps its order
    rest = [i for i, _ in sorted(out, key=lambda x: x[1].due) if i not in late]
    assert rest == sorted(rest)


def test_duplicates_are_exact_copies_shortly_after():
    imp, out = run(Profile(duplicate=0.05), stream(4000))
    dups = [(i, o) for i, o in out if o.what == "duplicate"]
    assert 150 <= len(dups) <= 250 and len(dups) == imp.counts["duplicate"]
    first = {i: o for i, o in out if o.what != "duplicate"}
    for i, o in dups:
        assert o.data == first[i].data and 0 <= o.due - first[i].due <= 0.030


def test_gap_drops_exactly_its_window_in_both_directions_of_time():
    imp, out = run(Profile(gaps=((10.0, 2.0),)), stream(1000))
    kept = {i for i, _ in out}
    assert kept == {i for i in range(1000) if not 10.0 <= i * 0.020 < 12.0}
    assert imp.counts["gap"] == 100


def test_ssrc_change_and_jumps_rewrite_every_later_header():
    p = Profile(ssrc_change_at=4.0, seq_jump_at=8.0, ts_jump_at=12.0)
    _, out = run(p, stream(1000))
    f = {i: rtp_fields(o.data) for i, o in out}
    assert all(f[i][3] == SSRC and f[i][1] == 1000 + i for i in range(200))
    new = f[200][3]
    assert new != SSRC and all(f[i][3] == new for i in range(200, 1000))
    # continuous within each stretch, a jump at each event
    for i in range(1, 1000):
        dseq, dts = (f[i][1] - f[i - 1][1]) & 0xFFFF, (f[i][2] - f[i - 1][2]) & 0xFFFFFFFF
        if i == 200:
            assert (dseq, dts) != (1, 160)
        elif i == 400:
            assert dseq == 5001 and dts == 160
        elif i == 600:
            assert dseq == 1 and dts == 160 + 8000 * 60
        else:
            assert (dseq, dts) == (1, 160), i
    assert all(o.data[12:] == bytes(160) for _, o in out)  # the audio is untouched


def test_malformed_packets_are_broken_each_their_way():
    p = rtp(5)
    got = {k: malform(p, k) for k in MALFORMED}
    assert len(got["short"]) < 12
    assert len(got["header_only"]) == 12
    assert 12 + 4 * (got["csrc_overrun"][0] & 0x0F) > len(got["csrc_overrun"])
    x = got["extension_overrun"]
    assert x[0] & 0x10 and 16 + 4 * struct.unpack("!H", x[14:16])[0] > len(x)
    y = got["padding_overrun"]
    assert y[0] & 0x20 and y[-1] > len(y) - 12
    assert got["bad_version"][0] >> 6 != 2
    imp, out = run(Profile(truncate=0.02, garbage=0.02), stream(5000))
    bad = [o for _, o in out if o.what.startswith("malformed:")]
    junk = [o for _, o in out if o.what == "garbage"]
    assert 60 <= len(bad) <= 140 and 60 <= len(junk) <= 140
    assert {o.what.split(":")[1] for o in bad} == set(MALFORMED)
    assert len(out) == 5000 + len(junk)  # malformed ones replace real packets


def test_rtcp_and_non_rtp_pass_untouched_and_undelayed():
    rtcp = bytes([0x81, 200]) + bytes(26)  # a sender report
    imp = Impairer(Profile(loss=1.0, jitter_ms=50, truncate=1.0), 3)
    assert not is_rtp(rtcp) and not is_rtp(b"hello")
    assert [(o.due, o.data) for o in imp.process(1.5, rtcp)] == [(1.5, rtcp)]
    assert [(o.due, o.data) for o in imp.process(1.6, b"hello")] == [(1.6, b"hello")]
    assert imp.process(1.7, rtp(1)) == []


INVITE = (
    "INVITE sip:bot@127.0.0.1:5099 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bKabc;rport\r\n"
    "Content-Type: application/sdp\r\nContent-Length: {n}\r\n\r\n{sdp}")


SDP = ("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio 30010 RTP/AVP 0 8 101\r\na=rtcp:30011\r\na=rtpmap:0 PCMU/8000\r\n"
       "a=sendrecv\r\n")


def test_sdp_rewritten_to_the_relay_with_a_right_content_length():
    msg = INVITE.format(n=len(SDP), sdp=SDP).encode()
    new, media = rewrite_sdp(msg, "127.0.0.2", 41000)
    assert media is not None and (media.ip, media.port, media.rtcp_port) == \
        ("127.0.0.1", 30010, 30011)
    head, body = new.split(b"\r\n\r\n", 1)
    assert b"m=audio 41000 RTP/AVP 0 8 101" in body and b"c=IN IP4 127.0.0.2" in body
    assert b"a=rtcp:41001" in body and b"30010" not in body
    assert f"Content-Length: {len(body)}".encode() in head
    assert head.startswith(b"INVITE sip:bot@127.0.0.1:5099") and b"rport" in head
    bye = b"BYE sip:bot@127.0.0.1 SIP/2.0\r\nContent-Length: 0\r\n\r\n"
    assert rewrite_sdp(bye, "127.0.0.2", 41000) == (bye, None)


def test_relay_forwards_sip_and_impairs_rtp_as_planned():
    """A fake caller and a fake gateway on loopback: SIP passes (SDP rewritten), the caller's
    RTP reaches the gateway's SDP address from the relay, less exactly the planned losses."""
    def sock():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)  # read after all is sent
        s.bind(("127.0.0.1", 0))
        s.settimeout(2.0)
        return s

    caller_sip, caller_rtp, gw_sip, gw_rtp = sock(), sock(), sock(), sock()
    profile = Profile(loss=0.1)
    with SipMediaRelay(gw_sip.getsockname(), to_gateway=profile, seed=11) as relay:
        sdp = SDP.replace("30010", str(caller_rtp.getsockname()[1]))
        caller_sip.sendto(INVITE.format(n=len(sdp), sdp=sdp).encode(), ("127.0.0.1", relay.port))
        invite, src = gw_sip.recvfrom(65535)
        assert src == ("127.0.0.1", relay.port)
        _, media = rewrite_sdp(invite, "x", 1)
        assert media is not None and media.port != caller_rtp.getsockname()[1]
        gsdp = SDP.replace("30010", str(gw_rtp.getsockname()[1]))
        ok = f"SIP/2.0 200 OK\r\nContent-Type: application/sdp\r\nContent-Length: " \
             f"{len(gsdp)}\r\n\r\n{gsdp}"
        gw_sip.sendto(ok.encode(), src)
        answer, _ = caller_sip.recvfrom(65535)
        assert answer.startswith(b"SIP/2.0 200 OK")
        _, amedia = rewrite_sdp(answer, "x", 1)
        assert amedia is not None
        pk = stream(200)
        for _, p in pk:
            caller_rtp.sendto(p, (amedia.ip, amedia.port))
            time.sleep(0.002)
        got = []
        gw_rtp.settimeout(2.0)
        try:
            while True:
                data, src = gw_rtp.recvfrom(65535)
                assert src == (media.ip, media.port)  # from the address its SDP named
                got.append(rtp_fields(data)[1])
        except TimeoutError:
            pass
        assert relay.errors == []
    _, planned = run(profile, pk, seed=11)
    assert got == [1000 + i for i, _ in planned]
    assert 8 <= 200 - len(got) <= 40
    for s in (caller_sip, caller_rtp, gw_sip, gw_rtp):
        s.close()


def test_sip_options_probe_times_out_on_a_dead_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    assert sip_options("127.0.0.1", port, timeout=0.3) is None
    s.close()


def test_a_transcript_that_comes_after_the_hang_up_is_in_the_record(tmp_path):
    """The caller hangs up while their last turn is being transcribed: the close line writes
    that turn without its words, then the pipeline reports it. It used to be dropped (the
    call was no longer live), losing the caller's last words from the journal."""
    from types import SimpleNamespace

    from prometheus_client import CollectorRegistry

    from gateway.calls import records
    from gateway.calls.metrics import Metrics
    from gateway.calls.observer import CallObserver
    from pipeline.turn_record import TurnRecord

    obs = CallObserver(Metrics(CollectorRegistry()), records.Journal(tmp_path / "calls.jsonl"))
    obs.answering("call-1", {})
    pending = TurnRecord(3, 0, 16000, 0.0)
    obs._calls["call-1"].session = SimpleNamespace(turns=[pending])
    obs.ended("call-1", 200, "Normal call clearing", by_bot=False)
    obs.turn_done("call-1", TurnRecord(3, 0, 16000, 0.0, caller_text="he was not an ill "
                                       "disposed young man"))
    obs.turn_done("call-9", TurnRecord(1, 0, 16000, 0.0, caller_text="never answered"))
    obs.journal.close()
    [rec] = records.read(tmp_path / "calls.jsonl").records()
    assert rec["state"] == "closed" and rec["turn_count"] == 1
    [turn] = rec["turns"]
    assert turn["caller_text"] == "he was not an ill disposed young man"
    assert turn["ended_with_call"] is True
