"""Pure logic of tools, the policy gate and keypad entry (no model, no call)."""

from __future__ import annotations

import pytest

from gateway.config import ConfigError, build
from pipeline.core.dtmf import DtmfCollector, KeyEventKind, entry_text
from pipeline.tools.catalog import (
    ToolCall,
    ToolPolicy,
    Verdict,
    confirmation,
    end_call_tool,
    load_tools,
    looks_like_tool_call,
    order_status_tool,
    parse_targets,
    parse_tool_call,
    transfer_tool,
)
from pipeline.tools.dialogue import DECLINED, StepKind, ToolDialogue

DESK = {"front desk": "sip:desk@pbx.example.org", "billing": "sip:bill@pbx.example.org"}


@pytest.mark.parametrize("text, expected", [
    ('{"name": "order_status", "arguments": {"order_id": "4512"}}',
     ToolCall("order_status", {"order_id": "4512"})),
    ('<tool_call>\n{"name": "end_call", "arguments": {}}\n</tool_call>',
     ToolCall("end_call", {})),
    # arguments as a JSON string (the other form the model writes)
    ('{"name": "order_status", "arguments": "{\\"order_id\\": \\"7\\"}"}',
     ToolCall("order_status", {"order_id": "7"})),
    # two calls: the first counts
    ('{"name": "a", "arguments": {}}\n{"name": "b", "arguments": {}}', ToolCall("a", {})),
    ('{"name": "x", "arguments": [1]}', ToolCall("x", {"__invalid__": True})),
    ('{"name": "order_st', None),  # cut off by max_tokens
    ("We open at nine.", None),
])
def test_parse_tool_call(text, expected):
    assert parse_tool_call(text) == expected


def test_reply_start_tells_a_call_from_words():
    assert looks_like_tool_call("  ") is None
    assert looks_like_tool_call(' {"na') is True
    assert looks_like_tool_call("<tool_call>") is True
    assert looks_like_tool_call("Sure") is False


def policy(confirm=("transfer_call",)):
    return ToolPolicy([transfer_tool(DESK), end_call_tool(), order_status_tool()], confirm)


def test_policy_matrix():
    p = policy()
    look = ToolCall("order_status", {"order_id": "4512", "extra": "dropped"})
    d = p.decide(look, committed=False, caller_text="my order is 45 12")
    assert d.verdict is Verdict.RUN and d.arguments == {"order_id": "4512"}  # prefetch is fine
    bye, said = ToolCall("end_call", {}), "ok thanks, goodbye"
    assert p.decide(bye, committed=False, caller_text=said).verdict is Verdict.WAIT_FOR_COMMIT
    assert p.decide(bye, committed=True, caller_text=said).verdict is Verdict.RUN
    xfer, said = ToolCall("transfer_call", {"target": "billing"}), "billing please"
    assert p.decide(xfer, committed=False, caller_text=said).verdict is Verdict.WAIT_FOR_COMMIT
    assert p.decide(xfer, committed=True, caller_text=said).verdict is Verdict.ASK_CONFIRMATION
    assert p.decide(xfer, committed=True, confirmed=True,
                    caller_text=said).verdict is Verdict.RUN
    assert policy(confirm=()).decide(xfer, committed=True,
                                     caller_text=said).verdict is Verdict.RUN


@pytest.mark.parametrize("call, caller_text, why", [
    (ToolCall("transfer_call", {"target": "sip:evil@attacker.example"}), "a person", "not one of"),
    (ToolCall("order_status", {"order_id": "12345"}), "where is my order 999", "not in the"),
    (ToolCall("transfer_call", {"target": "front desk"}), "put me through to 555 1234",
     "not on the list"),
    (ToolCall("transfer_call", {"target": "front desk"}), "transfer me to sip:x@y",
     "not on the list"),
    (ToolCall("transfer_call", {}), "", "missing argument target"),
    (ToolCall("order_status", {"order_id": "12; DROP TABLE"}), "", "does not match"),
    (ToolCall("order_status", {"order_id": ["1"]}), "", "must be a string"),
    (ToolCall("delete_everything", {}), "", "unknown tool"),
    (ToolCall("end_call", {"__invalid__": True}), "", "not a JSON object"),
    (ToolCall("end_call", {}), "Hello?", "did not ask"),
    (ToolCall("transfer_call", {"target": "front desk"}), "I have a toothache", "did not ask"),
])
def test_policy_refuses(call, caller_text, why):
    d = policy().decide(call, committed=True, confirmed=True, caller_text=caller_text)
    # a destination of the caller's own is refused aloud; a malformed call is answered in words
    want = Verdict.REFUSE if "not on the list" in why else Verdict.INVALID
    assert d.verdict is want and why in d.reason


def test_routing_is_skipped_when_no_tool_could_apply():
    p = policy()
    assert not p.might_apply("What time do you open?")
    assert not p.might_apply("Hello?")
    assert p.might_apply("Where is my order?")
    assert p.might_apply("Can I talk to someone at billing?")
    assert p.might_apply("OK, goodbye.")


def test_transfer_and_lookup_results():
    actions = []

    class Call:
        def transfer(self, name, uri):
            actions.append(("transfer", name, uri))

        def hang_up(self):
            actions.append(("hang_up",))

    r = transfer_tool(DESK).run({"target": "billing"}, Call())
    assert actions == []  # nothing happens until the phrase has been played
    r.after_played()
    assert actions == [("transfer", "billing", "sip:bill@pbx.example.org")]
    assert order_status_tool().run({"order_id": "45 12"}, Call()).data["status"].startswith(
        "has shipped")
    assert not order_status_tool().run({"order_id": "999"}, Call()).data["found"]


@pytest.mark.parametrize("text, answer", [
    ("Yes please.", True), ("yeah go ahead", True), ("Sure.", True),
    ("No thanks.", False), ("no, yes... no", False), ("Don't do that", False),
    ("What are your hours?", None), ("", None),
    # a question of the caller's own, whatever words it holds
    ("When do you close today? And not you open on Saturday?", None),
    ("Um, how do I not miss the bus?", None), ("No, what else?", False),
])
def test_confirmation(text, answer):
    assert confirmation(text) is answer


def test_targets_are_validated():
    assert parse_targets(["front desk = sip:desk@pbx"]) == {"front desk": "sip:desk@pbx"}
    for bad in (["desk"], ["desk=tel:123"], ["=sip:a@b"], ["a=sip:x@y", "a=sip:z@w"]):
        with pytest.raises(ValueError):
            parse_targets(bad)
    with pytest.raises(ConfigError, match=r"\[tools\] transfer_targets"):
        build({"tools": {"transfer_targets": ["desk=555"]}})
    with pytest.raises(ConfigError, match=r"\[tools\] enabled"):
        build({"tools": {"enabled": ["rm_rf"]}})
    with pytest.raises(ConfigError, match=r"\[dtmf\] operator_digit"):
        build({"dtmf": {"operator_digit": "x"}})


def test_transfer_is_offered_only_with_targets():
    assert [t.name for t in load_tools(["transfer_call", "end_call"], {})] == ["end_call"]
    assert [t.name for t in load_tools(["transfer_call"], DESK)] == ["transfer_call"]
    with pytest.raises(ValueError, match="TOOLS"):
        load_tools([], {}, modules=["json"])


def test_keypad_entry():
    k = DtmfCollector("0", "#", inter_digit_timeout=3.0)
    assert k.press("0", 0.0).kind is KeyEventKind.OPERATOR
    assert [k.press(d, 1.0 + i) for i, d in enumerate("1024")] == [None] * 4  # 0 inside
    ev = k.press("#", 5.0)
    assert ev.kind is KeyEventKind.ENTRY and ev.digits == "1024"
    assert k.press("#", 6.0) is None  # nothing collected
    k.press("7", 10.0)
    assert k.poll(12.9) is None
    assert k.poll(13.0).digits == "7"
    assert k.press("x", 14.0) is None and not k.collecting
    assert entry_text("42") == "I typed 4 2 on the keypad."


class CountingPolicy(ToolPolicy):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.decisions = 0

    def decide(self, *a, **kw):
        self.decisions += 1
        return super().decide(*a, **kw)


def test_tool_dialogue_propose_wait_ask_answer():
    p = CountingPolicy([transfer_tool(DESK), end_call_tool(), order_status_tool()],
                       ("transfer_call",))
    d = ToolDialogue(p, DESK)
    xfer, said = ToolCall("transfer_call", {"target": "billing"}), "billing please"
    step = d.propose(xfer, said, committed=False)  # a pause: the side effect waits
    assert step.kind is StepKind.WAIT and step.entry["waited_for_commit"] is True
    step = d.committed(step)  # the turn committed: ask first
    assert step.kind is StepKind.SAY and step.text == "Shall I transfer you to the billing?"
    assert step.entry == {"name": "transfer_call", "arguments": {"target": "billing"},
                          "waited_for_commit": True, "decision": "ask_confirmation"}
    assert p.decisions == 1 and d.asked is not None
    assert d.answer("yes please") is True and d.asked is not None  # stands once committed
    step = d.answered(True)
    assert step.kind is StepKind.RUN and step.decision.tool.name == "transfer_call"
    assert step.entry["confirmed"] is True and d.asked is None


def test_tool_dialogue_refuses_declines_and_lets_other_words_through():
    d = ToolDialogue(policy(), DESK)
    step = d.propose(ToolCall("transfer_call", {"target": "front desk"}), "transfer me to 555 "
                     "0199", committed=True)
    assert step.kind is StepKind.SAY and step.entry["decision"] == "refuse"
    assert step.text == "I'm sorry, I can only transfer you to the front desk or the billing."
    step = d.propose(ToolCall("order_status", {"order_id": "999"}), "where is my order",
                     committed=True)  # a number the caller never said: answer in words
    assert step.kind is StepKind.WORDS and step.entry["decision"] == "invalid"
    ask = d.propose(ToolCall("transfer_call", {"target": "billing"}), "billing please",
                    committed=True)
    assert ask.kind is StepKind.SAY and d.asked is not None
    assert d.answered(False).text == DECLINED and d.asked is None
    d.propose(ToolCall("transfer_call", {"target": "billing"}), "billing please", committed=True)
    assert d.answer("what are your hours?") is None and d.asked is None  # the question lapses
    wait = d.propose(ToolCall("end_call", {}), "goodbye", committed=False)
    ToolDialogue.dropped(wait)
    assert wait.entry["decision"] == "dropped"
