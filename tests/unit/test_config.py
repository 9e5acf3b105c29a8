import tomllib
from pathlib import Path

import pytest

from gateway import config
from gateway.config import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_documented_file_holds_every_default():
    data = tomllib.loads((ROOT / "config" / "voicebot.toml").read_text())
    assert data == config.documented_defaults()


def test_documented_file_loads():
    cfg = config.load(ROOT / "config" / "voicebot.toml", env={})
    assert cfg == config.Config()


@pytest.mark.parametrize(("toml", "needle"), [
    ("[sip]\nprot = 5060", "unknown key [sip] prot; allowed: listen_address, port"),
    ("[sips]\nport = 1", "unknown section [sips]"),
    ("[sip]\nport = 70000",
     "[sip] port = 70000 is invalid: expected an integer from 1 to 65535"),
    ("[sip]\nport = '5060'", "[sip] port = '5060' is invalid"),
    ("[sip]\nmax_calls = 5", "[sip] max_calls = 5 is invalid: expected an integer from 1 to 4"),
    ("[sip]\ncodecs = ['opus']", "[sip] codecs = ['opus'] is invalid: expected one of 'G722'"),
    ("[sip]\ncodecs = []", "[sip] codecs"),
    ("[sip]\ncodecs = ['PCMU', 'PCMU']", "duplicate entries"),
    ("[sip]\nlisten_address = 'localhost'", "[sip] listen_address = 'localhost' is invalid"),
    ("[turn]\nbarge_in = 1", "[turn] barge_in = 1 is invalid: expected true or false"),
    ("[turn]\nvad_threshold = 2",
     "[turn] vad_threshold = 2 is invalid: expected a number from 0.05 to 0.95"),
    ("[log]\nlevel = 'loud'", "[log] level = 'loud' is invalid: expected one of 'debug'"),
    ("sip = 3", "[sip] must be a table"),
])
def test_bad_values_name_the_key(toml, needle):
    with pytest.raises(ConfigError) as e:
        config.build(tomllib.loads(toml))
    assert needle in str(e.value)


def test_int_accepted_for_float_and_converted():
    cfg = config.build({"turn": {"max_turn_seconds": 10}})
    assert cfg.turn.max_turn_seconds == 10.0 and isinstance(cfg.turn.max_turn_seconds, float)


def test_environment_overrides_file():
    env = {"VOICEBOT_SIP_PORT": "5070", "VOICEBOT_LLM_GREETING": "Hi there",
           "VOICEBOT_TURN_BARGE_IN": "false", "VOICEBOT_SIP_CODECS": '["PCMU"]'}
    cfg = config.build({"sip": {"port": 5061}}, env)
    assert cfg.sip.port == 5070
    assert cfg.llm.greeting == "Hi there"
    assert cfg.turn.barge_in is False
    assert cfg.sip.codecs == ("PCMU",)


def test_bad_environment_value_names_the_variable():
    with pytest.raises(ConfigError, match="VOICEBOT_SIP_PORT='five' is invalid"):
        config.build({}, {"VOICEBOT_SIP_PORT": "five"})
    with pytest.raises(ConfigError, match=r"\[sip\] port = 0 is invalid"):
        config.build({}, {"VOICEBOT_SIP_PORT": "0"})


def test_unreadable_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        config.load(tmp_path / "missing.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[sip\nport=1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load(bad, env={})


def test_cli_reports_config_error_before_anything_starts(tmp_path, capsys):
    from gateway.cli import main

    bad = tmp_path / "bad.toml"
    bad.write_text("[sip]\nport = -1\n")
    assert main(["--config", str(bad), "run"]) == 2
    err = capsys.readouterr().err
    assert "config error: [sip] port = -1 is invalid" in err


@pytest.mark.parametrize("section, uri, needle", [
    ("stt", "", "[stt] uri is empty"),
    ("tts", "", "[tts] uri is empty"),
    ("stt", "localhost:10300", "expected tcp://host:port"),
    ("tts", "tcp://localhost", "expected tcp://host:port"),
])
def test_a_wyoming_backend_needs_a_server_address(section, uri, needle):
    with pytest.raises(ConfigError) as e:
        config.build({section: {"backend": "wyoming", "uri": uri}}, env={})
    assert needle in str(e.value)
    ok = config.build({"stt": {"backend": "wyoming", "uri": "tcp://10.0.0.5:10300"},
                       "tts": {"backend": "wyoming", "uri": "unix:///run/piper.sock"}}, env={})
    assert (ok.stt.uri, ok.tts.backend) == ("tcp://10.0.0.5:10300", "wyoming")
    assert config.build({section: {"uri": uri}}, env={})  # unused unless the backend is wyoming
