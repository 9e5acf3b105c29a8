"""A call's session on scripted models (VAD, STT, LLM, TTS: fakes with known timings) and a
test clock that drives the media tick by tick, so a test knows exactly which frames reached
the caller."""

from __future__ import annotations

import contextlib
import threading
import time

import numpy as np

from pipeline.audio.frames import FRAME_BYTES, FRAME_SAMPLES
from pipeline.audio.vad import WINDOW
from pipeline.core.conversation import TurnSettings
from pipeline.engines import Engines
from pipeline.llm.base import ChatReply
from pipeline.llm.chat import stream_chat
from pipeline.options import SessionOptions
from pipeline.session import CallSession
from pipeline.tts.base import Speech

SAMPLES_PER_WORD = 4000  # the fake TTS speaks 4 words a second at 16 kHz
LOUD, QUIET = 8000, 0


class ScriptedVad:
    """Speech probability 0.9 for a loud 512-sample window, else 0.02."""

    def stream(self):
        return self

    def reset(self):
        pass

    def __init__(self):
        self._buf = np.zeros(0, np.float32)
        self._n = 0

    def feed(self, samples):
        self._buf = np.concatenate([self._buf, samples])
        out = []
        while len(self._buf) >= WINDOW:
            win, self._buf = self._buf[:WINDOW], self._buf[WINDOW:]
            self._n += WINDOW
            out.append((self._n, 0.9 if np.abs(win).mean() > 0.1 else 0.02))
        return out


class ScriptedStt:
    def __init__(self, texts):
        self.texts = list(texts)
        self.calls = 0

    def transcribe(self, audio):
        self.calls += 1
        return self.texts.pop(0) if self.texts else ""

    def transcribe_if_idle(self, audio):
        return self.transcribe(audio)


class ScriptedLlm:
    """Streams a fixed reply word by word, 5 ms per token; records what it was asked. It is
    its own (single) context."""

    backend = "scripted"
    reads_ahead = False  # a test that reads ahead sets it, and its own prefill
    continues = False  # a test that has the gateway say an opening sets it

    def prefill(self, ctx, messages, open_turn=False, stop=lambda: False):
        pass

    def __init__(self, reply, delay=0.005):
        self.reply = reply
        self.delay = delay
        self.requests = []
        self.openings = []  # the opening each reply was asked to go on from
        self.tokens_after_cancel = 0
        self.free = threading.Semaphore(1)
        self.resets = 0  # times the evaluated prompt was forgotten (llama's reset)

    def acquire(self, timeout=5.0):
        assert self.free.acquire(timeout=timeout)
        return self

    def release(self, _llm):
        self.free.release()

    def reset(self):
        self.resets += 1

    def stream(self, ctx, messages, max_tokens, temperature, cancelled=lambda: False,
               watch=None, opening=""):
        self.openings.append(opening)
        return ChatReply(stream_chat(ctx, messages, max_tokens, temperature, cancelled,
                                     watch=watch))

    def route(self, caller_text, cancelled=lambda: False):
        """The tool router: a reply that is a tool call (JSON) is taken by it."""
        if isinstance(self.reply, str):
            return None
        nxt = self.reply[min(len(self.requests), len(self.reply) - 1)]
        if not isinstance(nxt, str) or not nxt.startswith("{"):
            return None
        self.requests.append([{"role": "user", "content": caller_text}])
        return nxt

    def create_chat_completion(self, messages, stream, **kw):
        self.requests.append([dict(m) for m in messages])
        self.tools_offered = kw.get("tools")
        # a list of replies: one per request, the last one repeated
        reply = (self.reply if isinstance(self.reply, str)
                 else self.reply[min(len(self.requests), len(self.reply)) - 1])

        def gen():
            if isinstance(reply, Exception):  # the server failed this request
                raise reply
            for i, word in enumerate(reply.split(" ")):
                time.sleep(self.delay)
                yield {"choices": [{"delta": {"content": (" " if i else "") + word}}]}
        return gen()


class ScriptedTts:
    def synthesize(self, text):
        n = len(text.split()) * SAMPLES_PER_WORD
        yield Speech((np.full(n, 3000, dtype="<i2")).tobytes())


def make_session(stt_texts, reply, session_options=None, **settings):
    ts = TurnSettings(threshold=0.5, end_silence=8000, min_speech=2400, min_barge_in=3200,
                      pause=3200, max_turn=480000, barge_in=True, barge_in_threshold=0.5,
                      **settings)
    llm = ScriptedLlm(reply)
    engines = Engines(vad=ScriptedVad(), stt=ScriptedStt(stt_texts), llm=llm,
                      tts=ScriptedTts())
    failures = []
    opts = dict(session_options or {})
    call_control = {k: opts.pop(k) for k in ("transfer", "hang_up", "clock", "caller", "desk")
                    if k in opts}
    options = SessionOptions(settings=ts, greeting="Hi there.", system_prompt="Be brief.",
                             echo_tail_ms=0, **opts)
    s = CallSession("t1", engines, options,
                    on_failure=lambda stage, e: failures.append((stage, e)), **call_control)
    return s, llm, failures


class Clock:
    """Drives the session like PJSIP's media clock; records the frames sent to the caller."""

    def __init__(self, session):
        self.s = session
        self.out: list[bytes] = []

    def tick(self, loud: bool = False) -> bytes:
        self.s.push_inbound(np.full(FRAME_SAMPLES, LOUD if loud else QUIET, "<i2").tobytes())
        frame = self.s.pull_outbound()
        self.out.append(frame)
        time.sleep(0.001)
        return frame

    def run(self, n: int, loud: bool = False) -> None:
        for _ in range(n):
            self.tick(loud)

    def until(self, cond, limit: int = 3000) -> None:
        for _ in range(limit):
            if cond():
                return
            self.tick()
        raise AssertionError("condition not reached")

    def bot_frames(self, frames=None) -> int:
        return sum(1 for f in (self.out if frames is None else frames) if f != bytes(FRAME_BYTES))


def greet(clock, session):
    clock.until(lambda: any(t["role"] == "assistant" for t in session.history.turns))
    assert session.history.turns[0]["content"] == "Hi there."


@contextlib.contextmanager
def in_call(session, failures):
    """Start the call, let the greeting play and 200 ms pass; stop it (no failures) after."""
    clock = Clock(session)
    session.start()
    try:
        greet(clock, session)
        clock.run(10)
        yield clock
        assert not failures
    finally:
        session.stop()


def caller_asks(clock):
    """0.2 s of quiet, 0.8 s of speech, 0.8 s of quiet (the turn ends after 0.5 s)."""
    clock.run(10)
    clock.run(40, loud=True)
    clock.run(40)


def says(clock, then_quiet: int = 40) -> None:
    """The caller speaks 600 ms, then is quiet for ``then_quiet`` frames."""
    clock.run(30, loud=True)
    clock.run(then_quiet)


def assistant_lines(session) -> list[str]:
    return [t["content"] for t in session.history.turns if t["role"] == "assistant"]
