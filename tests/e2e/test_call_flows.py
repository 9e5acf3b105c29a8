"""Call-flow edge cases of the real gateway on loopback, driven by sipp and, where
sipp cannot say it, one raw-socket UAC.

One gateway for the module, configured for the checks: ``[sip] user = "bot"``,
``max_calls = 2`` (a busy slot shows as a 503 with one extra call), ``media_timeout_seconds =
3`` (a hold must outlive it) and /metrics on a free loopback port (``voicebot_active_calls``).
Every call must end, with a closed record in the module's journal that says why.

- BYE before ACK (``bye_before_ack.xml``): ended at once as ended_by_caller, slot freed.
- Lost ACK (``lost_ack.xml``): PJSIP retransmits its 200 (T1 doubling to T2) and, with no ACK
  by Timer H (64*T1 = 32 s), sends a BYE itself; the call slot is held until then. The
  record says ended_by_bot, "no ACK from the caller for the 200 OK (32 s)".
- Hold and unhold by re-INVITE (``reinvite_hold_unhold.xml``, a=sendonly and a=inactive,
  the caller silent while on hold): no media timeout on hold, no audio sent while held, the
  bot's audio back after the unhold.
- A retransmitted INVITE (raw UAC: sipp answers each retransmitted 200 by repeating its last
  message, so a copy sent after the 200 ping-pongs with PJSIP): one call, one record; a
  late copy after the ACK gets 482, not a second call.
- Requests for no dialog and unknown methods (``unknown_dialog.xml``,
  ``in_dialog_refusals.xml``): 481 and 501, and the call they were aimed at survives.

Covered elsewhere, not repeated here: CANCEL right after the INVITE
(``test_sip_behaviour.py::test_cancel_right_after_invite_leaves_no_call``), a caller that
vanishes without BYE (``test_reliability.py::test_dead_peer_is_hung_up_and_recorded_as_
media_timeout``) and an a=inactive hold outliving the media timeout without unhold
(``test_reliability.py::test_a_call_on_hold_is_not_taken_for_a_dead_peer``).
"""

from __future__ import annotations

import re
import shutil
import time

import pytest

from gateway.calls import records
from gateway.telephony import admission
from testbed.harness import GatewayProcess, free_tcp_port, free_udp_port
from testbed.sipp_harness import (
    GatewayLog,
    RawUac,
    RtpPeer,
    SipMessage,
    SippRun,
    final_response,
    outcomes,
    timed_trace,
    wait_until,
)

CAPACITY = 2
MEDIA_TIMEOUT = 3
TIMER_H = 32.0  # 64 * T1 (T1 = 500 ms, PJSIP's default)
LOST_ACK_CAUSE = "no ACK from the caller for the 200 OK (32 s)"


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    if shutil.which("sipp") is None:
        pytest.skip("needs sipp (apt-get install sip-tester)")
    yield from GatewayProcess(
        tmp_path_factory.mktemp("gw"), metrics_port=free_tcp_port(),
        extra_toml=f'user = "bot"\nmax_calls = {CAPACITY}\n'
                   f"media_timeout_seconds = {MEDIA_TIMEOUT}\n").serve()


def active_calls_gauge(gw: GatewayProcess) -> float:
    return gw.metrics()[("voicebot_active_calls", ())]


def records_of(gw: GatewayProcess, sip_call_id: str) -> list[dict]:
    return [r for r in records.read(gw.workdir / "calls.jsonl").records()
            if r.get("sip_call_id") == sip_call_id]


def sent(run: SippRun, method: str) -> list[SipMessage]:
    return [m for m in run.messages if m.direction == "sent" and m.method == method]


def gateway_requests(run: SippRun, method: str) -> list[SipMessage]:
    return [m for m in run.messages if m.direction == "received" and m.method == method]


def port_frames(log_text: str, call: str) -> tuple[int, int]:
    """(frames in, frames out) of the call's media port, from its last log line."""
    m = re.search(rf"\[{call}\] gateway\.sip: frames in (\d+) \(odd \d+, empty \d+\), "
                  rf"out (\d+)", log_text)
    assert m, f"no frame counts for {call}"
    return int(m.group(1)), int(m.group(2))


def probe(sipp, name: str) -> int:
    """One INVITE that the gateway must refuse (invite_refused.xml): its final status."""
    run = sipp(name, "invite_refused.xml", timeout_s=10,
               keys={"rtp_port": str(free_udp_port()), "pt": "0", "rtpmap": "PCMU/8000"}).run()
    run.assert_ok()
    return final_response(run.messages, "INVITE").status


def assert_capacity(gateway, sipp, rtp_peers, name: str) -> None:
    """CAPACITY new concurrent calls are all answered, get the greeting, and end: no slot is
    held by an earlier call."""
    log = GatewayLog(gateway)
    peers = rtp_peers(CAPACITY)
    run = sipp(name, "call_hold.xml", calls=CAPACITY, hold_ms=6000,
               inject=[[str(p.port)] for p in peers]).run()
    run.assert_ok()
    assert sorted(outcomes(run.messages, "INVITE").values()) == [200] * CAPACITY, run.report()
    assert not gateway_requests(run, "BYE"), run.report()
    for p in peers:
        assert p.voiced_seconds() > 0.5, f"port {p.port}: no greeting\n{log.text()[-3000:]}"
    log.wait_all_ended(expect=CAPACITY)
    wait_until("no call counted as active", lambda: active_calls_gauge(gateway) == 0, 5)


# --------------------------------------------------------------------------- pure parts


def test_unknown_methods_are_told_from_known_ones():
    def info(method: str) -> bytes:
        return f"Request msg {method}/cseq=3 (rdata0x55d0)".encode()

    for m in ("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO", "REFER", "NOTIFY", "UPDATE"):
        assert not admission.is_unknown_method(info(m)), m
    for m in ("FROBNICATE", "invite", "HEAD"):  # methods are case-sensitive (RFC 3261 7.1)
        assert admission.is_unknown_method(info(m)), m
    assert not admission.is_unknown_method(b"Response msg 200/INVITE/cseq=1 (rdata0x1)")


def test_the_user_check_reads_the_request_uri_not_to():
    def ruri(line: str) -> str | None:
        return admission.request_uri(f"{line}\r\nTo: <sip:bot@h>\r\nCall-ID: c\r\n\r\n")

    user = admission.uri_user
    assert ruri("INVITE sip:bot@10.0.0.1:5060;transport=udp SIP/2.0") == \
        "sip:bot@10.0.0.1:5060;transport=udp"
    assert ruri("\r\nINVITE sip:bot@h SIP/2.0") == "sip:bot@h"  # leading CRLF: RFC 3261 7.5
    # as lenient as pjsua, which answers these as INVITEs (corpus 12, 39, 70, 71)
    assert ruri(" INVITE sip:alice@h SIP/2.0") == ruri("invite sip:alice@h SIP/2.0") \
        == "sip:alice@h"
    assert ruri("INVITE sip:bot@h") is None and ruri("garbage") is None and ruri("") is None
    assert user("sip:bot@10.0.0.1:5060;transport=udp") == "bot"
    assert user("sips:bot@h") == "bot"
    assert user("sip:b%6Ft@h") == "bot"  # escaped in the URI, the same user
    assert user("sip:robot@h") == "robot"
    assert user("sip:" + "x" * 2000 + "@h") == "x" * 2000  # corpus 10: To says bot
    assert user("sip:10.0.0.1:5060") is None  # no user part at all
    assert user("tel:+15550100") is None and user("") is None


def test_invite_memory_spots_copies_within_timer_l_only():
    msg = ("INVITE sip:bot@h SIP/2.0\r\nv: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-a;rport\r\n"
           "Via: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK-proxy\r\nf: <sip:a@h>;tag=t1\r\n"
           "To: <sip:bot@h>\r\nCall-ID: c1@h\r\nCSeq: 1 INVITE\r\n\r\nv=0\r\n")
    assert admission.invite_key(msg) == (("c1@h", "t1", "1"), "z9hG4bK-a")
    now = [100.0]
    mem = admission.InviteMemory(window=32.0, clock=lambda: now[0])
    assert mem.check(msg) is None  # the first one is a call
    now[0] += 5
    assert (mem.check(msg) or "").startswith("a retransmission of an INVITE")
    assert (mem.check(msg.replace("z9hG4bK-a", "z9hG4bK-b")) or "").startswith(
        "a merged request")
    assert mem.check(msg.replace("CSeq: 1", "CSeq: 2")) is None  # a new transaction
    assert mem.check(msg.replace("tag=t1", "tag=t2")) is None  # another caller
    now[0] += 40
    assert mem.check(msg) is None  # past Timer L: a new call with a reused Call-ID
    assert admission.invite_key("INVITE sip:x SIP/2.0\r\nCall-ID: c\r\n\r\n") is None


# --------------------------------------------------------------------------- BYE before ACK


def test_bye_before_ack_ends_the_call_at_once(gateway, sipp, rtp_peers):
    log = GatewayLog(gateway)
    [peer] = rtp_peers(1)
    run = sipp("bye-before-ack", "bye_before_ack.xml", inject=[[str(peer.port)]]).run()
    run.assert_ok()
    assert final_response(run.messages, "INVITE").status == 200, run.report()
    assert final_response(run.messages, "BYE").status == 200, run.report()
    assert not sent(run, "ACK"), "the scenario must never ACK"
    [call_id] = outcomes(run.messages, "INVITE")

    [(name, events)] = log.wait_all_ended(expect=1, timeout=5).items()
    assert events["ended:"].startswith("200"), log.text()
    rec = gateway.closed_record(call_id)
    msgs = timed_trace(run.trace)
    bye_at = next(t for t, m in msgs if m.direction == "sent" and m.method == "BYE")
    late_200s = [t - bye_at for t, m in msgs if t > bye_at and m.direction == "received"
                 and m.status == 200 and m.cseq_method == "INVITE"]
    print(f"\nBYE before ACK: {name} ended {events['ended:'][:40]!r}; record {rec['outcome']}, "
          f"{rec['end_cause']!r}, SIP {rec['sip_status']}, {rec['duration_seconds']} s; "
          f"200 (INVITE) retransmitted after the BYE at {[round(x, 1) for x in late_200s]} s")
    assert rec["outcome"] == "ended_by_caller", rec
    assert rec["end_cause"] == "the caller hung up", rec
    assert rec["sip_status"] == 200, rec
    assert rec["duration_seconds"] < 2.0, rec  # ended by the BYE, not by a timer
    assert_capacity(gateway, sipp, rtp_peers, "after-bye-before-ack")


# --------------------------------------------------------------------------- lost ACK


def test_lost_ack_holds_the_slot_until_timer_h_then_the_gateway_hangs_up(gateway, sipp,
                                                                         rtp_peers):
    """The caller never ACKs (its RTP flows, so the media timeout stays out of it)."""
    log = GatewayLog(gateway)
    [peer, other_peer] = rtp_peers(2)
    run = sipp("lost-ack", "lost_ack.xml", inject=[[str(peer.port)]], timeout_s=60).start()
    wait_until("the un-ACKed call's media", lambda: any(
        "media up" in ev for ev in log.calls().values()), 10, lambda: log.text()[-3000:])
    started = time.monotonic()

    # while the 200 waits for its ACK, the call holds a real pjsua slot: with one more call
    # up, the gateway is full and refuses a third
    assert active_calls_gauge(gateway) == 1
    other = sipp("lost-ack-other", "call_hold.xml", hold_ms=4000,
                 inject=[[str(other_peer.port)]]).start()
    wait_until("the second call's media", lambda: sum(
        "media up" in ev for ev in log.calls().values()) == 2, 10, lambda: log.text()[-3000:])
    held = probe(sipp, "lost-ack-probe")
    assert held == 503, f"a third INVITE got {held} with one un-ACKed call and one call up"
    assert other.wait() == 0, other.report()
    other.assert_ok()
    assert time.monotonic() - started < TIMER_H - 10, "too slow to check the slot in time"

    assert run.wait(TIMER_H + 25) == 0, run.report()
    run.assert_ok()
    assert not sent(run, "ACK"), "the scenario must never ACK"
    [call_id] = outcomes(run.messages, "INVITE")
    msgs = timed_trace(run.trace)
    oks = [t for t, m in msgs if m.direction == "received" and m.status == 200
           and m.cseq_method == "INVITE"]
    bye = [t for t, m in msgs if m.direction == "received" and m.method == "BYE"]
    assert oks and bye, run.report()
    gaps = [round(b - a, 1) for a, b in zip(oks, oks[1:], strict=False)]
    waited = bye[0] - oks[0]
    rec = gateway.closed_record(call_id)
    print(f"\nlost ACK: 200 sent {len(oks)} times (gaps {gaps} s), gateway BYE {waited:.1f} s "
          f"after the first 200; record {rec['outcome']}, {rec['end_cause']!r}, "
          f"SIP {rec['sip_status']} {rec['sip_reason']}, {rec['duration_seconds']} s")
    assert len(oks) >= 8 and max(gaps) <= 4.5, gaps  # T1 doubling, capped at T2 = 4 s
    assert TIMER_H - 1.5 <= waited <= TIMER_H + 3, waited
    assert rec["outcome"] == "ended_by_bot", rec
    assert rec["end_cause"] == LOST_ACK_CAUSE, rec
    assert rec["sip_status"] == 408, rec
    assert TIMER_H - 1.5 <= rec["duration_seconds"] <= TIMER_H + 3, rec
    assert rec["rtp"].get("rx_packets", 0) > 0, rec  # media flowed all along
    log.wait_all_ended(expect=2, timeout=5)
    assert active_calls_gauge(gateway) == 0
    assert_capacity(gateway, sipp, rtp_peers, "after-lost-ack")


# --------------------------------------------------------------------------- hold / unhold


@pytest.mark.parametrize(("hold_dir", "answer_dir"),
                         [("sendonly", "recvonly"), ("inactive", "inactive")])
def test_hold_then_unhold_keeps_the_call_and_brings_the_audio_back(gateway, sipp, cleanup,
                                                                   hold_dir, answer_dir):
    log = GatewayLog(gateway)
    peer = RtpPeer()
    cleanup.append(peer)
    hold_s = MEDIA_TIMEOUT + 4  # on hold longer than the media timeout (polled every 2 s)
    run = sipp(f"hold-{hold_dir}", "reinvite_hold_unhold.xml", hold_ms=hold_s * 1000,
               keys={"hold_dir": hold_dir}, inject=[[str(peer.port)]]).start()

    def sent_invite(cseq: int) -> bool:
        return any(m.method == "INVITE" and m.header("CSeq") == f"{cseq} INVITE"
                   for m in sent(run, "INVITE"))

    wait_until("the hold re-INVITE", lambda: sent_invite(2), 15, run.report)
    peer.quiet = True  # a phone on hold sends nothing (no music on hold)
    held_at = time.monotonic()
    wait_until("the unhold re-INVITE", lambda: sent_invite(3), hold_s + 10, run.report)
    peer.quiet = False
    unheld_at = time.monotonic()
    assert run.wait() == 0, run.report()
    ended_at = time.monotonic()
    run.assert_ok()

    assert not gateway_requests(run, "BYE"), "the gateway hung up a call on hold"
    answers = {m.header("CSeq"): m.body for m in run.messages
               if m.direction == "received" and m.status == 200 and m.cseq_method == "INVITE"}
    assert f"a={answer_dir}" in answers.get("2 INVITE", ""), run.report()
    assert "a=sendrecv" in answers.get("3 INVITE", ""), run.report()
    assert final_response(run.messages, "BYE").status == 200, run.report()

    during = peer.packets_between(held_at + 0.5, unheld_at)
    after = peer.packets_between(unheld_at + 0.3, ended_at)
    [call_id] = outcomes(run.messages, "INVITE")
    rec = gateway.closed_record(call_id)
    [(name, _)] = log.wait_all_ended(expect=1, timeout=5).items()
    frames_in, frames_out = port_frames(log.text(), name)
    print(f"\nhold a={hold_dir} for {unheld_at - held_at:.1f} s (caller silent): gateway sent "
          f"{during} RTP packets while held, {after} in {ended_at - unheld_at:.1f} s after the "
          f"unhold; bot port frames out {frames_out}, in {frames_in}; record "
          f"{rec['outcome']}, rtp tx {rec['rtp'].get('tx_packets')}")
    assert rec["outcome"] == "ended_by_caller", rec
    assert "no RTP from the caller" not in log.text(), log.text()[-3000:]
    assert during <= 5, f"the gateway sent {during} RTP packets to a caller who held it"
    assert after >= 100, f"only {after} RTP packets after the unhold"
    # the bot's own audio is connected again: the bridge pulls its port for the ~2 s before
    # the hold and the ~3 s after the unhold (it stopped at the hold for good before the fix)
    assert frames_out >= 200, f"bot port gave {frames_out} frames: no audio after the unhold"


# --------------------------------------------------------------------------- retransmission


def duplicate_invite(sip_port: int, rtp_port: int, late: float = 1.0,
                     timeout: float = 10.0) -> list[tuple[float, SipMessage]]:
    """Send one INVITE four times (same branch, Call-ID, From tag, CSeq): twice back to back,
    once after its 200 (before the ACK), once ``late`` seconds after the ACK; then BYE.
    Returns (seconds since the first INVITE, message) for every message both ways.

    Not a sipp scenario: sipp takes each retransmitted 200 for a retransmission and repeats
    its own last message, the INVITE copy, which PJSIP answers with the 200 again, forever.
    """
    uac = RawUac(sip_port, "dup")

    def invite_ok(msg: SipMessage) -> bool:
        return msg.status == 200 and msg.cseq_method == "INVITE"

    invite = uac.request("INVITE", 1, f"<{uac.uri}>", uac.branch(), uac.sdp(rtp_port))
    try:
        uac.send(invite)
        uac.send(invite)  # a retransmission before any answer
        ok = uac.listen(invite_ok, timeout)
        assert ok is not None, [m.first_line for _, m in uac.log]
        to = ok.header("To") or ""
        uac.send(invite)  # a retransmission that crossed the 200
        uac.listen(invite_ok, 1.0)
        uac.send(uac.request("ACK", 1, to, uac.branch()))
        uac.listen(lambda m: False, late)
        uac.send(invite)  # a late copy, after the ACK
        uac.listen(lambda m: False, 2.0)
        uac.send(uac.request("BYE", 2, to, uac.branch()))
        uac.listen(lambda m: m.status is not None and m.status >= 200
                   and m.cseq_method == "BYE", 5.0)
        return uac.log
    finally:
        uac.close()


def test_retransmitted_invite_makes_exactly_one_call(gateway, sipp, rtp_peers):
    log = GatewayLog(gateway)
    [peer] = rtp_peers(1)
    msgs = duplicate_invite(gateway.sip_port, peer.port)
    flow = "\n".join(f"  {t:6.3f} {m.direction:8} {m.first_line} ({m.header('CSeq')}) "
                     f"To: {m.header('To')}" for t, m in msgs)
    print(f"\nthe same INVITE four times:\n{flow}")
    invites = [t for t, m in msgs if m.direction == "sent" and m.method == "INVITE"]
    finals = [(t, m) for t, m in msgs if m.direction == "received" and m.status is not None
              and m.status >= 200 and m.cseq_method == "INVITE"]
    before_late = [m for t, m in finals if t < invites[3]]
    after_late = [m for t, m in finals if t >= invites[3]]
    # copies 1-3: one answer, one dialog (every 200 carries the same To tag)
    assert before_late and {m.status for m in before_late} == {200}, flow
    assert len({m.header("To") for m in before_late}) == 1, flow
    # the late copy is refused, never answered 200 as a new call
    assert after_late, flow
    assert {m.status for m in after_late} == {482}, flow
    bye = [m for _, m in msgs if m.direction == "received" and m.cseq_method == "BYE"
           and m.status is not None]
    assert bye and bye[-1].status == 200, flow

    calls = log.wait_all_ended(expect=2, timeout=10)
    answered = [n for n, ev in calls.items() if "media up" in ev]
    refused = [ev["refused:"] for ev in calls.values() if "refused:" in ev]
    assert len(answered) == 1, log.text()
    assert len(refused) == 1 and refused[0].startswith("a retransmission of an INVITE"), \
        log.text()
    call_id = before_late[0].header("Call-ID") or ""
    rec = gateway.closed_record(call_id)
    assert len(records_of(gateway, call_id)) == 1, records_of(gateway, call_id)
    print(f"gateway: {answered[0]} answered, the late copy refused ({refused[0][:40]}...); "
          f"one record: {rec['outcome']}")
    assert rec["outcome"] == "ended_by_caller", rec
    assert active_calls_gauge(gateway) == 0
    assert_capacity(gateway, sipp, rtp_peers, "after-duplicates")


# --------------------------------------------------------------------------- 481 / 501


def test_requests_for_no_dialog_get_481_and_unknown_methods_501(gateway, sipp):
    log = GatewayLog(gateway)
    run = sipp("unknown-dialog", "unknown_dialog.xml", timeout_s=10).run()
    run.assert_ok()
    bye = final_response(run.messages, "BYE")
    frob = final_response(run.messages, "FROBNICATE")
    print(f"\nBYE for no dialog: {bye.first_line}; FROBNICATE outside a dialog: "
          f"{frob.first_line}")
    assert bye.status == 481, run.report()
    assert frob.status == 501, run.report()
    time.sleep(0.3)
    assert log.calls() == {}, log.text()


def test_refusals_inside_a_dialog_leave_the_call_up(gateway, sipp, rtp_peers):
    log = GatewayLog(gateway)
    [peer] = rtp_peers(1)
    run = sipp("in-dialog", "in_dialog_refusals.xml", inject=[[str(peer.port)]]).run()
    run.assert_ok()
    msgs = run.messages
    assert final_response(msgs, "INVITE").status == 200, run.report()
    by_cseq = {m.header("CSeq"): m for m in msgs if m.direction == "received"
               and m.status is not None and m.status >= 200}
    wrong_tag, frob, bye = by_cseq.get("2 BYE"), by_cseq.get("3 FROBNICATE"), \
        by_cseq.get("4 BYE")
    assert wrong_tag and frob and bye, run.report()
    print(f"\nBYE with a wrong To tag: {wrong_tag.first_line}; FROBNICATE in the dialog: "
          f"{frob.first_line}; then the real BYE: {bye.first_line}")
    assert wrong_tag.status == 481, run.report()
    assert frob.status == 501, run.report()  # was 500 "Unhandled by dialog usages"
    assert bye.status == 200, run.report()  # the call survived both
    assert not gateway_requests(run, "BYE"), run.report()
    [call_id] = outcomes(msgs, "INVITE")
    rec = gateway.closed_record(call_id)
    assert rec["outcome"] == "ended_by_caller" and rec["end_cause"] == "the caller hung up", rec
    log.wait_all_ended(expect=1, timeout=5)
