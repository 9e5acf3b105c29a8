"""Tools the language model may call, and the policy gate that decides when they run.

The model only *proposes* a call (a JSON object in its reply). Whether, when and with which
arguments it runs is decided here, outside the model:

- a call to an unknown tool, or with arguments outside its schema, is refused;
- a read-only tool may run at once, even on a speculative (not yet committed) transcript: its
  result is discarded with the draft reply if the caller keeps talking;
- a side-effecting tool runs only once the caller's turn has committed, and where configured
  only after the caller confirmed it;
- destinations come from the configuration (an allow-list), never from the model or caller.

Nothing here does I/O except the tools' own ``run`` (the bundled order table is read once).
"""

from __future__ import annotations

import csv
import enum
import importlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

BUNDLED_ORDERS = Path(__file__).parents[1] / "data" / "orders.csv"


class CallActions(Protocol):
    """What a side-effecting tool may ask of the call (the session provides it)."""

    def transfer(self, name: str, uri: str) -> None: ...

    def hang_up(self) -> None: ...


@dataclass(frozen=True)
class ToolResult:
    say: str
    """What the bot says about the result (spoken as is: small models garble tool output)."""
    data: dict[str, Any] = field(default_factory=dict)
    """Recorded with the call, never spoken."""
    after_played: Callable[[], None] | None = None
    """Run once ``say`` has been heard in full (the transfer, the hang-up)."""


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    """JSON schema of the arguments: an object of string/integer properties."""
    run: Callable[[dict[str, Any], CallActions], ToolResult]
    side_effect: bool = False
    confirm_prompt: Callable[[dict[str, Any]], str] | None = None
    """How the bot asks before running it (tools that need confirmation)."""
    grounded: tuple[str, ...] = ()
    """Arguments whose digits must occur in the caller's own words (no invented numbers)."""
    caller_said: str = ""
    """A regular expression the caller's words must match for this tool to be used at all
    (the model proposes, the caller's own request must be there: no hang-up on "Hello?")."""

    def spec(self) -> dict[str, Any]:
        """The OpenAI-style description handed to the chat template."""
        return {"type": "function", "function": {
            "name": self.name, "description": self.description, "parameters": self.parameters}}


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]


# --- what the model wrote ---------------------------------------------------------------------

def looks_like_tool_call(text: str) -> bool | None:
    """Decide from the start of a reply whether it is a tool call (Qwen writes the JSON object
    bare; the <tool_call> tag is a special token the detokenizer drops). None: not known yet."""
    s = text.lstrip()
    if not s:
        return None
    if s.startswith("<tool_call>"):
        return True
    return s[0] == "{"


def parse_tool_call(text: str) -> ToolCall | None:
    """The first ``{"name": ..., "arguments": {...}}`` object in ``text``; None if there is none.
    Arguments given as a JSON string are decoded too (both forms occur)."""
    s = text.replace("<tool_call>", "").replace("</tool_call>", "")
    decoder = json.JSONDecoder()
    i = s.find("{")
    while i != -1:
        try:
            obj, _ = decoder.raw_decode(s, i)
        except json.JSONDecodeError:
            i = s.find("{", i + 1)
            continue
        if isinstance(obj, dict) and isinstance(obj.get("name"), str):
            args = obj.get("arguments", obj.get("parameters", {}))
            if isinstance(args, str):
                try:
                    args = json.loads(args)
                except json.JSONDecodeError:
                    args = None
            if isinstance(args, dict):
                return ToolCall(obj["name"], args)
            return ToolCall(obj["name"], {"__invalid__": True})
        i = s.find("{", i + 1)
    return None


def check_arguments(tool: Tool, args: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """Arguments reduced to the schema's properties, or an error. Extra keys are dropped (the
    small model adds some), missing required ones and values outside an enum are errors."""
    props: dict[str, Any] = tool.parameters.get("properties", {})
    if args.get("__invalid__"):
        return {}, "arguments are not a JSON object"
    out: dict[str, Any] = {}
    for key, schema in props.items():
        if key not in args:
            continue
        value = args[key]
        kind = schema.get("type", "string")
        if kind == "string":
            if isinstance(value, int | float) and not isinstance(value, bool):
                value = str(value)
            if not isinstance(value, str):
                return {}, f"{key} must be a string"
            value = value.strip()
            if "pattern" in schema and not re.fullmatch(schema["pattern"], value):
                return {}, f"{key} = {value!r} does not match {schema['pattern']}"
        elif kind == "integer" and not (isinstance(value, int) and not isinstance(value, bool)):
            return {}, f"{key} must be an integer"
        if "enum" in schema and value not in schema["enum"]:
            return {}, f"{key} = {value!r} is not one of {schema['enum']}"
        out[key] = value
    for key in tool.parameters.get("required", []):
        if key not in out:
            return {}, f"missing argument {key}"
    return out, ""


# --- the policy gate --------------------------------------------------------------------------

class Verdict(enum.Enum):
    RUN = "run"                      # run now
    WAIT_FOR_COMMIT = "wait_for_commit"  # side effect on a speculative turn: not yet
    ASK_CONFIRMATION = "ask_confirmation"
    REFUSE = "refuse"                # not allowed: the bot says so
    INVALID = "invalid"              # not a usable call: the bot answers in words instead


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    tool: Tool | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    reason: str = ""


DIALABLE = re.compile(r"(\d[\s\-.]*){3,}|sips?:|@", re.IGNORECASE)


class ToolPolicy:
    def __init__(self, tools: Iterable[Tool], confirm: Iterable[str] = ()) -> None:
        self.tools = {t.name: t for t in tools}
        self.confirm = set(confirm)

    def specs(self) -> list[dict[str, Any]]:
        return [t.spec() for t in self.tools.values()]

    def might_apply(self, caller_text: str) -> bool:
        """Could any tool pass the gate for these words? If not, routing is skipped (it
        costs a model pass on the caller's words before the reply can start)."""
        return any(not t.caller_said or re.search(t.caller_said, caller_text, re.IGNORECASE)
                   for t in self.tools.values())

    def decide(self, call: ToolCall, *, committed: bool, confirmed: bool = False,
               caller_text: str = "") -> Decision:
        tool = self.tools.get(call.name)
        if tool is None:
            return Decision(Verdict.INVALID, reason=f"unknown tool {call.name!r}")
        args, error = check_arguments(tool, call.arguments)
        if error:
            return Decision(Verdict.INVALID, tool, reason=error)
        if tool.caller_said and not re.search(tool.caller_said, caller_text, re.IGNORECASE):
            return Decision(Verdict.INVALID, tool, args,
                            reason="the caller did not ask for this")
        heard = re.sub(r"\D", "", caller_text)
        for key in tool.grounded:
            digits = re.sub(r"\D", "", str(args.get(key, "")))
            if digits not in heard:
                return Decision(Verdict.INVALID, tool, args,
                                reason=f"{key} = {args.get(key)!r} is not in the caller's words")
        if tool.side_effect:
            if tool.name == "transfer_call" and DIALABLE.search(caller_text):
                # the caller named a destination of their own: only the allow-list is reachable
                return Decision(Verdict.REFUSE, tool, args,
                                reason="the caller asked for a destination not on the list")
            waiting = Decision(Verdict.WAIT_FOR_COMMIT, tool, args)
            return waiting if not committed else self.once_committed(waiting, confirmed)
        return Decision(Verdict.RUN, tool, args)

    def once_committed(self, waiting: Decision, confirmed: bool = False) -> Decision:
        """A ``WAIT_FOR_COMMIT`` decision once the caller's turn has committed: the checks
        it passed do not depend on the commit, so only the confirmation is left to decide."""
        assert waiting.verdict is Verdict.WAIT_FOR_COMMIT and waiting.tool is not None
        if waiting.tool.name in self.confirm and not confirmed:
            return Decision(Verdict.ASK_CONFIRMATION, waiting.tool, waiting.arguments)
        return Decision(Verdict.RUN, waiting.tool, waiting.arguments)


YES = re.compile(r"\b(yes|yeah|yep|sure|please do|please|ok|okay|go ahead|correct|right|do it)\b")
NO = re.compile(r"\b(no|nope|don't|do not|not|cancel|stop|never mind|wait)\b")


NOT_RIGHT = re.compile(r"\b(not|isn'?t|wasn'?t|that'?s not) (right|correct|it)\b"
                       r"|\b(wrong|incorrect)\b")


# a question of the caller's own is no answer to "shall I ...?": "When do you close today? And
# not you open on Saturday?" had been taken for a no by its "not"
_NEW_QUESTION = re.compile(r"^\W*(?:(?:um+|uh+|oh|ok(?:ay)?|and|so|well|also)\W+)*"
                           r"(?:what|what's|when|where|where's|which|who|who's|why|how)\b")


def confirmation(text: str) -> bool | None:
    """The caller's answer to "shall I ...?": True, False, or None (something else)."""
    t = text.lower()
    if _NEW_QUESTION.match(t):
        return None
    if NOT_RIGHT.search(t):  # "yes, not right": the yes is not the answer
        return False
    no, yes = NO.search(t), YES.search(t)
    if no and (not yes or no.start() <= yes.start()):
        return False
    if yes:
        return True
    return None


# --- built-in tools ---------------------------------------------------------------------------

def parse_targets(entries: Iterable[str]) -> dict[str, str]:
    """``["front desk=sip:desk@pbx"]`` -> {"front desk": "sip:desk@pbx"}; ValueError on a bad
    entry (names the entry)."""
    out: dict[str, str] = {}
    for entry in entries:
        name, sep, uri = entry.partition("=")
        name, uri = name.strip(), uri.strip()
        if not sep or not name or not re.fullmatch(r"sips?:[^\s<>\"]+", uri):
            raise ValueError(f"{entry!r} is invalid: expected \"name=sip:user@host\"")
        if name in out:
            raise ValueError(f"{name!r} is listed twice")
        out[name] = uri
    return out


def transfer_tool(targets: Mapping[str, str]) -> Tool:
    names = list(targets)

    def run(args: dict[str, Any], call: CallActions) -> ToolResult:
        name = args["target"]
        uri = targets[name]
        return ToolResult(f"Transferring you to the {name} now.", {"target": name, "uri": uri},
                          after_played=lambda: call.transfer(name, uri))

    return Tool(
        "transfer_call",
        "Transfer the caller to a person. Use when the caller asks for a human, a person, a "
        f"receptionist or one of: {', '.join(names)}.",
        {"type": "object", "properties": {"target": {"type": "string", "enum": names}},
         "required": ["target"]},
        run, side_effect=True,
        confirm_prompt=lambda args: f"Shall I transfer you to the {args['target']}?",
        caller_said=(r"\b(person|human|someone|somebody|anyone|transfer|operator|reception\w*|"
                     r"talk (to|with)|speak (to|with)|connect|agent|representative|put me "
                     r"through|" + "|".join(re.escape(n) for n in names) + r")\b"))


def end_call_tool() -> Tool:
    def run(args: dict[str, Any], call: CallActions) -> ToolResult:
        goodbye = args.get("goodbye") or "Thank you for calling. Goodbye."
        return ToolResult(goodbye, after_played=call.hang_up)

    return Tool(
        "end_call",
        "End the call after saying goodbye, when the caller says goodbye or has nothing more "
        "to ask.",
        {"type": "object", "properties": {
            "goodbye": {"type": "string", "description": "the last sentence to say"}}},
        run, side_effect=True,
        caller_said=(r"\b(bye|goodbye|that's all|that is all|that's everything|nothing else|"
                     r"hang up|have a (good|nice|great) (day|one|evening))\b"))


TAKE_MESSAGE = "take_message"

# the caller asks to leave a message (never "did you get my message?"): the bot takes it
MESSAGE_WISH = re.compile(
    r"\b(leave|take|give|pass (on|along))\b[^.?!]{0,25}\bmessage\b"
    r"|\b(call|ring|phone) me back\b|\bcall ?back\b|\bvoice ?mail\b|\bget back to me\b"
    r"|\bhave (someone|somebody|them|her|him)\b[^.?!]{0,20}\b(call|ring|phone|contact)\b",
    re.IGNORECASE)
NO_MESSAGE = re.compile(r"\b(don'?t|do not|no need to|not)\b[^.?!]{0,15}\b(leave|take|want|need)\b"
                        r"|\bno message\b", re.IGNORECASE)


def wants_to_leave_message(text: str) -> bool:
    """The caller asks to leave a message ("can I leave a message?", "have someone call me
    back"), not declines one ("no, I don't need to leave a message")."""
    return bool(MESSAGE_WISH.search(text)) and not NO_MESSAGE.search(text)


def take_message_tool() -> Tool:
    """Taking a message: a dialogue of its own (``pipeline/messages/taking.py``) the reply
    worker runs instead of ``run``; a Tool so that the offer of one is a question the
    caller's yes confirms like any other. Never offered to the model."""
    def run(args: dict[str, Any], call: CallActions) -> ToolResult:
        raise RuntimeError("take_message is run by the reply worker's message taker")

    return Tool(TAKE_MESSAGE, "Take a message for the business.",
                {"type": "object", "properties": {}}, run, side_effect=True,
                caller_said=MESSAGE_WISH.pattern)


def order_status_tool(path: Path = BUNDLED_ORDERS) -> Tool:
    with open(path, newline="", encoding="utf-8") as f:
        rows = {r["order_id"].strip(): r for r in csv.DictReader(f)}

    def run(args: dict[str, Any], call: CallActions) -> ToolResult:
        order = re.sub(r"\D", "", args["order_id"])
        row = rows.get(order)
        if row is None:
            return ToolResult(f"I could not find an order number {' '.join(order)}.",
                              {"order_id": order, "found": False})
        return ToolResult(f"Order {' '.join(order)} {row['status']}.",
                          {"order_id": order, "found": True, "status": row["status"]})

    return Tool(
        "order_status", "Look up the status of an order by its order number.",
        {"type": "object", "properties": {"order_id": {
            # anchored: llama-server turns a schema into a grammar only from an anchored
            # pattern (unanchored, it warns and lets any string through)
            "type": "string", "pattern": r"^[\d\s\-]{1,20}$",
            "description": "the digits of the order number"}},
         "required": ["order_id"]},
        run, grounded=("order_id",),
        caller_said=r"\b(order|package|parcel|deliver\w*|ship\w*|keypad|track\w*)\b")


def load_tools(enabled: Iterable[str], targets: Mapping[str, str], orders_file: str = "",
               modules: Iterable[str] = ()) -> list[Tool]:
    """The built-ins that are enabled (transfer only with targets), then plug-in modules'
    ``TOOLS`` lists."""
    tools: list[Tool] = []
    for name in enabled:
        if name == "transfer_call" and targets:
            tools.append(transfer_tool(targets))
        elif name == "end_call":
            tools.append(end_call_tool())
        elif name == "order_status":
            tools.append(order_status_tool(Path(orders_file) if orders_file else BUNDLED_ORDERS))
    for mod in modules:
        found = getattr(importlib.import_module(mod), "TOOLS", None)
        if not isinstance(found, list) or not all(isinstance(t, Tool) for t in found):
            raise ValueError(f"module {mod!r} has no TOOLS list of pipeline.tools.catalog.Tool")
        tools.extend(found)
    return tools
