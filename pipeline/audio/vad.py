"""Silero VAD on onnxruntime alone (no torch): one shared session, one state per call."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.models import cpu_session

WINDOW = 512
"""Samples the model scores at once at 16 kHz (32 ms)."""
CONTEXT = 64
"""Samples of the previous window prepended to each input, as the model was trained."""


class SileroModel:
    """The loaded network; thread-safe to share (onnxruntime ``run`` is)."""

    def __init__(self, path: Path) -> None:
        self.session = cpu_session(path, threads=1)
        self._sr = np.array(16000, dtype=np.int64)

    def score(self, window_with_context: np.ndarray, state: np.ndarray
              ) -> tuple[float, np.ndarray]:
        out, new_state = self.session.run(
            None, {"input": window_with_context[None, :], "state": state, "sr": self._sr})
        return float(out[0][0]), new_state

    def stream(self) -> VadStream:
        return VadStream(self)


class VadStream:
    """Per-call VAD: feed float32 16 kHz samples, get (end_sample, speech_probability) pairs."""

    def __init__(self, model: SileroModel) -> None:
        self._model = model
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros(CONTEXT, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        self._consumed = 0  # samples scored so far

    def feed(self, samples: np.ndarray) -> list[tuple[int, float]]:
        """Score every complete 512-sample window; returns (sample index after it, prob)."""
        buf = np.concatenate([self._pending, samples.astype(np.float32, copy=False)])
        out = []
        n = len(buf) // WINDOW
        for i in range(n):
            win = buf[i * WINDOW:(i + 1) * WINDOW]
            prob, self._state = self._model.score(np.concatenate([self._context, win]),
                                                  self._state)
            self._context = win[-CONTEXT:]
            self._consumed += WINDOW
            out.append((self._consumed, prob))
        self._pending = buf[n * WINDOW:]
        return out
