"""``voicebot workers`` with real processes: one worker is SIGKILLed and comes back (answers
OPTIONS again), SIGTERM stops them all with status 0; and workers sharing one engine."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from testbed.harness import ROOT, VOICEBOT


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


def llama_servers(parents: set[int]) -> list[int]:
    """The llama-server processes whose parent is one of ``parents``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, rest = stat.read_text().split(" ", 1)
            cmd = (stat.parent / "cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        ppid = int(rest.rsplit(")", 1)[1].split()[1])
        if cmd.endswith(b"llama-server") and ppid in parents:
            found.append(int(pid))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead too
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


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


def test_workers_share_one_engine_and_a_call_is_answered_by_it(tmp_path):
    """[llm] backend = "engine" under ``voicebot workers -n 2``: the supervisor starts one
    llama-server with slots for both workers, each worker uses it (no engine of its own), a
    call to worker 1 is answered through it, and SIGTERM stops the engine too."""
    import numpy as np

    from testbed.harness import SMALL_LLM, active_spans, answered, baresip_call, espeak, need

    need("baresip", "espeak-ng")
    if not (Path(sys.prefix) / "bin" / "llama-server").is_file():
        pytest.skip("no llama-server in the virtualenv (scripts/setup.sh install builds it)")
    base = _free_pair()
    cfg = tmp_path / "voicebot.toml"
    cfg.write_text(f'[sip]\nlisten_address = "127.0.0.1"\nrtp_port = {20000 + base % 1000 * 10}\n'
                   f"drain_seconds = 0\n[metrics]\nport = 0\n"
                   f'[records]\npath = "{tmp_path / "calls.jsonl"}"\n'
                   f'[llm]\nbackend = "engine"\nbundled = "{SMALL_LLM}"\ntemperature = 0.0\n')
    log_path = tmp_path / "workers.log"
    out = log_path.open("wb")
    sup = subprocess.Popen([*VOICEBOT, "workers", "-n", "2", "--base-port", str(base),
                            "--config", str(cfg)], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                           env=dict(os.environ, PYTHONUNBUFFERED="1"))

    def log() -> str:
        return log_path.read_bytes().decode("utf-8", "replace")

    engine_pid = 0
    try:
        _wait(lambda: log().count("voicebot ready") >= 2, 400, "both workers ready", log)
        (url, slots, pid), = re.findall(
            r"LLM engine for all workers: (\S+) \((\d+) slots, pid (\d+)\)", log())
        engine_pid = int(pid)
        assert slots == "10" and _alive(engine_pid)
        cmdline = Path(f"/proc/{engine_pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[cmdline.index(b"--parallel") + 1] == b"10"
        assert log().count(f"LLM: the engine at {url}") == 2, log()[-3000:]
        family = {sup.pid, *(int(p) for p in re.findall(r"worker \d started \(pid (\d+)",
                                                         log()))}
        assert llama_servers(family) == [engine_pid]  # no worker started one of its own

        rate = 16000
        q = espeak("What time do you open in the morning?", tmp_path / "q.wav")
        source = np.concatenate([np.zeros(6 * rate, np.int16), q,
                                 np.zeros(40 * rate, np.int16)]).astype(np.int16)
        journal = tmp_path / "calls-w1.jsonl"
        result = baresip_call(tmp_path / "caller", f"sip:bot@127.0.0.1:{base + 1}", source, rate,
                              until=answered(journal, 1))
        q_end = active_spans(result.sent, rate)[-1][1]
        assert [s for s in active_spans(result.heard, rate) if s[0] > q_end], "no answer heard"
        from gateway.calls import records

        turns = [t for r in records.read(journal).records() for t in r["turns"]
                 if t.get("caller_text")]
        assert turns and turns[-1]["llm_backend"] == "engine", turns
        assert not turns[-1]["llm_error"], turns[-1]

        sup.send_signal(signal.SIGTERM)
        assert sup.wait(60) == 0, log()[-5000:]
        _wait(lambda: not _alive(engine_pid), 15, "the engine stopped", log)
    finally:
        if sup.poll() is None:
            sup.kill()
            sup.wait()
        if engine_pid and _alive(engine_pid):
            os.kill(engine_pid, signal.SIGKILL)
        out.close()
