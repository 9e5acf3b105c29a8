"""A real OpenAI-compatible LLM server for tests: llama-cpp-python's ``llama_cpp.server``
(its ``server`` extra) serving the bundled 0.5B GGUF on loopback."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from testbed.harness import SMALL_LLM, free_tcp_port


def server_available() -> bool:
    try:
        import fastapi  # noqa: F401
        import sse_starlette  # noqa: F401
        import starlette_context  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class LlmServer:
    workdir: Path
    model: Path | None = None
    """None: the bundled 0.5B (assembled by ``pipeline.models``)."""
    port: int = 0
    threads: int = 2
    context_tokens: int = 2048
    api_key: str = ""
    """If set, the server refuses requests without ``Authorization: Bearer <api_key>``."""
    proc: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        if self.model is None:
            from pipeline import models

            self.model = models.assemble_llm(SMALL_LLM)
        self.port = self.port or free_tcp_port()
        self.log_path = self.workdir / "llm-server.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 90.0) -> LlmServer:
        """Start it (again, on the same port) and wait until it serves."""
        self._log = self.log_path.open("ab")
        # interrupt_requests off: by default a second request ends the running stream early
        # with [DONE] (a truncated reply that looks whole), e.g. the router's or another call's
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model),
             "--host", "127.0.0.1", "--port", str(self.port),
             "--n_ctx", str(self.context_tokens), "--n_threads", str(self.threads),
             "--n_threads_batch", str(self.threads), "--interrupt_requests", "False",
             *(["--api_key", self.api_key] if self.api_key else [])],
            stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited {self.proc.returncode}:\n"
                                   f"{self.log()[-3000:]}")
            try:
                req = urllib.request.Request(f"{self.base_url}/models", headers=(
                    {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}))
                with urllib.request.urlopen(req, timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.1)
        self.kill()
        raise TimeoutError(f"llama_cpp.server not up after {timeout} s:\n{self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_bytes().decode("utf-8", "replace")

    def chat_requests(self) -> int:
        """Chat requests the server has accepted so far (uvicorn's access lines)."""
        return self.log().count("POST /v1/chat/completions HTTP/1.1")

    def kill(self) -> None:
        """SIGKILL: the server dies as a crashed one does (mid-stream if it was streaming)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        if self.proc is not None:
            self._log.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
        self.kill()
