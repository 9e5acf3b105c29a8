"""The speech-to-text interface every backend offers the conversation engine.

Two ways in, both on 16 kHz mono audio:

- ``transcribe(audio)``: the whole-utterance path the session uses today (a turn's audio in,
  its text out). Every backend has it.
- ``stream()``: one ``SttStream`` per call. The call pushes its inbound frames into it and
  gets *partial* transcripts while the caller speaks and a *final* one at the end of the
  turn; ``end_turn()``/``reset()`` start the next turn. Times are sample indices on the
  stream's own clock (samples pushed since the stream was made), never wall-clock time.

How partials come about differs, and ``streaming`` says which kind a backend is:

- streaming backends (Vosk): the recognizer decodes as audio arrives; ``feed`` returns a new
  partial whenever the best hypothesis changes. Cheap: a few ms of native code per frame,
  GIL released.
- whole-utterance backends (Whisper): ``feed`` only buffers. A partial costs a full decode,
  so it is made only when the caller *pauses* (``pause()``), and only if the shared decoder
  is idle at that moment: a busy decoder means the CPU is taken (another call's turn, or a
  final), and the partial is skipped rather than queued. Partials therefore never cost more
  than the CPU has spare. (The session's speculative decode at a pause is this same policy.)

Model objects are loaded once per process and shared by every call; streams are per call
and hold all the mutable state (one recognizer per stream for Vosk).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from pipeline.models import ModelError

RATE = 16000
"""Sample rate of every stream and of ``transcribe``'s input (Hz): the bridge rate."""


class SttModelError(ModelError):
    """A speech-to-text model is missing or is not the kind its backend reads.

    Raised before any native code sees the model, so the message is ours, not an abort
    (a ``ModelError``: the CLI reports it as a model error and exits 3)."""


class SttUnavailable(RuntimeError):
    """A remote backend could not transcribe (server down, refusing, too slow, or dying
    mid-answer). Not a bug: the turn counts as unheard and the call goes on."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        """What failed, e.g. ``refused`` or ``timeout`` (``pipeline.wyoming.client.KINDS``)."""


@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word with its place on the stream's clock."""

    text: str
    start: int
    """First sample of the word (samples since the stream began)."""
    end: int
    """One past its last sample."""
    confidence: float | None = None
    """0..1 where the backend gives one."""


@dataclass(frozen=True, slots=True)
class Transcript:
    """What a stream heard in the current turn so far (partial) or in the whole turn (final)."""

    text: str
    final: bool
    start: int
    """First sample of the turn on the stream's clock."""
    end: int
    """Samples pushed into the stream when this transcript was made: it covers
    [start, end). A partial's ``end`` says how fresh it is."""
    words: tuple[Word, ...] = ()
    """Word timings, when the backend gives them (Vosk does; Whisper here does not)."""


class TurnWords:
    """The text of one turn from a stream's transcripts, by word times: only the words inside
    the turn's span (a click before it is left out), and a turn the conversation merged may
    reach back into the previous final. Used on the stream's thread only."""

    def __init__(self) -> None:
        self._last_final: tuple[Word, ...] = ()

    def closed(self, t: Transcript | None) -> None:
        """A turn ended on the stream without being transcribed again (its pause partial
        already answered it)."""
        self._last_final = t.words if t is not None else ()

    def text(self, t: Transcript | None, start: int, end: int) -> str:
        """The words of ``t`` (and of the previous final) within samples [start, end)."""
        words = t.words if t is not None else ()
        known = self._last_final + words
        if t is not None and t.final:
            self._last_final = words
        if known:
            return " ".join(w.text for w in known if w.end > start and w.start < end)
        return t.text if t is not None else ""


class StreamClock:
    """The sample clock every stream keeps (``position``, ``turn_start``): shared by the
    backends' stream classes."""

    def __init__(self) -> None:
        self._position = 0
        self._turn_start = 0

    @property
    def position(self) -> int:
        return self._position

    @property
    def turn_start(self) -> int:
        return self._turn_start


@runtime_checkable
class SttStream(Protocol):
    """One call's recognizer state. Not thread-safe: one thread feeds it."""

    @property
    def position(self) -> int:
        """Samples pushed so far (the stream's clock)."""
        ...

    @property
    def turn_start(self) -> int:
        """Sample at which the current turn began."""
        ...

    def feed(self, pcm: bytes | np.ndarray) -> Transcript | None:
        """Push audio (int16 PCM bytes/array, or float32 in [-1, 1]). Returns a partial when
        the hypothesis changed (streaming backends), else None."""
        ...

    def pause(self) -> Transcript | None:
        """The caller paused: the best partial now. Whole-utterance backends decode here
        (costly: call it from a worker thread) and return None when the decoder is busy or
        nothing new was heard since the last partial."""
        ...

    def end_turn(self) -> Transcript:
        """The final transcript of the turn; the next turn starts at ``position``."""
        ...

    def reset(self) -> None:
        """Forget the current turn (noise, or speech over the bot that was not a turn)."""
        ...

    def close(self) -> None:
        """Free the native recognizer now instead of at garbage collection."""
        ...


@runtime_checkable
class SpeechToText(Protocol):
    """A backend: one model, shared read-only by every call of the process."""

    name: str
    """Backend and model, for logs and benchmarks (e.g. ``whisper:tiny.en``)."""
    streaming: bool
    """True: partials while the caller speaks. False: partials only at pauses."""

    def transcribe(self, audio: np.ndarray) -> str:
        """Text of float32 16 kHz mono audio (empty for silence). Thread-safe."""
        ...

    def transcribe_if_idle(self, audio: np.ndarray) -> str | None:
        """Like ``transcribe``, or None at once when a decode this one would wait for is
        running: for work that may be skipped (words heard ahead), never queued."""
        ...

    def stream(self) -> SttStream:
        """A new per-call stream."""
        ...

    def warm_up(self) -> None:
        """Run once at start-up so the first caller does not pay for lazy initialisation."""
        ...


class StreamWorker:
    """Feeds one call's ``SttStream`` on a thread of its own.

    A streaming recognizer decodes in bursts (Vosk: every ~0.24 s of audio, 5-700 ms of
    native work, the first chunk of each recognizer the longest), which must not hold up the
    thread that runs the call's VAD and barge-in. ``push``/``end_turn``/``reset`` only queue
    and return at once; transcripts come back through ``on_transcript(transcript, tag)`` on
    the worker thread, in order (a final carries the ``tag`` given to ``end_turn``, a pause
    partial the one given to ``pause``; a partial from ``feed`` has the tag None)."""

    def __init__(self, stream: SttStream,
                 on_transcript: Callable[[Transcript, object], None],
                 name: str = "stt", thread_init: Callable[[str], None] = lambda n: None) -> None:
        self.stream = stream
        self._on = on_transcript
        self._init = thread_init
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, args=(name,), name=name, daemon=True)
        self._thread.start()

    def push(self, pcm: bytes | np.ndarray) -> None:
        self._q.put(("feed", pcm))

    def end_turn(self, tag: object = None) -> None:
        self._q.put(("end", tag))

    def pause(self, tag: object = None) -> None:
        """Ask for the best partial of everything pushed so far (``stream.pause()``); it
        comes back with ``tag``, also when it is None (nothing new)."""
        self._q.put(("pause", tag))

    def reset(self) -> None:
        self._q.put(("reset", None))

    def close(self, timeout: float = 5.0) -> None:
        self._q.put(None)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self.stream.close()

    def _run(self, name: str) -> None:
        self._init(name)
        while (item := self._q.get()) is not None:
            op, arg = item
            if op == "feed":
                t = self.stream.feed(arg)
                if t is not None:
                    self._on(t, None)
            elif op == "end":
                self._on(self.stream.end_turn(), arg)
            elif op == "pause":
                self._on(self.stream.pause(), arg)  # type: ignore[arg-type]
            else:
                self.stream.reset()


def as_int16(pcm: bytes | np.ndarray) -> np.ndarray:
    """int16 samples of PCM bytes, an int16 array, or a float32 array in [-1, 1]."""
    if isinstance(pcm, bytes | bytearray | memoryview):
        return np.frombuffer(pcm, dtype="<i2")
    if pcm.dtype == np.int16:
        return pcm
    return (np.clip(pcm, -1.0, 1.0) * 32767.0).astype(np.int16)
