"""Call control on the SIP side: keypad digits, blind transfer, bot hang-up.

The decisions are pure functions (``transfer_verdict``, ``PendingTransfer``...); the
gateway's ``CallControl`` carries them out with pjsua2, on the control thread, on the calls
it is given (``ControlledCall``: what it needs of a ``GatewayCall``).

- DTMF: pjsua2 2.15 calls ``Call.onDtmfDigit`` exactly once per key press for both RFC 4733
  telephone-events (method RFC2833, at the event's start) and SIP INFO
  ``application/dtmf-relay`` (method SIP_INFO; pjsua answers the INFO 200 itself). It also
  calls ``onDtmfEvent`` for both (RFC 4733: start, every update and the end; INFO: one end
  event), so only ``onDtmfDigit`` is used. INFO ``application/dtmf`` (a bare digit body) is not
  understood by pjsua: it answers ``500 Unhandled by dialog usages`` and reports no digit.
- Blind transfer (RFC 3515 REFER, RFC 5589 section 6): the gateway (transferor) sends REFER
  to the caller (transferee), who places the new call and reports its progress in NOTIFYs
  (message/sipfrag). pjsua2 reports them in ``Call.onCallTransferStatus``: the REFER's 202 as
  (100 "Accepted", not final), each NOTIFY's sipfrag status, a refused REFER as its status with
  ``finalNotify``. A final 2xx means the transferee reached the target: the gateway then ends
  its own call (BYE). Anything else final, ``xfer()`` raising, or no final NOTIFY within
  ``TRANSFER_TIMEOUT`` seconds is a failure, and the conversation goes on.
- A REFER *from* the caller: pjsua2 left at its default answers 202 and dials the Refer-To
  URI itself (measured; through a registered trunk that is toll fraud, and the stray call
  crashed the gateway at shutdown). ``GatewayCall.onCallTransferRequest`` answers 603.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import pjsua2 as pj

if TYPE_CHECKING:
    from gateway.calls.observer import CallObserver

TRANSFER_TIMEOUT = 30.0
"""Seconds from the REFER to a final NOTIFY before the transfer counts as failed."""
TIMEOUT_STATUS = 408
LOCAL_FAILURE_STATUS = 500
"""Status reported when the REFER could not be sent at all (pjsua raised)."""
BUSY_STATUS = 491
"""Status reported for a second transfer asked while one is pending (Request Pending)."""


@dataclass
class PendingTransfer:
    """A REFER sent, its final outcome not known yet."""
    target: str
    sent_at: float = field(default_factory=time.monotonic)
    timeout: float = TRANSFER_TIMEOUT
    progress: list[tuple[int, str]] = field(default_factory=list)
    """Provisional reports seen (status, reason): the 202 (as 100), NOTIFY 100/180..."""

    @property
    def deadline(self) -> float:
        return self.sent_at + self.timeout

    def expired(self, now: float) -> bool:
        return now >= self.deadline


def transfer_verdict(status: int, final: bool) -> str | None:
    """One ``onCallTransferStatus`` report -> "accepted", "failed", or None (still pending).

    Only a final report decides: a 2xx sipfrag accepted, anything else failed (a final report
    below 200 means the subscription ended without the new call's outcome). A failure status
    (>= 300) in a report not flagged final still ends the transfer: the new call failed."""
    if final:
        return "accepted" if 200 <= status < 300 else "failed"
    if status >= 300:
        return "failed"
    return None


def dtmf_method_name(method: int, rfc2833: int, sip_info: int) -> str:
    """pjsua's DTMF method constant -> the name in records and metrics."""
    if method == rfc2833:
        return "rfc4733"
    if method == sip_info:
        return "sip_info"
    return f"method-{method}"


def normalize_digit(digit: Any) -> str:
    return str(digit).strip().upper()[:1]


class Session(Protocol):
    def on_dtmf(self, digit: str) -> None: ...

    def on_transfer_result(self, accepted: bool, status: int, reason: str) -> None: ...


class ControlledCall(Protocol):
    """What call control needs of a call (``gateway.telephony.call.GatewayCall``)."""
    name: str
    log: logging.LoggerAdapter
    ended: bool
    bot_cause: str | None
    transfer: PendingTransfer | None
    timed_out_target: str | None
    session: Session | None

    def xfer(self, dest: str, prm: Any) -> None:
        """pjsua2's REFER."""

    def hang_up(self, cause: str, status: int | None = None) -> None:
        """The gateway ends the call (BYE once answered), for ``cause``."""


class CallControl:
    """The gateway's keypad, transfer and bot hang-up handling, on the calls of ``calls``
    (the gateway's live calls by name; control thread, but ``dtmf``)."""

    def __init__(self, calls: dict[str, Any], observer: CallObserver) -> None:
        self.calls: dict[str, ControlledCall] = calls
        self.observer = observer

    def dtmf(self, call: ControlledCall, digit: str, method: int) -> None:
        """A key the caller pressed (pjsua thread): into the record, then the conversation."""
        how = dtmf_method_name(method, pj.PJSUA_DTMF_METHOD_RFC2833,
                               pj.PJSUA_DTMF_METHOD_SIP_INFO)
        call.log.debug("key %r (%s)", digit, how)  # digits may be PINs: not at info
        self.observer.dtmf(call.name, digit, how)
        if call.session is not None and not call.ended:
            call.session.on_dtmf(digit)

    def bot_hang_up(self, name: str, cause: str) -> None:
        """The conversation ended the call (its goodbye has played): BYE."""
        call = self.calls.get(name)
        if call is None or call.ended:
            return
        call.log.info("hanging up: %s", cause)
        self.observer.mark_outcome(name, "bot_hangup")
        call.hang_up(cause)

    def start_transfer(self, name: str, target: str) -> None:
        """Blind transfer (control thread): REFER the caller to ``target`` (already checked
        against [tools] transfer_targets by the conversation)."""
        call = self.calls.get(name)
        if call is None or call.ended or call.bot_cause is not None:
            return
        if call.transfer is not None:
            call.log.warning("transfer to %s refused: the transfer to %s is still pending",
                             target, call.transfer.target)
            self._tell_transfer(call, False, BUSY_STATUS, "a transfer is already pending")
            return
        call.transfer = PendingTransfer(target)
        call.timed_out_target = None
        call.log.info("transferring to %s (REFER)", target)
        try:
            call.xfer(target, pj.CallOpParam(True))
        except pj.Error as e:
            call.log.warning("REFER to %s failed: %s", target, e.info())
            self._end_transfer(call, "failed", LOCAL_FAILURE_STATUS,
                               f"REFER not sent: {e.reason or e.title}")

    def transfer_status(self, name: str, status: int, reason: str, final: bool) -> None:
        """onCallTransferStatus, on the control thread: progress, or the final outcome."""
        call = self.calls.get(name)
        if call is None or call.ended:
            return
        pending = call.transfer
        if pending is None:
            if call.timed_out_target and final and 200 <= status < 300:
                # the transferee reached the target after all: it is on the new call now
                call.log.warning("transfer to %s succeeded after its timeout (%d %s): hanging "
                                 "up", call.timed_out_target, status, reason)
                self.observer.mark_outcome(name, "transferred")
                call.hang_up(f"transferred to {call.timed_out_target} (late "
                                    f"{status} {reason})")
            return
        verdict = transfer_verdict(status, final)
        if verdict is None:
            pending.progress.append((status, reason))
            call.log.info("transfer to %s: %d %s", pending.target, status, reason)
            return
        self._end_transfer(call, verdict, status, reason)

    def _end_transfer(self, call: ControlledCall, outcome: str, status: int, reason: str) -> None:
        pending, call.transfer = call.transfer, None
        target = pending.target if pending is not None else "?"
        call.log.info("transfer to %s %s: %d %s", target, outcome, status, reason)
        self.observer.transfer(call.name, target, status, outcome, reason)
        if outcome == "timeout":
            call.timed_out_target = target
        self._tell_transfer(call, outcome == "accepted", status, reason)
        if outcome == "accepted":  # RFC 5589: the transferor leaves once the target answered
            self.observer.mark_outcome(call.name, "transferred")
            call.hang_up(f"transferred to {target} ({status} {reason})")

    def _tell_transfer(self, call: ControlledCall, accepted: bool, status: int,
                       reason: str) -> None:
        if call.session is not None:
            call.session.on_transfer_result(accepted, status, reason)

    def abandon_transfer(self, call: ControlledCall) -> None:
        """The call ended before its REFER's outcome came: record the transfer as failed."""
        pending, call.transfer = call.transfer, None
        if pending is not None:
            self.observer.transfer(call.name, pending.target, None, "failed",
                                   "the call ended before the transfer's final NOTIFY")

    def check_transfer(self, call: ControlledCall, now: float) -> None:
        pending = call.transfer
        if pending is None or call.ended or not pending.expired(now):
            return
        seen = ", ".join(f"{s} {r}" for s, r in pending.progress) or "nothing"
        self._end_transfer(call, "timeout", TIMEOUT_STATUS,
                           f"no final NOTIFY within {pending.timeout:.0f} s (saw: {seen})")
