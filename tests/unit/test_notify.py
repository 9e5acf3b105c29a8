"""Delivery of messages and call ends, in this process: the outbox's durability (restart,
corrupt files, a receiver that hangs), webhook signatures, the notify settings."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from gateway import config
from gateway.config import ConfigError
from gateway.notify import Notifier
from gateway.notify.mail import MailSender
from gateway.notify.outbox import Outbox, OutboxBusy, backoff
from gateway.notify.webhook import signature, verify
from tests.outbox_events import FAST, SECRET, event, wait_for


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


def message_event(tmp_path: Path, name: str) -> dict:
    return {"event": "message", "key": "message-m-20261206-121530-ab12cd",
            "id": "m-20261206-121530-ab12cd", "call_id": "c-1", "time": "2026-12-06T12:15:30+00:00",
            "ts": 1796559330.0, "caller": "sip:5552134409@pbx.example.org", "name": name,
            "callback": "5552134409", "message": "Please call me back about my crown, Björn",
            "audio_path": str(tmp_path / "m.wav"), "audio_seconds": 12.3}


def test_a_message_without_its_audio_file_is_mailed_without_attachment(tmp_path):
    sender = MailSender("mail.invalid", 25, "none", "", "", "bot@example.org", ["a@example.org"])
    msg = sender.build(message_event(tmp_path, "Anna"))  # m.wav was never written
    assert not list(msg.iter_attachments())
    assert "file missing" in msg.get_body(("plain",)).get_content()


def test_no_channel_configured_queues_nothing(tmp_path):
    n = Notifier(config.NotifyConfig(), tmp_path, env={})
    assert n.channels == () and n.message({"id": "m-1"}) and n.depth() == {}
    n.close()
    assert not (tmp_path / "outbox").exists()


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
