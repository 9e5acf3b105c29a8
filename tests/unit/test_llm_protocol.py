"""Pure logic of the LLM server backend: SSE decoding, chunk reading, the circuit breaker, the
request body and the [llm] settings. No sockets, no sleeps (time is an argument)."""

from __future__ import annotations

import json
import tomllib

import pytest

from gateway import config
from gateway.config import ConfigError
from pipeline.breaker import BreakerState, CircuitBreaker
from pipeline.llm.server import ServerSettings, chat_body
from pipeline.llm.sse import ChunkReader, SseDecoder, StreamError
from pipeline.tools.catalog import parse_tool_call


def events(raw: bytes) -> list[str]:
    d = SseDecoder()
    out = [e for line in raw.splitlines(keepends=True) if (e := d.feed_line(line)) is not None]
    if (last := d.end()) is not None:
        out.append(last)
    return out


def chunk(text: str | None = None, finish: str | None = None, **delta) -> str:
    if text is not None:
        delta["content"] = text
    return json.dumps({"object": "chat.completion.chunk",
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


# --- SSE lines -> events -------------------------------------------------------------------


def test_sse_events_as_llama_cpp_server_sends_them():
    # sse-starlette with sep="\n": a ping comment, data lines, blank line after each event
    raw = (b": ping - 2026-12-05\n\n"
           b"data: " + chunk(role="assistant").encode() + b"\n\n"
           b"data: " + chunk("Hello").encode() + b"\n\n"
           b"data: [DONE]\n\n")
    assert events(raw) == [chunk(role="assistant"), chunk("Hello"), "[DONE]"]


def test_sse_crlf_no_space_multiline_and_other_fields():
    raw = (b"event: message\r\nid: 7\r\nretry: 1000\r\ndata:{\"a\":\r\ndata: 1}\r\n\r\n"
           b"data: [DONE]")  # the last event without its blank line
    assert events(raw) == ['{"a":\n1}', "[DONE]"]


def test_sse_malformed_lines_are_ignored_not_fatal():
    # a field without a colon, an unknown field, a lone "data" (empty value), stray blanks
    raw = (b"garbage line\n\n\n"
           b"datax: nope\n"
           b"data\n\n"
           b"\xff\xfe: bad bytes in a field name\n"
           b"data: " + chunk("ok").encode() + b"\n\n")
    assert events(raw) == ["", chunk("ok")]


# --- events -> text ------------------------------------------------------------------------


def test_chunks_to_text_and_the_end():
    r = ChunkReader()
    assert r.read(chunk(role="assistant")) == ""
    assert r.read(chunk("Open ")) == "Open "
    assert r.read(chunk("at nine.", finish="stop")) == "at nine."
    assert r.finished and not r.done
    assert r.read(json.dumps({"choices": [], "usage": {"total_tokens": 9}})) == ""
    assert r.read(" [DONE] ") == "" and r.done


@pytest.mark.parametrize(("data", "kind"), [
    ("{not json", "protocol"),
    ("", "protocol"),                                     # the lone "data" line above
    ("[1, 2]", "protocol"),
    ('{"choices": "x"}', "protocol"),
    ('{"id": 1}', "protocol"),                            # no choices at all
    ('{"choices": [{"delta": "text"}]}', "protocol"),
    ('{"choices": [{"delta": {"content": 5}}]}', "protocol"),
    ('{"error": {"message": "model overloaded", "type": "server_error"}}', "server_error"),
])
def test_malformed_or_error_events_raise_with_their_kind(data, kind):
    with pytest.raises(StreamError) as e:
        ChunkReader().read(data)
    assert e.value.kind == kind
    if kind == "server_error":
        assert "model overloaded" in str(e.value)


def test_structured_tool_calls_become_the_text_the_router_parses():
    r = ChunkReader()
    text = r.read(chunk(tool_calls=[{"index": 0, "id": "c1", "type": "function",
                                     "function": {"name": "order_status", "arguments": ""}}]))
    text += r.read(chunk(tool_calls=[{"index": 0, "function": {"arguments": '{"order_'}}]))
    text += r.read(chunk(tool_calls=[{"index": 0, "function": {"arguments": 'id": "4512"}'}}]))
    text += r.read(chunk(finish="tool_calls"))
    call = parse_tool_call(text)
    assert call is not None and call.name == "order_status"
    assert call.arguments == {"order_id": "4512"}
    # Ollama: the arguments as an object, no arguments at all
    r = ChunkReader()
    text = r.read(chunk(tool_calls=[{"function": {"name": "end_call", "arguments": {}}}]))
    text += r.read("[DONE]")
    assert parse_tool_call(text).name == "end_call"
    r = ChunkReader()
    text = r.read(chunk(tool_calls=[{"function": {"name": "end_call"}}])) + r.read("[DONE]")
    assert json.loads(text) == {"name": "end_call", "arguments": {}}


# --- the circuit breaker ---------------------------------------------------------------------


def test_breaker_opens_after_failures_in_a_row_and_probes_after_the_cooldown():
    b = CircuitBreaker(failures=3, cooldown=20.0)
    for t in (0.0, 1.0):
        assert b.allow(t)
        b.failed(t)
    assert b.state is BreakerState.CLOSED
    b.succeeded(2.0)  # a success in between: the count starts over
    for t in (3.0, 4.0, 5.0):
        assert b.allow(t)
        b.failed(t)
    assert b.state is BreakerState.OPEN
    assert not b.allow(6.0) and not b.allow(24.9)
    assert b.retry_in(15.0) == pytest.approx(10.0)
    assert b.allow(25.0)  # one probe
    assert b.state is BreakerState.HALF_OPEN
    assert not b.allow(25.1)  # while it is out, nobody else
    b.failed(26.0)  # the probe failed: open again, a full cool-down from now
    assert b.state is BreakerState.OPEN and not b.allow(45.9)
    assert b.allow(46.0)
    b.succeeded(46.5)
    assert b.state is BreakerState.CLOSED and b.allow(46.6) and b.allow(46.7)


def test_breaker_probe_abandoned_by_a_barge_in_lets_the_next_request_probe():
    b = CircuitBreaker(failures=1, cooldown=5.0)
    b.failed(0.0)
    assert b.allow(5.0) and not b.allow(5.1)
    b.abandoned(5.2)
    assert b.state is BreakerState.HALF_OPEN and b.allow(5.3)


def test_breaker_rejects_nonsense_settings():
    with pytest.raises(ValueError):
        CircuitBreaker(failures=0)


# --- the request -----------------------------------------------------------------------------


def test_request_body_keeps_messages_and_asks_for_the_prompt_cache():
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    s = ServerSettings("http://127.0.0.1:1/v1", model="qwen", api_key="sk-secret")
    body = chat_body(msgs, 96, 0.2, s, tools=[{"type": "function"}])
    assert body["messages"] is msgs and body["stream"] is True and body["model"] == "qwen"
    assert body["cache_prompt"] is True and body["repeat_penalty"] == 1.1
    assert body["tools"] == [{"type": "function"}]
    assert "sk-secret" not in json.dumps(body) and "sk-secret" not in repr(s)
    plain = chat_body(msgs, 96, 0.2, ServerSettings("http://x/v1", cache_prompt=False))
    assert "cache_prompt" not in plain and "model" not in plain and "tools" not in plain
    assert chat_body(msgs, 9, 0.0, s, cache=False)["cache_prompt"] is False


# --- [llm] settings --------------------------------------------------------------------------


@pytest.mark.parametrize(("toml", "needle"), [
    ("[llm]\nbackend = 'remote'", "[llm] backend = 'remote' is invalid: expected one of "
                                  "'embedded', 'engine', 'openai'"),
    ("[llm]\nbackend = 'openai'\nbase_url = 'localhost:8080'", "[llm] base_url = "
                                                               "'localhost:8080' is invalid"),
    ("[llm]\nbackend = 'openai'\nbase_url = 'http://h:99999/v1'", "bad port"),
    ("[llm]\nbackend = 'engine'\nengine_url = 'localhost:8080'",
     "[llm] engine_url = 'localhost:8080' is invalid"),
    ("[llm]\nfirst_token_timeout = 0", "[llm] first_token_timeout = 0 is invalid"),
    ("[llm]\nbackend = 'openai'\napi_key_env = 'NO_SUCH_KEY_VAR'",
     "[llm] api_key_env = 'NO_SUCH_KEY_VAR': that environment variable is not set"),
])
def test_llm_server_settings_are_checked(toml, needle):
    with pytest.raises(ConfigError) as e:
        config.build(tomllib.loads(toml), env={})
    assert needle in str(e.value)


def test_llm_server_settings_from_file_and_environment():
    cfg = config.build(tomllib.loads("[llm]\nbackend = 'openai'\napi_key_env = 'MY_KEY'"),
                       env={"MY_KEY": "sk-1", "VOICEBOT_LLM_BASE_URL": "https://gpu.lan/v1",
                            "VOICEBOT_LLM_FIRST_TOKEN_TIMEOUT": "3"})
    assert cfg.llm.backend == "openai" and cfg.llm.base_url == "https://gpu.lan/v1"
    assert cfg.llm.first_token_timeout == 3.0
    assert "sk-1" not in repr(cfg)  # only the variable's name is configuration
