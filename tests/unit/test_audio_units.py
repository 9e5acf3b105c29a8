"""Pure audio and text logic: frames, playout accounting, heard words, clause chunking."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.telephony.admission import Refusal, decide
from pipeline.audio.frames import (
    FRAME_BYTES,
    AudioFrame,
    PlayoutBuffer,
    float_to_int16,
    int16_to_float,
    split_frames,
)
from pipeline.audio.inbound import InboundAudio
from pipeline.audio.utterance import Clause, heard_words
from pipeline.reply.chunker import ClauseChunker, clean_for_speech
from pipeline.tts.piper import PiperTts, word_ends


def test_frame_conversions_round_trip():
    x = np.array([-32768, -1, 0, 1, 32767], dtype="<i2")
    f = AudioFrame(x.tobytes(), 16000, start=320)
    assert f.samples == 5 and f.end == 325
    assert np.array_equal(f.as_int16(), x)
    back = float_to_int16(int16_to_float(x))
    assert np.abs(back.astype(int) - x.astype(int)).max() <= 1
    assert float_to_int16(np.array([2.0, -2.0])).tolist() == [32767, -32767]  # clipped
    with pytest.raises(ValueError):
        AudioFrame(b"\x00\x01\x02")


def test_split_frames_pads_the_last_frame():
    frames = split_frames(bytes(FRAME_BYTES * 2 + 10))
    assert [len(f) for f in frames] == [FRAME_BYTES] * 3
    assert split_frames(b"") == []


def test_playout_counts_played_samples_per_utterance():
    pb = PlayoutBuffer()
    pb.push(1, bytes(FRAME_BYTES * 3))
    pb.push(2, bytes(FRAME_BYTES))
    assert pb.pop()[0] == 1
    pb.held = True
    assert pb.pop() is None  # held: nothing goes out, nothing is lost
    pb.held = False
    assert pb.played(1) == 320 and pb.queued(1) == 640
    assert pb.flush(1) == 640
    assert pb.pop()[0] == 2 and pb.pop() is None
    assert pb.played(1) == 320 and pb.played(2) == 320


def test_heard_words_cuts_inside_a_clause_proportionally():
    clauses = [Clause("We open at nine.", 16000), Clause("We close at five on Fridays.", 24000)]
    assert heard_words(clauses, 0) == ""
    assert heard_words(clauses, 16000) == "We open at nine."
    assert heard_words(clauses, 16000 + 12000) == "We open at nine. We close at"
    assert heard_words(clauses, 10**9) == "We open at nine. We close at five on Fridays."


def test_heard_words_uses_the_tts_word_timings_when_there_are_some():
    # a long first word and a pause: proportional would say 3 of 4 words at 12000 samples
    timed = Clause("Unfortunately, we are closed.", 20000, word_ends=[9000, 15000, 17000, 20000])
    assert heard_words([timed], 8999) == ""
    assert heard_words([timed], 12000) == "Unfortunately,"
    assert heard_words([timed], 15000) == "Unfortunately, we"
    # the phonemizer joined "in the": 5 timed words for 6 text words -> the same share
    joined = Clause("It is open in the morning.", 10000, word_ends=[1000, 2000, 4000, 6000, 10000])
    assert heard_words([joined], 6000) == "It is open in"  # 4 of 5 -> 4 of 6 (rounded down)


def test_word_ends_from_phoneme_durations():
    # BOS, "h", "i", " ", "j", "o", ".", EOS at 22050 Hz, scaled to 16 kHz
    phonemes = ["^", "h", "i", " ", "j", "o", ".", "$"]
    samples = [0, 2205, 2205, 1000, 2205, 2205, 500, 0]
    assert word_ends(phonemes, samples) == [4410, 10320]
    assert word_ends(phonemes, samples, 16000 / 22050) == [3200, 7488]
    assert word_ends([], []) == []


def test_piper_gives_word_timings_that_fit_its_audio():
    from pipeline.models import resolve

    tts = PiperTts(resolve().piper_voice)
    assert tts.word_timing
    [speech] = list(tts.synthesize("We open at nine. We close at five."))
    ends = speech.word_ends
    assert len(ends) == 8 and ends == sorted(ends)
    assert ends[-1] == len(speech.pcm) // 2  # the last word ends with the audio
    # the first sentence ends near the middle of the audio, not at a proportional guess
    pcm = np.frombuffer(speech.pcm, "<i2").astype(np.float64)
    quiet = np.sqrt(np.mean(pcm[ends[3] - 800:ends[3]].reshape(-1, 160) ** 2, axis=1))
    assert quiet.min() < 300, quiet  # silence (the sentence break) right before word 4's end


def test_inbound_audio_ring_keeps_the_latest_samples_and_arrival_times():
    ring = InboundAudio(keep_samples=1000)
    for i in range(5):
        ring.append(np.full(320, i, dtype=np.int16), t=10.0 + i)
    assert ring.end == 1600
    assert ring.span(1280, 1600).tolist() == [4] * 320
    assert len(ring.span(0, 1600)) == 1000  # older samples are gone
    assert ring.arrived(1300) == 14.0 and ring.arrived(700) == 12.0
    # and back: the samples received by a time
    assert ring.received_by(12.5) == 960 and ring.received_by(14.0) == 1600
    assert ring.received_by(1.0) == 0


def chunk_stream(pieces, chunker=None) -> list[str]:
    """The clauses of a streamed reply, as the reply worker takes them: feed, then flush."""
    chunker = chunker or ClauseChunker()
    return [c for piece in pieces for c in chunker.feed(piece)] + chunker.flush()


def test_chunker_cuts_at_sentences_and_clauses_not_numbers():
    pieces = ["The clinic", " opens at 9.30 in", " the morning. We close", " at five,",
              " Monday to Friday, and", " on weekends we are closed."]
    assert list(chunk_stream(pieces)) == [
        "The clinic opens at 9.30 in the morning.", "We close at five,",
        "Monday to Friday,", "and on weekends we are closed."]


def test_chunker_bounds_a_run_on_first_clause():
    words = [f"w{i} " for i in range(30)]
    out = list(chunk_stream(words, ClauseChunker(first_max_words=8, max_words=20)))
    assert len(out[0].split()) == 8 and len(out[1].split()) == 20
    assert " ".join(out).split() == [w.strip() for w in words]


def test_chunker_bounds_a_run_on_opening_of_tokens_that_start_with_their_space():
    # as a model streams: " located", " at", " 12" (the space before the word)
    pieces = ["The", " clinic", " is", " located", " at", " 12", " River", " Street", "."]
    c = ClauseChunker(first_max_words=5)
    fed = [c.feed(p) for p in pieces]
    # the fifth word is whole once the sixth begins: cut there, not at the full stop
    assert fed[5] == ["The clinic is located at"] and not any(fed[:5])
    assert [x for f in fed[6:] for x in f] + c.flush() == ["12 River Street."]


def test_chunker_opening_ends_at_any_comma_later_clauses_need_three_words():
    reply = "Yes, we are open today. Sure, but on Monday, Tuesday, and Wednesday, only."
    out = chunk_stream([w + " " for w in reply.split(" ")], ClauseChunker(first_max_words=5))
    # the caller waits for the opening: "Yes," alone; past 5 words a comma needs 3 words
    assert out == ["Yes,", "we are open today.", "Sure, but on Monday,", "Tuesday, and Wednesday,",
                   "only."]


def test_chunker_bounds_the_clause_after_a_short_opening():
    words = [f"w{i} " for i in range(30)]
    out = chunk_stream(["Sorry, "] + words, ClauseChunker(first_max_words=5, max_words=20))
    assert [len(c.split()) for c in out[:3]] == [1, 5, 20]  # the opening's 5 words, then 20


def test_chunker_speaks_an_opening_name_alone():
    def opening(*pieces):
        return chunk_stream(pieces, ClauseChunker(first_max_words=5,
                                                  names=("Riverside Dental Clinic",)))

    assert opening("Riverside", " Dental", " Clinic", " opens", " at nine.") == [
        "Riverside Dental Clinic", "opens at nine."]
    # not when it is not the whole first phrase, nor later in the reply
    assert opening("Riverside Dental Clinic's", " hours", ".") == [
        "Riverside Dental Clinic's hours."]
    assert opening("Riverside Dental Clinic.") == ["Riverside Dental Clinic."]
    assert opening("Yes, Riverside Dental Clinic", " is open.") == [
        "Yes,", "Riverside Dental Clinic is open."]


def test_chunker_cuts_at_the_last_whole_word_when_asked():
    c = ClauseChunker(first_max_words=1)  # only "Sure." is the opening
    assert c.feed("Sure. To book an") == ["Sure."]
    assert c.cut() == []  # two whole words ("an" may go on): too few
    assert c.feed(" appointment you can call") == []
    assert c.cut() == ["To book an appointment you can"]  # "call" may still go on
    assert c.feed(" us, or") == []
    assert c.feed(" come in at $1,200.") == []  # "$1,200." may go on ("$1,200.50")
    assert c.flush() == ["call us, or come in at $1,200."]
    assert c.cut() == [] and c.flush() == []


def test_chunker_drops_markup():
    assert clean_for_speech("**Sure!** We open at *nine* 😀") == "Sure! We open at nine"
    assert list(chunk_stream(["- ", "**", "Hello", "."])) == ["Hello."]


def test_admission_decision():
    assert decide(False, 4, 4, False, 10) is None  # not an INVITE
    assert decide(True, 3, 4, False, 10) is None
    assert decide(True, 4, 4, False, 10) == Refusal(503, "Service Unavailable", 10)
    assert decide(True, 0, 4, True, 7) == Refusal(503, "Service Unavailable", 7)


def test_speech_from_its_onset_keeps_the_words_and_their_ends():
    from pipeline.tts.base import ONSET_MARGIN, Speech, from_onset

    quiet, loud = np.zeros(1000, "<i2"), np.full(800, 4000, "<i2")
    s = from_onset(Speech(np.concatenate([quiet, loud, quiet]).tobytes(), [1500, 2700]))
    x = np.frombuffer(s.pcm, "<i2")
    assert len(x) == ONSET_MARGIN + 800 + 1000 and (x[ONSET_MARGIN:][:800] == 4000).all()
    assert s.word_ends == [1500 - 1000 + ONSET_MARGIN, 2700 - 1000 + ONSET_MARGIN]
    # already at its onset, or silent: unchanged
    starts_loud = Speech(loud.tobytes(), [800])
    assert from_onset(starts_loud) is starts_loud
    assert from_onset(Speech(quiet.tobytes())).pcm == quiet.tobytes()


def test_piper_s_lead_in_before_the_first_word_is_cut_to_the_margin():
    from pipeline.models import resolve
    from pipeline.tts.base import ONSET_LEVEL, ONSET_MARGIN, from_onset

    tts = PiperTts(resolve().piper_voice)
    (speech,) = list(tts.synthesize("Yes, we open at nine."))
    lead = int(np.argmax(np.abs(np.frombuffer(speech.pcm, "<i2").astype(int)) >= ONSET_LEVEL))
    cut = from_onset(speech)
    assert lead > ONSET_MARGIN  # Piper's own lead-in is longer than what is kept
    assert len(speech.pcm) - len(cut.pcm) == 2 * (lead - ONSET_MARGIN)
    assert len(cut.word_ends) == len(speech.word_ends)
