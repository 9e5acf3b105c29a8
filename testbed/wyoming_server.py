"""A Wyoming speech server (faster-whisper or Piper) on a loopback port, for the tests and the
benchmarks."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from testbed.harness import free_tcp_port


class WyomingServer:
    """One Wyoming server process on a loopback TCP port (killed and restarted by tests)."""

    def __init__(self, kind: str, workdir: Path, *extra: str) -> None:
        from pipeline import models

        self.kind, self.workdir, self.extra = kind, workdir, extra
        self.port = free_tcp_port()
        self.uri = f"tcp://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        if kind == "stt":
            self.args = ["wyoming_faster_whisper", "--model", str(models.resolve().whisper_dir),
                         "--data-dir", str(workdir), "--local-files-only", "--language", "en",
                         "--beam-size", "1", "--cpu-threads", "2", "--compute-type", "int8"]
        else:
            voice = models.resolve().piper_voice
            self.args = ["wyoming_piper", "--voice", voice.name.removesuffix(".onnx"),
                         "--data-dir", str(voice.parent), "--download-dir", str(workdir)]
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> WyomingServer:
        from pipeline.wyoming.client import ServiceError, exchange, parse_uri
        from pipeline.wyoming.protocol import Event

        log = (self.workdir / f"{self.kind}.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", *self.args, *self.extra, "--uri", self.uri],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.workdir / f"{self.kind}.log").read_text()
            try:  # ready when it describes itself
                exchange(parse_uri(self.uri), [Event("describe")],
                         lambda ev: ev.type == "info", 2.0)
                return self
            except ServiceError:
                time.sleep(0.2)
        self.kill()
        raise TimeoutError(f"{self.kind} server not ready after {timeout} s")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
