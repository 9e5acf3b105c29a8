"""The call journal: one JSON Lines file, append-only, a complete record of every call.

Each call is a few lines sharing its ``id``, folded together by readers:

- ``open``  written (flushed and fsynced) *before* the 200 OK: no accepted call can be missing;
- ``media`` codec and remote RTP address, once the first stream statistics are in;
- ``turn``  one per caller turn (transcripts, stage timings, TTFA, barge-in, tool calls), as it
  ends;
- ``close`` end time, outcome, SIP status, RTP statistics, the keypad digits received (``dtmf``:
  digit, method, seconds since the answer) and the blind transfers tried (``transfers``:
  target, SIP status, outcome accepted/failed/timeout, reason).

A line is one ``write()`` to an ``O_APPEND`` file, so a crash can leave at most one torn last
line: readers skip and report unparsable lines, and the writer starts a fresh line after one.
After a crash or ``kill -9``, the next start closes the records whose process is gone with
outcome ``aborted`` (the owner is the pid plus its start time, so several gateways may share a
journal and a reused pid is not mistaken for the owner).

Records hold no secrets: no SIP credentials or headers beyond the URIs and the Call-ID.

Records are total over any text a caller sends. Every line goes through ``encode_line`` /
``jsonable``: each string is escaped (``clean_text``: control characters, bidi overrides and
lone surrogates become backslash escapes, a byte that was not UTF-8 as ``\\xNN``) and cut to
``TEXT_LIMIT`` characters with a visible ``...[truncated, N chars]``, so a line is always valid
UTF-8 JSON of bounded size. A failure in the records path is counted
(``voicebot_record_errors_total{stage}``) and logged without a flood, and never costs an
answered call its open or close line (``CallObserver``).

This module writes, reads, folds and recovers the journal; ``gateway/calls/observer.py`` turns a
call's life into its lines, ``gateway/views/records_view.py`` shows records in a terminal.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import math
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SCHEMA = 1
STATE_ENV = "VOICEBOT_STATE"
JOURNAL_NAME = "calls.jsonl"
# --- text that is safe to write ----------------------------------------------------------------

TEXT_LIMIT = 1024
"""The longest string a journal line holds (display names, URIs, reasons, targets...)."""
LONG_TEXT_LIMIT = 8192
"""The longest transcript or reply text (``LONG_TEXT_KEYS``) a journal line holds."""
LONG_TEXT_KEYS = frozenset({"caller_text", "bot_text", "heard_text"})
KEY_LIMIT = 64
ITEM_LIMIT = 1000
"""The most entries a list or mapping of a journal line keeps (the rest is counted)."""
DEPTH_LIMIT = 16

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
                     "\ud800-\udfff]")
"""What is escaped: C0 and C1 controls, DEL, line and paragraph separators, bidirectional
overrides (they reorder a terminal's text), and lone surrogates (not encodable as UTF-8)."""


def _escape(ch: str) -> str:
    o = ord(ch)
    if 0xDC80 <= o <= 0xDCFF:  # a byte that was not UTF-8, decoded with surrogateescape
        return f"\\x{o - 0xDC00:02x}"
    if o < 0x20 or o == 0x7F:
        return f"\\x{o:02x}"
    return f"\\u{o:04x}"


def escape_text(s: str) -> str:
    """``s`` with every control character, lone surrogate and bidi override written as a
    backslash escape: invalid bytes (surrogateescape) as ``\\xNN``, so the original bytes can
    be read back; other surrogates and separators as ``\\uXXXX``. The result is printable and
    encodes as UTF-8. Backslashes already in ``s`` are left alone (readability first)."""
    return _UNSAFE.sub(lambda m: _escape(m.group()), s) if _UNSAFE.search(s) else s


def _text_of(x: Any) -> str:
    if isinstance(x, str):
        return x
    if isinstance(x, bytes | bytearray | memoryview):
        return bytes(x).decode("utf-8", "surrogateescape")
    for show in (str, repr):
        try:
            return show(x)
        except Exception:  # noqa: BLE001, S112 - a broken __str__: try the next
            continue
    return f"<unprintable {type(x).__name__}>"


def _escaped_prefix(s: str, budget: int) -> tuple[str, bool]:
    """The escaped text of the longest prefix of ``s`` that fits in ``budget`` characters
    (never half an escape), and whether anything was left out."""
    parts: list[str] = []
    used = pos = 0
    for m in _UNSAFE.finditer(s):
        chunk = s[pos:m.start()]
        if used + len(chunk) > budget:
            parts.append(chunk[:budget - used])
            return "".join(parts), True
        parts.append(chunk)
        used += len(chunk)
        esc = _escape(m.group())
        if used + len(esc) > budget:
            return "".join(parts), True
        parts.append(esc)
        used += len(esc)
        pos = m.end()
    rest = s[pos:]
    if used + len(rest) > budget:
        parts.append(rest[:budget - used])
        return "".join(parts), True
    parts.append(rest)
    return "".join(parts), False


def clean_text(x: Any, limit: int = TEXT_LIMIT) -> str:
    """``x`` as text that is safe to write anywhere: escaped (``escape_text``) and at most
    ``limit`` characters; a longer text is cut and ends with ``...[truncated, N chars]``, N
    its original length (just ``...`` when ``limit`` leaves no room for that)."""
    s = _text_of(x)
    if len(s) <= limit and not _UNSAFE.search(s):
        return s
    text, cut = _escaped_prefix(s, limit)
    if not cut:
        return text
    marker = f"...[truncated, {len(s)} chars]"
    if limit < len(marker) + 8:  # no room to say how long it was
        marker = "..."
    return _escaped_prefix(s, max(0, limit - len(marker)))[0] + marker


def jsonable(x: Any, limit: int = TEXT_LIMIT, _depth: int = 0) -> Any:
    """``x`` as plain JSON data that always encodes as valid UTF-8 JSON: every string through
    ``clean_text`` (keys too), bytes decoded with surrogateescape first, non-finite floats as
    null, enums, paths and other objects as their ``str``, lists and mappings cut at
    ``ITEM_LIMIT`` entries and ``DEPTH_LIMIT`` levels. Applied to every journal line."""
    if x is None or isinstance(x, bool | str):
        return x if not isinstance(x, str) else clean_text(x, limit)
    if isinstance(x, int):
        return int(x) if x.bit_length() <= 64 else clean_text(_int_text(x))
    if isinstance(x, float):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, bytes | bytearray | memoryview):
        return clean_text(x, limit)
    if _depth >= DEPTH_LIMIT:
        return "...[nested too deep]"
    if isinstance(x, Mapping):
        out: dict[str, Any] = {}
        for i, (k, v) in enumerate(list(x.items())):
            if i >= ITEM_LIMIT:
                out["..."] = f"[{len(x) - ITEM_LIMIT} more entries]"
                break
            key = clean_text(k, KEY_LIMIT)
            out[key] = jsonable(v, LONG_TEXT_LIMIT if key in LONG_TEXT_KEYS else TEXT_LIMIT,
                                _depth + 1)
        return out
    if isinstance(x, list | tuple | set | frozenset):
        items = list(x)
        out_list = [jsonable(v, TEXT_LIMIT, _depth + 1) for v in items[:ITEM_LIMIT]]
        if len(items) > ITEM_LIMIT:
            out_list.append(f"...[{len(items) - ITEM_LIMIT} more entries]")
        return out_list
    return clean_text(x, limit)


def _int_text(x: int) -> str:
    try:
        return str(x)
    except ValueError:  # more digits than int-to-str allows
        return f"<integer of {x.bit_length()} bits>"


def encode_line(obj: Mapping[str, Any]) -> bytes:
    """One journal line: ``obj`` through ``jsonable``, as compact JSON in UTF-8 with its line
    end. Total: whatever ``obj`` holds, a line comes out (at worst its type and id and what
    went wrong)."""
    try:
        text = json.dumps(jsonable(obj), separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False)
    except Exception as e:  # noqa: BLE001 - e.g. a mapping that changes while it is read
        def get(k: str) -> Any:
            try:
                return clean_text(obj.get(k), TEXT_LIMIT)
            except Exception:  # noqa: BLE001
                return None
        text = json.dumps({"v": SCHEMA, "type": get("type"), "id": get("id"),
                           "record_error": clean_text(f"{type(e).__name__}: {e}")},
                          separators=(",", ":"), ensure_ascii=False)
    return (text + "\n").encode("utf-8")


class FailureLog:
    """Logs a recurring failure without a flood: the 1st, 10th, 100th... time per kind, one
    line each, no traceback."""

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self._log, self._what = logger, what
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def note(self, kind: str, e: BaseException) -> None:
        with self._lock:
            n = self._counts[kind] = self._counts.get(kind, 0) + 1
        if str(n).rstrip("0") == "1":  # 1, 10, 100...
            self._log.error("%s: %s failed (%d time%s so far): %s: %s", self._what, kind, n,
                            "" if n == 1 else "s", type(e).__name__, clean_text(e, 300))


def journal_path(configured: str = "", env: Mapping[str, str] | None = None) -> Path:
    """``configured`` if set, else ``$VOICEBOT_STATE/calls.jsonl``, else ``var/calls.jsonl``
    (relative paths are relative to the working directory)."""
    env = os.environ if env is None else env
    if configured:
        return Path(configured)
    state = env.get(STATE_ENV, "")
    return Path(state or "var") / JOURNAL_NAME


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds")


def process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (None: no such process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return None


def owner_alive(pid: Any, start: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    now = process_start(pid)
    return now is not None and (start is None or now == start)


# --- writing -----------------------------------------------------------------------------------

class Journal:
    """Appends JSON lines durably. ``write`` returns once the line is on disk; ``submit``
    queues it for a writer thread (for threads that must not wait on the disk). Every line
    goes through ``encode_line``: whatever text a call brings, the line is valid UTF-8 JSON."""

    def __init__(self, path: str | Path,
                 on_error: Callable[[BaseException], None] = lambda e: None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._lock = threading.Lock()
        self._on_error = on_error
        self._failures = FailureLog(log, f"journal {self.path}")
        self._queue: queue.SimpleQueue[tuple[dict, Callable[[BaseException], None] | None]
                                       | None] = queue.SimpleQueue()
        self._start_fresh_line()
        self._thread = threading.Thread(target=self._drain, name="journal", daemon=True)
        self._thread.start()

    def _start_fresh_line(self) -> None:
        """After a torn last line (a crash mid-write), start on a new line."""
        with open(self.path, "rb") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() == 0:
                return
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                os.write(self._fd, b"\n")
                os.fsync(self._fd)

    def write(self, obj: Mapping[str, Any]) -> None:
        data = encode_line(obj)
        with self._lock:
            os.write(self._fd, data)  # O_APPEND: one write, one line, never interleaved
            os.fsync(self._fd)

    def submit(self, obj: Mapping[str, Any],
               on_error: Callable[[BaseException], None] | None = None) -> None:
        """Queue ``obj``; if writing it fails, the writer logs it (without a flood), calls the
        journal's ``on_error`` and this line's ``on_error``."""
        self._queue.put((dict(obj), on_error))

    def _drain(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            obj, on_error = item
            try:
                self.write(obj)
            except Exception as e:  # noqa: BLE001 - counted and logged; calls go on
                self._failures.note(f"writing a {obj.get('type', '?')} line", e)
                for cb in (self._on_error, on_error):
                    if cb is not None:
                        with contextlib.suppress(Exception):
                            cb(e)

    def close(self) -> None:
        """Write what is queued, then close."""
        self._queue.put(None)
        self._thread.join(10.0)
        with self._lock:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1


# --- reading -----------------------------------------------------------------------------------

@dataclass
class Folded:
    calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Records by id, in the order their first line appears."""
    torn: list[tuple[int, str]] = field(default_factory=list)
    """(line number, start of the text) of lines that could not be parsed (skipped)."""

    def records(self) -> list[dict[str, Any]]:
        return list(self.calls.values())


def _new_record(cid: str) -> dict[str, Any]:
    return {"id": cid, "state": "open", "turns": []}


def fold(lines: Iterable[bytes | str]) -> Folded:
    """Fold journal lines into one record per call. Unparsable lines are skipped and reported;
    a turn written twice (e.g. at the call's end, then late from its pipeline) keeps the last."""
    out = Folded()
    turns: dict[str, dict[int, dict]] = {}
    for n, raw in enumerate(lines, 1):
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
            kind, cid = obj["type"], obj["id"]
            if not isinstance(obj, dict) or not isinstance(cid, str):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            out.torn.append((n, text[:80]))
            continue
        rec = out.calls.get(cid)
        if rec is None:
            rec = out.calls[cid] = _new_record(cid)
        body = {k: v for k, v in obj.items() if k not in ("type", "v")}
        if kind == "open" or kind == "media":
            rec.update({k: v for k, v in body.items() if k not in ("state", "turns")})
        elif kind == "turn":
            t = body.get("turn") or {}
            try:  # one bad line must not stop the gateway from starting (recovery reads all)
                if not isinstance(t, dict):
                    raise TypeError
                no = int(t.get("turn", len(turns.get(cid, {})) + 1))
            except (TypeError, ValueError):
                out.torn.append((n, text[:80]))
                continue
            turns.setdefault(cid, {})[no] = t
        elif kind == "close":
            rec.update({k: v for k, v in body.items() if k != "turns"})
            rec["state"] = "closed"
        elif kind == "message":  # a message the caller left (the close line lists them too)
            ids = rec.setdefault("messages", [])
            if body.get("message_id") not in ids:
                ids.append(body.get("message_id"))
        else:
            out.torn.append((n, text[:80]))
    for cid, by_no in turns.items():
        out.calls[cid]["turns"] = [by_no[k] for k in sorted(by_no)]
    return out


def read(path: str | Path) -> Folded:
    p = Path(path)
    if not p.exists():
        return Folded()
    with p.open("rb") as f:
        return fold(f)


def recover(path: str | Path, alive: Callable[[Any, Any], bool] = owner_alive,
            now: Callable[[], float] = time.time) -> tuple[list[str], Folded]:
    """Close the open records whose gateway process is gone, as ``aborted``.
    Returns the ids closed, and the fold (to report torn lines)."""
    folded = read(path)
    stale = [r for r in folded.records()
             if r["state"] == "open" and not alive(r.get("pid"), r.get("pid_start"))]
    if not stale:
        return [], folded
    j = Journal(path)
    try:
        ts = now()
        for r in stale:
            t0 = r.get("start_ts") or 0.0
            last = t0 + max([0.0] + [t.get("first_audio_at") or t.get("committed_at") or 0.0
                                     for t in r["turns"]])
            j.write({"v": SCHEMA, "type": "close", "id": r["id"], "outcome": "aborted",
                     "end": _iso(ts), "end_ts": ts, "last_seen_ts": round(last, 3),
                     "end_cause": "the gateway process ended during the call "
                                  "(closed at the next start)"})
    finally:
        j.close()
    return [r["id"] for r in stale], folded
