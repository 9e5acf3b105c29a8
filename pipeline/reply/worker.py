"""One call's reply worker: the thread that runs its model jobs, one at a time.

The listener hands it jobs (a turn to transcribe, a phrase to say, a turn to answer) and it
reports back through callbacks that only queue work for the listener, so the conversation
core runs on one thread. The worker owns what only it touches: the call's LLM context, the
tool dialogue, the tool runner and the speech filters.

The reply path, from a committed (or speculative) turn to clauses queued for playout, reads
top to bottom in ``_respond``: a pending question? (``ToolDialogue.answer``) -> the tool
router (``_route``, ``_tool_turn``) -> the LLM stream -> the clause chunker -> the speech
filters (``_speakable``) -> TTS -> the utterance (playout). A server backend's failure
(``LlmError``) becomes the apology (``_llm_failed``); the call goes on.
"""

from __future__ import annotations

import copy
import logging
import queue
import re
import threading
import time
from collections.abc import Callable

from pipeline.audio.frames import ms_to_samples
from pipeline.audio.utterance import Utterance
from pipeline.engines import Engines
from pipeline.llm.base import ChatContext, LlmError
from pipeline.llm.chat import spaced_after
from pipeline.messages.taking import MessageDesk, MessageTaker
from pipeline.messages.taking import Step as MessageStep
from pipeline.options import SessionOptions
from pipeline.reply.chunker import ClauseChunker
from pipeline.reply.guard import REFUSAL, ClauseVerdict, Guess, SpeechGuard
from pipeline.tools.catalog import (
    TAKE_MESSAGE,
    CallActions,
    ToolPolicy,
    ToolResult,
    parse_tool_call,
    wants_to_leave_message,
)
from pipeline.tools.dialogue import Step, StepKind, ToolDialogue
from pipeline.tts.base import Speech, TtsUnavailable, from_onset
from pipeline.turn_record import ReplyReport

FIRST_CLAUSE_WORDS = 5  # the caller waits for the first clause: cut it early (by words)
RUNNING_DRY = ms_to_samples(400)
"""Less of the reply than this queued to play: the next clause is cut at the words generated
so far (synthesizing ~10 words takes ~150-250 ms on 2 cores), or the caller hears a gap."""
AHEAD = ms_to_samples(4000)
"""More of the reply than this queued to play: its writing waits until playout catches up.
A reply is spoken far slower than it is written (~3 tokens/s against ~15), and one written
to its end at once takes the cores from the other calls' first words."""

Job = Callable[[], None]


class ReplyWorker:
    def __init__(self, name: str, engines: Engines, options: SessionOptions,
                 actions: CallActions,
                 on_written: Callable[[Utterance, ReplyReport | None], None],
                 on_report: Callable[[ReplyReport], None],
                 log: logging.LoggerAdapter, clock: Callable[[], float] = time.monotonic,
                 thread_init: Callable[[str], None] = lambda name: None,
                 caller: str = "", desk: MessageDesk | None = None) -> None:
        self.name = name
        self.engines = engines
        self.options = options
        self._actions = actions
        self._on_written = on_written
        """Called when an utterance is written to its end, with its reply's final report (None:
        not a reply); queues work for the listener, which then marks it finished: the turn's
        record has all of the report before the utterance can end."""
        self._on_report = on_report
        """Called with a copy of a reply's report before its first clause is queued (queues
        work for the listener)."""
        self._report: ReplyReport | None = None  # the reply being written's
        self.log = log
        self.clock = clock
        self._thread_init = thread_init
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._llm: ChatContext | None = None  # this call's LLM context (``_context``)
        self._secrets = SpeechGuard(
            options.never_say,
            options.system_prompt if options.prompt_secrets is None else options.prompt_secrets)
        self._dialogue = (ToolDialogue(options.tools or ToolPolicy([]), options.transfer_targets)
                          if options.tools is not None or options.messages is not None else None)
        self._tool_runner: ToolRunner | None = None
        self._names = (options.business.name,) if options.business is not None else ()
        """Names a reply may open with, spoken as a clause of their own (the chunker)."""
        self._caller = caller
        """The caller's From URI (its number is offered as the callback number)."""
        self._desk = desk if options.messages is not None else None
        """Where a message the caller leaves is saved (None: no messages are taken)."""
        self._taker: MessageTaker | None = None
        """Taking a message: the caller's turns go to it until it is done."""
        self._taker_before: tuple[Utterance, MessageTaker | None] | None = None
        """The last turn the taker took, and the taker as it was before it."""

    # --- the listener's side (any thread; never blocks) ------------------------------------

    def submit(self, job: Job) -> None:
        self._jobs.put(job)

    def submit_if_idle(self, job: Job) -> None:
        """Run ``job`` unless another job is waiting when its turn comes: work done ahead
        (listening, prefilling) must never delay the work of a turn that has ended."""
        self._jobs.put(lambda: job() if self._jobs.empty() else None)

    def say(self, u: Utterance, text: str) -> None:
        self._jobs.put(lambda: self._say(u, text))

    def respond(self, u: Utterance, turn_id: int, messages: list[dict[str, str]],
                then: str = "", audio: bytes = b"", keypad: bool = False,
                opening: str = "", instead: str = "", whole: str = "") -> None:
        """Answer turn ``turn_id``'s ``messages``; ``then``: a sentence said after the model's
        answer (unless the model said it itself); ``opening``: the answer's first words, known
        before the model's (said at once, the model goes on after them); ``whole``: the whole
        answer, known (said as it is, and the model is not asked); ``instead``: said in place
        of a clause that names a person or a number the prompt does not hold (a guess: the
        facts do not answer the turn), and the reply ends there; ``audio``: the caller's
        speech of the turn (kept if it is a message being taken); ``keypad``: the turn was
        typed. What the reply learns comes back through ``on_report``."""
        self._jobs.put(lambda: self._respond(u, turn_id, messages, then, audio, keypad,
                                             opening, instead, whole))

    def prefill(self, messages: list[dict[str, str]], open_turn: bool = False) -> None:
        """Read ``messages`` into this call's context (the start of the next reply's prompt;
        the backend has ``prefill``); ``open_turn``: the last message is the caller's words so
        far, not closed. Skipped when another job is waiting, which would start from its own
        prompt anyway."""
        self.submit_if_idle(lambda: self.engines.llm.prefill(
            self._context(), messages, open_turn, stop=lambda: not self._jobs.empty()))

    def close(self) -> None:
        """The thread ends after the job in hand."""
        self._jobs.put(None)

    def release(self) -> None:
        """After the thread ended: drop jobs it never ran (they hold turns' audio)."""
        self._jobs = queue.SimpleQueue()

    # --- the worker thread ---------------------------------------------------------------

    def run(self, stopped: Callable[[], bool]) -> None:
        try:
            while not stopped():
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

    def _say(self, u: Utterance, text: str) -> None:
        self._speak_all(u, text)
        u.generated_text = text
        self._on_written(u, None)

    def _context(self) -> ChatContext:
        """This call's LLM context, taken at its first use and kept until the thread ends."""
        if self._llm is None:
            self._llm = self.engines.llm.acquire(timeout=30.0)
        return self._llm

    def _respond(self, u: Utterance, turn_id: int, messages: list[dict[str, str]],
                 then: str, audio: bytes, keypad: bool, opening: str = "",
                 instead: str = "", whole: str = "") -> None:
        if u.cancelled:
            return
        # the listener gets the report before the reply's first frame can play (its timings
        # are logged then: ``_queue``), and again before the utterance can end (the turn's
        # record is written then)
        self._report = ReplyReport(turn_id)
        try:
            self._answer(u, self._report, messages, then, audio, keypad, opening, instead,
                         whole)
        finally:
            report, self._report = self._report, None
        self._on_written(u, report.snapshot())
        self._read_said_ahead(u, messages)

    @property
    def reads_ahead(self) -> bool:
        """Whether this call's LLM context can read a prompt's start before its request."""
        return self.engines.llm.reads_ahead and self.options.prompt_cache

    def _read_said_ahead(self, u: Utterance, messages: list[dict[str, str]]) -> None:
        """While the reply plays, read it into the context as the next prompt will hold it,
        after this turn's prompt. Words the model did not write (the fallback, a message
        offer, "Alright, I won't", a tool's phrase) were read only at the next turn, after
        the caller's first pause: 100-130 tokens, the slowest first tokens of a long call.
        Given up when the utterance is dropped or another job waits."""
        said = u.generated_text
        if not (self.reads_ahead and messages and said) or u.cancelled or u.withheld:
            return
        prompt = [*messages, {"role": "assistant", "content": said}]

        def stop() -> bool:
            return u.cancelled or not self._jobs.empty()

        def read() -> None:
            if not stop():
                self.engines.llm.prefill(self._context(), prompt, stop=stop)

        self.submit_if_idle(read)

    def _answer(self, u: Utterance, report: ReplyReport, messages: list[dict[str, str]],
                then: str, audio: bytes, keypad: bool, opening: str = "",
                instead: str = "", whole: str = "") -> None:
        caller_text = messages[-1]["content"] if messages else ""
        self._undo_superseded_turn()
        if self._taker is not None:
            self._take_message(u, report, caller_text, audio, keypad)
            return
        report.llm_backend = self.engines.llm.backend
        if self._dialogue is not None and (self._answer_question(u, report, caller_text)
                                           or self._message_wish(u, report, caller_text)
                                           or self._route(u, report, caller_text)):
            return
        if whole:
            self._say_whole(u, report, whole)
            return
        llm = self._context()
        if not self.options.prompt_cache:
            llm.reset()  # forget the evaluated prefix: the whole prompt is read again
        t0 = self.clock()
        chunker = ClauseChunker(first_max_words=FIRST_CLAUSE_WORDS, names=self._names)
        parts: list[str] = []
        guessed = Guess(instead, " ".join(m["content"] for m in messages))

        def speak(clauses: list[str], ours: bool = False) -> None:
            """``ours``: words the gateway adds (not the model's: no guess to watch for)."""
            self._speak(u, report, clauses if ours else guessed.check(clauses), t0)

        # words the facts already decided are said while the model reads the note: the
        # caller hears the answer begin ~1 s sooner, and the model goes on from them
        opening = opening if self.options.streaming and self.engines.llm.continues else ""
        if opening:
            report.opening = opening
            parts.append(opening)
            u.generated_text = self._secrets.redact(opening)
            speak(chunker.feed(f"{opening} "))
        try:
            reply = self.engines.llm.stream(llm, messages, self.engines.max_tokens,
                                            self.engines.temperature, lambda: u.cancelled,
                                            watch=u.on_cancel, opening=opening)
            for piece in reply:
                if report.llm_first_token_seconds is None:
                    report.llm_first_token_seconds = self.clock() - t0
                    report.prompt_tokens_read = reply.prompt_tokens_read
                    piece = spaced_after(opening, piece)
                parts.append(piece)
                # kept current: a barge-in records the words generated up to that moment
                u.generated_text = self._secrets.redact("".join(parts).strip())
                if self.options.streaming:
                    speak(chunker.feed(piece))
                    if self._running_dry(u):
                        speak(chunker.cut())
                    self._pace(u)
                if u.cancelled or u.withheld or guessed.stopped:
                    break
        except LlmError as e:
            self._llm_failed(u, report, e)
            return
        if not u.cancelled:
            if not self.options.streaming:  # the sequential baseline: whole reply, then speech
                chunker.feed("".join(parts))
                audio = [(c, speech)
                         for c in self._speakable(u, guessed.check(chunker.feed("")
                                                                   + chunker.flush()))
                         for speech in self._synthesize(c, report)]
                report.tts_first_audio_seconds = self.clock() - t0
                for clause, speech in audio:
                    self._queue(u, clause, speech)
            elif not (u.withheld or guessed.stopped):
                speak(chunker.flush())
            if guessed.stopped:
                self.log.warning("not spoken (named %s, which neither the facts nor the caller "
                                 "did: the facts do not answer this turn): %r",
                                 ", ".join(guessed.names), self._secrets.redact(guessed.clause))
                parts[:] = [" ".join([*guessed.said, instead])]
                chunker = ClauseChunker()  # the rest of the guess is not said
            if then and not u.withheld and then.lower() not in "".join(parts).lower():
                parts.append(f" {then}")
                speak(chunker.feed(f" {then}") + chunker.flush(), ours=True)
            offer = "" if u.withheld else self._message_offer(report, "".join(parts))
            if offer:
                parts.append(f" {offer}")
                speak(chunker.feed(f" {offer}") + chunker.flush(), ours=True)
        u.generated_text = self._secrets.redact("".join(parts).strip())

    def _say_whole(self, u: Utterance, report: ReplyReport, text: str) -> None:
        """An answer the facts computed whole: said as it is (the model is not asked), and the
        offer to take a message after it if it ends with the fallback."""
        report.opening = text
        chunker = ClauseChunker(first_max_words=FIRST_CLAUSE_WORDS, names=self._names)
        self._speak(u, report, chunker.feed(f"{text} ") + chunker.flush(), self.clock())
        offer = "" if u.withheld else self._message_offer(report, text)
        if offer:
            text = f"{text} {offer}"
            self._speak_all(u, offer)
        u.generated_text = self._secrets.redact(text)

    def _speak(self, u: Utterance, report: ReplyReport, clauses: list[str], t0: float) -> None:
        """Synthesize and queue the clauses the speech filters let through; the first
        audio's time after ``t0`` goes into the report."""
        for clause in self._speakable(u, clauses):
            for speech in self._synthesize(clause, report):
                if report.tts_first_audio_seconds is None:
                    report.tts_first_audio_seconds = self.clock() - t0
                self._queue(u, clause, speech)

    def _queue(self, u: Utterance, text: str, speech: Speech) -> bool:
        """Queue a clause to play (False: the utterance was cancelled)."""
        if not u.clauses:
            speech = from_onset(speech)  # the caller waits through a quiet lead-in too
            if self._report is not None:
                self._on_report(self._report.snapshot())
        return u.add_clause(text, speech.pcm, speech.word_ends)

    def _pace(self, u: Utterance) -> None:
        """Wait while more than ``AHEAD`` of the reply is queued to play. Not for a held reply
        (not playing), nor while another job waits: the caller's words over the bot (a
        backchannel holds the playout until they are transcribed, on this thread)."""
        while (not u.held and self._jobs.empty()
               and u.playout.queued(u.id) > AHEAD):
            if u.wait_cancelled(0.05):
                return

    @staticmethod
    def _running_dry(u: Utterance) -> bool:
        """The reply is playing and what is queued of it ends soon."""
        return bool(u.clauses) and not u.held and u.playout.queued(u.id) < RUNNING_DRY

    def _llm_failed(self, u: Utterance, report: ReplyReport, e: LlmError) -> None:
        """The server failed this turn: say the apology after whatever was already spoken (a
        clause half generated is dropped) and let the call go on; the next turn asks again.
        With a transfer target the apology offers it: a yes is understood without the model."""
        report.llm_error = e.kind
        self.log.warning("LLM server failed the turn (%s): %s", e.kind, e.detail)
        if u.cancelled or not self.options.apology:
            return
        text = self.options.apology
        offer = (self._dialogue.offer_transfer()
                 if self._dialogue is not None and self.options.failure_offers_transfer
                 else None)
        if offer is not None:
            report.tools.append(offer.entry)
            text = f"{text} {offer.text}"
        self._speak_all(u, text)

    def _speakable(self, u: Utterance, clauses: list[str]) -> list[str]:
        """The clauses the speech filters let through (pipeline/reply/guard.py): one that
        recites the interruption note is dropped; one that would tell a secret becomes a
        refusal and ends the reply."""
        keep: list[str] = []
        for c in clauses:
            if u.withheld:
                break
            verdict = self._secrets.judge(f"{u.spoken_text()} {' '.join(keep)}", c)
            if verdict is ClauseVerdict.SKIP:
                self.log.warning("not spoken (recites the interruption note): %r",
                                 self._secrets.redact(c))
                continue
            if verdict is ClauseVerdict.REFUSE:
                self.log.warning("not spoken: the reply was about to tell a secret "
                                 "([llm] never_say, or an identifier in the system prompt)")
                keep.append(REFUSAL)
                u.withheld = True
                break
            keep.append(c)
        return keep

    def _synthesize(self, text: str, report: ReplyReport | None) -> list[Speech]:
        """The speech of ``text``, or none when a remote voice failed: the clause is skipped
        (logged, and noted in the turn's record), the call goes on. After one failure the
        reply's other clauses are skipped too: each would wait for the same dead server."""
        if report is not None and report.tts_error:
            self.log.warning("not spoken (text-to-speech failed earlier in this reply): %r",
                             self._secrets.redact(text))
            return []
        try:
            return list(self.engines.tts.synthesize(text))
        except TtsUnavailable as e:
            self.log.warning("not spoken (text-to-speech failed: %s): %r", e,
                             self._secrets.redact(text))
            if report is not None:
                report.tts_error = str(e)
            return []

    def _speak_all(self, u: Utterance, text: str) -> None:
        """Synthesize ``text`` into the utterance (not streamed: tool phrases are short)."""
        for speech in self._synthesize(text, None):
            if not self._queue(u, text, speech):
                return
        u.generated_text = u.spoken_text()

    # --- tools ---------------------------------------------------------------------------

    def _answer_question(self, u: Utterance, report: ReplyReport, caller_text: str) -> bool:
        """The bot asked "shall I ...?": a yes runs the tool, a no drops it (True: answered);
        anything else drops it and the turn is answered as usual (False)."""
        d = self._dialogue
        if d is None or d.asked is None:
            return False
        yes = d.answer(caller_text)
        if yes is None:
            return False
        if not u.wait_released():
            return True  # a speculative turn that was dropped: ask again on the real one
        step = d.answered(yes)
        report.tools.append(step.entry)
        self._carry_out(u, step)
        return True

    def _route(self, u: Utterance, report: ReplyReport, caller_text: str) -> bool:
        """Ask the router whether this turn is a tool call; True if it was handled as one."""
        assert self._dialogue is not None
        if not self._dialogue.policy.might_apply(caller_text):
            return False
        t0 = self.clock()
        try:
            routed = self.engines.llm.route(caller_text, lambda: u.cancelled)
        except LlmError as e:  # the router shares the server: the turn gets the apology
            report.route_seconds = self.clock() - t0
            self._llm_failed(u, report, e)
            return True
        report.route_seconds = self.clock() - t0
        if routed is None or u.cancelled:
            return False
        call = parse_tool_call(routed)
        if call is None:
            self.log.info("the router wrote no usable call: %r", routed[:200])
            return False
        step = self._dialogue.propose(call, caller_text, committed=not u.held)
        if step.kind is StepKind.WORDS:  # e.g. an invented order number: answer in words
            self.log.info("tool call %s(%s) not used: %s", call.name, call.arguments,
                          step.entry["reason"])
            report.tools.append(step.entry)
            return False
        if report.llm_first_token_seconds is None:
            report.llm_first_token_seconds = self.clock() - t0
        self._tool_turn(u, report, step)
        return True

    def _tool_turn(self, u: Utterance, report: ReplyReport, step: Step) -> None:
        name = step.entry["name"]
        report.tools.append(step.entry)
        if step.kind is StepKind.WAIT:
            self.log.info("tool %s waits for the turn to commit", name)
            if not u.wait_released():
                ToolDialogue.dropped(step)
                self.log.info("tool %s dropped: the caller went on", name)
                return
            assert self._dialogue is not None
            step = self._dialogue.committed(step)
        assert step.decision is not None
        self.log.info("tool %s(%s): %s %s", name, step.entry["arguments"],
                      step.decision.verdict.value, step.decision.reason)
        self._carry_out(u, step)

    def _carry_out(self, u: Utterance, step: Step) -> None:
        """Say or run what the dialogue decided."""
        if step.kind is StepKind.SAY:
            self._speak_all(u, step.text)
        elif step.kind is StepKind.RUN:
            assert step.decision is not None and step.decision.tool is not None
            if step.decision.tool.name == TAKE_MESSAGE:
                self._start_taking(u)
            else:
                self._run_tool(u, step)

    # --- taking a message (pipeline/messages/taking.py) ------------------------------------

    def _message_offer(self, report: ReplyReport, reply: str) -> str:
        """After a reply that says the fallback: the offer to take a message, which the
        caller's yes accepts (returns what to add to the reply: "" if the model said the
        offer itself, or there is none)."""
        o = self.options
        if (self._desk is None or self._dialogue is None or not o.message_offer
                or not o.offer_message_after
                or _plain(o.offer_message_after) not in _plain(reply)):
            return ""
        entry = self._dialogue.offer_message("the reply said the fallback")
        report.tools.append(entry)
        return "" if _plain(o.message_offer) in _plain(reply) else o.message_offer

    def _message_wish(self, u: Utterance, report: ReplyReport, caller_text: str) -> bool:
        """The caller asked to leave a message: start taking it (once their turn is over: a
        speculative turn waits for its commit)."""
        if self._desk is None or not wants_to_leave_message(caller_text):
            return False
        if not u.wait_released():
            return True  # the caller went on: the real turn asks again
        report.tools.append({"name": TAKE_MESSAGE, "arguments": {}, "decision": "run",
                          "reason": "the caller asked to leave a message"})
        self._start_taking(u)
        return True

    def _undo_superseded_turn(self) -> None:
        """The caller went on talking before hearing a word of the answer to the last turn
        the taker took: this turn holds that one's words again (the core merged them), so the
        taker goes back to where it was (else "can I leave a message? ... please" would
        start taking it, and then be taken for the caller's name)."""
        if self._taker_before is None:
            return
        u, before = self._taker_before
        self._taker_before = None
        if u.cancelled and not u.heard_text().strip():
            self._taker = before

    def _start_taking(self, u: Utterance) -> None:
        assert self.options.messages is not None
        self._taker_before = (u, self._taker)
        self._taker = MessageTaker(self.options.messages, self._caller)
        self._follow(u, None, self._taker.start())

    def _take_message(self, u: Utterance, report: ReplyReport, caller_text: str,
                      audio: bytes, keypad: bool) -> None:
        if not u.wait_released():
            return  # a speculative turn the caller went on from: the real one comes
        assert self._taker is not None
        self._taker_before = (u, copy.deepcopy(self._taker))
        keyed = "".join(re.findall(r"\d", caller_text)) if keypad else ""
        self._follow(u, report, self._taker.turn(caller_text, audio, keyed))

    def _follow(self, u: Utterance, report: ReplyReport | None, step: MessageStep) -> None:
        """Save what the step carries (before saying it is saved), then say its words."""
        say = step.say
        if step.save is not None:
            assert self._desk is not None and self.options.messages is not None
            self._taker_before = None  # saved: never taken again
            entry: dict = {"name": TAKE_MESSAGE, "arguments": {}, "decision": "run"}
            try:
                entry["result"] = {"message_id": self._desk.save(step.save)}
                entry["outcome"] = "ok"
            except Exception as e:  # noqa: BLE001 - the caller must hear it was not saved
                self.log.error("the message could not be saved: %r", e)
                entry.update(outcome="error", error=type(e).__name__)
                say = self.options.messages.not_saved
            if report is not None:
                report.tools.append(entry)
        if step.done:
            self._taker = None
        if say:
            self._speak_all(u, say)

    def _run_tool(self, u: Utterance, step: Step) -> None:
        """Run the tool off the worker so a slow one can be covered by the holding phrase."""
        decision, entry = step.decision, step.entry
        assert decision is not None and decision.tool is not None
        tool = decision.tool
        if self._tool_runner is None:
            self._tool_runner = ToolRunner(self._thread_init, f"{self.name}-tool")
        t0 = self.clock()
        job = self._tool_runner.submit(lambda: tool.run(decision.arguments, self._actions))
        if not job.wait(self.options.hold_after):
            if not u.cancelled and self.options.holding_phrase:
                entry["holding_phrase"] = True
                self._speak_all(u, self.options.holding_phrase)
            job.wait(max(0.0, self.options.tool_timeout - (self.clock() - t0)))
        entry["ms"] = round((self.clock() - t0) * 1000, 1)
        if not job.done:
            entry["outcome"] = "timeout"
            self._speak_all(u, "Sorry, that is taking too long. Please try again later.")
            return
        if job.error is not None:
            entry["outcome"] = "error"
            entry["error"] = type(job.error).__name__
            self.log.error("tool %s failed: %r", tool.name, job.error)
            self._speak_all(u, "Sorry, something went wrong there.")
            return
        result = job.result
        assert result is not None
        entry["outcome"] = "ok"
        if result.data:
            entry["result"] = result.data
        self._speak_all(u, result.say)
        u.after_played = result.after_played


def _plain(text: str) -> str:
    """Lower-case words only: an offer is found in a reply whatever its punctuation."""
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


class ToolJob:
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


class ToolRunner:
    """One daemon thread per call that runs tool jobs; a hung tool stalls only its call's
    later tools (and is reported as a timeout), never the conversation."""

    def __init__(self, thread_init: Callable[[str], None], name: str) -> None:
        self._q: queue.SimpleQueue[ToolJob | None] = queue.SimpleQueue()
        self._thread_init = thread_init
        self._name = name
        threading.Thread(target=self._loop, name=name, daemon=True).start()

    def submit(self, fn: Callable[[], ToolResult]) -> ToolJob:
        job = ToolJob(fn)
        self._q.put(job)
        return job

    def close(self) -> None:
        """The thread ends after the job in hand (a hung tool keeps it until it returns)."""
        self._q.put(None)

    def _loop(self) -> None:
        self._thread_init(self._name)
        while (job := self._q.get()) is not None:
            job.run()
