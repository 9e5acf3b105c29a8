"""Property-based fuzzing of the project's own parsers (hypothesis), bounded in time.

- the config loader: any TOML document, any values, any environment overrides end in a valid
  ``Config`` or a ``ConfigError`` (never another exception), and a secret-marked value is never
  echoed in the error;
- the admission decision (``admission.decide``) and the SIP text it reads: the method of
  pjsip's rx info, the INVITE key of a late copy, the Request-URI and its user (any text:
  never an exception; an escaped user round-trips);
- the call journal reader (``records.fold``): any bytes on any line are skipped and reported
  as torn, never raised (the gateway reads the journal at start-up: one bad line must not
  stop it).

Fast by default (a few seconds); a longer run:
``VOICEBOT_FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest tests/unit/test_fuzz_parsers.py -q``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import math
import os
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import config
from gateway.calls import records
from gateway.telephony import admission

EXAMPLES = int(os.environ.get("VOICEBOT_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

KEYS = {name: [f.name for f in dataclasses.fields(cls)] for name, cls in config.SECTIONS.items()}

toml_scalars = st.one_of(
    st.booleans(), st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 1, 1)),
    st.dates(), st.times())
toml_values = st.recursive(
    toml_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=8)


@st.composite
def config_data(draw):
    data = {}
    for _ in range(draw(st.integers(0, 4))):
        section = draw(st.sampled_from([*config.SECTIONS, "bogus", "SIP", ""]))
        if draw(st.integers(0, 9)) == 0:
            data[section] = draw(toml_values)  # not even a table
            continue
        table = data.setdefault(section, {})
        if not isinstance(table, dict):
            continue
        for _ in range(draw(st.integers(0, 4))):
            key = draw(st.sampled_from(KEYS.get(section, []) + ["nope", "Port"]))
            table[key] = draw(toml_values)
    return data


@st.composite
def env_overrides(draw):
    env = {}
    for _ in range(draw(st.integers(0, 3))):
        section = draw(st.sampled_from(list(config.SECTIONS)))
        key = draw(st.sampled_from(KEYS[section]))
        env[f"VOICEBOT_{section.upper()}_{key.upper()}"] = draw(
            st.one_of(st.text(max_size=20), st.sampled_from(
                ["1", "0", "-1", "true", "nan", "inf", "[]", '["PCMU"]', "1e999", "0x10",
                 "{a=1}", '"x"', "2026-01-01", "99999999999999999999999"])))
    return env


def _valid(cfg: config.Config) -> None:
    """A Config that was accepted holds only values within the documented bounds."""
    for name in config.SECTIONS:
        sec = getattr(cfg, name)
        for f in dataclasses.fields(sec):
            v, md = getattr(sec, f.name), f.metadata
            assert type(v) is type(f.default), (name, f.name, v)
            if md.get("lo") is not None:
                assert md["lo"] <= v <= md["hi"], (name, f.name, v)
                assert not (isinstance(v, float) and math.isnan(v))
            if md.get("choices"):
                assert all(x in md["choices"] for x in (v if isinstance(v, tuple) else (v,)))


@FUZZ
@given(config_data(), env_overrides())
def test_config_build_raises_only_config_error(data, env):
    try:
        cfg = config.build(data, env)
    except config.ConfigError:
        return
    _valid(cfg)
    # what was accepted survives the documented round trip
    assert config.build(config.documented_defaults(cfg), {}) == cfg


@FUZZ
@given(st.text(max_size=300))
def test_config_load_of_any_text_raises_only_config_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("cfg") / "any.toml"
    path.write_text(text, encoding="utf-8")
    with contextlib.suppress(config.ConfigError):
        _valid(config.load(path, env={}))


@FUZZ
@given(st.sampled_from(list(config.SECTIONS)), st.data())
def test_config_load_of_mutated_documented_file(section, data):
    """The documented file with one line changed into something else."""
    text = (Path(__file__).resolve().parents[2] / "config" / "voicebot.toml").read_text()
    lines = text.splitlines()
    i = data.draw(st.integers(0, len(lines) - 1))
    lines[i] = data.draw(st.one_of(st.text(max_size=40), st.sampled_from(
        ["port = 1e3", "port = 0x50", "codecs = [1]", "[sip.x]", "max_calls = inf",
         "level = 'INFO'", "vad_threshold = nan", "drain_seconds = -0"])))
    with contextlib.suppress(config.ConfigError, tomllib.TOMLDecodeError):
        _valid(config.build(tomllib.loads("\n".join(lines)), {}))


@FUZZ
@given(st.one_of(st.integers(), st.floats(), st.booleans(), st.lists(st.text(max_size=5)),
                 st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)))
def test_a_bad_secret_is_never_echoed(value):
    for section, key in (("sip", "password"), ("llm", "system_prompt")):
        with pytest.raises(config.ConfigError) as e:
            config.build({section: {key: value}})
        assert "<secret>" in str(e.value) and repr(value) not in str(e.value).replace(
            f"[{section}] {key}", "")


@FUZZ
@given(st.booleans(), st.integers(0, 10), st.integers(1, 4), st.booleans(),
       st.integers(1, 3600))
def test_admission_decision(is_invite, active, capacity, draining, retry_after):
    r = admission.decide(is_invite, active, capacity, draining, retry_after)
    if not is_invite or (not draining and active < capacity):
        assert r is None
    else:
        assert r == admission.Refusal(503, "Service Unavailable", retry_after)


@FUZZ
@given(st.binary(max_size=60))
def test_request_method_of_any_rx_info(info):
    method = admission.request_method(info)
    assert (method is None) == (not info.startswith(b"Request msg "))
    assert admission.is_unknown_method(info) == (
        method is not None and method not in admission.KNOWN_METHODS)


@FUZZ
@given(st.text(max_size=300))
def test_sip_text_parsers_take_any_text(msg):
    # what reaches Gateway.incoming is whatever pjsua let through: never an exception here
    key = admission.invite_key(msg)
    assert key is None or all(key[0]) and isinstance(key[1], str)
    uri = admission.request_uri(msg)
    assert uri is None or uri in msg and not any(c.isspace() for c in uri)
    user = admission.uri_user(uri or msg)
    assert user is None or user


@FUZZ
@given(st.text(min_size=1, max_size=40), st.sampled_from(["sip", "sips"]),
       st.sampled_from(["", ":5060", ";transport=udp", ":5062;lr"]))
def test_request_uri_user_round_trips_an_escaped_user(user, scheme, tail):
    import urllib.parse

    line = f"INVITE {scheme}:{urllib.parse.quote(user, safe='')}@h{tail} SIP/2.0\r\n"
    uri = admission.request_uri(line + "To: <sip:bot@h>\r\n\r\n")
    assert uri is not None and admission.uri_user(uri) == user


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
              st.text(max_size=10)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6)


@st.composite
def journal_line(draw):
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.binary(max_size=80))
    obj = draw(st.dictionaries(st.sampled_from(["type", "id", "turn", "state", "v", "x"]),
                               json_values, max_size=5))
    if kind >= 2:
        obj["type"] = draw(st.sampled_from(["open", "media", "turn", "close", "other"]))
        obj["id"] = draw(st.sampled_from(["a", "b"]))
    return json.dumps(obj).encode()


@FUZZ
@given(st.lists(journal_line(), max_size=12))
def test_journal_fold_never_raises(lines):
    folded = records.fold(lines)
    for rec in folded.records():
        assert rec["state"] in ("open", "closed")


@pytest.mark.parametrize("line", [  # once made records.fold raise, so the gateway never started
    b'{"type": "turn", "id": "a", "turn": 1}',
    b'{"type": "turn", "id": "a", "turn": ["x"]}',
    b'{"type": "turn", "id": "a", "turn": {"turn": "one"}}',
    b'{"type": "turn", "id": "a", "turn": {"turn": null}}',
])
def test_journal_fold_survives_a_malformed_turn_line(line):
    folded = records.fold([line])
    assert folded.torn
