"""End to end: a caller leaves a message on a real call, and the business hears of it.

A real SIP client (baresip) calls from a phone number, and a voice that is not the bot's
(espeak-ng) asks to leave a message, gives a name, turns down the number it calls from for
another one, confirms the read-back and says the message. The message record, its WAV (the
caller's words, transcribed again), the call record, a signed webhook at a local HTTP
receiver and a mail with the WAV at a local SMTP server (aiosmtpd) are checked. The receiver
is down while the call runs and the gateway is killed (SIGKILL) before it could deliver: the
restarted gateway delivers the message, and the end of the call, once each.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import signal
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from gateway.inbox.store import read_messages
from gateway.notify.webhook import verify
from testbed.harness import GatewayProcess, baresip_call, espeak, need, wait_closed
from testbed.heard import transcribe
from testbed.receivers import Mailbox, Receiver, smtp_server

SECRET = "e2e-secret"
VOICE = "en-us"  # espeak-ng's American voice: neither Piper nor the other tests' voice
CALLER = "+15551230000"


@pytest.fixture(scope="module")
def whisper():
    from pipeline import models
    from pipeline.stt.whisper import WhisperStt

    return WhisperStt(models.resolve().whisper_dir)


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    with smtp_server() as server:
        yield server


def script(tmp_path: Path, lines: list[tuple[str, float]], lead: float = 6.0) -> np.ndarray:
    """The caller's microphone: ``lead`` s of silence (the greeting), then each line spoken
    and that many seconds of silence (the bot's answer)."""
    rate = 16000
    parts = [np.zeros(int(lead * rate), np.int16)]
    for i, (text, gap) in enumerate(lines):
        parts.append(espeak(text, tmp_path / f"line{i}.wav", rate=rate, voice=VOICE))
        parts.append(np.zeros(int(gap * rate), np.int16))
    return np.concatenate(parts).astype(np.int16)


def wait_for(cond, timeout: float, what: str, gw: GatewayProcess) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} after {timeout} s:\n{gw.log()[-3000:]}")
        time.sleep(0.2)


def test_a_caller_leaves_a_message_and_the_business_gets_it_once(tmp_path, whisper, mailbox):
    need("baresip", "espeak-ng", "sox")
    box, smtp_port = mailbox
    receiver = Receiver()
    receiver.status = 503  # the business's receiver is down during the call
    toml = (
        f'[notify]\nwebhook_url = "{receiver.url}"\nsmtp_host = "127.0.0.1"\n'
        f'smtp_port = {smtp_port}\nsmtp_security = "none"\n'
        'mail_from = "Voicebot <bot@example.org>"\nmail_to = ["desk@example.org"]\n'
        "max_backoff_seconds = 2.0\n")
    gw = GatewayProcess(tmp_path / "gw", extra_toml=toml,
                        env={"VOICEBOT_WEBHOOK_SECRET": SECRET})
    messages = gw.workdir / "messages.jsonl"
    try:
        gw.start()
        source = script(tmp_path, [
            ("Hello. Can I leave a message, please?", 8.0),
            ("My name is Maria Lopez.", 10.0),
            ("No.", 6.0),  # not the number it calls from: the bot asks for one
            # one digit at a time, as on the phone: espeak runs "zero eight" together and
            # the speech-to-text then loses the zero
            ("six, one, seven. two, five, three. four, four, zero, eight.", 10.0),
            ("Yes, correct.", 6.0),
            ("Please tell the doctor that my dog is limping, and I need an appointment this "
             "week.", 7.0),
            ("No, that's all.", 8.0),
        ])
        baresip_call(tmp_path / "caller", gw.uri, source, user=CALLER,
                     until=lambda: bool(read_messages(messages)) and len(box.envelopes) > 0)
        # -- the message, on disk before the bot said so ----------------------------------
        [msg] = read_messages(messages)
        print("message:", json.dumps({k: msg[k] for k in ("name", "callback", "message")}))
        assert msg["callback"] == "6172534408", msg
        assert re.search(r"\blopez\b", msg["name"], re.IGNORECASE), msg
        assert re.search(r"\b(limping|appointment)\b", msg["message"], re.IGNORECASE), msg
        assert msg["caller"].startswith(f"<sip:{CALLER}@") or CALLER in msg["caller"], msg
        said = " ".join(e["text"] for e in msg["exchange"] if e["who"] == "bot")
        # the number it calls from was offered, then the caller's own one read back
        assert "1, 5 5 5, 1 2 3, 0 0 0 0" in said and "6 1 7, 2 5 3, 4 4 0 8" in said, said
        wav = gw.workdir / msg["audio"]
        with wave.open(str(wav)) as w:
            assert (w.getnchannels(), w.getframerate()) == (1, 16000)
            pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)
        assert 3.0 < len(pcm) / 16000 < 20.0, len(pcm) / 16000
        heard = transcribe(whisper, pcm, 16000).lower()
        print("the message's audio says:", heard)
        assert re.search(r"\b(limping|appointment)\b", heard), heard
        # -- mail: delivered during the call (the SMTP server is up) ----------------------
        [env] = box.envelopes
        assert env.rcpt_tos == ["desk@example.org"]
        mail = email.message_from_bytes(env.content, policy=email.policy.default)
        body = mail.get_body(("plain",)).get_content()
        assert "555 213 4409" in body or "6172534408" in body, body
        [att] = [p for p in mail.iter_attachments()]
        assert att.get_content_type() == "audio/wav"
        assert att.get_content() == wav.read_bytes()
        # -- the call's record names the message -----------------------------------------
        [rec] = wait_closed(gw.workdir / "calls.jsonl")
        assert rec["id"] == msg["call_id"] and rec["messages"] == [msg["id"]], rec
        tools = [t for turn in rec["turns"] for t in turn["tools"]]
        assert any(t["name"] == "take_message" and t.get("outcome") == "ok"
                   and t["result"]["message_id"] == msg["id"] for t in tools), tools
        # -- the webhook was refused; the gateway dies before it could deliver --------------
        wait_for(lambda: receiver.refused >= 1, 10, "no webhook attempt", gw)
        gw.proc.send_signal(signal.SIGKILL)
        gw.proc.wait()
        gw._log.close()
        outbox = gw.workdir / "calls.notify" / "outbox" / "webhook"
        queued = list(outbox.glob("*.json"))
        assert queued, "the refused webhook is not queued on disk"
        # -- restarted, with the receiver up: delivered once -----------------------------
        receiver.status = 200
        gw.start()
        wait_for(lambda: len(receiver.accepted) >= 2, 30, "the webhooks never came", gw)
        time.sleep(1.5)  # a second delivery of either would come now
        by_event = {}
        for headers, body_bytes, event in receiver.accepted:
            assert verify(SECRET.encode(), headers["X-Voicebot-Timestamp"], body_bytes,
                          headers["X-Voicebot-Signature"])
            assert headers["X-Voicebot-Event"] == event["event"]
            by_event.setdefault(event["event"], []).append((headers, event))
        [(headers, event)] = by_event["message"]  # once
        assert headers["Idempotency-Key"] == f"message-{msg['id']}"
        assert event["callback"] == "6172534408" and event["id"] == msg["id"]
        assert "audio_path" not in event  # a path on the gateway's disk is not sent
        [(headers, end)] = by_event["call_end"]
        assert headers["Idempotency-Key"] == f"call-{rec['id']}"
        assert end["message_ids"] == [msg["id"]] and end["outcome"] == "ended_by_caller", end
        assert end["duration_seconds"] > 30 and end["ttfa_ms"]["p50"] is not None, end
        assert any("limping" in (t["caller"] or "").lower() for t in end["turns"]), end
        assert "Traceback" not in gw.log(), gw.log()[-3000:]
    finally:
        receiver.close()
        if gw.proc is not None and gw.proc.poll() is None:
            assert gw.stop() == 0, gw.log()[-3000:]
