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
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import logging
import os
import queue
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
    queues it for a writer thread (for threads that must not wait on the disk)."""

    def __init__(self, path: str | Path,
                 on_error: Callable[[BaseException], None] = lambda e: None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._lock = threading.Lock()
        self._on_error = on_error
        self._queue: queue.SimpleQueue[dict | None] = queue.SimpleQueue()
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
        line = json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n"
        data = line.encode("utf-8")
        with self._lock:
            os.write(self._fd, data)  # O_APPEND: one write, one line, never interleaved
            os.fsync(self._fd)

    def submit(self, obj: Mapping[str, Any]) -> None:
        self._queue.put(dict(obj))

    def _drain(self) -> None:
        while True:
            obj = self._queue.get()
            if obj is None:
                return
            try:
                self.write(obj)
            except Exception as e:  # noqa: BLE001 - counted and logged; calls go on
                log.error("journal: cannot write to %s: %s", self.path, e)
                self._on_error(e)

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


def _jsonable(x: Any) -> Any:
    """``x`` as plain JSON data (enums, paths and other objects become their ``str``): one odd
    value in a tool call's arguments must not cost the whole turn line."""
    return json.loads(json.dumps(x, default=str))


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
        "tools": _jsonable(list(g(rec, "tools", None) or [])),
    }


def turn_result(entry: Mapping[str, Any]) -> str:
    if entry["interrupted"] and entry["barge_in_seconds"] is not None:
        return "interrupted"
    return "answered" if entry["first_audio_at"] is not None else "unanswered"


def _safe(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Log instead of raising: observing must never end a call."""
    @functools.wraps(fn)
    def wrapper(*a: Any, **kw: Any) -> Any:
        try:
            return fn(*a, **kw)
        except Exception:  # noqa: BLE001
            log.exception("observer: %s failed", fn.__name__)
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


class CallObserver:
    """What the SIP layer tells about calls, turned into metrics and journal lines.

    Every method is safe to call from any thread and never raises: observing must not end
    a call (an exception in a session's listener thread would).
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

    def _emit(self, obj: dict[str, Any], durable_now: bool = False) -> None:
        if self.journal is None:
            return
        obj = {"v": SCHEMA, **obj}
        if durable_now:
            try:
                self.journal.write(obj)
            except OSError as e:
                log.error("journal: cannot write to %s: %s", self.journal.path, e)
                self.metrics.journal_errors.inc()
        else:
            self.journal.submit(obj)

    def record_id(self, key: str) -> str | None:
        live = self._calls.get(key)
        return None if live is None else live.id

    # --- call life -------------------------------------------------------------------------

    @_safe
    def answering(self, key: str, info: Mapping[str, Any]) -> str:
        """About to send 200 OK: the open line is on disk when this returns."""
        ts = self._wall()
        live = _Live(f"{key}-{secrets.token_hex(3)}", self._mono(), ts)
        with self._lock:
            self._calls[key] = live
            self.metrics.active_calls.set(len(self._calls))
        self.metrics.calls.labels("answered").inc()
        self._emit({"type": "open", "id": live.id, "call": key, "start": _iso(ts),
                    "start_ts": round(ts, 3), "pid": self._pid, "pid_start": self._pid_start,
                    **dict(info)}, durable_now=True)
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
                        "remote_rtp": rtp.get("remote_rtp")})

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
        self._emit({"type": "turn", "id": live.id, "turn": entry})

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
        session = live.session
        for rec in list(getattr(session, "turns", []) or []):
            if getattr(rec, "turn_id", None) not in live.reported:
                self._turn(live, rec, ended_with_call=True)  # never reported: call ended first
        outcome = live.outcome or ("ended_by_bot" if by_bot else "ended_by_caller")
        self.metrics.calls.labels(outcome).inc()
        duration = max(0.0, self._mono() - live.t0)
        self.metrics.call_duration.observe(duration)
        self.metrics.rtp_forget(live.id)
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
                    "rtp": live.rtp})

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


def _ms(x: Any) -> str:
    return "-" if x is None else f"{x * 1000:.0f}"


def format_list(recs: list[Mapping[str, Any]]) -> str:
    rows = [("ID", "START (UTC)", "DURATION", "TURNS", "OUTCOME", "CODEC", "TTFA p50 ms",
             "FROM")]
    for r in recs:
        ttfas = sorted(t["ttfa_seconds"] for t in r.get("turns", [])
                       if t.get("ttfa_seconds") is not None)
        dur = r.get("duration_seconds")
        rows.append((
            r["id"], (r.get("start") or "?")[:19].replace("T", " "),
            "-" if dur is None else f"{dur:.1f} s", str(len(r.get("turns", []))),
            state_of(r), str(r.get("codec") or "-"),
            _ms(ttfas[len(ttfas) // 2]) if ttfas else "-", str(r.get("remote_uri") or "-")))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


def format_call(r: Mapping[str, Any]) -> str:
    rtp = r.get("rtp") or {}
    lines = [
        f"call {r['id']}  ({r.get('call', '?')}, pid {r.get('pid', '?')})",
        f"  state      {state_of(r)}" + (f": {r['end_cause']}" if r.get("end_cause") else ""),
        f"  from       {r.get('remote_uri', '-')}  to {r.get('local_uri', '-')}",
        f"  media      {r.get('codec') or '-'}  remote RTP {r.get('remote_rtp') or '-'}",
        f"  start      {r.get('start', '-')}",
        f"  end        {r.get('end', '-')}"
        + (f"  ({r['duration_seconds']:.1f} s)" if r.get("duration_seconds") is not None
           else "")
        + (f"  SIP {r['sip_status']} {r.get('sip_reason', '')}".rstrip()
           if r.get("sip_status") else ""),
    ]
    if rtp:
        lines.append(
            "  rtp        rx {} pkts (lost {}, discarded {}), tx {} pkts, jitter mean {:.1f} ms, "
            "jitter buffer {} ms (lost {}, discarded {}, empty {})".format(
                rtp.get("rx_packets", "?"), rtp.get("rx_lost", "?"),
                rtp.get("rx_discard", "?"), rtp.get("tx_packets", "?"),
                float(rtp.get("rx_jitter_ms_mean") or 0.0), rtp.get("jb_delay_ms_avg", "?"),
                rtp.get("jb_lost", "?"), rtp.get("jb_discard", "?"), rtp.get("jb_empty", "?")))
    keys = r.get("dtmf") or []
    if keys:
        lines.append("  keys       " + " ".join(str(k.get("digit", "?")) for k in keys) + "  ("
                     + ", ".join(f"{k.get('method', '?')} at {k.get('t', '?')} s" for k in keys)
                     + ")")
    for x in r.get("transfers") or []:
        lines.append(f"  transfer   to {x.get('target', '?')}: {x.get('outcome', '?')} "
                     f"({x.get('status', '-')} {x.get('reason', '')}".rstrip()
                     + f") at {x.get('t', '?')} s")
    turns = r.get("turns", [])
    lines.append(f"  turns      {len(turns)}")
    for t in turns:
        flags = " [barge-in]" if t.get("interrupted") else ""
        flags += " [call ended]" if t.get("ended_with_call") else ""
        lines += [
            f"  turn {t.get('turn')} at {t.get('speech_end_at', '-')} s{flags}",
            f"    caller   {t.get('caller_text', '')!r}",
            f"    bot      {t.get('bot_text', '')!r}",
        ]
        if t.get("interrupted"):
            lines.append(f"    heard    {t.get('heard_text', '')!r}")
        lines.append(
            "    ms       end-of-turn {}  stt {}  llm first token {}  tts first audio {}  "
            "TTFA {} (pipeline: {}; jitter buffer {:.0f})".format(
                _ms(t.get("end_of_turn_seconds")), _ms(t.get("stt_seconds")),
                _ms(t.get("llm_first_token_seconds")), _ms(t.get("tts_first_audio_seconds")),
                _ms(t.get("ttfa_seconds")), _ms(t.get("ttfa_bridge_seconds")),
                float(t.get("jb_delay_ms") or 0.0)))
        if t.get("barge_in_seconds") is not None:
            lines.append(f"    barge-in {_ms(t['barge_in_seconds'])} ms")
        for tool in t.get("tools") or []:
            lines.append(f"    tool     {tool.get('name', '?')} {tool.get('arguments', {})} "
                         f"-> {tool.get('decision', '?')}, {tool.get('outcome', '?')} "
                         f"({tool.get('ms', '-')} ms)")
    return "\n".join(lines)
