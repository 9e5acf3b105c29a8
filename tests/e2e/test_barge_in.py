"""Barge-in end to end: a real baresip caller cuts into the bot's long answer.

The bot's audio must stop on the caller's recording within the barge-in target, and the
call's record must keep, for the interrupted turn, only the words the caller heard. The call
is recorded ([recording]): the stereo WAV's channels line up with the record's turn times.
(That the next LLM request carries exactly that truncated turn is proven on a scripted
timeline in tests/unit/test_session_timeline.py.)
"""

from __future__ import annotations

import wave

import numpy as np
import pytest

from testbed.harness import (
    DEFAULT_LLM,
    GatewayProcess,
    active_spans,
    baresip_call,
    espeak,
    need,
)

RATE = 16000


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    need("baresip", "espeak-ng", "sox")
    # the default model: the small one sometimes answers "tell me everything" in one short
    # sentence that is over before the caller cuts in
    gw = GatewayProcess(tmp_path_factory.mktemp("gw"), llm=DEFAULT_LLM, extra_toml=(
        '[recording]\nenabled = true\nannouncement = "This call is recorded."\n')).start()
    yield gw
    assert gw.stop() == 0, gw.log()[-3000:]


def test_caller_interrupts_a_long_answer(gateway, tmp_path):
    ask = espeak("Please tell me everything about the clinic: the hours, the address, "
                 "and the prices.", tmp_path / "ask.wav")
    cut = espeak("Sorry, what is the address?", tmp_path / "cut.wav")
    lead = np.zeros(8 * RATE, np.int16)  # the announcement and the greeting
    # up to 1.5 s more if the question sounded unfinished ([turn] max_end_of_turn_silence_ms),
    # ~1.5-3 s to the answer, then some of it
    wait = np.zeros(int(6.0 * RATE), np.int16)
    tail = np.zeros(8 * RATE, np.int16)
    source = np.concatenate([lead, ask, wait, cut, tail]).astype(np.int16)
    result = baresip_call(tmp_path / "caller", gateway.uri, source, RATE)

    sent = active_spans(result.sent, RATE, min_gap_ms=1500)  # the question has pauses
    assert len(sent) == 2, sent
    onset = sent[1][0]
    heard = active_spans(result.heard, RATE, min_gap_ms=150)
    # talking: sounding, or between two clauses of the answer (a pause of < 0.5 s)
    before = [s for s in heard if s[0] < onset]
    assert before and onset - before[-1][1] < 0.5, (
        f"the bot was not talking when the caller cut in: {heard} / {onset}")
    # the end of the last bot audio that had begun by the time a cut was due
    stop = max(s[1] for s in heard if s[0] < onset + 0.25)
    latency = stop - onset
    print(f"barge-in on the caller's recording: {latency * 1000:.0f} ms")
    assert latency <= 0.25, (heard, onset)
    # the bot then answers the interruption
    assert any(s[0] > onset + 0.5 for s in heard)

    (rec,) = gateway.closed_records()
    # the long answer: a reply dropped before any of it played (the caller went on after a
    # pause that sounded final) is no barge-in, and a later short reply may be cut too
    cut_turns = [t for t in rec["turns"] if t.get("interrupted") and t["bot_text"]]
    assert cut_turns, rec["turns"]
    t = cut_turns[0]
    said, heard_words = t["bot_text"].split(), t["heard_text"].split()
    assert 0 < len(heard_words) < len(said), t
    assert said[: len(heard_words)] == heard_words  # a prefix: exactly what was played
    assert t["barge_in_seconds"] is not None and t["barge_in_seconds"] < 0.4
    check_recording(gateway, rec)


def loud_frames(x: np.ndarray) -> np.ndarray:
    """Per 20 ms frame: louder than the port's "loud" (gateway/calls/audio_edges.py)?"""
    from gateway.calls.audio_edges import LOUD_RMS

    n = len(x) // 320
    frames = x[: n * 320].astype(np.float64).reshape(n, 320)
    return np.sqrt((frames ** 2).mean(axis=1)) > LOUD_RMS


def check_recording(gateway, rec) -> None:
    """Both channels on the call's clock: each reply's first sound and each question's last
    within 40 ms of the record's times; the bot channel quiet once a barge-in cut it."""
    wav = gateway.workdir / rec["recording"]
    with wave.open(str(wav)) as w:
        assert (w.getnchannels(), w.getframerate()) == (2, RATE)
        both = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)
    assert abs(len(both) / RATE - rec["recording_seconds"]) < 0.05
    start = rec["recording_start_at"]
    caller, bot = loud_frames(both[:, 0]), loud_frames(both[:, 1])
    at = start + 0.02 * np.arange(len(bot))
    # the first loud frame of each burst of the bot, the last of each burst of the caller
    starts = at[1:][bot[1:] & ~bot[:-1]]
    ends = at[:-1][caller[:-1] & ~caller[1:]]
    checked = []
    for t in rec["turns"]:
        if t["bot_sound_start_at"] is not None:
            nearest = starts[np.argmin(abs(starts - t["bot_sound_start_at"]))]
            checked.append(("bot starts", nearest - t["bot_sound_start_at"]))
        if t["caller_sound_end_at"] is not None:
            nearest = ends[np.argmin(abs(ends - t["caller_sound_end_at"]))]
            checked.append(("caller ends", nearest - t["caller_sound_end_at"]))
    print("recording vs record (ms):", [(k, round(d * 1000)) for k, d in checked])
    assert len(checked) >= 4 and all(abs(d) <= 0.04 for _, d in checked), checked
    cut = next(t for t in rec["turns"] if t.get("interrupted") and t["bot_text"])
    after = [t["bot_sound_start_at"] for t in rec["turns"]
             if (t["bot_sound_start_at"] or 0) > cut["bot_audio_end_at"]]
    quiet = (at > cut["bot_audio_end_at"] + 0.04) & (at < (min(after) if after else 1e9) - 0.04)
    assert quiet.any() and not bot[quiet].any(), "bot audio after the barge-in cut"
    # the announcement came first, on the bot's side only
    from pipeline import models
    from pipeline.stt.whisper import WhisperStt

    opening = both[: int(3.5 * RATE), 1].astype(np.float32) / 32768
    text = WhisperStt(models.resolve().whisper_dir).transcribe(opening).lower()
    assert "recorded" in text, text
