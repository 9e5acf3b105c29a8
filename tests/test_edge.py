"""End-to-end tests of the edge (edge/run.sh: Kamailio + rtpengine) on loopback.

Real components only: Kamailio 5.6, rtpengine (userspace), baresip as the caller, and a
stand-in gateway worker. The stand-in is `sipp` running WORKER_SCENARIO: it answers
OPTIONS with 200 (so dispatcher probing sees it), answers INVITE with PCMU and echoes
every RTP packet back, and logs every SIP message it sees (so a test can read the SDP the
worker was offered). To run the same tests against the real gateway, set
EDGE_TEST_WORKER=voicebot (see `VoicebotWorker`): checks that need the worker's message
log are then skipped, the audio checks stay.

Port plan (shared machine): SIP 5080-5099, rtpengine ng 22222-22230, media 42000-44999.
Every process started here is killed in teardown; each test is bounded in time.
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

needs_binaries = pytest.mark.skipif(
    bool(MISSING) or not HAVE_TLS_MODULE,
    reason=f"missing binaries {MISSING} or kamailio-tls-modules "
    "(apt-get install kamailio kamailio-tls-modules rtpengine-daemon baresip-core sip-tester)",
)

SIP_PORTS = range(5080, 5100)
NG_PORTS = range(22222, 22231)
CALLER_IP = "127.0.0.2"  # legitimate callers; the flooder uses 127.0.0.1
PROBE_IP = "127.0.0.3"  # readiness probes, so they never count against a caller's pike


# ---------------------------------------------------------------------------- ports


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
    """Hands out currently free ports from the project's plan; never twice per test."""

    def __init__(self) -> None:
        self.taken: set[int] = set()

    def sip(self, ip: str = "127.0.0.1") -> int:
        for p in SIP_PORTS:
            if p not in self.taken and _bindable(ip, p):
                self.taken.add(p)
                return p
        pytest.skip("no free SIP port in 5080-5099 (someone else is testing?)")

    def sip_pair(self, ip: str = "127.0.0.1") -> int:
        """P with P+1 also free: baresip listens SIP/UDP+TCP on P and SIP/TLS on P+1."""
        for p in SIP_PORTS[:-1]:
            if not {p, p + 1} & self.taken and _bindable(ip, p) and _bindable(ip, p + 1):
                self.taken |= {p, p + 1}
                return p
        pytest.skip("no two free consecutive SIP ports in 5080-5099")

    def ng(self) -> int:
        for p in NG_PORTS:
            if p not in self.taken and _bindable("127.0.0.1", p, (socket.SOCK_DGRAM,)):
                self.taken.add(p)
                return p
        pytest.skip("no free rtpengine ng port in 22222-22230")

    def media(self, size: int) -> tuple[int, int]:
        """A block of even-aligned RTP ports in 42000-44999 whose edges are free."""
        for start in range(42000, 45000 - size, 100):
            block = set(range(start, start + size))
            if block & self.taken:
                continue
            if all(_bindable("127.0.0.1", p, (socket.SOCK_DGRAM,)) for p in (start, start + 2)):
                self.taken |= block
                return start, start + size - 1
        pytest.skip("no free media port block in 42000-44999")


@pytest.fixture
def ports() -> Ports:
    return Ports()


# ---------------------------------------------------------------------------- processes


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


@pytest.fixture
def procs():
    started: list[Proc] = []

    def start(argv, log, **kw) -> Proc:
        pr = Proc([str(a) for a in argv], log, **kw)
        started.append(pr)
        return pr

    yield start
    for pr in reversed(started):
        pr.stop()


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


# ---------------------------------------------------------------------------- audio


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


@pytest.fixture(scope="session")
def test_wav(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("audio") / "caller48k.wav"
    write_test_wav(p)
    return p


# ---------------------------------------------------------------------------- edge


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


@pytest.fixture
def edge_factory(procs, ports, tmp_path):
    def start(
        workers: list[tuple[str, int]],
        *,
        ping_interval=1,
        fr_timer=1000,
        pike_density=100,
        pike_unit=2,
        pike_latency=10,
        log_level=2,
    ) -> Edge:
        ip = "127.0.0.1"
        udp, tls, ng = ports.sip(ip), ports.sip(ip), ports.ng()
        mmin, mmax = ports.media(400)
        state = tmp_path / "edge"
        argv = [
            "bash",
            EDGE_RUN,
            "--state",
            state,
            "--ip",
            ip,
            "--udp-port",
            udp,
            "--tls-port",
            tls,
            "--ng-port",
            ng,
            "--media-min",
            mmin,
            "--media-max",
            mmax,
            "--worker-list",
            ",".join(f"{h}:{p}" for h, p in workers),
            "--ping-interval",
            ping_interval,
            "--fr-timer",
            fr_timer,
            "--pike-density",
            pike_density,
            "--pike-unit",
            pike_unit,
            "--pike-latency",
            pike_latency,
            "--log-level",
            log_level,
        ]
        pr = procs(argv, tmp_path / "edge.log")
        wait_for(
            lambda: (
                (sip_options(ip, udp) or "").startswith("SIP/2.0 200")
                or (not pr.alive() and pytest.fail("edge died:\n" + pr.text()[-3000:]))
            ),
            20,
            "the edge to answer OPTIONS",
        )
        return Edge(pr, state, ip, udp, tls, ng)

    return start


# ---------------------------------------------------------------------------- workers

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


@pytest.fixture
def worker_factory(procs, ports, tmp_path):
    """Start a gateway worker; EDGE_TEST_WORKER=voicebot swaps in the real gateway."""
    kind = os.environ.get("EDGE_TEST_WORKER", "sipp")
    cls = {"sipp": SippWorker, "voicebot": VoicebotWorker}[kind]
    if kind == "voicebot" and not VoicebotWorker.BIN.exists():
        pytest.skip(f"{VoicebotWorker.BIN} not installed")
    n = 0

    def start():
        nonlocal n
        n += 1
        return cls(procs, ports, tmp_path / f"worker{n}")

    return start


# ---------------------------------------------------------------------------- callers


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
    ):
        workdir.mkdir(parents=True, exist_ok=True)
        self.dir, self.procs, self.ip = workdir, procs, ip
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
            "ausrc_srate 48000",
            "auplay_srate 48000",
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
        uri = f"sip:caller@{ip}"
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


@pytest.fixture
def caller_factory(procs, ports, tmp_path, test_wav):
    n = 0

    def make(**kw) -> Baresip:
        nonlocal n
        n += 1
        return Baresip(procs, ports, tmp_path / f"caller{n}", test_wav, **kw)

    return make


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


# ============================================================================ tests


def test_kamailio_cfg_parses(tmp_path):
    """`kamailio -c` accepts the config with the defines run.sh passes."""
    if shutil.which("kamailio") is None or not HAVE_TLS_MODULE:
        pytest.skip("kamailio / kamailio-tls-modules not installed")
    r = subprocess.run(
        [
            "kamailio",
            "-c",
            "-f",
            KAMAILIO_CFG,
            "-A",
            "UDP_PORT=5098",
            "-A",
            "TLS_PORT=5099",
            "-A",
            f'DS_LIST="{tmp_path}/ds.list"',
            "-A",
            f'CTL_SOCK="unix:{tmp_path}/ctl"',
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert r.returncode == 0, r.stderr[-3000:]


def test_run_sh_rejects_bad_option():
    r = subprocess.run(
        ["bash", EDGE_RUN, "--workers", "two"], capture_output=True, text=True, timeout=10
    )
    assert r.returncode == 2 and "--workers must be a number" in r.stderr


@needs_binaries
def test_opus_only_caller_transcoded_to_worker(edge_factory, worker_factory, caller_factory):
    """baresip offering only Opus reaches a worker that is offered only G.722/G.711,
    and audio flows both ways (the worker echoes what it receives)."""
    w = worker_factory()
    edge = edge_factory([(w.ip, w.port)])
    rtpe_pid = edge.rtpengine_pid()
    cpu0, t0 = cpu_seconds(rtpe_pid), time.monotonic()

    caller = caller_factory(codecs=("opus",)).dial(f"sip:bot@{edge.ip}:{edge.udp}")
    wait_for(caller.established, 10, "call established\n" + caller.log()[-1500:])
    log = caller.wait_done(25)
    cpu1, t1 = cpu_seconds(rtpe_pid), time.monotonic()

    assert "Set audio encoder: opus" in log and "Set audio decoder: opus" in log
    invites = w.invites()
    if invites is not None:
        assert len(invites) == 1, invites
        mline, encodings, crypto = sdp_media(invites[0])
        assert "RTP/AVP" in mline and "SAVP" not in mline, mline
        assert encodings and {e.lower() for e in encodings} <= {
            "g722",
            "pcmu",
            "pcma",
            "telephone-event",
        }, encodings
        assert "telephone-event" in encodings, "DTMF payload must survive codec-mask"
    # the caller hears the worker: the echo of its own audio, transcoded twice
    db, dur = wav_rms(caller.recording("dec"), skip_s=0.5)
    assert dur > 3.0 and db > -35.0, (db, dur)
    print(
        f"\nrtpengine CPU for 1 Opus<->PCMU call: "
        f"{100 * (cpu1 - cpu0) / (t1 - t0):.2f}% of a core over {t1 - t0:.1f}s; "
        f"caller heard {db:.1f} dBFS for {dur:.1f}s"
    )


@needs_binaries
def test_calls_spread_and_dead_worker_gets_no_new_calls(
    edge_factory, worker_factory, caller_factory, ports, tmp_path, procs
):
    """8 calls spread over 2 workers; after one is killed the prober marks it down, new
    calls all go to the survivor, and a call in progress on the survivor keeps audio."""
    w1, w2 = worker_factory(), worker_factory()
    edge = edge_factory([(w1.ip, w1.port), (w2.ip, w2.port)], ping_interval=1, fr_timer=1000)
    if w1.call_ids() is None:
        pytest.skip("worker does not expose which calls it received")

    # 8 concurrent calls (3 s each), round-robin over both workers
    out, ok = sipp_uac(edge, ports, tmp_path / "uac-a", "127.0.0.4", 8, 8, hold_ms=3000)
    assert ok == 8, out[-2000:]
    n1, n2 = len(w1.call_ids()), len(w2.call_ids())
    assert n1 + n2 == 8 and min(n1, n2) >= 3, (n1, n2)

    # a long call with audio, then kill the worker that did NOT get it
    caller = caller_factory(codecs=("opus",)).dial(f"sip:bot@{edge.ip}:{edge.udp}")
    wait_for(caller.established, 10, "baresip call")
    time.sleep(0.5)
    cid = re.search(
        r"^Call-ID:\s*(\S+)",
        caller_invite := next(i for w in (w1, w2) for i in w.invites() if "baresip" in i),
        re.M,
    ).group(1)
    survivor, victim = (w1, w2) if cid in w1.call_ids() else (w2, w1)
    assert caller_invite
    victim.kill()
    t_kill = time.monotonic()
    victim_uri = f"sip:{victim.ip}:{victim.port}"
    wait_for(
        lambda: edge.dispatcher_flags().get(victim_uri, "").startswith("I"),
        8,
        f"dispatcher to mark {victim_uri} inactive",
    )
    print(f"\ndead worker marked inactive after {time.monotonic() - t_kill:.1f}s")

    before = len(survivor.call_ids())
    out, ok = sipp_uac(edge, ports, tmp_path / "uac-b", "127.0.0.4", 6, 6)
    assert ok == 6, out[-2000:]
    assert len(survivor.call_ids()) == before + 6

    caller.wait_done(25)
    # the caller kept hearing the survivor's echo after the kill (last part of the call)
    db, dur = wav_rms(caller.recording("dec"), skip_s=2.5)
    assert db > -35.0, (db, dur)


@needs_binaries
def test_flood_from_one_source_is_limited_legit_caller_passes(
    edge_factory, worker_factory, caller_factory, ports, tmp_path
):
    """A burst of INVITEs from 127.0.0.1 is cut by pike; a caller on 127.0.0.2 gets in."""
    w = worker_factory()
    edge = edge_factory([(w.ip, w.port)], pike_density=20, pike_unit=2, pike_latency=10)
    if w.invites() is None:
        pytest.skip("worker does not expose how many INVITEs reached it")

    flood_dir = tmp_path / "flood"
    flood_dir.mkdir()
    fport = ports.sip("127.0.0.1")
    mp, _ = ports.media(10)
    sent = 300
    flood = subprocess.Popen(
        [
            "sipp",
            "-sn",
            "uac",
            f"{edge.ip}:{edge.udp}",
            "-i",
            "127.0.0.1",
            "-p",
            str(fport),
            "-mp",
            str(mp),
            "-m",
            str(sent),
            "-l",
            str(sent),
            "-r",
            "150",
            "-timeout",
            "15s",
            "-recv_timeout",
            "4000",
            "-nostdin",
        ],
        cwd=flood_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        time.sleep(1.0)  # flood under way, 127.0.0.1 already blocked
        caller = caller_factory(codecs=("opus",), ip=CALLER_IP).dial(
            f"sip:bot@{edge.ip}:{edge.udp}"
        )
        wait_for(caller.established, 10, "legit caller established during the flood")
        out, _ = flood.communicate(timeout=30)
    finally:
        if flood.poll() is None:
            os.killpg(flood.pid, signal.SIGKILL)
            flood.wait(5)
    caller.wait_done(25)

    from_flooder = [i for i in w.invites() if "baresip" not in i]
    from_caller = [i for i in w.invites() if "baresip" in i]
    assert len(from_caller) == 1
    assert len(from_flooder) <= 40, f"{len(from_flooder)} of {sent} flood INVITEs got through"
    assert "blocked by pike" in edge.log()
    db, _ = wav_rms(caller.recording("dec"), skip_s=0.5)
    assert db > -35.0, db
    print(
        f"\nflood: {len(from_flooder)} of {sent} INVITEs reached the worker; "
        "legit caller connected with audio"
    )


@needs_binaries
def test_tls_caller_with_srtp_reaches_worker_on_plain_rtp(
    edge_factory, worker_factory, caller_factory
):
    w = worker_factory()
    edge = edge_factory([(w.ip, w.port)])
    assert edge.cert.exists()
    caller = caller_factory(codecs=("opus",), tls_ca=edge.cert, srtp=True).dial(
        f"sip:bot@{edge.ip}:{edge.tls}"
    )
    wait_for(caller.established, 10, "TLS call established\n" + caller.log()[-1500:])
    log = caller.wait_done(25)
    assert "SRTP is Enabled" in log, log[-2000:]
    assert f"{edge.ip}:{edge.tls};transport=tls" in log
    invites = w.invites()
    if invites is not None:
        assert len(invites) == 1
        mline, _, crypto = sdp_media(invites[0])
        assert mline.split()[2] == "RTP/AVP" and not crypto, (mline, crypto)
        assert re.search(r"^Via: SIP/2.0/TLS ", invites[0], re.M), "caller leg was not TLS"
    db, _ = wav_rms(caller.recording("dec"), skip_s=0.5)
    assert db > -35.0, db


@needs_binaries
@pytest.mark.parametrize(
    "ua", ["friendly-scanner", "sipvicious/0.3.4", "sipcli/v1.8", "VaxSIPUserAgent/3.1"]
)
def test_scanner_user_agent_gets_no_answer(edge_factory, worker_factory, ua):
    w = worker_factory()
    edge = edge_factory([(w.ip, w.port)])
    # control: the same request with an ordinary UA is answered
    assert (
        sip_options(edge.ip, edge.udp, ua="Yealink SIP-T46S", src_ip="127.0.0.5") or ""
    ).startswith("SIP/2.0 200")
    assert sip_options(edge.ip, edge.udp, ua=ua, src_ip="127.0.0.6", timeout=2.0) is None
    assert "dropped scanner" in edge.log()


@needs_binaries
def test_no_worker_up_gives_503(edge_factory, ports, tmp_path):
    """Nothing listens on the worker port: the probe marks it down, INVITEs get 503."""
    dead = ("127.0.0.1", ports.sip())
    edge = edge_factory([dead], ping_interval=1, fr_timer=500)
    wait_for(
        lambda: edge.dispatcher_flags().get(f"sip:{dead[0]}:{dead[1]}", "").startswith("I"),
        8,
        "worker marked inactive",
    )
    p = ports.sip("127.0.0.4")
    r = subprocess.run(
        [
            "sipp",
            "-sn",
            "uac",
            f"{edge.ip}:{edge.udp}",
            "-i",
            "127.0.0.4",
            "-p",
            str(p),
            "-m",
            "1",
            "-timeout",
            "10s",
            "-nostdin",
            "-trace_err",
            "-error_file",
            str(tmp_path / "err.log"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert "503 No Worker Available" in (tmp_path / "err.log").read_text(errors="replace"), (
        r.stdout[-1500:]
    )


# ============================================================================ docker/

DOCKER = REPO / "docker"
COMPOSE = DOCKER / "compose.yaml"
# written by the metrics work, not by the edge: skipped (not failed) while absent
METRICS_OWNED = {
    DOCKER / "prometheus.yml",
    DOCKER / "grafana" / "provisioning",
    DOCKER / "grafana" / "dashboards",
}


def _compose() -> dict:
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load(COMPOSE.read_text())


def _arg(cmd: list[str], flag: str) -> str | None:
    return cmd[cmd.index(flag) + 1] if flag in cmd else None


def _bind_mounts(svc: dict) -> list[Path]:
    out = []
    for v in svc.get("volumes", []):
        src = v.split(":", 1)[0] if isinstance(v, str) else v.get("source", "")
        if src.startswith((".", "/")):
            out.append((DOCKER / src).resolve())
    return out


def test_compose_parses_with_docker_compose():
    for cli in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(cli[0]) is None:
            continue
        r = subprocess.run(
            [*cli, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, timeout=60
        )
        if cli == ["docker", "compose"] and r.returncode != 0 and "unknown" in r.stderr:
            continue  # CLI without the compose plugin: try docker-compose v1
        assert r.returncode == 0, r.stderr[-2000:]
        return
    pytest.skip("neither the docker compose plugin nor docker-compose is installed")


def test_compose_build_contexts_and_mounts_exist():
    svcs = _compose()["services"]
    assert {"gateway-1", "gateway-2", "kamailio", "rtpengine", "prometheus", "grafana"} <= set(svcs)
    for name, svc in svcs.items():
        if "build" in svc:
            ctx = (DOCKER / svc["build"]["context"]).resolve()
            assert ctx.is_dir(), (name, ctx)
            dockerfile = ctx / svc["build"]["dockerfile"]
            assert dockerfile.is_file(), (name, dockerfile)
            for line in dockerfile.read_text().splitlines():
                if line.startswith("COPY ") and not line.startswith("COPY --from"):
                    src = line.split()[1]
                    assert (ctx / src).exists(), (name, dockerfile.name, src)
        for path in _bind_mounts(svc):
            if path in METRICS_OWNED:
                continue
            assert path.exists(), (name, path)


def test_compose_metrics_paths_exist():
    missing = [
        str(p)
        for s in _compose()["services"].values()
        for p in _bind_mounts(s)
        if p in METRICS_OWNED and not p.exists()
    ]
    if missing:
        pytest.skip(f"not written yet by the metrics work: {missing}")


def test_compose_ports_consistent():
    import tomllib

    svcs = _compose()["services"]
    kam, rtpe = svcs["kamailio"]["command"], svcs["rtpengine"]["command"]
    assert _arg(kam, "--ng-port") == _arg(rtpe, "--ng-port")
    worker_ports = []
    for name in ("gateway-1", "gateway-2"):
        cfg = next(p for p in _bind_mounts(svcs[name]) if p.suffix == ".toml")
        worker_ports.append(tomllib.loads(cfg.read_text())["sip"]["port"])
    listed = [int(hp.rsplit(":", 1)[1]) for hp in _arg(kam, "--worker-list").split(",")]
    assert sorted(listed) == sorted(worker_ports), (listed, worker_ports)
    # everything shares the host network: no two listeners on one port
    media = range(int(_arg(rtpe, "--media-min")), int(_arg(rtpe, "--media-max")) + 1)
    singles = [
        int(_arg(kam, "--udp-port")),
        int(_arg(kam, "--tls-port")),
        int(_arg(rtpe, "--ng-port")),
        *worker_ports,
        9090,
        3000,
    ]
    assert len(set(singles)) == len(singles), singles
    assert not set(singles) & set(media), "a SIP/HTTP port falls in the RTP range"
    assert "127.0.0.1:9090" in " ".join(svcs["prometheus"]["command"])
    assert svcs["grafana"]["environment"]["GF_SERVER_HTTP_PORT"] == "3000"


def test_dockerfile_runs_voicebot_with_config():
    text = (DOCKER / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM debian:12" in text
    assert "make install" in text
    assert '"voicebot"' in text and '"/etc/voicebot/voicebot.toml"' in text
    mk = REPO / "Makefile"
    if not mk.exists() or not re.search(r"^install:", mk.read_text(), re.M):
        pytest.skip("Makefile with an `install` target not written yet (the Dockerfile uses it)")
