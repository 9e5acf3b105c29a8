"""Call control on the SIP side, without pjsua: keypad digits, blind transfer, bot hang-up.

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

import time
from dataclasses import dataclass, field
from typing import Any

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

