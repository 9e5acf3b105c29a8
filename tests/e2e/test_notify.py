"""Delivery of messages and call ends to real receivers: a webhook receiver that is down gets
every event once and in order, events survive kill -9 of their process, and mail reaches a
real SMTP server with its recording and no injected header."""

from __future__ import annotations

import email
import email.policy
import os
import signal
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from gateway import config
from gateway.calls.metrics import Metrics
from gateway.notify import Notifier
from gateway.notify.mail import MailSender
from gateway.notify.outbox import Outbox
from gateway.notify.webhook import WebhookSender, verify
from testbed.harness import free_tcp_port
from testbed.receivers import Mailbox, Receiver, smtp_server
from tests.outbox_events import FAST, SECRET, event, wait_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.mark.parametrize("down", ["503", "not listening"])
def test_a_receiver_that_is_down_gets_every_event_once_in_order(tmp_path, down):
    port = free_tcp_port()
    sender = WebhookSender(f"http://127.0.0.1:{port}/hook", SECRET, timeout=2.0)
    failed: list[str] = []
    ob = Outbox(tmp_path / "webhook", sender.send, name="webhook", initial_backoff=FAST,
                max_backoff=0.2, on_failed=failed.append)
    rec = None
    try:
        if down == "503":
            rec = Receiver(port)
            rec.status = 503
        events = [event(i, name=f"Anna \udcff{i}", audio_path="/var/x.wav") for i in range(8)]
        for e in events:
            assert ob.put(e)
        wait_for(lambda: len(failed) >= 3)
        assert ob.depth() == 8 and ob.attempts >= 3 and ob.last_error
        if rec is None:
            rec = Receiver(port)
        else:
            rec.status = 200
        wait_for(lambda: ob.depth() == 0)
    finally:
        ob.close()
        if rec is not None:
            rec.close()
    assert rec.keys() == [e["key"] for e in events]  # each once, none lost, in order
    for headers, body, parsed in rec.accepted:
        assert verify(SECRET, headers["X-Voicebot-Timestamp"], body,
                      headers["X-Voicebot-Signature"], now=time.time())
        assert headers["X-Voicebot-Event"] == "message"
        assert headers["Content-Type"] == "application/json"
        assert "audio_path" not in parsed
        body.decode("utf-8")  # valid UTF-8 although the name held an undecodable byte
        assert parsed["name"].startswith("Anna \\xff")
    assert not list((tmp_path / "webhook").glob("*.json"))


def test_events_survive_kill_9(tmp_path, receiver):
    down = f"http://127.0.0.1:{free_tcp_port()}/hook"
    script = f"""
import sys, time
from gateway.notify.outbox import Outbox
from gateway.notify.webhook import WebhookSender
ob = Outbox({str(tmp_path)!r}, WebhookSender({down!r}, None, 1.0).send, initial_backoff=0.05)
for i in range(3):
    ob.put({{"event": "call_end", "key": f"call-{{i}}", "call_id": str(i)}})
print("queued", flush=True)
time.sleep(60)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "queued"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
    assert proc.returncode == -signal.SIGKILL
    ob = Outbox(tmp_path, WebhookSender(receiver.url, None, 2.0).send, initial_backoff=FAST)
    wait_for(lambda: ob.depth() == 0)
    ob.close()
    assert receiver.keys() == ["call-0", "call-1", "call-2"]
    assert {h["X-Voicebot-Event"] for h, _, _ in receiver.accepted} == {"call_end"}
    assert "X-Voicebot-Signature" not in receiver.accepted[0][0]


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    with smtp_server() as server:
        yield server


def wav_file(path: Path) -> bytes:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(bytes(range(256)) * 64)
    return path.read_bytes()


def message_event(tmp_path: Path, name: str) -> dict:
    return {"event": "message", "key": "message-m-20261206-121530-ab12cd",
            "id": "m-20261206-121530-ab12cd", "call_id": "c-1", "time": "2026-12-06T12:15:30+00:00",
            "ts": 1796559330.0, "caller": "sip:5552134409@pbx.example.org", "name": name,
            "callback": "5552134409", "message": "Please call me back about my crown, Björn",
            "audio_path": str(tmp_path / "m.wav"), "audio_seconds": 12.3}


def test_a_message_is_mailed_with_its_recording_and_no_injected_header(tmp_path, smtp):
    box, port = smtp
    audio = wav_file(tmp_path / "m.wav")
    evil = "Anna\r\nBcc: evil@x\u202eBerg Ö"
    sender = MailSender("127.0.0.1", port, "none", "", "", "Voicebot <bot@example.org>",
                        ["desk@example.org"], timeout=5.0)
    sender.send(message_event(tmp_path, evil))
    sender.send({"event": "call_end", "key": "call-c-1"})  # not mailed
    assert len(box.envelopes) == 1
    env = box.envelopes[0]
    assert env.rcpt_tos == ["desk@example.org"] and env.mail_from == "bot@example.org"
    msg = email.message_from_bytes(env.original_content, policy=email.policy.default)
    head = env.original_content.split(b"\r\n\r\n", 1)[0].decode("ascii")  # RFC 2047 encoded
    assert "Bcc" not in msg
    assert not [line for line in head.splitlines() if line.lower().startswith("bcc")]
    subject = str(msg["Subject"])
    assert subject == "Message from Anna\\x0d\\x0aBcc: evil@x\\u202eBerg Ö (5552134409)"
    assert msg["Message-ID"] == "<message-m-20261206-121530-ab12cd@example.org>"
    text = msg.get_body(("plain",)).get_content()
    for part in ("5552134409", "sip:5552134409@pbx.example.org", "crown, Björn", "c-1",
                 "12.3 s, attached", "2026-12-06T12:15:30+00:00"):
        assert part in text
    [wav] = list(msg.iter_attachments())
    assert wav.get_content_type() == "audio/wav"
    assert wav.get_filename() == "m-20261206-121530-ab12cd.wav"
    assert wav.get_content() == audio


def test_the_notifier_routes_messages_to_both_and_call_ends_to_the_webhook(
        tmp_path, receiver, smtp):
    box, port = smtp
    cfg = config.build({"notify": {
        "webhook_url": receiver.url, "smtp_host": "127.0.0.1", "smtp_port": port,
        "smtp_security": "none", "mail_from": "bot@example.org",
        "mail_to": ["desk@example.org", "owner@example.org"]}}, env={}).notify
    m = Metrics(CollectorRegistry())
    n = Notifier(cfg, tmp_path / "state", m, env={"VOICEBOT_WEBHOOK_SECRET": "k"},
                 initial_backoff=FAST)
    wav_file(tmp_path / "m.wav")
    msg = message_event(tmp_path, "Anna Berg")
    del msg["key"], msg["event"]
    assert n.message(msg)
    assert n.call_ended({"call_id": "c-1", "outcome": "ended_by_caller", "message_ids": ["x"]})
    wait_for(lambda: n.depth() == {"webhook": 0, "mail": 0} and len(box.envelopes) == 1)
    n.close()
    assert receiver.keys() == ["message-m-20261206-121530-ab12cd", "call-c-1"]
    assert [p["event"] for _, _, p in receiver.accepted] == ["message", "call_end"]
    headers, body, _ = receiver.accepted[1]
    assert verify(b"k", headers["X-Voicebot-Timestamp"], body, headers["X-Voicebot-Signature"])
    assert box.envelopes[0].rcpt_tos == ["desk@example.org", "owner@example.org"]
    g = m.registry.get_sample_value
    assert g("voicebot_notify_delivered_total", {"channel": "webhook"}) == 2
    assert g("voicebot_notify_delivered_total", {"channel": "mail"}) == 1
    assert g("voicebot_notify_failures_total", {"channel": "webhook"}) == 0
    assert g("voicebot_notify_queue_depth", {"channel": "mail"}) == 0
    assert sorted(p.name for p in (tmp_path / "state" / "outbox").iterdir()) == ["mail", "webhook"]


def test_a_failing_receiver_is_counted(tmp_path, receiver):
    receiver.status = 500
    cfg = config.build({"notify": {"webhook_url": receiver.url,
                                   "webhook_events": ["call_end"]}}, env={}).notify
    m = Metrics(CollectorRegistry())
    n = Notifier(cfg, tmp_path, m, env={}, initial_backoff=FAST)
    n.message({"id": "m-1"})  # not one of webhook_events
    n.call_ended({"call_id": "c-9"})
    g = m.registry.get_sample_value
    wait_for(lambda: g("voicebot_notify_failures_total", {"channel": "webhook"}) >= 2)
    assert g("voicebot_notify_queue_depth", {"channel": "webhook"}) == 1
    n.close()
    assert receiver.refused >= 2 and not receiver.accepted
