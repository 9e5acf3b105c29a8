"""``voicebot workers``' pure parts: the restart policy, each worker's ports and journal, the
layout's limits, and a shared engine's slots."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway import config, workers
from gateway.workers import RestartPolicy
from testbed.harness import ROOT

EDGE_RUN = ROOT / "edge" / "run.sh"


def test_restart_policy_backs_off_while_crashing_and_resets_when_stable():
    p = RestartPolicy(min_delay=1, max_delay=60, stable_after=60)
    assert [p.delay_after_exit(0.5) for _ in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert p.delay_after_exit(3600) == 1  # it ran long: a fresh crash, not a crash loop
    assert p.delay_after_exit(2) == 2


def test_each_worker_gets_its_own_ports_and_journal():
    cfg = config.build({"sip": {"rtp_port": 4000}, "metrics": {"port": 9464}})
    envs = [workers.worker_env(cfg, i, 5062, Path("/srv/calls.jsonl")) for i in range(3)]
    assert [e["VOICEBOT_SIP_PORT"] for e in envs] == ["5062", "5063", "5064"]
    assert [e["VOICEBOT_SIP_RTP_PORT"] for e in envs] == ["4000", "4200", "4400"]
    assert [e["VOICEBOT_METRICS_PORT"] for e in envs] == ["9464", "9465", "9466"]
    assert envs[1]["VOICEBOT_RECORDS_PATH"] == "/srv/calls-w1.jsonl"
    # the overrides go through the normal config validation
    assert config.build({}, envs[2]).sip.port == 5064
    off = config.build({"metrics": {"port": 0}})
    assert "VOICEBOT_METRICS_PORT" not in workers.worker_env(off, 1, 5062, Path("c.jsonl"))


def test_defaults_line_up_with_the_edge_and_docker():
    text = EDGE_RUN.read_text()
    m = re.search(r"worker_base=\$\{EDGE_WORKER_BASE_PORT:-(\d+)\}", text)
    assert m and int(m.group(1)) == workers.DEFAULT_BASE_PORT
    cfg = config.Config()
    for i in (1, 2):  # docker/workers/worker<i>.toml = what `voicebot workers` gives worker i-1
        w = config.load(ROOT / "docker" / "workers" / f"worker{i}.toml", env={})
        env = workers.worker_env(cfg, i - 1, workers.DEFAULT_BASE_PORT, Path("calls.jsonl"))
        assert w.sip.port == int(env["VOICEBOT_SIP_PORT"])
        assert w.sip.rtp_port == int(env["VOICEBOT_SIP_RTP_PORT"])


def test_layout_out_of_range_is_refused():
    cfg = config.Config()
    with pytest.raises(ValueError, match="at least 1"):
        workers.check_layout(cfg, 0, 5062)
    with pytest.raises(ValueError, match="SIP ports"):
        workers.check_layout(cfg, 3, 65534)
    with pytest.raises(ValueError, match="RTP ports"):
        workers.check_layout(config.build({"sip": {"rtp_port": 65000}}), 3, 5062)


def test_a_shared_engine_has_slots_for_every_worker():
    cfg = config.build({"sip": {"max_calls": 4}})
    assert workers.engine_slots(cfg, 2) == 10  # 4 calls and a tool router per worker
    assert workers.engine_slots(config.build({"llm": {"engine_slots": 6}}), 2) == 6
