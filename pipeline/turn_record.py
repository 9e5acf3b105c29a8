"""What one caller turn leaves behind: its transcript, reply and stage timings.

Only the call's listener thread writes a ``TurnRecord``. The threads that work for a turn
report back values (``Heard`` from speech-to-text, ``ReplyReport`` from the reply worker)
through the listener's queue, and the listener copies them in (``TurnRecord.hear``,
``TurnRecord.take_reply``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Heard:
    """What speech-to-text made of one turn's audio."""
    turn_id: int
    text: str
    stt_seconds: float
    stt_error: str = ""
    """Why the turn could not be transcribed (a speech server's failure); text is then ""."""
    end_of_message: float | None = None
    """The LLM's probability that the caller's message ended with these words (None: not
    asked)."""


@dataclass
class ReplyReport:
    """What the reply worker learnt while answering one turn. The worker owns it while it
    writes; the listener gets copies (``snapshot``): one before the first clause is queued to
    play, one when the reply is written."""
    turn_id: int
    llm_backend: str = ""
    llm_first_token_seconds: float | None = None
    prompt_tokens_read: int | None = None
    tts_first_audio_seconds: float | None = None
    route_seconds: float | None = None
    opening: str = ""
    """The reply's first words said before the model's (the facts decided them)."""
    llm_error: str = ""
    tts_error: str = ""
    tools: list[dict] = field(default_factory=list)

    def snapshot(self) -> ReplyReport:
        """A copy the worker no longer touches (tool entries are filled in as tools run)."""
        return copy.deepcopy(self)


@dataclass
class TurnRecord:
    """Timings of one caller turn, in seconds on the session's clock (monotonic; None: did not
    happen)."""
    turn_id: int
    speech_start_sample: int
    speech_end_sample: int
    committed: float
    """When the end of turn was decided."""
    speech_end_time: float = 0.0
    """When the frame holding the caller's last speech sample arrived from the jitter buffer."""
    caller_text: str = ""
    stt_seconds: float | None = None
    llm_first_token_seconds: float | None = None
    prompt_tokens_read: int | None = None
    """Tokens of the reply's prompt the model read after the request (the rest was in its
    cache, read ahead; within a token: one held back by the stream counts). None: a server's
    backend, which does not say."""
    tts_first_audio_seconds: float | None = None
    opening: str = ""
    """The reply's first words, said by the gateway before the model's first token (the
    facts decided them); empty: the reply began with the model's words."""
    first_audio: float | None = None
    """When the reply's first frame was handed to the bridge."""
    audio_end: float | None = None
    """When the reply's audio stopped: the end of its last frame handed to the bridge, played
    to the end or cut by a barge-in (None: none of it was played)."""
    bot_text: str = ""
    heard_text: str = ""
    interrupted: bool = False
    speculative: bool = False
    """Transcribed (and maybe answered) during a pause, before the end of the turn."""
    barge_in_seconds: float | None = None
    """Caller speech onset (arrival) to the bot's last frame handed out, if interrupted."""
    tools: list[dict] = field(default_factory=list)
    """Each tool call the model proposed this turn: name, arguments, decision, outcome, ms."""
    keypad: bool = False
    """The turn was typed on the keypad (DTMF), not spoken."""
    route_seconds: float | None = None
    """Time the tool router took to decide (tools enabled only)."""
    llm_backend: str = ""
    """Which LLM backend answered (embedded, openai)."""
    llm_error: str = ""
    """Why the LLM gave no (whole) reply: pipeline/llm/server.py ``ERROR_KINDS``; the
    caller heard the apology instead. Empty: no failure."""
    end_of_turn_reason: str = ""
    """Why the turn ended (pipeline/core/end_of_turn.py ``Reason``): complete, incomplete,
    timeout, max_turn; empty for a keypad turn."""
    end_of_turn_score: float | None = None
    """Completeness score of the turn's last pause (None: not scored)."""
    end_of_message: float | None = None
    """The LLM's probability that the caller's message ended with these words (None: not
    asked: [turn] end_of_message_model is empty, or no words)."""
    ended_with_call: bool = False
    """The call ended while this turn's reply was being written or played."""
    false_interruption: bool = False
    """The turn was caller sound over the bot that was no interruption: the bot resumed."""
    facts_note: str = ""
    """What the gateway computed for this turn from the clock and the business facts (the
    model read it before the caller's words)."""
    stt_error: str = ""
    """Why this turn could not be transcribed (a speech server's failure, e.g. "refused: ..."):
    it was treated as unheard and the bot apologised. Empty: no failure."""
    tts_error: str = ""
    """Why some of the reply could not be synthesized (the clauses skipped are in the log).
    Empty: no failure."""

    def hear(self, h: Heard) -> None:
        self.caller_text = h.text
        self.stt_seconds = h.stt_seconds
        self.stt_error = h.stt_error
        self.end_of_message = h.end_of_message

    def take_reply(self, r: ReplyReport) -> None:
        """The latest report of the reply to this turn (a later reply to the same turn, after
        a speculative one was dropped, replaces what the earlier one said)."""
        self.llm_backend = r.llm_backend
        self.llm_first_token_seconds = r.llm_first_token_seconds
        self.prompt_tokens_read = r.prompt_tokens_read
        self.tts_first_audio_seconds = r.tts_first_audio_seconds
        self.opening = r.opening
        self.route_seconds = r.route_seconds
        self.llm_error = r.llm_error
        self.tts_error = r.tts_error
        self.tools = r.tools

    @property
    def end_of_turn_seconds(self) -> float:
        return self.committed - self.speech_end_time

    @property
    def ttfa_seconds(self) -> float | None:
        """End of the caller's speech to the reply's first audio, at the gateway's bridge
        (the wire adds the jitter-buffer delay inbound and one frame outbound)."""
        return None if self.first_audio is None else self.first_audio - self.speech_end_time
