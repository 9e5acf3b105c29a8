"""``voicebot workers -n N``: run N gateway processes on consecutive ports and keep them up.

A pjsua2 process takes at most 4 calls (field notes), so a host runs several workers, each a
normal ``voicebot`` (own models, own pjsua) with, through environment overrides of the same
config file:

- ``[sip] port`` = base + i (default base 5062: the edge's ``edge/run.sh --workers N``
  dispatcher list, 127.0.0.1:5062, :5063, ...);
- ``[sip] rtp_port`` = rtp_port + 200 * i (each worker takes up to 200 RTP ports);
- ``[metrics] port`` = port + i when metrics are served (9464, 9465, ...: docker/prometheus.yml);
- ``[records] path`` = the journal with ``-w<i>`` before its suffix (calls-w0.jsonl, ...), so
  each worker recovers only its own crashed calls.

With ``[llm] backend = "engine"`` the supervisor starts one LLM engine (llama-server) for all
the workers and hands them its address (``[llm] engine_url``): the box holds the model once.

A worker that exits without being asked to is restarted after a back-off (``RestartPolicy``:
1 s, doubling up to 60 s while it keeps crashing; back to 1 s once it ran 60 s). SIGTERM or
SIGINT stops them all: each gets SIGTERM (the gateway drains, ``[sip] drain_seconds``), a
second signal is passed on (ends the drain), and a worker still running after drain + 15 s
gets SIGKILL. The supervisor then exits 0.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gateway.config import Config

DEFAULT_BASE_PORT = 5062  # = edge/run.sh --worker-base-port default
RTP_PORTS_PER_WORKER = 200  # = gateway.telephony.sip portRange


@dataclass
class RestartPolicy:
    """When to restart a worker that exited: pure logic (no clock, no processes)."""

    min_delay: float = 1.0
    max_delay: float = 60.0
    stable_after: float = 60.0
    """A worker that ran this long before exiting is restarted quickly again."""
    failures: int = 0

    def delay_after_exit(self, uptime: float) -> float:
        if uptime >= self.stable_after:
            self.failures = 0
        delay = min(self.max_delay, self.min_delay * (2 ** min(self.failures, 30)))
        self.failures += 1
        return delay


def journal_for(path: Path, index: int) -> Path:
    """calls.jsonl -> calls-w0.jsonl (worker 0), ..."""
    return path.with_name(f"{path.stem}-w{index}{path.suffix}")


def worker_env(cfg: Config, index: int, base_port: int,
               journal: Path) -> dict[str, str]:
    """The ``VOICEBOT_*`` overrides that make worker ``index`` distinct."""
    env = {
        "VOICEBOT_SIP_PORT": str(base_port + index),
        "VOICEBOT_SIP_RTP_PORT": str(cfg.sip.rtp_port + RTP_PORTS_PER_WORKER * index),
        "VOICEBOT_RECORDS_PATH": str(journal_for(journal, index)),
        "VOICEBOT_WORKER": str(index),
    }
    if cfg.metrics.port:
        env["VOICEBOT_METRICS_PORT"] = str(cfg.metrics.port + index)
    return env


def check_layout(cfg: Config, n: int, base_port: int) -> None:
    """Raise ValueError when N workers do not fit the port ranges."""
    if n < 1:
        raise ValueError("-n must be at least 1")
    if base_port < 1 or base_port + n - 1 > 65535:
        raise ValueError(f"SIP ports {base_port}..{base_port + n - 1} are out of range")
    last_rtp = cfg.sip.rtp_port + RTP_PORTS_PER_WORKER * n - 1
    if last_rtp > 65535:
        raise ValueError(f"RTP ports up to {last_rtp} are out of range: lower [sip] rtp_port")
    if cfg.metrics.port and cfg.metrics.port + n - 1 > 65535:
        raise ValueError("metrics ports are out of range: lower [metrics] port")


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: the supervisor died -> SIGTERM


@dataclass
class Worker:
    index: int
    env: dict[str, str]
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    restart_at: float | None = None
    restarts: int = 0
    policy: RestartPolicy = field(default_factory=RestartPolicy)


class Supervisor:
    def __init__(self, cfg: Config, n: int, base_port: int, config_path: str | None,
                 journal: Path, python: str = sys.executable,
                 environ: Mapping[str, str] | None = None,
                 say: Callable[[str], None] | None = None) -> None:
        check_layout(cfg, n, base_port)
        self.cfg = cfg
        self.base_port = base_port
        self.argv = [python, "-m", "gateway.cli"]
        if config_path:
            self.argv += ["--config", str(config_path)]
        self.argv.append("run")
        self.environ = dict(os.environ if environ is None else environ)
        self.workers = [Worker(i, worker_env(cfg, i, base_port, journal)) for i in range(n)]
        self.signals: list[int] = []
        self.stop_timeout = cfg.sip.drain_seconds + 15.0
        self.say = say or (lambda msg: print(f"voicebot workers: {msg}", file=sys.stderr,
                                             flush=True))
        self._out_lock = threading.Lock()

    # --- processes -------------------------------------------------------------------------

    def _spawn(self, w: Worker) -> None:
        w.proc = subprocess.Popen(self.argv, env={**self.environ, **w.env},
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        w.started_at = time.monotonic()
        w.restart_at = None
        self.say(f"worker {w.index} started (pid {w.proc.pid}, sip udp "
                  f"{w.env['VOICEBOT_SIP_PORT']})")
        threading.Thread(target=self._pump, args=(w, w.proc), daemon=True,
                         name=f"worker-{w.index}-out").start()

    def _pump(self, w: Worker, proc: subprocess.Popen) -> None:
        """Copy a worker's output to ours, each line prefixed with its index."""
        assert proc.stdout is not None
        prefix = f"w{w.index} | ".encode()
        for line in iter(proc.stdout.readline, b""):
            with self._out_lock:
                sys.stdout.buffer.write(prefix + line)
                sys.stdout.buffer.flush()
            if line.startswith(b"voicebot ready"):
                self.say(f"worker {w.index} ready on udp port {w.env['VOICEBOT_SIP_PORT']}")
        proc.stdout.close()

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.signals.append(signum)
        for w in self.workers:  # the first asks for a drain, the second ends it
            if w.proc is not None and w.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    w.proc.send_signal(signal.SIGTERM)

    # --- main loop -------------------------------------------------------------------------

    def run(self, poll: float = 0.2) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        n = len(self.workers)
        self.say(f"starting {n} worker(s) on udp ports {self.base_port}.."
                  f"{self.base_port + n - 1}")
        for w in self.workers:
            if not self.signals:
                self._spawn(w)
        while not self.signals:
            now = time.monotonic()
            for w in self.workers:
                if w.proc is not None and w.proc.poll() is not None and w.restart_at is None:
                    uptime = now - w.started_at
                    delay = w.policy.delay_after_exit(uptime)
                    w.restart_at = now + delay
                    self.say(f"worker {w.index} (pid {w.proc.pid}) exited with "
                              f"{_status(w.proc.returncode)} after {uptime:.0f} s; "
                              f"restarting in {delay:.0f} s")
                elif w.restart_at is not None and now >= w.restart_at:
                    w.restarts += 1
                    self._spawn(w)
            time.sleep(poll)
        return self._stop_all()

    def _stop_all(self) -> int:
        self.say(f"signal {self.signals[0]}: stopping {len(self.workers)} worker(s)")
        deadline = time.monotonic() + self.stop_timeout
        for w in self.workers:
            if w.proc is None:
                continue
            if w.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    w.proc.send_signal(signal.SIGTERM)
        for w in self.workers:
            if w.proc is None:
                continue
            try:
                w.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(f"worker {w.index} did not stop in {self.stop_timeout:.0f} s: "
                          "killing it")
                w.proc.kill()
                w.proc.wait()
            self.say(f"worker {w.index} stopped ({_status(w.proc.returncode)})")
        return 0


def _status(rc: int | None) -> str:
    if rc is None:
        return "?"
    if rc < 0:
        try:
            return f"signal {signal.Signals(-rc).name}"
        except ValueError:
            return f"signal {-rc}"
    return f"status {rc}"


def engine_slots(cfg: Config, n: int) -> int:
    """Conversations the shared engine decodes together: [llm] engine_slots, or every call of
    every worker plus each worker's tool router."""
    return cfg.llm.engine_slots or n * (cfg.sip.max_calls + 1)


def start_shared_engine(cfg: Config, n: int):  # -> pipeline.llm.engine.LlmEngine
    """[llm] backend = "engine": one llama-server for all N workers, so the box holds the
    model once and every call's reply is decoded in the same batch."""
    import dataclasses

    from gateway.app import start_engine
    from pipeline import models

    model = models.resolve("", cfg.llm.model, cfg.llm.model_sha256, "", cfg.llm.bundled,
                           embedded_llm=True).llm
    assert model is not None
    shared = dataclasses.replace(cfg, llm=dataclasses.replace(
        cfg.llm, engine_slots=engine_slots(cfg, n)))
    return start_engine(shared, model)


def main(cfg: Config, n: int, base_port: int, config_path: str | None) -> int:
    from gateway.calls import records
    from pipeline.models import ModelError

    try:
        sup = Supervisor(cfg, n, base_port, config_path, records.journal_path(cfg.records.path))
    except ValueError as e:
        print(f"voicebot workers: {e}", file=sys.stderr)
        return 2
    engine = None
    if cfg.llm.backend == "engine" and not cfg.llm.engine_url:
        from gateway.app import setup_logging

        setup_logging(cfg.log.level)  # the engine's own lines (its log, its restarts)
        try:
            engine = start_shared_engine(cfg, n)
        except (ModelError, FileNotFoundError, RuntimeError) as e:
            print(f"voicebot workers: the LLM engine: {e}", file=sys.stderr)
            return 3
        sup.environ["VOICEBOT_LLM_ENGINE_URL"] = engine.base_url
        sup.say(f"LLM engine for all workers: {engine.base_url} "
                f"({engine_slots(cfg, n)} slots, pid {engine.pid()})")
    try:
        return sup.run()
    finally:
        if engine is not None:
            engine.stop()
