"""How every call of a process is set up: one frozen object, built from the config by the
composition root (``gateway/app.py``) and handed to each call's session."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pipeline.core.conversation import TurnSettings
from pipeline.core.dtmf import KeypadSettings
from pipeline.facts.business import Business
from pipeline.messages.taking import MessagePrompts
from pipeline.tools.catalog import ToolPolicy


@dataclass(frozen=True)
class SessionOptions:
    settings: TurnSettings = field(default_factory=TurnSettings)
    """Turn-taking: VAD thresholds, silences, barge-in, speculation (in samples)."""
    greeting: str = ""
    system_prompt: str = ""
    """The whole system prompt (with the business's facts, if configured)."""
    prompt_secrets: str | None = None
    """The configured [llm] system_prompt: its identifier-like words are never spoken (the
    business's facts are public, and must be sayable). None: all of ``system_prompt``."""
    business: Business | None = None
    """The business's facts as data: each turn gets a computed note (None: no notes)."""
    never_say: tuple[str, ...] = ()
    """Secrets the bot must not speak (with the prompt's identifiers; pipeline/reply/guard.py)."""
    streaming: bool = True
    """False: the sequential baseline (whole transcript, whole reply, whole speech)."""
    prompt_cache: bool = True
    """False: the LLM re-reads the whole prompt every turn (the "cascade" baseline)."""
    echo_tail_ms: int = 300
    """Echo canceller tail; 0 = no echo cancellation."""
    double_talk_db: float = -3.0
    """Caller speech over the bot counts only within this many dB of the bot's peak level."""
    double_talk_adaptive: bool = True
    """Lower that threshold to the line's measured echo level + 6 dB (never above it)."""
    tools: ToolPolicy | None = None
    """What the model may call, and when (None: no tools offered)."""
    transfer_targets: Mapping[str, str] = field(default_factory=dict)
    """Allow-listed transfer destinations (name -> SIP URI); the first one takes key 0."""
    keypad: KeypadSettings = field(default_factory=KeypadSettings)
    hold_after: float = 0.7
    """A tool still running after this many seconds: the holding phrase plays."""
    holding_phrase: str = "One moment, please."
    tool_timeout: float = 8.0
    apology: str = "Sorry, I can't answer that right now. Please ask me again in a moment."
    """Said when the LLM server fails a turn (down, refusing, too slow, cut off)."""
    failure_offers_transfer: bool = True
    """The apology then offers a transfer to the first target, if transfers are enabled."""
    turn_audio_dir: str = ""
    """If set, each caller turn's audio is written there as WAV (debugging)."""
    stt_apology: str = "Sorry, I didn't catch that. Could you say it again?"
    """Said after a turn the speech-to-text server failed on (empty: say nothing)."""
    messages: MessagePrompts | None = None
    """Taking messages ([messages]): what the bot says while taking one (None: it takes none,
    and nothing offers one)."""
    message_offer: str = ""
    """Said after a reply that says ``offer_message_after`` ([messages] offer): the caller's
    yes starts taking a message."""
    offer_message_after: str = ""
    """The [business] fallback."""
