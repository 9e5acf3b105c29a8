"""Whole-call recording: frames paired per media clock tick into one stereo WAV, bounded,
and old recordings swept."""

from __future__ import annotations

import os
import time
import wave

import numpy as np

from gateway.calls.recording import CallRecording, stereo, sweep


def frame(value: int) -> bytes:
    return np.full(320, value, "<i2").tobytes()


def test_each_tick_is_one_stereo_frame_caller_left_bot_right(tmp_path):
    got_in: list[bytes] = []
    rec = CallRecording(tmp_path / "c.wav", max_seconds=60, clock=lambda: 12.5)
    inbound, outbound = rec.tap(got_in.append, lambda: frame(7))
    for i in range(3):  # the bridge takes the bot's frame, then gives the caller's
        assert outbound() == frame(7)
        inbound(frame(100 + i))
    outbound()  # a tick whose caller frame never came: silence on the left
    outbound()
    rec.close()
    rec.join()
    assert got_in == [frame(100), frame(101), frame(102)]  # the session still gets them
    assert rec.started == 12.5 and rec.seconds == 0.08
    with wave.open(str(tmp_path / "c.wav")) as w:
        assert (w.getnchannels(), w.getframerate(), w.getnframes()) == (2, 16000, 4 * 320)
        x = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)
    assert list(x[::320, 0]) == [100, 101, 102, 0] and set(x[:, 1]) == {7}


def test_a_call_longer_than_the_bound_is_recorded_up_to_it(tmp_path):
    rec = CallRecording(tmp_path / "long.wav", max_seconds=0.1)
    inbound, outbound = rec.tap(lambda pcm: None, lambda: frame(1))
    for _ in range(20):
        outbound()
        inbound(frame(2))
    rec.close()
    rec.join()
    with wave.open(str(tmp_path / "long.wav")) as w:
        assert w.getnframes() == 5 * 320


def test_stereo_pads_the_shorter_channel():
    x = np.frombuffer(stereo(np.array([1, 2], "<i2").tobytes(), np.array([3], "<i2").tobytes()),
                      "<i2")
    assert list(x) == [1, 3, 2, 0]


def test_sweep_deletes_only_recordings_past_their_days(tmp_path):
    old, new, other = tmp_path / "a.wav", tmp_path / "b.wav", tmp_path / "notes.txt"
    for f in (old, new, other):
        f.write_bytes(b"x")
    now = time.time()
    os.utime(old, (now - 31 * 86400, now - 31 * 86400))
    os.utime(other, (now - 99 * 86400, now - 99 * 86400))
    assert sweep(tmp_path, 30, now) == 1
    assert not old.exists() and new.exists() and other.exists()
    assert sweep(tmp_path, 0, now + 1e9) == 0  # 0: kept forever


def wsgi_get(app, path: str) -> tuple[str, dict[str, str], bytes]:
    got: dict = {}

    def start(status, headers, exc_info=None):
        got["status"], got["headers"] = status, dict(headers)

    body = b"".join(app({"REQUEST_METHOD": "GET", "PATH_INFO": path,
                         "HTTP_HOST": "127.0.0.1:9480", "REMOTE_ADDR": "127.0.0.1"}, start))
    return got["status"], got["headers"], body


def test_the_call_page_plays_the_recording_and_serves_only_recordings(tmp_path):
    import json

    from gateway.views import calls_web

    (tmp_path / "recordings").mkdir()
    (tmp_path / "recordings" / "c-1.wav").write_bytes(b"RIFF-ish")
    lines = [{"v": 1, "type": "open", "id": "c-1", "start": "2026-12-06T10:00:00"},
             {"v": 1, "type": "media", "id": "c-1", "recording": "recordings/c-1.wav",
              "recording_start_at": 0.42, "recording_seconds": 3.0},
             {"v": 1, "type": "close", "id": "c-1", "outcome": "ended_by_caller"},
             {"v": 1, "type": "open", "id": "c-2", "recording": "../calls.jsonl"},
             {"v": 1, "type": "close", "id": "c-2", "outcome": "ended_by_caller"}]
    journal = tmp_path / "calls.jsonl"
    journal.write_text("".join(json.dumps(x) + "\n" for x in lines))
    app = calls_web.app(journal)
    status, _, page = wsgi_get(app, "/calls/c-1")
    assert status.startswith("200")
    assert b'<audio controls preload="none" src="/calls/c-1/recording.wav">' in page
    assert b"media-src 'self'" in page and b"0.42 s after the answer" in page
    assert wsgi_get(app, "/calls/c-1/recording.wav")[2] == b"RIFF-ish"
    status, _, page = wsgi_get(app, "/calls/c-2")  # a record naming a file elsewhere
    assert b"<audio" not in page and b"media-src" not in page
    assert wsgi_get(app, "/calls/c-2/recording.wav")[0].startswith("404")
