"""The bundled small LLM's end-of-message probability on words that go on and words that end
(real model), and how it changes the words' cue (pure logic)."""

from __future__ import annotations

import pytest

from pipeline.core.end_of_turn import Cue, EndOfTurnSettings, words_cue

ON = EndOfTurnSettings(message_end_below=0.05)


def test_a_low_probability_turns_words_that_seem_to_end_into_words_that_go_on():
    assert words_cue(ON, "Had he married a more amiable woman", 0.01) is Cue.CONTINUES
    assert words_cue(ON, "Had he married a more amiable woman", 0.3) is Cue.ENDS
    assert words_cue(ON, "Are you open on Sunday?", 0.01) is Cue.ASKS  # the "?" heard stays
    assert words_cue(ON, "Are you open on", 0.9) is Cue.CONTINUES  # the words still win
    assert words_cue(EndOfTurnSettings(), "Had he married", 0.0) is Cue.ENDS  # off
    assert words_cue(ON, "Had he married", None) is Cue.ENDS  # not asked


@pytest.fixture(scope="module")
def eom():
    from pipeline.llm.end_of_message import EndOfMessage
    from pipeline.models import assemble_llm

    return EndOfMessage(assemble_llm("qwen2.5-coder-0.5b"))


@pytest.mark.parametrize("going_on, ended", [
    ("Are you open on", "Are you open on Sunday?"),
    ("What time do you open in the", "What time do you open in the morning?"),
    ("Can I come by on Friday at", "Can I come by on Friday at 4 pm?"),
    ("Do you have", "Do you have gluten free bread?"),
])
def test_words_that_go_on_score_far_below_whole_questions(eom, going_on, ended):
    low, high = eom.probability(going_on), eom.probability(ended)
    print(f"{low:.4f} {going_on!r} / {high:.4f} {ended!r}")
    assert low < 0.05 < high


def test_the_final_mark_is_dropped_and_a_reused_prefix_gives_the_same_answer(eom):
    first = eom.probability("Are you open on Sunday")
    eom.probability("Do you sell croissants")  # the context now holds other words
    assert eom.probability("Are you open on Sunday.") == pytest.approx(first, abs=1e-6)


@pytest.mark.parametrize("toml, model", [
    ("", "qwen2.5-coder-0.5b"),  # the default: the replies' LLM runs here, so does this one
    ('[llm]\nbackend = "openai"\nbase_url = "http://10.0.0.5:8080/v1"', ""),
    ('[llm]\nbackend = "openai"\nbase_url = "http://10.0.0.5:8080/v1"\n'
     '[turn]\nend_of_message_model = "qwen2.5-coder-0.5b"', "qwen2.5-coder-0.5b"),
    ('[turn]\nend_of_message_model = ""', ""),
])
def test_auto_asks_the_small_model_only_beside_an_embedded_llm(tmp_path, toml, model):
    from gateway import config
    from gateway.app import end_of_message_model, turn_settings

    path = tmp_path / "voicebot.toml"
    path.write_text(toml)
    cfg = config.load(path, env={})
    assert end_of_message_model(cfg) == model
    assert turn_settings(cfg).eot.message_end_below == (0.05 if model else 0.0)
