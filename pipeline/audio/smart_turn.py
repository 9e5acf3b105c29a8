"""Smart Turn v3.2: how likely the caller's turn is complete, from the sound of its end.

Pipecat's end-of-turn model (BSD-2), shipped inside the ``pipecat-ai`` wheel; only its ONNX
file is used. Input: the last 8 s of the turn at 16 kHz as Whisper's 80-band log-mel
spectrogram (100 frames per second); output: p(the speaker has finished). It hears
intonation and a word cut short, which the transcript cannot show.

The features are computed here (numpy, the same arithmetic as Whisper's feature extractor)
so that nothing of pipecat is imported.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.models import bundled, cpu_session

SMART_TURN_PACKAGE = "pipecat"
SMART_TURN_FOLDER = "audio/turn/smart_turn/data"
SMART_TURN_FILE = "smart-turn-v3.2-cpu.onnx"
SMART_TURN_SHA256 = "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f"

RATE = 16000
SECONDS = 8
N_FFT = 400
HOP = 160
N_MELS = 80


def _mel_filters() -> np.ndarray:
    """Slaney-scale triangular filters, (N_MELS, N_FFT // 2 + 1), area-normalised."""
    def to_mel(f: np.ndarray) -> np.ndarray:
        return np.where(f < 1000.0, 3.0 * f / 200.0,
                        15.0 + np.log(np.maximum(f, 1e-9) / 1000.0) * 27.0 / np.log(6.4))

    def to_hz(m: np.ndarray) -> np.ndarray:
        return np.where(m < 15.0, 200.0 * m / 3.0,
                        1000.0 * np.exp((m - 15.0) * np.log(6.4) / 27.0))

    edges = to_hz(np.linspace(0.0, float(to_mel(np.array(RATE / 2.0))), N_MELS + 2))
    bins = np.linspace(0, RATE // 2, N_FFT // 2 + 1)
    slopes = edges[:, None] - bins[None, :]
    widths = np.diff(edges)
    down = -slopes[:-2] / widths[:-1, None]
    up = slopes[2:] / widths[1:, None]
    filters = np.maximum(0.0, np.minimum(down, up))
    return filters * (2.0 / (edges[2:] - edges[:-2]))[:, None]


_FILTERS = _mel_filters()
_WINDOW = np.hanning(N_FFT + 1)[:-1]


def log_mel(audio: np.ndarray) -> np.ndarray:
    """The model's input for float audio at 16 kHz: its last 8 s (zeros before a shorter
    turn), normalised to zero mean and unit variance, as an (80, 800) float32 log-mel."""
    n = RATE * SECONDS
    x = np.asarray(audio, dtype=np.float32)[-n:]
    x = np.pad(x, (n - len(x), 0))
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    padded = np.pad(x.astype(np.float64), N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
    power = np.abs(np.fft.rfft(frames * _WINDOW, axis=-1)) ** 2
    mel = np.log10(np.maximum(1e-10, _FILTERS @ power.T))[:, :-1]
    mel = np.maximum(mel, mel.max() - 8.0)
    return ((mel + 4.0) / 4.0).astype(np.float32)


class SmartTurn:
    """The loaded model; thread-safe to share (onnxruntime ``run`` is)."""

    def __init__(self, path: Path | None = None, threads: int = 1) -> None:
        if path is None:
            path = bundled(SMART_TURN_PACKAGE, SMART_TURN_FOLDER,
                           {SMART_TURN_FILE: SMART_TURN_SHA256}) / SMART_TURN_FILE
        self.session = cpu_session(path, threads=threads)

    def complete(self, audio: np.ndarray) -> float:
        """p(turn complete) for the turn's audio so far (float, 16 kHz, ending at the pause)."""
        out = self.session.run(None, {"input_features": log_mel(audio)[None]})
        return float(np.asarray(out[0]).reshape(-1)[0])
