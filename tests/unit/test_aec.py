"""Echo canceller (pipeline/audio/aec.py) on real speech through a synthetic echo path.

Caller and bot are real librivox recordings (Debian pocketsphinx-testdata). Thresholds come
from measurements on this data (quoted next to each) with margin, and each is shown to fail
for the bypassed canceller (the raw near signal), so the assertions can actually fail.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from pipeline.audio import aec as aec_mod
from pipeline.audio.aec import EchoCanceller, SpeexDspUnavailableError
from testbed.echo_path import LIBRIVOX_DIR, EchoPath, frames, load_wav

SR = 16000
FRAME = 320
CONVERGE_S = 4  # far-only lead-in before anything is scored (Speex needs ~3-4 s for ~20 dB)

pytestmark = pytest.mark.skipif(
    not LIBRIVOX_DIR.is_dir(), reason="needs Debian pocketsphinx-testdata (librivox wavs)"
)


def _speech(name: str) -> np.ndarray:
    x = load_wav(LIBRIVOX_DIR / f"sense_and_sensibility_01_austen_64kb-{name}.wav")
    return (x.astype(np.float64) - x.mean()).astype(np.int16)  # the files carry a DC offset


@pytest.fixture(scope="module")
def bot() -> np.ndarray:
    """8 s of far-end (bot) speech."""
    x = np.concatenate([_speech(n) for n in ("0880", "0890", "0920", "0930")])
    return x[: 8 * SR]


@pytest.fixture(scope="module")
def caller() -> np.ndarray:
    """4 s of caller speech (a different utterance)."""
    return _speech("0870")[: 4 * SR]


def run(aec: EchoCanceller, near: np.ndarray, far: np.ndarray) -> np.ndarray:
    """Whole stream through ``aec``, output shifted back by its latency (float64)."""
    out = np.concatenate(
        [aec.process(n, f) for n, f in zip(frames(near), frames(far), strict=True)]
    )
    y = out.astype(np.float64)
    lag = aec.latency_samples
    return np.concatenate([y[lag:], np.zeros(lag)])


def erle_db(near: np.ndarray, out: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(near.astype(np.float64) ** 2) / np.sum(out**2)))


def speex_dc_notch(x: np.ndarray, radius: float = 0.982) -> np.ndarray:
    """Replica of libspeexdsp's filter_dc_notch16 (float build; radius .982 at 16 kHz)."""
    den2 = radius * radius + 0.7 * (1 - radius) * (1 - radius)
    m0 = m1 = 0.0
    out = np.empty(len(x))
    for i, v in enumerate(x.astype(np.float64)):
        vout = m0 + v
        m0 = m1 + 2 * (-v + radius * vout)
        m1 = v - den2 * vout
        out[i] = radius * vout
    return out


def band(x: np.ndarray, lo: float = 200.0, hi: float = 7000.0) -> np.ndarray:
    y = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1 / SR)
    y[(f < lo) | (f > hi)] = 0
    return np.fft.irfft(y, len(x))


@pytest.mark.parametrize("residual", [True, False], ids=["aec+res", "aec"])
def test_erle_100ms_10db(bot: np.ndarray, residual: bool) -> None:
    mix = EchoPath(delay_ms=100, atten_db=10, seed=3).mix(bot)
    out = run(EchoCanceller(residual_suppression=residual), mix.near, bot)
    scored = slice(CONVERGE_S * SR, None)
    erle = erle_db(mix.near[scored], out[scored])
    # Measured: 27.7 dB (aec+res), 21.1 dB (aec). Raw input: 0 dB by definition.
    assert erle >= 12.0, erle
    assert erle_db(mix.near[scored], mix.near[scored].astype(np.float64)) < 12.0  # bypass fails


def test_near_only_passes_through(caller: np.ndarray) -> None:
    """Bot silent: the output is the caller's speech through Speex's fixed DC notch only."""
    far = np.zeros_like(caller)
    out = run(EchoCanceller(residual_suppression=False), caller, far)
    assert np.max(np.abs(out - speex_dc_notch(caller))) <= 1.0  # rounding only
    for residual in (True, False):
        y = run(EchoCanceller(residual_suppression=residual), caller, far)[:-FRAME]
        x = caller[:-FRAME].astype(np.float64)
        level_db = 10 * np.log10(np.sum(y**2) / np.sum(x**2))
        corr = np.corrcoef(band(y), band(x))[0, 1]
        # Measured: -0.3 dB, 0.97 (the notch's phase below ~300 Hz is all that differs).
        assert abs(level_db) < 1.0, level_db
        assert corr > 0.95, corr


def test_double_talk_keeps_caller(bot: np.ndarray, caller: np.ndarray) -> None:
    """Caller talks over the bot after convergence; scored against what the same canceller
    outputs for the caller alone, so the fixed DC notch is not counted as damage."""
    speech = np.zeros(len(bot))
    dt = slice(CONVERGE_S * SR, CONVERGE_S * SR + len(caller))
    speech[dt] = caller
    mix = EchoPath(delay_ms=100, atten_db=10, seed=3).mix(bot, speech)
    out = run(EchoCanceller(), mix.near, bot)
    ref = run(EchoCanceller(), np.round(speech).astype(np.int16), np.zeros_like(bot))

    def scores(y: np.ndarray, r: np.ndarray) -> tuple[float, float, float]:
        corr = float(np.corrcoef(y, r)[0, 1])
        sdr = float(10 * np.log10(np.sum(r**2) / np.sum((y - r) ** 2)))
        level = float(10 * np.log10(np.sum(y**2) / np.sum(r**2)))
        return corr, sdr, level

    def keeps_caller(y: np.ndarray, r: np.ndarray) -> bool:
        corr, sdr, level = scores(y, r)
        return corr > 0.95 and sdr > 10.0 and abs(level) < 2.0

    # Measured over echo-path seeds 0/1/3/7: corr 0.978-0.988, SDR 13.1-15.6 dB, level ~0 dB
    # (the linear filter alone: ~0.999 / ~28 dB; the residual suppressor costs the rest).
    assert keeps_caller(out[dt], ref[dt]), scores(out[dt], ref[dt])
    # The bounds do reject a canceller that chops the caller (half-duplex style gating of
    # every other frame): corr ~0.7, SDR ~3 dB.
    chopped = ref[dt].copy()
    for i in range(0, len(chopped) // FRAME, 2):
        chopped[i * FRAME : (i + 1) * FRAME] = 0
    assert not keeps_caller(chopped, ref[dt]), scores(chopped, ref[dt])


@pytest.mark.parametrize(
    ("near", "far", "match"),
    [
        (np.zeros(319, np.int16), np.zeros(320, np.int16), "near must have shape"),
        (np.zeros(320, np.int16), np.zeros(321, np.int16), "far must have shape"),
        (np.zeros(320, np.float32), np.zeros(320, np.int16), "dtype int16"),
        (np.zeros(320, np.int16), np.zeros(320, np.int32), "dtype int16"),
        (np.zeros(320, ">i2"), np.zeros(320, np.int16), "dtype int16"),
        (np.zeros((320, 1), np.int16), np.zeros(320, np.int16), "shape"),
        ([0] * 320, np.zeros(320, np.int16), "numpy int16 array"),
    ],
)
def test_bad_input_raises(near: object, far: object, match: str) -> None:
    with EchoCanceller() as aec, pytest.raises(ValueError, match=match):
        aec.process(near, far)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sample_rate": 0},
        {"frame_samples": -320},
        {"tail_ms": 10},  # shorter than one frame
        {"tail_ms": 250.0},
        {"echo_suppress_db": 10},
    ],
)
def test_bad_config_raises(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        EchoCanceller(**kwargs)  # type: ignore[arg-type]


def test_instances_do_not_share_state(bot: np.ndarray) -> None:
    mix = EchoPath(delay_ms=40, atten_db=10, seed=5).mix(bot[: 3 * SR])
    other = EchoPath(delay_ms=200, atten_db=10, seed=6).mix(bot[SR : 4 * SR])
    b, c = EchoCanceller(), EchoCanceller()
    a = EchoCanceller()
    out_b, out_c, out_a = [], [], []
    for n, f, on, of in zip(
        frames(mix.near), frames(mix.far), frames(other.near), frames(other.far), strict=True
    ):
        out_a.append(a.process(on, of))  # A busy with another call, interleaved with B
        out_b.append(b.process(n, f))
    for n, f in zip(frames(mix.near), frames(mix.far), strict=True):
        out_c.append(c.process(n, f))  # C: same call as B, alone
    assert np.array_equal(np.concatenate(out_b), np.concatenate(out_c))
    assert not np.array_equal(np.concatenate(out_a), np.concatenate(out_b))


def test_reset_forgets_the_echo_path(bot: np.ndarray) -> None:
    mix = EchoPath(delay_ms=100, atten_db=10).mix(bot[: 4 * SR])
    used = EchoCanceller()
    run(used, mix.near, bot[: 4 * SR])
    used.reset()
    assert np.array_equal(
        run(used, mix.near, bot[: 4 * SR]), run(EchoCanceller(), mix.near, bot[: 4 * SR])
    )


def test_close_is_idempotent_and_final() -> None:
    aec = EchoCanceller()
    aec.close()
    aec.close()
    assert aec.closed
    with pytest.raises(RuntimeError, match="closed"):
        aec.process(np.zeros(320, np.int16), np.zeros(320, np.int16))


def test_out_buffer_is_used() -> None:
    aec = EchoCanceller(residual_suppression=False)
    buf = np.empty(320, np.int16)
    x = (np.arange(320) * 37 % 2000 - 1000).astype(np.int16)
    assert aec.process(x, np.zeros(320, np.int16), out=buf) is buf


def test_missing_library_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aec_mod, "_lib", None)
    monkeypatch.setattr(aec_mod, "_LIB_NAME", "libspeexdsp-does-not-exist.so.9")
    monkeypatch.setattr(aec_mod.ctypes.util, "find_library", lambda name: None)
    with pytest.raises(SpeexDspUnavailableError, match="libspeexdsp1"):
        EchoCanceller()


def test_cost_per_frame_well_under_a_millisecond(bot: np.ndarray) -> None:
    mix = EchoPath(delay_ms=100, atten_db=10).mix(bot[: 4 * SR])
    aec = EchoCanceller(tail_ms=250)
    costs = []
    for n, f in zip(frames(mix.near), frames(mix.far), strict=True):
        t0 = time.perf_counter_ns()
        aec.process(n, f)
        costs.append(time.perf_counter_ns() - t0)
    # Measured p50 ~75-100 us on the 2-core box; 1 ms is the budget from the design.
    assert np.median(costs) < 500_000, np.median(costs)
