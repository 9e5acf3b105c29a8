"""A streaming recognizer (Vosk-like) inside one call's session, on the scripted timeline of
test_session_timeline.py: partials feed the speculation, the final comes from the stream at
the end of the turn, nothing is decoded twice, and word times keep noise out of the turn."""

from __future__ import annotations

import numpy as np

from pipeline.core.conversation import State
from pipeline.stt.base import StreamClock, Transcript, Word, as_int16
from tests.unit.scripted_session import Clock, greet, make_session


class ScriptedStream(StreamClock):
    """Each run of loud audio is one word, named from ``names`` in order, timed exactly."""

    def __init__(self, owner):
        super().__init__()
        self.owner = owner
        self.words: list[Word] = []
        self._open: int | None = None  # start of the loud run in progress

    def feed(self, pcm):
        x = as_int16(pcm)
        loud = np.abs(x.astype(np.int32)).mean() > 1000
        if loud and self._open is None:
            self._open = self._position
        elif not loud and self._open is not None:
            self._close()
        self._position += len(x)
        return None

    def _close(self):
        name = self.owner.names.pop(0) if self.owner.names else "?"
        self.words.append(Word(name, self._open, self._position))
        self._open = None

    def pause(self):
        self.owner.pauses += 1
        return Transcript(" ".join(w.text for w in self.words), False, self._turn_start,
                          self._position, tuple(self.words))

    def end_turn(self):
        if self._open is not None:
            self._close()
        self.owner.finals += 1
        t = Transcript(" ".join(w.text for w in self.words), True, self._turn_start,
                       self._position, tuple(self.words))
        self.words = []
        self._turn_start = self._position
        return t

    def reset(self):
        self.words = []

    def close(self):
        self.owner.closed += 1


class ScriptedStreamingStt:
    streaming = True
    name = "scripted-stream"

    def __init__(self, names):
        self.names = list(names)
        self.pauses = self.finals = self.closed = self.calls = 0

    def stream(self):
        return ScriptedStream(self)

    def transcribe(self, audio):
        self.calls += 1  # the whole-utterance path: must not be used with a stream
        return "re-decoded"


def session_with(names, reply="Sure."):
    session, llm, failures = make_session([], reply)
    stt = ScriptedStreamingStt(names)
    session.engines.stt = stt
    return session, llm, failures, stt


def test_partials_drive_the_speculation_and_the_final_comes_from_the_stream():
    session, llm, failures, stt = session_with(["when", "do", "you", "open"])
    clock = Clock(session)
    session.start()
    try:
        greet(clock, session)
        clock.run(10)
        for _ in range(2):  # two words, 400 ms each, 100 ms apart
            clock.run(20, loud=True)
            clock.run(5)
        clock.run(15)  # a pause: the speculation takes the partial so far
        clock.until(lambda: llm.requests)
        assert llm.requests[0][-1]["content"] == "when do"
        assert stt.pauses == 1 and stt.calls == 0
        clock.run(20, loud=True)  # the caller goes on: the draft is dropped
        clock.run(5)
        clock.run(20, loud=True)
        clock.run(40)  # end of turn: the stream's final
        clock.until(lambda: len(llm.requests) == 2)
        assert llm.requests[1][-1]["content"] == "when do you open"
        assert stt.finals >= 1 and stt.calls == 0  # nothing decoded twice
        clock.until(lambda: session.core.state is State.LISTENING)
        assert session.turns[-1].caller_text == "when do you open"
        assert not failures
    finally:
        session.stop()
    assert stt.closed == 1  # the call's recognizer goes back


def test_word_times_keep_earlier_noise_out_of_the_turn():
    session, llm, failures, stt = session_with(["cough", "opening", "hours"])
    clock = Clock(session)
    session.start()
    try:
        greet(clock, session)
        clock.run(10)
        clock.run(3, loud=True)   # a 60 ms click: too short for a turn, but the stream hears it
        clock.run(50)             # a second later the caller speaks
        clock.run(20, loud=True)
        clock.run(5)
        clock.run(20, loud=True)
        clock.run(40)
        clock.until(lambda: llm.requests)
        assert llm.requests[-1][-1]["content"] == "opening hours"
        assert not failures
    finally:
        session.stop()
