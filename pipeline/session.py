"""One call's conversation engine at run time: the threads around the sans-I/O core.

Threads per call:
- the media clock (PJSIP's) calls ``push_inbound`` / ``pull_outbound`` every 20 ms; they only
  touch a queue and the playout buffer, never wait;
- the *listener* (this module) takes inbound frames in order, runs the echo canceller and the
  VAD, feeds the ``Conversation`` and carries out its actions; it stays responsive while
  models run, so barge-in is immediate;
- the *worker* (``pipeline/reply/worker.py``) runs model jobs (speech-to-text, LLM -> clauses
  -> TTS, tools) one at a time, and reports back through the listener's queue, so the core
  only ever runs on one thread;
- a streaming speech-to-text backend hears every frame on a thread of its own
  (``pipeline/stt/transcriber.py``).

Time comes from ``clock`` (monotonic seconds), audio time from the inbound sample count.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pipeline.audio.echo_gate import EchoGate
from pipeline.audio.frames import (
    BRIDGE_RATE,
    FRAME_BYTES,
    FRAME_SAMPLES,
    PlayoutBuffer,
    int16_to_float,
    ms_to_samples,
    samples_to_ms,
)
from pipeline.audio.inbound import InboundAudio
from pipeline.audio.utterance import Utterance
from pipeline.core.conversation import (
    Action,
    Cancel,
    Commit,
    Conversation,
    Discard,
    FalseInterruption,
    Interrupt,
    ListenAhead,
    PausePlayout,
    Prepare,
    ReadAhead,
    Respond,
    ResumePlayout,
    Say,
    ScoreTurn,
    Transcribe,
    TurnEnded,
    Typed,
    Unanswered,
)
from pipeline.core.dtmf import KeyEvent, KeyEventKind, entry_text
from pipeline.engines import Engines
from pipeline.facts.turns import CallFacts
from pipeline.messages.taking import MessageDesk
from pipeline.options import SessionOptions
from pipeline.reply.history import ChatHistory
from pipeline.reply.worker import ReplyWorker
from pipeline.stt.transcriber import POST_ROLL, PRE_ROLL, TurnTranscriber
from pipeline.turn_record import Heard, ReplyReport, TurnRecord

log = logging.getLogger(__name__)

SILENCE = bytes(FRAME_BYTES)
KEEP_INBOUND_SECONDS = 130  # longest turn (max 120 s) plus margin


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


@dataclass
class _Reply:
    """From the worker: a reply's report, and the utterance it has written to its end (None:
    still writing). Kept apart from other work: after the call ended, the reports still
    queued complete their turns' records (``stop``)."""
    report: ReplyReport | None
    written: Utterance | None = None


class CallSession:
    def __init__(self, call_id: str, engines: Engines, options: SessionOptions, *,
                 on_failure: Callable[[str, BaseException], None],
                 thread_init: Callable[[str], None] = lambda name: None,
                 on_turn_done: Callable[[TurnRecord], None] = lambda rec: None,
                 transfer: Callable[[str], None] | None = None,
                 hang_up: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 caller: str = "", desk: MessageDesk | None = None) -> None:
        """``caller``: the From URI; ``desk``: where a message the caller leaves goes (None:
        this call takes none)."""
        self.call_id = call_id
        self.engines = engines
        self.options = options
        self.on_failure = on_failure
        """Called (from a pipeline thread) when this call's pipeline fails: hang the call up."""
        self.thread_init = thread_init
        """Run first in every thread this session starts (pjsua2 needs threads registered)."""
        self.on_turn_done = on_turn_done
        """Called (listener thread) once a turn is over: answered, interrupted or empty."""
        self.transfer = transfer
        """Send a REFER to this URI (must not block); the outcome comes back through
        ``on_transfer_result``. None: this call cannot be transferred."""
        self.hang_up = hang_up
        """End the call (BYE) for the cause given. None: this call cannot be hung up."""
        self.clock = clock
        self.wall = wall
        """Unix time: the facts note's "now" (the business's local time is computed from it)."""
        self.facts = (None if options.business is None
                      else CallFacts(options.business, engines.fact_index))
        self.log = logging.LoggerAdapter(log, {"call": call_id})
        self.turns: list[TurnRecord] = []
        self.playout = PlayoutBuffer()
        self.core = Conversation(options.settings)
        self.history = ChatHistory(options.system_prompt, engines.history_turns)
        self.keys = options.keypad.collector()
        self.last_audio_out = 0.0  # when the media clock last took a frame of bot audio
        self._inbox: queue.SimpleQueue[_Inbound | _Call | _Reply | None] = queue.SimpleQueue()
        self._vad = engines.vad.stream()
        self._audio = InboundAudio(KEEP_INBOUND_SECONDS * BRIDGE_RATE)
        self._utterances: dict[int, Utterance] = {}
        self._recs: dict[int, TurnRecord] = {}  # turn id -> record, speculative ones too
        self._turn_of_utterance: dict[int, TurnRecord] = {}
        self._started_uid = 0
        self._last_out = SILENCE
        self._gate = EchoGate(tail_frames=max(1, ms_to_samples(options.echo_tail_ms or 300)
                                                 // FRAME_SAMPLES),
                              ratio_db=options.double_talk_db,
                              adaptive=options.double_talk_adaptive)
        self._aec = None
        self._aec_delay = 0  # frames the canceller's output lags its input
        self._prev_t = 0.0
        if options.echo_tail_ms:
            from pipeline.audio.aec import EchoCanceller

            # linear filter only: the residual suppressor also ducks the caller's speech while
            # the bot talks, and barge-ins over echo were then missed (bench/turns.py); the
            # echo it would remove is kept from interrupting the bot by the EchoGate instead
            self._aec = EchoCanceller(tail_ms=options.echo_tail_ms, residual_suppression=False)
            self._aec_delay = self._aec.latency_samples // FRAME_SAMPLES
        self._stop = threading.Event()
        self._worker = ReplyWorker(call_id, engines, options, _CallActions(self),
                                   on_written=lambda u, r: self._inbox.put(_Reply(r, u)),
                                   on_report=lambda r: self._inbox.put(_Reply(r)),
                                   log=self.log, clock=clock, thread_init=thread_init,
                                   caller=caller, desk=desk)
        self._stt = TurnTranscriber(
            call_id, engines, self._worker.submit,
            on_text=lambda heard: self._inbox.put(_Call(lambda: self._on_transcript(heard))),
            log=self.log, clock=clock, turn_audio_dir=options.turn_audio_dir,
            thread_init=thread_init, submit_if_idle=self._worker.submit_if_idle)
        self._threads: list[threading.Thread] = []

    # --- media clock side (never blocks) -------------------------------------------------

    def push_inbound(self, pcm: bytes) -> None:
        self._inbox.put(_Inbound(pcm, self.clock(), self._last_out))

    def pull_outbound(self) -> bytes:
        item = self.playout.pop()
        if item is None:
            self._last_out = SILENCE
            return SILENCE
        uid, frame = item
        self._last_out = frame
        self.last_audio_out = self.clock()
        if uid != self._started_uid:
            self._started_uid = uid
            t = self.last_audio_out
            self._inbox.put(_Call(lambda: self._on_playout_started(uid, t)))
        return frame

    # --- call control (any thread; never blocks) ------------------------------------------

    def on_dtmf(self, digit: str) -> None:
        """A key the caller pressed (RFC 4733 or SIP INFO), once per press."""
        t = self.clock()
        self._inbox.put(_Call(lambda: self._on_key(self.keys.press(digit, t), digit)))

    def on_transfer_result(self, accepted: bool, status: int, reason: str) -> None:
        """The REFER's final outcome (the gateway ends the call itself when it succeeded)."""
        self._inbox.put(_Call(lambda: self._on_transfer_result(accepted, status, reason)))

    # --- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        self._stt.start()
        work = lambda: self._worker.run(self._stop.is_set)  # noqa: E731
        for name, target in (("listen", self._listen_loop), ("work", work)):
            t = threading.Thread(target=self._guard, args=(name, target),
                                 name=f"{self.call_id}-{name}", daemon=True)
            self._threads.append(t)
            t.start()
        self._inbox.put(_Call(lambda: self._execute(self.core.start(self.options.greeting))))

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
        self._worker.close()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout)
        self._stt.close(timeout)
        if not any(t.is_alive() for t in self._threads):
            self._take_late_reports()
            # a reply still playing (or being written) when the call ended: its turn record
            # gets the words generated and heard, like a barge-in's (the threads that would
            # have finished it are gone)
            for u in list(self._utterances.values()):
                rec = self._turn_of_utterance.get(u.id)
                if rec is not None:
                    rec.ended_with_call = True
                self._finish_utterance(u)
            if self._aec is not None:
                self._aec.close()
            self._release()

    def _take_late_reports(self) -> None:
        """The reports the worker sent after the listener stopped (the reply it was writing
        when the call ended: a message saved just before the caller hung up) go into their
        records."""
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _Reply) and item.report is not None:
                self._on_reply_report(item.report)

    def _release(self) -> None:
        """Let go of the call's audio once its threads are gone. The session object may
        outlive its call (the records keep the last few calls; in the 4-call soak ended
        sessions stayed referenced from outside Python's view, 4 MB of inbound ring buffer
        each, +35-50 MB/min): what it holds must not."""
        self._audio = InboundAudio(FRAME_SAMPLES)
        self._inbox = queue.SimpleQueue()
        self._utterances.clear()
        self._turn_of_utterance.clear()
        self.playout.flush()
        self._worker.release()

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
            if isinstance(item, _Reply):
                self._on_reply(item)
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
            self._stt.push(pcm)
            echo_only = self._gate.echo_only()
            for end, prob in self._vad.feed(int16_to_float(pcm)):
                # over the bot's own audio, what is no louder than its echo is not the caller
                self._execute(self.core.on_vad(end, 0.0 if echo_only else prob))
            if self.keys.collecting:
                self._on_key(self.keys.poll(item.t), "")
            self._check_done()

    def _execute(self, actions: list[Action]) -> None:
        """Carry out the core's actions, in order."""
        for a in actions:
            match a:
                case PausePlayout():
                    self.playout.held = True
                case ResumePlayout():
                    self.playout.held = False
                case Interrupt():
                    self._interrupt(a)
                case Cancel():
                    self._cancel(a)
                case Transcribe():
                    self._start_transcription(a)
                case Commit():
                    self._commit(a)
                case Typed():
                    self._typed(a)
                case Unanswered():
                    self._unanswered(a)
                case Discard():
                    self._discard(a)
                case Respond():
                    self._start_reply(a)
                case Say():
                    self._start_saying(a)
                case ScoreTurn():
                    self._score_turn(a)
                case TurnEnded():
                    self._turn_ended(a)
                case FalseInterruption():
                    self._resume_after(a)
                case Prepare():
                    self._prepare()
                case ListenAhead():
                    self._listen_ahead(a)
                case ReadAhead():
                    self._read_ahead(a.text)

    def _check_done(self) -> None:
        for u in list(self._utterances.values()):
            if not u.interrupted and u.done_playing():
                self._finish_utterance(u)
                self._execute(self.core.on_utterance_done(u.id))

    def _finish_utterance(self, u: Utterance) -> None:
        self._utterances.pop(u.id, None)
        heard = u.heard_text() if u.interrupted else u.spoken_text()
        played = self.playout.played(u.id)  # final: it was interrupted or played to its end
        if u.interrupted and played == 0:
            self.history.retract_user()  # never heard: the caller's turn goes on
        else:
            self.history.add_bot(heard, interrupted=u.interrupted)
        rec = self._turn_of_utterance.pop(u.id, None)
        if rec is not None:
            rec.bot_text, rec.heard_text, rec.interrupted = u.generated_text, heard, u.interrupted
            if played:  # its last frame is the last one handed out
                rec.audio_end = self.last_audio_out + FRAME_SAMPLES / BRIDGE_RATE
            self.on_turn_done(rec)
        if not u.interrupted:
            self.log.info("bot said: %r", u.generated_text)
        elif played:
            self.log.info("bot interrupted: %r", heard)
        else:  # not a barge-in: the caller never heard it (they went on, or the call ended)
            self.log.info("bot reply dropped before it was heard: %r", u.generated_text)
        if u.after_played is not None:
            if u.interrupted:
                self.log.info("the caller cut in: the action after this utterance is dropped")
            else:
                u.after_played()

    def _on_playout_started(self, uid: int, t: float) -> None:
        rec = self._turn_of_utterance.get(uid)
        if rec is not None and rec.first_audio is None:
            rec.first_audio = t
            if rec.opening:  # said before the model's first token, which is not known yet
                self.log.info("turn %d: first audio %.0f ms after the end of turn was decided "
                              "(stt %.0f, the facts' opening %r spoken %.0f ms after the "
                              "request)", rec.turn_id, (t - rec.committed) * 1000,
                              1000 * (rec.stt_seconds or 0), rec.opening,
                              1000 * (rec.tts_first_audio_seconds or 0))
            else:
                self.log.info("turn %d: first audio %.0f ms after the end of turn was decided "
                              "(stt %.0f, llm first token %.0f after reading %s prompt "
                              "tokens, first clause audio %.0f ms)",
                              rec.turn_id, (t - rec.committed) * 1000,
                              1000 * (rec.stt_seconds or 0),
                              1000 * (rec.llm_first_token_seconds or 0),
                              "?" if rec.prompt_tokens_read is None else rec.prompt_tokens_read,
                              1000 * (rec.tts_first_audio_seconds or 0))
        self._execute(self.core.on_playout_started(uid, self._audio.received_by(t)))

    # --- the core's actions (listener thread) -----------------------------------------------

    def _interrupt(self, a: Interrupt) -> None:
        self.playout.held = False
        u = self._utterances.get(a.utterance_id)
        if u is None:
            return
        u.interrupt()
        played = a.barge_in and self.playout.played(u.id)
        if played:
            g = self._gate
            closest, near, far = g.closest_db(50)
            self.log.info("barge-in over the bot: in the last second the line peaked at %+.1f dB "
                          "against the bot (%d / %d); echo gate threshold %.1f dB, tail %d ms, "
                          "echo delay %s", closest, near, far, g.threshold_db, g.tail * 20,
                          "unknown" if g.delay_frames is None else f"{g.delay_frames * 20} ms")
        rec = self._turn_of_utterance.get(u.id)
        if rec is not None and played:
            rec.barge_in_seconds = max(
                0.0, self.last_audio_out - self._audio.arrived(a.speech_start))
        self._finish_utterance(u)

    def _cancel(self, a: Cancel) -> None:
        u = self._utterances.get(a.utterance_id)
        if u is not None:
            u.interrupt()
            self._finish_utterance(u)

    def _score_turn(self, a: ScoreTurn) -> None:
        model = self.engines.smart_turn
        if model is None:
            return
        # inline: ~50 ms once per pause, while the caller is silent; the inbox keeps the frames
        score = model.complete(int16_to_float(self._audio.span(a.start, a.end)))
        self._execute(self.core.on_turn_score(a.pause_id, score))

    def _turn_ended(self, a: TurnEnded) -> None:
        rec = self._recs.get(a.turn_id)
        if rec is None:
            return
        rec.end_of_turn_reason = a.reason.value
        rec.end_of_turn_score = a.score
        if rec.committed:  # a held answer is released only now, after the longest wait
            rec.committed = self.clock()
        self.log.info("turn %d ended: %s (score %s, after %d ms of silence)", a.turn_id,
                      a.reason.value, "-" if a.score is None else f"{a.score:.2f}",
                      samples_to_ms(a.waited))

    def _resume_after(self, a: FalseInterruption) -> None:
        self.playout.held = False
        rec = self._recs.get(a.turn_id)
        if rec is not None:
            rec.false_interruption = True
        self.log.info("turn %d was no interruption: the bot goes on", a.turn_id)

    def _discard(self, a: Discard) -> None:
        self._recs.pop(a.turn_id, None)
        u = self._utterances.pop(a.utterance_id, None) if a.utterance_id else None
        if u is not None:
            u.interrupt()
            self._turn_of_utterance.pop(u.id, None)

    def _start_saying(self, a: Say) -> None:
        u = Utterance(a.utterance_id, self.playout, after_played=a.after_played)
        self._utterances[u.id] = u
        self._worker.say(u, a.text)


    def _prepare(self) -> None:
        """The reply's prompt, as far as it is known before the caller's words: the history,
        and the start of the facts note that will precede them (read by the model now, while
        the caller talks, the reply reads only the rest: ~20 fewer tokens, ~0.25 s with the
        1.5B model on 2 cores). Only a backend that keeps this call's context can (a server
        keeps its own prompt cache); the cascade baseline reads the whole prompt every turn."""
        if not self._worker.reads_ahead:
            return
        if self.facts is None:
            self._worker.prefill(self.history.messages())
            return
        # the note's first line, left open: the note goes on with the turn's own lines
        self._worker.prefill([*self.history.messages(), {
            "role": "system", "content": self.facts.head(self.wall())}], open_turn=True)

    def _listen_ahead(self, a: ListenAhead) -> None:
        if not self._worker.reads_ahead:
            return
        self._stt.ahead(self._audio.span(a.start - PRE_ROLL, a.end), lambda text: self._inbox.put(
            _Call(lambda: self._execute(self.core.on_words_ahead(a.start, text)))))

    def _read_ahead(self, text: str) -> None:
        """The prompt the reply would have if the caller stopped now, its last line left open:
        a reply whose words start with these reads only the rest."""
        note = "" if self.facts is None else self.facts.note(text, self.wall(), commit=False)
        self._worker.prefill(self._prompt_with(text, note), open_turn=True)

    def _prompt_with(self, text: str, note: str) -> list[dict[str, str]]:
        """The reply's prompt for the caller's ``text`` and its facts ``note``, the history
        left as it is (a turn that has not committed)."""
        facts = [{"role": "system", "content": note}] if note else []
        return [*self.history.messages(), *facts, {"role": "user", "content": text}]

    def _start_reply(self, a: Respond) -> None:
        u = Utterance(a.utterance_id, self.playout, held=a.speculative)
        self._utterances[u.id] = u
        rec = self._recs.get(a.turn_id)
        if rec is not None:
            self._turn_of_utterance[u.id] = rec
        note = "" if self.facts is None else self.facts.note(a.text, self.wall(),
                                                             commit=not a.speculative)
        if rec is not None:
            rec.facts_note = note
        if a.speculative:  # the history learns of this turn only when it commits
            messages = self._prompt_with(a.text, note)
        else:
            self.history.add_user(a.text, note)
            messages = self.history.messages()
        then = "" if self.facts is None else self.facts.then_say(note)
        opening = "" if self.facts is None else self.facts.opening(note)
        instead = "" if self.facts is None else self.facts.instead_of_guessing(note)
        whole = "" if self.facts is None else self.facts.whole_answer(note)
        audio = b""
        if self.options.messages is not None and rec is not None and not rec.keypad:
            audio = self._audio.span(rec.speech_start_sample - PRE_ROLL,
                                     rec.speech_end_sample + POST_ROLL).tobytes()
        self._worker.respond(u, a.turn_id, messages, then, audio,
                             keypad=rec is not None and rec.keypad,
                             opening=opening, instead=instead, whole=whole)

    def _on_reply(self, item: _Reply) -> None:
        if item.report is not None:
            self._on_reply_report(item.report)
        if item.written is not None:
            item.written.finished_generating = True
            self._check_done()

    def _on_reply_report(self, r: ReplyReport) -> None:
        rec = self._recs.get(r.turn_id)
        if rec is not None:
            rec.take_reply(r)

    def _mark_committed(self, rec: TurnRecord) -> None:
        rec.committed = self.clock()
        self.turns.append(rec)

    def _commit(self, a: Commit) -> None:
        rec = self._recs.get(a.turn_id)
        if rec is None:
            return
        self._mark_committed(rec)
        self._stt.committed()
        u = self._utterances.get(a.utterance_id) if a.utterance_id else None
        if u is not None:
            if self.facts is not None:  # the next turn may follow this one ("and Sunday?")
                self.facts.note(rec.caller_text, self.wall())
            self.history.add_user(rec.caller_text, rec.facts_note)
            u.release()

    # --- speech-to-text (pipeline/stt/transcriber.py) ---------------------------------------

    def _start_transcription(self, a: Transcribe) -> None:
        rec = TurnRecord(a.turn_id, a.start, a.end, 0.0,
                         speech_end_time=self._audio.arrived(a.end), speculative=a.speculative)
        self._recs[a.turn_id] = rec
        if not a.speculative:
            self._mark_committed(rec)
        # Silero scores a word's onset late and its tail early: keep some margin
        self._stt.transcribe(a, self._audio.span(a.start - PRE_ROLL, a.end + POST_ROLL))

    def _on_transcript(self, h: Heard) -> None:
        rec = self._recs.get(h.turn_id)
        if rec is not None:
            rec.hear(h)
        self._execute(self.core.on_transcript(h.turn_id, h.text, h.end_of_message))

    def _unanswered(self, a: Unanswered) -> None:
        rec = self._recs.get(a.turn_id)
        if rec is None:
            return
        self.on_turn_done(rec)
        if rec.stt_error and self.options.stt_apology:  # the server failed, not the caller
            self._bot_says(self.options.stt_apology)

    # --- keys, transfers, bot-initiated speech (listener thread) ---------------------------

    def _bot_says(self, text: str, after_played: Callable[[], None] | None = None) -> None:
        self._execute(self.core.say(text, after_played))

    def _on_key(self, ev: KeyEvent | None, digit: str) -> None:
        if digit:
            self.log.debug("key %r", digit)  # debug only: keyed digits may be a PIN
        if ev is None:
            return
        if ev.kind is KeyEventKind.OPERATOR:
            targets = self.options.transfer_targets
            if not targets:
                self._bot_says("Sorry, there is nobody I can transfer you to.")
                return
            # a key press is explicit and final: no confirmation, no model involved
            name, uri = next(iter(targets.items()))
            self.log.info("key %r: transferring to the %s", digit, name)
            self._bot_says(f"Transferring you to the {name} now.",
                           lambda: _CallActions(self).transfer(name, uri))
            return
        self._execute(self.core.on_text_turn(entry_text(ev.digits)))

    def _typed(self, a: Typed) -> None:
        rec = TurnRecord(a.turn_id, self._audio.end, self._audio.end, 0.0,
                         speech_end_time=self.clock(), caller_text=a.text, keypad=True)
        self._recs[a.turn_id] = rec
        self._mark_committed(rec)

    def _on_transfer_result(self, accepted: bool, status: int, reason: str) -> None:
        self.log.info("transfer %s: %s %s", "accepted" if accepted else "failed", status, reason)
        if not accepted:
            self._bot_says("Sorry, I could not transfer your call. How else can I help?")


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
