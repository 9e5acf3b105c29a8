"""One call's tool dialogue, without I/O: propose -> (wait for the commit) -> (ask) -> run or
refuse.

The reply worker asks it what to do with a tool call the router proposed, or with the
caller's answer to a question it asked ("Shall I transfer you to the front desk?"), and
carries out the steps it gets back (speak, wait for the turn to commit, run the tool). The
policy (``ToolPolicy.decide``) is asked once per proposed call; every step carries the entry
the turn's record keeps for that call.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.tools.catalog import (
    Decision,
    ToolCall,
    ToolPolicy,
    Verdict,
    confirmation,
    take_message_tool,
)

MESSAGE_TOOL = take_message_tool()
DECLINED = "Alright, I won't. What else can I do for you?"


class StepKind(enum.Enum):
    WORDS = "words"  # not a usable call: the model answers the turn in words
    WAIT = "wait"    # a side effect proposed on a speculative turn: wait for the commit
    SAY = "say"      # say ``text`` (a refusal, a question, the answer to a "no")
    RUN = "run"      # run ``decision``'s tool


@dataclass
class Step:
    kind: StepKind
    entry: dict[str, Any] = field(default_factory=dict)
    """This call's entry in the turn's record (``TurnRecord.tools``); the worker adds the
    outcome of running it."""
    decision: Decision | None = None
    text: str = ""


class ToolDialogue:
    def __init__(self, policy: ToolPolicy, transfer_targets: Mapping[str, str]) -> None:
        self.policy = policy
        self.transfer_targets = dict(transfer_targets)
        self.asked: Decision | None = None
        """The call the bot asked the caller to confirm, until the caller's next turn."""

    def propose(self, call: ToolCall, caller_text: str, committed: bool) -> Step:
        """The router proposed ``call`` for ``caller_text`` (``committed``: the caller's turn
        is over, not a pause)."""
        decision = self.policy.decide(call, committed=committed, caller_text=caller_text)
        entry: dict[str, Any] = {"name": call.name, "arguments": call.arguments}
        if decision.verdict is Verdict.INVALID:  # e.g. an invented order number
            entry.update(decision="invalid", reason=decision.reason)
            return Step(StepKind.WORDS, entry, decision)
        if decision.verdict is Verdict.WAIT_FOR_COMMIT:
            entry["waited_for_commit"] = True
            return Step(StepKind.WAIT, entry, decision)
        return self._settle(decision, entry)

    def committed(self, waited: Step) -> Step:
        """The turn a ``WAIT`` step waited for has committed."""
        assert waited.decision is not None
        return self._settle(self.policy.once_committed(waited.decision), waited.entry)

    @staticmethod
    def dropped(waited: Step) -> None:
        """The caller went on instead: the call never runs."""
        waited.entry["decision"] = "dropped"

    def answer(self, caller_text: str) -> bool | None:
        """The caller's answer to the question asked: yes, no, or None (something else: the
        question lapses and the turn is answered as usual)."""
        assert self.asked is not None
        yes = confirmation(caller_text)
        if yes is None:
            self.asked = None
        return yes

    def answered(self, yes: bool) -> Step:
        """The caller's yes or no stands (their turn committed): run the call, or say so."""
        decision, self.asked = self.asked, None
        assert decision is not None and decision.tool is not None
        entry = {"name": decision.tool.name, "arguments": decision.arguments, "confirmed": yes,
                 "decision": "run" if yes else "declined"}
        if yes:
            return Step(StepKind.RUN, entry, decision)
        return Step(StepKind.SAY, entry, decision, DECLINED)

    def offer_transfer(self) -> Step | None:
        """The model failed this turn: offer the first transfer target instead, since the
        caller's yes or no needs no model. None: no transfer is enabled."""
        tool = self.policy.tools.get("transfer_call")
        if tool is None or tool.confirm_prompt is None or not self.transfer_targets:
            return None
        args = {"target": next(iter(self.transfer_targets))}
        self.asked = Decision(Verdict.ASK_CONFIRMATION, tool, args)
        entry = {"name": tool.name, "arguments": args, "decision": "offered",
                 "reason": "the model failed the turn"}
        return Step(StepKind.SAY, entry, self.asked, tool.confirm_prompt(args))

    def offer_message(self, reason: str) -> dict[str, Any]:
        """The bot's reply offered to take a message ([messages] offer): the caller's yes
        starts taking it. Returns the entry for the turn's record."""
        self.asked = Decision(Verdict.ASK_CONFIRMATION, MESSAGE_TOOL, {})
        return {"name": MESSAGE_TOOL.name, "arguments": {}, "decision": "offered",
                "reason": reason}

    def _settle(self, decision: Decision, entry: dict[str, Any]) -> Step:
        entry["decision"] = decision.verdict.value
        entry["arguments"] = decision.arguments or entry["arguments"]
        if decision.verdict is Verdict.REFUSE:
            entry["reason"] = decision.reason
            return Step(StepKind.SAY, entry, decision, self._refusal(decision))
        if decision.verdict is Verdict.ASK_CONFIRMATION:
            assert decision.tool is not None and decision.tool.confirm_prompt is not None
            self.asked = decision
            return Step(StepKind.SAY, entry, decision,
                        decision.tool.confirm_prompt(decision.arguments))
        return Step(StepKind.RUN, entry, decision)

    def _refusal(self, decision: Decision) -> str:
        if decision.tool is not None and decision.tool.name == "transfer_call":
            names = " or the ".join(self.transfer_targets)
            return f"I'm sorry, I can only transfer you to the {names}."
        return "I'm sorry, I can't do that."
