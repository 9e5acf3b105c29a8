"""The LLM engine's command line ([llm] backend = "engine"): each slot gets its context (the
real llama-server is in tests/e2e/test_engine.py)."""

from __future__ import annotations

from pathlib import Path

from pipeline.llm.engine import EngineSettings, command


def test_the_command_line_gives_each_slot_its_context():
    s = EngineSettings(binary=Path("/x/llama-server"), model=Path("/m.gguf"), slots=5,
                       context_per_slot=2048, threads=2, batch_tokens=128)
    cmd = command(s, 4321)
    opt = {cmd[i]: cmd[i + 1] for i in range(1, len(cmd) - 1) if cmd[i].startswith("--")}
    assert cmd[0] == "/x/llama-server" and opt["--port"] == "4321"
    assert opt["--parallel"] == "5" and opt["--ctx-size"] == str(5 * 2048)
    assert opt["--host"] == "127.0.0.1" and opt["--cache-reuse"] == "256"
    assert "--cont-batching" in cmd and "--no-webui" in cmd


