"""A call's turns to text, off the listener thread.

A whole-utterance backend (Whisper) transcribes a turn's audio as a job on the call's reply
worker; a streaming backend (Vosk) hears every inbound frame on a thread of its own and hands
over its partial at a pause and its final at the end of the turn, with no re-decode. Either
way the text comes back as a ``Heard`` value through ``on_text``, which only queues work for
the listener. A remote backend that fails gives the empty text (an unheard turn) with the
reason in ``Heard.stt_error``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np

from pipeline.audio.frames import BRIDGE_RATE, int16_to_float, write_wav
from pipeline.core.conversation import Transcribe
from pipeline.core.end_of_turn import end_of_message_can_change
from pipeline.engines import Engines
from pipeline.stt.base import StreamWorker, SttUnavailable, Transcript, TurnWords
from pipeline.turn_record import Heard

PRE_ROLL = 5120  # samples (320 ms) of audio before the detected speech onset
POST_ROLL = 1600  # samples (100 ms) after the detected speech end


class TurnTranscriber:
    def __init__(self, call_id: str, engines: Engines, submit: Callable[[Callable[[], None]], None],
                 on_text: Callable[[Heard], None], log: logging.LoggerAdapter,
                 clock: Callable[[], float] = time.monotonic, turn_audio_dir: str = "",
                 thread_init: Callable[[str], None] = lambda name: None, *,
                 submit_if_idle: Callable[[Callable[[], None]], None]) -> None:
        self.call_id = call_id
        self.engines = engines
        self._submit = submit  # runs a job on the call's reply worker
        self._submit_if_idle = submit_if_idle  # a job skipped if another one is waiting
        self._on_text = on_text
        self.log = log
        self.clock = clock
        self.turn_audio_dir = turn_audio_dir
        """If set, each caller turn's audio is written there as WAV (debugging)."""
        self._thread_init = thread_init
        self._stream: StreamWorker | None = None  # streaming backends (Vosk) only
        self._words = TurnWords()  # the stream's words by turn (stream thread only)

    def start(self) -> None:
        if getattr(self.engines.stt, "streaming", False):
            # every inbound frame goes through the recognizer as it arrives: partials are
            # ready at a pause and the final at the end of the turn, with no re-decode
            self._stream = StreamWorker(self.engines.stt.stream(), self._on_stream_result,
                                        f"{self.call_id}-stt", self._thread_init)

    def push(self, pcm: np.ndarray) -> None:
        """An inbound frame (after echo cancelling), for a streaming backend."""
        if self._stream is not None:
            self._stream.push(pcm)

    def transcribe(self, a: Transcribe, audio: np.ndarray) -> None:
        """Turn ``a``'s text (``audio``: its samples with the pre- and post-roll): a
        speculative one from the pause partial, the final at the end of turn."""
        if self._stream is None:
            self._submit(lambda: self._decode(a, audio))
            return
        if self.turn_audio_dir:
            self._submit(lambda: write_wav(self._wav_path(a.turn_id), audio))
        tag = (a, self.clock(), len(audio))
        if a.speculative:
            self._stream.pause(tag)  # the partial so far: no decode of its own
        else:
            self._stream.end_turn(tag)

    def ahead(self, audio: np.ndarray, on_words: Callable[[str], None]) -> None:
        """The words of a turn still being spoken (``audio``: so far, with the pre-roll), for
        reading the reply's prompt ahead; a whole-utterance backend only, when the worker has
        nothing else to do. A failure gives no words: nothing depends on them."""
        if self._stream is not None:
            return

        def decode() -> None:
            try:
                text = self.engines.stt.transcribe_if_idle(int16_to_float(audio))
            except SttUnavailable:
                return
            if text is None:  # the decoder is busy with a turn (maybe another call's)
                return
            self.log.debug("listening ahead: %r (%.2f s of audio)", text,
                           len(audio) / BRIDGE_RATE)
            on_words(text)

        self._submit_if_idle(decode)

    def committed(self) -> None:
        """A turn the pause partial answered has committed: close it on the stream."""
        if self._stream is not None:
            self._stream.end_turn("commit")

    def close(self, timeout: float) -> None:
        if self._stream is not None:
            self._stream.close(timeout)

    def _wav_path(self, turn_id: int) -> str:
        return f"{self.turn_audio_dir}/{self.call_id}-turn{turn_id}.wav"

    def _decode(self, a: Transcribe, audio: np.ndarray) -> None:
        """Reply worker: a whole-utterance backend transcribes the turn's audio."""
        t0 = self.clock()
        if self.turn_audio_dir:
            write_wav(self._wav_path(a.turn_id), audio)
        error = ""
        try:
            text = self.engines.stt.transcribe(int16_to_float(audio))
        except SttUnavailable as e:  # a speech server failed: the turn is unheard, not fatal
            text, error = "", str(e)
            self.log.warning("turn %d: not transcribed (%s)", a.turn_id, e)
        seconds = self.clock() - t0
        self.log.info("turn %d: caller said %r (%.2f s of audio, stt %.0f ms)", a.turn_id,
                      text, len(audio) / BRIDGE_RATE, seconds * 1000)
        self._on_text(Heard(a.turn_id, text, seconds, error,
                            self._ask_end_of_message(a.turn_id, text)))

    def _on_stream_result(self, t: Transcript | None, tag: object) -> None:
        """Stream thread: a partial (tag None), a pause partial or a final."""
        if tag is None:  # a streaming partial: the pause and the end of turn use their own
            return
        if tag == "commit":  # a turn the pause partial answered: just close it on the stream
            self._words.closed(t)
            return
        a, t0, n = tag  # type: ignore[misc]
        # word times: only the words of this turn's span (not noise before it)
        text = self._words.text(t, a.start - PRE_ROLL, a.end + POST_ROLL)
        seconds = self.clock() - t0
        self.log.info("turn %d: caller said %r (%.2f s of audio, %s %.0f ms after the %s)",
                      a.turn_id, text, n / BRIDGE_RATE, "partial" if a.speculative else "final",
                      seconds * 1000, "pause" if a.speculative else "end of turn")
        self._on_text(Heard(a.turn_id, text, seconds,
                            end_of_message=self._ask_end_of_message(a.turn_id, text)))

    def _ask_end_of_message(self, turn_id: int, text: str) -> float | None:
        """The LLM's probability that the message ends with ``text`` (~80-140 ms with the
        0.5B on 2 cores), for the conversation core; None: not asked."""
        eom = self.engines.end_of_message
        if eom is None or not end_of_message_can_change(text):
            return None  # ~100 ms saved before a question heard as one is answered
        t0 = self.clock()
        p = eom.probability(text)
        # info: a statement held for the longest wait is explained by this line
        self.log.info("turn %d: p(end of message) %.3f (%.0f ms)", turn_id, p,
                      (self.clock() - t0) * 1000)
        return p
