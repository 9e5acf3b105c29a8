"""The gateway's call-control logic without a network: keypad digits into the record, the
blind-transfer state machine (REFER outcomes, timeout, late NOTIFY, call ending first) and the
bot's hang-up, driven through the gateway's ``CallControl`` with a stand-in pjsua call."""

from __future__ import annotations

import logging

import pjsua2 as pj
import pytest
from prometheus_client import CollectorRegistry

from gateway.calls import records
from gateway.calls.metrics import Metrics
from gateway.calls.observer import CallObserver
from gateway.calls.records import Journal
from gateway.telephony.call_control import (
    TRANSFER_TIMEOUT,
    CallControl,
    dtmf_method_name,
    normalize_digit,
    transfer_verdict,
)


def test_transfer_verdicts_follow_the_final_report():
    assert transfer_verdict(100, False) is None  # the REFER's 202, as pjsua reports it
    assert transfer_verdict(180, False) is None  # NOTIFY: the target rings
    assert transfer_verdict(200, True) == "accepted"
    assert transfer_verdict(202, True) == "accepted"
    assert transfer_verdict(486, True) == "failed"  # NOTIFY sipfrag 486
    assert transfer_verdict(603, True) == "failed"  # the REFER itself refused
    assert transfer_verdict(100, True) == "failed"  # subscription over, no outcome
    assert transfer_verdict(503, False) == "failed"


def test_dtmf_method_names_and_digits():
    assert dtmf_method_name(pj.PJSUA_DTMF_METHOD_RFC2833, pj.PJSUA_DTMF_METHOD_RFC2833,
                            pj.PJSUA_DTMF_METHOD_SIP_INFO) == "rfc4733"
    assert dtmf_method_name(pj.PJSUA_DTMF_METHOD_SIP_INFO, pj.PJSUA_DTMF_METHOD_RFC2833,
                            pj.PJSUA_DTMF_METHOD_SIP_INFO) == "sip_info"
    assert normalize_digit("a") == "A" and normalize_digit(" 5") == "5"


class FakeSession:
    def __init__(self):
        self.keys: list[str] = []
        self.results: list[tuple[bool, int, str]] = []

    def on_dtmf(self, digit):
        self.keys.append(digit)

    def on_transfer_result(self, accepted, status, reason):
        self.results.append((accepted, status, reason))


class FakeCall:
    """What call control uses of a GatewayCall (``ControlledCall``)."""

    def __init__(self, name="call-1", xfer_error: bool = False):
        self.name = name
        self.ended = False
        self.bot_cause = None
        self.transfer = None
        self.timed_out_target = None
        self.session = FakeSession()
        self.log = logging.LoggerAdapter(logging.getLogger("test"), {"call": name})
        self.referred: list[str] = []
        self.hangups = 0
        self.xfer_error = xfer_error

    def xfer(self, target, prm):
        if self.xfer_error:
            err = pj.Error()
            err.reason, err.title = "Invalid URI", "xfer"
            raise err
        self.referred.append(target)

    def hang_up(self, cause, status=None):
        if self.bot_cause is None:
            self.bot_cause = cause
        self.hangups += 1


@pytest.fixture
def gw(tmp_path):
    clock = {"t": 1000.0}
    m = Metrics(CollectorRegistry())
    obs = CallObserver(m, Journal(tmp_path / "calls.jsonl"), mono=lambda: clock["t"],
                       wall=lambda: 1.7e9 + clock["t"])
    g = CallControl({}, obs)  # no pjsua endpoint: stand-in calls
    g.clock, g.metrics = clock, m  # the test's own handles
    yield g
    obs.journal.close()


def add_call(gw, **kw) -> FakeCall:
    call = FakeCall(**kw)
    gw.calls[call.name] = call
    gw.observer.answering(call.name, {})
    return call


def close(gw, call) -> dict:
    """The call's end as Gateway.forget() records it."""
    gw.abandon_transfer(call)
    gw.observer.ended(call.name, 200, "Normal call clearing", by_bot=call.bot_cause is not None,
                      cause=call.bot_cause or "")
    gw.observer.journal.close()
    [rec] = records.read(gw.observer.journal.path).records()
    return rec


def counter(m, name, **labels) -> float:
    return m.registry.get_sample_value(name, labels) or 0.0


def test_digits_reach_the_record_in_order_and_the_conversation(gw):
    call = add_call(gw)
    for t, digit, method in ((1.0, "1", pj.PJSUA_DTMF_METHOD_SIP_INFO),
                             (2.5, "2", pj.PJSUA_DTMF_METHOD_RFC2833),
                             (3.0, "#", pj.PJSUA_DTMF_METHOD_RFC2833)):
        gw.clock["t"] = 1000.0 + t
        gw.dtmf(call, digit, method)
    assert call.session.keys == ["1", "2", "#"]
    rec = close(gw, call)
    assert rec["dtmf"] == [{"digit": "1", "method": "sip_info", "t": 1.0},
                           {"digit": "2", "method": "rfc4733", "t": 2.5},
                           {"digit": "#", "method": "rfc4733", "t": 3.0}]
    assert counter(gw.metrics, "voicebot_dtmf_digits_total", method="rfc4733") == 2
    assert counter(gw.metrics, "voicebot_dtmf_digits_total", method="sip_info") == 1


def test_transfer_accepted_ends_the_call_as_transferred(gw):
    call = add_call(gw)
    gw.start_transfer(call.name, "sip:desk@pbx")
    assert call.referred == ["sip:desk@pbx"] and call.transfer is not None
    gw.transfer_status(call.name, 100, "Accepted", False)  # the REFER's 202
    gw.transfer_status(call.name, 180, "Ringing", False)
    assert call.session.results == [] and call.hangups == 0
    gw.transfer_status(call.name, 200, "OK", True)
    assert call.session.results == [(True, 200, "OK")]
    assert call.hangups == 1 and call.transfer is None
    assert "sip:desk@pbx" in call.bot_cause
    rec = close(gw, call)
    assert rec["outcome"] == "transferred"
    assert rec["end_cause"] == "transferred to sip:desk@pbx (200 OK)"
    [x] = rec["transfers"]
    assert (x["target"], x["status"], x["outcome"], x["reason"]) == \
        ("sip:desk@pbx", 200, "accepted", "OK")
    assert counter(gw.metrics, "voicebot_transfers_total", outcome="accepted") == 1
    assert counter(gw.metrics, "voicebot_calls_total", outcome="transferred") == 1


@pytest.mark.parametrize(("status", "reason"), [(603, "Decline"), (486, "Busy Here")])
def test_transfer_refused_or_failed_keeps_the_call(gw, status, reason):
    call = add_call(gw)
    gw.start_transfer(call.name, "sip:desk@pbx")
    gw.transfer_status(call.name, status, reason, True)
    assert call.session.results == [(False, status, reason)]
    assert call.hangups == 0 and call.bot_cause is None and call.transfer is None
    # a second attempt may follow (another REFER)
    gw.start_transfer(call.name, "sip:desk@pbx")
    assert call.referred == ["sip:desk@pbx"] * 2
    rec = close(gw, call)
    assert rec["outcome"] == "ended_by_caller"
    assert [x["outcome"] for x in rec["transfers"]] == ["failed", "failed"]  # 2nd: call ended
    assert rec["transfers"][0]["status"] == status
    assert rec["transfers"][1]["status"] is None
    assert counter(gw.metrics, "voicebot_transfers_total", outcome="failed") == 2


def test_transfer_without_final_notify_times_out_and_a_late_success_hangs_up(gw):
    call = add_call(gw)
    gw.start_transfer(call.name, "sip:desk@pbx")
    gw.transfer_status(call.name, 100, "Accepted", False)
    now = call.transfer.sent_at
    gw.check_transfer(call, now + TRANSFER_TIMEOUT - 1)
    assert call.session.results == []
    gw.check_transfer(call, now + TRANSFER_TIMEOUT + 0.1)
    [(accepted, status, reason)] = call.session.results
    assert not accepted and status == 408 and "100 Accepted" in reason
    assert call.hangups == 0
    gw.transfer_status(call.name, 200, "OK", True)  # it worked after all: leave the call
    assert call.hangups == 1
    rec = close(gw, call)
    assert rec["transfers"][0]["outcome"] == "timeout"
    assert rec["outcome"] == "transferred"
    assert counter(gw.metrics, "voicebot_transfers_total", outcome="timeout") == 1


def test_refer_that_cannot_be_sent_fails_at_once(gw):
    call = add_call(gw, xfer_error=True)
    gw.start_transfer(call.name, "sip:desk@pbx")
    [(accepted, status, reason)] = call.session.results
    assert not accepted and status == 500 and "Invalid URI" in reason
    assert call.transfer is None and call.hangups == 0


def test_second_transfer_while_one_is_pending_is_refused(gw):
    call = add_call(gw)
    gw.start_transfer(call.name, "sip:desk@pbx")
    gw.start_transfer(call.name, "sip:other@pbx")
    assert call.referred == ["sip:desk@pbx"]
    assert call.session.results == [(False, 491, "a transfer is already pending")]


def test_bot_hang_up_marks_the_outcome_and_cause(gw):
    call = add_call(gw)
    gw.bot_hang_up(call.name, "the bot ended the call")
    assert call.hangups == 1
    rec = close(gw, call)
    assert rec["outcome"] == "bot_hangup" and rec["end_cause"] == "the bot ended the call"
    assert counter(gw.metrics, "voicebot_calls_total", outcome="bot_hangup") == 1
    gw.bot_hang_up("call-9", "gone")  # an unknown / ended call: nothing happens
