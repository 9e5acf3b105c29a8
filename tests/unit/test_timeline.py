"""``voicebot calls show ID --html FILE``: one call's journal record as a self-contained HTML
timeline page (gateway/views/timeline.py). Pure: journals built with the observer, pages read as
text."""

from __future__ import annotations

import os
import re
import wave
from pathlib import Path

from prometheus_client import CollectorRegistry

from gateway.calls import records
from gateway.calls.metrics import Metrics
from gateway.calls.observer import CallObserver
from gateway.calls.records import Journal
from gateway.views import timeline
from pipeline.turn_record import TurnRecord

WALL0 = 1.7e9  # the observer's wall clock: WALL0 + its monotonic clock


def _observer(tmp_path: Path) -> tuple[CallObserver, dict[str, float]]:
    clock = {"t": 1000.0}
    obs = CallObserver(Metrics(CollectorRegistry(), capacity=4),
                       Journal(tmp_path / "calls.jsonl"), mono=lambda: clock["t"],
                       wall=lambda: WALL0 + clock["t"])
    return obs, clock


def _call(tmp_path: Path) -> dict:
    """A transferred call of 3 turns: a tool call, a barge-in, keys and a transfer."""
    obs, clock = _observer(tmp_path)
    cid = obs.answering("call-1", {"remote_uri": "<sip:alice@example.com>"})
    obs.rtp("call-1", {"codec": "G722/16000", "jb_delay_ms_avg": 40.0})
    t1 = TurnRecord(1, 16000, 40000, committed=1003.0, speech_end_time=1002.5,
                    caller_text="when do you open", stt_seconds=0.2,
                    llm_first_token_seconds=0.15, tts_first_audio_seconds=0.3,
                    first_audio=1003.6, bot_text="At nine.", heard_text="At nine.",
                    facts_note="System note: it is Monday.\nOpen 9-5.",
                    end_of_turn_reason="complete", end_of_turn_score=0.93)
    t1.tools = [{"name": "check_hours", "arguments": {"day": "monday"}, "decision": "run",
                 "outcome": "ran", "ms": 3}]
    obs.turn_done("call-1", t1)
    clock["t"] = 1005.0
    obs.dtmf("call-1", "5", "rfc4733")
    t2 = TurnRecord(2, 80000, 96000, committed=1006.5, speech_end_time=1006.0,
                    caller_text="tell me about prices", stt_seconds=0.1,
                    llm_first_token_seconds=0.2, tts_first_audio_seconds=0.35,
                    first_audio=1007.0, interrupted=True, barge_in_seconds=0.2,
                    bot_text="A check-up costs sixty dollars and a cleaning costs eighty.",
                    heard_text="A check-up costs")
    obs.turn_done("call-1", t2)
    t3 = TurnRecord(3, 136000, 150000, committed=1009.9, speech_end_time=1009.4,
                    caller_text="a person please", first_audio=1010.5,
                    bot_text="Transferring you.")
    obs.turn_done("call-1", t3)
    clock["t"] = 1012.0
    obs.transfer("call-1", "sip:desk@pbx", 486, "failed", "Busy Here")
    obs.transfer("call-1", "sip:desk@pbx", 200, "accepted", "OK")
    obs.mark_outcome("call-1", "transferred")
    obs.ended("call-1", 200, "Normal call clearing", by_bot=True)
    obs.journal.close()
    return records.read(tmp_path / "calls.jsonl").calls[cid]


def classed(page: str, cls: str) -> list[str]:
    """The opening tags whose class list holds ``cls``."""
    return [m.group(0) for m in re.finditer(r"<[a-z]+ [^>]*>", page)
            if re.search(rf'class="(?:[^"]* )?{re.escape(cls)}(?: [^"]*)?"', m.group(0))]


def svg_of(page: str) -> str:
    return re.search(r"<svg.*?</svg>", page, re.S).group(0)


def turns_of(tags: list[str]) -> list[str]:
    return [re.search(r'data-turn="([^"]*)"', t).group(1) for t in tags]


def test_one_bar_per_turn_and_ttfa_labels_are_the_records_values_in_ms(tmp_path):
    rec = _call(tmp_path)
    page = timeline.render(rec)
    svg = svg_of(page)
    assert turns_of(classed(svg, "bar-caller")) == ["1", "2", "3"]
    assert turns_of(classed(svg, "bar-bot")) == ["1", "2", "3"]
    assert len(classed(svg, "lane-caller")) == len(classed(svg, "lane-bot")) == 1
    for t in rec["turns"]:
        label = f"TTFA {t['ttfa_seconds'] * 1000:.0f} ms"
        assert label in svg, label
    assert "TTFA 1140 ms" in svg  # turn 1: 1.1 s at the bridge + the 40 ms jitter buffer
    assert turns_of(classed(svg, "ttfa")) == ["1", "2", "3"]
    # the caller's bar: its length from the VAD samples, ending at the speech end
    assert "caller 1.00-2.50 s" in svg
    # the reply's end is not in the journal: every bot bar says it is estimated
    assert all("estimated" in t for t in classed(svg, "bar-bot"))
    assert turns_of(classed(page, "turn")) == ["1", "2", "3"]
    assert len(classed(page, "transcript")) == 1


def test_pipeline_markers_are_placed_and_estimated_ones_marked(tmp_path):
    page = timeline.render(_call(tmp_path))
    svg = svg_of(page)
    for kind in ("speech-end", "committed", "stt", "llm", "clause", "first-audio"):
        tags = classed(svg, f"mark-{kind}")
        assert turns_of(tags)[:1] == ["1"], kind
        assert all(("estimated" in t) == (kind in ("stt", "llm", "clause")) for t in tags)
    # turn 1: committed at 3.0 s, STT 200 ms -> the reply starts at 3.2 s, LLM +150 ms
    assert "LLM first token (estimated) at 3.35 s" in svg
    # the end-of-turn decision says why it was taken
    assert "end-of-turn 500 ms after the speech end, complete, score 0.93" in svg
    assert "first clause audio ready (estimated) at 3.50 s" in svg


def test_a_reply_prepared_before_the_commit_is_not_drawn_after_its_first_audio():
    """A reply made during a pause and held until the commit (a real turn's figures)."""
    t = {"turn": 4, "speech_end_at": 15.082, "committed_at": 15.602, "first_audio_at": 16.32,
         "stt_seconds": 0.1077, "llm_first_token_seconds": 0.805,
         "tts_first_audio_seconds": 0.9671}
    marks = {m.kind: m.t for m in timeline.place_turns({"turns": [t]})[0].marks}
    assert marks["clause"] <= marks["first-audio"] == 16.32
    assert marks["stt"] < marks["llm"] < marks["clause"]


def test_a_barge_in_shows_what_was_heard_and_what_was_generated(tmp_path):
    rec = _call(tmp_path)
    page = timeline.render(rec)
    assert turns_of(classed(svg_of(page), "barge-in")) == ["2"]
    [block] = re.findall(r'<p class="barge-in block" data-turn="2">.*?</p>', page)
    assert "240 ms" in block  # 200 ms at the bridge + the 40 ms jitter buffer
    assert '<q class="heard">A check-up costs</q>' in block
    assert ('<q class="generated">A check-up costs sixty dollars and a cleaning costs '
            "eighty.</q>") in block
    assert ('<span class="heard">A check-up costs</span>'
            '<span class="unheard"> sixty dollars and a cleaning costs eighty.</span>') in page
    # the bot bar of the interrupted turn ends at the next turn's onset plus the barge-in
    assert "bot 7.00-8.77 s (end estimated: the next turn" in page  # 8.525 + 0.24
    assert page.count('class="barge-in') == 2  # the SVG mark and the transcript block


def test_the_bot_lane_runs_to_the_recorded_end_of_the_reply(tmp_path):
    """With ``bot_audio_end_at`` in the journal, a reply's bar is measured, not estimated:
    from its first audio to the end of its last frame, whether played or cut."""
    obs, clock = _observer(tmp_path)
    cid = obs.answering("call-1", {})
    played = TurnRecord(1, 16000, 40000, committed=1003.0, speech_end_time=1002.5,
                        first_audio=1003.6, audio_end=1005.24, bot_text="At nine.")
    cut = TurnRecord(2, 80000, 96000, committed=1006.5, speech_end_time=1006.0,
                     first_audio=1007.0, audio_end=1007.86, interrupted=True,
                     barge_in_seconds=0.1, bot_text="A check-up costs sixty dollars.",
                     heard_text="A check-up")
    for t in (played, cut):
        obs.turn_done("call-1", t)
    clock["t"] = 1010.0
    obs.ended("call-1", 200, "OK", by_bot=False)
    obs.journal.close()
    rec = records.read(tmp_path / "calls.jsonl").calls[cid]
    svg = svg_of(timeline.render(rec))
    bars = classed(svg, "bar-bot")
    assert turns_of(bars) == ["1", "2"] and not any("estimated" in b for b in bars)
    assert "bot 3.60-5.24 s (end measured: its last frame sent)" in svg
    assert "bot 7.00-7.86 s (end measured: its last frame sent)" in svg
    # an end before the start is a broken record: estimated as for an old journal
    rec["turns"][0]["bot_audio_end_at"] = 1.0
    (turn, _) = timeline.place_turns(rec)
    assert turn.bot.estimated and turn.bot.end > turn.bot.start == 3.6


def test_tools_keys_transfers_and_the_facts_note_are_shown(tmp_path):
    page = timeline.render(_call(tmp_path))
    svg = svg_of(page)
    assert turns_of(classed(svg, "tool")) == ["1"]
    assert "check_hours: run" in svg
    assert "tool check_hours {&#x27;day&#x27;: &#x27;monday&#x27;} -&gt; run, ran (3 ms)" in page
    assert len(classed(svg, "dtmf")) == 1 and "key 5 (rfc4733) at 5.00 s" in svg
    assert len(classed(svg, "transfer")) == 2
    assert "transfer to sip:desk@pbx: failed (486 Busy Here) at 12.00 s" in svg
    assert len(classed(page, "dtmf")) == 2 and len(classed(page, "transfer")) == 4  # + lists
    assert ("<details><summary>facts note</summary><pre>System note: it is Monday.\nOpen 9-5."
            "</pre></details>") in page
    assert "<dd>transferred</dd>" in page and "<dd>200 Normal call clearing</dd>" in page
    assert "<dd>G722/16000</dd>" in page and "<dd>12.0 s</dd>" in page


SCRIPT = '<script>alert("x")</script>'
HOSTILE = SCRIPT + " nul \x00 bad \udcff lone \ud800 bidi \u202e esc \x1b[2J"


def test_hostile_text_is_escaped_clipped_and_the_page_is_utf8(tmp_path):
    obs, clock = _observer(tmp_path)
    key = "call-1"
    cid = obs.answering(key, {"remote_uri": HOSTILE + "x" * 65536, "local_uri": SCRIPT})
    obs.rtp(key, {"codec": SCRIPT, "jb_delay_ms_avg": 0.0})
    obs.dtmf(key, SCRIPT, SCRIPT)
    rec = TurnRecord(1, 0, 16000, committed=1002.0, speech_end_time=1001.5, first_audio=1002.5,
                     caller_text=HOSTILE * 500, bot_text=SCRIPT + " rest", heard_text=SCRIPT,
                     interrupted=True, barge_in_seconds=0.1, facts_note=HOSTILE)
    rec.tools = [{"name": SCRIPT, "arguments": {SCRIPT: HOSTILE}, "decision": SCRIPT,
                  "outcome": SCRIPT, "ms": SCRIPT}]
    obs.turn_done(key, rec)
    obs.transfer(key, SCRIPT, 486, SCRIPT, HOSTILE)
    clock["t"] += 5
    obs.ended(key, 486, SCRIPT, by_bot=True, cause=HOSTILE)
    obs.journal.close()
    page = timeline.render(records.read(tmp_path / "calls.jsonl").calls[cid])
    _assert_safe(page)
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "...[truncated, " in page  # the 64 KB display name is clipped
    assert len(page) < 120_000


def test_an_old_unclean_record_renders_safely():
    """A hand-edited journal: lone surrogates and controls decoded from JSON escapes, numbers
    where text was expected and the other way round, absurd times."""
    f = records.fold([
        b'{"type":"open","id":"<script>\\u0000","call":"\\udcff","remote_uri":"\\ud800<b>"}',
        b'{"type":"turn","id":"<script>\\u0000","turn":{"turn":"<i>","caller_text":"\\udcfe",'
        b'"speech_end_at":"soon","ttfa_seconds":"fast","first_audio_at":1e308,'
        b'"tools":["odd",{"name":"\\u0000<script>"}],"interrupted":true,"heard_text":7}}',
        b'{"type":"close","id":"<script>\\u0000","duration_seconds":-4,"dtmf":["x",{"t":"y"}],'
        b'"transfers":"none","rtp":"?","sip_status":"<script>","turn_count":"many"}',
    ])
    page = timeline.render(f.records()[0])
    _assert_safe(page)
    assert "\\ud800&lt;b&gt;" in page


def _assert_safe(page: str) -> None:
    page.encode("utf-8")  # strict: no lone surrogate left
    assert "<script" not in page.lower()
    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e]", page)
    _assert_self_contained(page)


def _assert_self_contained(page: str) -> None:
    assert not re.search(r"(?i)https?:|//[a-z0-9]|\bsrc=|@import|url\(", page)
    assert "default-src 'none'" in page  # and a browser is told to fetch nothing


def test_an_open_call_an_empty_call_and_turns_without_timings_render(tmp_path):
    f = records.fold([
        b'{"type":"open","id":"a","call":"call-1","start":"2026-01-01T00:00:00.000+00:00"}',
        b'{"type":"open","id":"b"}', b'{"type":"close","id":"b","outcome":"ended_by_caller"}',
        b'{"type":"open","id":"c"}', b'{"type":"turn","id":"c","turn":{"turn":1}}',
        b'{"type":"turn","id":"c","turn":{"turn":2,"caller_text":"hi","committed_at":3.0}}',
    ])
    opened, empty, bare = (timeline.render(f.calls[k]) for k in "abc")
    assert "open: no close line" in opened and "No turns." in opened
    assert "<dd>ended_by_caller</dd>" in empty and not classed(svg_of(empty), "bar-caller")
    assert turns_of(classed(bare, "turn")) == ["1", "2"]
    assert not classed(svg_of(bare), "bar-caller") and not classed(svg_of(bare), "ttfa")
    assert turns_of(classed(bare, "mark-committed")) == ["2"]
    for page in (opened, empty, bare, timeline.render({})):
        _assert_safe(page)


def _wav(path: Path, seconds: float, mtime: float) -> None:
    n = int(seconds * 16000)
    pcm = b"".join(int(8000 * ((i // 40) % 2 * 2 - 1) * (i / n)).to_bytes(2, "little",
                                                                          signed=True)
                   for i in range(n))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm)
    os.utime(path, (mtime, mtime))


def test_a_kept_turn_wav_is_drawn_as_a_waveform_in_its_caller_bar(tmp_path):
    rec = _call(tmp_path)
    audio = tmp_path / "audio"
    audio.mkdir()
    during = rec["start_ts"] + 3.0
    _wav(audio / "call-1-turn1.wav", 1.9, during)
    _wav(audio / "call-1-turn2.wav", 0.5, rec["start_ts"] - 3600)  # an earlier call-1's
    (audio / "call-1-turn3.wav").write_bytes(b"RIFF not a wav")
    os.utime(audio / "call-1-turn3.wav", (during, during))
    waves = timeline.turn_waveforms(rec, audio)
    assert list(waves) == [1]
    w = waves[1]
    assert w.seconds == 1.9 and len(w.lows) == len(w.highs) == 190
    assert min(w.lows) < -0.2 and max(w.highs) > 0.2
    page = timeline.render(rec, waves)
    [path] = classed(svg_of(page), "waveform")
    assert 'data-turn="1"' in path and re.search(r' d="M[0-9.]+,[0-9.]+ L', path)
    # it ends at the speech end (2.5 s) plus the 100 ms the WAV keeps after it
    x = timeline.Axis.of(timeline.call_seconds(rec)).x
    assert f' d="M{x(2.6 - 1.9):.1f},' in path
    assert timeline.turn_waveforms(dict(rec, call="../audio/call-1"), audio) == {}
    assert timeline.turn_waveforms(rec, tmp_path / "missing") == {}


def test_the_wav_margins_are_the_transcribers():
    src = (Path(__file__).resolve().parents[2] / "pipeline/stt/transcriber.py").read_text()
    pre = int(re.search(r"^PRE_ROLL = (\d+)", src, re.M).group(1))
    post = int(re.search(r"^POST_ROLL = (\d+)", src, re.M).group(1))
    assert (pre / 16000, post / 16000) == (timeline.PRE_ROLL_S, timeline.POST_ROLL_S)


def test_cli_writes_the_page(tmp_path, capsys):
    from gateway.cli import main

    rec = _call(tmp_path)
    journal = str(tmp_path / "calls.jsonl")
    out = tmp_path / "call.html"
    assert main(["calls", "--journal", journal, "show", rec["id"][:9], "--html", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and f"Call {rec['id']}" in page
    assert turns_of(classed(page, "bar-caller")) == ["1", "2", "3"]
    _assert_self_contained(page)
    assert "wrote" in capsys.readouterr().err
    audio = tmp_path / "audio"
    audio.mkdir()
    _wav(audio / "call-1-turn2.wav", 1.0, rec["start_ts"] + 7.0)
    assert main(["calls", "--journal", journal, "show", "call-1", "--html", str(out),
                 "--audio-dir", str(audio)]) == 0
    assert turns_of(classed(out.read_text(), "waveform")) == ["2"]
    assert "1 turn waveform(s)" in capsys.readouterr().err
    assert main(["calls", "--journal", journal, "show", "call-1", "--audio-dir", "x"]) == 2
    assert main(["calls", "--journal", journal, "show", "nope", "--html", str(out)]) == 1
    assert main(["calls", "--journal", journal, "show", "call-1", "--html",
                 str(tmp_path / "no" / "such" / "dir.html")]) == 1
