"""pjsua2's callback objects of the gateway: a call and the account.

Their callbacks arrive on pjsua's thread; each copies what it needs and hands the work to
their ``CallHost`` (``gateway.telephony.sip.Gateway``), mostly through its control queue.
"""

from __future__ import annotations

import contextlib
import logging
import queue
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import pjsua2 as pj

from gateway.telephony.call_control import CallControl, PendingTransfer, normalize_digit
from gateway.telephony.media_port import CallPort
from pipeline.session import CallSession

if TYPE_CHECKING:
    from gateway.calls.observer import CallObserver
    from gateway.calls.recording import CallRecording

# the SIP glue (call.py, sip.py) logs under one name: a call's signalling greps as one
log = logging.getLogger("gateway.sip")


class CallHost(Protocol):
    """What the calls and the account hand their callbacks to
    (``gateway.telephony.sip.Gateway``)."""
    control: queue.SimpleQueue[Callable[[], None]]
    """Work for the control thread."""
    call_control: CallControl
    observer: CallObserver

    def fail(self, name: str, stage: str) -> None: ...

    def forget(self, call: GatewayCall) -> None: ...

    def start_media(self, call: GatewayCall) -> None: ...

    def incoming(self, acc: pj.Account, prm: pj.OnIncomingCallParam) -> None: ...

    def registration_state(self, code: int, reason: str, expiration: int) -> None: ...


class GatewayCall(pj.Call):
    def __init__(self, gw: CallHost, acc: pj.Account, call_id: int, name: str) -> None:
        super().__init__(acc, call_id)
        self.gw = gw
        self.name = name
        self.port: CallPort | None = None
        self.session: CallSession | None = None
        self.record_id = ""  # the call record's id (set as it is answered)
        self.remote_uri = ""  # the caller's From URI
        self.recording: CallRecording | None = None  # [recording]: this call's WAV
        self._slot: int | None = None
        self.ended = False
        self.rtp: dict[str, float | int | str] = {}  # last stream statistics seen
        self.rx_expected = True  # RTP is due from the caller (sendrecv: not on hold)
        self.rx_last: int | None = None  # rx packet count at the last change seen
        self.rx_changed_at = 0.0  # monotonic time of that change (dead-peer detection)
        self.bot_cause: str | None = None  # why the gateway hung up (None: it did not)
        self.confirmed = False  # the caller's ACK came (the call reached CONFIRMED)
        self.transfer: PendingTransfer | None = None  # a REFER awaiting its final outcome
        self.timed_out_target: str | None = None  # a transfer given up on (late NOTIFYs)
        self.log = logging.LoggerAdapter(log, {"call": name})

    # pjsua2 callbacks: an exception escaping one would keep this call object alive in the
    # traceback, and a Call destroyed late hangs up whichever call reused its slot.

    def onCallState(self, prm: pj.OnCallStateParam) -> None:  # noqa: N802 - pjsua2 API
        try:
            self._on_state()
        except Exception:  # noqa: BLE001
            self.log.exception("call state handling failed")

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:  # noqa: N802
        try:
            self._on_media_state()
        except Exception:  # noqa: BLE001
            self.log.exception("media set-up failed; ending the call")
            self.gw.control.put(lambda name=self.name: self.gw.fail(name, "media"))

    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:  # noqa: N802
        # once per key press, RFC 4733 and SIP INFO dtmf-relay alike
        # (gateway/telephony/call_control.py)
        try:
            self.gw.call_control.dtmf(self, normalize_digit(prm.digit), int(prm.method))
        except Exception:  # noqa: BLE001
            self.log.exception("DTMF handling failed")

    def onCallTransferStatus(self, prm: pj.OnCallTransferStatusParam) -> None:  # noqa: N802
        try:
            status, reason, final = int(prm.statusCode), str(prm.reason), bool(prm.finalNotify)
            prm.cont = not final  # no reports after the final one
            self.gw.control.put(lambda name=self.name: self.gw.call_control.transfer_status(
                name, status, reason, final))
        except Exception:  # noqa: BLE001
            self.log.exception("transfer status handling failed")

    def onCallTransferRequest(self, prm: pj.OnCallTransferRequestParam) -> None:  # noqa: N802
        # A REFER from the caller: left at its default (202), pjsua would place a new call to
        # whatever the Refer-To names, through our trunk (toll fraud). The bot transfers
        # callers; it is never transferred: 603, the call goes on.
        prm.statusCode = pj.PJSIP_SC_DECLINE
        with contextlib.suppress(Exception):
            self.log.warning("refused the caller's REFER to %s (603 Decline)", prm.dstUri)

    def _on_state(self) -> None:
        ci = self.getInfo()
        self.log.debug("state %s (%s)", ci.stateText, ci.lastStatusCode)
        if ci.state == pj.PJSIP_INV_STATE_CONFIRMED:
            self.confirmed = True
        if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED and not self.ended:
            if not self.confirmed and self.bot_cause is None and ci.lastStatusCode == 408:
                # PJSIP itself sent the BYE: its 200 OK went unacknowledged for 64*T1
                self.bot_cause = "no ACK from the caller for the 200 OK (32 s)"
            self.poll_stream_stats()
            self.ended = True
            self.log.info("ended: %s %s; rtp %s", ci.lastStatusCode, ci.lastReason, self.rtp)
            if self.port is not None:
                self.log.info("frames in %d (odd %d, empty %d), out %d", self.port.frames_in,
                              self.port.odd_frames, self.port.empty_frames, self.port.frames_out)
            # Drop every reference now, inside the callback: pjsua may reuse this call slot
            # for the next INVITE, and a Call object destroyed later would clear that call's
            # user data (pjsua2's destructor works on the slot number).
            self.gw.forget(self)

    def hang_up(self, cause: str, status: int | None = None) -> None:
        """The gateway ends this call (BYE once answered), for ``cause`` (its record says)."""
        if self.bot_cause is None:
            self.bot_cause = cause
        op = pj.CallOpParam()
        if status is not None:
            op.statusCode = status
        try:
            self.hangup(op)
        except pj.Error as e:
            self.log.warning("hangup failed: %s", e.info())

    def poll_stream_stats(self) -> None:
        """Copy PJSIP's RTP / jitter-buffer statistics (while the stream exists)."""
        if self._slot is None or self.ended:
            return
        try:
            st = self.getStreamStat(0)
            si = self.getStreamInfo(0)
        except pj.Error:
            return
        rx, jb = st.rtcp.rxStat, st.jbuf
        # RTP is due from the caller only on a sendrecv stream: a caller who holds us with
        # a=sendonly (our side recvonly) may send music on hold, or nothing at all
        self.rx_expected = si.dir == pj.PJMEDIA_DIR_ENCODING_DECODING
        self.rtp = {
            "codec": f"{si.codecName}/{si.codecClockRate}",
            "remote_rtp": si.remoteRtpAddress,
            "rx_packets": rx.pkt, "rx_lost": rx.loss, "rx_dup": rx.dup,
            "rx_reorder": rx.reorder, "rx_discard": rx.discard,
            "rx_jitter_ms_mean": rx.jitterUsec.mean / 1000.0,
            "rx_jitter_ms_last": rx.jitterUsec.last / 1000.0,
            "jb_delay_ms_avg": jb.avgDelayMsec, "jb_prefetch": jb.prefetch,
            "jb_lost": jb.lost, "jb_discard": jb.discard, "jb_empty": jb.empty,
            "tx_packets": st.rtcp.txStat.pkt,
        }
        self.gw.observer.rtp(self.name, self.rtp)

    def _on_media_state(self) -> None:
        ci = self.getInfo()  # keep the info alive while iterating (field notes)
        media = ci.media
        for i in range(len(media)):
            mi = media[i]
            if mi.type != pj.PJMEDIA_TYPE_AUDIO or mi.status != pj.PJSUA_CALL_MEDIA_ACTIVE:
                continue
            am = self.getAudioMedia(i)
            if self.port is None:
                self.gw.start_media(self)
            assert self.port is not None
            # at every update: a re-INVITE (unhold...) rebuilds the stream, often on the same
            # slot, without its bridge connections (connecting twice is a no-op)
            am.startTransmit(self.port)
            self.port.startTransmit(am)
            if self._slot != am.getPortId():
                self._slot = am.getPortId()
                self.log.info("media up: slot %d", self._slot)
            return


class BotAccount(pj.Account):
    def __init__(self, gw: CallHost) -> None:
        super().__init__()
        self.gw = gw

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:  # noqa: N802
        try:
            self.gw.incoming(self, prm)
        except Exception:  # noqa: BLE001 - refuse this call, keep serving the others
            log.exception("incoming call handling failed")

    def onRegState(self, prm: pj.OnRegStateParam) -> None:  # noqa: N802
        # pjsua's thread: copy three fields, log, set a gauge, maybe arm a timer; nothing slow
        try:
            self.gw.registration_state(int(prm.code), str(prm.reason), int(prm.expiration))
        except Exception:  # noqa: BLE001
            log.exception("registration state handling failed")
