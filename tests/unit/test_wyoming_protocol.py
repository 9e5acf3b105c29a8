"""Wyoming framing and exchanges without servers: byte round trips against the ``wyoming``
package's own reader and writer, malformed input, the answer readers, and the client's
failure kinds against real loopback sockets that misbehave on purpose."""

from __future__ import annotations

import io
import json
import socket
import threading

import numpy as np
import pytest

from gateway.calls.metrics import SPEECH_SERVICE_ERRORS
from pipeline.tts.wyoming import to_bridge
from pipeline.wyoming import client, messages
from pipeline.wyoming.protocol import (
    MAX_PAYLOAD_BYTES,
    Event,
    EventReader,
    ProtocolError,
    encode,
)

wyoming_event = pytest.importorskip("wyoming.event")


def feed_bytewise(data: bytes) -> list[Event]:
    r = EventReader()
    out = []
    for i in range(len(data)):
        out += r.feed(data[i: i + 1])
    assert r.pending == 0
    return out


def test_our_events_read_by_the_wyoming_package():
    ev = Event("audio-chunk", {"rate": 16000, "width": 2, "channels": 1}, b"\x01\x02" * 300)
    got = wyoming_event.read_event(io.BytesIO(encode(ev) + encode(Event("audio-stop"))))
    assert (got.type, got.data, got.payload) == (ev.type, ev.data, ev.payload)


def test_the_wyoming_package_events_read_by_ours_byte_by_byte():
    buf = io.BytesIO()
    wyoming_event.write_event(wyoming_event.Event("transcript", {"text": "héllo"}), buf)
    wyoming_event.write_event(wyoming_event.Event("audio-chunk", {"rate": 22050},
                                                  payload=b"\x00\x01" * 7), buf)
    wyoming_event.write_event(wyoming_event.Event("audio-stop"), buf)
    evs = feed_bytewise(buf.getvalue())
    assert [(e.type, e.data, e.payload) for e in evs] == [
        ("transcript", {"text": "héllo"}, b""), ("audio-chunk", {"rate": 22050}, b"\x00\x01" * 7),
        ("audio-stop", {}, b"")]


def test_inline_header_data_is_merged_under_the_data_block():
    data = json.dumps({"text": "block"}).encode()
    header = {"type": "transcript", "data": {"text": "inline", "language": "en"},
              "data_length": len(data)}
    (ev,) = EventReader().feed(json.dumps(header).encode() + b"\n" + data)
    assert ev.data == {"text": "block", "language": "en"}


@pytest.mark.parametrize("wire, message", [
    (b"not json\n", "not JSON"),
    (b"[1, 2]\n", "not an object"),
    (b'{"data": {}}\n', "without a type"),
    (b'{"type": "x", "data": [1]}\n', "not an object"),
    (b'{"type": "x", "data_length": -1}\n', "non-negative"),
    (b'{"type": "x", "payload_length": "12"}\n', "non-negative"),
    (b'{"type": "x", "payload_length": %d}\n' % (MAX_PAYLOAD_BYTES + 1), "exceeds"),
    (b'{"type": "x", "data_length": 4}\n[1]\n', "not an object"),
    (b'{"type": "x", "data_length": 3}\n\xff\xfe\xfd', "not JSON"),
    (b"x" * (64 * 1024 + 1), "no end of header"),
])
def test_malformed_input_is_a_protocol_error(wire, message):
    with pytest.raises(ProtocolError, match=message):
        EventReader().feed(wire)


def test_an_event_cut_short_is_not_handed_out():
    wire = encode(Event("audio-chunk", {"rate": 16000}, b"\x00" * 100))
    r = EventReader()
    assert r.feed(wire[:-1]) == []
    assert [e.type for e in r.feed(wire[-1:])] == ["audio-chunk"]


def test_transcribe_request_cuts_the_audio_into_chunks():
    pcm = bytes(range(256)) * 250  # 64000 bytes: 2 s
    evs = messages.transcribe_request(pcm, 16000, "en")
    assert [e.type for e in evs[:2]] == ["transcribe", "audio-start"]
    assert evs[0].data == {"language": "en"} and evs[-1].type == "audio-stop"
    chunks = [e for e in evs if e.type == "audio-chunk"]
    assert len(chunks) == 4 and b"".join(c.payload for c in chunks) == pcm
    assert all(c.data == {"rate": 16000, "width": 2, "channels": 1} for c in chunks)


def test_transcript_reader():
    r = messages.TranscriptReader()
    assert not r.feed(Event("transcript-start"))
    assert r.feed(Event("transcript", {"text": " Hello there. "}))
    assert r.text == "Hello there."
    with pytest.raises(ProtocolError):
        messages.TranscriptReader().feed(Event("transcript", {"text": 5}))
    with pytest.raises(messages.ServerError, match="model gone"):
        messages.TranscriptReader().feed(Event("error", {"text": "model gone"}))


def fmt(rate: int = 22050, channels: int = 1) -> dict:
    return {"rate": rate, "width": 2, "channels": channels}


def test_audio_reader_whole_text_and_streamed():
    r = messages.AudioReader(streaming=False)
    assert not r.feed(Event("audio-start", fmt()))
    assert not r.feed(Event("audio-chunk", fmt(), np.arange(4, dtype="<i2").tobytes()))
    assert not r.feed(Event("audio-chunk", fmt(), np.arange(4, 6, dtype="<i2").tobytes()))
    assert r.feed(Event("audio-stop"))
    assert [(rate, pcm.tolist()) for rate, pcm in r.segments] == [(22050, [0, 1, 2, 3, 4, 5])]

    s = messages.AudioReader(streaming=True)
    for sentence in (1, 2):
        assert not s.feed(Event("audio-start", fmt(16000, 2)))
        stereo = np.array([sentence, -1, sentence, -1], dtype="<i2").tobytes()
        assert not s.feed(Event("audio-chunk", fmt(16000, 2), stereo))
        assert not s.feed(Event("audio-stop"))  # a sentence ends; the stream goes on
    assert s.feed(Event("synthesize-stopped"))
    assert [pcm.tolist() for _, pcm in s.segments] == [[1, 1], [2, 2]]


@pytest.mark.parametrize("events, message", [
    ([Event("audio-chunk", fmt(), b"\0\0")], "before audio-start"),
    ([Event("audio-start", fmt()), Event("audio-start", fmt())], "inside"),
    ([Event("audio-start", fmt()), Event("audio-chunk", fmt(16000), b"\0\0")], "22050 Hz"),
    ([Event("audio-start", {"rate": 22050, "width": 4, "channels": 1})], "width"),
    ([Event("audio-start", {"rate": "fast", "width": 2, "channels": 1})], "rate"),
    ([Event("audio-start", fmt()), Event("audio-chunk", fmt(), b"\0\0\0")], "whole"),
])
def test_audio_reader_refuses_malformed_audio(events, message):
    r = messages.AudioReader(streaming=False)
    with pytest.raises(ProtocolError, match=message):
        for ev in events:
            r.feed(ev)


def test_synthesize_requests_and_streaming_support():
    assert [e.type for e in messages.synthesize_request("Hi.", False)] == ["synthesize"]
    streamed = messages.synthesize_request("Hi.", True, voice="joe")
    assert [e.type for e in streamed] == ["synthesize-start", "synthesize-chunk", "synthesize",
                                          "synthesize-stop"]
    assert streamed[1].data == {"text": "Hi."} and streamed[0].data == {"voice": {"name": "joe"}}
    info = Event("info", {"tts": [{"name": "piper", "supports_synthesize_streaming": True}]})
    assert messages.supports_streaming(info)
    assert not messages.supports_streaming(Event("info", {"tts": [{"name": "old"}]}))
    assert not messages.supports_streaming(Event("info", {"tts": "garbage"}))


def test_to_bridge_resamples_and_scales():
    t = np.arange(22050) / 22050
    tone = (0.5 * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    out = np.frombuffer(to_bridge([(22050, tone), (16000, tone[:160])], volume=0.5), "<i2")
    assert len(out) == 16000 + 160
    assert 0.2 * 32767 < np.abs(out[1000:15000]).max() < 0.3 * 32767


def test_uris():
    assert client.parse_uri("tcp://127.0.0.1:10300").target == ("127.0.0.1", 10300)
    assert client.parse_uri("unix:///run/stt.sock").target == "/run/stt.sock"
    for bad in ("127.0.0.1:10300", "tcp://host", "tcp://host:port", "http://h:1", "unix://"):
        with pytest.raises(ValueError, match="expected"):
            client.parse_uri(bad)


def test_error_kinds_match_the_metric_labels():
    assert client.KINDS == SPEECH_SERVICE_ERRORS


class MisbehavingServer:
    """A loopback server that reads the request and then answers with ``reply`` bytes (None:
    says nothing and keeps the connection open) and closes."""

    def __init__(self, reply: bytes | None) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.uri = f"tcp://127.0.0.1:{self.sock.getsockname()[1]}"
        self.reply = reply
        self.release = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            conn.recv(65536)
            if self.reply is None:
                self.release.wait(5)
            else:
                conn.sendall(self.reply)

    def close(self) -> None:
        self.release.set()
        self.sock.close()


def ask(uri: str, timeout: float = 2.0) -> str:
    r = messages.TranscriptReader()
    client.exchange(client.parse_uri(uri), [Event("transcribe")], r.feed, timeout)
    return r.text or ""


@pytest.mark.parametrize("reply, kind", [
    (None, "timeout"),
    (b"", "closed"),
    (b'{"type": "transcript", "data_length": 50}\n{"te', "closed"),  # died mid-answer
    (b"<html>hello</html>\n", "protocol"),
    (encode(Event("error", {"text": "no model"})), "server"),
])
def test_failures_have_a_kind(reply, kind):
    server = MisbehavingServer(reply)
    try:
        with pytest.raises(client.ServiceError) as e:
            ask(server.uri, timeout=0.3)
        assert e.value.kind == kind
    finally:
        server.close()


def test_nobody_listening_is_refused(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # the port was free a moment ago: nothing listens there now
    with pytest.raises(client.ServiceError) as e:
        ask(f"tcp://127.0.0.1:{port}")
    assert e.value.kind == "refused"
    with pytest.raises(client.ServiceError) as e:
        ask(f"unix://{tmp_path}/none.sock")
    assert e.value.kind == "refused"


def test_a_whole_answer_is_read():
    server = MisbehavingServer(encode(Event("transcript", {"text": "Open at nine."})))
    try:
        assert ask(server.uri) == "Open at nine."
    finally:
        server.close()


class CountingServer:
    """Accepts every connection, reads the request, answers ``reply`` (b"": hangs up)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.uri = f"tcp://127.0.0.1:{self.sock.getsockname()[1]}"
        self.reply = b""
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.recv(65536)
                conn.sendall(self.reply)


@pytest.mark.parametrize("stage", ["stt", "tts"])
def test_a_failing_server_trips_the_breaker_until_a_probe_succeeds(stage):
    from pipeline.stt.base import SttUnavailable
    from pipeline.stt.wyoming import WyomingStt
    from pipeline.tts.base import TtsUnavailable
    from pipeline.tts.wyoming import WyomingTts

    server = CountingServer()
    now = [100.0]
    kinds: list[str] = []
    if stage == "stt":
        backend = WyomingStt(server.uri, timeout=1.0, on_error=kinds.append,
                             clock=lambda: now[0])
        unavailable: type[Exception] = SttUnavailable
        good = encode(Event("transcript", {"text": "Open at nine."}))

        def request():
            return backend.transcribe(np.zeros(16000, np.float32))
    else:
        backend = WyomingTts(server.uri, timeout=1.0, on_error=kinds.append,
                             clock=lambda: now[0])
        backend.streaming = False  # no describe round trip: one connection per clause
        unavailable = TtsUnavailable
        good = b"".join(encode(e) for e in (
            Event("audio-start", {"rate": 16000, "width": 2, "channels": 1}),
            Event("audio-chunk", {"rate": 16000, "width": 2, "channels": 1},
                  np.full(320, 1000, "<i2").tobytes()),
            Event("audio-stop")))

        def request():
            return list(backend.synthesize("Hello."))
    try:
        for _ in range(3):
            with pytest.raises(unavailable):
                request()
        assert server.connections == 3
        with pytest.raises(unavailable) as e:  # open: not asked, the apology comes at once
            request()
        assert e.value.kind == "circuit_open" and server.connections == 3
        now[0] += 5.0  # the cool-down is over: one probe, which fails and re-opens it
        with pytest.raises(unavailable):
            request()
        assert server.connections == 4
        with pytest.raises(unavailable) as e:
            request()
        assert e.value.kind == "circuit_open"
        server.reply = good  # the server is back: the next probe closes the breaker
        now[0] += 5.0
        assert request()
        assert request() and server.connections == 6
        assert kinds == ["closed"] * 3 + ["circuit_open", "closed", "circuit_open"]
    finally:
        server.sock.close()
