"""The composition root: from a validated config, build the tool policy, the models, every
call's session options, the metrics and the journal, and hand them to the SIP gateway."""

from __future__ import annotations

import contextlib
import io
import logging
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from gateway.calls.records import escape_text
from gateway.config import Config, business_of
from pipeline.audio.frames import ms_to_samples
from pipeline.core.conversation import TurnSettings
from pipeline.core.end_of_turn import EndOfTurnSettings

if TYPE_CHECKING:
    from gateway.calls.metrics import Metrics
    from gateway.notify.notifier import Notifier
    from pipeline.engines import Engines
    from pipeline.facts.relevance import FactIndex
    from pipeline.llm.embedded import LlmPool
    from pipeline.llm.end_of_message import EndOfMessage
    from pipeline.llm.engine import LlmEngine
    from pipeline.llm.server import OpenAiLlm
    from pipeline.options import SessionOptions
    from pipeline.tools.catalog import ToolPolicy
    from pipeline.tts.base import TextToSpeech

log = logging.getLogger("voicebot")


class _CallField(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "call"):
            record.call = "-"
        return True


class _SafeText(logging.Formatter):
    """Log lines that any stream can take: a caller's display name or Call-ID can hold bytes
    that are not UTF-8 (pjsua2 hands them over as lone surrogates), control characters and
    terminal escapes. Those are written as backslash escapes (``records.escape_text``: a bad
    byte as ``\\xNN``; line ends and tabs are kept, for tracebacks), and whatever the stream's
    encoding cannot take is backslash-replaced, so a line is written, never a "Logging error"."""

    def __init__(self, fmt: str, encoding: str | None) -> None:
        super().__init__(fmt)
        self.encoding = encoding or "utf-8"

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record).replace("\r\n", "\n")
        text = "\n".join("\t".join(escape_text(part) for part in line.split("\t"))
                         for line in text.split("\n"))
        return text.encode(self.encoding, "backslashreplace").decode(self.encoding, "replace")


def setup_logging(level: str, stream: TextIO | None = None) -> logging.Handler:
    stream = sys.stderr if stream is None else stream
    with contextlib.suppress(AttributeError, ValueError, io.UnsupportedOperation):
        stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    handler = logging.StreamHandler(stream)
    handler.addFilter(_CallField())
    handler.setFormatter(_SafeText("%(asctime)s %(levelname)-7s [%(call)s] %(name)s: "
                                   "%(message)s", getattr(stream, "encoding", None)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    return handler


def turn_settings(cfg: Config) -> TurnSettings:
    t = cfg.turn
    return TurnSettings(
        threshold=t.vad_threshold,
        end_silence=ms_to_samples(t.end_of_turn_silence_ms),
        min_speech=ms_to_samples(t.min_speech_ms),
        min_barge_in=ms_to_samples(t.min_barge_in_ms),
        pause=ms_to_samples(min(t.speculation_pause_ms, t.end_of_turn_silence_ms)),
        max_turn=ms_to_samples(t.max_turn_seconds * 1000),
        barge_in=t.barge_in,
        barge_in_threshold=t.barge_in_threshold,
        speculate=t.mode == "streaming",
        speculate_reply=t.speculate_reply and t.mode == "streaming",
        listen_ahead=ms_to_samples(t.listen_ahead_ms) if t.mode == "streaming" else 0,
        eot=EndOfTurnSettings(
            smart=t.end_of_turn == "smart",
            min_silence=ms_to_samples(t.min_end_of_turn_silence_ms),
            max_silence=ms_to_samples(t.max_end_of_turn_silence_ms),
            complete_threshold=t.turn_complete_threshold,
            incomplete_threshold=t.turn_incomplete_threshold,
            questions_lift_low_scores=t.question_lifts_low_scores,
            message_end_below=t.end_of_message_below if end_of_message_model(cfg) else 0.0),
        resume_false_interruptions=t.resume_false_interruptions,
        interruption_min_words=t.interruption_min_words,
        barge_in_confirm=ms_to_samples(t.barge_in_confirm_ms),
    )


def tool_policy(cfg: Config) -> ToolPolicy | None:
    """The tools of [tools], behind their policy gate; None when none is enabled."""
    from pipeline.tools.catalog import ToolPolicy, load_tools, parse_targets

    tools = load_tools(cfg.tools.enabled, parse_targets(cfg.tools.transfer_targets),
                       cfg.tools.orders_file, cfg.tools.modules)
    return ToolPolicy(tools, cfg.tools.confirm) if tools else None


def system_prompt(cfg: Config) -> str:
    """What the model reads first: [llm] system_prompt, then the [business] facts."""
    from pipeline.facts.prompt import system_prompt as with_facts

    business = business_of(cfg.business)
    if business is None:
        return cfg.llm.system_prompt
    return with_facts(business, cfg.llm.system_prompt, cfg.business.note)


def greeting(cfg: Config) -> str:
    """[llm] greeting, after [recording] announcement when calls are recorded."""
    if cfg.recording.enabled and cfg.recording.announcement:
        return f"{cfg.recording.announcement} {cfg.llm.greeting}".strip()
    return cfg.llm.greeting


def session_options(cfg: Config, tools: ToolPolicy | None) -> SessionOptions:
    """What every call's session is set up with, from the config (``tools``: the policy
    ``tool_policy`` made of [tools])."""
    from pipeline.core.dtmf import KeypadSettings
    from pipeline.messages.taking import MessagePrompts
    from pipeline.options import SessionOptions
    from pipeline.tools.catalog import parse_targets

    d, turn = cfg.dtmf, cfg.turn
    return SessionOptions(
        settings=turn_settings(cfg),
        greeting=greeting(cfg),
        system_prompt=system_prompt(cfg),
        prompt_secrets=cfg.llm.system_prompt,
        business=business_of(cfg.business) if cfg.business.note else None,
        never_say=cfg.llm.never_say,
        streaming=turn.mode == "streaming",
        prompt_cache=turn.mode != "cascade",
        echo_tail_ms=turn.echo_tail_ms if turn.echo_cancel else 0,
        double_talk_db=turn.double_talk_db,
        double_talk_adaptive=turn.double_talk_adaptive,
        tools=tools,
        transfer_targets=parse_targets(cfg.tools.transfer_targets),
        keypad=KeypadSettings(d.operator_digit, d.terminator, d.inter_digit_timeout_ms / 1000),
        hold_after=cfg.tools.hold_after_ms / 1000,
        holding_phrase=cfg.tools.holding_phrase,
        tool_timeout=cfg.tools.timeout_ms / 1000,
        apology=cfg.llm.apology,
        failure_offers_transfer=cfg.llm.offer_transfer,
        turn_audio_dir=cfg.log.turn_audio_dir,
        stt_apology=cfg.stt.apology,
        messages=MessagePrompts(seen=cfg.messages.seen) if cfg.messages.enabled else None,
        message_offer=cfg.messages.offer,
        offer_message_after=cfg.business.fallback if business_of(cfg.business) else "",
    )


def load_engines(cfg: Config, tools: ToolPolicy | None,
                 on_service_error: Callable[[str, str], None] = lambda stage, kind: None,
                 ) -> Engines:
    """Load every model once for the process and warm it up (the first caller must not wait);
    the LLM's tool router learns ``tools``. ``on_service_error(stage, kind)`` is told of every
    failed request to a remote speech server (the metrics count them)."""
    from pipeline import models
    from pipeline.audio.smart_turn import SmartTurn
    from pipeline.audio.vad import SileroModel
    from pipeline.engines import Engines
    from pipeline.stt import make_stt

    t0 = time.monotonic()
    # [stt] model names a Whisper folder only for the whisper backend (vosk: its own check)
    whisper_model = cfg.stt.model if cfg.stt.backend == "whisper" else ""
    paths = models.resolve(whisper_model, cfg.llm.model, cfg.llm.model_sha256,
                           cfg.tts.voice if cfg.tts.backend == "piper" else "", cfg.llm.bundled,
                           embedded_llm=cfg.llm.backend == "embedded" or (
                               cfg.llm.backend == "engine" and not cfg.llm.engine_url))
    hints = stt_hints(cfg)
    stt = make_stt(cfg.stt.backend, cfg.stt.model, language=cfg.stt.language,
                   beam_size=cfg.stt.beam_size, threads=cfg.stt.threads,
                   bundled_whisper=paths.whisper_dir, uri=cfg.stt.uri,
                   timeout=cfg.stt.timeout_ms / 1000, hints=hints,
                   on_error=lambda kind: on_service_error("stt", kind))
    log.info("speech-to-text: %s (%s)%s", stt.name,
             "streaming partials" if stt.streaming else "partials only at pauses",
             f"; told to expect {hints!r}" if hints and cfg.stt.backend == "whisper" else "")
    if tools is not None:
        log.info("tools: %s (confirm first: %s)", ", ".join(tools.tools),
                 ", ".join(sorted(tools.confirm & set(tools.tools))) or "none")
    engines = Engines(
        vad=SileroModel(paths.vad),
        stt=stt,
        llm=llm_backend(cfg, tools, paths.llm),
        tts=cached(cfg, make_tts(cfg, paths.piper_voice, on_service_error)),
        smart_turn=SmartTurn() if cfg.turn.end_of_turn == "smart" else None,
        end_of_message=end_of_message(cfg),
        fact_index=fact_index(cfg),
        max_tokens=cfg.llm.max_tokens, temperature=cfg.llm.temperature,
        history_turns=cfg.llm.history_turns)
    log.info("models loaded in %.1f s; warming up", time.monotonic() - t0)
    engines.warm_up()
    log.info("models ready in %.1f s", time.monotonic() - t0)
    return engines


def stt_hints(cfg: Config) -> str:
    """The words the speech model is told callers will say: ``[stt] hints`` and the
    business's name and items."""
    business = business_of(cfg.business)
    return " ".join(filter(None, (cfg.stt.hints, business.words() if business else "")))


def fact_index(cfg: Config) -> FactIndex | None:
    """[business] facts embedded once for the process ([business] meaning; with the note)."""
    business = business_of(cfg.business)
    if business is None or not cfg.business.note or not cfg.business.meaning:
        return None
    from pipeline import models
    from pipeline.facts.embedder import MiniLm
    from pipeline.facts.relevance import FactIndex

    index = FactIndex(business, MiniLm(models.minilm_dir()))
    log.info("facts: %d embedded to match questions by meaning", len(index.facts))
    return index


def end_of_message_model(cfg: Config) -> str:
    """The bundled LLM [turn] end_of_message_model names ("auto": the small one, unless the
    replies come from a model server, whose users moved the models off this box)."""
    name = cfg.turn.end_of_message_model
    if name == "auto":
        return "qwen2.5-coder-0.5b" if cfg.llm.backend in ("embedded", "engine") else ""
    return name


def end_of_message(cfg: Config) -> EndOfMessage | None:
    """[turn] end_of_message_model: its own small context, shared by the process's calls."""
    name = end_of_message_model(cfg)
    if not name or cfg.turn.end_of_turn != "smart":
        return None
    from pipeline import models
    from pipeline.llm.end_of_message import EndOfMessage

    log.info("end of message: asked of %s", name)
    return EndOfMessage(models.assemble_llm(name))


def llm_backend(cfg: Config, tools: ToolPolicy | None,
                model: Path | None) -> LlmPool | OpenAiLlm:
    """[llm] backend: llama.cpp in this process (``model``), or an OpenAI-compatible server.
    The API key is read here from the variable [llm] api_key_env names (never logged)."""
    import os

    specs = tools.specs() if tools else None
    llm = cfg.llm
    if llm.backend == "embedded":
        from pipeline.llm.embedded import LlmPool

        assert model is not None
        return LlmPool(model, cfg.sip.max_calls, llm.threads, llm.context_tokens,
                       llm.gpu_layers, system_prompt(cfg), llm.greeting, specs,
                       llm.repack_weights, llm.batch_tokens)
    from pipeline.breaker import CircuitBreaker
    from pipeline.llm.server import OpenAiLlm, ServerSettings

    base_url, engine = llm.base_url, None
    if llm.backend == "engine" and llm.engine_url:  # shared: voicebot workers runs it
        base_url = llm.engine_url
        log.info("LLM: the engine at %s", base_url)
    elif llm.backend == "engine":
        assert model is not None
        engine = start_engine(cfg, model)
        base_url = engine.base_url
    settings = ServerSettings(
        base_url=base_url, model=llm.server_model,
        api_key=os.environ.get(llm.api_key_env, "") if llm.api_key_env else "",
        connect_timeout=llm.connect_timeout, first_token_timeout=llm.first_token_timeout,
        timeout=llm.timeout, cache_prompt=llm.cache_prompt,
        slow_is_down=llm.backend != "engine")
    if engine is None:
        log.info("LLM: OpenAI-compatible server %s (model %s)", llm.base_url,
                 llm.server_model or "not named")
    return OpenAiLlm(settings, system_prompt(cfg), llm.greeting, specs,
                     CircuitBreaker(llm.breaker_failures, llm.breaker_cooldown), engine=engine,
                     backend=llm.backend)


def engine_binary(cfg: Config) -> Path:
    """[llm] engine_binary, or the llama-server scripts/setup.sh put beside this Python."""
    import sys as _sys
    from pathlib import Path

    path = Path(cfg.llm.engine_binary) if cfg.llm.engine_binary else (
        Path(_sys.prefix) / "bin" / "llama-server")
    if not path.is_file():
        raise FileNotFoundError(
            f"[llm] backend = \"engine\": no llama-server at {path} ([llm] engine_binary; "
            f"scripts/setup.sh install builds it)")
    return path


def start_engine(cfg: Config, model: Path, host: str = "127.0.0.1",
                 port: int = 0) -> LlmEngine:
    """The engine backend's llama-server, started and loaded (its lifetime is the process's;
    ``port`` 0: a free one)."""
    from pipeline.llm.engine import EngineSettings, LlmEngine

    llm = cfg.llm
    engine = LlmEngine(EngineSettings(
        binary=engine_binary(cfg), model=model,
        slots=llm.engine_slots or cfg.sip.max_calls + 1, context_per_slot=llm.context_tokens,
        threads=llm.threads, batch_tokens=llm.batch_tokens, gpu_layers=llm.gpu_layers,
        host=host, port=port))
    engine.start()
    return engine


def make_tts(cfg: Config, piper_voice: Path,
             on_service_error: Callable[[str, str], None] = lambda stage, kind: None):
    """The [tts] backend: Piper in process, or a Wyoming server."""
    if cfg.tts.backend == "wyoming":
        from pipeline.tts.wyoming import WyomingTts

        log.info("text-to-speech: Wyoming server %s", cfg.tts.uri)
        return WyomingTts(cfg.tts.uri, cfg.tts.timeout_ms / 1000, cfg.tts.volume, cfg.tts.voice,
                          on_error=lambda kind: on_service_error("tts", kind))
    from pipeline.tts.piper import PiperTts

    return PiperTts(piper_voice, cfg.tts.length_scale, cfg.tts.volume, threads=cfg.tts.threads)


def cached(cfg: Config, voice: TextToSpeech) -> TextToSpeech:
    """The voice behind a cache of the speech that recurs ([tts] cache_mb)."""
    if not cfg.tts.cache_mb:
        return voice
    from pipeline.tts.cache import CachedTts

    return CachedTts(voice, recurring_phrases(cfg), max_bytes=cfg.tts.cache_mb << 20)


def recurring_phrases(cfg: Config) -> list[str]:
    """What the bot says on many calls, whole and in the clauses a reply is cut into."""
    from pipeline.reply.chunker import ClauseChunker
    from pipeline.reply.worker import FIRST_CLAUSE_WORDS

    said = [greeting(cfg), cfg.llm.apology, cfg.stt.apology, cfg.tools.holding_phrase,
            cfg.business.fallback, cfg.messages.offer if cfg.messages.enabled else ""]
    out = [cfg.business.name] if cfg.business.name else []  # a reply's opening clause
    for text in filter(None, (s.strip() for s in said)):
        chunker = ClauseChunker(first_max_words=FIRST_CLAUSE_WORDS)
        out += [text, *chunker.feed(text), *chunker.flush()]
    return out


M_ARENA_MAX = -8  # glibc's mallopt parameter
MALLOC_ARENAS = 2


def limit_malloc_arenas(environ: dict[str, str] | None = None) -> bool:
    """Cap glibc's malloc arenas at ``MALLOC_ARENAS`` unless MALLOC_ARENA_MAX is set.

    Every call starts two threads, and glibc gives threads their own 64 MB arenas (up to 8
    per core): a 30-minute soak with 4 concurrent calls held 1.3 of its 2.2 GB of anonymous
    memory in 21 such arenas. Capped at 2, the same soak ran 0.3-0.4 GB lower minute by
    minute (9 minutes measured) at the same TTFA. (The rest of the growth was ended calls'
    audio kept alive: ``CallSession._release``.) Call it before any thread starts.
    """
    import ctypes
    import os

    if "MALLOC_ARENA_MAX" in (os.environ if environ is None else environ):
        return False  # the operator's choice (glibc has read it already)
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_ARENA_MAX, MALLOC_ARENAS))
    except (OSError, AttributeError):  # not glibc: nothing to cap
        return False


def serve(cfg: Config) -> int:
    import sys as _sys

    from gateway.telephony.sip import Gateway

    limit_malloc_arenas()
    _sys.setswitchinterval(0.001)  # let the media clock thread in between Python glue
    try:
        observer, office, close_observability = start_observability(cfg)
    except OSError as e:  # the journal cannot be opened: no call may go unrecorded
        print(f"voicebot: call journal: {e}", file=sys.stderr)
        return 4
    try:
        tools = tool_policy(cfg)
        engines = load_engines(
            cfg, tools, lambda stage, kind: observer.metrics.speech_service_errors.labels(
                stage, kind).inc())
        gw = Gateway(cfg, engines, session_options(cfg, tools), observer=observer,
                     office=office)
        gw.start()
    except BaseException:
        close_observability()
        raise

    signals = []

    def on_signal(signum: int, _frame: object) -> None:
        signals.append(signum)
        if len(signals) == 1:
            log.info("signal %d: draining (new calls get 503; active calls get up to %d s, "
                     "then BYE; a second signal hangs up now)", signum, cfg.sip.drain_seconds)
        else:
            log.info("signal %d again: ending the drain now", signum)
        gw.stop()  # the first ends run(), the next one the drain in shutdown()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print("voicebot ready", flush=True)  # tests and supervisors wait for this line
    gw.run()
    gw.shutdown()
    engines.llm.close()
    close_observability()
    log.info("stopped: %s", gw.stats)
    return 0


def start_observability(cfg: Config):
    """Metrics registry and server, call journal (closing what a crash left open), the
    message store and the business's notifications ([notify]).

    Returns the call observer, the message office (None: [messages] is off) and a function
    that closes them all (call after the SIP shutdown).
    """
    from prometheus_client import CollectorRegistry

    from gateway.calls import records
    from gateway.calls.metrics import Metrics, start_server
    from gateway.calls.observer import CallObserver
    from gateway.inbox.desk import MessageOffice
    from gateway.inbox.store import MessageStore, messages_path

    registry = CollectorRegistry()
    metrics = Metrics(registry, capacity=cfg.sip.max_calls)
    path = records.journal_path(cfg.records.path)
    aborted, folded = records.recover(path)
    for line_no, text in folded.torn:
        log.warning("call journal %s: line %d is torn or not a record, skipped: %r",
                    path, line_no, text)
    if aborted:
        metrics.calls.labels("aborted").inc(len(aborted))
        log.warning("call journal %s: closed %d call(s) left open by a crash as aborted: %s",
                    path, len(aborted), ", ".join(aborted))
    journal = records.Journal(path, on_error=lambda e: metrics.journal_errors.inc())
    log.info("call journal: %s", path.resolve())
    notifier = start_notifier(cfg, path, metrics)
    observer = CallObserver(metrics, journal,
                            on_close=None if notifier is None else notifier.call_ended)
    store = MessageStore(messages_path(path))
    office = MessageOffice(store, notifier) if cfg.messages.enabled else None
    if office is not None:
        log.info("messages: %s", store.path.resolve())
    server = start_server(registry, cfg.metrics.listen_address, cfg.metrics.port)

    def close() -> None:
        observer.close_all("the gateway shut down")
        if notifier is not None:  # what is not delivered waits on disk for the next start
            notifier.close()
        store.close()
        journal.close()
        if server is not None:
            server.close()

    return observer, office, close


def start_notifier(cfg: Config, journal: Path, metrics: Metrics) -> Notifier | None:
    """The [notify] channels' outboxes, beside the journal (each worker has its own journal,
    so its own outboxes); None when no channel is configured."""
    if not cfg.notify.webhook_url and not cfg.notify.smtp_host:
        return None
    from gateway.notify.notifier import Notifier

    state = journal.with_name(f"{journal.stem}.notify")
    notifier = Notifier(cfg.notify, state, metrics)
    log.info("notify: %s, queued in %s", " and ".join(notifier.channels), state.resolve())
    return notifier
