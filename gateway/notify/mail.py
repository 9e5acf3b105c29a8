"""Delivery by e-mail: one mail per message the bot took, its recording attached.

Every header built from what a caller said goes through ``clean_text`` first: a CR/LF in a
name would otherwise start a header of the caller's choosing (``Bcc:``), a bidi override
would reorder the subject line. ``EmailMessage`` encodes what is not ASCII (RFC 2047).
The Message-ID comes from the event's key, so a mail sent twice (at-least-once) can be
recognised as one.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import re
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from gateway.calls.records import LONG_TEXT_LIMIT, clean_text

log = logging.getLogger(__name__)

SECURITY = ("starttls", "tls", "none")


def _field(event: dict[str, Any], key: str, limit: int = 200) -> str:
    value = event.get(key)
    return "" if value is None else clean_text(value, limit)


def _seconds(x: Any) -> str:
    return f"{x:.1f} s" if isinstance(x, int | float) and not isinstance(x, bool) else "?"


def subject(event: dict[str, Any]) -> str:
    name = _field(event, "name", 80) or "unknown caller"
    callback = _field(event, "callback", 40)
    return f"Message from {name} ({callback})" if callback else f"Message from {name}"


def text_body(event: dict[str, Any], audio_note: str) -> str:
    rows = [("Name", _field(event, "name") or "(not given)"),
            ("Call back", _field(event, "callback") or "(not given)"),
            ("Time", _field(event, "time")),
            ("Caller", _field(event, "caller")),
            ("Recording", audio_note),
            ("Call id", _field(event, "call_id")),
            ("Message id", _field(event, "id"))]
    lines = [f"{label + ':':<12}{value}" for label, value in rows]
    message = _field(event, "message", LONG_TEXT_LIMIT) or "(no words)"
    return "\n".join([*lines, "", "Message:", message, ""])


class MailSender:
    """Sends message events by SMTP to ``recipients``."""

    def __init__(self, host: str, port: int, security: str, user: str, password: str,
                 sender: str, recipients: Sequence[str], timeout: float = 10.0, *,
                 context: ssl.SSLContext | None = None) -> None:
        if security not in SECURITY:
            raise ValueError(f"security must be one of {', '.join(SECURITY)}")
        self.host, self.port, self.security = host, port, security
        self._user, self._password = user, password
        self.sender = sender
        self.recipients = tuple(recipients)
        self._timeout = timeout
        self._context = context

    def build(self, event: dict[str, Any]) -> EmailMessage:
        """The mail of a message event."""
        msg = EmailMessage()
        msg["Subject"] = subject(event)
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        ts = event.get("ts")
        wall = ts if isinstance(ts, int | float) and not isinstance(ts, bool) else None
        msg["Date"] = email.utils.formatdate(wall, usegmt=True)
        domain = email.utils.parseaddr(self.sender)[1].rpartition("@")[2] or "voicebot"
        local = re.sub(r"[^A-Za-z0-9.-]", "-", str(event.get("key", "")))[:120] or None
        msg["Message-ID"] = (f"<{local}@{domain}>" if local
                             else email.utils.make_msgid(domain=domain))
        audio, note = self._audio(event)
        msg.set_content(text_body(event, note))
        if audio is not None:
            name = re.sub(r"[^A-Za-z0-9._-]", "_", str(event.get("id") or "message"))[:80]
            msg.add_attachment(audio, maintype="audio", subtype="wav", filename=f"{name}.wav")
        return msg

    @staticmethod
    def _audio(event: dict[str, Any]) -> tuple[bytes | None, str]:
        seconds = _seconds(event.get("audio_seconds"))
        path = event.get("audio_path")
        if not isinstance(path, str) or not path:
            return None, "none"
        try:
            return Path(path).read_bytes(), f"{seconds}, attached"
        except FileNotFoundError:
            return None, f"{seconds}, file missing on the gateway"
        # another OSError (a disk error) propagates: the mail is retried, not sent without it

    def send(self, event: dict[str, Any]) -> None:
        """Mail a message event, or raise (smtplib.SMTPException, OSError)."""
        if event.get("event") != "message":  # not ours: retrying would block the queue
            log.warning("mail: skipped a %s event (mail takes messages only)",
                        clean_text(event.get("event"), 40))
            return
        msg = self.build(event)
        if self.security == "tls":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self._timeout,
                                                  context=self._context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self._timeout)
        try:
            if self.security == "starttls":
                smtp.starttls(context=self._context or ssl.create_default_context())
            if self._user:
                smtp.login(self._user, self._password)
            refused = smtp.send_message(
                msg, from_addr=email.utils.parseaddr(self.sender)[1],
                to_addrs=[email.utils.parseaddr(r)[1] for r in self.recipients])
        finally:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                with contextlib.suppress(OSError):
                    smtp.close()
        if refused:  # the others have it: a retry would send them a second copy
            log.warning("mail: %d of %d recipients refused message %s",
                        len(refused), len(self.recipients), _field(event, "id"))
