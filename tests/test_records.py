"""The call journal: append-only lines, fold by call id, torn lines, crash recovery, CLI."""

from __future__ import annotations

import json
import os

import pytest
from prometheus_client import CollectorRegistry

from gateway import records
from gateway.metrics import Metrics
from gateway.records import CallObserver, Journal
from pipeline.session import TurnRecord


def dead(pid, start):
    return False


def v(m, name, **labels):
    return m.registry.get_sample_value(name, labels)


def lines(path):
    return path.read_bytes().decode().splitlines()


def test_open_media_turns_close_fold_into_one_record(tmp_path):
    p = tmp_path / "calls.jsonl"
    j = Journal(p)
    j.write({"type": "open", "id": "c1", "call": "call-1", "start_ts": 100.0, "pid": 1})
    j.submit({"type": "media", "id": "c1", "codec": "G722/16000"})
    j.submit({"type": "turn", "id": "c1", "turn": {"turn": 4, "caller_text": "b"}})
    j.submit({"type": "turn", "id": "c1", "turn": {"turn": 2, "caller_text": "a"}})
    j.submit({"type": "turn", "id": "c1", "turn": {"turn": 2, "caller_text": "a2"}})
    j.submit({"type": "close", "id": "c1", "outcome": "ended_by_caller"})
    j.close()
    assert all(json.loads(x) for x in lines(p))
    f = records.read(p)
    assert not f.torn
    r = f.calls["c1"]
    assert r["state"] == "closed" and r["outcome"] == "ended_by_caller"
    assert r["codec"] == "G722/16000" and r["call"] == "call-1"
    assert [t["caller_text"] for t in r["turns"]] == ["a2", "b"]  # by turn; last line wins


def test_torn_last_line_is_skipped_reported_and_the_next_line_starts_fresh(tmp_path):
    p = tmp_path / "calls.jsonl"
    j = Journal(p)
    j.write({"type": "open", "id": "c1", "pid": 1})
    j.close()
    with p.open("ab") as f:
        f.write(b'{"type": "close", "id": "c1", "outc')  # kill -9 in the middle of a write
    f = records.read(p)
    assert f.calls["c1"]["state"] == "open"
    assert len(f.torn) == 1 and f.torn[0][0] == 2
    j = Journal(p)  # a restart: appends after the torn line, not onto it
    j.write({"type": "close", "id": "c1", "outcome": "aborted"})
    j.close()
    f = records.read(p)
    assert f.calls["c1"]["outcome"] == "aborted" and len(f.torn) == 1


def test_garbage_in_the_middle_is_skipped_and_reported():
    f = records.fold([b'{"type":"open","id":"a"}\n', b"\x00\x00garbage\n", b"[1, 2]\n",
                      b'{"type":"mystery","id":"a"}\n', b'{"type":"close","id":"a"}\n'])
    assert f.calls["a"]["state"] == "closed"
    assert [n for n, _ in f.torn] == [2, 3, 4]


def test_recovery_closes_only_records_whose_process_is_gone(tmp_path):
    p = tmp_path / "calls.jsonl"
    j = Journal(p)
    me, my_start = os.getpid(), records.process_start(os.getpid())
    j.write({"type": "open", "id": "crashed", "pid": 999999999, "pid_start": 1, "start_ts": 50.0})
    j.write({"type": "turn", "id": "crashed", "turn": {"turn": 2, "committed_at": 3.0}})
    j.write({"type": "open", "id": "reused-pid", "pid": me, "pid_start": (my_start or 0) + 1})
    j.write({"type": "open", "id": "live", "pid": me, "pid_start": my_start})
    j.write({"type": "open", "id": "done", "pid": 999999999})
    j.write({"type": "close", "id": "done", "outcome": "ended_by_bot"})
    j.close()
    closed, _ = records.recover(p, now=lambda: 1000.0)
    assert sorted(closed) == ["crashed", "reused-pid"]
    f = records.read(p)
    assert f.calls["crashed"]["outcome"] == "aborted"
    assert f.calls["crashed"]["last_seen_ts"] == 53.0
    assert f.calls["crashed"]["turns"][0]["committed_at"] == 3.0  # turns survive
    assert f.calls["live"]["state"] == "open"
    assert f.calls["done"]["outcome"] == "ended_by_bot"
    assert records.recover(p)[0] == []  # idempotent


def test_journal_path_defaults(tmp_path):
    assert records.journal_path("x/y.jsonl", {}) == records.Path("x/y.jsonl")
    assert records.journal_path("", {"VOICEBOT_STATE": "/var/lib/vb"}) == \
        records.Path("/var/lib/vb/calls.jsonl")
    assert records.journal_path("", {}) == records.Path("var/calls.jsonl")


def _observer(tmp_path):
    clock = {"t": 1000.0}
    m = Metrics(CollectorRegistry(), capacity=4)
    obs = CallObserver(m, Journal(tmp_path / "calls.jsonl"), mono=lambda: clock["t"],
                       wall=lambda: 1.7e9 + clock["t"])
    return obs, m, clock


class _Session:
    def __init__(self):
        self.turns = []


def test_observer_writes_a_complete_record_and_counts(tmp_path):
    obs, m, clock = _observer(tmp_path)
    cid = obs.answering("call-1", {"remote_uri": "<sip:alice@example.com>"})
    assert cid.startswith("call-1-")
    assert records.read(tmp_path / "calls.jsonl").calls[cid]["state"] == "open"  # durable now
    assert v(m, "voicebot_active_calls") == 1
    session = _Session()
    obs.media_started("call-1", session)
    obs.rtp("call-1", {"codec": "PCMU/8000", "remote_rtp": "10.0.0.1:4000", "rx_packets": 50,
                       "jb_delay_ms_avg": 40.0})
    rec = TurnRecord(2, 0, 16000, committed=1010.5, speech_end_time=1010.0,
                     caller_text="when do you open", stt_seconds=0.2,
                     llm_first_token_seconds=0.15, tts_first_audio_seconds=0.3,
                     first_audio=1011.2, bot_text="At nine.", heard_text="At nine.")
    session.turns.append(rec)
    obs.turn_done("call-1", rec)
    cut = TurnRecord(5, 0, 1600, committed=1020.0, speech_end_time=1019.5, first_audio=1020.9)
    session.turns.append(cut)  # the caller hangs up while this reply plays
    clock["t"] = 1030.0
    obs.ended("call-1", 200, "Normal call clearing", by_bot=False)
    obs.journal.close()
    r = records.read(tmp_path / "calls.jsonl").calls[cid]
    assert r["state"] == "closed" and r["outcome"] == "ended_by_caller"
    assert r["codec"] == "PCMU/8000" and r["duration_seconds"] == 30.0
    t2, t5 = r["turns"]
    # no loud frames seen at a port: the pipeline's marks plus the jitter-buffer delay
    assert t2["ttfa_bridge_seconds"] == pytest.approx(1.2)
    assert t2["ttfa_seconds"] == pytest.approx(1.2 + 0.040 + records.OUTBOUND_WIRE_SECONDS)
    assert t2["end_of_turn_seconds"] == pytest.approx(0.5)
    assert t2["speech_end_at"] == 10.0 and t2["first_audio_at"] == 11.2
    assert t5.get("ended_with_call") and t5["ttfa_seconds"] is not None
    assert v(m, "voicebot_ttfa_seconds_count") == 2
    assert v(m, "voicebot_turns_total", result="answered") == 2
    assert v(m, "voicebot_calls_total", outcome="answered") == 1
    assert v(m, "voicebot_calls_total", outcome="ended_by_caller") == 1
    assert v(m, "voicebot_active_calls") == 0
    assert "password" not in (tmp_path / "calls.jsonl").read_text().lower()


def test_observer_outcomes_failure_shutdown_and_unknown_calls(tmp_path):
    obs, m, _ = _observer(tmp_path)
    a = obs.answering("call-1", {})
    b = obs.answering("call-2", {})
    obs.pipeline_error("call-1", "work")
    obs.ended("call-1", 500, "Internal Server Error", by_bot=True)
    obs.ended("call-9", 404, "Not Found", by_bot=False)  # refused: never answered, ignored
    obs.turn_done("call-9", TurnRecord(1, 0, 1, committed=0.0))  # ignored, no exception
    obs.close_all("the gateway shut down")
    obs.journal.close()
    f = records.read(tmp_path / "calls.jsonl")
    assert f.calls[a]["outcome"] == "failed"
    assert f.calls[b]["outcome"] == "ended_by_bot"
    assert f.calls[b]["end_cause"] == "the gateway shut down"
    assert v(m, "voicebot_pipeline_errors_total", stage="work") == 1
    assert len(f.calls) == 2


def test_barge_in_turn_is_counted_with_an_exemplar(tmp_path):
    obs, m, _ = _observer(tmp_path)
    cid = obs.answering("call-1", {})
    rec = TurnRecord(2, 0, 1, committed=1.0, speech_end_time=0.5, first_audio=1.5,
                     interrupted=True, barge_in_seconds=0.25, bot_text="a b c d",
                     heard_text="a b")
    obs.turn_done("call-1", rec)
    obs.journal.close()
    assert v(m, "voicebot_barge_ins_total") == 1
    assert v(m, "voicebot_turns_total", result="interrupted") == 1
    from prometheus_client.openmetrics.exposition import generate_latest

    text = generate_latest(m.registry).decode()
    assert f'# {{call_id="{cid}"}} 0.25' in text


def test_cli_lists_and_shows_calls(tmp_path, capsys):
    from gateway.cli import main

    obs, _, clock = _observer(tmp_path)
    cid = obs.answering("call-1", {"remote_uri": "<sip:alice@example.com>"})
    obs.turn_done("call-1", TurnRecord(2, 0, 1, committed=1001.0, speech_end_time=1000.5,
                                       caller_text="hello there", bot_text="Hi!",
                                       first_audio=1002.0, stt_seconds=0.1))
    clock["t"] += 5
    obs.ended("call-1", 200, "OK", by_bot=False)
    obs.journal.close()
    j = str(tmp_path / "calls.jsonl")
    assert main(["calls", "--journal", j]) == 0
    out = capsys.readouterr().out
    assert cid in out and "ended_by_caller" in out and "sip:alice@example.com" in out
    assert main(["calls", "--journal", j, "show", cid[:9]]) == 0
    out = capsys.readouterr().out
    assert "'hello there'" in out and "stt 100" in out and "TTFA 1500" in out
    assert main(["calls", "--journal", j, "show", "nope"]) == 1
    assert main(["calls", "--journal", str(tmp_path / "missing.jsonl")]) == 1


def test_keys_transfers_and_tool_calls_are_in_the_record_and_shown(tmp_path, capsys):
    import enum

    from gateway.cli import main

    class Verdict(enum.Enum):  # a non-JSON value in a tool call must not lose the turn line
        RUN = "run"

    obs, m, clock = _observer(tmp_path)
    cid = obs.answering("call-1", {})
    clock["t"] += 2.0
    obs.dtmf("call-1", "0", "sip_info")
    clock["t"] += 1.5
    obs.dtmf("call-1", "4", "rfc4733")
    rec = TurnRecord(1, 0, 1, committed=1004.0, speech_end_time=1003.5, caller_text="a person",
                     bot_text="Transferring you to the front desk now.", first_audio=1004.5)
    rec.tools = [{"name": "transfer_call", "arguments": {"target": "front desk"},
                  "decision": Verdict.RUN, "outcome": "ran", "ms": 3}]
    obs.turn_done("call-1", rec)
    clock["t"] += 3.0
    obs.transfer("call-1", "sip:desk@pbx", 486, "failed", "Busy Here")
    obs.transfer("call-1", "sip:desk@pbx", 200, "accepted", "OK")
    obs.mark_outcome("call-1", "transferred")
    obs.ended("call-1", 200, "Normal call clearing", by_bot=True,
              cause="transferred to sip:desk@pbx (200 OK)")
    obs.journal.close()
    r = records.read(tmp_path / "calls.jsonl").calls[cid]
    assert r["outcome"] == "transferred"
    assert r["dtmf"] == [{"digit": "0", "method": "sip_info", "t": 2.0},
                         {"digit": "4", "method": "rfc4733", "t": 3.5}]
    assert [(x["status"], x["outcome"], x["t"]) for x in r["transfers"]] == \
        [(486, "failed", 6.5), (200, "accepted", 6.5)]
    [tool] = r["turns"][0]["tools"]
    assert tool == {"name": "transfer_call", "arguments": {"target": "front desk"},
                    "decision": "Verdict.RUN", "outcome": "ran", "ms": 3}
    assert v(m, "voicebot_dtmf_digits_total", method="sip_info") == 1
    assert v(m, "voicebot_transfers_total", outcome="failed") == 1
    assert v(m, "voicebot_calls_total", outcome="transferred") == 1
    assert main(["calls", "--journal", str(tmp_path / "calls.jsonl"), "show", cid]) == 0
    out = capsys.readouterr().out
    assert "keys       0 4  (sip_info at 2.0 s, rfc4733 at 3.5 s)" in out
    assert "transfer   to sip:desk@pbx: failed (486 Busy Here) at 6.5 s" in out
    assert "tool     transfer_call {'target': 'front desk'} -> Verdict.RUN, ran (3 ms)" in out


def test_turn_without_tools_has_an_empty_list():
    class Old:  # a record from before tool calls existed
        turn_id = 1

    assert records.turn_entry(Old(), 0.0, 0.0)["tools"] == []
