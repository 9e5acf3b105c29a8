"""Wyoming (Home Assistant's speech-service protocol) framing, without I/O.

An event on the wire is a JSON header line, then ``data_length`` bytes of JSON (merged over
the header's own ``data``), then ``payload_length`` bytes of payload (audio):

    {"type": "audio-chunk", "version": "1.10.2", "data_length": 45, "payload_length": 2048}\\n
    {"rate": 16000, "width": 2, "channels": 1}<2048 bytes of PCM>

This is the framing of the ``wyoming`` package's ``read_event``/``write_event`` (1.10.2),
written out here so the gateway needs no extra runtime dependency and so a malformed or
oversized frame from the network is a ``ProtocolError``, never a hang or a huge allocation.
``EventReader`` is fed bytes as they arrive and hands out whole events.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

VERSION = "1.10.2"
"""Protocol version we write in headers (the servers ignore it; the package sends its own)."""

MAX_HEADER_BYTES = 64 * 1024
MAX_DATA_BYTES = 1024 * 1024
MAX_PAYLOAD_BYTES = 16 * 1024 * 1024
"""Limits on one event: far above anything a speech server sends (an audio chunk is a few
KB), low enough that a broken peer cannot make us buffer without bound."""


class ProtocolError(ValueError):
    """The peer sent bytes that are not a Wyoming event (or one beyond our limits)."""


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    data: dict[str, Any] = field(default_factory=dict)
    payload: bytes = b""


def encode(event: Event) -> bytes:
    """One event as wire bytes (data as a separate JSON block, as the package writes it)."""
    header: dict[str, Any] = {"type": event.type, "version": VERSION}
    data = json.dumps(event.data, ensure_ascii=False).encode() if event.data else b""
    if data:
        header["data_length"] = len(data)
    if event.payload:
        header["payload_length"] = len(event.payload)
    return json.dumps(header, ensure_ascii=False).encode() + b"\n" + data + event.payload


def _length(header: dict[str, Any], key: str, limit: int) -> int:
    n = header.get(key)
    if n is None:
        return 0
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ProtocolError(f"{key} is {n!r}: expected a non-negative integer")
    if n > limit:
        raise ProtocolError(f"{key} {n} exceeds the limit of {limit} bytes")
    return n


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ProtocolError(f"{what} is not JSON: {e}") from None
    if not isinstance(value, dict):
        raise ProtocolError(f"{what} is a JSON {type(value).__name__}, not an object")
    return value


class EventReader:
    """Incremental decoder: ``feed(bytes)`` returns the events completed by those bytes.

    After a ``ProtocolError`` the stream is out of step: drop the connection."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._header: dict[str, Any] | None = None  # parsed header awaiting its body
        self._body = 0  # data + payload bytes the pending header announced

    @property
    def pending(self) -> int:
        """Bytes received that are not yet part of a whole event."""
        return len(self._buf)

    def feed(self, chunk: bytes) -> list[Event]:
        self._buf += chunk
        events = []
        while (ev := self._next()) is not None:
            events.append(ev)
        return events

    def _next(self) -> Event | None:
        if self._header is None:
            end = self._buf.find(b"\n")
            if end < 0:
                if len(self._buf) > MAX_HEADER_BYTES:
                    raise ProtocolError(f"no end of header line in {len(self._buf)} bytes")
                return None
            if end > MAX_HEADER_BYTES:
                raise ProtocolError(f"header line of {end} bytes exceeds the limit")
            header = _json_object(bytes(self._buf[:end]), "header")
            del self._buf[: end + 1]
            if not isinstance(header.get("type"), str) or not header["type"]:
                raise ProtocolError(f"header without a type: {header!r:.200}")
            if not isinstance(header.get("data", {}), dict):
                raise ProtocolError("header data is not an object")
            self._body = (_length(header, "data_length", MAX_DATA_BYTES)
                          + _length(header, "payload_length", MAX_PAYLOAD_BYTES))
            self._header = header
        if len(self._buf) < self._body:
            return None
        header, self._header = self._header, None
        n_data = header.get("data_length") or 0
        data = dict(header.get("data") or {})
        if n_data:
            data.update(_json_object(bytes(self._buf[:n_data]), "data block"))
        payload = bytes(self._buf[n_data: self._body])
        del self._buf[: self._body]
        return Event(header["type"], data, payload)
