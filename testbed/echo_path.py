"""Seeded synthetic telephone echo path (pure numpy), shared by the echo and barge-in benches.

Model of what comes back from the caller's side when the bot talks:

    far (bot playout, 16 kHz) -> bulk delay (network + jitter buffers, may step mid-call)
        -> short phone/room impulse response -> attenuation (echo return loss)
        [-> optional G.711 mu-law round trip at 8 kHz of the whole caller leg]
        + caller's own speech + optional noise floor  = near (what the gateway receives)

Every component of ``near`` is returned separately so a bench can score the output against
the clean caller speech and the echo alone. Deterministic for a given seed.
"""

from __future__ import annotations

import wave
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "EchoPath",
    "EchoMix",
    "frames",
    "g711_round_trip",
    "impulse_response",
    "load_wav",
    "rms_dbfs",
]

LIBRIVOX_DIR = Path("/usr/share/pocketsphinx/test/data/librivox")


@dataclass(frozen=True)
class EchoPath:
    """Parameters of one synthetic echo path. Times in ms, levels in dB."""

    delay_ms: float = 100.0
    """Bulk delay from the far frame's tick to its echo's arrival in the near stream."""
    atten_db: float = 10.0
    """Echo return loss: echo RMS is this far below the far signal's RMS (exactly)."""
    ir_ms: float = 30.0
    """Length of the phone/room impulse response (exponential decay, random taps)."""
    delay_steps: Sequence[tuple[float, float]] = field(default_factory=tuple)
    """(time_s, new_delay_ms) pairs: jitter-buffer re-adaptations that move the delay."""
    noise_dbfs: float | None = -65.0
    """White noise floor at the mic (dBFS RMS), None for none."""
    g711: bool = False
    """Round-trip the caller leg (echo + speech + noise) through 8 kHz mu-law."""
    seed: int = 0
    sample_rate: int = 16000

    def impulse_response(self) -> np.ndarray:
        return impulse_response(self.ir_ms, self.sample_rate, np.random.default_rng(self.seed))

    def echo_of(self, far: np.ndarray) -> np.ndarray:
        """The echo component (float64, same length as ``far``) before any codec."""
        x = np.asarray(far, dtype=np.float64)
        h = self.impulse_response()
        shaped = np.convolve(x, h)[: len(x)]
        # Scale on the actual signal so atten_db is exact whatever the IR's colouring.
        shaped *= _rms(x) / max(_rms(shaped), 1e-9) * 10 ** (-self.atten_db / 20)
        return _delay_piecewise(shaped, self.delay_ms, self.delay_steps, self.sample_rate)

    def mix(self, far: np.ndarray, near_speech: np.ndarray | None = None) -> EchoMix:
        """Build the near stream for a bot signal ``far`` and the caller's ``near_speech``.

        ``near_speech`` (int16 or float, at most ``len(far)``) is zero-padded to ``len(far)``.
        """
        n = len(far)
        speech = np.zeros(n)
        if near_speech is not None:
            if len(near_speech) > n:
                raise ValueError("near_speech is longer than far")
            speech[: len(near_speech)] = np.asarray(near_speech, dtype=np.float64)
        echo = self.echo_of(far)
        noise = np.zeros(n)
        if self.noise_dbfs is not None:
            rng = np.random.default_rng(self.seed + 1)
            noise = rng.standard_normal(n) * 32768.0 * 10 ** (self.noise_dbfs / 20)
        near = echo + speech + noise
        if self.g711:
            near = g711_round_trip(near, self.sample_rate)
        return EchoMix(
            far=np.asarray(far, dtype=np.int16),
            near=_to_int16(near),
            echo=echo,
            speech=speech,
            noise=noise,
        )


@dataclass(frozen=True)
class EchoMix:
    """One simulated call leg. ``near`` = echo + speech + noise (clipped, maybe G.711)."""

    far: np.ndarray
    """int16 bot reference, as handed to the echo canceller."""
    near: np.ndarray
    """int16 caller stream, as handed to the echo canceller."""
    echo: np.ndarray
    """float64 echo component alone."""
    speech: np.ndarray
    """float64 clean caller speech."""
    noise: np.ndarray
    """float64 noise component."""


def impulse_response(ir_ms: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A plausible handset/room echo response: a direct tap, then decaying random reflections.

    Unit L2 norm; the caller scales it. Band-limited a little (3-tap smoothing) so it is not
    white, as real echo paths are not.
    """
    n = max(1, int(ir_ms * sample_rate / 1000))
    t = np.arange(n)
    decay = np.exp(-t / max(n / 5.0, 1.0))  # ~ -43 dB at the end of the response
    h = rng.standard_normal(n) * decay * 0.5
    h[0] = 1.0
    h = np.convolve(h, [0.25, 0.5, 0.25])[:n]
    return h / np.sqrt(np.sum(h**2))


def _delay_piecewise(
    x: np.ndarray, delay_ms: float, steps: Sequence[tuple[float, float]], sample_rate: int
) -> np.ndarray:
    """Delay ``x``; the delay jumps to new values at given times (splices, no crossfade:
    a jitter buffer dropping or inserting a frame is just as abrupt)."""
    out = np.zeros_like(x)
    bounds = [(0.0, delay_ms), *sorted(steps)]
    for i, (start_s, d_ms) in enumerate(bounds):
        start = int(start_s * sample_rate)
        end = int(bounds[i + 1][0] * sample_rate) if i + 1 < len(bounds) else len(x)
        d = int(round(d_ms * sample_rate / 1000))
        src_lo, src_hi = max(start - d, 0), max(end - d, 0)
        out[end - (src_hi - src_lo) : end] = x[src_lo:src_hi]
    return out


def _mulaw_encode_decode(x: np.ndarray) -> np.ndarray:
    """G.711 mu-law quantisation (segment law approximated by the continuous mu=255 law,
    8-bit), values in int16 scale."""
    mu = 255.0
    y = np.clip(x / 32768.0, -1.0, 1.0)
    c = np.sign(y) * np.log1p(mu * np.abs(y)) / np.log1p(mu)
    q = np.round(c * 127.0) / 127.0
    return np.sign(q) * np.expm1(np.abs(q) * np.log1p(mu)) / mu * 32768.0


def g711_round_trip(x: np.ndarray, sample_rate: int = 16000) -> np.ndarray:
    """Down to 8 kHz, mu-law, back up: the narrowband PSTN leg (band limit + quantisation)."""
    import soxr  # local: only this option needs it

    lo = soxr.resample(np.asarray(x, dtype=np.float64), sample_rate, 8000)
    return soxr.resample(_mulaw_encode_decode(lo), 8000, sample_rate)[: len(x)]


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


def rms_dbfs(x: np.ndarray) -> float:
    """RMS level in dBFS (int16 full scale), -inf for silence."""
    r = _rms(np.asarray(x, dtype=np.float64))
    return 20 * np.log10(r / 32768.0) if r > 0 else float("-inf")


def _to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def load_wav(path: str | Path) -> np.ndarray:
    """Read a mono 16-bit WAV as int16 (the pocketsphinx test data is 16 kHz mono)."""
    with wave.open(str(path), "rb") as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise ValueError(f"{path}: need mono 16-bit PCM")
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)


def frames(x: np.ndarray, frame_samples: int = 320) -> np.ndarray:
    """View ``x`` as (n_frames, frame_samples), dropping an incomplete last frame."""
    n = len(x) // frame_samples
    return x[: n * frame_samples].reshape(n, frame_samples)
