"""End to end: a caller who pauses 1 s mid-sentence is not talked over (real baresip caller).

"Are you open on ... Sunday?": the pause after "on" is twice the old fixed end-of-turn
silence. The gateway must hear the sentence out and answer the whole of it, and play
nothing into the pause.
"""

from __future__ import annotations

import numpy as np
import pytest

from testbed.harness import GatewayProcess, active_spans, baresip_call, espeak, need

RATE = 16000


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    need("baresip", "espeak-ng", "sox")
    gw = GatewayProcess(tmp_path_factory.mktemp("gw")).start()
    yield gw
    assert gw.stop() == 0, gw.log()[-3000:]


def test_a_pause_mid_sentence_is_not_an_end_of_turn(gateway, tmp_path):
    first = espeak("Are you open on", tmp_path / "a.wav")
    second = espeak("Sunday?", tmp_path / "b.wav")
    lead = np.zeros(6 * RATE, np.int16)  # the greeting
    pause = np.zeros(RATE, np.int16)  # 1 s: twice the old fixed end of turn
    tail = np.zeros(9 * RATE, np.int16)
    source = np.concatenate([lead, first, pause, second, tail]).astype(np.int16)
    result = baresip_call(tmp_path / "caller", gateway.uri, source, RATE)

    sent = active_spans(result.sent, RATE, min_gap_ms=700)
    assert len(sent) == 2, sent  # the two halves, the pause between them
    pause_start, resume = sent[0][1], sent[1][0]
    heard = active_spans(result.heard, RATE, min_gap_ms=150)
    into_pause = [s for s in heard if s[1] > pause_start + 0.05 and s[0] < resume]
    assert not into_pause, f"the bot spoke into the caller's pause: {into_pause} / {sent}"
    assert any(s[0] > sent[1][1] for s in heard), "the bot never answered"

    rec = gateway.closed_records()[-1]
    spoken = [t for t in rec["turns"] if t["caller_text"]]
    # answered: the caller heard some of the reply (a reply cut before a word of it was
    # heard, because the caller went on, is no answer to the half sentence)
    answered = [t for t in spoken if t["heard_text"] and t["first_audio_at"] is not None]
    assert answered, rec["turns"]
    whole = answered[0]["caller_text"].lower()
    assert "open" in whole and "sunday" in whole, answered[0]  # one turn: the whole sentence
    assert answered[0]["end_of_turn_reason"] in ("complete", "timeout", "incomplete")
    # the half sentence was never answered on its own
    assert not [t for t in answered if "sunday" not in t["caller_text"].lower()], answered
