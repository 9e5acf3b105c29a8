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
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import logging
import math
import os
import queue
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.metrics import DTMF_METHODS, TRANSFER_OUTCOMES, AudioEdges, Metrics

log = logging.getLogger(__name__)

SCHEMA = 1
STATE_ENV = "VOICEBOT_STATE"
JOURNAL_NAME = "calls.jsonl"
OUTBOUND_WIRE_SECONDS = 0.0
"""From a frame handed out at the port to its RTP packet on the wire. pjmedia's conference
bridge reads every port and then writes every port within one clock tick, and the stream
encodes and sends a 20 ms frame at once: the reply's first frame leaves in the tick that took
it (measured: adding 20 ms here put the gateway's TTFA ~45 ms above the caller's)."""


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


# --- from a call to its record -------------------------------------------------------------------

def _num(x: Any, nd: int = 4) -> float | None:
    return None if x is None else round(float(x), nd)


def audible_edges(rec: Any, edges: AudioEdges | None) -> tuple[float | None, float | None]:
    """(arrival of the caller's last loud frame, hand-out of the reply's first loud frame)
    around the times the pipeline noted, or None where the port saw nothing loud."""
    end_t = getattr(rec, "speech_end_time", 0.0) or 0.0
    first = getattr(rec, "first_audio", None)
    if edges is None or not end_t:
        return None, None
    # Silero's end of speech comes ~100 ms after the last sound: look a little past it too
    last_in = edges.last_loud_in(not_after=end_t + 0.06, not_before=end_t - 1.5)
    if first is None:
        return last_in, None
    # first_audio is stamped on the listener thread, a little after the frame left
    first_out = edges.first_loud_out(not_before=max(last_in or end_t, first - 0.2),
                                     not_after=first + 2.0)
    return last_in, first_out


def turn_entry(rec: Any, t0: float, jb_delay_ms: float,
               edges: AudioEdges | None = None) -> dict[str, Any]:
    """A pipeline ``TurnRecord`` as journal data. Times ``*_at`` are seconds since the call was
    answered. TTFA is reported on the wire: from the caller's last loud frame (its arrival at
    the port less the inbound jitter-buffer delay) to the reply's first loud frame (handed out
    at the port, plus one frame to the wire); when the port saw no loud frame there, from the
    pipeline's own marks (VAD end of speech, first reply frame). Barge-in latency: the
    pipeline's figure plus the same two wire delays. The pipeline's figures are kept too."""
    g = getattr

    def at(t: Any) -> float | None:
        return None if not t else round(t - t0, 3)

    jb = jb_delay_ms / 1000.0
    wire = jb + OUTBOUND_WIRE_SECONDS
    ttfa_bridge = g(rec, "ttfa_seconds", None)
    last_in, first_out = audible_edges(rec, edges)
    ttfa = None if ttfa_bridge is None else ttfa_bridge + wire
    if ttfa is not None and last_in is not None and first_out is not None:
        ttfa = (first_out + OUTBOUND_WIRE_SECONDS) - (last_in - jb)
    barge_bridge = g(rec, "barge_in_seconds", None)
    eot = g(rec, "end_of_turn_seconds", None) if g(rec, "speech_end_time", 0.0) else None
    return {
        "turn": g(rec, "turn_id", 0),
        "caller_text": g(rec, "caller_text", ""),
        "bot_text": g(rec, "bot_text", ""),
        "heard_text": g(rec, "heard_text", ""),
        "interrupted": bool(g(rec, "interrupted", False)),
        "speech_start_sample": g(rec, "speech_start_sample", None),
        "speech_end_sample": g(rec, "speech_end_sample", None),
        "speech_end_at": at(g(rec, "speech_end_time", None)),
        "committed_at": at(g(rec, "committed", None)),
        "first_audio_at": at(g(rec, "first_audio", None)),
        "end_of_turn_seconds": _num(eot),
        "stt_seconds": _num(g(rec, "stt_seconds", None)),
        "llm_first_token_seconds": _num(g(rec, "llm_first_token_seconds", None)),
        "tts_first_audio_seconds": _num(g(rec, "tts_first_audio_seconds", None)),
        "ttfa_bridge_seconds": _num(ttfa_bridge),
        "ttfa_seconds": _num(ttfa),
        "caller_sound_end_at": at(last_in),
        "bot_sound_start_at": at(first_out),
        "barge_in_bridge_seconds": _num(barge_bridge),
        "barge_in_seconds": None if barge_bridge is None else _num(barge_bridge + wire),
        "jb_delay_ms": round(jb_delay_ms, 1),
        "tools": jsonable(list(g(rec, "tools", None) or [])),
    }


def turn_result(entry: Mapping[str, Any]) -> str:
    if entry["interrupted"] and entry["barge_in_seconds"] is not None:
        return "interrupted"
    return "answered" if entry["first_audio_at"] is not None else "unanswered"


_STAGE_OF = {"answering": "open", "rtp": "media", "turn_done": "turn", "ended": "close",
             "close_all": "close"}
"""The ``voicebot_record_errors_total`` stage of an observer method (the others: observer)."""


def _safe(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Count and log (without a flood) instead of raising: observing must never end a call."""
    @functools.wraps(fn)
    def wrapper(self: CallObserver, *a: Any, **kw: Any) -> Any:
        try:
            return fn(self, *a, **kw)
        except Exception as e:  # noqa: BLE001
            self._failed(_STAGE_OF.get(fn.__name__, "observer"), e, fn.__name__)
            return None
    return wrapper


@dataclass
class _Live:
    id: str
    t0: float  # monotonic at answer
    ts0: float  # wall clock at answer
    session: Any = None
    edges: AudioEdges | None = None
    rtp: dict[str, Any] = field(default_factory=dict)
    media_written: bool = False
    reported: set[int] = field(default_factory=set)
    outcome: str | None = None  # set by whoever knows better than the SIP state (failure...)
    barge_ins: int = 0
    dtmf: list[dict[str, Any]] = field(default_factory=list)
    transfers: list[dict[str, Any]] = field(default_factory=list)
    open_line: dict[str, Any] | None = None
    open_written: bool = False  # else the close tries the open line again


class CallObserver:
    """What the SIP layer tells about calls, turned into metrics and journal lines.

    Every method is safe to call from any thread and never raises: observing must not end
    a call (an exception in a session's listener thread would). A failure is counted in
    ``voicebot_record_errors_total{stage}`` and logged (the 1st, 10th, 100th... time), and
    an answered call's record is still opened and closed: the call is known as soon as
    ``answering`` starts, the close writes the open line again if it was not written, and
    the close line is written whatever failed before it.
    """

    def __init__(self, metrics: Metrics, journal: Journal | None = None,
                 mono: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.metrics = metrics
        self.journal = journal
        self._mono, self._wall = mono, wall
        self._calls: dict[str, _Live] = {}
        self._closed: dict[str, _Live] = {}
        """Recently closed calls: a turn whose transcript comes after the close (the caller
        hung up while it was being transcribed) is still written (keep the last few)."""
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._pid_start = process_start(self._pid)
        self._failures = FailureLog(log, "call records")

    def _failed(self, stage: str, e: BaseException, what: str = "", logged: bool = False) -> None:
        """A step of the records path failed: count it by stage, log it without a flood."""
        with contextlib.suppress(Exception):
            self.metrics.record_errors.labels(stage).inc()
        if not logged:
            with contextlib.suppress(Exception):
                self._failures.note(what or stage, e)

    def _emit(self, obj: dict[str, Any], stage: str, durable_now: bool = False) -> bool:
        """Write one journal line (``encode_line`` makes any text in it safe); never raises.
        False when it could not be written now (counted and logged)."""
        if self.journal is None:
            return True
        obj = {"v": SCHEMA, **obj}
        try:
            if durable_now:
                self.journal.write(obj)
            else:  # the writer thread logs a failure; the line's stage is counted here
                self.journal.submit(obj, on_error=lambda e: self._failed(stage, e, logged=True))
            return True
        except Exception as e:  # noqa: BLE001 - the disk refused: the call goes on
            with contextlib.suppress(Exception):
                self.metrics.journal_errors.inc()
            self._failed(stage, e, f"writing the {stage} line")
            return False

    # --- call life -------------------------------------------------------------------------

    @_safe
    def answering(self, key: str, info: Mapping[str, Any]) -> str:
        """About to send 200 OK: the open line is on disk when this returns."""
        ts = self._wall()
        live = _Live(f"{key}-{secrets.token_hex(3)}", self._mono(), ts)
        with self._lock:  # first: whatever fails below, ended() still closes this record
            self._calls[key] = live
            self.metrics.active_calls.set(len(self._calls))
        self.metrics.calls.labels("answered").inc()
        line = {"type": "open", "id": live.id, "call": key, "start": _iso(ts),
                "start_ts": round(ts, 3), "pid": self._pid, "pid_start": self._pid_start}
        try:
            for k, val in info.items():
                line.setdefault(k, val)
        except Exception as e:  # noqa: BLE001 - an odd info mapping: open without it
            self._failed("open", e, "reading the call's info")
        live.open_line = line
        live.open_written = self._emit(line, "open", durable_now=True)
        return live.id

    @_safe
    def refused(self, outcome: str) -> None:
        self.metrics.calls.labels(outcome).inc()

    def media_started(self, key: str, session: Any) -> AudioEdges:
        """Media is up: returns the call's ``AudioEdges`` (wrap the port's callbacks in it)."""
        edges = AudioEdges()
        live = self._calls.get(key)
        if live is not None:
            live.session, live.edges = session, edges
        return edges

    @_safe
    def rtp(self, key: str, rtp: Mapping[str, Any]) -> None:
        live = self._calls.get(key)
        if live is None or not rtp:
            return
        live.rtp = dict(rtp)
        self.metrics.rtp_update(live.id, rtp)
        if not live.media_written and rtp.get("codec"):
            live.media_written = True
            self._emit({"type": "media", "id": live.id, "codec": rtp.get("codec"),
                        "remote_rtp": rtp.get("remote_rtp")}, "media")

    @_safe
    def mark_outcome(self, key: str, outcome: str) -> None:
        """The call will end as ``outcome`` (failed, media_timeout...) whatever SIP says."""
        live = self._calls.get(key)
        if live is not None and live.outcome is None:
            live.outcome = outcome

    @_safe
    def dtmf(self, key: str, digit: str, method: str) -> None:
        """A keypad digit the caller sent (``method``: rfc4733 or sip_info), once per press."""
        if method in DTMF_METHODS:
            self.metrics.dtmf_digits.labels(method).inc()
        live = self._calls.get(key)
        if live is not None:
            live.dtmf.append({"digit": digit, "method": method,
                              "t": round(self._mono() - live.t0, 3)})

    @_safe
    def transfer(self, key: str, target: str, status: int | None, outcome: str,
                 reason: str) -> None:
        """A blind transfer's final outcome: accepted (the target answered; the gateway ends
        the call), failed (REFER refused, the new call failed) or timeout (no final NOTIFY)."""
        if outcome in TRANSFER_OUTCOMES:
            self.metrics.transfers.labels(outcome).inc()
        live = self._calls.get(key)
        if live is not None:
            live.transfers.append({"target": target, "status": status, "outcome": outcome,
                                   "reason": reason, "t": round(self._mono() - live.t0, 3)})

    @_safe
    def pipeline_error(self, key: str, stage: str) -> None:
        self.metrics.pipeline_errors.labels(stage).inc()
        self.mark_outcome(key, "failed")

    @_safe
    def turn_done(self, key: str, rec: Any) -> None:
        live = self._calls.get(key)
        if live is None:
            # after the close line: that turn was written then, without its transcript;
            # readers keep the last line of a turn, so this one completes it
            live = self._closed.get(key)
            if live is not None:
                self._turn(live, rec, ended_with_call=True)
            return
        self._turn(live, rec)

    def _turn(self, live: _Live, rec: Any, ended_with_call: bool = False) -> None:
        jb = live.rtp.get("jb_delay_ms_avg") or 0.0
        entry = turn_entry(rec, live.t0, float(jb), live.edges)
        if ended_with_call:
            entry["ended_with_call"] = True
        with self._lock:
            first = entry["turn"] not in live.reported
            live.reported.add(entry["turn"])
        if first:
            try:
                self._count_turn(live, entry)
            except Exception as e:  # noqa: BLE001 - the line still goes out
                self._failed("turn", e, "counting a turn")
        self._emit({"type": "turn", "id": live.id, "turn": entry}, "turn")

    def _count_turn(self, live: _Live, entry: Mapping[str, Any]) -> None:
        m = self.metrics
        result = turn_result(entry)
        m.turns.labels(result).inc()
        for stage in ("end_of_turn", "stt", "llm_first_token", "tts_first_audio"):
            v = entry[f"{stage}_seconds"]
            if v is not None:
                m.stage.labels(stage).observe(max(0.0, v))
        ex = {"call_id": live.id}
        if entry["ttfa_seconds"] is not None:
            m.ttfa.observe(entry["ttfa_seconds"], exemplar=ex)
        if result == "interrupted":
            live.barge_ins += 1
            m.barge_ins.inc()
            m.barge_in.observe(entry["barge_in_seconds"], exemplar=ex)

    @_safe
    def ended(self, key: str, sip_status: int | None, reason: str, by_bot: bool,
              cause: str = "") -> None:
        """The call is over (DISCONNECTED): write its close line."""
        with self._lock:
            live = self._calls.pop(key, None)
            self.metrics.active_calls.set(len(self._calls))
            if live is not None:
                self._closed[key] = live
                while len(self._closed) > 16:
                    self._closed.pop(next(iter(self._closed)))
        if live is None:
            return  # refused before it was answered
        self._close(live, sip_status, reason, by_bot, cause)

    def _close(self, live: _Live, sip_status: int | None, reason: str, by_bot: bool,
               cause: str) -> None:
        """Write the call's close line; never raises, and whatever fails before it, the close
        line is still attempted (and the open line again if it was not written)."""
        if not live.open_written and live.open_line is not None:
            live.open_written = self._emit(live.open_line, "open", durable_now=True)
        try:
            turns = list(getattr(live.session, "turns", []) or [])
        except Exception as e:  # noqa: BLE001
            turns = []
            self._failed("turn", e, "reading the session's turns")
        for rec in turns:
            try:
                if getattr(rec, "turn_id", None) not in live.reported:
                    self._turn(live, rec, ended_with_call=True)  # never reported: call ended
            except Exception as e:  # noqa: BLE001
                self._failed("turn", e, "writing a turn at the call's end")
        outcome = live.outcome or ("ended_by_bot" if by_bot else "ended_by_caller")
        duration = max(0.0, self._mono() - live.t0)
        try:
            self.metrics.calls.labels(outcome).inc()
            self.metrics.call_duration.observe(duration)
            self.metrics.rtp_forget(live.id)
        except Exception as e:  # noqa: BLE001
            self._failed("close", e, "counting the call's end")
        ts = self._wall()
        self._emit({"type": "close", "id": live.id, "end": _iso(ts), "end_ts": round(ts, 3),
                    "duration_seconds": round(duration, 3), "outcome": outcome,
                    "sip_status": sip_status, "sip_reason": reason,
                    "end_cause": cause or {"ended_by_bot": "the gateway hung up",
                                           "ended_by_caller": "the caller hung up",
                                           "bot_hangup": "the bot ended the call",
                                           "transferred": "the call was transferred",
                                           "failed": "a pipeline stage failed"}.get(outcome, ""),
                    "turn_count": len(live.reported), "barge_ins": live.barge_ins,
                    "dtmf": list(live.dtmf), "transfers": list(live.transfers),
                    "rtp": dict(live.rtp)}, "close")

    @_safe
    def close_all(self, cause: str) -> None:
        """At shutdown: close what is still open (its calls were hung up by the gateway)."""
        with self._lock:
            left = list(self._calls.values())
            self._calls.clear()
            self.metrics.active_calls.set(0)
        for live in left:
            self._close(live, None, "", True, cause)



def detached_observer() -> CallObserver:
    """An observer with its own private registry and no journal (tools, tests)."""
    from prometheus_client import CollectorRegistry

    return CallObserver(Metrics(CollectorRegistry()), None)


# --- showing -------------------------------------------------------------------------------------

def state_of(rec: Mapping[str, Any], alive: Callable[[Any, Any], bool] = owner_alive) -> str:
    """closed records: their outcome; open ones: in progress, or aborted (not yet closed) when
    their gateway process is gone."""
    if rec.get("state") == "closed":
        return str(rec.get("outcome") or "closed")
    return "in progress" if alive(rec.get("pid"), rec.get("pid_start")) else "aborted?"


def find(folded: Folded, key: str) -> dict[str, Any]:
    """A record by id, unique id prefix, or log name (``call-3``: the latest such call)."""
    if key in folded.calls:
        return folded.calls[key]
    by_name = [r for r in folded.records() if r.get("call") == key]
    if by_name:
        return by_name[-1]
    hits = [r for cid, r in folded.calls.items() if cid.startswith(key)]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise LookupError(f"no call {key!r} in the journal")
    raise LookupError(f"{key!r} matches {len(hits)} calls: "
                      + ", ".join(r["id"] for r in hits[:10]))


def _number(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) \
        and math.isfinite(x) else None


def _ms(x: Any) -> str:
    x = _number(x)
    return "-" if x is None else f"{x * 1000:.0f}"


def _show(x: Any, limit: int = TEXT_LIMIT) -> str:
    """A value of a record as text for a terminal: escaped and bounded (``clean_text``), so a
    record with any text in it (an old journal, a hand-edited line) prints."""
    return clean_text("-" if x is None else x, limit)


def _dicts(x: Any) -> list[Mapping[str, Any]]:
    return [i for i in x if isinstance(i, Mapping)] if isinstance(x, list) else []


FROM_COLUMN = 80
"""The widest FROM cell of ``format_list`` (the whole URI is in ``show``)."""


def format_list(recs: list[Mapping[str, Any]]) -> str:
    rows = [("ID", "START (UTC)", "DURATION", "TURNS", "OUTCOME", "CODEC", "TTFA p50 ms",
             "FROM")]
    for r in recs:
        turns = _dicts(r.get("turns"))
        ttfas = sorted(v for v in (_number(t.get("ttfa_seconds")) for t in turns)
                       if v is not None)
        dur = _number(r.get("duration_seconds"))
        rows.append((
            _show(r.get("id")), _show(r.get("start") or "?", 19).replace("T", " "),
            "-" if dur is None else f"{dur:.1f} s", str(len(turns)),
            _show(state_of(r)), _show(r.get("codec") or "-", 40),
            _ms(ttfas[len(ttfas) // 2]) if ttfas else "-",
            _show(r.get("remote_uri") or "-", FROM_COLUMN)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


def format_call(r: Mapping[str, Any]) -> str:
    rtp = r.get("rtp") if isinstance(r.get("rtp"), Mapping) else {}
    dur = _number(r.get("duration_seconds"))

    def f1(x: Any) -> str:
        x = _number(x)
        return "?" if x is None else f"{x:.1f}"

    lines = [
        f"call {_show(r.get('id'))}  ({_show(r.get('call', '?'))}, pid {_show(r.get('pid', '?'))})",
        f"  state      {_show(state_of(r))}"
        + (f": {_show(r['end_cause'])}" if r.get("end_cause") else ""),
        f"  from       {_show(r.get('remote_uri'))}  to {_show(r.get('local_uri'))}",
        f"  media      {_show(r.get('codec') or '-')}  remote RTP {_show(r.get('remote_rtp'))}",
        f"  start      {_show(r.get('start'))}",
        f"  end        {_show(r.get('end'))}"
        + (f"  ({dur:.1f} s)" if dur is not None else "")
        + (f"  SIP {_show(r['sip_status'])} {_show(r.get('sip_reason', ''))}".rstrip()
           if r.get("sip_status") else ""),
    ]
    if r.get("remote_contact") or r.get("sip_call_id"):
        lines.insert(3, f"  contact    {_show(r.get('remote_contact'))}  Call-ID "
                        f"{_show(r.get('sip_call_id'))}")
    if rtp:
        g = lambda k: _show(rtp.get(k, "?"), 40)  # noqa: E731
        lines.append(
            f"  rtp        rx {g('rx_packets')} pkts (lost {g('rx_lost')}, discarded "
            f"{g('rx_discard')}), tx {g('tx_packets')} pkts, jitter mean "
            f"{f1(rtp.get('rx_jitter_ms_mean') or 0.0)} ms, jitter buffer "
            f"{g('jb_delay_ms_avg')} ms (lost {g('jb_lost')}, discarded {g('jb_discard')}, "
            f"empty {g('jb_empty')})")
    keys = _dicts(r.get("dtmf"))
    if keys:
        lines.append("  keys       " + " ".join(_show(k.get("digit", "?"), 40) for k in keys)
                     + "  (" + ", ".join(f"{_show(k.get('method', '?'), 40)} at "
                                         f"{_show(k.get('t', '?'), 40)} s" for k in keys)
                     + ")")
    for x in _dicts(r.get("transfers")):
        lines.append(f"  transfer   to {_show(x.get('target', '?'))}: "
                     f"{_show(x.get('outcome', '?'))} "
                     f"({_show(x.get('status', '-'))} {_show(x.get('reason', ''))}".rstrip()
                     + f") at {_show(x.get('t', '?'))} s")
    turns = _dicts(r.get("turns"))
    lines.append(f"  turns      {len(turns)}")
    for t in turns:
        flags = " [barge-in]" if t.get("interrupted") else ""
        flags += " [call ended]" if t.get("ended_with_call") else ""
        lines += [
            f"  turn {_show(t.get('turn'))} at {_show(t.get('speech_end_at'))} s{flags}",
            f"    caller   '{_show(t.get('caller_text', ''), LONG_TEXT_LIMIT)}'",
            f"    bot      '{_show(t.get('bot_text', ''), LONG_TEXT_LIMIT)}'",
        ]
        if t.get("interrupted"):
            lines.append(f"    heard    '{_show(t.get('heard_text', ''), LONG_TEXT_LIMIT)}'")
        jb = _number(t.get("jb_delay_ms")) or 0.0
        lines.append(
            "    ms       end-of-turn {}  stt {}  llm first token {}  tts first audio {}  "
            "TTFA {} (pipeline: {}; jitter buffer {:.0f})".format(
                _ms(t.get("end_of_turn_seconds")), _ms(t.get("stt_seconds")),
                _ms(t.get("llm_first_token_seconds")), _ms(t.get("tts_first_audio_seconds")),
                _ms(t.get("ttfa_seconds")), _ms(t.get("ttfa_bridge_seconds")), jb))
        if _number(t.get("barge_in_seconds")) is not None:
            lines.append(f"    barge-in {_ms(t['barge_in_seconds'])} ms")
        for tool in _dicts(t.get("tools")):
            lines.append(f"    tool     {_show(tool.get('name', '?'))} "
                         f"{_show(tool.get('arguments', {}))} "
                         f"-> {_show(tool.get('decision', '?'))}, "
                         f"{_show(tool.get('outcome', '?'))} "
                         f"({_show(tool.get('ms', '-'))} ms)")
    return "\n".join(lines)
