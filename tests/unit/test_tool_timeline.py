"""Tools, keys and transfers on one call's scripted timeline (see test_session_timeline.py):
the policy gate decides when a tool runs relative to the caller's turn, and the call actions
(transfer, hang-up) happen only once the bot's phrase has been heard."""

from __future__ import annotations

import json
import threading
import time

from pipeline.core.conversation import State
from pipeline.core.dtmf import KeypadSettings
from pipeline.llm.base import LlmError
from pipeline.tools.catalog import Tool, ToolPolicy, ToolResult, end_call_tool, transfer_tool
from tests.unit.scripted_session import Clock, assistant_lines, greet, in_call, make_session, says

DESK = {"front desk": "sip:desk@127.0.0.1:5999"}


def call_json(name: str, **args) -> str:
    return json.dumps({"name": name, "arguments": args})


class Spy:
    """A tool that records when it ran (and what the session looked like then)."""

    def __init__(self, name: str, side_effect: bool, say: str, delay: float = 0.0):
        self.runs: list[dict] = []
        self.delay = delay
        self.session = None

        def run(args, _call):
            self.runs.append({"args": args, "stt_calls": self.session.engines.stt.calls,
                              "committed_turns": len(self.session.turns)})
            time.sleep(self.delay)
            return ToolResult(say, {"ok": True})

        self.tool = Tool(name, f"the {name} tool", {
            "type": "object", "properties": {"day": {"type": "string"}}}, run,
            side_effect=side_effect)


def tool_session(stt_texts, replies, tools, **options):
    transfers: list[str] = []
    hangups: list[str] = []
    confirm = options.pop("confirm", ())
    session, llm, failures = make_session(stt_texts, replies, session_options={
        "tools": ToolPolicy(tools, confirm), "transfer": transfers.append,
        "hang_up": hangups.append, **options})
    for t in tools:
        if hasattr(t, "spy"):
            t.spy.session = session
    return session, llm, failures, transfers, hangups


def spied(spy: Spy) -> Tool:
    object.__setattr__(spy.tool, "spy", spy)  # frozen dataclass: tag it for tool_session
    return spy.tool


def wait_for(cond, timeout: float = 5.0) -> None:
    """Wait in real time with the media clock stopped (the caller's pause does not grow)."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def pending_tool_entries(session) -> list[dict]:
    """The tool entries of the turns' records, and of the reply the worker is writing (a
    reply's report reaches its record once the reply speaks or ends)."""
    writing = session._worker._report
    return ([e for r in list(session._recs.values()) for e in r.tools]
            + (list(writing.tools) if writing is not None else []))


def test_side_effect_never_runs_on_a_speculative_transcript():
    spy = Spy("book", side_effect=True, say="You are booked for Monday.")
    session, llm, failures, _, _ = tool_session(
        ["Book me for Monday", "Book me for Monday please"],
        [call_json("book", day="Monday")], [spied(spy)])
    with in_call(session, failures) as clock:
        clock.run(30, loud=True)
        clock.run(15)  # a pause: the draft reply is a call to a side-effecting tool
        wait_for(lambda: any(e.get("waited_for_commit") for e in pending_tool_entries(session)))
        assert spy.runs == []  # proposed on a speculative transcript: it waits
        clock.run(30, loud=True)  # the caller goes on: the draft is dropped, never run
        clock.run(40)
        clock.until(lambda: spy.runs)
        clock.until(lambda: session.core.state is State.LISTENING)
        assert len(spy.runs) == 1
        assert spy.runs[0]["stt_calls"] == 2  # it ran for the committed (second) transcript
        assert assistant_lines(session)[-1] == "You are booked for Monday."
        (rec,) = session.turns
        assert [e["decision"] for e in rec.tools] == ["run"] and rec.tools[0]["outcome"] == "ok"


def test_side_effect_proposed_speculatively_runs_once_the_turn_commits():
    spy = Spy("book", side_effect=True, say="Booked.")
    session, _, failures, _, _ = tool_session(
        ["Book me for Monday"], [call_json("book", day="Monday")], [spied(spy)])
    with in_call(session, failures) as clock:
        clock.run(30, loud=True)
        clock.run(15)
        wait_for(lambda: any(e.get("waited_for_commit") for e in pending_tool_entries(session)))
        assert spy.runs == []
        clock.run(40)  # silence: the turn commits, and only now the tool runs
        clock.until(lambda: spy.runs)
        assert spy.runs[0]["committed_turns"] == 1
        clock.until(lambda: session.core.state is State.LISTENING)
        assert assistant_lines(session)[-1] == "Booked."


def test_read_only_prefetch_is_discarded_when_the_caller_keeps_talking():
    spy = Spy("lookup", side_effect=False, say="Your order has shipped.")
    session, llm, failures, _, _ = tool_session(
        ["Where is my order", "Actually, when do you open?"],
        [call_json("lookup"), "We open at nine."], [spied(spy)])
    with in_call(session, failures) as clock:
        clock.run(30, loud=True)
        clock.run(15)
        wait_for(lambda: spy.runs)  # read-only: prefetched on the speculative transcript
        before = clock.bot_frames()
        says(clock)
        clock.until(lambda: len(llm.requests) == 2)
        clock.until(lambda: session.core.state is State.LISTENING)
        assert assistant_lines(session)[-1] == "We open at nine."
        assert not any("shipped" in line for line in assistant_lines(session))
        # only the final reply's 4 words were played, none of the prefetched answer
        assert clock.bot_frames() - before == 4 * 4000 // 320
        assert len(spy.runs) == 1


def slow_tool_reply(delay: float) -> tuple[list[str], int]:
    spy = Spy("lookup", side_effect=False, say="Order four has shipped.", delay=delay)
    session, _, failures, _, _ = tool_session(
        ["Where is order four?"], [call_json("lookup")], [spied(spy)], hold_after=0.15)
    with in_call(session, failures) as clock:
        says(clock)
        clock.until(lambda: len(assistant_lines(session)) == 2)
        assert not failures
        return assistant_lines(session), len(session.turns[0].tools)


def test_holding_phrase_plays_while_a_slow_tool_runs():
    fast, _ = slow_tool_reply(0.0)
    slow, _ = slow_tool_reply(0.6)
    assert fast[-1] == "Order four has shipped."
    assert slow[-1] == "One moment, please. Order four has shipped."


def test_operator_key_transfers_after_the_phrase_is_heard():
    session, _, failures, transfers, _ = tool_session(
        [], ["unused"], [transfer_tool(DESK)], transfer_targets=DESK)
    with in_call(session, failures) as clock:
        clock.run(5)
        session.on_dtmf("0")
        clock.until(lambda: clock.bot_frames(clock.out[-1:]) == 1)  # the phrase starts
        assert transfers == []  # not while it plays
        clock.until(lambda: transfers)
        assert transfers == ["sip:desk@127.0.0.1:5999"]
        assert assistant_lines(session)[-1] == "Transferring you to the front desk now."


def test_keyed_digits_become_the_callers_turn():
    session, llm, failures, _, _ = tool_session(
        [], ["Thanks."], [], keypad=KeypadSettings("0", "#", 3.0))
    with in_call(session, failures) as clock:
        for d in "4512#":
            session.on_dtmf(d)
        clock.until(lambda: llm.requests)
        assert llm.requests[0][-1] == {"role": "user",
                                       "content": "I typed 4 5 1 2 on the keypad."}
        clock.until(lambda: session.turns and session.turns[0].first_audio)
        assert session.turns[0].keypad


def confirm_flow(answer: str):
    session, llm, failures, transfers, _ = tool_session(
        ["Can I talk to a person?", answer],
        [call_json("transfer_call", target="front desk"), "How else can I help?"],
        [transfer_tool(DESK)], transfer_targets=DESK, confirm=("transfer_call",))
    with in_call(session, failures) as clock:
        says(clock)
        clock.until(lambda: any("Shall I" in a for a in assistant_lines(session)))
        assert transfers == []  # asking is not doing
        clock.until(lambda: session.core.state is State.LISTENING)
        says(clock)
        clock.until(lambda: len(assistant_lines(session)) == 3)
        clock.run(200)  # the phrase plays out
        assert not failures
        return transfers, assistant_lines(session), session.turns


def test_transfer_waits_for_the_callers_yes():
    transfers, lines, turns = confirm_flow("Yes please.")
    assert lines[1] == "Shall I transfer you to the front desk?"
    assert lines[2] == "Transferring you to the front desk now."
    assert transfers == ["sip:desk@127.0.0.1:5999"]
    assert turns[0].tools[0]["decision"] == "ask_confirmation"
    assert turns[1].tools[0]["confirmed"] is True


def test_transfer_declined_by_the_caller_never_happens():
    transfers, lines, turns = confirm_flow("No, thanks.")
    assert transfers == []
    assert lines[2].startswith("Alright, I won't")
    assert turns[1].tools[0]["decision"] == "declined"


def test_transfer_to_a_number_the_caller_names_is_refused():
    session, _, failures, transfers, _ = tool_session(
        ["Transfer me to 555 1234."], [call_json("transfer_call", target="front desk")],
        [transfer_tool(DESK)], transfer_targets=DESK)
    with in_call(session, failures) as clock:
        says(clock)
        clock.until(lambda: len(assistant_lines(session)) == 2)
        clock.run(150)
        assert transfers == []
        assert assistant_lines(session)[-1] == (
            "I'm sorry, I can only transfer you to the front desk.")
        assert session.turns[0].tools[0]["decision"] == "refuse"


def test_bot_hangs_up_only_after_its_goodbye_is_played():
    session, _, failures, _, hangups = tool_session(
        ["That's all, bye."], [call_json("end_call", goodbye="Goodbye and take care.")],
        [end_call_tool()])
    with in_call(session, failures) as clock:
        clock.run(30, loud=True)
        start = len(clock.out)  # the greeting is over: every bot frame from here is goodbye
        clock.run(40)
        clock.until(lambda: hangups)
        # the whole goodbye (4 words at 4 words/s = 50 frames) reached the caller first
        assert clock.bot_frames(clock.out[start:]) == 4 * 4000 // 320
        assert hangups == ["the bot ended the call"]


def test_failed_transfer_is_announced_and_the_call_goes_on():
    session, _, failures, transfers, _ = tool_session(
        [], ["unused"], [transfer_tool(DESK)], transfer_targets=DESK)
    with in_call(session, failures) as clock:
        session.on_dtmf("0")
        clock.until(lambda: transfers)
        session.on_transfer_result(False, 486, "Busy Here")
        clock.until(lambda: assistant_lines(session)[-1].startswith("Sorry, I could not"))
        clock.until(lambda: session.core.state is State.LISTENING)


def test_tool_threads_end_with_the_call():
    spy = Spy("lookup", side_effect=False, say="Found it.")
    before = threading.active_count()
    for _ in range(3):
        session, _, _, _, _ = tool_session(["Look it up"], [call_json("lookup")], [spied(spy)])
        clock = Clock(session)
        session.start()
        greet(clock, session)
        says(clock)
        clock.until(lambda s=session: len(assistant_lines(s)) == 2)
        session.stop()
    time.sleep(0.2)
    assert threading.active_count() <= before


def failed_turn_then(answer: str, **options):
    """The model fails the caller's first turn; the caller answers the bot's offer."""
    session, llm, failures, transfers, _ = tool_session(
        ["What are your hours?", answer],
        [LlmError("connect", "refused"), "We open at nine."],
        [transfer_tool(DESK)], transfer_targets=DESK, apology="Sorry, I can't answer now.",
        **options)
    with in_call(session, failures) as clock:
        says(clock)
        clock.until(lambda: len(assistant_lines(session)) == 2)
        clock.until(lambda: session.core.state is State.LISTENING)
        says(clock)
        clock.until(lambda: len(assistant_lines(session)) == 3)
        clock.run(200)  # the phrase plays out
        return transfers, assistant_lines(session), session.turns, llm


def test_a_failed_turn_offers_the_transfer_and_a_yes_needs_no_model():
    transfers, lines, turns, llm = failed_turn_then("Yes please.")
    assert lines[1] == "Sorry, I can't answer now. Shall I transfer you to the front desk?"
    assert turns[0].llm_error == "connect"
    assert turns[0].tools == [{"name": "transfer_call", "arguments": {"target": "front desk"},
                               "decision": "offered", "reason": "the model failed the turn"}]
    assert lines[2] == "Transferring you to the front desk now."
    assert transfers == ["sip:desk@127.0.0.1:5999"]
    assert turns[1].tools[0]["confirmed"] is True
    assert len(llm.requests) == 1  # the yes was understood without asking the model


def test_after_a_declined_offer_or_with_the_offer_off_the_model_answers_again():
    transfers, lines, _, _ = failed_turn_then("No, thanks.")
    assert transfers == [] and lines[2].startswith("Alright, I won't")
    transfers, lines, turns, _ = failed_turn_then("What are your hours?",
                                                  failure_offers_transfer=False)
    assert lines[1] == "Sorry, I can't answer now." and turns[0].tools == []
    assert transfers == [] and lines[2] == "We open at nine."
