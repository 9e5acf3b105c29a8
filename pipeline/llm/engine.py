"""llama.cpp's own server (``llama-server``) as the box's LLM engine, run by the gateway.

Each call owning a llama.cpp context in the gateway means 4 talking calls are 4 separate
decodes on the same cores. ``llama-server`` batches every active request into each decode
step (continuous batching), keeps one slot per conversation with its own prompt cache, and
shifts a slot's cache instead of reading a moved history window again (``--cache-reuse``).
The gateway talks to it with its OpenAI-compatible backend (``openai_llm.py``).

``LlmEngine`` owns the child process: started on a free loopback port, ready once
``/health`` says so, its output in the gateway's log, restarted when it dies (calls hear the
apology meanwhile, as with any server failure), ended with the gateway (also when the
gateway is killed: the kernel sends it SIGTERM, ``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class EngineSettings:
    binary: Path
    model: Path
    slots: int
    """Conversations decoded together (``--parallel``): the calls, plus one for the router."""
    context_per_slot: int
    threads: int
    batch_tokens: int
    cache_reuse: int = 256
    """Smallest run of tokens a slot shifts in its cache instead of reading again."""
    gpu_layers: int = 0
    host: str = "127.0.0.1"
    port: int = 0
    """0: a free port, chosen at each start."""


def command(s: EngineSettings, port: int) -> list[str]:
    """The ``llama-server`` command line (pure)."""
    return [str(s.binary), "--model", str(s.model), "--host", s.host, "--port", str(port),
            "--parallel", str(s.slots), "--ctx-size", str(s.slots * s.context_per_slot),
            "--threads", str(s.threads), "--threads-batch", str(s.threads),
            "--batch-size", str(s.batch_tokens), "--ubatch-size", str(s.batch_tokens),
            "--cache-reuse", str(s.cache_reuse), "--cont-batching", "--no-webui", "--jinja",
            *(["--n-gpu-layers", str(s.gpu_layers)] if s.gpu_layers else [])]


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class LlmEngine:
    """The ``llama-server`` child: ``start()`` waits until it serves; ``stop()`` ends it."""

    def __init__(self, settings: EngineSettings, restart_min: float = 1.0,
                 restart_max: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.port = settings.port or free_port(settings.host)
        self.restarts = 0
        self._restart_min, self._restart_max = restart_min, restart_max
        self._clock = clock
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None
        self.on_restart: Callable[[], None] = lambda: None
        """Called once a restarted server is ready (its slots are empty again)."""

    @property
    def base_url(self) -> str:
        return f"http://{self.settings.host}:{self.port}/v1"

    def start(self, timeout: float = 180.0) -> None:
        """Start the server and wait until it has loaded its model (raises on failure)."""
        self._spawn()
        self._wait_ready(timeout)
        self._watcher = threading.Thread(target=self._watch, name="llm-engine-watch",
                                         daemon=True)
        self._watcher.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        with self._lock:
            proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("LLM engine did not stop within %.0f s: killed", timeout)
            proc.kill()
            proc.wait()

    def alive(self) -> bool:
        with self._lock:
            return self._proc is not None and self._proc.poll() is None

    def pid(self) -> int | None:
        with self._lock:
            return None if self._proc is None else self._proc.pid

    def _spawn(self) -> None:
        cmd = command(self.settings, self.port)
        log.info("LLM engine: %s", " ".join(cmd))
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                # not niced: the gateway's own threads spin between
                                # decodes (llama.cpp, CTranslate2), and a niced server
                                # starved behind them (an answer 36 s late on 2 cores)
                                stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        with self._lock:
            self._proc = proc
        threading.Thread(target=self._pump, args=(proc,), name="llm-engine-log",
                         daemon=True).start()

    def _pump(self, proc: subprocess.Popen[bytes]) -> None:
        """The server's lines in the gateway's log: warnings and errors as such, the rest at
        debug (it logs every request)."""
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            if not line:
                continue
            low = line.lower()
            level = (logging.WARNING if ("error" in low or "warn" in low or "failed" in low)
                     else logging.DEBUG)
            log.log(level, "llama-server: %s", line[:500])

    def _wait_ready(self, timeout: float) -> None:
        deadline = self._clock() + timeout
        url = f"http://{self.settings.host}:{self.port}/health"
        while self._clock() < deadline:
            with self._lock:
                proc = self._proc
            if proc is None or proc.poll() is not None:
                raise RuntimeError(f"LLM engine exited while loading (code "
                                   f"{None if proc is None else proc.returncode}); its lines "
                                   f"are in the log (logger pipeline.llm.engine)")
            with (contextlib.suppress(OSError, urllib.error.URLError),
                  urllib.request.urlopen(url, timeout=2) as resp):
                if resp.status == 200:
                    log.info("LLM engine ready on %s (pid %d)", self.base_url, proc.pid)
                    return
            time.sleep(0.2)
        raise RuntimeError(f"LLM engine not ready within {timeout:.0f} s")

    def _watch(self) -> None:
        """Restart the server when it dies (1 s, doubling up to 30 s while it keeps dying)."""
        delay = self._restart_min
        while not self._stopping.is_set():
            with self._lock:
                proc = self._proc
            assert proc is not None
            started = self._clock()
            code = proc.wait()
            if self._stopping.is_set():
                return
            log.error("LLM engine exited (code %s): restarting in %.0f s; calls hear the "
                      "apology meanwhile", code, delay)
            if self._stopping.wait(delay):
                return
            delay = (self._restart_min if self._clock() - started > 60
                     else min(delay * 2, self._restart_max))
            try:
                self._spawn()
                self._wait_ready(180.0)
                self.restarts += 1
            except (OSError, RuntimeError) as e:
                log.error("LLM engine restart failed: %s", e)
                continue
            try:
                self.on_restart()
            except Exception:  # noqa: BLE001 - the server is up; calls are answered anyway
                log.exception("warming the restarted LLM engine failed")
