"""``voicebot workers``: restart policy and port layout (pure), then 2 real workers: one is
SIGKILLed and comes back (answers OPTIONS again), SIGTERM stops them all with status 0."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from gateway import config, workers
from gateway.workers import RestartPolicy
from testbed.harness import ROOT, VOICEBOT

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


# --- real processes ---------------------------------------------------------------------------

def _free_pair() -> int:
    """P such that UDP P and P+1 are free on loopback (outside the ranges other suites use)."""
    for _ in range(200):
        base = 5300 + (uuid.uuid4().int % 4000)
        socks = []
        try:
            for p in (base, base + 1):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    pytest.skip("no two consecutive free UDP ports")


def options_ok(port: int, timeout: float = 1.0) -> bool:
    """Send one SIP OPTIONS to 127.0.0.1:port; True on a 200."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(timeout)
        lport = s.getsockname()[1]
        tag, cid = uuid.uuid4().hex[:8], uuid.uuid4().hex
        msg = (f"OPTIONS sip:bot@127.0.0.1:{port} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP 127.0.0.1:{lport};branch=z9hG4bK{uuid.uuid4().hex[:12]};rport\r\n"
               f"Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag={tag}\r\n"
               f"To: <sip:bot@127.0.0.1:{port}>\r\nCall-ID: {cid}\r\nCSeq: 1 OPTIONS\r\n"
               f"Contact: <sip:probe@127.0.0.1:{lport}>\r\nContent-Length: 0\r\n\r\n")
        s.sendto(msg.encode(), ("127.0.0.1", port))
        try:
            data = s.recv(4096)
        except OSError:
            return False
        return data.startswith(b"SIP/2.0 200")


def _wait(pred, timeout: float, what: str, log) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}:\n{log()[-5000:]}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead too
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


@pytest.mark.e2e
def test_workers_restart_a_killed_one_and_stop_cleanly(tmp_path):
    base = _free_pair()
    cfg = tmp_path / "voicebot.toml"
    cfg.write_text(f'[sip]\nlisten_address = "127.0.0.1"\nrtp_port = {20000 + base % 1000 * 10}\n'
                   f"drain_seconds = 0\n[metrics]\nport = 0\n"
                   f'[records]\npath = "{tmp_path / "calls.jsonl"}"\n')
    log_path = tmp_path / "workers.log"
    out = log_path.open("wb")
    sup = subprocess.Popen([*VOICEBOT, "workers", "-n", "2", "--base-port", str(base),
                            "--config", str(cfg)], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                           env=dict(os.environ, PYTHONUNBUFFERED="1"))

    def log() -> str:
        return log_path.read_bytes().decode("utf-8", "replace")

    def pids(index: int) -> list[int]:
        return [int(p) for p in re.findall(rf"worker {index} started \(pid (\d+)", log())]

    try:
        _wait(lambda: log().count("voicebot ready") >= 2, 300, "both workers ready", log)
        assert options_ok(base) and options_ok(base + 1)
        assert "w0 | " in log() and "w1 | " in log()  # each worker's lines are labelled

        victim = pids(0)[0]
        os.kill(victim, signal.SIGKILL)
        _wait(lambda: len(pids(0)) == 2, 30, "worker 0 restarted", log)
        assert re.search(rf"worker 0 \(pid {victim}\) exited with signal SIGKILL after \d+ s; "
                         r"restarting in 1 s", log())
        assert options_ok(base + 1)  # the other worker never went away
        _wait(lambda: log().count("voicebot ready") >= 3, 300, "worker 0 ready again", log)
        _wait(lambda: options_ok(base), 10, "worker 0 answering OPTIONS again", log)
        assert pids(1) and len(pids(1)) == 1

        all_pids = pids(0) + pids(1)
        sup.send_signal(signal.SIGTERM)
        assert sup.wait(60) == 0, log()[-5000:]
        for p in all_pids:
            assert not _alive(p), f"worker pid {p} still alive"
        assert log().count("stopped (status 0)") == 2, log()[-3000:]
        assert (tmp_path / "calls-w0.jsonl").exists() and (tmp_path / "calls-w1.jsonl").exists()
    finally:
        if sup.poll() is None:
            sup.kill()
            sup.wait()
        for p in pids(0) + pids(1):
            if _alive(p):
                os.kill(p, signal.SIGKILL)
        out.close()
