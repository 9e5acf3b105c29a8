"""Delivery of messages and call ends: the outbox's durability (restart, kill -9, corrupt
files, a receiver that is down), webhook signatures, and mail to a real SMTP server."""

from __future__ import annotations

import email
import email.policy
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from gateway import config
from gateway.config import ConfigError
from gateway.metrics import Metrics
from gateway.notify import Notifier
from gateway.notify.mail import MailSender
from gateway.notify.outbox import Outbox, OutboxBusy, backoff
from gateway.notify.webhook import WebhookSender, signature, verify

ROOT = Path(__file__).resolve().parent.parent
SECRET = b"s3cret"
FAST = 0.05  # initial backoff in these tests (1 s in service)


def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def event(n: int, **kw) -> dict:
    return {"event": "message", "key": f"message-m-{n}", "id": f"m-{n}", "name": f"caller {n}",
            **kw}


# --- a real webhook receiver ---------------------------------------------------------------

class Receiver:
    """An HTTP server on loopback: answers ``status``; keeps what it accepted."""

    def __init__(self, port: int = 0) -> None:
        self.status = 200
        self.accepted: list[tuple[dict, bytes, dict]] = []  # (headers, body, parsed)
        self.refused = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with outer.lock:
                    status = outer.status
                    if status == 200:
                        outer.accepted.append((dict(self.headers), body, json.loads(body)))
                    else:
                        outer.refused += 1
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def keys(self) -> list[str]:
        with self.lock:
            return [h["Idempotency-Key"] for h, _, _ in self.accepted]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


# --- signatures ----------------------------------------------------------------------------

def test_a_signature_verifies_and_a_tampered_body_or_wrong_secret_does_not():
    body = json.dumps({"event": "message", "name": "Anna"}).encode()
    sig = signature(SECRET, 1765000000, body)
    assert sig.startswith("sha256=") and len(sig) == 7 + 64
    assert verify(SECRET, "1765000000", body, sig)
    assert not verify(SECRET, "1765000000", body.replace(b"Anna", b"Anne"), sig)
    assert not verify(SECRET, "1765000001", body, sig)  # the timestamp is signed too
    assert not verify(b"other", "1765000000", body, sig)
    assert verify(SECRET, "1765000000", body, sig, now=1765000100)
    assert not verify(SECRET, "1765000000", body, sig, now=1765009999)  # a replay
    assert not verify(SECRET, "soon", body, sig)


# --- the outbox ----------------------------------------------------------------------------

@pytest.mark.e2e
@pytest.mark.parametrize("down", ["503", "not listening"])
def test_a_receiver_that_is_down_gets_every_event_once_in_order(tmp_path, down):
    port = free_port()
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


def test_a_restarted_outbox_delivers_what_the_last_one_could_not(tmp_path):
    def down(e: dict) -> None:
        raise ConnectionRefusedError("receiver down")

    first = Outbox(tmp_path, down, initial_backoff=FAST)
    events = [event(i) for i in range(5)]
    for e in events:
        first.put(e)
    assert first.close()
    got: list[dict] = []
    second = Outbox(tmp_path, got.append, initial_backoff=FAST)
    wait_for(lambda: second.depth() == 0)
    second.close()
    assert got == events


def test_a_key_already_queued_is_not_queued_again(tmp_path):
    gate = threading.Event()
    got: list[dict] = []

    def slow(e: dict) -> None:
        gate.wait(5)
        got.append(e)

    ob = Outbox(tmp_path, slow, initial_backoff=FAST)
    assert ob.put(event(1))
    assert not ob.put(event(1, name="again"))  # also while it is being sent
    assert ob.put(event(2))
    assert ob.depth() == 2
    gate.set()
    wait_for(lambda: ob.depth() == 0)
    ob.close()
    assert [e["key"] for e in got] == ["message-m-1", "message-m-2"]


def test_put_does_not_wait_for_a_receiver_that_hangs(tmp_path):
    gate = threading.Event()
    ob = Outbox(tmp_path, lambda e: gate.wait(10), initial_backoff=FAST)
    t0 = time.monotonic()
    for i in range(50):
        ob.put(event(i))
    elapsed = time.monotonic() - t0
    gate.set()
    ob.close()
    assert elapsed < 2.0 and ob.depth() <= 50


def test_a_corrupt_file_is_set_aside_and_the_rest_delivered(tmp_path):
    (tmp_path / f"{1:020d}-torn.abc.json").write_bytes(b'{"event": "mess')
    (tmp_path / f"{2:020d}-list.abc.json").write_bytes(b"[1, 2]")
    got: list[dict] = []
    ob = Outbox(tmp_path, got.append, initial_backoff=FAST)
    ob.put(event(1))
    wait_for(lambda: ob.depth() == 0)
    ob.close()
    assert [e["key"] for e in got] == ["message-m-1"]
    assert ob.bad == 2
    assert sorted(p.name for p in (tmp_path / "bad").iterdir()) == [
        f"{1:020d}-torn.abc.json", f"{2:020d}-list.abc.json"]


def test_backoff_doubles_up_to_the_cap():
    assert [backoff(n, 1.0, 300.0) for n in (1, 2, 3, 9, 10, 5000)] == \
        [1.0, 2.0, 4.0, 256.0, 300.0, 300.0]


def test_two_outboxes_never_share_a_folder(tmp_path):
    ob = Outbox(tmp_path, lambda e: None)
    with pytest.raises(OutboxBusy):
        Outbox(tmp_path, lambda e: None)
    ob.close()
    Outbox(tmp_path, lambda e: None).close()


@pytest.mark.e2e
def test_events_survive_kill_9(tmp_path, receiver):
    down = f"http://127.0.0.1:{free_port()}/hook"
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


# --- mail ----------------------------------------------------------------------------------

class Mailbox:
    def __init__(self) -> None:
        self.envelopes: list = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's
        self.envelopes.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    from aiosmtpd.controller import Controller

    box = Mailbox()
    port = free_port()
    ctl = Controller(box, hostname="127.0.0.1", port=port)
    ctl.start()
    yield box, port
    ctl.stop()


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


@pytest.mark.e2e
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


def test_a_message_without_its_audio_file_is_mailed_without_attachment(tmp_path):
    sender = MailSender("mail.invalid", 25, "none", "", "", "bot@example.org", ["a@example.org"])
    msg = sender.build(message_event(tmp_path, "Anna"))  # m.wav was never written
    assert not list(msg.iter_attachments())
    assert "file missing" in msg.get_body(("plain",)).get_content()


# --- the notifier --------------------------------------------------------------------------

@pytest.mark.e2e
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


def test_no_channel_configured_queues_nothing(tmp_path):
    n = Notifier(config.NotifyConfig(), tmp_path, env={})
    assert n.channels == () and n.message({"id": "m-1"}) and n.depth() == {}
    n.close()
    assert not (tmp_path / "outbox").exists()


@pytest.mark.e2e
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


# --- configuration -------------------------------------------------------------------------

@pytest.mark.parametrize(("notify", "needle"), [
    ({"webhook_url": "ftp://example.org/x"}, "[notify] webhook_url = 'ftp://example.org/x' is "
                                             "invalid: expected an http:// or https:// URL"),
    ({"webhook_url": "example.org/hook"}, "[notify] webhook_url"),
    ({"webhook_url": "http://example.org:99999/"}, "[notify] webhook_url"),
    ({"webhook_events": ["sms"]}, "[notify] webhook_events = ['sms'] is invalid"),
    ({"smtp_host": "mail.example.org", "mail_to": ["a@example.org"]}, "[notify] mail_from"),
    ({"smtp_host": "mail.example.org", "mail_from": "b@example.org"}, "[notify] mail_to"),
    ({"smtp_host": "mail.example.org", "mail_from": "b@example.org",
      "mail_to": ["a@example.org\r\nBcc: evil@x"]}, "[notify] mail_to"),
    ({"smtp_host": "mail.example.org", "mail_from": "nobody", "mail_to": ["a@example.org"]},
     "[notify] mail_from"),
    ({"smtp_security": "ssl"}, "[notify] smtp_security = 'ssl' is invalid: expected one of"),
])
def test_bad_notify_config_names_the_key(notify, needle):
    with pytest.raises(ConfigError) as e:
        config.build({"notify": notify}, env={})
    assert needle in str(e.value)


def test_good_notify_config_and_environment_override():
    cfg = config.build({"notify": {"smtp_host": "mail.example.org",
                                   "mail_from": "Voicebot <b@example.org>",
                                   "mail_to": ["a@example.org"]}},
                       env={"VOICEBOT_NOTIFY_WEBHOOK_URL": "https://hooks.example.org/v"}).notify
    assert cfg.webhook_url == "https://hooks.example.org/v"
    assert cfg.webhook_events == ("message", "call_end") and cfg.smtp_port == 587
