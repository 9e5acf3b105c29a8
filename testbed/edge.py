"""The edge's test bench (edge/run.sh: Kamailio + rtpengine on loopback): the port plan, the
processes a test starts (the edge, stand-in and real gateway workers, baresip callers, sipp),
what a caller heard, and rtpengine's control protocol.

Port plan (shared machine): SIP 5080-5099 (per address: callers use 127.0.0.2), rtpengine ng
22222-22230, media 42000-44999, the real workers' /metrics 19460-19499.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
import wave
from pathlib import Path

import pytest

from testbed.harness import SMALL_LLM

REPO = Path(__file__).resolve().parents[1]


EDGE_RUN = REPO / "edge" / "run.sh"


KAMAILIO_CFG = REPO / "edge" / "kamailio.cfg"


BINARIES = ("kamailio", "rtpengine", "baresip", "sipp")


MISSING = [b for b in BINARIES if shutil.which(b) is None]


HAVE_TLS_MODULE = any(
    Path(d, "tls.so").exists()
    for d in ("/usr/lib/x86_64-linux-gnu/kamailio/modules", "/usr/lib/kamailio/modules")
)


BARESIP_MODULES = Path("/usr/lib/baresip/modules")


SIP_PORTS = range(5080, 5100)


NG_PORTS = range(22222, 22231)


CALLER_IP = "127.0.0.2"  # legitimate callers; the flooder uses 127.0.0.1


PROBE_IP = "127.0.0.3"  # readiness probes, so they never count against a caller's pike


# (ip, port) and media ports held by module-scoped processes (the real workers), never handed
# out again
RESERVED_SIP: set[tuple[str, int]] = set()
RESERVED_MEDIA: set[int] = set()

def _bindable(ip: str, port: int, kinds=(socket.SOCK_DGRAM, socket.SOCK_STREAM)) -> bool:
    for kind in kinds:
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((ip, port))
        except OSError:
            return False
        finally:
            s.close()
    return True


class Ports:
    """Hands out currently free ports from the project's plan; never twice per test.

    SIP ports are per address (callers on 127.0.0.2 may reuse a number the edge has on
    127.0.0.1); media ports are all checked on 127.0.0.1, where rtpengine and workers bind.
    """

    def __init__(self) -> None:
        self.taken: set[tuple[str, int]] = set(RESERVED_SIP)
        self.media_taken: set[int] = set(RESERVED_MEDIA)

    def sip(self, ip: str = "127.0.0.1") -> int:
        for p in SIP_PORTS:
            if (ip, p) not in self.taken and _bindable(ip, p):
                self.taken.add((ip, p))
                return p
        pytest.skip("no free SIP port in 5080-5099 (someone else is testing?)")

    def sip_pair(self, ip: str = "127.0.0.1") -> int:
        """P with P+1 also free: baresip listens SIP/UDP+TCP on P and SIP/TLS on P+1;
        `voicebot workers -n 2` listens on P and P+1."""
        for p in SIP_PORTS[:-1]:
            if (
                not {(ip, p), (ip, p + 1)} & self.taken
                and _bindable(ip, p)
                and _bindable(ip, p + 1)
            ):
                self.taken |= {(ip, p), (ip, p + 1)}
                return p
        pytest.skip("no two free consecutive SIP ports in 5080-5099")

    def ng(self) -> int:
        for p in NG_PORTS:
            if ("ng", p) not in self.taken and _bindable("127.0.0.1", p, (socket.SOCK_DGRAM,)):
                self.taken.add(("ng", p))
                return p
        pytest.skip("no free rtpengine ng port in 22222-22230")

    def media(self, size: int) -> tuple[int, int]:
        """A block of even-aligned RTP ports in 42000-44999 whose edges are free."""
        for start in range(42000, 45000 - size, 100):
            block = set(range(start, start + size))
            if block & self.media_taken:
                continue
            if all(_bindable("127.0.0.1", p, (socket.SOCK_DGRAM,)) for p in (start, start + 2)):
                self.media_taken |= block
                return start, start + size - 1
        pytest.skip("no free media port block in 42000-44999")


class Proc:
    """A child process in its own session, killed (whole group) in teardown."""

    def __init__(self, argv: list[str], log: Path, cwd: Path | None = None, env=None):
        self.argv, self.log = argv, log
        self._fh = open(log, "wb")  # noqa: SIM115 (lives as long as the process)
        self.p = subprocess.Popen(
            argv,
            cwd=cwd,
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )

    def alive(self) -> bool:
        return self.p.poll() is None

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, sig=signal.SIGTERM, timeout: float = 8.0) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.p.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.p.wait(timeout)
        # whatever is left in the group (daemon children) goes too
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.p.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.p.wait(3)
        self._fh.close()


def wait_for(cond, timeout: float, what: str, step: float = 0.1):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def sip_options(
    ip: str, port: int, ua: str = "edge-test", src_ip: str = PROBE_IP, timeout: float = 1.0
) -> str | None:
    """Send one OPTIONS over UDP; return the first reply's status line or None."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src_ip, 0))
    s.settimeout(timeout)
    lport = s.getsockname()[1]
    branch = "z9hG4bK" + uuid.uuid4().hex[:16]
    msg = (
        f"OPTIONS sip:{ip}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {src_ip}:{lport};branch={branch};rport\r\n"
        f"Max-Forwards: 70\r\nTo: <sip:{ip}:{port}>\r\n"
        f"From: <sip:probe@{src_ip}>;tag={uuid.uuid4().hex[:8]}\r\n"
        f"Call-ID: {uuid.uuid4().hex}@{src_ip}\r\nCSeq: 1 OPTIONS\r\n"
        f"Contact: <sip:probe@{src_ip}:{lport}>\r\nUser-Agent: {ua}\r\n"
        "Accept: application/sdp\r\nContent-Length: 0\r\n\r\n"
    )
    try:
        s.sendto(msg.encode(), (ip, port))
        data, _ = s.recvfrom(4096)
        return data.decode(errors="replace").split("\r\n", 1)[0]
    except (TimeoutError, OSError):
        return None
    finally:
        s.close()


def write_test_wav(path: Path, seconds: float = 5.0, rate: int = 48000) -> None:
    """Speech-like test signal: a few harmonics gliding in pitch, syllable-rate AM."""
    import numpy as np

    t = np.arange(int(seconds * rate)) / rate
    f0 = 140 + 40 * np.sin(2 * math.pi * 0.7 * t)
    phase = 2 * math.pi * np.cumsum(f0) / rate
    sig = sum((0.5 / k) * np.sin(k * phase) for k in (1, 2, 3, 5, 7))
    env = 0.55 + 0.45 * np.sin(2 * math.pi * 3.0 * t)
    pcm = (0.35 * 32767 * sig * env / np.max(np.abs(sig))).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def wav_rms(path: Path, skip_s: float = 0.0) -> tuple[float, float]:
    """(RMS in dBFS after skip_s, duration s) of a 16-bit WAV."""
    import numpy as np

    with wave.open(str(path), "rb") as w:
        rate, n = w.getframerate(), w.getnframes()
        x = np.frombuffer(w.readframes(n), dtype="<i2").astype(np.float64)
        x = x.reshape(-1, w.getnchannels())[:, 0]
    x = x[int(skip_s * rate) :]
    if not len(x):
        return -200.0, n / rate
    rms = math.sqrt(float(np.mean(x * x))) / 32768.0
    return 20 * math.log10(max(rms, 1e-10)), n / rate


class Edge:
    def __init__(self, proc: Proc, state: Path, ip: str, udp: int, tls: int, ng: int):
        self.proc, self.state, self.ip, self.udp, self.tls, self.ng = proc, state, ip, udp, tls, ng

    @property
    def cert(self) -> Path:
        return self.state / "tls" / "edge.crt"

    def log(self) -> str:
        return self.proc.text()

    def dispatcher_flags(self) -> dict[str, str]:
        """{'sip:ip:port': 'AP'|'IP'|...} from Kamailio's RPC (what it will select)."""
        out = subprocess.run(
            ["kamcmd", "-s", f"unix:{self.state}/run/kamailio.ctl", "dispatcher.list"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout
        return dict(re.findall(r"URI: (\S+)\s+FLAGS: (\S+)", out))

    def rtpengine_pid(self) -> int:
        return int((self.state / "run" / "rtpengine.pid").read_text().strip())


WORKER_SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="stand-in gateway worker: 200 to OPTIONS; INVITE answered PCMU; RTP echoed">
  <recv request="OPTIONS" optional="true" next="options"/>
  <recv request="INVITE" crlf="true"/>
  <send><![CDATA[

      SIP/2.0 180 Ringing
      [last_Via:]
      [last_Record-Route:]
      [last_From:]
      [last_To:];tag=[pid]w[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:worker@[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0

    ]]></send>
  <send retrans="500"><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_Record-Route:]
      [last_From:]
      [last_To:];tag=[pid]w[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:worker@[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=worker 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=ptime:20

    ]]></send>
  <recv request="ACK" crlf="true"/>
  <recv request="BYE"/>
  <send><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]></send>
  <nop next="end"/>
  <label id="options"/>
  <send><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]o[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]></send>
  <label id="end"/>
</scenario>
"""


UAC_SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="caller through a record-routing proxy (sipp's built-in uac ignores Route)">
  <send retrans="500"><![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 8 0
      a=rtpmap:8 PCMA/8000
      a=rtpmap:0 PCMU/8000

    ]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true" rrs="true"/>
  <send><![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]></send>
  <pause/>
  <send retrans="500"><![CDATA[

      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0

    ]]></send>
  <recv response="200" crlf="true"/>
</scenario>
"""


def sipp_uac(
    edge,
    ports,
    workdir: Path,
    src_ip: str,
    calls: int,
    rate: float,
    hold_ms: int = 0,
    extra=(),
    timeout: float = 40,
) -> tuple[str, int]:
    """Run `calls` calls through the edge with sipp; return (screen, successful calls)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "uac.xml").write_text(UAC_SCENARIO)
    p = ports.sip(src_ip)
    mp, _ = ports.media(10)
    r = subprocess.run(
        [
            "sipp",
            "-sf",
            "uac.xml",
            f"{edge.ip}:{edge.udp}",
            "-s",
            "bot",
            "-i",
            src_ip,
            "-p",
            str(p),
            "-mp",
            str(mp),
            "-m",
            str(calls),
            "-l",
            str(calls),
            "-r",
            str(rate),
            "-d",
            str(hold_ms),
            "-nostdin",
            "-trace_err",
            "-error_file",
            "errors.log",
            *extra,
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    m = re.search(r"Successful call\s*\|\s*\d+\s*\|\s*(\d+)", r.stdout)
    return r.stdout, int(m.group(1)) if m else -1


def _sip_messages(text: str, method: str) -> list[str]:
    """Received SIP requests of `method` in a sipp -trace_msg log."""
    blocks = re.split(r"\n-{20,}[^\n]*\n", text)
    return [
        b.strip()
        for b in blocks
        if re.search(rf"^\s*{method} sip:", b, re.M) and "message received" in b
    ]


class SippWorker:
    """Stand-in for one gateway worker (see module docstring)."""

    kind = "sipp"

    def __init__(self, procs, ports: Ports, workdir: Path, ip: str = "127.0.0.1"):
        workdir.mkdir(parents=True, exist_ok=True)
        self.ip, self.port = ip, ports.sip(ip)
        media, _ = ports.media(10)
        (workdir / "worker.xml").write_text(WORKER_SCENARIO)
        self.msgs = workdir / "messages.log"
        self.proc = procs(
            [
                "sipp",
                "-sf",
                workdir / "worker.xml",
                "-i",
                ip,
                "-p",
                self.port,
                "-mi",
                ip,
                "-mp",
                media,
                "-rtp_echo",
                "-trace_msg",
                "-message_file",
                self.msgs,
                "-nostdin",
                "-max_recv_loops",
                "10000",
            ],
            workdir / "sipp.out",
            cwd=workdir,
        )
        wait_for(lambda: self.msgs.exists() or not self.proc.alive(), 5, "sipp worker")
        assert self.proc.alive(), self.proc.text()

    def invites(self) -> list[str] | None:
        """INVITEs this worker received (with their SDP), or None if unknowable."""
        if not self.msgs.exists():
            return []
        return _sip_messages(self.msgs.read_text(errors="replace"), "INVITE")

    def call_ids(self) -> set[str]:
        return {
            m.group(1).strip()
            for inv in self.invites()
            if (m := re.search(r"^Call-ID:\s*(\S+)", inv, re.M | re.I))
        }

    def kill(self) -> None:
        self.proc.stop(signal.SIGKILL)


class VoicebotWorker:
    """The real gateway as a worker: `voicebot --config FILE`, SIP on UDP [sip] port.

    Keys from config/voicebot.toml; everything else keeps its default. The gateway's own
    message log is not parsed, so invites() returns None (SDP checks are skipped).
    """

    kind = "voicebot"
    BIN = REPO / ".venv" / "bin" / "voicebot"

    def __init__(self, procs, ports: Ports, workdir: Path, ip: str = "127.0.0.1"):
        workdir.mkdir(parents=True, exist_ok=True)
        self.ip, self.port = ip, ports.sip(ip)
        cfg = workdir / "voicebot.toml"
        rtp, _ = ports.media(200)
        cfg.write_text(f'[sip]\nlisten_address = "{ip}"\nport = {self.port}\nrtp_port = {rtp}\n')
        self.proc = procs([self.BIN, "--config", cfg], workdir / "voicebot.log", cwd=workdir)
        wait_for(
            lambda: (
                (sip_options(ip, self.port) or "").startswith("SIP/2.0 200")
                or not self.proc.alive()
            ),
            60,
            "voicebot to answer OPTIONS",
        )
        assert self.proc.alive(), self.proc.text()[-3000:]

    def invites(self):
        return None

    def call_ids(self):
        return None

    def kill(self) -> None:
        self.proc.stop(signal.SIGKILL)


class RealWorkers:
    """`voicebot workers -n 2`: the real gateway (two pjsua2 processes, 4 call slots each,
    their own models) under its supervisor, exactly as edge/README.md tells a user to run it.

    Which worker took a call: each worker's call journal (calls-w<i>.jsonl; the `open` line is
    fsynced before the 200 OK) with the caller's From URI and SIP Call-ID, and its /metrics
    ([metrics] port + i).
    """

    N = 2
    BIN = REPO / ".venv" / "bin" / "voicebot"

    def __init__(self, workdir: Path, ports: Ports):
        self.dir = workdir
        self.ip = "127.0.0.1"
        self.base = ports.sip_pair(self.ip)
        rtp, _ = ports.media(RealWorkers.N * 200)  # worker i: rtp_port + 200 * i
        self.rtp = range(rtp, rtp + RealWorkers.N * 200)
        self.metrics_base = _free_tcp_pair(range(19460, 19500))
        RESERVED_SIP.update((self.ip, self.base + i) for i in range(self.N))
        RESERVED_MEDIA.update(self.rtp)
        cfg = workdir / "voicebot.toml"
        cfg.write_text(
            f'[sip]\nlisten_address = "{self.ip}"\nrtp_port = {rtp}\ndrain_seconds = 0\n'
            f'[metrics]\nlisten_address = "127.0.0.1"\nport = {self.metrics_base}\n'
            f'[records]\npath = "{workdir / "calls.jsonl"}"\n'
            # one thread each: llama.cpp's and CTranslate2's worker threads spin-wait; two
            # workers x 2 threads on the busy 2-core box had not warmed up after 4.5 min,
            # with 1 thread they took 47 s (load ~8)
            # the small model: with the 1.5B, the killed worker's restart (loading it) starved
            # the survivor, whose answer then came 54 s after the question
            f'[llm]\nthreads = 1\nbundled = "{SMALL_LLM}"\n[stt]\nthreads = 1\n'
            '[log]\nlevel = "info"\n'
        )
        self.proc = Proc(
            [str(self.BIN), "workers", "-n", str(self.N), "--base-port", str(self.base),
             "--config", str(cfg)],
            workdir / "workers.log",
            cwd=REPO,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        self.t_start = time.monotonic()

    @property
    def hostports(self) -> list[tuple[str, int]]:
        return [(self.ip, self.base + i) for i in range(self.N)]

    def uri(self, i: int) -> str:
        return f"sip:{self.ip}:{self.base + i}"

    def log(self) -> str:
        return self.proc.text()

    def pid(self, i: int) -> int:
        pids = re.findall(rf"worker {i} started \(pid (\d+)", self.log())
        assert pids, self.log()[-2000:]
        return int(pids[-1])

    def ready(self, i: int) -> bool:
        log = self.log()
        started = len(re.findall(rf"worker {i} started \(pid", log))
        return started > 0 and len(re.findall(rf"worker {i} ready on udp", log)) >= started

    def wait_ready(self, timeout: float) -> None:
        def up():
            if not self.proc.alive():
                pytest.fail("voicebot workers died:\n" + self.log()[-3000:])
            return all(self.ready(i) for i in range(self.N))

        try:
            wait_for(up, timeout, "voicebot workers ready", step=0.5)
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.log()[-3000:]}") from None

    def journal(self, i: int) -> Path:
        return self.dir / f"calls-w{i}.jsonl"

    def records(self, i: int) -> list[dict]:
        from gateway.calls import records

        return records.read(self.journal(i)).records()

    def find(self, user: str) -> tuple[int, dict] | None:
        """(worker index, call record) of the latest call from sip:USER@..., or None."""
        for i in range(self.N):
            for rec in reversed(self.records(i)):
                if f"sip:{user}@" in rec.get("remote_uri", ""):
                    return i, rec
        return None

    def metrics(self, i: int) -> dict[str, float]:
        """`name{labels}` -> value from worker i's /metrics."""
        import urllib.request

        url = f"http://127.0.0.1:{self.metrics_base + i}/metrics"
        with urllib.request.urlopen(url, timeout=3) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, rest = line.partition(" ")
                with contextlib.suppress(ValueError):
                    out[key] = float(rest.split()[0])
        return out

    def kill(self, i: int) -> int:
        pid = self.pid(i)
        os.kill(pid, signal.SIGKILL)
        return pid

    def stop(self) -> None:
        self.proc.stop(timeout=20)
        RESERVED_SIP.difference_update((self.ip, self.base + i) for i in range(self.N))
        RESERVED_MEDIA.difference_update(self.rtp)


def _free_tcp_pair(candidates: range) -> int:
    for p in candidates[:-1]:
        if _bindable("127.0.0.1", p, (socket.SOCK_STREAM,)) and _bindable(
            "127.0.0.1", p + 1, (socket.SOCK_STREAM,)
        ):
            return p
    pytest.skip(f"no two free TCP ports in {candidates} for the workers' /metrics")


def real_workers_available() -> str | None:
    if MISSING or not HAVE_TLS_MODULE:
        return f"missing binaries {MISSING} or kamailio-tls-modules"
    if not RealWorkers.BIN.exists():
        return f"{RealWorkers.BIN} not installed (scripts/setup.sh)"
    return None


QUESTION = "What time do you open in the morning?"


def caller_wav(path: Path, rate: int, lead_s: float, speech=None, tail_s: float = 0.0) -> Path:
    """Silence for lead_s (the bot's greeting is heard alone: nothing to echo), then
    `speech` (int16 PCM at `rate`), then tail_s of silence (the bot's answer)."""
    import numpy as np

    from testbed.harness import write_wav

    parts = [np.zeros(int(lead_s * rate), np.int16)]
    if speech is not None:
        parts += [speech.astype(np.int16), np.zeros(int(tail_s * rate), np.int16)]
    write_wav(path, np.concatenate(parts), rate)
    return path


def heard(caller: Baresip):
    """(PCM, rate) of what a baresip caller heard (its decoder-side recording)."""
    from testbed.harness import read_wav

    return read_wav(caller.recording("dec"))


def speech_in(pcm, rate: int, t0: float = 0.0, t1: float | None = None) -> tuple[float, float]:
    """(seconds of sound, its RMS in dBFS) in pcm[t0:t1]: the 10 ms frames louder than
    -36 dBFS (harness.active_spans), so long silences around a greeting do not dilute it."""
    import numpy as np

    from testbed.harness import active_spans

    x = pcm[int(max(t0, 0) * rate) : None if t1 is None else int(t1 * rate)]
    spans = active_spans(x, rate, min_gap_ms=0)
    if not spans:
        return 0.0, -200.0
    loud = np.concatenate([x[int(a * rate) : int(b * rate)] for a, b in spans])
    loud = loud.astype(np.float64)
    db = 20 * math.log10(max(math.sqrt(float(np.mean(loud * loud))) / 32768.0, 1e-10))
    return sum(b - a for a, b in spans), db


def window_db(pcm, rate: int, t0: float, t1: float | None = None) -> float:
    """RMS in dBFS of pcm[t0:t1] (seconds)."""
    import numpy as np

    x = pcm[int(max(t0, 0) * rate) : None if t1 is None else int(t1 * rate)].astype(np.float64)
    if not len(x):
        return -200.0
    return 20 * math.log10(max(math.sqrt(float(np.mean(x * x))) / 32768.0, 1e-10))


class Baresip:
    """One baresip softphone that dials one call, plays a WAV and records what it hears."""

    def __init__(
        self,
        procs,
        ports: Ports,
        workdir: Path,
        wav: Path,
        *,
        codecs=("opus",),
        ip: str = CALLER_IP,
        tls_ca: Path | None = None,
        srtp: bool = False,
        user: str = "caller",
        rate: int = 48000,
    ):
        """`rate`: the WAV's sample rate = baresip's source and player rate (16000 for
        G.722 callers, so baresip's resampler does not touch the speech); `user`: the From
        user, which the gateway's call record keeps (remote_uri), to tell calls apart."""
        workdir.mkdir(parents=True, exist_ok=True)
        self.dir, self.procs, self.ip, self.user = workdir, procs, ip, user
        self.rec = workdir / "rec"
        self.rec.mkdir(exist_ok=True)
        sip_port = ports.sip_pair(ip)
        rmin, rmax = ports.media(50)
        mods = {"opus": "opus.so", "g722": "g722.so", "g711": "g711.so"}
        lines = [
            "poll_method epoll",
            f"sip_listen {ip}:{sip_port}",
            f"net_interface {ip}",
            f"audio_source aufile,{wav}",
            # ALSA's "null" PCM needs no sound card: the call runs, nothing is played
            "audio_player alsa,null",
            "audio_alert alsa,null",
            f"ausrc_srate {rate}",
            f"auplay_srate {rate}",
            "ausrc_channels 1",
            "auplay_channels 1",
            f"rtp_ports {rmin}-{rmax}",
            f"module_path {BARESIP_MODULES}",
            "module stdio.so",
            "module aufile.so",
            "module alsa.so",
            "module sndfile.so",
            *[f"module {mods[c]}" for c in codecs],
            "module_app account.so",
            "module_app menu.so",
            f"snd_path {self.rec}",
            "opus_stereo no",
            "opus_sprop_stereo no",
        ]
        if srtp:
            lines.append("module srtp.so")
        if tls_ca:
            lines.append(f"sip_cafile {tls_ca}")
        (workdir / "config").write_text("\n".join(lines) + "\n")
        params = ";regint=0"
        uri = f"sip:{user}@{ip}"
        if tls_ca:
            uri += ";transport=tls"
        if srtp:
            params += ";mediaenc=srtp-mand"
        (workdir / "accounts").write_text(f"<{uri}>{params}\n")
        self.proc: Proc | None = None

    def dial(self, target: str) -> Baresip:
        self.proc = self.procs(
            ["baresip", "-f", self.dir, "-e", f"/dial {target}"], self.dir / "baresip.log"
        )
        return self

    def log(self) -> str:
        return self.proc.text() if self.proc else ""

    def established(self) -> bool:
        return "Call established" in self.log()

    def ended(self) -> bool:
        return bool(re.search(r"terminated \(duration|Call failed|session closed", self.log()))

    def wait_done(self, timeout: float = 25) -> str:
        """Wait for the call to end (the WAV runs out and baresip hangs up), then quit."""
        wait_for(lambda: self.ended() or not self.proc.alive(), timeout, "baresip call end")
        time.sleep(0.3)
        self.proc.stop()
        return self.log()

    def recording(self, which: str = "dec") -> Path:
        files = sorted(self.rec.glob(f"*-{which}.wav"))
        assert files, f"baresip recorded no {which} audio; log:\n{self.log()[-2000:]}"
        return files[-1]


def _bencode(v) -> bytes:
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, str):
        v = v.encode()
    if isinstance(v, bytes):
        return b"%d:%s" % (len(v), v)
    if isinstance(v, list):
        return b"l" + b"".join(_bencode(x) for x in v) + b"e"
    if isinstance(v, dict):
        return b"d" + b"".join(_bencode(k) + _bencode(v[k]) for k in sorted(v)) + b"e"
    raise TypeError(type(v))


def _bdecode(b: bytes, i: int = 0):
    c = b[i : i + 1]
    if c == b"i":
        j = b.index(b"e", i)
        return int(b[i + 1 : j]), j + 1
    if c in (b"l", b"d"):
        i += 1
        items = []
        while b[i : i + 1] != b"e":
            x, i = _bdecode(b, i)
            items.append(x)
        if c == b"l":
            return items, i + 1
        return dict(zip(items[::2], items[1::2], strict=True)), i + 1
    j = b.index(b":", i)
    n = int(b[i:j])
    return b[j + 1 : j + 1 + n].decode(errors="replace"), j + 1 + n


def rtpengine_ng(port: int, command: dict, timeout: float = 2.0) -> dict:
    """One ng-protocol request to rtpengine on 127.0.0.1:port; the decoded reply."""
    cookie = uuid.uuid4().hex[:12].encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(cookie + b" " + _bencode(command), ("127.0.0.1", port))
        while True:
            data = s.recv(65535)
            if data.startswith(cookie + b" "):
                return _bdecode(data[len(cookie) + 1 :])[0]


def rtp_received(edge, call_id: str, worker_rtp: range) -> tuple[int, int]:
    """(RTP packets rtpengine received from the caller, from the worker) in this call so far,
    from rtpengine's own per-stream counters (ng `query`). The worker's leg is the one
    whose endpoint port is in `worker_rtp`."""
    r = rtpengine_ng(edge.ng, {"command": "query", "call-id": call_id})
    assert r.get("result") == "ok", r
    caller = worker = 0
    for tag in r["tags"].values():
        for media in tag.get("medias", []):
            for st in media.get("streams", []):
                if st.get("local port", 1) % 2:  # RTCP
                    continue
                n = int(st.get("stats", {}).get("packets", 0))
                if int(st.get("endpoint", {}).get("port", 0)) in worker_rtp:
                    worker += n
                else:
                    caller += n
    return caller, worker


def sdp_media(invite: str) -> tuple[str, list[str], list[str]]:
    """(m= line, rtpmap encodings, crypto lines) of an INVITE's SDP."""
    m = re.search(r"^m=audio .*$", invite, re.M)
    return (
        m.group(0) if m else "",
        re.findall(r"^a=rtpmap:\d+ ([^/\s]+)", invite, re.M),
        re.findall(r"^a=crypto:.*$", invite, re.M),
    )


def cpu_seconds(pid: int) -> float:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
