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

from pipeline.audio import BRIDGE_RATE, FRAME_BYTES, int16_to_float
from pipeline.chunker import ClauseChunker
from pipeline.conversation import (
    Action,
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
from pipeline.echo_gate import EchoGate
from pipeline.llm import ChatHistory, LlmPool, stream_chat
from pipeline.stt import WhisperStt
from pipeline.tts import PiperTts
from pipeline.utterance import Utterance
from pipeline.vad import SileroModel

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
    stt: WhisperStt
    llm: LlmPool
    tts: PiperTts
    max_tokens: int = 96
    temperature: float = 0.2
    history_turns: int = 6

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
    echo_tail_ms: int = 300
    """Echo canceller tail; 0 = no echo cancellation."""
    double_talk_db: float = -6.0
    """Caller speech over the bot counts only within this many dB of the bot's peak level."""

    def __post_init__(self) -> None:
        from pipeline.audio import PlayoutBuffer

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
        self._gate = EchoGate(tail_frames=max(1, (self.echo_tail_ms or 300) // 20),
                              ratio_db=self.double_talk_db)
        self._prev_t = 0.0
        if self.echo_tail_ms:
            from pipeline.aec import EchoCanceller

            # linear filter only: the residual suppressor also ducks the caller's speech while
            # the bot talks, and barge-ins over echo were then missed (bench/turns.py); the
            # echo it would remove is kept from interrupting the bot by the EchoGate instead
            self._aec = EchoCanceller(tail_ms=self.echo_tail_ms, residual_suppression=False)
            self._aec_delay = self._aec.latency_samples // 320
        self._stop = threading.Event()
        self._llm = None
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

    # --- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
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
        for u in list(self._utterances.values()):
            u.interrupt()
        self.core.end()
        self._inbox.put(None)
        self._jobs.put(None)
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout)
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
            echo_only = self._gate.echo_only()
            for end, prob in self._vad.feed(int16_to_float(pcm)):
                # over the bot's own audio, what is no louder than its echo is not the caller
                self._execute(self.core.on_vad(end, 0.0 if echo_only else prob))
            self._check_done()

    def _check_done(self) -> None:
        u = self._utterances.get(self.core.utterance_id)
        if u is not None and not u.interrupted and u.done_playing():
            self._finish_utterance(u)
            self._execute(self.core.on_utterance_done(u.id))

    def _finish_utterance(self, u: Utterance) -> None:
        self._utterances.pop(u.id, None)
        heard = u.heard_text() if u.interrupted else u.generated_text
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
                u = Utterance(a.utterance_id, self.playout)
                self._utterances[u.id] = u
                self._jobs.put(lambda u=u, text=a.text: self._say(u, text))

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
        self._jobs.put(lambda: self._transcribe(a, rec, audio))

    def _mark_committed(self, rec: TurnRecord) -> None:
        rec.committed = time.monotonic()
        self.turns.append(rec)

    def _commit(self, a: Commit, answered: bool) -> None:
        rec = self._recs.get(a.turn_id)
        if rec is None:
            return
        self._mark_committed(rec)
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
        for pcm in self.engines.tts.synthesize(text):
            if not u.add_clause(text, pcm):
                break
        u.generated_text = text
        u.finished_generating = True

    def _respond(self, u: Utterance, rec: TurnRecord | None,
                 messages: list[dict[str, str]]) -> None:
        if u.cancelled:
            return
        if self._llm is None:
            self._llm = self.engines.llm.acquire(timeout=30.0)
        t0 = time.monotonic()
        chunker = ClauseChunker(first_max_words=FIRST_CLAUSE_WORDS)
        parts: list[str] = []

        def speak(clauses: list[str]) -> None:
            for clause in clauses:
                for pcm in self.engines.tts.synthesize(clause):
                    if rec is not None and rec.tts_first_audio_seconds is None:
                        rec.tts_first_audio_seconds = time.monotonic() - t0
                    u.add_clause(clause, pcm)
                    clause = ""  # a clause Piper split in two: its text goes with the first

        for piece in stream_chat(self._llm, messages, self.engines.max_tokens,
                                 self.engines.temperature, lambda: u.cancelled):
            if rec is not None and rec.llm_first_token_seconds is None:
                rec.llm_first_token_seconds = time.monotonic() - t0
            parts.append(piece)
            # kept current: a barge-in records the words generated up to that moment
            u.generated_text = "".join(parts).strip()
            if self.streaming:
                speak(chunker.feed(piece))
            if u.cancelled:
                break
        if not u.cancelled:
            if not self.streaming:  # the sequential baseline: whole reply, then whole speech
                chunker.feed("".join(parts))
                audio = [(c, b"".join(self.engines.tts.synthesize(c)))
                         for c in chunker.feed("") + chunker.flush()]
                if rec is not None:
                    rec.tts_first_audio_seconds = time.monotonic() - t0
                for clause, pcm in audio:
                    u.add_clause(clause, pcm)
            else:
                speak(chunker.flush())
        u.generated_text = "".join(parts).strip()
        u.finished_generating = True
        if not u.clauses and not u.cancelled:  # nothing to say: let the core move on
            self._inbox.put(_Call(self._check_done))


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
