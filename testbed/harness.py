"""Real processes for end-to-end tests: the gateway, baresip callers, sipp, and audio helpers."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
VOICEBOT = [sys.executable, "-m", "gateway.cli"]
SMALL_LLM = "qwen2.5-coder-0.5b"
DEFAULT_LLM = "qwen2.5-coder-1.5b"
LLM = ""  # [llm] bundled of every GatewayProcess that does not choose; "": the config's


def free_udp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def free_tcp_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def free_baresip_port(host: str = "127.0.0.1") -> int:
    """A SIP port for baresip: it listens on UDP and TCP at the port and on TLS at the next
    one, and gives up its call when any of the three is taken (a free UDP port alone once
    collided with another process's TCP socket)."""
    for _ in range(100):
        port = free_udp_port(host)
        if port >= 65535:
            continue
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind((host, port))
                b.bind((host, port + 1))
        except OSError:
            continue
        return port
    raise RuntimeError("no free SIP port for baresip")


def need(*tools: str) -> None:
    import pytest

    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (scripts/setup.sh install --test)")


@dataclass
class GatewayProcess:
    """A running ``voicebot`` on loopback with its own ports and log file."""

    workdir: Path
    sip_port: int = 0
    rtp_port: int = 0
    extra_toml: str = ""
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment variables for the gateway process."""
    proc: subprocess.Popen | None = None
    log_path: Path = field(init=False)
    metrics_port: int | None = None
    """Serve /metrics on this loopback port (None: no metrics port)."""
    llm: str | None = None
    """The bundled LLM ([llm] bundled); None: ``LLM`` (tests/conftest.py sets the small one:
    the default 1.5B takes 10 s longer to warm up, and ~40 gateways start in the suite; a
    test about what the bot answers asks for ``DEFAULT_LLM``; benchmarks get the product's
    default)."""

    def __post_init__(self) -> None:
        self.sip_port = self.sip_port or free_udp_port()
        self.rtp_port = self.rtp_port or 20000 + (self.sip_port % 2000) * 10
        self.log_path = self.workdir / "gateway.log"
        self.turn_dir = self.workdir / "turns"
        self.turn_dir.mkdir(parents=True, exist_ok=True)

    @property
    def uri(self) -> str:
        return f"sip:bot@127.0.0.1:{self.sip_port}"

    def start(self, timeout: float = 180.0) -> GatewayProcess:
        cfg = self.workdir / "voicebot.toml"
        # each test gateway keeps its own journal and, unless a test asks, no metrics port
        # (several gateways on one machine would fight over the default one)
        own = ""
        if "[metrics]" in self.extra_toml:
            pass  # the test's own (``metrics_port`` then only says where to scrape)
        elif self.metrics_port is not None:
            own += f'[metrics]\nlisten_address = "127.0.0.1"\nport = {self.metrics_port}\n'
        else:
            own += "[metrics]\nport = 0\n"
        if "[records]" not in self.extra_toml:
            own += f'[records]\npath = "{self.workdir / "calls.jsonl"}"\n'
        # SIGTERM (stop()) hangs up at once unless a test asks for a graceful drain
        drain = "" if "drain_seconds" in self.extra_toml else "drain_seconds = 0\n"
        extra = self.extra_toml
        llm = LLM if self.llm is None else self.llm
        if llm and "bundled" not in extra:
            model = f'bundled = "{llm}"\n'
            extra = extra.replace("[llm]\n", "[llm]\n" + model, 1) if "[llm]\n" in extra \
                else extra + "\n[llm]\n" + model
        cfg.write_text(
            f'[sip]\nlisten_address = "127.0.0.1"\nport = {self.sip_port}\n'
            f"rtp_port = {self.rtp_port}\n{drain}{extra}\n"
            f'[log]\nlevel = "info"\nturn_audio_dir = "{self.turn_dir}"\n{own}')
        env = dict(os.environ, PYTHONUNBUFFERED="1", **self.env)
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen([*VOICEBOT, "--config", str(cfg)], cwd=ROOT, env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.proc.returncode}:\n{self.log()}")
            if b"voicebot ready" in self.log_path.read_bytes():
                return self
            time.sleep(0.2)
        self.stop()  # a gateway that never got ready must not outlive the test
        raise TimeoutError(f"gateway not ready after {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_bytes().decode("utf-8", "replace")

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def serve(self) -> Iterator[GatewayProcess]:
        """For a module fixture: ``yield from gw.serve()`` starts it, and at teardown stops it
        and checks that it exited 0 without a traceback in its log."""
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        yield self
        code = self.stop()
        assert code == 0, f"gateway exit code {code}:\n{self.log()[-4000:]}"
        assert "Traceback" not in self.log(), self.log()[-4000:]

    def metrics(self) -> dict[tuple[str, tuple], float]:
        """{(sample name, sorted labels): value} scraped from /metrics now."""
        import urllib.request

        from prometheus_client.parser import text_string_to_metric_families

        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            text = r.read().decode()
        return {(x.name, tuple(sorted(x.labels.items()))): x.value
                for f in text_string_to_metric_families(text) for x in f.samples}

    def closed_record(self, sip_call_id: str, timeout: float = 15.0) -> dict:
        """The journal's closed record of the call with this SIP Call-ID (waits for it)."""
        from gateway.calls import records

        deadline = time.monotonic() + timeout
        while True:
            for r in records.read(self.workdir / "calls.jsonl").records():
                if r.get("sip_call_id") == sip_call_id and r["state"] == "closed":
                    return r
            if time.monotonic() > deadline:
                raise AssertionError(f"no closed record of {sip_call_id} after {timeout} s:\n"
                                     f"{self.log()[-3000:]}")
            time.sleep(0.1)


    def closed_records(self, timeout: float = 30.0) -> list[dict]:
        """Every record of the journal, once all of them are closed (waits for it)."""
        return wait_closed(self.workdir / "calls.jsonl", timeout)


def wait_closed(journal: Path, timeout: float = 30.0) -> list[dict]:
    """Wait until no record is open any more; returns the records."""
    from gateway.calls import records

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        recs = records.read(journal).records()
        if recs and all(r["state"] == "closed" for r in recs):
            return recs
        time.sleep(0.3)
    raise TimeoutError(f"records still open: {records.read(journal).records()}")


def answered(journal: Path, turns: int, grace: float = 2.0) -> Callable[[], bool]:
    """For ``baresip_call(until=...)``: true ``grace`` seconds after the journal's open
    call has ``turns`` caller turns whose replies were played out (a turn is journalled
    once its reply's last frame was handed out; the grace lets it reach the caller)."""
    from gateway.calls import records

    since: list[float] = []

    def done() -> bool:
        if not since:
            recs = records.read(journal).records() if journal.exists() else []
            call = recs[-1] if recs and recs[-1]["state"] == "open" else {"turns": []}
            spoken = [t for t in call["turns"] if t.get("caller_text")]
            if len(spoken) < turns:
                return False
            since.append(time.monotonic())
        return time.monotonic() - since[0] >= grace

    return done


# --- audio -----------------------------------------------------------------------------------

def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2"), w.getframerate()


def write_wav(path: Path, pcm: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())


INSTALL_TEST_TOOLS = "scripts/setup.sh install --test"


def require_tools(*names: str) -> None:
    """Stop with the command that installs the test tools when one of ``names`` is missing:
    ``scripts/setup.sh run`` installs only what the gateway needs, and a bench run after it
    must say so instead of ending in a FileNotFoundError traceback."""
    gone = [n for n in names if shutil.which(n) is None]
    if gone:
        raise SystemExit(f"{', '.join(gone)} not found: the benches drive the gateway with the "
                         f"test tools; install them with: {INSTALL_TEST_TOOLS}")


def espeak(text: str, path: Path, rate: int = 16000, voice: str = "en-gb-x-rp",
           wpm: int = 130) -> np.ndarray:
    """Speech from espeak-ng (a different synthesizer than the bot's Piper voice)."""
    require_tools("espeak-ng", "sox")
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(path)],
                   check=True)
    pcm, _ = read_wav(path)
    return pcm


def active_spans(pcm: np.ndarray, rate: int, threshold: float = 500.0, frame_ms: int = 10,
                 min_gap_ms: int = 300) -> list[tuple[float, float]]:
    """(start, end) seconds of the non-silent stretches (frame RMS over ``threshold``)."""
    n = rate * frame_ms // 1000
    frames = pcm[: len(pcm) // n * n].astype(np.float64).reshape(-1, n)
    loud = np.sqrt((frames ** 2).mean(axis=1)) > threshold
    spans: list[list[float]] = []
    for i, on in enumerate(loud):
        if not on:
            continue
        t = i * frame_ms / 1000
        if spans and t - spans[-1][1] <= min_gap_ms / 1000:
            spans[-1][1] = t + frame_ms / 1000
        else:
            spans.append([t, t + frame_ms / 1000])
    return [(a, b) for a, b in spans]


# --- baresip ---------------------------------------------------------------------------------

BARESIP_CONFIG = """\
poll_method\tepoll
sip_listen\t127.0.0.1:{sip_port}
audio_source\taufile,{source}
audio_player\talsa,null
ausrc_srate\t{rate}
auplay_srate\t{rate}
ausrc_channels\t1
auplay_channels\t1
snd_path\t{rec_dir}
net_interface\t127.0.0.1
rtp_ports\t{rtp_lo}-{rtp_hi}
module_path\t/usr/lib/baresip/modules
{codec_modules}
module\taufile.so
module\talsa.so
module\tsndfile.so
module_app\taccount.so
module_app\tmenu.so
"""


@dataclass
class CallResult:
    heard: np.ndarray
    """What the caller received (decoded), at ``rate``."""
    sent: np.ndarray
    """What the caller sent (before encoding), at ``rate``; same time origin as ``heard``."""
    rate: int
    log: str


def baresip_call(workdir: Path, target: str, source: np.ndarray, rate: int = 16000,
                 codecs: tuple[str, ...] = ("g722",), seconds: float | None = None,
                 until: Callable[[], bool] | None = None, user: str = "caller") -> CallResult:
    """Dial ``target`` with baresip, play ``source`` as the microphone, record both ways.

    G.722 runs at 16 kHz end to end; for G.711 pass rate=8000 (baresip's own resampler would
    otherwise cut the band above ~1.5 kHz and ruin speech recognition).

    ``until``: polled while the call lasts; once it is true the caller hangs up (SIGTERM:
    baresip sends BYE and closes its recordings) instead of waiting out the source's silence.
    A call the other side ends is left at once too. ``user``: the caller's From user part.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    rec = workdir / "rec"
    shutil.rmtree(rec, ignore_errors=True)
    rec.mkdir()
    src = workdir / "source.wav"
    write_wav(src, source, rate)
    sip_port = free_baresip_port()
    rtp_lo = 30000 + (sip_port % 1000) * 20
    (workdir / "config").write_text(BARESIP_CONFIG.format(
        sip_port=sip_port, source=src, rate=rate, rec_dir=rec, rtp_lo=rtp_lo,
        rtp_hi=rtp_lo + 19, codec_modules="\n".join(f"module\t{c}.so" for c in codecs)))
    (workdir / "accounts").write_text(f"<sip:{user}@127.0.0.1>;regint=0\n")
    duration = seconds if seconds is not None else len(source) / rate + 1.0
    log_path = workdir / "baresip.log"
    # line-buffered, so that the call's end shows in the log while baresip still runs
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            ["stdbuf", "-oL", "baresip", "-f", str(workdir), "-e", f"/dial {target}",
             "-t", str(int(duration) + 1)], stdout=out, stderr=subprocess.STDOUT)
    end = time.monotonic() + duration + 30
    # the other side hung up: nothing more to hear, so do not wait out the source
    while (proc.poll() is None and time.monotonic() < end
           and b"session closed" not in log_path.read_bytes()
           and not (until is not None and until())):
        time.sleep(0.2)
    for _ in range(2):  # a second SIGTERM quits at once (a BYE to a dead peer waits)
        if proc.poll() is None:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    log = log_path.read_bytes().decode("utf-8", "replace")
    dec = sorted(rec.glob("*-dec.wav"))
    enc = sorted(rec.glob("*-enc.wav"))
    if not dec or not enc:
        raise RuntimeError(f"baresip recorded nothing (call failed?):\n{log[-3000:]}")
    heard, hr = read_wav(dec[-1])
    sent, sr = read_wav(enc[-1])
    assert hr == sr
    return CallResult(heard, sent, hr, log)
