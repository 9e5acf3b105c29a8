"""Registration to a registrar/trunk ([registration], gateway/telephony/registration.py):
the pure logic (answers, back-off, refresh, URIs, errors), its settings and its metrics."""

from __future__ import annotations

import random

import pytest

from gateway import config
from gateway.calls.metrics import Metrics
from gateway.telephony import registration
from gateway.telephony.registration import Backoff, RegState

PASSWORD = "Reg-Canary-7f3a91"  # grepped for: must never show up anywhere


def test_state_from_register_answer():
    assert registration.state_for(200, 300) is RegState.REGISTERED
    assert registration.state_for(200, 0) is RegState.UNREGISTERED
    assert registration.state_for(100, 0) is RegState.REGISTERING
    for code in (401, 403, 404, 408, 503, 603, 0, -1, 171999):
        assert registration.state_for(code, 0) is RegState.FAILED


def test_backoff_doubles_to_the_cap_and_resets():
    b = Backoff(2, 30, jitter=0)
    assert [b.next_delay() for _ in range(6)] == [2, 4, 8, 16, 30, 30]
    b.reset()
    assert b.next_delay() == 2


def test_backoff_jitter_stays_within_ten_percent():
    b = Backoff(10, 10, rng=random.Random(1))
    delays = [b.next_delay() for _ in range(200)]
    assert all(9.0 <= d <= 11.0 for d in delays)
    assert len(set(delays)) > 100  # gateways do not retry in lock-step


def test_refresh_margin():
    assert registration.refresh_margin(30) == 5
    assert registration.refresh_margin(300) == 30
    assert registration.refresh_margin(3600) == 60


def test_default_aor_and_uri_parsing():
    assert registration.default_aor("sip:pbx.example.org", "bot") == "sip:bot@pbx.example.org"
    assert registration.default_aor("sip:10.0.0.1:5070;transport=udp", "100") == \
        "sip:100@10.0.0.1:5070"
    assert registration.registrar_hostport("sip:[::1]:5060") == "[::1]:5060"


def test_failure_descriptions_name_the_problem():
    assert "401 Unauthorized" in registration.describe_failure(401, "Unauthorized")
    assert "password" in registration.describe_failure(401, "Unauthorized")
    assert "403" in registration.describe_failure(403, "Forbidden")
    assert "no answer" in registration.describe_failure(408, "Request Timeout")
    assert "transport" in registration.describe_failure(171060, "Connection refused")


@pytest.mark.parametrize(("section", "needle"), [
    ({"registrar": "pbx.example.org"}, "[registration] registrar = 'pbx.example.org'"),
    ({"registrar": "sips:pbx.example.org", "username": "u"}, "only sip: (UDP)"),
    ({"registrar": "sip:pbx.example.org"}, "[registration] username is required"),
    ({"registrar": "sip:pbx", "username": "u", "aor": "bot"}, "[registration] aor = 'bot'"),
    ({"retry_min_seconds": 60, "retry_max_seconds": 10}, "retry_max_seconds"),
    ({"expires_seconds": 5}, "[registration] expires_seconds = 5 is invalid"),
])
def test_bad_registration_config_names_the_key(section, needle):
    if "registrar" not in section and "expires_seconds" not in section:
        section = {"registrar": "sip:pbx", "username": "u", **section}
    with pytest.raises(config.ConfigError) as e:
        config.build({"registration": section})
    assert needle in str(e.value)


def test_password_from_environment_is_a_secret():
    cfg = config.build({"registration": {"registrar": "sip:127.0.0.1", "username": "bot"}},
                       {"VOICEBOT_REGISTRATION_PASSWORD": PASSWORD})
    assert cfg.registration.password == PASSWORD
    assert PASSWORD in config.secret_values(cfg)
    assert PASSWORD not in repr(cfg)
    assert PASSWORD not in str(config.documented_defaults(cfg, show_secrets=False))


def test_registration_metrics():
    from prometheus_client import CollectorRegistry, generate_latest

    reg = CollectorRegistry()
    m = Metrics(reg)
    text = generate_latest(reg).decode()
    assert 'voicebot_registration_state{state="disabled"} 1.0' in text
    assert 'voicebot_registration_failures_total{kind="4xx"} 0.0' in text
    m.set_registration_state("failed")
    m.registration_failed(401)
    m.registration_failed(408)
    text = generate_latest(reg).decode()
    assert 'voicebot_registration_state{state="failed"} 1.0' in text
    assert 'voicebot_registration_state{state="disabled"} 0.0' in text
    assert 'voicebot_registration_failures_total{kind="4xx"} 1.0' in text
    assert 'voicebot_registration_failures_total{kind="timeout"} 1.0' in text


