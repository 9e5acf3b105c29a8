"""The call observer: what the SIP layer tells about calls, turned into metrics and journal
lines (``gateway/calls/records.py`` writes them). Wire TTFA is worked out here, from the pipeline's
turn records and the audible edges the port saw (``gateway/calls/audio_edges.py``)."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.calls.audio_edges import AudioEdges
from gateway.calls.metrics import DTMF_METHODS, TRANSFER_OUTCOMES, Metrics
from gateway.calls.records import SCHEMA, FailureLog, Journal, _iso, jsonable, process_start
from pipeline.turn_record import TurnRecord

log = logging.getLogger("gateway.records")  # one logger for everything the records say

OUTBOUND_WIRE_SECONDS = 0.0
"""From a frame handed out at the port to its RTP packet on the wire. pjmedia's conference
bridge reads every port and then writes every port within one clock tick, and the stream
encodes and sends a 20 ms frame at once: the reply's first frame leaves in the tick that took
it (measured: adding 20 ms here put the gateway's TTFA ~45 ms above the caller's)."""


def _num(x: Any, nd: int = 4) -> float | None:
    return None if x is None else round(float(x), nd)


def audible_edges(rec: TurnRecord,
                  edges: AudioEdges | None) -> tuple[float | None, float | None]:
    """(arrival of the caller's last loud frame, hand-out of the reply's first loud frame)
    around the times the pipeline noted, or None where the port saw nothing loud."""
    end_t = rec.speech_end_time or 0.0
    first = rec.first_audio
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


def turn_entry(rec: TurnRecord, t0: float, jb_delay_ms: float,
               edges: AudioEdges | None = None) -> dict[str, Any]:
    """A pipeline ``TurnRecord`` as journal data. Times ``*_at`` are seconds since the call was
    answered. TTFA is reported on the wire: from the caller's last loud frame (its arrival at
    the port less the inbound jitter-buffer delay) to the reply's first loud frame (handed out
    at the port, plus one frame to the wire); when the port saw no loud frame there, from the
    pipeline's own marks (VAD end of speech, first reply frame). Barge-in latency: the
    pipeline's figure plus the same two wire delays. The pipeline's figures are kept too."""
    def at(t: float | None) -> float | None:
        return None if not t else round(t - t0, 3)

    jb = jb_delay_ms / 1000.0
    wire = jb + OUTBOUND_WIRE_SECONDS
    ttfa_bridge = rec.ttfa_seconds
    last_in, first_out = audible_edges(rec, edges)
    ttfa = None if ttfa_bridge is None else ttfa_bridge + wire
    if ttfa is not None and last_in is not None and first_out is not None:
        ttfa = (first_out + OUTBOUND_WIRE_SECONDS) - (last_in - jb)
    barge_bridge = rec.barge_in_seconds
    eot = rec.end_of_turn_seconds if rec.speech_end_time else None
    return {
        "turn": rec.turn_id,
        "caller_text": rec.caller_text,
        "bot_text": rec.bot_text,
        "heard_text": rec.heard_text,
        "interrupted": bool(rec.interrupted),
        "speech_start_sample": rec.speech_start_sample,
        "speech_end_sample": rec.speech_end_sample,
        "speech_end_at": at(rec.speech_end_time),
        "committed_at": at(rec.committed),
        "first_audio_at": at(rec.first_audio),
        "end_of_turn_seconds": _num(eot),
        "stt_seconds": _num(rec.stt_seconds),
        "llm_first_token_seconds": _num(rec.llm_first_token_seconds),
        "prompt_tokens_read": rec.prompt_tokens_read,
        "speculative": rec.speculative,
        "tts_first_audio_seconds": _num(rec.tts_first_audio_seconds),
        "opening": rec.opening,
        "ttfa_bridge_seconds": _num(ttfa_bridge),
        "ttfa_seconds": _num(ttfa),
        "caller_sound_end_at": at(last_in),
        "bot_sound_start_at": at(first_out),
        "bot_audio_end_at": at(rec.audio_end),
        "barge_in_bridge_seconds": _num(barge_bridge),
        "barge_in_seconds": None if barge_bridge is None else _num(barge_bridge + wire),
        "jb_delay_ms": round(jb_delay_ms, 1),
        "tools": jsonable(list(rec.tools)),
        "end_of_turn_reason": rec.end_of_turn_reason,
        "end_of_turn_score": _num(rec.end_of_turn_score),
        "end_of_message": _num(rec.end_of_message),
        "false_interruption": bool(rec.false_interruption),
        "facts_note": rec.facts_note,
        "llm_backend": rec.llm_backend,
        "llm_error": rec.llm_error or None,
        "stt_error": rec.stt_error or None,
        "tts_error": rec.tts_error or None,
    }


def turn_result(entry: Mapping[str, Any]) -> str:
    if entry["interrupted"] and entry["barge_in_seconds"] is not None:
        return "interrupted"
    return "answered" if entry["first_audio_at"] is not None else "unanswered"


_STAGE_OF = {"answering": "open", "rtp": "media", "recorded": "media", "turn_done": "turn",
             "ended": "close", "close_all": "close"}
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
    llm_reported: set[int] = field(default_factory=set)
    """Turns whose LLM outcome the metrics have counted."""
    outcome: str | None = None  # set by whoever knows better than the SIP state (failure...)
    barge_ins: int = 0
    dtmf: list[dict[str, Any]] = field(default_factory=list)
    transfers: list[dict[str, Any]] = field(default_factory=list)
    open_line: dict[str, Any] | None = None
    open_written: bool = False  # else the close tries the open line again
    said: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Turn -> what was said and how fast (the call's end event)."""
    message_ids: list[str] = field(default_factory=list)


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
                 wall: Callable[[], float] = time.time,
                 on_close: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.metrics = metrics
        self.journal = journal
        self.on_close = on_close
        """Given each call's end event (``call_end_event``) after its close line: the
        business's notifications."""
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

    def media_started(self, key: str, session: Any,
                      edges: AudioEdges | None = None) -> AudioEdges:
        """Media is up: returns the call's ``AudioEdges`` (wrap the port's callbacks in it);
        give ones on the session's clock."""
        edges = AudioEdges() if edges is None else edges
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
    def recorded(self, key: str, path: str, started: float | None, seconds: float) -> None:
        """The call's recording ended: ``path`` (relative to the journal's folder) began at
        ``started`` on the session's clock (the record's times: seconds since the answer)."""
        live = self._calls.get(key)
        if live is None:
            return
        self._emit({"type": "media", "id": live.id, "recording": path,
                    "recording_start_at": None if started is None else round(started - live.t0, 3),
                    "recording_seconds": round(seconds, 2)}, "media")

    @_safe
    def message_saved(self, key: str, message_id: str) -> None:
        """The caller left a message (the store has it): the call's record names it."""
        live = self._calls.get(key)
        if live is not None:
            live.message_ids.append(message_id)
            self._emit({"type": "message", "id": live.id, "message_id": message_id}, "turn")

    @_safe
    def pipeline_error(self, key: str, stage: str) -> None:
        self.metrics.pipeline_errors.labels(stage).inc()
        self.mark_outcome(key, "failed")

    @_safe
    def turn_done(self, key: str, rec: TurnRecord) -> None:
        live = self._calls.get(key)
        if live is None:
            # after the close line: that turn was written then, without its transcript;
            # readers keep the last line of a turn, so this one completes it
            live = self._closed.get(key)
            if live is not None:
                self._turn(live, rec, ended_with_call=True)
            return
        self._turn(live, rec)

    def _turn(self, live: _Live, rec: TurnRecord, ended_with_call: bool = False) -> None:
        jb = live.rtp.get("jb_delay_ms_avg") or 0.0
        entry = turn_entry(rec, live.t0, float(jb), live.edges)
        if ended_with_call or rec.ended_with_call:
            entry["ended_with_call"] = True
        with self._lock:
            first = entry["turn"] not in live.reported
            live.reported.add(entry["turn"])
            live.said[entry["turn"]] = {
                "caller": entry["caller_text"],
                "bot": entry["heard_text"] if entry["interrupted"] else entry["bot_text"],
                "ttfa_ms": (None if entry["ttfa_seconds"] is None
                            else round(entry["ttfa_seconds"] * 1000))}
        if first:
            try:
                self._count_turn(live, entry)
            except Exception as e:  # noqa: BLE001 - the line still goes out
                self._failed("turn", e, "counting a turn")
        self._count_llm(live, entry)
        self._emit({"type": "turn", "id": live.id, "turn": entry}, "turn")

    def _count_llm(self, live: _Live, entry: Mapping[str, Any]) -> None:
        """The LLM backend's error or first-token time, once per turn: at the first report
        that has them (a turn can be reported before its reply, e.g. unanswered at a pause,
        and again once answered)."""
        backend = entry.get("llm_backend")
        if not backend or (not entry.get("llm_error")
                           and entry["llm_first_token_seconds"] is None):
            return
        with self._lock:
            if entry["turn"] in live.llm_reported:
                return
            live.llm_reported.add(entry["turn"])
        m = self.metrics
        if entry.get("llm_error"):
            m.llm_errors.labels(backend, entry["llm_error"]).inc()
        else:
            m.llm_first_token.labels(backend).observe(max(0.0, entry["llm_first_token_seconds"]))

    def _count_turn(self, live: _Live, entry: Mapping[str, Any]) -> None:
        m = self.metrics
        result = turn_result(entry)
        m.turns.labels(result).inc()
        if entry.get("end_of_turn_reason"):
            m.end_of_turn.labels(entry["end_of_turn_reason"]).inc()
        if entry.get("false_interruption"):
            m.false_interruptions.inc()
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
    def now(self) -> tuple[float, float]:
        """(monotonic, wall) on the observer's clocks: when a call ended, for ``ended``."""
        return self._mono(), self._wall()

    def ended(self, key: str, sip_status: int | None, reason: str, by_bot: bool,
              cause: str = "", at: tuple[float, float] | None = None) -> None:
        """The call is over (DISCONNECTED): write its close line. ``at``: when it ended (from
        ``now()``), if this is called later, once the conversation has let go of its turns."""
        with self._lock:
            live = self._calls.pop(key, None)
            self.metrics.active_calls.set(len(self._calls))
            if live is not None:
                self._closed[key] = live
                while len(self._closed) > 16:
                    self._closed.pop(next(iter(self._closed)))
        if live is None:
            return  # refused before it was answered
        self._close(live, sip_status, reason, by_bot, cause, at or self.now())

    def _close(self, live: _Live, sip_status: int | None, reason: str, by_bot: bool,
               cause: str, at: tuple[float, float]) -> None:
        """Write the call's close line; never raises, and whatever fails before it, the close
        line is still attempted (and the open line again if it was not written)."""
        if not live.open_written and live.open_line is not None:
            live.open_written = self._emit(live.open_line, "open", durable_now=True)
        try:
            turns = list(getattr(live.session, "turns", []) or [])
        except Exception as e:  # noqa: BLE001
            turns = []
            self._failed("turn", e, "reading the session's turns")
        live.session = None  # the call's audio goes with it (the last 16 closes are kept)
        for rec in turns:
            try:
                if rec.turn_id not in live.reported:
                    self._turn(live, rec, ended_with_call=True)  # never reported: call ended
            except Exception as e:  # noqa: BLE001
                self._failed("turn", e, "writing a turn at the call's end")
        outcome = live.outcome or ("ended_by_bot" if by_bot else "ended_by_caller")
        duration = max(0.0, at[0] - live.t0)
        try:
            self.metrics.calls.labels(outcome).inc()
            self.metrics.call_duration.observe(duration)
            self.metrics.rtp_forget(live.id)
        except Exception as e:  # noqa: BLE001
            self._failed("close", e, "counting the call's end")
        ts = at[1]
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
                    "messages": list(live.message_ids), "rtp": dict(live.rtp)}, "close")
        if self.on_close is not None:
            try:
                self.on_close(call_end_event(live, outcome, duration, ts))
            except Exception as e:  # noqa: BLE001 - the call is over; its record is written
                self._failed("close", e, "queuing the call's end event")

    @_safe
    def close_all(self, cause: str) -> None:
        """At shutdown: close what is still open (its calls were hung up by the gateway)."""
        with self._lock:
            left = list(self._calls.values())
            self._calls.clear()
            self.metrics.active_calls.set(0)
        for live in left:
            self._close(live, None, "", True, cause, self.now())



def call_end_event(live: _Live, outcome: str, duration: float, end_ts: float) -> dict[str, Any]:
    """What the business is told when a call ends: who, how it ended, what was said, how
    fast the bot answered, and the messages left."""
    turns = [live.said[k] for k in sorted(live.said)]
    ttfa = sorted(t["ttfa_ms"] for t in turns if t["ttfa_ms"] is not None)
    return {"event": "call_end", "call_id": live.id, "start": _iso(live.ts0),
            "end": _iso(end_ts), "duration_seconds": round(duration, 3), "outcome": outcome,
            "caller": (live.open_line or {}).get("remote_uri", ""), "turns": turns,
            "ttfa_ms": {"p50": ttfa[len(ttfa) // 2] if ttfa else None,
                        "max": ttfa[-1] if ttfa else None},
            "message_ids": list(live.message_ids)}


def detached_observer() -> CallObserver:
    """An observer with its own private registry and no journal (tools, tests)."""
    from prometheus_client import CollectorRegistry

    return CallObserver(Metrics(CollectorRegistry()), None)
