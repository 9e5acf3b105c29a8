"""Registration on loopback: Kamailio 5.6 as a registrar with digest authentication
(tests/kamailio/registrar.cfg), the real gateway registering to it, a sipp call to the AOR
routed by Kamailio (lookup("location") + t_relay) to the gateway, and a wrong password (clear
401 error, retries with back-off, no crash, no secret in the log)."""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest

from testbed.harness import GatewayProcess, free_udp_port

HERE = Path(__file__).resolve().parents[1]  # tests/
KAMAILIO_CFG = HERE / "kamailio" / "registrar.cfg"
PASSWORD = "Reg-Canary-7f3a91"  # grepped for: must never show up anywhere


needs_tools = pytest.mark.skipif(
    any(shutil.which(t) is None for t in ("kamailio", "kamcmd", "sipp")),
    reason="needs kamailio and sipp (apt-get install kamailio sip-tester)")


def _free_kamailio_port() -> int:
    """A port in 5100-5199 (the range kept for this suite's Kamailio)."""
    for port in random.sample(range(5100, 5200), 100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip("no free UDP port in 5100-5199")


def _free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registrar:
    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = _free_kamailio_port()
        self.ctl = workdir / "kamailio.ctl"
        self.log_path = workdir / "kamailio.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            ["kamailio", "-DD", "-E", "-f", str(KAMAILIO_CFG), "-Y", str(workdir),
             "-P", str(workdir / "kamailio.pid"), "-A", f"PORT={self.port}",
             "-A", f'PASSWORD="{PASSWORD}"', "-A", f'CTL_SOCK="unix:{self.ctl}"'],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kamailio exited: {self.log()}")
            if self.ctl.exists() and self.rpc("core.uptime").returncode == 0:
                return
            time.sleep(0.2)
        raise TimeoutError(f"kamailio did not start: {self.log()}")

    def rpc(self, *cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(["kamcmd", "-s", f"unix:{self.ctl}", *cmd], capture_output=True,
                              text=True, timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        # the whole process group: kamailio's forked workers outlived a terminated main
        # process (found still running, parent 1, after the suite)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._log.close()


@pytest.fixture
def registrar(tmp_path):
    r = Registrar(tmp_path / "kamailio")
    yield r
    r.stop()


def _gateway(tmp_path: Path, registrar: Registrar, password: str, extra: str = "",
             metrics_port: int = 0, expires: int = 60) -> GatewayProcess:
    toml = (f'[registration]\nregistrar = "sip:127.0.0.1:{registrar.port}"\n'
            f'username = "bot"\nexpires_seconds = {expires}\n{extra}\n'
            f"[metrics]\nport = {metrics_port}\n")
    return GatewayProcess(tmp_path / "gw", extra_toml=toml,
                          env={"VOICEBOT_REGISTRATION_PASSWORD": password})


def _wait_for(pred, timeout: float, what: str, log=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}:\n{log()[-4000:]}")


@needs_tools
def test_registers_and_answers_calls_through_the_registrar(tmp_path, registrar):
    mport = _free_tcp_port()
    gw = _gateway(tmp_path, registrar, PASSWORD, metrics_port=mport, expires=30)
    try:
        gw.start()
        _wait_for(lambda: "registration: 200" in gw.log(), 30, "the 200 to REGISTER", gw.log)
        # (a) Kamailio holds the gateway's contact for the AOR
        dump = registrar.rpc("ul.dump").stdout
        assert "bot" in dump and f"127.0.0.1:{gw.sip_port}" in dump, dump
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics",
                                         timeout=5).read().decode()
        assert 'voicebot_registration_state{state="registered"} 1.0' in metrics
        m = re.search(r"registration: 200 \S+, expires in (\d+) s", gw.log())
        assert m and 20 <= int(m.group(1)) <= 30, gw.log()[-2000:]

        # (b) a call to the AOR through the registrar reaches the gateway and is answered
        sipp_port = free_udp_port()
        call = subprocess.run(
            ["sipp", "-sn", "uac", "-s", "bot", f"127.0.0.1:{registrar.port}", "-m", "1",
             "-i", "127.0.0.1", "-p", str(sipp_port), "-mp", str(free_udp_port()),
             "-d", "3000", "-timeout", "40", "-timeout_error", "-nostdin",
             "-trace_err", "-error_file", str(tmp_path / "sipp_err.log")],
            capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert call.returncode == 0, (call.stdout[-2000:], call.stderr[-2000:],
                                      registrar.log()[-3000:], gw.log()[-3000:])
        assert re.search(rf"registrar: INVITE for sip:bot@127.0.0.1:{registrar.port} -> "
                         rf"sip:bot@127.0.0.1:{gw.sip_port}", registrar.log()), registrar.log()
        _wait_for(lambda: "incoming from" in gw.log() and "ended:" in gw.log(), 20,
                  "the call in the gateway log", gw.log)
        assert gw.proc.poll() is None

        # refreshed before it expires (30 s asked, pjsua re-registers 5 s early)
        ok = re.compile(r"^(\S+ \S+) INFO .*registration: 200 ", re.M)
        _wait_for(lambda: len(ok.findall(gw.log())) >= 2, 45, "the refresh", gw.log)
        t0, t1 = (datetime.strptime(t, "%Y-%m-%d %H:%M:%S,%f") for t in ok.findall(gw.log())[:2])
        assert 15 <= (t1 - t0).total_seconds() < 30
        assert f"127.0.0.1:{gw.sip_port}" in registrar.rpc("ul.dump").stdout
    finally:
        rc = gw.stop()
    assert rc == 0, gw.log()[-3000:]
    # unREGISTER at shutdown: the binding is gone
    assert f"127.0.0.1:{gw.sip_port}" not in registrar.rpc("ul.dump").stdout
    for text in (gw.log(), (gw.workdir / "calls.jsonl").read_text(), metrics):
        assert PASSWORD not in text


@needs_tools
def test_wrong_password_is_a_clear_error_and_retried_with_back_off(tmp_path, registrar):
    gw = _gateway(tmp_path, registrar, "not-the-" + PASSWORD[::-1],
                  extra="retry_min_seconds = 2\nretry_max_seconds = 8\n")
    try:
        gw.start()
        failed = re.compile(r"registration failed: 401 Unauthorized \(the registrar rejected "
                            r"the credentials.*?\); attempt (\d+), next in ([\d.]+) s")
        _wait_for(lambda: len(failed.findall(gw.log())) >= 3, 60,
                  "three failed REGISTER attempts", gw.log)
        attempts = failed.findall(gw.log())
        delays = [float(d) for _, d in attempts]
        assert [int(n) for n, _ in attempts[:3]] == [1, 2, 3]
        assert 1.7 <= delays[0] <= 2.3 and 3.5 <= delays[1] <= 4.5 and 7 <= delays[2] <= 9
        assert "retrying REGISTER" in gw.log()
        assert gw.proc.poll() is None  # no crash; direct calls are still answered
        assert registrar.rpc("ul.dump").stdout.count(f"127.0.0.1:{gw.sip_port}") == 0
        assert "not authenticated" in registrar.log()
    finally:
        rc = gw.stop()
    assert rc == 0, gw.log()[-3000:]
    log = gw.log()
    assert PASSWORD[::-1] not in log and PASSWORD not in log
