"""bench.turns' stage table from the gateway's turn records (pure)."""

from __future__ import annotations

from bench.turns import opened, stage_table


def record(first_token: float, first_audio: float, opening: str = "") -> dict:
    return {"end_of_turn_seconds": 0.5, "stt_seconds": 0.2, "speculative": True,
            "llm_first_token_seconds": first_token, "tts_first_audio_seconds": first_audio,
            "ttfa_bridge_seconds": 0.5 + 0.01 + first_audio, "ttfa_seconds": 0.69 + first_audio,
            "opening": opening}


def test_a_reply_opened_with_the_facts_words_did_not_wait_for_the_first_token():
    turns = [record(0.9, 1.6), record(1.0, 1.7), record(0.95, 0.1, "Yes,")]
    # the opening was all of it: the model wrote nothing after those words
    whole = {**record(0.9, 0.12, "On Sunday we are closed."), "llm_first_token_seconds": None}
    assert stage_table([*turns, whole])[2][:2] == ("LLM first token", 4)
    table = {name: (n, p50) for name, n, p50, _ in stage_table(turns)}
    assert table["LLM first token"] == (3, 900.0)
    assert table["first clause: tokens + synthesis"][1] == 700.0
    # every stage of every turn sums to its TTFA at the port
    assert abs(sum(p50 for name, (n, p50) in table.items()
                   if not name.startswith(("gateway", "STT job")))
               - table["gateway TTFA (the sum)"][1]) < 1.0
    n_open, n_all, open_p50, rest_p50 = opened(turns)
    assert (n_open, n_all) == (1, 3) and open_p50 < rest_p50
