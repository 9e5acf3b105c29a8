"""The streamed reply of an OpenAI-compatible chat server, decoded without I/O.

Two layers: ``SseDecoder`` turns server-sent-event lines into event data (the WHATWG
event-stream rules: ``data:`` lines joined, comments and other fields ignored, a blank line
ends an event), and ``ChunkReader`` turns each event's data into the reply's text
(``chat.completion.chunk`` JSON, ``[DONE]`` at the end, an ``error`` object from the
server). A tool call a server sends as structured ``delta.tool_calls`` (vLLM, Ollama) is
written out as the ``{"name": ..., "arguments": ...}`` text the embedded model writes, so the
tool router reads one form (pipeline/tools/catalog.py ``parse_tool_call``).
"""

from __future__ import annotations

import json
from typing import Any


class StreamError(ValueError):
    """The stream cannot be read as a chat reply. ``kind``: ``protocol`` (not the format) or
    ``server_error`` (the server said it failed)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


class SseDecoder:
    """Feed it the stream's lines (bytes, line ends included or not); it returns an event's
    data when a blank line ends that event, else None."""

    def __init__(self) -> None:
        self._data: list[str] = []

    def feed_line(self, line: bytes) -> str | None:
        # a line that is not UTF-8 is kept readable ("replace"): the JSON check below judges it
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        if not text:
            return self._dispatch()
        if text.startswith(":"):  # a comment: keep-alive pings
            return None
        name, _, value = text.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        # event, id, retry and unknown fields carry nothing a chat reply needs
        return None

    def end(self) -> str | None:
        """At the end of the stream: an event missing its final blank line (the spec drops
        it; a lenient reader keeps a last ``[DONE]`` some servers send that way)."""
        return self._dispatch()

    def _dispatch(self) -> str | None:
        if not self._data:
            return None
        data = "\n".join(self._data)
        self._data = []
        return data


class ChunkReader:
    """Event data in, the reply's next text out. ``done`` once ``[DONE]`` was read;
    ``finished`` once a choice said why it stopped (``finish_reason``)."""

    def __init__(self) -> None:
        self.done = False
        self.finished = False
        self._tool_open = False
        self._tool_args = False

    def read(self, data: str) -> str:
        if data.strip() == "[DONE]":
            self.done = True
            return self._close_tool()
        try:
            obj = json.loads(data)
        except ValueError:
            raise StreamError("protocol", f"event data is not JSON: {data[:80]!r}") from None
        if not isinstance(obj, dict):
            raise StreamError("protocol", f"event data is not an object: {data[:80]!r}")
        if obj.get("error"):
            raise StreamError("server_error", _error_text(obj["error"]))
        choices = obj.get("choices")
        if choices == []:  # e.g. the usage summary some servers send last
            return ""
        if not isinstance(choices, list) or not isinstance(choices[0], dict):
            raise StreamError("protocol", f"no choices in the chunk: {data[:80]!r}")
        choice = choices[0]
        delta = choice.get("delta") or {}
        if not isinstance(delta, dict):
            raise StreamError("protocol", f"delta is not an object: {data[:80]!r}")
        text = delta.get("content") or ""
        if not isinstance(text, str):
            raise StreamError("protocol", f"content is not text: {data[:80]!r}")
        for call in delta.get("tool_calls") or []:
            text += self._tool_text(call)
        if choice.get("finish_reason"):
            self.finished = True
            text += self._close_tool()
        return text

    def _tool_text(self, call: Any) -> str:
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict):
            raise StreamError("protocol", "a tool call without a function")
        out = ""
        if fn.get("name"):
            out += self._close_tool() + '{"name": ' + json.dumps(fn["name"]) + ', "arguments": '
            self._tool_open, self._tool_args = True, False
        args = fn.get("arguments")
        if isinstance(args, dict):  # Ollama sends the object whole
            args = json.dumps(args)
        if args:
            out += args
            self._tool_args = True
        return out

    def _close_tool(self) -> str:
        if not self._tool_open:
            return ""
        self._tool_open = False
        return "}" if self._tool_args else "{}}"


def _error_text(err: Any) -> str:
    if isinstance(err, dict):
        return str(err.get("message") or err.get("type") or err)[:200]
    return str(err)[:200]
