"""Prometheus metrics of the gateway, on a registry passed in (never the global default).

Naming follows the Prometheus conventions: a ``voicebot_`` prefix, base units (``_seconds``),
``_total`` on counters. No call ID or phone number ever goes into a label: the call ID rides
as an OpenMetrics exemplar on the TTFA and barge-in observations, and the call journal
(``gateway/calls/records.py``, written by ``gateway/calls/observer.py``) holds the rest.

Threads: observations come from the pjsua thread (calls), the main thread (RTP polls), each
call's listener thread (turns) and PJSIP's media clock thread (``observe_lateness``, which only
does one histogram observation: a lock and a few additions).
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Mapping
from wsgiref.simple_server import WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler, make_wsgi_app

from gateway.telephony.sip_screen import REASONS as SCREEN_REASONS
from pipeline.core.end_of_turn import Reason
from pipeline.llm.base import ERROR_KINDS

log = logging.getLogger(__name__)

# 50 ms steps up to 3 s, then coarser up to 10 s (TTFA, barge-in, and every pipeline stage).
LATENCY_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 61)) + (4.0, 5.0, 7.5, 10.0)
# Media clock lateness: the callbacks are due every 20 ms; anything past 20 ms is a lost slot.
LATENESS_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.06, 0.1, 0.2)
# Per-call RTP levels sampled every poll (2 s): inter-arrival jitter and jitter-buffer delay.
JITTER_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5)
JB_DELAY_BUCKETS = (0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)
DURATION_BUCKETS = (5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)

CALL_OUTCOMES = ("answered", "rejected_capacity", "rejected_user", "failed", "ended_by_caller",
                 "ended_by_bot", "bot_hangup", "transferred", "media_timeout", "aborted")
STAGES = ("end_of_turn", "stt", "llm_first_token", "tts_first_audio")
TURN_RESULTS = ("answered", "interrupted", "unanswered")
ERROR_STAGES = ("listen", "work")  # the session's threads (CallSession.on_failure's names)
RX_PROBLEMS = ("lost", "duplicate", "reordered", "discarded")
JB_EVENTS = ("lost", "discarded", "empty")
REG_STATES = ("disabled", "registering", "registered", "failed", "unregistered")
REG_FAILURE_KINDS = ("4xx", "5xx", "6xx", "timeout", "transport")
DTMF_METHODS = ("rfc4733", "sip_info")
TRANSFER_OUTCOMES = ("accepted", "failed", "timeout")
RECORD_STAGES = ("open", "media", "turn", "close", "observer")
LLM_BACKENDS = ("embedded", "engine", "openai")
NOTIFY_CHANNELS = ("webhook", "mail")
SPEECH_SERVICE_ERRORS = ("refused", "unreachable", "timeout", "closed", "protocol", "server",
                         "circuit_open")
"""pipeline.wyoming.client.KINDS (a test keeps them equal)."""

# call.rtp key -> (metric, label value); cumulative per call, turned into process counters
_RTP_COUNTERS = {
    "rx_packets": ("packets", "received"),
    "tx_packets": ("packets", "sent"),
    "rx_lost": ("rx", "lost"),
    "rx_dup": ("rx", "duplicate"),
    "rx_reorder": ("rx", "reordered"),
    "rx_discard": ("rx", "discarded"),
    "jb_lost": ("jb", "lost"),
    "jb_discard": ("jb", "discarded"),
    "jb_empty": ("jb", "empty"),
}


class Metrics:
    """Every metric of the gateway, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry, capacity: int = 0) -> None:
        self.registry = registry
        r = registry
        self.calls = Counter(
            "voicebot_calls", "Calls by outcome: INVITE results (answered, rejected_capacity, "
            "rejected_user) and, for answered calls, how they ended (ended_by_caller, "
            "ended_by_bot = the gateway hung up, bot_hangup = the bot ended the conversation, "
            "transferred = blind transfer succeeded, failed, media_timeout, aborted = found "
            "open after a crash)",
            ["outcome"], registry=r)
        self.active_calls = Gauge("voicebot_active_calls", "Calls up now", registry=r)
        self.capacity = Gauge("voicebot_call_capacity", "Concurrent calls this process takes",
                              registry=r)
        self.call_duration = Histogram(
            "voicebot_call_duration_seconds", "Answered calls, answer to end",
            buckets=DURATION_BUCKETS, registry=r)
        self.turns = Counter(
            "voicebot_turns", "Caller turns by result (answered: the reply played; "
            "interrupted: the caller barged in; unanswered: no reply, e.g. noise)",
            ["result"], registry=r)
        self.barge_ins = Counter("voicebot_barge_ins", "Caller barge-ins over the bot's audio",
                                 registry=r)
        self.end_of_turn = Counter(
            "voicebot_end_of_turn_decisions", "Caller turns by why they ended: complete (sounded "
            "finished: short wait), incomplete (sounded unfinished: longest wait), timeout "
            "(no confident verdict: default wait), max_turn", ["reason"], registry=r)
        self.false_interruptions = Counter(
            "voicebot_false_interruptions_resumed", "Caller sound over the bot that was no "
            "interruption (no words, a backchannel): the bot went on where it stopped",
            registry=r)
        self.pipeline_errors = Counter(
            "voicebot_pipeline_errors", "Pipeline failures that ended a call, by stage",
            ["stage"], registry=r)
        self.ttfa = Histogram(
            "voicebot_ttfa_seconds", "Time to first audio on the wire: end of the caller's "
            "speech on the wire to the bot's first reply audio on the wire (exemplar: call_id)",
            buckets=LATENCY_BUCKETS, registry=r)
        self.barge_in = Histogram(
            "voicebot_barge_in_seconds", "Barge-in latency on the wire: onset of the caller's "
            "speech to the bot's last audio (exemplar: call_id)",
            buckets=LATENCY_BUCKETS, registry=r)
        self.stage = Histogram(
            "voicebot_stage_seconds", "Time spent per pipeline stage of a turn: end_of_turn "
            "(end of speech to end of turn decided), stt, llm_first_token, tts_first_audio",
            ["stage"], buckets=LATENCY_BUCKETS, registry=r)
        self.lateness = Histogram(
            "voicebot_media_callback_lateness_seconds", "How late the media clock callbacks "
            "ran against their 20 ms grid", buckets=LATENESS_BUCKETS, registry=r)
        self.rtp_packets = Counter("voicebot_rtp_packets", "RTP packets by direction",
                                   ["direction"], registry=r)
        self.rtp_rx_problems = Counter(
            "voicebot_rtp_rx_problem_packets", "Received RTP packets lost, duplicated, "
            "reordered or discarded (RTCP receive statistics)", ["kind"], registry=r)
        self.jb_frames = Counter(
            "voicebot_jitter_buffer_frames", "Jitter-buffer frame events: lost, discarded "
            "(too late or overflow), empty (nothing to play)", ["event"], registry=r)
        self.rtp_jitter = Histogram(
            "voicebot_rtp_jitter_seconds", "Inbound inter-arrival jitter, sampled per call "
            "every statistics poll", buckets=JITTER_BUCKETS, registry=r)
        self.jb_delay = Histogram(
            "voicebot_jitter_buffer_delay_seconds", "Inbound jitter-buffer delay (average so "
            "far in the call), sampled per call every statistics poll",
            buckets=JB_DELAY_BUCKETS, registry=r)
        self.journal_errors = Counter("voicebot_journal_write_errors",
                                      "Call journal lines that could not be written", registry=r)
        self.record_errors = Counter(
            "voicebot_record_errors", "Failures in the call-records path, by stage: open, "
            "media, turn, close (that journal line, or a step before it, failed; the call and "
            "its close line go on), observer (another observer step failed, e.g. noting a "
            "keypad digit)", ["stage"], registry=r)
        self.sip_refused = Counter(
            "voicebot_sip_requests_refused", "SIP requests the request screen answered (4xx/5xx) "
            "or dropped (an ACK) before pjsua, by reason (gateway/telephony/sip_screen/)",
            ["reason"],
            registry=r)
        self.sip_unparseable = Counter(
            "voicebot_sip_unparseable_messages", "SIP datagrams PJSIP's parser could not read, "
            "dropped unanswered (a reply needs the headers it could not read)", registry=r)
        self.registration_state = Gauge(
            "voicebot_registration_state", "Registration to [registration] registrar: 1 for "
            "the current state (disabled, registering, registered, failed, unregistered)",
            ["state"], registry=r)
        self.registration_failures = Counter(
            "voicebot_registration_failures", "REGISTER attempts that failed, by SIP status "
            "class (4xx, 5xx, 6xx, timeout = 408 or no answer, transport)", ["kind"],
            registry=r)
        self.dtmf_digits = Counter(
            "voicebot_dtmf_digits", "Keypad digits received from callers, by method (rfc4733 "
            "= RTP telephone-event, sip_info = SIP INFO application/dtmf-relay)", ["method"],
            registry=r)
        self.transfers = Counter(
            "voicebot_transfers", "Blind transfers (SIP REFER) by outcome: accepted (the "
            "target answered), failed (REFER refused or the new call failed), timeout (no "
            "final NOTIFY in time)", ["outcome"], registry=r)
        self.llm_errors = Counter(
            "voicebot_llm_errors", "Caller turns the LLM backend failed (the caller heard the "
            "apology), by backend and kind: connect, http_status, first_token_timeout, stalled "
            "(mid-reply), broken (stream cut), protocol, server_error, circuit_open (not tried: "
            "the server kept failing)", ["backend", "kind"], registry=r)
        self.llm_first_token = Histogram(
            "voicebot_llm_first_token_seconds", "Request to the LLM's first words, per backend "
            "(embedded = llama.cpp in the gateway, openai = a server)", ["backend"],
            buckets=LATENCY_BUCKETS, registry=r)
        self.speech_service_errors = Counter(
            "voicebot_speech_service_errors", "Requests to a remote speech server ([stt] or "
            "[tts] backend = 'wyoming') that failed, by stage (stt, tts) and kind: refused, "
            "unreachable, timeout, closed (hung up mid-answer), protocol (a malformed answer), "
            "server (an error event), circuit_open (not asked: it failed repeatedly). The call "
            "goes on: an apology, or a clause skipped",
            ["stage", "kind"], registry=r)
        self.notify_queue_depth = Gauge(
            "voicebot_notify_queue_depth", "Notifications waiting in the on-disk outbox, by "
            "channel (webhook, mail); one that only grows: the receiver is down", ["channel"],
            registry=r)
        self.notify_delivered = Counter(
            "voicebot_notify_delivered", "Notifications the receiver accepted, by channel",
            ["channel"], registry=r)
        self.notify_failures = Counter(
            "voicebot_notify_failures", "Notification delivery attempts that failed (retried "
            "later, never dropped), by channel", ["channel"], registry=r)
        # every label value exists from the start (a dashboard query never finds nothing)
        for c in NOTIFY_CHANNELS:
            self.notify_queue_depth.labels(c)
            self.notify_delivered.labels(c)
            self.notify_failures.labels(c)
        for b in LLM_BACKENDS:
            self.llm_first_token.labels(b)
        for k in ERROR_KINDS:
            for b in LLM_BACKENDS[1:]:  # the server backends
                self.llm_errors.labels(b, k)
        for o in CALL_OUTCOMES:
            self.calls.labels(o)
        for s in STAGES:
            self.stage.labels(s)
        for t in TURN_RESULTS:
            self.turns.labels(t)
        for s in ERROR_STAGES:
            self.pipeline_errors.labels(s)
        for d in ("received", "sent"):
            self.rtp_packets.labels(d)
        for k in RX_PROBLEMS:
            self.rtp_rx_problems.labels(k)
        for e in JB_EVENTS:
            self.jb_frames.labels(e)
        for k in REG_FAILURE_KINDS:
            self.registration_failures.labels(k)
        for d in DTMF_METHODS:
            self.dtmf_digits.labels(d)
        for o in TRANSFER_OUTCOMES:
            self.transfers.labels(o)
        for reason in Reason:
            self.end_of_turn.labels(reason.value)
        for s in RECORD_STAGES:
            self.record_errors.labels(s)
        for s in SCREEN_REASONS:
            self.sip_refused.labels(s)
        for s in ("stt", "tts"):
            for k in SPEECH_SERVICE_ERRORS:
                self.speech_service_errors.labels(s, k)
        self.set_registration_state("disabled")
        self.capacity.set(capacity)
        self._rtp_seen: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    # --- registration (pjsua thread) ------------------------------------------------------

    def set_registration_state(self, state: str) -> None:
        for s in REG_STATES:
            self.registration_state.labels(s).set(1 if s == state else 0)

    def registration_failed(self, code: int) -> None:
        if code == 408:
            kind = "timeout"
        elif 400 <= code < 700:
            kind = f"{code // 100}xx"
        else:
            kind = "transport"
        self.registration_failures.labels(kind).inc()

    # --- media clock thread --------------------------------------------------------------

    def observe_lateness(self, seconds: float) -> None:
        self.lateness.observe(seconds)

    # --- RTP -----------------------------------------------------------------------------

    def rtp_update(self, call_key: str, rtp: Mapping[str, object]) -> None:
        """Fold one poll of a call's cumulative stream statistics into the process counters
        (adds the increase since the last poll of that call) and sample its levels."""
        with self._lock:
            seen = self._rtp_seen.setdefault(call_key, {})
            for key, (kind, label) in _RTP_COUNTERS.items():
                v = rtp.get(key)
                if not isinstance(v, int | float):
                    continue
                delta = v - seen.get(key, 0)
                seen[key] = v
                if delta <= 0:  # a reset stream (re-INVITE) starts over: count from there
                    continue
                if kind == "packets":
                    self.rtp_packets.labels(label).inc(delta)
                elif kind == "rx":
                    self.rtp_rx_problems.labels(label).inc(delta)
                else:
                    self.jb_frames.labels(label).inc(delta)
        jitter = rtp.get("rx_jitter_ms_last", rtp.get("rx_jitter_ms_mean"))
        if isinstance(jitter, int | float) and rtp.get("rx_packets"):
            self.rtp_jitter.observe(jitter / 1000.0)
        jb = rtp.get("jb_delay_ms_avg")
        if isinstance(jb, int | float) and jb > 0:
            self.jb_delay.observe(jb / 1000.0)

    def rtp_forget(self, call_key: str) -> None:
        with self._lock:
            self._rtp_seen.pop(call_key, None)


class MetricsServer:
    """/metrics over HTTP (OpenMetrics when the scraper asks for it, so exemplars show)."""

    def __init__(self, registry: CollectorRegistry, address: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET

        class _Server(ThreadingWSGIServer):
            address_family = family

        self.httpd: WSGIServer = make_server(address, port, make_wsgi_app(registry), _Server,
                                             handler_class=_SilentHandler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="metrics-http",
                                       daemon=True)
        self.thread.start()

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.httpd.server_address[:2]
        return str(host), int(port)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def start_server(registry: CollectorRegistry, address: str, port: int) -> MetricsServer | None:
    """Serve /metrics; port 0 = off. A port in use is logged, not fatal: calls matter more
    than their metrics (Prometheus shows the target down)."""
    if port == 0:
        return None
    try:
        srv = MetricsServer(registry, address, port)
    except OSError as e:
        log.error("metrics: cannot listen on %s:%d (%s): /metrics is not served", address,
                  port, e.strerror)
        return None
    log.info("metrics on http://%s:%d/metrics", *srv.address)
    return srv
