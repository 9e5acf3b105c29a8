"""One call's conversation engine at run time: the threads around the sans-I/O core.

Threads per call:
- the media clock (PJSIP's) calls ``push_inbound`` / ``pull_outbound`` every 20 ms; they only
  touch a queue and the playout buffer, never wait;
- the *listener* takes inbound frames in order, runs the VAD, feeds the ``Conversation`` and
  carries out its actions; it stays responsive while models run, so barge-in is immediate;
- the *worker* runs model jobs (speech-to-text, LLM -> clauses -> TTS) one at a time, and
  reports back through the listener's queue, so the core only ever runs on one thread.
"""

from __future__ import annotations

import collections
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from pipeline.audio.echo_gate import EchoGate
from pipeline.audio.frames import BRIDGE_RATE, FRAME_BYTES, int16_to_float
from pipeline.audio.utterance import Utterance
from pipeline.audio.vad import SileroModel
from pipeline.core.conversation import (
    Action,
    Cancel,
    Commit,
    Conversation,
    Discard,
    Interrupt,
    PausePlayout,
    Respond,
    ResumePlayout,
    Say,
    Transcribe,
    TurnSettings,
)
from pipeline.core.dtmf import DtmfCollector, KeyEvent, KeyEventKind, entry_text
from pipeline.reply.chunker import ClauseChunker
from pipeline.reply.guard import REFUSAL, SpeechGuard
from pipeline.reply.llm import ChatHistory, LlmPool, repeats_note, stream_chat
from pipeline.reply.tools import (
    Decision,
    ToolCall,
    ToolPolicy,
    ToolResult,
    Verdict,
    confirmation,
    parse_tool_call,
)
from pipeline.reply.tts import PiperTts
from pipeline.stt.base import SpeechToText, StreamWorker, Transcript, Word

log = logging.getLogger(__name__)

SILENCE = bytes(FRAME_BYTES)
KEEP_INBOUND_SECONDS = 130  # longest turn (max 120 s) plus margin
FIRST_CLAUSE_WORDS = 5  # the caller waits for the first clause: cut it early (by words)
PRE_ROLL = 5120  # samples (320 ms) of audio before the detected speech onset
POST_ROLL = 1600  # samples (100 ms) after the detected speech end


@dataclass
class Engines:
    """Models shared by every call of the process (read-only after warm-up)."""
    vad: SileroModel
    stt: SpeechToText
    llm: LlmPool
    tts: PiperTts
    max_tokens: int = 96
    temperature: float = 0.2
    history_turns: int = 6
    tools: ToolPolicy | None = None
    """The tools every call may use (see [tools]); None: the model only talks."""

    def warm_up(self) -> None:
        self.vad.stream().feed(np.zeros(1024, dtype=np.float32))
        self.stt.warm_up()
        self.tts.warm_up()
        self.llm.warm_up()


@dataclass
class TurnRecord:
    """Timings of one caller turn, all monotonic seconds (None: did not happen)."""
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
    tts_first_audio_seconds: float | None = None
    first_audio: float | None = None
    """When the reply's first frame was handed to the bridge."""
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

    @property
    def end_of_turn_seconds(self) -> float:
        return self.committed - self.speech_end_time

    @property
    def ttfa_seconds(self) -> float | None:
        """End of the caller's speech to the reply's first audio, at the gateway's bridge
        (the wire adds the jitter-buffer delay inbound and one frame outbound)."""
        return None if self.first_audio is None else self.first_audio - self.speech_end_time


@dataclass
class _Inbound:
    pcm: bytes
    t: float
    far: bytes
    """The bot frame most recently sent when this one arrived: the echo canceller's
    reference (same clock thread, so the offset between the two streams never drifts)."""


@dataclass
class _Call:
    fn: Callable[[], None]


class InboundAudio:
    """The caller's audio of the last minutes, addressable by inbound sample index."""

    def __init__(self, keep_samples: int) -> None:
        self._buf = np.zeros(keep_samples, dtype=np.int16)
        self.end = 0  # samples received so far
        self._arrivals: collections.deque[tuple[int, float]] = collections.deque(
            maxlen=keep_samples // 320 + 1)  # (end sample, arrival time) per frame

    def arrived(self, sample: int) -> float:
        """Arrival time of the frame that held ``sample`` (the nearest one kept)."""
        found = None
        for end, t in reversed(self._arrivals):
            if end <= sample:
                break
            found = t
        if found is None:  # not arrived yet (or the newest frame): the latest time known
            return self._arrivals[-1][1] if self._arrivals else 0.0
        return found

    def append(self, pcm: np.ndarray, t: float = 0.0) -> None:
        n = len(pcm)
        keep = len(self._buf)
        pos = self.end % keep
        first = min(n, keep - pos)
        self._buf[pos:pos + first] = pcm[:first]
        self._buf[:n - first] = pcm[first:]
        self.end += n
        self._arrivals.append((self.end, t))

    def span(self, start: int, end: int) -> np.ndarray:
        start = max(start, self.end - len(self._buf), 0)
        end = min(end, self.end)
        if end <= start:
            return np.zeros(0, dtype=np.int16)
        idx = np.arange(start, end) % len(self._buf)
        return self._buf[idx]


@dataclass
class CallSession:
    call_id: str
    engines: Engines
    settings: TurnSettings
    greeting: str
    system_prompt: str
    on_failure: Callable[[str, BaseException], None]
    """Called (from a pipeline thread) when this call's pipeline fails: hang the call up."""
    thread_init: Callable[[str], None] = lambda name: None
    """Run first in every thread this session starts (pjsua2 needs threads registered)."""
    on_turn_done: Callable[[TurnRecord], None] = lambda rec: None
    """Called (listener thread) once a turn is over: answered, interrupted or empty."""
    turns: list[TurnRecord] = field(default_factory=list)
    turn_audio_dir: str = ""
    """If set, each caller turn's audio is written there as WAV (debugging)."""
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
    transfer_targets: dict[str, str] = field(default_factory=dict)
    """Allow-listed transfer destinations (name -> SIP URI); the first one takes key 0."""
    transfer: Callable[[str], None] | None = None
    """Set by the gateway: send a REFER to this URI (must not block); the outcome comes back
    through ``on_transfer_result``."""
    hang_up: Callable[[str], None] | None = None
    """Set by the gateway: end the call (BYE) for the cause given."""
    keys: DtmfCollector = field(default_factory=DtmfCollector)
    hold_after: float = 0.7
    """A tool still running after this many seconds: the holding phrase plays."""
    holding_phrase: str = "One moment, please."
    tool_timeout: float = 8.0
    never_say: tuple[str, ...] = ()
    """Secrets the bot must not speak (with the prompt's identifiers; pipeline/reply/guard.py)."""

    def __post_init__(self) -> None:
        from pipeline.audio.frames import PlayoutBuffer

        self.playout = PlayoutBuffer()
        self.core = Conversation(self.settings)
        self.history = ChatHistory(self.system_prompt, self.engines.history_turns)
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._vad = self.engines.vad.stream()
        self._audio = InboundAudio(KEEP_INBOUND_SECONDS * BRIDGE_RATE)
        self._utterances: dict[int, Utterance] = {}
        self._recs: dict[int, TurnRecord] = {}  # turn id -> record, speculative ones too
        self._turn_of_utterance: dict[int, TurnRecord] = {}
        self._started_uid = 0
        self.last_audio_out = 0.0  # when the media clock last took a frame of bot audio
        self._last_out = SILENCE
        self._aec = None
        self._aec_delay = 0  # frames the canceller's output lags its input
        self._secrets = SpeechGuard(self.never_say, self.system_prompt)
        self._gate = EchoGate(tail_frames=max(1, (self.echo_tail_ms or 300) // 20),
                              ratio_db=self.double_talk_db,
                              adaptive=self.double_talk_adaptive)
        self._prev_t = 0.0
        if self.echo_tail_ms:
            from pipeline.audio.aec import EchoCanceller

            # linear filter only: the residual suppressor also ducks the caller's speech while
            # the bot talks, and barge-ins over echo were then missed (bench/turns.py); the
            # echo it would remove is kept from interrupting the bot by the EchoGate instead
            self._aec = EchoCanceller(tail_ms=self.echo_tail_ms, residual_suppression=False)
            self._aec_delay = self._aec.latency_samples // 320
        self._stop = threading.Event()
        self._llm = None
        self._say_hooks: dict[int, Callable[[], None]] = {}  # Say utterance -> after played
        self._confirming: tuple[Decision, TurnRecord | None] | None = None  # worker only
        self._tool_runner: _ToolRunner | None = None
        self._stt_stream: StreamWorker | None = None  # streaming backends (Vosk) only
        self._prev_words: tuple[Word, ...] = ()  # the last final's words (STT thread only)
        self._threads: list[threading.Thread] = []
        self.log = logging.LoggerAdapter(log, {"call": self.call_id})

    # --- media clock side (never blocks) -------------------------------------------------

    def push_inbound(self, pcm: bytes) -> None:
        self._inbox.put(_Inbound(pcm, time.monotonic(), self._last_out))

    def pull_outbound(self) -> bytes:
        item = self.playout.pop()
        if item is None:
            self._last_out = SILENCE
            return SILENCE
        uid, frame = item
        self._last_out = frame
        self.last_audio_out = time.monotonic()
        if uid != self._started_uid:
            self._started_uid = uid
            t = self.last_audio_out
            self._inbox.put(_Call(lambda: self._on_playout_started(uid, t)))
        return frame

    # --- call control (any thread; never blocks) ------------------------------------------

    def on_dtmf(self, digit: str) -> None:
        """A key the caller pressed (RFC 4733 or SIP INFO), once per press."""
        t = time.monotonic()
        self._inbox.put(_Call(lambda: self._on_key(self.keys.press(digit, t), digit)))

    def on_transfer_result(self, accepted: bool, status: int, reason: str) -> None:
        """The REFER's final outcome (the gateway ends the call itself when it succeeded)."""
        self._inbox.put(_Call(lambda: self._on_transfer_result(accepted, status, reason)))

    # --- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        if getattr(self.engines.stt, "streaming", False):
            # every inbound frame goes through the recognizer as it arrives: partials are
            # ready at a pause and the final at the end of the turn, with no re-decode
            self._stt_stream = StreamWorker(self.engines.stt.stream(), self._on_stream_result,
                                            f"{self.call_id}-stt", self.thread_init)
        for name, target in (("listen", self._listen_loop), ("work", self._work_loop)):
            t = threading.Thread(target=self._guard, args=(name, target),
                                 name=f"{self.call_id}-{name}", daemon=True)
            self._threads.append(t)
            t.start()
        self._inbox.put(_Call(lambda: self._execute(self.core.start(self.greeting))))

    def stop(self, timeout: float = 5.0) -> None:
        """End the conversation; frees the LLM context once the worker has let go of it."""
        if self._stop.is_set():
            return
        self._stop.set()
        g = self._gate
        if g.delay_frames is not None:
            self.log.info("echo path: %d ms late (correlation %.2f), double-talk threshold "
                          "%.1f dB, tail %d ms", g.delay_frames * 20, g.delay_correlation,
                          g.threshold_db, g.tail * 20)
        for u in list(self._utterances.values()):
            u.interrupt()
        self.core.end()
        self._inbox.put(None)
        self._jobs.put(None)
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout)
        if self._stt_stream is not None:
            self._stt_stream.close(timeout)
        if not any(t.is_alive() for t in self._threads) and self._aec is not None:
            self._aec.close()

    def _guard(self, name: str, target: Callable[[], None]) -> None:
        self.thread_init(f"{self.call_id}-{name}")
        try:
            target()
        except BaseException as e:  # one call's failure must never end another call
            if not self._stop.is_set():
                self.log.exception("pipeline %s thread failed", name)
                self.on_failure(name, e)

    # --- listener ------------------------------------------------------------------------

    def _listen_loop(self) -> None:
        while not self._stop.is_set():
            item = self._inbox.get()
            if item is None:
                return
            if isinstance(item, _Call):
                item.fn()
                continue
            pcm = np.frombuffer(item.pcm, dtype="<i2")
            far = np.frombuffer(item.far, dtype="<i2")
            self._gate.push(pcm, far)
            t = item.t
            if self._aec is not None:
                pcm = self._aec.process(pcm, far)
                if self._aec_delay:  # the cleaned frame holds the previous frame's audio
                    t, self._prev_t = self._prev_t or item.t, item.t
            self._audio.append(pcm, t)
            if self._stt_stream is not None:
                self._stt_stream.push(pcm)
            echo_only = self._gate.echo_only()
            for end, prob in self._vad.feed(int16_to_float(pcm)):
                # over the bot's own audio, what is no louder than its echo is not the caller
                self._execute(self.core.on_vad(end, 0.0 if echo_only else prob))
            if self.keys.collecting:
                self._on_key(self.keys.poll(item.t), "")
            self._check_done()

    def _check_done(self) -> None:
        u = self._utterances.get(self.core.utterance_id)
        if u is not None and not u.interrupted and u.done_playing():
            self._finish_utterance(u)
            self._execute(self.core.on_utterance_done(u.id))

    def _finish_utterance(self, u: Utterance) -> None:
        self._utterances.pop(u.id, None)
        heard = u.heard_text() if u.interrupted else u.spoken_text()
        if u.interrupted and self.playout.played(u.id) == 0:
            self.history.retract_user()  # never heard: the caller's turn goes on
        else:
            self.history.add_bot(heard, interrupted=u.interrupted)
        rec = self._turn_of_utterance.pop(u.id, None)
        if rec is not None:
            rec.bot_text, rec.heard_text, rec.interrupted = u.generated_text, heard, u.interrupted
            self.on_turn_done(rec)
        self.log.info("bot %s: %r", "interrupted" if u.interrupted else "said",
                      heard if u.interrupted else u.generated_text)
        if u.after_played is not None:
            if u.interrupted:
                self.log.info("the caller cut in: the action after this utterance is dropped")
            else:
                u.after_played()

    def _on_playout_started(self, uid: int, t: float) -> None:
        rec = self._turn_of_utterance.get(uid)
        if rec is not None and rec.first_audio is None:
            rec.first_audio = t
            self.log.info("turn %d: first audio %.0f ms after the end of turn was decided "
                          "(stt %.0f, llm first token %.0f, first clause audio %.0f ms)",
                          rec.turn_id, (t - rec.committed) * 1000,
                          1000 * (rec.stt_seconds or 0), 1000 * (rec.llm_first_token_seconds or 0),
                          1000 * (rec.tts_first_audio_seconds or 0))
        self._execute(self.core.on_playout_started(uid))

    def _execute(self, actions: list[Action]) -> None:
        for a in actions:
            if isinstance(a, PausePlayout):
                self.playout.held = True
            elif isinstance(a, ResumePlayout):
                self.playout.held = False
            elif isinstance(a, Interrupt):
                self._interrupt(a)
            elif isinstance(a, Cancel):
                u = self._utterances.get(a.utterance_id)
                if u is not None:
                    u.interrupt()
                    self._finish_utterance(u)
            elif isinstance(a, Transcribe):
                self._start_transcription(a)
            elif isinstance(a, Commit):
                self._commit(a, answered=any(isinstance(x, Respond) for x in actions))
            elif isinstance(a, Discard):
                self._recs.pop(a.turn_id, None)
                u = self._utterances.pop(a.utterance_id, None) if a.utterance_id else None
                if u is not None:
                    u.interrupt()
                    self._turn_of_utterance.pop(u.id, None)
            elif isinstance(a, Respond):
                self._start_reply(a)
            elif isinstance(a, Say):
                u = Utterance(a.utterance_id, self.playout,
                              after_played=self._say_hooks.pop(a.utterance_id, None))
                self._utterances[u.id] = u
                self._jobs.put(lambda u=u, text=a.text: self._say(u, text))

    # --- keys, transfers, bot-initiated speech (listener thread) ---------------------------

    def _bot_says(self, text: str, after_played: Callable[[], None] | None = None) -> None:
        actions = self.core.say(text)
        for a in actions:
            if isinstance(a, Say) and after_played is not None:
                self._say_hooks[a.utterance_id] = after_played
        self._execute(actions)

    def _on_key(self, ev: KeyEvent | None, digit: str) -> None:
        if digit:
            self.log.debug("key %r", digit)  # debug only: keyed digits may be a PIN
        if ev is None:
            return
        if ev.kind is KeyEventKind.OPERATOR:
            if not self.transfer_targets:
                self._bot_says("Sorry, there is nobody I can transfer you to.")
                return
            # a key press is explicit and final: no confirmation, no model involved
            name, uri = next(iter(self.transfer_targets.items()))
            self.log.info("key %r: transferring to the %s", digit, name)
            self._bot_says(f"Transferring you to the {name} now.",
                      lambda: self._actions.transfer(name, uri))
            return
        text = entry_text(ev.digits)
        actions = self.core.on_text_turn(text)
        for a in actions:
            if isinstance(a, Respond):
                now = time.monotonic()
                rec = TurnRecord(a.turn_id, self._audio.end, self._audio.end, 0.0,
                                 speech_end_time=now, caller_text=text, keypad=True)
                self._recs[a.turn_id] = rec
                self._mark_committed(rec)
        self._execute(actions)

    def _on_transfer_result(self, accepted: bool, status: int, reason: str) -> None:
        self.log.info("transfer %s: %s %s", "accepted" if accepted else "failed", status, reason)
        if not accepted:
            self._bot_says("Sorry, I could not transfer your call. How else can I help?")

    @property
    def _actions(self) -> _CallActions:
        return _CallActions(self)

    def _interrupt(self, a: Interrupt) -> None:
        self.playout.held = False
        u = self._utterances.get(a.utterance_id)
        if u is None:
            return
        u.interrupt()
        rec = self._turn_of_utterance.get(u.id)
        if rec is not None and self.playout.played(u.id):
            rec.barge_in_seconds = max(
                0.0, self.last_audio_out - self._audio.arrived(a.speech_start))
        self._finish_utterance(u)

    def _start_transcription(self, a: Transcribe) -> None:
        rec = TurnRecord(a.turn_id, a.start, a.end, 0.0,
                         speech_end_time=self._audio.arrived(a.end), speculative=a.speculative)
        self._recs[a.turn_id] = rec
        if not a.speculative:
            self._mark_committed(rec)
        # Silero scores a word's onset late and its tail early: keep some margin
        audio = self._audio.span(a.start - PRE_ROLL, a.end + POST_ROLL)
        if self._stt_stream is None:
            self._jobs.put(lambda: self._transcribe(a, rec, audio))
            return
        if self.turn_audio_dir:
            self._jobs.put(lambda: write_wav(
                f"{self.turn_audio_dir}/{self.call_id}-turn{a.turn_id}.wav", audio))
        tag = (a, rec, time.monotonic(), len(audio))
        if a.speculative:
            self._stt_stream.pause(tag)  # the partial so far: no decode of its own
        else:
            self._stt_stream.end_turn(tag)

    def _on_stream_result(self, t: Transcript | None, tag: object) -> None:
        """Streaming STT thread: a partial (tag None), a pause partial or a final."""
        if tag is None:  # a streaming partial: the pause and the end of turn use their own
            return
        if tag == "commit":  # a turn the pause partial answered: just close it on the stream
            self._prev_words = t.words if t is not None else ()
            return
        a, rec, t0, n = tag  # type: ignore[misc]
        words = t.words if t is not None else ()
        known = self._prev_words + words
        if t is not None and t.final:
            self._prev_words = words  # a merged turn may reach back into the last one
        lo, hi = a.start - PRE_ROLL, a.end + POST_ROLL
        if known:  # word times: only the words of this turn's span (not noise before it)
            text = " ".join(w.text for w in known if w.end > lo and w.start < hi)
        else:
            text = t.text if t is not None else ""
        rec.stt_seconds = time.monotonic() - t0
        rec.caller_text = text
        self.log.info("turn %d: caller said %r (%.2f s of audio, %s %.0f ms after the %s)",
                      a.turn_id, text, n / BRIDGE_RATE, "partial" if a.speculative else "final",
                      rec.stt_seconds * 1000, "pause" if a.speculative else "end of turn")
        self._inbox.put(_Call(lambda: self._on_transcript(a.turn_id, rec, text)))

    def _mark_committed(self, rec: TurnRecord) -> None:
        rec.committed = time.monotonic()
        self.turns.append(rec)

    def _commit(self, a: Commit, answered: bool) -> None:
        rec = self._recs.get(a.turn_id)
        if rec is None:
            return
        self._mark_committed(rec)
        if self._stt_stream is not None:
            self._stt_stream.end_turn("commit")
        u = self._utterances.get(a.utterance_id) if a.utterance_id else None
        if u is not None:
            self.history.add_user(rec.caller_text)
            u.release()
        elif not answered and rec.stt_seconds is not None:
            self.on_turn_done(rec)  # the speculation heard nothing worth answering

    def _start_reply(self, a: Respond) -> None:
        u = Utterance(a.utterance_id, self.playout, held=a.speculative)
        self._utterances[u.id] = u
        rec = self._recs.get(a.turn_id)
        if rec is not None:
            self._turn_of_utterance[u.id] = rec
        user = {"role": "user", "content": a.text}
        if a.speculative:  # the history learns of this turn only when it commits
            messages = [*self.history.messages(), user]
        else:
            self.history.add_user(a.text)
            messages = self.history.messages()
        self._jobs.put(lambda: self._respond(u, rec, messages))

    # --- worker --------------------------------------------------------------------------

    def _work_loop(self) -> None:
        try:
            while not self._stop.is_set():
                job = self._jobs.get()
                if job is None:
                    return
                job()
        finally:
            # the worker owns this call's LLM context: taken at the first reply (never on a
            # SIP thread, where waiting for a context released late would stall signalling)
            if self._llm is not None:
                self.engines.llm.release(self._llm)
                self._llm = None
            if self._tool_runner is not None:  # the worker made it, the worker ends it
                self._tool_runner.close()

    def _transcribe(self, a: Transcribe, rec: TurnRecord, audio: np.ndarray) -> None:
        t0 = time.monotonic()
        if self.turn_audio_dir:
            write_wav(f"{self.turn_audio_dir}/{self.call_id}-turn{a.turn_id}.wav", audio)
        text = self.engines.stt.transcribe(int16_to_float(audio))
        rec.stt_seconds = time.monotonic() - t0
        rec.caller_text = text
        self.log.info("turn %d: caller said %r (%.2f s of audio, stt %.0f ms)", a.turn_id,
                      text, len(audio) / BRIDGE_RATE, rec.stt_seconds * 1000)
        self._inbox.put(_Call(lambda: self._on_transcript(a.turn_id, rec, text)))

    def _on_transcript(self, turn_id: int, rec: TurnRecord, text: str) -> None:
        actions = self.core.on_transcript(turn_id, text)
        if rec.committed and not any(isinstance(x, Respond) for x in actions):
            self.on_turn_done(rec)  # nothing to answer (noise, or a merged turn)
        self._execute(actions)

    def _say(self, u: Utterance, text: str) -> None:
        self._speak_all(u, text)
        u.generated_text = text
        self._done_generating(u)

    def _respond(self, u: Utterance, rec: TurnRecord | None,
                 messages: list[dict[str, str]]) -> None:
        if u.cancelled:
            return
        caller_text = messages[-1]["content"] if messages else ""
        if self._confirming is not None and self._answer_confirmation(u, rec, caller_text):
            self._done_generating(u)
            return
        if self.tools is not None and self._routed_to_tool(u, rec, caller_text):
            self._done_generating(u)
            return
        if self._llm is None:
            self._llm = self.engines.llm.acquire(timeout=30.0)
        if not self.prompt_cache:
            self._llm.reset()  # forget the evaluated prefix: the whole prompt is read again
        t0 = time.monotonic()
        chunker = ClauseChunker(first_max_words=FIRST_CLAUSE_WORDS)
        parts: list[str] = []

        def speak(clauses: list[str]) -> None:
            for clause in self._speakable(u, clauses):
                for speech in self.engines.tts.synthesize(clause):
                    if rec is not None and rec.tts_first_audio_seconds is None:
                        rec.tts_first_audio_seconds = time.monotonic() - t0
                    u.add_clause(clause, speech.pcm, speech.word_ends)

        for piece in stream_chat(self._llm, messages, self.engines.max_tokens,
                                 self.engines.temperature, lambda: u.cancelled):
            if rec is not None and rec.llm_first_token_seconds is None:
                rec.llm_first_token_seconds = time.monotonic() - t0
            parts.append(piece)
            # kept current: a barge-in records the words generated up to that moment
            u.generated_text = self._secrets.redact("".join(parts).strip())
            if self.streaming:
                speak(chunker.feed(piece))
            if u.cancelled or u.withheld:
                break
        if not u.cancelled:
            if not self.streaming:  # the sequential baseline: whole reply, then whole speech
                chunker.feed("".join(parts))
                audio = [(c, speech)
                         for c in self._speakable(u, chunker.feed("") + chunker.flush())
                         for speech in self.engines.tts.synthesize(c)]
                if rec is not None:
                    rec.tts_first_audio_seconds = time.monotonic() - t0
                for clause, speech in audio:
                    u.add_clause(clause, speech.pcm, speech.word_ends)
            elif not u.withheld:
                speak(chunker.flush())
        u.generated_text = self._secrets.redact("".join(parts).strip())
        self._done_generating(u)

    def _speakable(self, u: Utterance, clauses: list[str]) -> list[str]:
        """The clauses minus any that recite our internal interruption note; a clause that
        would tell a secret (pipeline/reply/guard.py) becomes a refusal and ends the reply."""
        keep: list[str] = []
        for c in clauses:
            if u.withheld:
                break
            if repeats_note(c):
                self.log.warning("not spoken (recites the interruption note): %r",
                                 self._secrets.redact(c))
                continue
            if self._secrets and not self._secrets.allows(
                    f"{u.spoken_text()} {' '.join(keep)}", c):
                self.log.warning("not spoken: the reply was about to tell a secret "
                                 "([llm] never_say, or an identifier in the system prompt)")
                keep.append(REFUSAL)
                u.withheld = True
                break
            keep.append(c)
        return keep

    def _routed_to_tool(self, u: Utterance, rec: TurnRecord | None, caller_text: str) -> bool:
        """Ask the router whether this turn is a tool call; True if it was handled as one."""
        assert self.tools is not None
        if not self.tools.might_apply(caller_text):
            return False
        t0 = time.monotonic()
        routed = self.engines.llm.route(caller_text, lambda: u.cancelled)
        if rec is not None:
            rec.route_seconds = time.monotonic() - t0
        if routed is None or u.cancelled:
            return False
        call = parse_tool_call(routed)
        if call is None:
            self.log.info("the router wrote no usable call: %r", routed[:200])
            return False
        check = self.tools.decide(call, committed=True, confirmed=True, caller_text=caller_text)
        if check.verdict is Verdict.INVALID:  # e.g. an invented order number: answer in words
            self.log.info("tool call %s(%s) not used: %s", call.name, call.arguments,
                          check.reason)
            if rec is not None:
                rec.tools.append({"name": call.name, "arguments": call.arguments,
                                  "decision": "invalid", "reason": check.reason})
            return False
        if rec is not None and rec.llm_first_token_seconds is None:
            rec.llm_first_token_seconds = time.monotonic() - t0
        self._tool_turn(u, rec, call, caller_text)
        return True

    def _done_generating(self, u: Utterance) -> None:
        u.finished_generating = True
        if not u.clauses and not u.cancelled:  # nothing to say: let the core move on
            self._inbox.put(_Call(self._check_done))

    def _speak_all(self, u: Utterance, text: str) -> None:
        """Synthesize ``text`` into the utterance (not streamed: tool phrases are short)."""
        for speech in self.engines.tts.synthesize(text):
            if not u.add_clause(text, speech.pcm, speech.word_ends):
                return
        u.generated_text = u.spoken_text()

    # --- tools (worker thread) -------------------------------------------------------------

    def _tool_turn(self, u: Utterance, rec: TurnRecord | None, call: ToolCall,
                   caller_text: str) -> None:
        assert self.tools is not None
        entry: dict = {"name": call.name, "arguments": call.arguments}
        if rec is not None:
            rec.tools.append(entry)
        decision = self.tools.decide(call, committed=not u.held, caller_text=caller_text)
        if decision.verdict is Verdict.WAIT_FOR_COMMIT:
            entry["waited_for_commit"] = True
            self.log.info("tool %s waits for the turn to commit", call.name)
            if not u.wait_released():
                entry["decision"] = "dropped"  # the caller went on: never ran
                self.log.info("tool %s dropped: the caller went on", call.name)
                return
            decision = self.tools.decide(call, committed=True, caller_text=caller_text)
        entry["decision"] = decision.verdict.value
        entry["arguments"] = decision.arguments or call.arguments
        self.log.info("tool %s(%s): %s %s", call.name, entry["arguments"],
                      decision.verdict.value, decision.reason)
        if decision.verdict is Verdict.REFUSE:
            entry["reason"] = decision.reason
            self._speak_all(u, self._refusal(decision))
        elif decision.verdict is Verdict.ASK_CONFIRMATION:
            assert decision.tool is not None and decision.tool.confirm_prompt is not None
            self._confirming = (decision, rec)
            self._speak_all(u, decision.tool.confirm_prompt(decision.arguments))
        else:
            self._run_tool(u, decision, entry)

    def _refusal(self, decision: Decision) -> str:
        if decision.tool is not None and decision.tool.name == "transfer_call":
            names = " or the ".join(self.transfer_targets)
            return f"I'm sorry, I can only transfer you to the {names}."
        return "I'm sorry, I can't do that."

    def _answer_confirmation(self, u: Utterance, rec: TurnRecord | None,
                             caller_text: str) -> bool:
        """The bot asked "shall I ...?": a yes runs the tool, a no drops it (True: answered);
        anything else drops it and the turn is answered as usual (False)."""
        assert self._confirming is not None
        decision, asked_in = self._confirming
        answer = confirmation(caller_text)
        if answer is not None and not u.wait_released():
            return True  # a speculative turn that was dropped: ask again on the real one
        self._confirming = None
        if answer is None:
            return False
        assert decision.tool is not None
        entry: dict = {"name": decision.tool.name, "arguments": decision.arguments,
                       "confirmed": answer, "decision": "run" if answer else "declined"}
        if rec is not None:
            rec.tools.append(entry)
        if answer:
            self._run_tool(u, decision, entry)
        else:
            self._speak_all(u, "Alright, I won't. What else can I do for you?")
        return True

    def _run_tool(self, u: Utterance, decision: Decision, entry: dict) -> None:
        """Run the tool off the worker so a slow one can be covered by the holding phrase."""
        assert decision.tool is not None
        if self._tool_runner is None:
            self._tool_runner = _ToolRunner(self.thread_init, f"{self.call_id}-tool")
        t0 = time.monotonic()
        job = self._tool_runner.submit(
            lambda: decision.tool.run(decision.arguments, self._actions))  # type: ignore
        result: ToolResult | None = None
        if not job.wait(self.hold_after):
            if not u.cancelled and self.holding_phrase:
                entry["holding_phrase"] = True
                self._speak_all(u, self.holding_phrase)
            job.wait(max(0.0, self.tool_timeout - (time.monotonic() - t0)))
        entry["ms"] = round((time.monotonic() - t0) * 1000, 1)
        if not job.done:
            entry["outcome"] = "timeout"
            self._speak_all(u, "Sorry, that is taking too long. Please try again later.")
            return
        if job.error is not None:
            entry["outcome"] = "error"
            entry["error"] = type(job.error).__name__
            self.log.error("tool %s failed: %r", decision.tool.name, job.error)
            self._speak_all(u, "Sorry, something went wrong there.")
            return
        result = job.result
        assert result is not None
        entry["outcome"] = "ok"
        if result.data:
            entry["result"] = result.data
        self._speak_all(u, result.say)
        u.after_played = result.after_played


class _CallActions:
    """What tools may do to the call; runs on the listener thread (``after_played``)."""

    def __init__(self, session: CallSession) -> None:
        self.s = session

    def transfer(self, name: str, uri: str) -> None:
        s = self.s
        if s.transfer is None:
            s.log.warning("transfer to the %s requested, but this call cannot be transferred",
                          name)
            s._on_transfer_result(False, 0, "no call control")
            return
        s.log.info("transferring to the %s (%s)", name, uri)
        s.transfer(uri)

    def hang_up(self) -> None:
        s = self.s
        if s.hang_up is None:
            s.log.warning("the bot ended the call, but this call cannot be hung up")
            return
        s.hang_up("the bot ended the call")


class _Job:
    def __init__(self, fn: Callable[[], ToolResult]) -> None:
        self.fn = fn
        self.result: ToolResult | None = None
        self.error: BaseException | None = None
        self._done = threading.Event()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float) -> bool:
        return self._done.wait(timeout)

    def run(self) -> None:
        try:
            self.result = self.fn()
        except Exception as e:  # noqa: BLE001 - a tool's failure is reported, not raised
            self.error = e
        finally:
            self._done.set()


class _ToolRunner:
    """One daemon thread per call that runs tool jobs; a hung tool stalls only its call's
    later tools (and is reported as a timeout), never the conversation."""

    def __init__(self, thread_init: Callable[[str], None], name: str) -> None:
        self._q: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread_init = thread_init
        self._name = name
        threading.Thread(target=self._loop, name=name, daemon=True).start()

    def submit(self, fn: Callable[[], ToolResult]) -> _Job:
        job = _Job(fn)
        self._q.put(job)
        return job

    def close(self) -> None:
        """The thread ends after the job in hand (a hung tool keeps it until it returns)."""
        self._q.put(None)

    def _loop(self) -> None:
        self._thread_init(self._name)
        while (job := self._q.get()) is not None:
            job.run()


def write_wav(path: str, pcm: np.ndarray, rate: int = BRIDGE_RATE) -> None:
    import wave

    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())


_ids = itertools.count(1)


def new_call_id() -> str:
    return f"c{next(_ids)}"
