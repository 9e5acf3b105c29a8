"""The PJSIP user agent: endpoint, UDP transport, account, calls, and their media ports.

SIP glue only: the settings of each call's conversation come ready-made from the composition
root (``gateway/app.py``); pjsua2's call and account objects are in
``gateway/telephony/call.py``, the keypad and transfer methods in
``gateway/telephony/call_control.py``.

pjsua2 owns its threads: SIP callbacks arrive on ``pjsua_0``, media callbacks on ``clock``.
Every pjsua2 operation of ours (answer aside, which pjsua expects inside onIncomingCall) runs
on the main thread through ``Gateway.control``, so the Python objects behind a call are
created and destroyed in one place and never raced.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import pjsua2 as pj

from gateway import testfault
from gateway.calls import recording, records
from gateway.calls.audio_edges import AudioEdges
from gateway.calls.observer import CallObserver, detached_observer
from gateway.config import Config
from gateway.inbox.desk import MessageOffice
from gateway.telephony import registration
from gateway.telephony.admission import InviteGate, LogBudget, request_line, request_uri, uri_user
from gateway.telephony.call import BotAccount, GatewayCall
from gateway.telephony.call_control import CallControl
from gateway.telephony.media_port import CallPort, init_fast_path, pcm_format
from gateway.telephony.sip_screen import Refusal
from pipeline.audio.frames import BRIDGE_RATE
from pipeline.engines import Engines
from pipeline.options import SessionOptions
from pipeline.session import CallSession

log = logging.getLogger(__name__)

STATS_INTERVAL = 2.0  # seconds between RTP statistics polls
CODEC_IDS = {"G722": "G722/16000/1", "PCMU": "PCMU/8000/1", "PCMA": "PCMA/8000/1"}


@dataclass
class CallStats:
    answered: int = 0
    ended: int = 0
    failed: int = 0
    refused_capacity: int = 0
    refused_user: int = 0


class _LogWriter(pj.LogWriter):
    def write(self, entry: pj.LogEntry) -> None:
        log.debug("pjsip: %s", entry.msg.rstrip())


class Gateway:
    """One pjsua2 endpoint and its calls. Construct, ``start()``, ``run()`` (blocks)."""

    def __init__(self, cfg: Config, engines: Engines, options: SessionOptions,
                 call_done: Callable[[GatewayCall], None] = lambda c: None,
                 observer: CallObserver | None = None,
                 office: MessageOffice | None = None) -> None:
        self.cfg = cfg
        self.office = office
        """Where callers' messages go (None: no messages are taken)."""
        self.recordings = (recording.recordings_dir(records.journal_path(cfg.records.path))
                           if cfg.recording.enabled else None)
        """Where calls are recorded (None: [recording] is off)."""
        self._swept_at = -math.inf
        self.engines = engines
        self.options = options  # every call's session settings (built by gateway/app.py)
        self.call_done = call_done
        self.observer = observer or detached_observer()  # metrics and call records
        self.control: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self.calls: dict[str, GatewayCall] = {}
        self.call_control = CallControl(self.calls, self.observer)
        self._ports: list[CallPort] = []  # every port made; reused, never destroyed
        self._free_ports: list[CallPort] = []
        self.stats = CallStats()
        self._screen_log = LogBudget()  # a flood of bad requests must not flood the log
        self._seq = 0
        self._stopping = threading.Event()
        self.ep = pj.Endpoint()
        self._log_writer = _LogWriter()
        self.fault = testfault.from_env(os.environ)  # TEST ONLY; None unless the env asks
        if self.fault is not None:
            log.warning("TEST FAULT INJECTION ON (%s=%s): never set this in production",
                        testfault.ENV, os.environ[testfault.ENV])

    # --- start-up ------------------------------------------------------------------------

    def start(self) -> None:
        sip = self.cfg.sip
        self._sweep_recordings()
        self.ep.libCreate()
        ep_cfg = pj.EpConfig()
        ua = ep_cfg.uaConfig
        ua.maxCalls = sip.max_calls
        ua.threadCnt = 1
        ua.mainThreadOnly = False
        ua.userAgent = sip.user_agent
        lc = ep_cfg.logConfig
        lc.level = sip.pjsip_log_level
        lc.consoleLevel = sip.pjsip_log_level
        lc.writer = self._log_writer
        lc.decor = 0
        mc = ep_cfg.medConfig
        mc.clockRate = BRIDGE_RATE
        mc.sndClockRate = BRIDGE_RATE
        mc.audioFramePtime = 20
        mc.channelCount = 1
        mc.noVad = True
        mc.ecTailLen = 0  # echo is cancelled in the pipeline, with the bot audio as reference
        mc.threadCnt = 1
        mc.quality = 8  # >= 5 selects the bridge's large resampling filter (G.711 -> 16 kHz)
        if sip.jitter_min_ms:
            # below ~40 ms the adaptive buffer under-runs on a busy host and splices audio
            mc.jbMinPre = sip.jitter_min_ms
            mc.jbInit = sip.jitter_min_ms
        self.ep.libInit(ep_cfg)
        tcfg = pj.TransportConfig()
        tcfg.port = sip.port
        tcfg.boundAddress = sip.listen_address
        if sip.public_address:
            tcfg.publicAddress = sip.public_address
        self.ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        self.ep.libStart()
        self.ep.audDevManager().setNullDev()
        self._set_codecs()
        init_fast_path()
        self.gate = InviteGate(sip.max_calls, sip.retry_after_seconds,
                               on_refused=lambda r: self._count_refusal(),
                               on_screened=self._count_screened,
                               on_dropped=self.observer.metrics.sip_unparseable.inc)
        acfg = pj.AccountConfig()
        host = sip.public_address or (sip.listen_address if sip.listen_address != "0.0.0.0"
                                      else "127.0.0.1")
        acfg.idUri = f"sip:{sip.user or 'bot'}@{host}:{sip.port}"
        acfg.mediaConfig.transportConfig.port = sip.rtp_port
        acfg.mediaConfig.transportConfig.portRange = 200
        if sip.listen_address != "0.0.0.0":
            acfg.mediaConfig.transportConfig.boundAddress = sip.listen_address
        if sip.public_address:
            acfg.mediaConfig.transportConfig.publicAddress = sip.public_address
        self._configure_registration(acfg)
        self.account = BotAccount(self)  # referenced for the process's life (field notes)
        self.account.create(acfg, True)
        log.info("listening on udp:%s:%d (codecs %s, %d calls)", sip.listen_address, sip.port,
                 "/".join(sip.codecs), sip.max_calls)

    # --- registration ([registration]; logic in gateway/telephony/registration.py) ---------

    def _configure_registration(self, acfg: pj.AccountConfig) -> None:
        reg = self.cfg.registration
        self.reg_backoff = registration.Backoff(reg.retry_min_seconds, reg.retry_max_seconds)
        self._reg_timer: threading.Timer | None = None
        if not reg.registrar:
            return
        acfg.idUri = reg.aor or registration.default_aor(reg.registrar, reg.username)
        rc = acfg.regConfig
        rc.registrarUri = reg.registrar
        rc.registerOnAdd = True
        rc.timeoutSec = reg.expires_seconds
        rc.delayBeforeRefreshSec = registration.refresh_margin(reg.expires_seconds)
        rc.retryIntervalSec = 0  # pjsua's retry is a fixed interval: ours backs off instead
        rc.firstRetryIntervalSec = 0
        rc.randomRetryIntervalSec = 0
        rc.dropCallsOnFail = False  # a lost registration must not cut the calls in progress
        password = reg.password or self.cfg.sip.password
        if not password:
            log.warning("registration: no password set ([registration] password or "
                        "VOICEBOT_REGISTRATION_PASSWORD); a challenge will fail")
        acfg.sipConfig.authCreds.append(
            pj.AuthCredInfo("digest", reg.realm, reg.username, 0, password))
        self.observer.metrics.set_registration_state("registering")
        log.info("registration: %s at %s as %s, expires %d s (refresh %d s early), "
                 "retry back-off %d..%d s", acfg.idUri, reg.registrar, reg.username,
                 reg.expires_seconds, rc.delayBeforeRefreshSec, reg.retry_min_seconds,
                 reg.retry_max_seconds)

    def registration_state(self, code: int, reason: str, expiration: int) -> None:
        """onRegState (pjsua thread): log, export, and on failure schedule a retry."""
        state = registration.state_for(code, expiration)
        metrics = self.observer.metrics
        metrics.set_registration_state(state.value)
        if state is registration.RegState.REGISTERED:
            self.reg_backoff.reset()
            log.info("registration: %d %s, expires in %d s", code, reason, expiration)
        elif state is registration.RegState.UNREGISTERED:
            log.info("registration: unregistered (%d %s)", code, reason)
        elif state is registration.RegState.FAILED:
            metrics.registration_failed(code)
            if self._stopping.is_set() or getattr(self, "gate", None) and self.gate.draining:
                log.warning("registration failed: %s",
                            registration.describe_failure(code, reason))
                return
            delay = self.reg_backoff.next_delay()
            log.error("registration failed: %s; attempt %d, next in %.1f s",
                      registration.describe_failure(code, reason), self.reg_backoff.failures,
                      delay)
            if self._reg_timer is not None:
                self._reg_timer.cancel()
            # the timer thread only queues the job: pjsua2 is called from the main thread
            self._reg_timer = threading.Timer(delay, self.control.put,
                                              (self._retry_registration,))
            self._reg_timer.daemon = True
            self._reg_timer.start()

    def _retry_registration(self) -> None:
        if self.gate.draining or self._stopping.is_set():
            return
        self.observer.metrics.set_registration_state("registering")
        log.info("registration: retrying REGISTER to %s", self.cfg.registration.registrar)
        self.account.setRegistration(True)

    def _set_codecs(self) -> None:
        wanted = {CODEC_IDS[c]: 255 - i for i, c in enumerate(self.cfg.sip.codecs)}
        for info in self.ep.codecEnum2():
            self.ep.codecSetPriority(info.codecId, wanted.get(info.codecId, 0))

    def _count_refusal(self) -> None:
        self.stats.refused_capacity += 1
        self.observer.refused("rejected_capacity")
        log.warning("refused a call: %d/%d calls active (503, Retry-After %d)",
                    self.gate.active_calls(), self.gate.capacity, self.gate.retry_after)

    def _count_screened(self, refusal: Refusal) -> None:
        self.observer.metrics.sip_refused.labels(refusal.label).inc()
        if self._screen_log.allow(time.monotonic()):
            log.info("refused a request before pjsua: %d %s (%s: %s)", refusal.status,
                     refusal.reason, refusal.label, refusal.detail)

    # --- calls ---------------------------------------------------------------------------

    def incoming(self, acc: pj.Account, prm: pj.OnIncomingCallParam) -> None:
        self._seq += 1
        name = f"call-{self._seq}"
        call = GatewayCall(self, acc, prm.callId, name)
        self.calls[name] = call  # referenced until DISCONNECTED, also when refused
        ci = call.getInfo()
        op = pj.CallOpParam()
        msg = str(prm.rdata.wholeMsg)
        line = request_line(msg)
        if not line.startswith("INVITE "):
            # pjsua takes 'invite' or ' INVITE' for an INVITE, but any non-2xx answer to one
            # from here trips an assertion in pjsip (pjsip_rx_data_free_cloned) and aborts
            # the process (corpus 70, 71): such a request is answered as pjsua would.
            # The request screen refuses them first; this holds if it cannot read rdata.
            call.log.warning("lenient request line %r: no refusal possible, answering",
                             line[:120])
            self._answer(call, ci, op)
            return
        copy = self.gate.invites.check(msg)
        if copy is not None:  # pjsua would make it a second call (gateway/telephony/admission.py)
            call.log.warning("refused: %s", copy)
            op.statusCode = pj.PJSIP_SC_LOOP_DETECTED
            call.hangup(op)
            return
        want_user = self.cfg.sip.user
        ruri = request_uri(msg) or ""
        if want_user and uri_user(ruri) != want_user:
            self.stats.refused_user += 1
            self.observer.refused("rejected_user")
            call.log.info("refused: the Request-URI %r is not for %r", ruri[:120], want_user)
            op.statusCode = pj.PJSIP_SC_NOT_FOUND
            call.hangup(op)
            return
        self._answer(call, ci, op)

    def _answer(self, call: GatewayCall, ci: pj.CallInfo, op: pj.CallOpParam) -> None:
        call.log.info("incoming from %s to %s", ci.remoteUri, ci.localUri)
        op.statusCode = pj.PJSIP_SC_OK
        # the call's record is on disk before the 200 OK leaves: no answered call is missing
        call.record_id = self.observer.answering(call.name, {
            "remote_uri": ci.remoteUri, "local_uri": ci.localUri,
            "remote_contact": ci.remoteContact, "sip_call_id": ci.callIdString}) or ""
        call.remote_uri = ci.remoteUri
        call.answer(op)
        self.stats.answered += 1

    def start_media(self, call: GatewayCall) -> None:
        """Create the call's port and conversation (on the pjsua thread, at media-up)."""
        desk = None if self.office is None else self.office.desk(
            call.record_id, call.remote_uri,
            on_saved=lambda mid, name=call.name: self.observer.message_saved(name, mid))
        session = CallSession(
            call.name, testfault.engines_for(self.engines, self.fault, call.name),
            self.options,
            on_failure=lambda stage, exc, name=call.name: self.control.put(
                lambda: self.fail(name, stage)),
            thread_init=self.register_thread,
            on_turn_done=lambda rec, name=call.name: self.observer.turn_done(name, rec),
            transfer=lambda uri, name=call.name: self.control.put(
                lambda: self.call_control.start_transfer(name, uri)),
            hang_up=lambda cause, name=call.name: self.control.put(
                lambda: self.call_control.bot_hang_up(name, cause)),
            caller=call.remote_uri, desk=desk)
        # audible edges for TTFA, on the session's clock
        edges = self.observer.media_started(call.name, session, AudioEdges(clock=session.clock))
        if self._free_ports:
            port = self._free_ports.pop()
        else:
            port = CallPort(lateness=self.observer.metrics.observe_lateness)
            port.createPort(f"port-{len(self._ports)}", pcm_format())
            self._ports.append(port)
        inbound = edges.tap_inbound(session.push_inbound)
        outbound = edges.tap_outbound(session.pull_outbound)
        if self.recordings is not None and call.record_id:
            call.recording = recording.CallRecording(
                self.recordings / f"{call.record_id}.wav",
                self.cfg.recording.max_minutes * 60, clock=session.clock)
            inbound, outbound = call.recording.tap(inbound, outbound)
        port.attach(inbound, outbound)
        call.port, call.session = port, session
        session.start()

    def register_thread(self, name: str) -> None:
        if not self.ep.libIsThreadRegistered():
            self.ep.libRegisterThread(name)

    def fail(self, name: str, stage: str) -> None:
        """A pipeline stage of this call failed: end this call only."""
        self.stats.failed += 1
        self.observer.pipeline_error(name, stage)
        call = self.calls.get(name)
        if call is not None and not call.ended:
            call.log.error("ending the call after a failure in its %s stage", stage)
            call.hang_up(f"the pipeline's {stage} stage failed",
                         pj.PJSIP_SC_INTERNAL_SERVER_ERROR)

    def _check_media(self, call: GatewayCall, now: float) -> None:
        """Dead peer: no new RTP packet for [sip] media_timeout_seconds -> BYE, media_timeout.
        Runs after each stats poll, so the hang-up comes up to STATS_INTERVAL late."""
        if call.ended or call.bot_cause is not None or not call.rtp:
            return
        rx = call.rtp.get("rx_packets")
        if rx != call.rx_last or not call.rx_expected:  # new packets, or none are due (hold)
            call.rx_last, call.rx_changed_at = rx, now
            return
        silent = now - call.rx_changed_at
        timeout = self.cfg.sip.media_timeout_seconds
        if silent < timeout:
            return
        call.log.warning("no RTP from the caller for %.0f s (%s packets in all; limit %d s): "
                         "hanging up", silent, rx, timeout)
        self.observer.mark_outcome(call.name, "media_timeout")
        call.hang_up(f"no RTP from the caller for {timeout} s")

    def forget(self, call: GatewayCall) -> None:
        """At DISCONNECTED (pjsua thread): free the port, stop the conversation off-thread."""
        self.calls.pop(call.name, None)
        self.stats.ended += 1
        self.call_control.abandon_transfer(call)
        if call.port is not None:  # back to the pool; the call's own media left the bridge
            call.port.detach()
            self._free_ports.append(call.port)
            call.port = None
        if call.recording is not None:  # the port is detached: no frame comes any more
            rec, call.recording = call.recording, None
            rec.close()
            self.observer.recorded(call.name, f"{recording.FOLDER}/{rec.path.name}",
                                   rec.started, rec.seconds)
            self._sweep_recordings()
        session, call.session = call.session, None
        end = self._call_end(call)
        if session is None:
            end()
        else:
            # joining the session's threads takes up to a few seconds: not on pjsua's thread.
            # The close line waits for it: a reply cut by the hang-up is in the session's turn
            # records only once the session has stopped.
            def stop_then_close() -> None:
                try:
                    session.stop()
                finally:
                    end()

            threading.Thread(target=stop_then_close, name=f"{call.name}-stop",
                             daemon=True).start()
        self.call_done(call)

    def _sweep_recordings(self) -> None:
        """Delete recordings past [recording] keep_days: at start, then at most hourly as
        calls end (off the SIP thread)."""
        now = time.monotonic()
        if self.recordings is None or now - self._swept_at < 3600:
            return
        self._swept_at = now
        folder, days = self.recordings, self.cfg.recording.keep_days

        def sweep() -> None:
            gone = recording.sweep(folder, days)
            if gone:
                log.info("recordings: deleted %d older than %g days", gone, days)

        threading.Thread(target=sweep, name="recordings-sweep", daemon=True).start()

    def _call_end(self, call: GatewayCall) -> Callable[[], None]:
        """What the call's close line says, read now (on pjsua's thread): a function that
        writes it."""
        try:
            ci = call.getInfo()
            status, reason = int(ci.lastStatusCode), str(ci.lastReason)
        except pj.Error:
            status, reason = None, ""
        name, by_bot, cause = call.name, call.bot_cause is not None, call.bot_cause or ""
        at = self.observer.now()
        return lambda: self.observer.ended(name, status, reason, by_bot=by_bot, cause=cause,
                                           at=at)

    # --- main loop -----------------------------------------------------------------------

    def run(self) -> None:
        """Serve until ``stop()``; runs the control jobs on this (pjsua-registered) thread."""
        self._serve()

    def _serve(self, done: Callable[[], bool] = lambda: False, deadline: float = math.inf,
               tick: float = math.inf) -> str:
        """Run control jobs and poll RTP statistics until ``stop()`` ("stopped"), ``done()``
        ("done", checked at least every ``tick`` s) or the monotonic ``deadline``."""
        next_poll = time.monotonic() + STATS_INTERVAL
        while not done():
            now = time.monotonic()
            if now >= deadline:
                return "deadline"
            try:
                job = self.control.get(timeout=max(0.0, min(next_poll, deadline, now + tick)
                                                   - now))
            except queue.Empty:
                if time.monotonic() >= next_poll:
                    self._poll_stream_stats()
                    next_poll = time.monotonic() + STATS_INTERVAL
                continue
            if job is None:
                return "stopped"
            try:
                job()
            except Exception:  # noqa: BLE001 - a failed job must not stop the gateway
                log.exception("control job failed")
        return "done"

    def _poll_stream_stats(self) -> None:
        # In its own frame: a loop variable left in run() would keep the last call polled
        # alive after it ended, and pjsua2's ~Call, run whenever that reference goes, hangs
        # up (and unbinds) whichever new call has been given the same call id meanwhile.
        now = time.monotonic()
        slots = self.gate.active_calls()
        if slots != len(self.calls):
            log.debug("pjsua holds %d call slot(s), the gateway knows %d call(s)", slots,
                      len(self.calls))
        for call in list(self.calls.values()):
            call.poll_stream_stats()
            try:
                self._check_media(call, now)
                self.call_control.check_transfer(call, now)
            except Exception:  # noqa: BLE001 - one call's check must not stop the others
                call.log.exception("media timeout / transfer check failed")

    def stop(self) -> None:
        self.control.put(None)

    def _hangup_all(self, cause: str) -> None:
        # In its own frame, like _poll_stream_stats: a loop variable left in shutdown() kept
        # the last call alive past libDestroy(), and its ~Call then aborted the process
        # (pjsua_call_set_user_data assertion, exit -6).
        for call in list(self.calls.values()):
            if not call.ended:
                with contextlib.suppress(pj.Error):
                    call.hang_up(cause)

    def shutdown(self, drain: float | None = None, deadline: float = 5.0) -> None:
        """Graceful drain, then destroy pjsua: new INVITEs get 503 from now on; active calls
        are served (jobs, stats, media timeouts) until they end or ``drain`` seconds pass
        (default [sip] drain_seconds; a second ``stop()`` cuts it short); those left get a
        BYE, and up to ``deadline`` seconds to end."""
        drain = self.cfg.sip.drain_seconds if drain is None else drain
        self.gate.draining = True
        if self.calls:
            log.info("draining: %d call(s) up, new calls refused (503); the last ones get a "
                     "BYE in %d s", len(self.calls), drain)
        how = self._serve(lambda: not self.calls, time.monotonic() + drain, tick=0.1)
        if self.calls:
            log.info("drain %s: hanging up %d call(s)",
                     "cut short by a second signal" if how == "stopped" else "deadline reached",
                     len(self.calls))
            self._hangup_all("the gateway shut down (drain deadline)" if how == "deadline"
                             else "the gateway shut down")
        self._serve(lambda: not self.calls, time.monotonic() + deadline, tick=0.1)
        self.ep.hangupAllCalls()
        time.sleep(0.2)
        self.calls.clear()
        gc.collect()  # no Call may outlive the library (its destructor asserts then)
        self.ep.libDestroy()
