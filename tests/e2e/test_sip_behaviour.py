"""SIP behaviour of the real gateway, driven by sipp (and one raw-socket UAC) on loopback.

One gateway for the whole module (it takes ~20 s to start), configured with
``[sip] user = "bot"`` so the wrong-user test needs no second gateway; every other test dials
``sip:bot@127.0.0.1:<port>``. The scenarios live in ``testbed/sipp/``; every sipp run writes
its ``-trace_msg`` and ``-trace_err`` logs to the test's tmp dir, and the assertions read the
responses from those logs (status lines, headers), not from sipp's counters alone.

Media: a sipp call's SDP points the gateway's RTP at an ``RtpPeer`` (testbed/sipp_harness.py:
a UDP socket that records every packet the gateway sends and answers with mu-law silence),
so a test can check that the gateway really sends audio (its spoken greeting) on each call.

Ports: every socket is on 127.0.0.1 with a free ephemeral port (never 5060-5099 or 22222).
Every sipp process and RTP peer is stopped in teardown; every wait is bounded.
"""

from __future__ import annotations

import re
import shutil
import time

import pytest

from testbed.harness import GatewayProcess, free_udp_port
from testbed.sipp_harness import (
    CAPACITY,
    RETRY_AFTER,
    GatewayLog,
    RawUac,
    SipMessage,
    assert_full_capacity,
    final_response,
    hold_calls,
    outcomes,
    responses,
    wait_until,
)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    if shutil.which("sipp") is None:
        pytest.skip("needs sipp (apt-get install sip-tester)")
    yield from GatewayProcess(tmp_path_factory.mktemp("gw"), extra_toml='user = "bot"').serve()


# --------------------------------------------------------------------------- tests


def test_options_gets_200(sipp):
    run = sipp("options", "options.xml", timeout_s=10).run()
    run.assert_ok()
    reply = final_response(run.messages, "OPTIONS")
    assert reply.first_line == "SIP/2.0 200 OK", run.report()
    allow = {m.strip() for m in (reply.header("Allow") or "").split(",")}
    accept = reply.header("Accept") or ""
    print(f"\nOPTIONS 200: Allow: {reply.header('Allow')}\n  Accept: {accept}\n"
          f"  Supported: {reply.header('Supported')}\n  User-Agent: {reply.header('User-Agent')}")
    assert {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS"} <= allow, reply.text
    assert "application/sdp" in accept, reply.text


@pytest.mark.parametrize(("pt", "rtpmap"), [("3", "GSM/8000"), ("111", "opus/48000/2")],
                         ids=["gsm", "opus"])
def test_unsupported_codec_gets_488_and_leaves_no_call(gateway, sipp, rtp_peers, pt, rtpmap):
    log = GatewayLog(gateway)
    run = sipp(f"codec-{pt}", "invite_refused.xml", timeout_s=10,
               keys={"rtp_port": str(free_udp_port()), "pt": pt, "rtpmap": rtpmap}).run()
    run.assert_ok()
    reply = final_response(run.messages, "INVITE")
    assert reply.status == 488, run.report()
    assert reply.first_line == "SIP/2.0 488 Not Acceptable Here", run.report()
    print(f"\n{rtpmap}: {reply.first_line}; Warning: {reply.header('Warning')}")
    time.sleep(0.5)
    assert log.calls() == {}, f"the refused INVITE left a call behind:\n{log.text()}"

    # the next real call still works: answered, RTP both ways, ended
    call, [peer] = hold_calls(sipp, rtp_peers, f"after-{pt}", 1, hold_ms=1500)
    call.wait()
    call.assert_ok()
    assert final_response(call.messages, "INVITE").status == 200, call.report()
    assert len(peer.received) > 10, "no RTP from the gateway on the call after the 488"
    log.wait_all_ended(expect=1)


def test_wrong_user_gets_404(gateway, sipp):
    log = GatewayLog(gateway)
    run = sipp("wrong-user", "invite_refused.xml", service="alice", timeout_s=10,
               keys={"rtp_port": str(free_udp_port()), "pt": "0", "rtpmap": "PCMU/8000"}).run()
    run.assert_ok()
    reply = final_response(run.messages, "INVITE")
    assert reply.first_line == "SIP/2.0 404 Not Found", run.report()
    calls = log.wait_all_ended(expect=1)
    [events] = calls.values()
    assert "alice" in events["refused:"], log.text()
    assert events["ended:"].startswith("404"), log.text()


def test_bye_from_caller_ends_the_call(gateway, sipp, rtp_peers):
    log = GatewayLog(gateway)
    run, [peer] = hold_calls(sipp, rtp_peers, "bye", 1, hold_ms=3000)
    run.wait()
    run.assert_ok()
    msgs = run.messages
    assert final_response(msgs, "INVITE").status == 200, run.report()
    bye_reply = final_response(msgs, "BYE")
    assert bye_reply.first_line == "SIP/2.0 200 OK", run.report()
    assert len(peer.received) > 50, f"only {len(peer.received)} RTP packets in 3 s"

    [(name, events)] = log.wait_all_ended(expect=1).items()
    ended = events["ended:"]
    assert ended.startswith("200 Normal call clearing"), log.text()
    rx = re.search(r"'rx_packets': (\d+)", ended)
    assert rx and int(rx.group(1)) > 0, f"the gateway got none of our RTP: {ended}"
    # the slot is free again: the full capacity is available
    assert_full_capacity(gateway, sipp, rtp_peers, "after-bye")


def test_capacity_fifth_call_gets_503_with_retry_after(gateway, sipp, rtp_peers):
    log = GatewayLog(gateway)
    hold_ms = 14000
    run, peers = hold_calls(sipp, rtp_peers, "four", CAPACITY, hold_ms=hold_ms)
    started = time.monotonic()

    def media_up() -> int:
        return sum(1 for ev in log.calls().values() if "media up" in ev)

    wait_until(f"{CAPACITY} calls with media up", lambda: media_up() == CAPACITY
               and all(p.received for p in peers), 10, lambda: run.report() + log.text())

    fifth = sipp("fifth", "invite_refused.xml", timeout_s=10,
                 keys={"rtp_port": str(free_udp_port()), "pt": "0", "rtpmap": "PCMU/8000"})
    fifth.run()
    refused_at = time.monotonic()
    assert time.monotonic() - started < hold_ms / 1000 - 3, "too slow: the 4 calls may be gone"
    fifth.assert_ok()
    reply = final_response(fifth.messages, "INVITE")
    assert reply.first_line == "SIP/2.0 503 Service Unavailable", fifth.report()
    retry_after = reply.header("Retry-After")
    assert retry_after is not None, f"503 without Retry-After:\n{reply.text}"
    assert re.fullmatch(r"\d+", retry_after) and int(retry_after) == RETRY_AFTER, reply.text
    assert f"refused a call: {CAPACITY}/{CAPACITY} calls active (503, Retry-After " \
           f"{RETRY_AFTER})" in log.text()

    assert run.wait() == 0, run.report()
    run.assert_ok()
    msgs = run.messages
    assert sorted(outcomes(msgs, "INVITE").values()) == [200] * CAPACITY, run.report()
    assert sorted(outcomes(msgs, "BYE").values()) == [200] * CAPACITY, run.report()
    for p in peers:
        # the calls kept their audio after the refusal, and it carried the spoken greeting
        after = p.packets_after(refused_at)
        assert after > 100, f"port {p.port}: {after} RTP packets after the 503"
        voiced = p.voiced_seconds()
        print(f"\ncall on port {p.port}: {len(p.received)} packets, {voiced:.1f} s voiced")
        assert voiced > 1.0, f"port {p.port}: the gateway sent no greeting ({voiced:.2f} s)"

    calls = log.wait_all_ended(expect=CAPACITY)
    assert len(calls) == CAPACITY, log.text()  # the 503 never reached pjsua's call slots
    assert all(ev["ended:"].startswith("200") for ev in calls.values()), log.text()
    assert_full_capacity(gateway, sipp, rtp_peers, "after-503")


# --- CANCEL --------------------------------------------------------------------------------


def invite_then_cancel(sip_port: int, rtp_port: int, timeout: float = 10.0) -> list[SipMessage]:
    """Send an INVITE and its CANCEL back to back, then finish whichever way it went.

    sipp cannot do this: it runs each scenario step in a later pass of its event loop, by
    which time pjsua's 100 (and often its 200) has arrived, so the CANCEL would go out after
    the final response. Here both datagrams leave within microseconds. Outcomes (RFC 3261
    9.2): 200 (CANCEL) + 487 (INVITE) -> ACK; or 200 (INVITE) -> ACK + BYE, the CANCEL then
    answered 200 or 481.
    """
    uac = RawUac(sip_port, "canceller")
    to = f"<{uac.uri}>"
    branch = uac.branch()

    def send(method: str, cseq: int, to_hdr: str, br: str, body: str = "") -> None:
        uac.send(uac.request(method, cseq, to_hdr, br, body))

    try:
        send("INVITE", 1, to, branch, uac.sdp(rtp_port))
        send("CANCEL", 1, to, branch)
        deadline = time.monotonic() + timeout
        invite_final: SipMessage | None = None
        cancel_final: SipMessage | None = None
        bye_sent_at: float | None = None
        bye_final: SipMessage | None = None
        dialog_to = ""
        bye_branch = uac.branch()
        while time.monotonic() < deadline:
            if bye_final is not None or (invite_final is not None and invite_final.status >= 300
                                         and cancel_final is not None):
                break
            msg = uac.receive(0.2)  # a BYE from the gateway is answered there
            if msg is not None and msg.status is not None:
                if msg.cseq_method == "CANCEL" and msg.status >= 200:
                    cancel_final = cancel_final or msg
                elif msg.cseq_method == "INVITE" and msg.status >= 200:
                    first = invite_final is None
                    invite_final = invite_final or msg
                    if msg.status >= 300:  # ACK a non-2xx: same branch, its To tag
                        send("ACK", 1, msg.header("To") or to, branch)
                    else:  # ACK the 2xx (every retransmission too): a new transaction
                        dialog_to = msg.header("To") or to
                        send("ACK", 1, dialog_to, uac.branch())
                        if first:
                            send("BYE", 2, dialog_to, bye_branch)
                            bye_sent_at = time.monotonic()
                elif msg.cseq_method == "BYE" and msg.status >= 200:
                    bye_final = msg
            if bye_sent_at is not None and bye_final is None \
                    and time.monotonic() - bye_sent_at > 1.0:  # retransmit the BYE
                send("BYE", 2, dialog_to, bye_branch)
                bye_sent_at = time.monotonic()
        if cancel_final is None:  # a late answer to the CANCEL, if any
            uac.receive(0.5)
        return [m for _, m in uac.log]
    finally:
        uac.close()


def test_cancel_right_after_invite_leaves_no_call(gateway, sipp, rtp_peers):
    log = GatewayLog(gateway)
    [peer] = rtp_peers(1)
    msgs = invite_then_cancel(gateway.sip_port, peer.port)
    flow = "\n".join(f"  {m.direction:8} {m.first_line} ({m.header('CSeq')})" for m in msgs)
    print(f"\nINVITE + CANCEL:\n{flow}")
    invite = final_response(msgs, "INVITE")
    cancel_replies = [m.status for m in responses(msgs, "CANCEL")]
    if invite.status == 487:  # the CANCEL took effect before the answer
        assert 200 in cancel_replies, flow
        assert any(m.method == "ACK" for m in msgs if m.direction == "sent"), flow
    else:  # the 200 won the race: the call was set up and we ended it with BYE
        assert invite.status == 200, flow
        assert set(cancel_replies) <= {200, 481}, flow
        assert final_response(msgs, "BYE").status == 200, flow

    calls = log.wait_all_ended(expect=1)
    assert len(calls) == 1, log.text()
    [(name, events)] = calls.items()
    print(f"gateway: {name} ended: {events['ended:'][:60]}")
    # no slot leaked: the full capacity is still there
    assert_full_capacity(gateway, sipp, rtp_peers, "after-cancel")


# --- shutdown (keep last: it stops the module's gateway) ------------------------------------


def test_shutdown_with_calls_up_hangs_up_and_exits_cleanly(gateway, sipp, rtp_peers):
    """SIGTERM with every slot busy: each caller gets a BYE and the process exits 0."""
    log = GatewayLog(gateway)
    run, peers = hold_calls(sipp, rtp_peers, "at-shutdown", CAPACITY, hold_ms=30000)
    wait_until(f"{CAPACITY} calls with media up",
               lambda: sum(1 for ev in log.calls().values() if "media up" in ev) == CAPACITY,
               10, lambda: run.report() + log.text())
    code = gateway.stop()
    assert code == 0, f"gateway exit code {code} on SIGTERM with calls up:\n{log.text()[-3000:]}"
    wait_until("a BYE from the gateway on every call", lambda: len(
        {m.header("Call-ID") for m in run.messages
         if m.direction == "received" and m.method == "BYE"}) == CAPACITY, 10, run.report)
    run.kill()
    calls = log.calls()
    assert len(calls) == CAPACITY and all("ended:" in ev for ev in calls.values()), log.text()
