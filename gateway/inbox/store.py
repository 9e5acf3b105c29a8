"""The business's messages: one JSON Lines file beside the call journal, and each message's
audio as a WAV file in a folder beside it.

Lines (each one ``write()`` to an ``O_APPEND`` file, fsynced, through ``records.encode_line``
so any bytes a caller brings give a valid line):

- ``message`` a message the bot took: who (name, callback number, the From URI), what (the
  message's transcript, the exchange that took it), when, the call record it came from, the
  audio file (relative to this file's folder);
- ``read`` / ``unread`` the business marked a message (the last mark wins).

A message is saved before the bot tells the caller it is: the WAV is written first (to a
temporary name, fsynced, renamed), then the line. A crash between the two leaves an orphan
WAV, never a message line without its audio.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.calls.records import SCHEMA, Journal

MESSAGES_NAME = "messages.jsonl"
AUDIO_FOLDER = "messages"
AUDIO_RATE = 16000


def messages_path(journal: Path) -> Path:
    """The messages file of a call journal: beside it."""
    return journal.parent / MESSAGES_NAME


@dataclass(frozen=True)
class NewMessage:
    call_id: str
    """The call record's id (``voicebot calls show ID``)."""
    caller_uri: str
    name: str
    callback: str
    """Digits only."""
    text: str
    exchange: list[dict[str, str]] = field(default_factory=list)
    """What was said while taking it: {"who": "bot" | "caller", "text": ...}."""
    audio: bytes = b""
    """The caller's speech of the message: 16-bit mono PCM at 16 kHz."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_wav_durably(path: Path, pcm: bytes, rate: int = AUDIO_RATE) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class MessageStore:
    def __init__(self, path: str | Path, wall: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.audio_dir = self.path.parent / AUDIO_FOLDER
        self._wall = wall
        self._journal: Journal | None = None

    def _lines(self) -> Journal:
        if self._journal is None:  # opened at the first message: most calls leave none
            self._journal = Journal(self.path)
        return self._journal

    def save(self, m: NewMessage) -> dict[str, Any]:
        """Write the message (audio, then its line); returns its line. Raises OSError if the
        disk refuses: the bot must then not say the message was taken."""
        ts = self._wall()
        when = dt.datetime.fromtimestamp(ts, dt.UTC)
        mid = f"m-{when:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
        audio = ""
        if m.audio:
            self.audio_dir.mkdir(parents=True, exist_ok=True)
            write_wav_durably(self.audio_dir / f"{mid}.wav", m.audio)
            audio = f"{AUDIO_FOLDER}/{mid}.wav"
        line = {"v": SCHEMA, "type": "message", "id": mid, "call_id": m.call_id,
                "time": when.isoformat(timespec="seconds"), "ts": round(ts, 3),
                "caller": m.caller_uri, "name": m.name, "callback": m.callback,
                "message": m.text, "exchange": list(m.exchange), "audio": audio,
                "audio_seconds": round(len(m.audio) / 2 / AUDIO_RATE, 2)}
        self._lines().write(line)
        return line

    def mark(self, mid: str, read: bool = True) -> None:
        self._lines().write({"v": SCHEMA, "type": "read" if read else "unread", "id": mid,
                             "ts": round(self._wall(), 3)})

    def audio_path(self, message: dict[str, Any]) -> Path | None:
        """The message's WAV file, if it has one and it is inside the audio folder."""
        rel = message.get("audio")
        if not isinstance(rel, str) or not rel:
            return None
        p = (self.path.parent / rel).resolve()
        if p.parent != self.audio_dir.resolve() or not p.is_file():
            return None
        return p

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None


def read_messages(path: str | Path) -> list[dict[str, Any]]:
    """The messages of ``path``, newest first, each with ``read`` (bool). Lines that are not
    records are skipped (a torn last line after a crash)."""
    p = Path(path)
    if not p.exists():
        return []
    found: dict[str, dict[str, Any]] = {}
    with p.open("rb") as f:
        for raw in f:
            try:
                obj = json.loads(raw.decode("utf-8", "replace"))
                kind, mid = obj["type"], obj["id"]
            except (ValueError, KeyError, TypeError):
                continue
            if not isinstance(mid, str):
                continue
            if kind == "message":
                found[mid] = {**obj, "read": found.get(mid, {}).get("read", False)}
            elif kind in ("read", "unread"):
                found.setdefault(mid, {"id": mid, "missing": True})["read"] = kind == "read"
    out = [m for m in found.values() if not m.get("missing")]
    out.sort(key=_when, reverse=True)
    return out


def _when(message: dict[str, Any]) -> float:
    """A message's time for sorting: a line with a mangled "ts" sorts last, never crashes."""
    ts = message.get("ts")
    return float(ts) if isinstance(ts, int | float) and not isinstance(ts, bool) else 0.0
