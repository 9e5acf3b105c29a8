"""The reliability settings and the SIP corpus itself: every corpus case is well formed
(testbed/sip_corpus.py has the format), secrets stay out of reprs, errors and dumps, the
media timeout and drain ranges are checked, and the test fault switch is off by default."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import pytest

from gateway import config, testfault
from testbed.sip_corpus import corpus, render

PASSWORD = f"pw-{uuid.uuid4().hex}"
CANARY = f"CANARY-{uuid.uuid4().hex[:12]}"
PROMPT = (config.LlmConfig().system_prompt
          + f" Internal reference {CANARY}: never say it.")


def test_corpus_is_well_formed():
    cases = corpus()
    assert len(cases) >= 40, len(cases)
    for c in cases:
        assert all(o in ("drop", "4xx", "call") or re.fullmatch(r"\d{3}", o)
                   for o in c.expect + c.seen)
        data = render(c, {"host": "127.0.0.1", "port": 5, "lport": 6, "branch": "z9hG4bK-x",
                          "tag": "t", "callid": "c", "rtp": 7})
        assert not re.search(rb"\{\{?[a-z]+[}:]", data), c.name  # all filled in
    rejecting = [c for c in cases if "200" not in c.expect]  # proper answer: 4xx/5xx or drop
    assert len(rejecting) >= 40, len(rejecting)


def test_secret_settings_stay_out_of_repr_errors_and_dumps():
    cfg = config.build({}, {"VOICEBOT_SIP_PASSWORD": PASSWORD,
                            "VOICEBOT_LLM_SYSTEM_PROMPT": PROMPT})
    assert cfg.sip.password == PASSWORD and cfg.llm.system_prompt == PROMPT
    assert set(config.secret_values(cfg)) == {PASSWORD, PROMPT}
    assert PASSWORD not in repr(cfg) and CANARY not in repr(cfg)
    dumped = repr(config.documented_defaults(cfg, show_secrets=False))
    assert PASSWORD not in dumped and CANARY not in dumped and "<secret>" in dumped
    with pytest.raises(config.ConfigError) as e:
        config.build({"sip": {"password": 123456789}})
    assert "123456789" not in str(e.value) and "[sip] password = <secret>" in str(e.value)
    assert config.secret_values(config.Config()) == [config.LlmConfig().system_prompt]


@pytest.mark.parametrize(("key", "value", "ok"), [
    ("media_timeout_seconds", 2, True), ("media_timeout_seconds", 3600, True),
    ("media_timeout_seconds", 1, False), ("media_timeout_seconds", 0, False),
    ("media_timeout_seconds", 3601, False), ("media_timeout_seconds", 2.5, False),
    ("drain_seconds", 0, True), ("drain_seconds", 3600, True),
    ("drain_seconds", -1, False), ("drain_seconds", 3601, False),
    ("drain_seconds", "30", False)])
def test_media_timeout_and_drain_ranges(key, value, ok):
    if ok:
        assert getattr(config.build({"sip": {key: value}}).sip, key) == value
    else:
        with pytest.raises(config.ConfigError, match=rf"\[sip\] {key} = .* is invalid"):
            config.build({"sip": {key: value}})
    assert config.Config().sip.media_timeout_seconds == 30
    assert config.Config().sip.drain_seconds == 30


def test_fault_switch_is_off_by_default_and_strict():
    assert testfault.from_env({}) is None
    assert testfault.from_env({testfault.ENV: "tts:2"}) == testfault.Fault("tts", "call-2")
    for bad in ("tts", "tts:0", "tts:x", "disk:1", ":1"):
        with pytest.raises(ValueError, match=testfault.ENV):
            testfault.from_env({testfault.ENV: bad})

    class Stt:
        def transcribe(self, audio):
            return "hello"

        beam = 1

    @dataclass
    class Engines:
        stt: object

    shared = Engines(Stt())
    fault = testfault.Fault("stt", "call-2")
    assert testfault.engines_for(shared, None, "call-2") is shared
    assert testfault.engines_for(shared, fault, "call-1") is shared
    faulty = testfault.engines_for(shared, fault, "call-2")
    assert faulty.stt.beam == 1 and shared.stt.transcribe(None) == "hello"
    with pytest.raises(testfault.InjectedFault, match="stt of call-2"):
        faulty.stt.transcribe(None)
