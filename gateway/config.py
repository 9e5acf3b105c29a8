"""Configuration: one TOML file, validated completely before any socket opens.

Every setting has a default here; `config/voicebot.toml` documents them all (a test keeps the
two in step). Errors name the key (`[section] key`) and what is allowed. Any key can be
overridden from the environment as ``VOICEBOT_<SECTION>_<KEY>`` (meant for secrets, e.g.
``VOICEBOT_SIP_PASSWORD``), parsed with the same rules as the file.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A configuration problem, phrased for the user: names the key and what is allowed."""


def _spec(default: Any, *, lo: float | None = None, hi: float | None = None,
          choices: tuple[Any, ...] | None = None, doc: str = "", secret: bool = False,
          may_be_empty: bool = False) -> Any:
    # a secret is left out of repr() and never echoed in an error message (see secret_values)
    return field(default=default, repr=not secret,
                 metadata={"lo": lo, "hi": hi, "choices": choices, "doc": doc, "secret": secret,
                           "may_be_empty": may_be_empty})


@dataclass(frozen=True)
class SipConfig:
    listen_address: str = _spec("0.0.0.0", doc="IPv4 address the UDP transport binds")
    port: int = _spec(5060, lo=1, hi=65535)
    public_address: str = _spec("", doc="address put in Contact/SDP; empty = the bound one")
    user: str = _spec("", doc="Request-URI user to answer; empty = any user")
    max_calls: int = _spec(4, lo=1, hi=4, doc="concurrent calls; the pjsua2 wheel caps it at 4")
    retry_after_seconds: int = _spec(10, lo=1, hi=3600)
    codecs: tuple[str, ...] = _spec(("G722", "PCMU", "PCMA"), choices=("G722", "PCMU", "PCMA"))
    user_agent: str = _spec("voicebot-gateway")
    pjsip_log_level: int = _spec(1, lo=0, hi=6)
    rtp_port: int = _spec(4000, lo=1024, hi=65000, doc="first RTP port; calls use the next ones")
    jitter_min_ms: int = _spec(40, lo=0, hi=400, doc="jitter buffer floor; 0 = PJSIP default")
    media_timeout_seconds: int = _spec(30, lo=2, hi=3600,
                                       doc="hang up a call whose RTP stopped this long")
    drain_seconds: int = _spec(30, lo=0, hi=3600,
                               doc="on SIGTERM, let active calls run this long, then BYE")
    password: str = _spec("", secret=True,
                          doc="fallback for [registration] password (kept for old configs)")


@dataclass(frozen=True)
class RegistrationConfig:
    registrar: str = _spec("", doc="registrar/trunk SIP URI, e.g. sip:pbx.example.org:5060; "
                                   "empty = no registration")
    aor: str = _spec("", doc="address-of-record registered; empty = sip:<username>@<registrar "
                             "host[:port]>")
    username: str = _spec("", doc="digest user name (also the AOR's user part by default)")
    password: str = _spec("", secret=True, doc="digest password; a secret: prefer "
                                               "VOICEBOT_REGISTRATION_PASSWORD")
    realm: str = _spec("*", doc="digest realm the credentials are for; * = any realm")
    expires_seconds: int = _spec(300, lo=30, hi=86400, doc="registration lifetime asked for")
    retry_min_seconds: int = _spec(10, lo=1, hi=3600, doc="first retry after a failure")
    retry_max_seconds: int = _spec(300, lo=1, hi=86400, doc="retry interval cap (doubling)")


@dataclass(frozen=True)
class TurnConfig:
    vad_threshold: float = _spec(0.5, lo=0.05, hi=0.95)
    end_of_turn_silence_ms: int = _spec(500, lo=100, hi=3000)
    min_speech_ms: int = _spec(150, lo=30, hi=2000, doc="shorter bursts are not a turn")
    barge_in: bool = _spec(True)
    min_barge_in_ms: int = _spec(200, lo=40, hi=2000)
    barge_in_threshold: float = _spec(0.5, lo=0.05, hi=0.99)
    max_turn_seconds: float = _spec(30.0, lo=2.0, hi=120.0, doc="force the end of a long turn")
    speculation_pause_ms: int = _spec(150, lo=64, hi=3000)
    speculate_reply: bool = _spec(True)
    listen_ahead_ms: int = _spec(0, lo=0, hi=10000,
                                 doc="while the caller speaks, transcribe the turn so far "
                                     "after each this much of it and read the reply's prompt "
                                     "ahead with those words; 0 = off")
    end_of_turn: str = _spec("smart", choices=("smart", "silence"),
                             doc="smart: the pause's verdict sets the silence; silence: fixed")
    min_end_of_turn_silence_ms: int = _spec(200, lo=64, hi=3000)
    max_end_of_turn_silence_ms: int = _spec(1500, lo=100, hi=5000)
    turn_complete_threshold: float = _spec(0.5, lo=0.0, hi=1.0)
    turn_incomplete_threshold: float = _spec(0.1, lo=0.0, hi=1.0)
    question_lifts_low_scores: bool = _spec(True)
    end_of_message_model: str = _spec(
        "auto", choices=("auto", "", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"),
        doc="bundled LLM asked whether the words heard at a pause end the caller's message; "
            "auto = the 0.5B when [llm] backend is embedded (none beside a model server); "
            "empty = not asked")
    end_of_message_below: float = _spec(0.05, lo=0.0, hi=1.0,
                                        doc="that probability below this: the words go on")
    resume_false_interruptions: bool = _spec(True)
    interruption_min_words: int = _spec(2, lo=1, hi=20)
    barge_in_confirm_ms: int = _spec(1000, lo=100, hi=10000)
    mode: str = _spec("streaming", choices=("streaming", "sequential", "cascade"))
    echo_cancel: bool = _spec(False)
    echo_tail_ms: int = _spec(400, lo=50, hi=1000)
    double_talk_db: float = _spec(-3.0, lo=-30.0, hi=0.0)
    double_talk_adaptive: bool = _spec(True, doc="learn the line's echo level")


@dataclass(frozen=True)
class SttConfig:
    backend: str = _spec("whisper", choices=("whisper", "vosk", "wyoming"),
                         doc="whisper: finals, partials only at pauses; vosk: streaming; "
                             "wyoming: a Wyoming speech-to-text server at [stt] uri")
    model: str = _spec("", doc="whisper: CTranslate2 model dir, empty = bundled tiny.en; "
                               "vosk: the Vosk model folder (required)")
    language: str = _spec("en")
    beam_size: int = _spec(1, lo=1, hi=10)
    threads: int = _spec(2, lo=1, hi=64)
    uri: str = _spec("", doc="wyoming: the server, tcp://host:port or unix:///path")
    timeout_ms: int = _spec(8000, lo=100, hi=120000,
                            doc="wyoming: a turn's whole request, connect to transcript")
    hints: str = _spec("", doc="whisper: words callers will say that it may not know (names, "
                              "products), as text; the [business] name and items are added")
    apology: str = _spec("Sorry, I didn't catch that. Could you say it again?",
                         doc="said when a turn could not be transcribed (the server failed)")


@dataclass(frozen=True)
class LlmConfig:
    backend: str = _spec("embedded", choices=("embedded", "engine", "openai"),
                         doc="embedded: llama.cpp in this process, a context per call; engine: "
                             "llama.cpp's llama-server started by the gateway, every call "
                             "batched in each decode step; openai: an OpenAI-compatible "
                             "streaming chat server ([llm] base_url)")
    engine_binary: str = _spec("", doc="engine backend: the llama-server to run; empty = the one "
                                       "scripts/setup.sh built into the virtualenv (a CUDA "
                                       "build goes here)")
    engine_slots: int = _spec(0, lo=0, hi=256,
                              doc="engine backend: conversations decoded together; 0 = [sip] "
                                  "max_calls + 1 (the tool router)")
    engine_url: str = _spec("", doc="engine backend: the API root of an engine already running "
                                    "(voicebot workers starts one for all its workers and "
                                    "sets this); empty = the gateway starts its own")
    base_url: str = _spec("http://127.0.0.1:8080/v1",
                          doc="openai backend: the server's API root; /chat/completions is added")
    server_model: str = _spec("", doc="openai backend: the request's model name (vLLM and "
                                      "Ollama need it); empty = not sent")
    api_key_env: str = _spec("", doc="openai backend: name of the environment variable holding "
                                     "the API key (sent as a bearer token); empty = no key")
    connect_timeout: float = _spec(2.0, lo=0.1, hi=60.0, doc="openai backend: seconds to connect")
    first_token_timeout: float = _spec(
        5.0, lo=0.2, hi=120.0, doc="openai and engine backends: seconds from a request to its "
                                   "first words; later the apology is said")
    timeout: float = _spec(10.0, lo=0.2, hi=300.0,
                           doc="openai backend: longest pause mid-reply before the apology")
    cache_prompt: bool = _spec(True, doc="openai backend: send llama.cpp's cache_prompt and "
                                         "repeat_penalty; false for servers that refuse "
                                         "unknown fields")
    breaker_failures: int = _spec(3, lo=1, hi=100, doc="openai backend: failures in a row that "
                                                       "stop requests for breaker_cooldown "
                                                       "(the engine's timeouts do not count)")
    breaker_cooldown: float = _spec(20.0, lo=0.0, hi=3600.0,
                                    doc="openai backend: seconds without requests after that")
    apology: str = _spec("Sorry, I can't answer that right now. Please ask me again in a moment.",
                         doc="said when the LLM server fails a turn; the call goes on")
    offer_transfer: bool = _spec(True, doc="after the apology, offer a transfer to the first of "
                                           "[tools] transfer_targets (if transfer_call is "
                                           "enabled); the caller's yes needs no model")
    model: str = _spec("", doc="GGUF file; empty = the bundled model [llm] bundled names")
    bundled: str = _spec("qwen2.5-coder-1.5b", choices=("qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b"),
                         doc="bundled model used when [llm] model is empty: 1.5b answers "
                             "better, 0.5b answers faster (first token 0.07 s vs 0.14 s)")
    repack_weights: bool = _spec(True, doc="let llama.cpp keep one interleaved copy of the "
                                           "weights in memory (faster kernels); false = run "
                                           "from the shared file mapping")
    batch_tokens: int = _spec(128, lo=8, hi=4096,
                              doc="tokens llama.cpp evaluates per step; every call's context "
                                  "keeps a work buffer in proportion (1.5B: 76 MB at 128, "
                                  "303 MB at 512); a GPU may want 512")
    model_sha256: str = _spec("", doc="expected sha256 of a custom model; empty = not checked")
    threads: int = _spec(2, lo=1, hi=64)
    context_tokens: int = _spec(2048, lo=256, hi=32768)
    max_tokens: int = _spec(96, lo=8, hi=1024)
    temperature: float = _spec(0.2, lo=0.0, hi=2.0)
    gpu_layers: int = _spec(0, lo=-1, hi=1000, doc="layers offloaded to a GPU; 0 = CPU only")
    history_turns: int = _spec(6, lo=0, hi=100)
    system_prompt: str = _spec(
        "You are the phone receptionist of Riverside Dental Clinic. Answer in one or two short "
        "spoken sentences, plain words, no lists, no markdown, no emoji. To book an "
        "appointment, the caller can give their name and a preferred day.",
        secret=True, doc="who the bot is and how it speaks; a secret: never logged or "
                         "recorded (it may hold private facts). The [business] facts follow it")
    greeting: str = _spec("Hello, thanks for calling Riverside Dental. How can I help you?")
    never_say: tuple[str, ...] = _spec(
        (), may_be_empty=True, secret=True,
        doc="secrets the bot must never speak (a clause telling one becomes a refusal); the "
            "system prompt's identifier-like words are kept back too")


@dataclass(frozen=True)
class BusinessConfig:
    name: str = _spec("Riverside Dental Clinic",
                      doc="the business the bot answers for; empty = no [business] facts "
                          "(the system prompt alone)")
    timezone: str = _spec("America/New_York", doc="IANA time zone of the opening hours")
    hours: tuple[str, ...] = _spec(
        ("mon-fri 09:00-17:00",), may_be_empty=True,
        doc='opening hours: "DAYS HH:MM-HH:MM [HH:MM-HH:MM ...]", DAYS like mon-fri, sat, '
            "mon,wed; a day not listed is closed")
    closed_dates: tuple[str, ...] = _spec(
        ("2026-12-25 Christmas Day", "2027-01-01 New Year's Day"), may_be_empty=True,
        doc='holidays and other closures: "YYYY-MM-DD [name]"')
    address: str = _spec("12 River Street")
    phone: str = _spec("")
    prices: tuple[str, ...] = _spec(("check-up: 60",), may_be_empty=True,
                                    doc='"item: amount" in [business] currency')
    currency: str = _spec("dollars")
    lead_times: tuple[str, ...] = _spec((), may_be_empty=True,
                                        doc='"item: N": must be ordered or booked N days ahead')
    facts: tuple[str, ...] = _spec((), may_be_empty=True,
                                   doc="other facts, one plain sentence each")
    fallback: str = _spec("I'm sorry, I don't know that.",
                          doc="what the bot says when the facts do not answer (with [messages] "
                              "on, the bot then offers to take a message)")
    note: bool = _spec(True, doc="each turn, tell the model what the clock and the facts say "
                                 "about the caller's question (open now? that day's hours? "
                                 "a sum?); false = the facts in the prompt only")
    meaning: bool = _spec(True, doc="with note: tell by meaning (a sentence-embedding model) "
                                    "which facts a question is about, and ask for the fallback "
                                    "where none is; false = the computed rules alone, never "
                                    "the fallback")


@dataclass(frozen=True)
class TtsConfig:
    backend: str = _spec("piper", choices=("piper", "wyoming"),
                         doc="piper: in process; wyoming: a Wyoming text-to-speech server")
    voice: str = _spec("", doc="piper: .onnx voice (its .onnx.json beside it), empty = bundled; "
                               "wyoming: a voice name the server has, empty = its default")
    length_scale: float = _spec(1.0, lo=0.5, hi=2.0, doc=">1 speaks slower")
    volume: float = _spec(0.8, lo=0.05, hi=2.0)
    threads: int = _spec(2, lo=1, hi=64, doc="piper: threads of one clause's synthesis")
    uri: str = _spec("", doc="wyoming: the server, tcp://host:port or unix:///path")
    timeout_ms: int = _spec(5000, lo=100, hi=60000,
                            doc="wyoming: one clause's whole request, connect to last audio")
    cache_mb: int = _spec(16, lo=0, hi=4096,
                          doc="speech kept for text that recurs (0: none)")


BUILTIN_TOOLS = ("transfer_call", "end_call", "order_status")


@dataclass(frozen=True)
class ToolsConfig:
    enabled: tuple[str, ...] = _spec(BUILTIN_TOOLS, may_be_empty=True,
                                     doc="built-in tools the model may call")
    modules: tuple[str, ...] = _spec((), may_be_empty=True,
                                     doc="Python modules exposing TOOLS (a list of Tool)")
    transfer_targets: tuple[str, ...] = _spec(
        (), may_be_empty=True, doc='allow-list "name=sip:uri"; the only places a call may go')
    confirm: tuple[str, ...] = _spec(("transfer_call",), may_be_empty=True,
                                     doc="side-effecting tools that ask the caller first")
    orders_file: str = _spec("", doc="CSV for order_status; empty = the bundled example")
    hold_after_ms: int = _spec(700, lo=0, hi=10000,
                               doc="a tool still running after this long: say the phrase")
    holding_phrase: str = _spec("One moment, please.")
    timeout_ms: int = _spec(8000, lo=100, hi=60000, doc="a tool slower than this has failed")


@dataclass(frozen=True)
class DtmfConfig:
    operator_digit: str = _spec("0", choices=("", *"0123456789*#"),
                                doc="key that transfers to the first transfer target")
    terminator: str = _spec("#", choices=("", *"0123456789*#"),
                            doc="key that ends digit entry")
    inter_digit_timeout_ms: int = _spec(3000, lo=500, hi=30000,
                                        doc="digits end after this long without a key")


@dataclass(frozen=True)
class LogConfig:
    level: str = _spec("info", choices=("debug", "info", "warning", "error"))
    turn_audio_dir: str = _spec("", doc="write each caller turn's audio here as WAV; empty = off")


@dataclass(frozen=True)
class MetricsConfig:
    listen_address: str = _spec("127.0.0.1", doc="address /metrics is served on (IPv4 or IPv6)")
    port: int = _spec(9464, lo=0, hi=65535, doc="TCP port of /metrics; 0 = not served")


@dataclass(frozen=True)
class RecordsConfig:
    path: str = _spec("", doc="call journal (JSON Lines); empty = $VOICEBOT_STATE/calls.jsonl "
                              "or var/calls.jsonl")


@dataclass(frozen=True)
class MessagesConfig:
    enabled: bool = _spec(True, doc="take messages: after the [business] fallback the bot offers "
                                    "to take one, and a caller who asks can leave one (saved "
                                    "beside the call journal, sent as [notify] says)")
    offer: str = _spec("Would you like to leave a message?",
                       doc="said after the [business] fallback; the caller's yes starts taking "
                           "a message")
    seen: str = _spec("the team will see it within one business day",
                      doc='when the business will see a message: "Your message is saved, and '
                          '<seen>."')


@dataclass(frozen=True)
class RecordingConfig:
    enabled: bool = _spec(False, doc="record every call: one stereo WAV, the caller left and "
                                     "the bot right, in recordings/ beside the call journal")
    announcement: str = _spec("", doc='said before the greeting, e.g. "This call is recorded."; '
                                      "empty = nothing")
    keep_days: float = _spec(30.0, lo=0.0, hi=36500.0,
                             doc="recordings older than this are deleted; 0 = kept forever")
    max_minutes: float = _spec(60.0, lo=0.1, hi=1440.0,
                               doc="a call is recorded up to this long (about 3.8 MB a minute)")


NOTIFY_EVENTS = ("message", "call_end")


@dataclass(frozen=True)
class NotifyConfig:
    webhook_url: str = _spec("", doc="POST each event as JSON to this http:// or https:// URL; "
                                      "empty = no webhook")
    webhook_secret_env: str = _spec(
        "VOICEBOT_WEBHOOK_SECRET", doc="environment variable holding the webhook's HMAC secret "
                                       "(X-Voicebot-Signature); not set = unsigned, with a "
                                       "warning at start")
    webhook_events: tuple[str, ...] = _spec(NOTIFY_EVENTS, choices=NOTIFY_EVENTS,
                                            doc="events the webhook receives")
    smtp_host: str = _spec("", doc="mail server that sends each message by e-mail; empty = no "
                                   "mail")
    smtp_port: int = _spec(587, lo=1, hi=65535)
    smtp_security: str = _spec("starttls", choices=("starttls", "tls", "none"),
                               doc="starttls: upgrade after connecting (port 587); tls: TLS "
                                   "from the start (port 465); none: plain (a local relay)")
    smtp_user_env: str = _spec("VOICEBOT_SMTP_USER", doc="environment variable holding the SMTP "
                                                         "user name; not set = no login")
    smtp_password_env: str = _spec("VOICEBOT_SMTP_PASSWORD",
                                   doc="environment variable holding the SMTP password")
    mail_from: str = _spec("", doc="sender address; required with smtp_host")
    mail_to: tuple[str, ...] = _spec((), may_be_empty=True,
                                     doc="recipient addresses; required with smtp_host")
    timeout_seconds: float = _spec(10.0, lo=0.5, hi=300.0,
                                   doc="one delivery attempt, connect to answer")
    max_backoff_seconds: float = _spec(300.0, lo=1.0, hi=86400.0,
                                       doc="longest wait between retries (1 s, doubling)")


@dataclass(frozen=True)
class Config:
    sip: SipConfig = field(default_factory=SipConfig)
    registration: RegistrationConfig = field(default_factory=RegistrationConfig)
    turn: TurnConfig = field(default_factory=TurnConfig)
    stt: SttConfig = field(default_factory=SttConfig)
    llm: LlmConfig = field(default_factory=LlmConfig)
    business: BusinessConfig = field(default_factory=BusinessConfig)
    tts: TtsConfig = field(default_factory=TtsConfig)
    tools: ToolsConfig = field(default_factory=ToolsConfig)
    dtmf: DtmfConfig = field(default_factory=DtmfConfig)
    log: LogConfig = field(default_factory=LogConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    records: RecordsConfig = field(default_factory=RecordsConfig)
    messages: MessagesConfig = field(default_factory=MessagesConfig)
    recording: RecordingConfig = field(default_factory=RecordingConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)


SECTIONS: dict[str, type] = {
    "sip": SipConfig, "registration": RegistrationConfig, "turn": TurnConfig, "stt": SttConfig,
    "llm": LlmConfig, "business": BusinessConfig, "tts": TtsConfig, "tools": ToolsConfig,
    "dtmf": DtmfConfig, "log": LogConfig,
    "metrics": MetricsConfig, "records": RecordsConfig, "messages": MessagesConfig,
    "recording": RecordingConfig, "notify": NotifyConfig,
}
ENV_PREFIX = "VOICEBOT_"


def _describe(f: dataclasses.Field) -> str:
    md = f.metadata
    if md.get("choices"):
        return "one of " + ", ".join(repr(c) for c in md["choices"])
    base = {bool: "true or false", int: "an integer", float: "a number",
            str: "a string"}.get(type(f.default), "a list of strings")
    if md.get("lo") is not None:
        base += f" from {md['lo']} to {md['hi']}"
    return base


def _coerce(section: str, f: dataclasses.Field, value: Any) -> Any:
    """Check one value against its field's type and bounds; return it in the field's type."""
    key = f"[{section}] {f.name}"
    want = type(f.default)
    md = f.metadata
    shown = "<secret>" if md.get("secret") else repr(value)
    bad = ConfigError(f"{key} = {shown} is invalid: expected {_describe(f)}")
    if want is bool:
        if not isinstance(value, bool):
            raise bad
    elif want is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
    elif want is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad
        value = float(value)
    elif want is str:
        if not isinstance(value, str):
            raise bad
    elif want is tuple:
        if not isinstance(value, list | tuple) or not (value or md.get("may_be_empty")) or not all(
                isinstance(v, str) for v in value):
            raise bad
        value = tuple(value)
        if len(set(value)) != len(value):
            raise ConfigError(f"{key} = {list(value)!r} is invalid: duplicate entries")
    if md.get("lo") is not None and not md["lo"] <= value <= md["hi"]:
        raise bad
    if md.get("choices"):
        items = value if isinstance(value, tuple) else (value,)
        if any(v not in md["choices"] for v in items):
            raise bad  # names the value as the user wrote it
    return value


def _from_env(section: str, f: dataclasses.Field, raw: str) -> Any:
    """Environment values are strings: read them as TOML values, or as a bare string."""
    if type(f.default) is str:
        return raw
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        shown = "<secret>" if f.metadata.get("secret") else repr(raw)
        raise ConfigError(
            f"{ENV_PREFIX}{section.upper()}_{f.name.upper()}={shown} is invalid: expected "
            f"{_describe(f)}") from None


def _check_stt(stt: SttConfig) -> None:
    """A Vosk model is checked here, before any socket opens: Kaldi aborts on a bad one."""
    if stt.backend == "vosk":
        from pipeline.stt.base import SttModelError
        from pipeline.stt.vosk import check_model_dir

        try:
            check_model_dir(stt.model)
        except SttModelError as e:
            raise ConfigError(f"{e} ([stt] backend = 'vosk')") from None


def _check_uri(section: str, backend: str, uri: str) -> None:
    """A Wyoming backend needs a server address we can parse (it is not dialled yet)."""
    if backend != "wyoming":
        return
    from pipeline.wyoming.client import parse_uri

    if not uri:
        raise ConfigError(f"[{section}] uri is empty: [{section}] backend = 'wyoming' needs "
                          "the server's address, tcp://host:port or unix:///path")
    try:
        parse_uri(uri)
    except ValueError as e:
        raise ConfigError(f"[{section}] uri = {e}") from None


def _check_registration(reg: RegistrationConfig) -> None:
    from gateway.telephony.registration import check_config

    try:
        check_config(reg)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def _check_tools(tools: ToolsConfig, dtmf: DtmfConfig) -> None:
    from pipeline.tools.catalog import parse_targets

    try:
        parse_targets(tools.transfer_targets)
    except ValueError as e:
        raise ConfigError(f"[tools] transfer_targets: {e}") from None
    for name in tools.enabled:
        if name not in BUILTIN_TOOLS:
            raise ConfigError(f"[tools] enabled = {list(tools.enabled)!r} is invalid: "
                              f"{name!r} is not one of {', '.join(BUILTIN_TOOLS)} (plug-in "
                              "tools come from [tools] modules)")
    if dtmf.operator_digit and dtmf.operator_digit == dtmf.terminator:
        raise ConfigError("[dtmf] operator_digit and [dtmf] terminator must differ")


def business_of(b: BusinessConfig):  # -> pipeline.facts.business.Business | None
    """The [business] table as data (None when no business is configured); ConfigError
    names the key of a bad entry."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from pipeline.facts import business as facts

    if not b.name:
        return None
    try:
        ZoneInfo(b.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"[business] timezone = {b.timezone!r} is invalid: expected an IANA "
                          "time zone name such as 'Europe/Berlin'") from None
    parsers = {"hours": facts.parse_hours, "closed_dates": facts.parse_dates,
               "prices": lambda v: facts.parse_items(v, "amount"),
               "lead_times": lambda v: facts.parse_items(v, "days")}
    parsed = {}
    for key, parse in parsers.items():
        try:
            parsed[key] = parse(getattr(b, key))
        except ValueError as e:
            raise ConfigError(f"[business] {key}: {e}") from None
    return facts.Business(name=b.name, timezone=b.timezone, address=b.address, phone=b.phone,
                          currency=b.currency, facts=b.facts, fallback=b.fallback, **parsed)


def _check_llm(llm: LlmConfig, env: Mapping[str, str]) -> None:

    if llm.backend == "engine" and llm.engine_binary and not Path(llm.engine_binary).is_file():
        raise ConfigError(f"[llm] engine_binary = {llm.engine_binary!r}: no such file (the "
                          "llama-server to run; empty = the one scripts/setup.sh built)")
    if llm.backend == "engine" and llm.engine_url:
        _check_url("engine_url", llm.engine_url, "engine")
    if llm.backend != "openai":
        return
    _check_url("base_url", llm.base_url, "openai")
    if llm.api_key_env and not env.get(llm.api_key_env):
        raise ConfigError(f"[llm] api_key_env = {llm.api_key_env!r}: that environment variable "
                          "is not set (it should hold the server's API key)")


def _check_url(key: str, value: str, backend: str) -> None:
    from urllib.parse import urlsplit

    url = urlsplit(value)
    if url.scheme not in ("http", "https") or not url.hostname or url.query or url.fragment:
        raise ConfigError(f"[llm] {key} = {value!r} is invalid: expected an http:// or "
                          "https:// URL such as 'http://127.0.0.1:8080/v1' ([llm] backend = "
                          f"'{backend}')")
    try:
        url.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ConfigError(f"[llm] {key} = {value!r} is invalid: bad port") from None


def _check_address(key: str, addr: str) -> None:
    from email.utils import parseaddr

    # a CR/LF here would let the address add its own mail headers
    controls = any(ord(c) < 0x20 or c == "\x7f" for c in addr)
    if controls or "@" not in parseaddr(addr)[1]:
        raise ConfigError(f"[notify] {key}: {addr!r} is invalid: expected an e-mail address "
                          "such as 'Front desk <desk@example.org>'")


def _check_notify(n: NotifyConfig) -> None:
    from urllib.parse import urlsplit

    if n.webhook_url:
        url = urlsplit(n.webhook_url)
        try:
            url.port  # noqa: B018 - raises on a bad port
            ok = url.scheme in ("http", "https") and bool(url.hostname)
        except ValueError:
            ok = False
        if not ok:
            raise ConfigError(f"[notify] webhook_url = {n.webhook_url!r} is invalid: expected an "
                              "http:// or https:// URL such as 'https://example.org/voicebot'; "
                              "empty = no webhook")
    if not n.smtp_host:
        return
    if not n.mail_from:
        raise ConfigError("[notify] mail_from is empty: [notify] smtp_host is set, so mail needs "
                          "a sender address")
    if not n.mail_to:
        raise ConfigError("[notify] mail_to is empty: [notify] smtp_host is set, so mail needs "
                          "at least one recipient")
    _check_address("mail_from", n.mail_from)
    for addr in n.mail_to:
        _check_address("mail_to", addr)


def _check_cross(cfg: Config) -> None:
    _check_stt(cfg.stt)
    _check_uri("stt", cfg.stt.backend, cfg.stt.uri)
    _check_uri("tts", cfg.tts.backend, cfg.tts.uri)
    business_of(cfg.business)
    _check_tools(cfg.tools, cfg.dtmf)
    _check_registration(cfg.registration)
    _check_notify(cfg.notify)
    for key, addr in (("listen_address", cfg.sip.listen_address),
                      ("public_address", cfg.sip.public_address)):
        if addr:
            try:
                ipaddress.IPv4Address(addr)
            except ValueError:
                raise ConfigError(
                    f"[sip] {key} = {addr!r} is invalid: expected an IPv4 address") from None
    try:
        ipaddress.ip_address(cfg.metrics.listen_address)
    except ValueError:
        raise ConfigError(f"[metrics] listen_address = {cfg.metrics.listen_address!r} is "
                          "invalid: expected an IPv4 or IPv6 address") from None


def build(data: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Config:
    """Validate parsed TOML (plus environment overrides) into a Config, or raise ConfigError."""
    env = {} if env is None else env
    for name in data:
        if name not in SECTIONS:
            raise ConfigError(f"unknown section [{name}]; allowed: {', '.join(SECTIONS)}")
    sections = {}
    for name, cls in SECTIONS.items():
        given = data.get(name, {})
        if not isinstance(given, Mapping):
            raise ConfigError(f"[{name}] must be a table of settings")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for key in given:
            if key not in fields:
                raise ConfigError(
                    f"unknown key [{name}] {key}; allowed: {', '.join(fields)}")
        values = {}
        for key, f in fields.items():
            env_name = f"{ENV_PREFIX}{name.upper()}_{key.upper()}"
            if env_name in env:
                values[key] = _coerce(name, f, _from_env(name, f, env[env_name]))
            elif key in given:
                values[key] = _coerce(name, f, given[key])
        sections[name] = cls(**values)
    cfg = Config(**sections)
    _check_cross(cfg)
    _check_llm(cfg.llm, env)
    return cfg


def load(path: str | Path | None, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a config file; None means the embedded defaults."""
    env = os.environ if env is None else env
    if path is None:
        return build({}, env)
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read config file {p}: {e.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from None
    return build(data, env)


def secret_values(cfg: Config) -> list[str]:
    """The non-empty values of the secret-marked settings (``_spec(..., secret=True)``): they
    must never appear in logs, metrics or call records (tests grep for them)."""
    out = []
    for name in SECTIONS:
        sec = getattr(cfg, name)
        for f in dataclasses.fields(sec):
            value = getattr(sec, f.name)
            if f.metadata.get("secret") and isinstance(value, str) and value:
                out.append(value)
            elif f.metadata.get("secret") and isinstance(value, tuple):
                out.extend(v for v in value if v)
    return out


def documented_defaults(cfg: Config | None = None,
                        show_secrets: bool = True) -> dict[str, dict[str, Any]]:
    """The settings as plain data (what the documented TOML file must hold)."""
    cfg = cfg or Config()
    out: dict[str, dict[str, Any]] = {}
    for name in SECTIONS:
        sec = getattr(cfg, name)
        out[name] = {f.name: (list(v) if isinstance(v := getattr(sec, f.name), tuple) else v)
                     for f in dataclasses.fields(sec)}
        if not show_secrets:
            for f in dataclasses.fields(sec):
                if f.metadata.get("secret") and out[name][f.name]:
                    out[name][f.name] = "<secret>"
    return out
