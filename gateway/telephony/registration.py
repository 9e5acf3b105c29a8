"""Registration to a registrar or SIP trunk: the pure logic (no pjsua2 here).

The pjsua2 side lives in ``gateway/telephony/sip.py`` (``Gateway._configure_registration`` and
``BotAccount.onRegState`` in ``gateway/telephony/call.py``). What happens, in order:

- at start the account sends REGISTER (``registerOnAdd``) for ``[registration] aor`` with the
  gateway's own Contact (``[sip] public_address`` or the bound address, ``[sip] port``) and
  ``Expires: expires_seconds``; a 401/407 challenge is answered with the digest credentials
  (``username``, ``password``, ``realm``; realm ``*`` answers any realm);
- on a 2xx, pjsua refreshes the binding by itself ``refresh_margin(granted)`` seconds before
  the expiry the registrar granted (``regConfig.delayBeforeRefreshSec``);
- on a failure (a final 401/403 after the credentials were tried, 404, 408 timeout, 5xx, a
  transport error, or a failed refresh) pjsua's own retry is switched off
  (``retryIntervalSec = 0``: it only knows a fixed interval) and the gateway retries with an
  exponential back-off (``Backoff``): retry_min_seconds, doubling up to retry_max_seconds,
  each with +-10 % jitter so many gateways do not retry in lock-step; reset by a success.
  The gateway keeps answering direct calls meanwhile.
"""

from __future__ import annotations

import enum
import random
import re
from dataclasses import dataclass, field
from typing import Any


class RegState(enum.Enum):
    DISABLED = "disabled"          # no [registration] registrar
    REGISTERING = "registering"    # REGISTER sent, no final answer yet
    REGISTERED = "registered"      # 2xx with a non-zero expiry
    FAILED = "failed"              # last attempt failed; a retry is scheduled
    UNREGISTERED = "unregistered"  # 2xx with expiry 0 (shutdown)


STATES = tuple(s.value for s in RegState)

_URI = re.compile(r"^sips?:(?:[^@;>\s]+@)?(?P<hostport>\[[0-9a-fA-F:.]+\](?::\d+)?|"
                  r"[A-Za-z0-9.\-]+(?::\d+)?)(?:;[^\s]*)?$")


def registrar_hostport(uri: str) -> str:
    """``sip:pbx.example.org:5060;transport=udp`` -> ``pbx.example.org:5060``."""
    m = _URI.match(uri.strip())
    if not m:
        raise ValueError(f"not a SIP URI: {uri!r}")
    return m.group("hostport")


def default_aor(registrar: str, username: str) -> str:
    return f"sip:{username}@{registrar_hostport(registrar)}"


def check_config(reg: Any) -> None:
    """Cross-field checks of a ``RegistrationConfig`` (raises ValueError naming the key)."""
    if not reg.registrar:
        return
    try:
        registrar_hostport(reg.registrar)
    except ValueError:
        raise ValueError(f"[registration] registrar = {reg.registrar!r} is invalid: expected a "
                         "SIP URI like 'sip:pbx.example.org:5060'") from None
    if not reg.registrar.startswith("sip:"):
        raise ValueError(f"[registration] registrar = {reg.registrar!r} is invalid: only "
                         "sip: (UDP) is supported; put TLS in front (edge/)")
    if not reg.username:
        raise ValueError("[registration] username is required when registrar is set")
    if reg.aor and not _URI.match(reg.aor):
        raise ValueError(f"[registration] aor = {reg.aor!r} is invalid: expected a SIP URI "
                         "like 'sip:bot@pbx.example.org'")
    if reg.retry_max_seconds < reg.retry_min_seconds:
        raise ValueError("[registration] retry_max_seconds must not be below "
                         "retry_min_seconds")


def refresh_margin(expires: int) -> int:
    """Seconds before expiry at which pjsua re-registers (``delayBeforeRefreshSec``): a tenth
    of the lifetime, at least 5 s (pjsua's default) and at most 60 s."""
    return max(5, min(60, expires // 10))


def is_success(code: int, expiration: int) -> bool:
    return 200 <= code < 300 and expiration > 0


def state_for(code: int, expiration: int) -> RegState:
    if 200 <= code < 300:
        return RegState.REGISTERED if expiration > 0 else RegState.UNREGISTERED
    if 100 <= code < 200:
        return RegState.REGISTERING
    return RegState.FAILED


_HINTS = {
    401: "the registrar rejected the credentials: check [registration] username, password "
         "(VOICEBOT_REGISTRATION_PASSWORD) and realm",
    407: "the proxy rejected the credentials: check [registration] username, password "
         "(VOICEBOT_REGISTRATION_PASSWORD) and realm",
    403: "forbidden: wrong credentials, or this user may not register from here",
    404: "the registrar does not know this user ([registration] aor/username)",
    408: "no answer from the registrar (address, port, firewall?)",
    423: "the registrar wants a longer expiry ([registration] expires_seconds)",
    503: "the registrar is unavailable",
}


def describe_failure(code: int, reason: str) -> str:
    """A log line's worth on a failed REGISTER (never holds a credential)."""
    hint = _HINTS.get(code)
    if hint is None:
        if code <= 0 or code >= 700:  # pjsip status codes (e.g. 171060): not from the wire
            hint = "transport error"
        elif code >= 500:
            hint = "server error at the registrar"
        else:
            hint = "refused by the registrar"
    return f"{code} {reason}".strip() + f" ({hint})"


@dataclass
class Backoff:
    """Exponential back-off between registration attempts: ``lo``, 2*lo, 4*lo ... ``hi``,
    each multiplied by a jitter factor in [1-jitter, 1+jitter]; ``reset()`` after a success."""

    lo: float
    hi: float
    jitter: float = 0.1
    rng: random.Random = field(default_factory=random.Random)
    failures: int = 0

    def next_delay(self) -> float:
        base = min(self.hi, self.lo * (2 ** min(self.failures, 30)))
        self.failures += 1
        if self.jitter:
            base *= 1 + self.rng.uniform(-self.jitter, self.jitter)
        return max(0.5, base)

    def reset(self) -> None:
        self.failures = 0
