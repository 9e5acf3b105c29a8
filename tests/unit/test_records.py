"""The call journal: append-only lines, fold by call id, torn lines, crash recovery, CLI."""

from __future__ import annotations

import functools
import json
import logging
import os
import re

import pytest
from prometheus_client import CollectorRegistry

from gateway.calls import records
from gateway.calls.metrics import Metrics
from gateway.calls.observer import OUTBOUND_WIRE_SECONDS, CallObserver, turn_entry
from gateway.calls.records import Journal
from gateway.views.records_view import format_call, format_list
from pipeline.turn_record import TurnRecord


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
                     first_audio=1011.2, audio_end=1012.04, bot_text="At nine.",
                     heard_text="At nine.")
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
    assert t2["ttfa_seconds"] == pytest.approx(1.2 + 0.040 + OUTBOUND_WIRE_SECONDS)
    assert t2["end_of_turn_seconds"] == pytest.approx(0.5)
    assert t2["speech_end_at"] == 10.0 and t2["first_audio_at"] == 11.2
    assert t2["bot_audio_end_at"] == 12.04
    assert t5.get("ended_with_call") and t5["ttfa_seconds"] is not None
    assert t5["bot_audio_end_at"] is None  # the call ended before its turn was done
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
    assert turn_entry(TurnRecord(1, 0, 0, 0.0), 0.0, 0.0)["tools"] == []


# --- records are total over any text ----------------------------------------------------------

BAD_BYTES = b'"Bob \xff\xfe\xc3\x28" <sip:bob@example.com>'  # not UTF-8
HOSTILE = [
    BAD_BYTES.decode("utf-8", "surrogateescape"),  # what pjsua2 hands over: '\udcff'...
    "lone \ud800 and \udfff surrogates",
    "nul \x00 bell \x07 esc \x1b[2J\x1b[31m del \x7f c1 \x85 tab \t cr \r lf \n",
    "x" * 65536 + "\udcff",
    "emoji \U0001f600\u200d\U0001f4de and \U0001d11e, caf\u00e9",
    "bidi \u202e reversed \u2028 line sep",
]
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\ud800-\udfff]")


def strings(x):
    if isinstance(x, str):
        yield x
    elif isinstance(x, dict):
        for k, v in x.items():
            yield k
            yield from strings(v)
    elif isinstance(x, list):
        for v in x:
            yield from strings(v)


def test_clean_text_escapes_controls_and_bad_bytes_and_bounds_length():
    c = records.clean_text
    assert c("sip:alice@example.com") == "sip:alice@example.com"
    assert c(HOSTILE[0]) == '"Bob \\xff\\xfe\\xc3(" <sip:bob@example.com>'
    # invalid bytes come back from the escapes (the text holds no backslash of its own)
    assert c(HOSTILE[0]).encode("ascii").decode("unicode_escape").encode("latin-1") == BAD_BYTES
    assert c("a\ud800b") == "a\\ud800b"
    assert c("a\x00b\x1b[2J\x7f\x85") == "a\\x00b\\x1b[2J\\x7f\\u0085"
    assert c(HOSTILE[4]) == HOSTILE[4]  # emoji and accents are text, not escaped
    assert c(b"\xff ok") == "\\xff ok"
    long = c("x" * 65536)
    assert len(long) == records.TEXT_LIMIT and long.endswith("...[truncated, 65536 chars]")
    cut = c("\udcff" * 30000)
    assert len(cut) <= records.TEXT_LIMIT
    body = cut.removesuffix("...[truncated, 30000 chars]")
    assert body != cut and re.fullmatch(r"(\\xff)+", body)  # never half an escape
    assert c("y" * 5000, 100).startswith("y" * 70) and len(c("y" * 5000, 100)) == 100

    class Broken:
        def __str__(self):
            raise RuntimeError("no")

    assert c(Broken()).startswith("<")  # its repr


def test_jsonable_makes_any_value_plain_bounded_json():
    data = records.jsonable({
        "\udcffkey\x00": ["\ud800", float("nan"), float("inf"), 2 ** 200, b"\xfe", {1, 2}],
        "deep": functools.reduce(lambda a, _: [a], range(100), "bottom"),
        "many": list(range(5000)),
        "caller_text": "w" * 20000,
    })
    text = json.dumps(data, ensure_ascii=False, allow_nan=False)
    text.encode("utf-8")  # strict: no surrogates left
    assert data["\\xffkey\\x00"][:5] == ["\\ud800", None, None, str(2 ** 200), "\\xfe"]
    assert len(data["many"]) == records.ITEM_LIMIT + 1 and "4000 more" in data["many"][-1]
    assert "too deep" in json.dumps(data["deep"])
    assert len(data["caller_text"]) == records.LONG_TEXT_LIMIT  # transcripts get more room


def _hostile_call(obs, clock, key="call-1"):
    """One call whose every string field holds hostile text."""
    h = HOSTILE
    info = {"remote_uri": h[0], "local_uri": h[1], "remote_contact": h[2] + h[3],
            "sip_call_id": h[0] + "@\udcfe" + h[2], h[5]: h[4]}
    cid = obs.answering(key, info)
    session = _Session()
    obs.media_started(key, session)
    obs.rtp(key, {"codec": h[2], "remote_rtp": h[0], "rx_packets": 5})
    obs.dtmf(key, h[2], h[1])
    obs.dtmf(key, "5", "rfc4733")
    rec = TurnRecord(1, 0, 1, committed=1001.0, speech_end_time=1000.5, first_audio=1002.0,
                     caller_text=h[3], bot_text=h[4] + h[2], heard_text=h[0])
    rec.tools = [{"name": h[1], "arguments": {h[2]: h[3], "n": float("nan")},
                  "decision": h[5], "outcome": "ran", "ms": 3}]
    obs.turn_done(key, rec)
    session.turns.append(rec)
    session.turns.append(TurnRecord(2, 0, 1, committed=1003.0, caller_text=h[5] + h[1]))
    obs.transfer(key, h[0] + h[3], 486, "failed", h[2])
    clock["t"] += 4
    obs.ended(key, 486, h[1] + h[2], by_bot=True, cause=h[3])
    return cid


def test_a_record_whose_every_string_is_hostile_is_valid_json_bounded_and_closes(
        tmp_path, capsys, caplog):
    from gateway.cli import main

    obs, m, clock = _observer(tmp_path)
    cid = _hostile_call(obs, clock)
    obs.journal.close()
    raw = (tmp_path / "calls.jsonl").read_bytes()
    assert raw.endswith(b"\n")
    parsed = []
    for line in raw.split(b"\n")[:-1]:
        assert len(line) < 60_000, len(line)  # bounded, whatever came in
        parsed.append(json.loads(line.decode("utf-8")))  # strict UTF-8, valid JSON
    assert [p["type"] for p in parsed] == ["open", "media", "turn", "turn", "close"]
    for s in (s for p in parsed for s in strings(p)):
        assert len(s) <= records.LONG_TEXT_LIMIT
        assert not CONTROL.search(s), s[:80]
    f = records.read(tmp_path / "calls.jsonl")
    assert not f.torn and list(f.calls) == [cid]
    r = f.calls[cid]
    assert r["state"] == "closed" and r["outcome"] == "ended_by_bot"
    assert r["remote_uri"] == '"Bob \\xff\\xfe\\xc3(" <sip:bob@example.com>'
    assert r["local_uri"] == "lone \\ud800 and \\udfff surrogates"
    assert r["remote_contact"].startswith("nul \\x00 bell \\x07 esc \\x1b[2J")
    assert r["remote_contact"].endswith(f"...[truncated, {len(HOSTILE[2] + HOSTILE[3])} chars]")
    assert len(r["remote_contact"]) == records.TEXT_LIMIT
    assert r["sip_call_id"].startswith('"Bob \\xff\\xfe\\xc3(" <sip:bob@example.com>@\\xfe')
    assert r["bidi \\u202e reversed \\u2028 line sep"] == HOSTILE[4]  # a key, escaped
    assert r["end_cause"].endswith("...[truncated, 65537 chars]")
    assert r["turns"][0]["caller_text"].endswith("...[truncated, 65537 chars]")
    assert r["turns"][0]["bot_text"].startswith(HOSTILE[4])
    assert r["turns"][0]["tools"][0]["arguments"]["n"] is None
    assert r["turns"][1]["ended_with_call"]
    assert r["dtmf"][0]["digit"].startswith("nul \\x00") and r["dtmf"][1]["digit"] == "5"
    assert r["transfers"][0]["target"].startswith('"Bob \\xff')
    assert r["codec"].startswith("nul \\x00")
    for stage in ("open", "media", "turn", "close", "observer"):
        assert v(m, "voicebot_record_errors_total", stage=stage) == 0
    assert v(m, "voicebot_calls_total", outcome="ended_by_bot") == 1
    assert not [x for x in caplog.records if x.levelno >= logging.WARNING]
    # the CLI shows it, as text any terminal takes
    j = str(tmp_path / "calls.jsonl")
    assert main(["calls", "--journal", j]) == 0
    listing = capsys.readouterr().out
    assert main(["calls", "--journal", j, "show", cid]) == 0
    shown = capsys.readouterr().out
    for out in (listing, shown):
        out.encode("utf-8")
        assert not CONTROL.search(out.replace("\n", ""))
    assert '"Bob \\xff\\xfe\\xc3(" <sip:bob@example.com>' in listing
    assert max(len(x) for x in listing.splitlines()) < 250  # FROM is cut in the list
    assert "from       \"Bob \\xff\\xfe\\xc3(\"" in shown and "[call ended]" in shown
    assert "keys       nul \\x00" in shown and "transfer   to \"Bob \\xff" in shown


def test_records_written_before_cleaning_still_format():
    """An old or hand-edited journal: JSON escapes decode to lone surrogates and controls,
    numbers where text was expected and the other way round."""
    f = records.fold([
        b'{"type":"open","id":"a\\u001b","call":"\\udcff","remote_uri":"\\ud800\\u0007",'
        b'"pid":"x"}',
        b'{"type":"turn","id":"a\\u001b","turn":{"turn":1,"caller_text":"\\udcfe",'
        b'"ttfa_seconds":"fast","jb_delay_ms":"?","tools":["odd",{"name":"\\u0000"}]}}',
        b'{"type":"close","id":"a\\u001b","duration_seconds":"long","dtmf":["x",{"digit":9}],'
        b'"transfers":"none","rtp":{"rx_packets":"\\udcff","rx_jitter_ms_mean":"y"},'
        b'"sip_status":200,"sip_reason":"\\u001b[2J"}',
    ])
    r = f.calls["a\x1b"]
    for out in (format_list([r]), format_call(r)):
        out.encode("utf-8")
        assert not CONTROL.search(out.replace("\n", "")), out
    assert "\\xfe" in format_call(r) and "a\\x1b" in format_list([r])


class _FlakyJournal(Journal):
    """Fails to write the lines whose type is in ``fail`` (each such line ``times`` times)."""

    def __init__(self, path, fail, times=1, **kw):
        super().__init__(path, **kw)
        self.fail, self.left = set(fail), {k: times for k in fail}

    def write(self, obj):
        kind = obj.get("type")
        if kind in self.fail and self.left[kind] > 0:
            self.left[kind] -= 1
            raise OSError(28, "No space left on device")
        super().write(obj)


def _flaky_observer(tmp_path, fail, times=1):
    clock = {"t": 1000.0}
    m = Metrics(CollectorRegistry(), capacity=4)
    j = _FlakyJournal(tmp_path / "calls.jsonl", fail, times,
                      on_error=lambda e: m.journal_errors.inc())
    return CallObserver(m, j, mono=lambda: clock["t"], wall=lambda: 1.7e9 + clock["t"]), m, clock


def test_a_failed_open_line_is_counted_logged_once_and_the_call_still_opens_and_closes(
        tmp_path, caplog):
    obs, m, clock = _flaky_observer(tmp_path, {"open"})
    cid = obs.answering("call-1", {"remote_uri": "<sip:alice@example.com>"})
    assert cid and records.read(tmp_path / "calls.jsonl").calls == {}  # the disk refused it
    assert v(m, "voicebot_record_errors_total", stage="open") == 1
    assert v(m, "voicebot_journal_write_errors_total") == 1
    obs.ended("call-1", 200, "OK", by_bot=False)
    obs.journal.close()
    r = records.read(tmp_path / "calls.jsonl").calls[cid]
    assert r["state"] == "closed" and r["remote_uri"] == "<sip:alice@example.com>"  # both lines
    errors = [x for x in caplog.records if x.levelno >= logging.ERROR]
    assert len(errors) == 1 and "open line failed" in errors[0].getMessage()
    assert errors[0].exc_info is None  # one line, no traceback


def test_failing_writes_and_steps_are_counted_by_stage_and_every_call_still_closes(
        tmp_path, caplog):
    obs, m, clock = _flaky_observer(tmp_path, {"turn", "media"}, times=99)

    def broken(*a, **kw):
        raise ValueError("metrics broke")

    obs.metrics.call_duration.observe = broken  # a step before the close line fails
    obs.metrics.rtp_update = broken
    ids = []
    for n in range(12):
        key = f"call-{n}"
        ids.append(obs.answering(key, {"remote_uri": "\udcff"}))
        obs.rtp(key, {"codec": "PCMU/8000"})
        obs.turn_done(key, TurnRecord(1, 0, 1, committed=1001.0, caller_text="hi"))
        obs.ended(key, 200, "OK", by_bot=False)
    obs.journal.close()
    f = records.read(tmp_path / "calls.jsonl")
    assert sorted(f.calls) == sorted(ids)
    assert all(r["state"] == "closed" and r["remote_uri"] == "\\xff" for r in f.calls.values())
    assert v(m, "voicebot_record_errors_total", stage="turn") == 12  # the writer counted them
    assert v(m, "voicebot_record_errors_total", stage="media") == 12  # rtp_update raised
    assert v(m, "voicebot_record_errors_total", stage="close") == 12
    assert v(m, "voicebot_record_errors_total", stage="open") == 0
    assert v(m, "voicebot_journal_write_errors_total") == 12
    assert v(m, "voicebot_calls_total", outcome="ended_by_caller") == 12
    errors = [x.getMessage() for x in caplog.records if x.levelno >= logging.ERROR]
    # the 1st and the 10th of each kind, never a traceback: no flood
    assert len(errors) == 6, errors
    assert sum("writing a turn line failed" in e for e in errors) == 2
    assert any("(10 times so far)" in e for e in errors)
    assert not [x for x in caplog.records if x.exc_info]


def test_an_odd_info_mapping_or_a_broken_session_does_not_lose_the_record(tmp_path):
    obs, m, _ = _observer(tmp_path)

    class OddInfo(dict):
        def items(self):
            raise RuntimeError("odd")

    class BrokenSession:
        @property
        def turns(self):
            raise RuntimeError("gone")

    cid = obs.answering("call-1", OddInfo(remote_uri="x"))
    obs.media_started("call-1", BrokenSession())
    obs.ended("call-1", 200, "OK", by_bot=False)
    obs.journal.close()
    r = records.read(tmp_path / "calls.jsonl").calls[cid]
    assert r["state"] == "closed" and r["call"] == "call-1"
    assert v(m, "voicebot_record_errors_total", stage="open") == 1
    assert v(m, "voicebot_record_errors_total", stage="turn") == 1


def test_the_log_handler_writes_hostile_text_instead_of_raising(capsys):
    import io

    from gateway.app import setup_logging

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    buf = io.BytesIO()
    stream = io.TextIOWrapper(buf, encoding="ascii", errors="strict", write_through=True)
    try:
        setup_logging("info", stream)
        logging.getLogger("gateway.sip").info("incoming from %s to %s", HOSTILE[0],
                                               HOSTILE[1] + HOSTILE[2] + HOSTILE[4])
        try:
            raise ValueError(HOSTILE[0])
        except ValueError:
            logging.getLogger("gateway.records").exception("boom")
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
    out = buf.getvalue().decode("ascii")
    assert "Logging error" not in capsys.readouterr().err
    assert 'incoming from "Bob \\xff\\xfe\\xc3(" <sip:bob@example.com> to lone \\ud800' in out
    assert "esc \\x1b[2J" in out and "\x1b" not in out and "\\U0001f600" in out
    assert "Traceback" in out and 'ValueError: "Bob \\xff' in out


def test_llm_backend_failures_are_in_the_record_counted_and_shown(tmp_path, capsys):
    from gateway.cli import main

    obs, m, clock = _observer(tmp_path)
    cid = obs.answering("call-1", {"remote_uri": "<sip:alice@example.com>"})
    obs.turn_done("call-1", TurnRecord(2, 0, 1, committed=1001.0, speech_end_time=1000.5,
                                       caller_text="are you open", first_audio=1002.0,
                                       llm_backend="openai", llm_error="broken",
                                       bot_text="Sorry, I can't answer that right now."))
    # turn 4 is reported first before its reply (unanswered at a pause), then answered
    obs.turn_done("call-1", TurnRecord(4, 2, 3, committed=1011.0, speech_end_time=1010.5,
                                       caller_text="and now"))
    for _ in range(2):  # the answered turn reported twice: counted once
        obs.turn_done("call-1", TurnRecord(4, 2, 3, committed=1011.0, speech_end_time=1010.5,
                                           caller_text="and now", first_audio=1012.0,
                                           llm_backend="openai", llm_first_token_seconds=0.3,
                                           bot_text="Yes, until five."))
    obs.ended("call-1", 200, "OK", by_bot=False)
    obs.journal.close()
    turns = records.read(tmp_path / "calls.jsonl").records()[0]["turns"]
    assert [(t["llm_backend"], t["llm_error"]) for t in turns] == [("openai", "broken"),
                                                                   ("openai", None)]
    assert v(m, "voicebot_llm_errors_total", backend="openai", kind="broken") == 1
    assert v(m, "voicebot_llm_errors_total", backend="openai", kind="connect") == 0
    # first-token time only for the turn the server answered, per backend
    assert v(m, "voicebot_llm_first_token_seconds_count", backend="openai") == 1
    assert v(m, "voicebot_llm_first_token_seconds_count", backend="embedded") == 0
    assert main(["calls", "--journal", str(tmp_path / "calls.jsonl"), "show", cid]) == 0
    out = capsys.readouterr().out
    assert "llm error broken (openai; the caller heard the apology)" in out
    assert out.count(" error ") == 1


def test_speech_server_failures_are_in_the_record_and_shown(tmp_path, capsys):
    from gateway.cli import main

    obs, _, clock = _observer(tmp_path)
    cid = obs.answering("call-1", {})
    obs.turn_done("call-1", TurnRecord(1, 0, 1, committed=1001.0, speech_end_time=1000.5,
                                       stt_seconds=0.01, stt_error="refused: tcp://h:1 refused"))
    obs.turn_done("call-1", TurnRecord(2, 0, 1, committed=1003.0, speech_end_time=1002.5,
                                       caller_text="hours?", bot_text="Nine to five.",
                                       tts_error="timeout: no complete answer within 5.0 s"))
    obs.turn_done("call-1", TurnRecord(3, 0, 1, committed=1005.0, speech_end_time=1004.5,
                                       caller_text="thanks", bot_text="Bye."))
    clock["t"] += 5
    obs.ended("call-1", 200, "OK", by_bot=False)
    obs.journal.close()
    turns = records.read(tmp_path / "calls.jsonl").calls[cid]["turns"]
    assert [(t["stt_error"], t["tts_error"]) for t in turns] == [
        ("refused: tcp://h:1 refused", None), (None, "timeout: no complete answer within 5.0 s"),
        (None, None)]
    assert main(["calls", "--journal", str(tmp_path / "calls.jsonl"), "show", cid]) == 0
    out = capsys.readouterr().out
    assert "stt error refused: tcp://h:1 refused" in out
    assert "tts error timeout: no complete answer within 5.0 s" in out
    assert out.count(" error ") == 2
