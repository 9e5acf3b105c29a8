"""The embedded LLM's context pool on the real bundled 0.5B model: every call slot starts with
the system prompt already in its KV cache, copied from the one context that read it."""

from __future__ import annotations

import pytest

from pipeline.reply.llm import LlmPool, stream_chat

SYSTEM = ("You are the phone receptionist of Mill Bakery. Answer in one short sentence. "
          "Mill Bakery is open Wednesday to Sunday, 7 am to 3 pm.")
GREETING = "Hello, Mill Bakery, how can I help?"


@pytest.fixture(scope="module")
def pool() -> LlmPool:
    from pipeline.models import assemble_llm

    p = LlmPool(assemble_llm("qwen2.5-coder-0.5b"), 3, 2, 1024, system_prompt=SYSTEM,
                greeting=GREETING)
    p.warm_up()
    return p


def ask(llm, text: str) -> str:
    messages = [{"role": "system", "content": SYSTEM},
                {"role": "assistant", "content": GREETING},
                {"role": "user", "content": text}]
    return "".join(stream_chat(llm, messages, 24, 0.0))


def test_every_slot_holds_the_warm_prefix_and_answers_from_it(pool: LlmPool) -> None:
    slots = [pool.acquire() for _ in range(pool.size)]
    try:
        # the copied cache is the read one: same tokens in every slot
        assert len({s.n_tokens for s in slots}) == 1 and slots[0].n_tokens > 40
        assert all((s.input_ids[:s.n_tokens] == slots[0].input_ids[:s.n_tokens]).all()
                   for s in slots)
        # and it is a usable KV cache: greedy answers agree with the context that read it
        # (a cache of the wrong tokens would answer something else, or nonsense)
        answers = [ask(s, "Are you open on Monday?") for s in slots]
        assert answers[0].strip() and len(set(answers)) == 1, answers
    finally:
        for s in slots:
            pool.release(s)


def reused(llm, messages: list[dict[str, str]]) -> tuple[int, str]:
    """Tokens of the request's prompt already in the context before it, and the greedy reply."""
    before = list(llm.input_ids[:llm.n_tokens])
    reply = "".join(stream_chat(llm, messages, 24, 0.0))
    after = list(llm.input_ids[:llm.n_tokens])
    pairs = zip(before, after, strict=False)  # the prompt may be shorter than the cache
    common = next((i for i, (a, b) in enumerate(pairs) if a != b), len(before))
    return common, reply


def test_prefill_reads_the_prompt_start_and_the_reply_is_unchanged(pool: LlmPool) -> None:
    """What the gateway does while the caller speaks (pipeline/session.py ``_prepare``): the
    history and the facts note's first line are read before the caller's words are known;
    the reply then starts from them and is the one it would have been."""
    head = {"role": "system",
            "content": "Note for this turn: it is now Monday, December 7, 2026, 9:15 am."}
    start = [{"role": "system", "content": SYSTEM},
             {"role": "assistant", "content": GREETING}, head]
    full = [*start, {"role": "user", "content": "Are you open today?"}]
    cold, warm = pool.acquire(), pool.acquire()
    try:
        pool.prefill(warm, start)
        cold_reused, cold_reply = reused(cold, full)
        warm_reused, warm_reply = reused(warm, full)
    finally:
        pool.release(cold)
        pool.release(warm)
    # the note's line (~20 tokens) and its role header were read ahead
    print(f"\nprompt tokens already read: {cold_reused} cold, {warm_reused} prefilled")
    assert warm_reused >= cold_reused + 15, (cold_reused, warm_reused)
    assert warm_reply.strip() and warm_reply == cold_reply, (cold_reply, warm_reply)
