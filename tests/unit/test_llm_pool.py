"""The embedded LLM's context pool on the real bundled 0.5B model: every call slot starts with
the system prompt already in its KV cache, copied from the one context that read it."""

from __future__ import annotations

import pytest

from pipeline.llm.chat import stream_chat
from pipeline.llm.embedded import LlmPool

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


def test_an_open_turn_read_ahead_leaves_the_reply_only_the_words_after_it(pool: LlmPool) -> None:
    """What the gateway does with the words heard while the caller still speaks (session.py
    ``_read_ahead``): the prompt up to those words, the caller's line left open, is read;
    the reply to the whole sentence then reads only the words that came after them, and is
    the reply it would have been."""
    start = [{"role": "system", "content": SYSTEM},
             {"role": "assistant", "content": GREETING}]
    so_far = [*start, {"role": "user", "content": "What time do you open"}]
    full = [*start, {"role": "user", "content": "What time do you open on Saturday?"}]
    before, ahead = pool.acquire(), pool.acquire()
    try:
        pool.prefill(before, start)  # what Prepare reads: the caller's line not begun
        pool.prefill(ahead, so_far, open_turn=True)
        read_ahead = ahead.n_tokens  # the prompt so far (read, nothing generated)
        before_reused, before_reply = reused(before, full)
        ahead_reused, ahead_reply = reused(ahead, full)
    finally:
        pool.release(before)
        pool.release(ahead)
    print(f"\nprompt tokens already read: {before_reused} before the caller's line, "
          f"{ahead_reused} with its first words ({read_ahead} read ahead)")
    # the role header and the five words were read ahead, and the request kept all of them
    # (the last word at most read again: "open" may start a longer token)
    assert ahead_reused >= before_reused + 6, (before_reused, ahead_reused)
    assert ahead_reused >= read_ahead - 1, (read_ahead, ahead_reused)
    assert ahead_reply.strip() and ahead_reply == before_reply, (before_reply, ahead_reply)


def test_reading_ahead_gives_way_between_steps(pool: LlmPool) -> None:
    """Reading ahead stops between steps once a request is waiting (``stop()``): it never
    holds a turn that has ended for more than a step; what it read stays a usable prefix."""
    from pipeline.llm.embedded import PREFILL_STEP

    start = [{"role": "system", "content": SYSTEM},
             {"role": "assistant", "content": GREETING},
             {"role": "user", "content": "Could you tell me whether you are open on the "
                                         "Monday after Easter, and until what time, and "
                                         "whether I can bring my dog along with me?"}]
    ctx = pool.acquire()
    try:
        pool.prefill(ctx, [*start[:2], {"role": "user", "content": ""}], open_turn=True)
        before = ctx.n_tokens  # up to the caller's line's first word
        asked = []
        pool.prefill(ctx, start, open_turn=True, stop=lambda: asked.append(1) or len(asked) > 2)
        stepped = ctx.n_tokens
        pool.prefill(ctx, start, open_turn=True)
        whole = ctx.n_tokens
        _, reply = reused(ctx, [*start[:2], {"role": "user", "content": "Are you open?"}])
    finally:
        pool.release(ctx)
    print(f"\ncached: {before} before, {stepped} after two steps, {whole} read to the end")
    assert abs(stepped - before - 2 * PREFILL_STEP) <= 1, (before, stepped)
    assert whole - stepped >= 8, (stepped, whole)
    assert reply.strip()


def test_a_moved_history_window_is_shifted_into_place_not_read_again(pool: LlmPool) -> None:
    """A long call's history window drops its oldest lines (pipeline/reply/history.py): the
    lines still in it are in the context's cache at later positions. They are moved back into
    place, as llama.cpp's server does with --cache-reuse, and the request reads only its new
    line, where it read everything after the system prompt again."""
    from pipeline.llm.embedded import keep_moved_history

    said = [("Are you open on Monday?", "No, Mill Bakery is closed on Mondays."),
            ("And on Tuesday?", "We are closed on Tuesdays as well."),
            ("What about Wednesday?", "On Wednesday we are open from 7 am to 3 pm."),
            ("Do you sell sourdough bread?", "Yes, we bake sourdough bread every day."),
            ("How much is a loaf?", "I'm sorry, I don't know that."),
            ("Can I order a cake for Saturday?", "Please call us during opening hours.")]
    lines = [m for q, a in said for m in ({"role": "user", "content": q},
                                          {"role": "assistant", "content": a})]
    system = {"role": "system", "content": SYSTEM}
    whole = [system, {"role": "assistant", "content": GREETING}, *lines]
    moved = [system, *lines[4:], {"role": "user", "content": "Is there parking nearby?"}]
    shifted, plain = pool.acquire(), pool.acquire()
    try:
        for ctx in (shifted, plain):  # the call so far, read as its replies were written
            for _ in stream_chat(ctx, whole, 1, 0.0):
                pass
        kept = keep_moved_history(shifted, moved)
        in_place = shifted.n_tokens
        shifted_reused, shifted_reply = reused(shifted, moved)
        plain_reused, plain_reply = reused(plain, moved)
    finally:
        pool.release(shifted)
        pool.release(plain)
    print(f"\nkept by the shift: {kept}; prompt tokens already read: {shifted_reused} shifted, "
          f"{plain_reused} not; replies {shifted_reply!r} / {plain_reply!r}")
    # without the shift only the system prompt is kept; with it, all but the new line
    assert kept >= 60 and shifted_reused >= plain_reused + kept - 2, (kept, shifted_reused)
    assert shifted_reused >= in_place - 1, (in_place, shifted_reused)
    assert shifted_reply.strip()


def test_a_30_turn_call_reads_only_its_new_lines_every_turn(pool: LlmPool) -> None:
    """A long call through the real history window (6 turns kept, moving by half when full):
    every turn's reply reads about as many prompt tokens as any other (within 2x the call's
    median), the turns where the window moved included. Tokens, not seconds: reading them is
    what the first token waits for (~18 ms each for the 1.5B on 2 cores), and their count
    does not depend on the box's load."""
    from pipeline.llm.embedded import cached_tokens, keep_moved_history, tokens_read
    from pipeline.reply.history import ChatHistory

    asks = ["Are you open on Monday?", "And Tuesday?", "What time do you open?",
            "Do you have rye bread?", "Is there parking?", "Can I pay by card?"]
    history = ChatHistory(SYSTEM, 6)
    history.add_bot(GREETING)
    ctx = pool.acquire()
    read, moved = [], 0
    try:
        for turn in range(30):
            history.add_user(f"{asks[turn % len(asks)]} (question {turn + 1})")
            messages = history.messages()
            moved += keep_moved_history(ctx, messages) > 0
            cached = cached_tokens(ctx)
            pieces = stream_chat(ctx, messages, 12, 0.0)
            reply = next(pieces)
            read.append(tokens_read(ctx, cached))
            reply += "".join(pieces)
            history.add_bot(reply)
    finally:
        pool.release(ctx)
    median = sorted(read)[len(read) // 2]
    print(f"\nprompt tokens read per turn: {read}; median {median}; window moved {moved} times")
    assert moved >= 3  # 30 turns through a 6-turn window
    assert max(read) <= 2 * median, read


def test_a_reply_goes_on_from_an_opening_already_said(pool: LlmPool) -> None:
    """The gateway said the reply's first words; the model writes only what follows them,
    from a cache that already held the prompt (the opening alone is read)."""
    assert pool.continues
    llm = pool.acquire()
    try:
        messages = [{"role": "system", "content": "Answer in one short sentence."},
                    {"role": "user", "content": "What is the capital of France?"}]
        pool.prefill(llm, messages, open_turn=True)
        reply = pool.stream(llm, messages, 24, 0.0, opening="The capital of France is")
        rest = "".join(reply)
        print(f"\n{rest!r}, {reply.prompt_tokens_read} tokens read")
        assert "paris" in rest.lower() and "capital of france" not in rest.lower()
        assert reply.prompt_tokens_read is not None and reply.prompt_tokens_read < 15
    finally:
        pool.release(llm)
