"""The Wyoming speech exchanges as data, without I/O: the events a request is made of, and
the reading of the server's answer (``TranscriptReader``, ``AudioReader``).

Speech-to-text: ``transcribe``, ``audio-start``, ``audio-chunk``..., ``audio-stop`` ->
``transcript``. Text-to-speech: ``synthesize`` -> ``audio-start``, ``audio-chunk``...,
``audio-stop``; or, where the server's ``info`` says ``supports_synthesize_streaming``,
``synthesize-start``, ``synthesize-chunk``, ``synthesize``, ``synthesize-stop`` -> one
``audio-start``..``audio-stop`` per sentence, then ``synthesize-stopped``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.wyoming.protocol import Event, ProtocolError

CHUNK_BYTES = 16000
"""Audio per ``audio-chunk`` we send: 0.5 s at 16 kHz 16-bit (few headers, no latency cost:
the whole turn is sent at once)."""


class ServerError(Exception):
    """The server answered with an ``error`` event."""


def _check_error(ev: Event) -> None:
    if ev.type == "error":
        text = ev.data.get("text", "")
        code = ev.data.get("code")
        raise ServerError(f"{text} ({code})" if code else str(text))


def transcribe_request(pcm16: bytes, rate: int, language: str = "") -> list[Event]:
    """The events asking for the text of ``pcm16`` (16-bit little-endian mono at ``rate``)."""
    fmt = {"rate": rate, "width": 2, "channels": 1}
    events = [Event("transcribe", {"language": language} if language else {}),
              Event("audio-start", fmt)]
    events += [Event("audio-chunk", fmt, pcm16[i: i + CHUNK_BYTES])
               for i in range(0, len(pcm16), CHUNK_BYTES)]
    events.append(Event("audio-stop"))
    return events


class TranscriptReader:
    """Reads the answer to ``transcribe_request``: ``feed`` each event until it returns True,
    then ``text`` holds the transcript. Streaming servers' ``transcript-start``/``-chunk``/
    ``-stop`` events are passed over: they send the final ``transcript`` as well."""

    def __init__(self) -> None:
        self.text: str | None = None

    def feed(self, ev: Event) -> bool:
        _check_error(ev)
        if ev.type != "transcript":
            return False
        text = ev.data.get("text", "")
        if not isinstance(text, str):
            raise ProtocolError(f"transcript text is {type(text).__name__}, not a string")
        self.text = text.strip()
        return True


def synthesize_request(text: str, streaming: bool, voice: str = "") -> list[Event]:
    """The events asking for the speech of ``text``. Streaming servers expect the plain
    ``synthesize`` inside the stream too (for older clients' sake); they read the chunks."""
    data: dict = {"text": text}
    if voice:
        data["voice"] = {"name": voice}
    if not streaming:
        return [Event("synthesize", data)]
    voice_only = {"voice": data["voice"]} if voice else {}
    return [Event("synthesize-start", voice_only), Event("synthesize-chunk", {"text": text}),
            Event("synthesize", data), Event("synthesize-stop")]


def supports_streaming(info: Event) -> bool:
    """Whether a ``describe`` answer (``info``) offers streaming synthesis."""
    programs = info.data.get("tts") if info.type == "info" else None
    return isinstance(programs, list) and any(
        isinstance(p, dict) and p.get("supports_synthesize_streaming") is True
        for p in programs)


@dataclass
class AudioReader:
    """Reads the answer to ``synthesize_request``: ``feed`` each event until it returns True.
    ``segments`` then holds (rate, int16 mono samples) per ``audio-start``..``audio-stop``."""

    streaming: bool
    segments: list[tuple[int, np.ndarray]] = field(default_factory=list)
    _rate: int | None = None
    _chunks: list[np.ndarray] = field(default_factory=list)

    def feed(self, ev: Event) -> bool:
        _check_error(ev)
        if ev.type == "audio-start":
            if self._rate is not None:
                raise ProtocolError("audio-start inside an audio stream")
            self._rate = _format(ev)[0]
        elif ev.type == "audio-chunk":
            if self._rate is None:
                raise ProtocolError("audio-chunk before audio-start")
            rate, channels = _format(ev)
            if rate != self._rate:
                raise ProtocolError(f"audio-chunk at {rate} Hz in a {self._rate} Hz stream")
            if len(ev.payload) % (2 * channels):
                raise ProtocolError(f"audio-chunk of {len(ev.payload)} bytes is not whole "
                                    f"{channels}-channel 16-bit frames")
            x = np.frombuffer(ev.payload, dtype="<i2")
            if channels > 1:  # mono for the phone line: the first channel
                x = x[::channels]
            self._chunks.append(x)
        elif ev.type == "audio-stop":
            if self._rate is None:  # a server with nothing to say sends the stop alone
                return not self.streaming
            pcm = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
            self.segments.append((self._rate, pcm))
            self._rate, self._chunks = None, []
            return not self.streaming
        elif ev.type == "synthesize-stopped":
            return self.streaming
        return False


def _format(ev: Event) -> tuple[int, int]:
    """(rate, channels) of an audio event, checked: 16-bit only (what Piper sends)."""
    rate, width, channels = (ev.data.get(k) for k in ("rate", "width", "channels"))
    for name, v, lo, hi in (("rate", rate, 4000, 192000), ("width", width, 2, 2),
                            ("channels", channels, 1, 8)):
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise ProtocolError(f"{ev.type} {name} {v!r}: expected {lo}..{hi}")
    return rate, channels  # type: ignore[return-value]
