"""End-to-end tests of the edge (edge/run.sh: Kamailio + rtpengine) on loopback.

Real components only: Kamailio 5.6, rtpengine (userspace), baresip as the caller, sipp, and
gateway workers of two kinds:

- the real gateway, `voicebot workers -n 2` (`RealWorkers`), started once for the module and
  loading its models (~45 s for two on 2 cores, much longer on a busy box) while the stand-in
  tests run. The Opus call, the TLS+SRTP call and the 8-call kill test run against it: the
  caller hears the bot's Piper greeting (transcribed), the bot hears the caller (its call
  record's transcript), and which worker took a call comes from its call journal and /metrics.
- a stand-in worker, `sipp` running WORKER_SCENARIO, where a check needs the worker's own
  message log (the SDP it was offered, how many flood INVITEs got through) or must be cheap
  and deterministic (failover from a silent worker): it answers OPTIONS with 200, answers
  INVITE with PCMU and echoes every RTP packet back. EDGE_TEST_WORKER=voicebot runs those
  tests against single real gateways instead (checks that need the message log are skipped).

Port plan (shared machine): SIP 5080-5099 (per address: callers use 127.0.0.2), rtpengine ng
22222-22230, media 42000-44999, the real workers' /metrics 19460-19499. Every process started
here is killed in teardown; each test is bounded in time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from testbed.edge import (
    CALLER_IP,
    EDGE_RUN,
    HAVE_TLS_MODULE,
    KAMAILIO_CFG,
    MISSING,
    QUESTION,
    REPO,
    Baresip,
    Edge,
    Ports,
    Proc,
    RealWorkers,
    SippWorker,
    VoicebotWorker,
    caller_wav,
    cpu_seconds,
    heard,
    real_workers_available,
    rtp_received,
    sdp_media,
    sip_options,
    sipp_uac,
    speech_in,
    wait_for,
    wav_rms,
    window_db,
    write_test_wav,
)
from testbed.heard import transcribe

needs_binaries = pytest.mark.skipif(
    bool(MISSING) or not HAVE_TLS_MODULE,
    reason=f"missing binaries {MISSING} or kamailio-tls-modules "
    "(apt-get install kamailio kamailio-tls-modules rtpengine-daemon baresip-core sip-tester)",
)


# ---------------------------------------------------------------------------- ports


@pytest.fixture
def ports() -> Ports:
    return Ports()


# ---------------------------------------------------------------------------- processes


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


# ---------------------------------------------------------------------------- audio


@pytest.fixture(scope="session")
def test_wav(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("audio") / "caller48k.wav"
    write_test_wav(p)
    return p


# ---------------------------------------------------------------------------- edge


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


@pytest.fixture(scope="module")
def _real_workers_started(tmp_path_factory):
    why = real_workers_available()
    if why:
        pytest.skip(why)
    rw = RealWorkers(tmp_path_factory.mktemp("workers"), Ports())
    yield rw
    rw.stop()


@pytest.fixture(scope="module", autouse=True)
def _prestart_real_workers(request):
    """Start `voicebot workers` before this module's first test when any selected test
    needs them: their models load (~45 s for two on 2 cores) while the stand-in tests run."""
    wanted = any(
        it.module is request.module and "real_workers" in getattr(it, "fixturenames", ())
        for it in request.session.items
    )
    if wanted and real_workers_available() is None:
        with contextlib.suppress(pytest.skip.Exception):
            request.getfixturevalue("_real_workers_started")


@pytest.fixture(scope="module")
def real_workers(_real_workers_started) -> RealWorkers:
    """The module's two real gateway workers, both ready (a test that kills one leaves it
    to the supervisor, which restarts it; the next user waits for it here)."""
    _real_workers_started.wait_ready(300)
    return _real_workers_started


@pytest.fixture(scope="module")
def whisper():
    """The gateway's own Whisper model, to transcribe what a caller heard."""
    from pipeline import models
    from pipeline.stt.whisper import WhisperStt

    return WhisperStt(models.resolve().whisper_dir)


@pytest.fixture(scope="module")
def question_pcm(tmp_path_factory):
    """rate -> the caller's question spoken by espeak-ng (not the bot's Piper voice)."""
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        pytest.skip("espeak-ng and sox are needed for the caller's question")
    from testbed.harness import espeak

    d = tmp_path_factory.mktemp("question")
    cache = {}

    def get(rate: int):
        if rate not in cache:
            cache[rate] = espeak(QUESTION, d / f"q{rate}.wav", rate=rate)
        return cache[rate]

    return get


# ---------------------------------------------------------------------------- callers


@pytest.fixture
def caller_factory(procs, ports, tmp_path, test_wav):
    n = 0

    def make(**kw) -> Baresip:
        nonlocal n
        n += 1
        wav = kw.pop("wav", test_wav)
        return Baresip(procs, ports, tmp_path / f"caller{n}", wav, **kw)

    return make


# ---------------------------------------------------------------------------- rtpengine


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
def test_call_fails_over_from_a_silent_worker(edge_factory, worker_factory, ports, tmp_path):
    """A worker dies between two probes: the call sent to it gets no reply within
    --fr-timer, the edge marks it down and relays the call to the other worker (the
    caller never sees the failure); the following calls go to the live worker only."""
    w1, w2 = worker_factory(), worker_factory()
    if w1.call_ids() is None:
        pytest.skip("worker does not expose which calls it received")
    # probes far apart: only the failed INVITE can tell the edge that w2 is gone
    edge = edge_factory([(w1.ip, w1.port), (w2.ip, w2.port)], ping_interval=60, fr_timer=1000)
    w2.kill()
    t0 = time.monotonic()
    out, ok = sipp_uac(edge, ports, tmp_path / "uac", "127.0.0.4", 4, 4, hold_ms=500)
    elapsed = time.monotonic() - t0
    errors = tmp_path / "uac" / "errors.log"
    assert ok == 4, out[-5000:] + (errors.read_text()[-3000:] if errors.exists() else "")
    assert len(w1.call_ids()) == 4
    log = edge.log()
    assert f"worker sip:{w2.ip}:{w2.port} did not answer, marked down" in log, log[-3000:]
    assert edge.dispatcher_flags().get(f"sip:{w2.ip}:{w2.port}", "").startswith("I")
    later = log.split("did not answer, marked down", 1)[1]
    picked = re.findall(r"-> worker (\S+)", later)
    assert f"sip:{w2.ip}:{w2.port}" not in picked, picked  # skipped once marked
    print(f"\n4 calls, one first sent to the dead worker: all connected in {elapsed:.1f} s")


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
def test_worker_leg_is_plain_rtp_g722_g711_with_dtmf(edge_factory, worker_factory, caller_factory):
    """What the worker is offered, read from the stand-in worker's message log: a TLS caller
    offering only Opus over SRTP reaches the worker over UDP with plain RTP/AVP, G.722/G.711
    and telephone-event only (no crypto); the caller gets SRTP, and hears the echo."""
    w = worker_factory()
    if w.invites() is None:
        pytest.skip("this worker does not expose the INVITEs it received")
    edge = edge_factory([(w.ip, w.port)])
    assert edge.cert.exists()
    caller = caller_factory(codecs=("opus",), tls_ca=edge.cert, srtp=True).dial(
        f"sip:bot@{edge.ip}:{edge.tls}"
    )
    wait_for(caller.established, 10, "TLS call established\n" + caller.log()[-1500:])
    log = caller.wait_done(25)
    assert "SRTP is Enabled" in log, log[-2000:]
    assert "Set audio encoder: opus" in log and "Set audio decoder: opus" in log
    assert f"{edge.ip}:{edge.tls};transport=tls" in log
    invites = w.invites()
    assert len(invites) == 1, invites
    mline, encodings, crypto = sdp_media(invites[0])
    assert mline.split()[2] == "RTP/AVP" and not crypto, (mline, crypto)
    assert encodings and {e.lower() for e in encodings} <= {
        "g722",
        "pcmu",
        "pcma",
        "telephone-event",
    }, encodings
    assert "telephone-event" in encodings, "DTMF payload must survive codec-mask"
    assert re.search(r"^Via: SIP/2.0/TLS ", invites[0], re.M), "caller leg was not TLS"
    # the caller hears the stand-in's echo of its own audio (SRTP/Opus <-> RTP/PCMU)
    db, dur = wav_rms(caller.recording("dec"), skip_s=0.5)
    assert dur > 3.0 and db > -35.0, (db, dur)


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
    err = (tmp_path / "err.log").read_text(errors="replace")
    assert "503 No Worker Available" in err, r.stdout[-1500:]
    assert re.search(r"^Retry-After: 10\s*$", err, re.M), err[-1500:]


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
        *(_model_port(svcs[name]) for name in MODEL_SERVICES),
    ]
    assert len(set(singles)) == len(singles), singles
    assert not set(singles) & set(media), "a SIP/HTTP port falls in the RTP range"
    assert "127.0.0.1:9090" in " ".join(svcs["prometheus"]["command"])
    assert svcs["grafana"]["environment"]["GF_SERVER_HTTP_PORT"] == "3000"


MODEL_SERVICES = ("llm", "stt", "tts")
NOT_CONFIG_ENV = {"VOICEBOT_STATE", "VOICEBOT_CACHE", "VOICEBOT_WORKER"}
"""VOICEBOT_* variables that are not ``[section] key`` overrides (state dir, model cache, the
``voicebot workers`` index)."""


def _model_cmd(svc: dict) -> str:
    cmd = svc["command"]
    return " ".join(cmd) if isinstance(cmd, list) else cmd


def _model_port(svc: dict) -> int:
    m = re.search(r"--port (\d+)|--uri tcp://[^:]+:(\d+)", _model_cmd(svc))
    assert m, svc["command"]
    return int(m.group(1) or m.group(2))


def test_compose_model_services_and_the_workers_point_at_them():
    import tomllib
    from urllib.parse import urlsplit

    from gateway import config
    from pipeline import models

    svcs = _compose()["services"]
    assert set(MODEL_SERVICES) <= set(svcs)
    llm = _model_cmd(svcs["llm"])
    assert "llama_cpp.server" in llm and "--interrupt_requests False" in llm, llm
    # the bundled default GGUF, where `voicebot models` assembles it
    gguf = models.BUNDLED_LLMS[models.DEFAULT_LLM].file
    assert f"VOICEBOT_CACHE/models/{gguf}" in llm
    assert "voicebot models" in llm
    assert "wyoming_faster_whisper" in " ".join(svcs["stt"]["entrypoint"])
    assert "wyoming_piper" in " ".join(svcs["tts"]["entrypoint"])
    assert "--local-files-only" in _model_cmd(svcs["stt"])
    for name in ("gateway-1", "gateway-2"):
        env = {k: str(v) for k, v in svcs[name]["environment"].items()}
        assert set(MODEL_SERVICES) <= set(svcs[name].get("depends_on", [])), name
        # every VOICEBOT_<SECTION>_<KEY> names a real setting...
        for var in set(env) - NOT_CONFIG_ENV:
            assert var.startswith(config.ENV_PREFIX), var
            section, _, key = var.removeprefix(config.ENV_PREFIX).lower().partition("_")
            assert section in config.SECTIONS, var
            fields = {f.name for f in dataclasses.fields(config.SECTIONS[section])}
            assert key in fields, f"{var}: no [{section}] {key}"
        # ...and the worker's file with them is a valid config pointing at the model services
        toml = next(p for p in _bind_mounts(svcs[name]) if p.suffix == ".toml")
        cfg = config.build(tomllib.loads(toml.read_text()), env)
        assert (cfg.llm.backend, cfg.stt.backend, cfg.tts.backend) == ("openai", "wyoming",
                                                                         "wyoming")
        assert urlsplit(cfg.llm.base_url).port == _model_port(svcs["llm"])
        assert cfg.stt.uri.endswith(f":{_model_port(svcs['stt'])}")
        assert cfg.tts.uri.endswith(f":{_model_port(svcs['tts'])}")


def test_dockerfile_runs_voicebot_with_config():
    text = (DOCKER / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM debian:12" in text
    assert "make install" in text
    assert '"voicebot"' in text and '"/etc/voicebot/voicebot.toml"' in text
    mk = REPO / "Makefile"
    if not mk.exists() or not re.search(r"^install:", mk.read_text(), re.M):
        pytest.skip("Makefile with an `install` target not written yet (the Dockerfile uses it)")


# ============================================================================ real gateway
# These run against `voicebot workers -n 2` (RealWorkers, started once for the module and
# loading its models while the tests above run): the caller hears the real bot.

GREETING_WORDS = re.compile(r"riverside|dental|thanks for calling|how can i help")


def _record(rw: RealWorkers, user: str, closed: bool = False, timeout: float = 15) -> tuple:
    """(worker index, record) of sip:USER's call, once it is in a worker's journal."""

    def get():
        f = rw.find(user)
        return f if f and (not closed or f[1].get("state") == "closed") else None

    return wait_for(get, timeout, f"the call record of {user} (closed={closed})", step=0.2)


def _rtp_both_ways(rec: dict, share: float = 0.5) -> tuple[int, int, float]:
    """RTP packets received and sent by the gateway over the call; each must be at least
    ``share`` of the call's 50 packets per second."""
    rtp, dur = rec.get("rtp") or {}, float(rec.get("duration_seconds") or 0)
    rx, tx = int(rtp.get("rx_packets", 0)), int(rtp.get("tx_packets", 0))
    assert rx > share * 50 * dur and tx > share * 50 * dur, (rec.get("id"), rx, tx, dur)
    return rx, tx, dur


@needs_binaries
def test_opus_only_caller_talks_with_the_real_bot(
    real_workers, edge_factory, caller_factory, whisper, question_pcm, tmp_path
):
    """(a) baresip offering only Opus reaches a real gateway worker through the edge. The
    worker runs G.722 (its call record's codec: rtpengine transcodes); the caller hears the
    bot's greeting (Piper speech, transcribed; the caller was silent: no echo), the bot hears
    the caller's question through Opus -> G.722 (its transcript) and the caller hears the
    answer. RTP counted both ways by the gateway."""
    rw = real_workers
    edge = edge_factory(rw.hostports, ping_interval=1, fr_timer=5000)
    rate, lead = 48000, 6.0
    q = question_pcm(rate)
    wav = caller_wav(tmp_path / "opus.wav", rate, lead, q, tail_s=60.0)
    user = f"opus{uuid.uuid4().hex[:6]}"
    rtpe_pid = edge.rtpengine_pid()
    cpu0, t0 = cpu_seconds(rtpe_pid), time.monotonic()
    caller = caller_factory(codecs=("opus",), wav=wav, rate=rate, user=user)
    caller.dial(f"sip:bot@{edge.ip}:{edge.udp}")
    wait_for(caller.established, 15, "call established\n" + caller.log()[-1500:])

    def answered() -> bool:  # the bot's turn is journalled once its answer has been played
        f = rw.find(user)
        return bool(f) and any(t.get("bot_text") for t in f[1].get("turns", []))

    wait_for(answered, 75, "the bot's answer", step=0.3)
    time.sleep(0.5)
    cpu1, t1 = cpu_seconds(rtpe_pid), time.monotonic()
    caller.proc.stop()  # hang up (SIGTERM: baresip sends BYE)
    log = caller.log()
    assert "Set audio encoder: opus" in log and "Set audio decoder: opus" in log, log[-2000:]

    worker, rec = _record(rw, user, closed=True)
    assert rec.get("codec") == "G722/16000", rec  # first codec-transcode: 16 kHz end to end
    pcm, r = heard(caller)
    greeting = transcribe(whisper, pcm[: int(lead * r)], r)
    greet_s, greet_db = speech_in(pcm, r, 0.3, lead)
    assert GREETING_WORDS.search(greeting.lower()), greeting
    assert greet_s > 1.0 and greet_db > -35.0, (greet_s, greet_db)

    texts = [t.get("caller_text", "") for t in rec.get("turns", [])]
    assert any(re.search(r"\bopen|morning", t.lower()) for t in texts), texts

    from testbed.harness import active_spans, read_wav

    sent, sr = read_wav(caller.recording("enc"))
    q_end = active_spans(sent, sr)[-1][1]
    answer = [sp for sp in active_spans(pcm, r) if sp[0] > q_end]
    assert answer, f"no answer heard after the question (ended {q_end:.1f} s)"
    answer_text = transcribe(whisper, pcm[int(answer[0][0] * r) :], r)
    rx, tx, dur = _rtp_both_ways(rec)
    print(
        f"\nOpus caller -> worker {worker} ({rec['codec']}): greeting {greet_s:.1f} s at "
        f"{greet_db:.1f} dBFS "
        f"{greeting!r}; bot heard {texts!r}; answer {answer[0][0] - q_end:.2f} s after the "
        f"question: {answer_text!r}; gateway RTP rx {rx} / tx {tx} in {dur:.1f} s; rtpengine "
        f"{100 * (cpu1 - cpu0) / (t1 - t0):.1f}% of a core"
    )


@needs_binaries
def test_tls_srtp_caller_reaches_the_real_bot(
    real_workers, edge_factory, caller_factory, whisper, tmp_path
):
    """(c) A caller on SIP/TLS with mandatory SRTP (SDES), offering only Opus, reaches a
    real gateway worker (plain RTP, G.722 behind the edge) and hears its greeting."""
    rw = real_workers
    edge = edge_factory(rw.hostports, ping_interval=1, fr_timer=5000)
    rate, lead = 48000, 7.0
    user = f"tls{uuid.uuid4().hex[:6]}"
    caller = caller_factory(
        codecs=("opus",),
        tls_ca=edge.cert,
        srtp=True,
        wav=caller_wav(tmp_path / "silence.wav", rate, lead),
        rate=rate,
        user=user,
    ).dial(f"sip:bot@{edge.ip}:{edge.tls}")
    wait_for(caller.established, 15, "TLS call established\n" + caller.log()[-1500:])
    log = caller.wait_done(30)
    assert "SRTP is Enabled" in log, log[-2000:]
    assert f"{edge.ip}:{edge.tls};transport=tls" in log
    worker, rec = _record(rw, user, closed=True)
    assert rec.get("codec") == "G722/16000", rec
    assert ";alias=" in rec.get("remote_contact", ""), rec  # TLS caller's Contact aliased
    pcm, r = heard(caller)
    greeting = transcribe(whisper, pcm, r)
    greet_s, greet_db = speech_in(pcm, r, 0.3)
    assert GREETING_WORDS.search(greeting.lower()), greeting
    assert greet_s > 1.0 and greet_db > -35.0, (greet_s, greet_db)
    rx, tx, dur = _rtp_both_ways(rec)
    print(
        f"\nTLS+SRTP caller -> worker {worker} ({rec['codec']}): heard {greet_s:.1f} s at "
        f"{greet_db:.1f} dBFS "
        f"{greeting!r}; gateway RTP rx {rx} / tx {tx} in {dur:.1f} s"
    )


@needs_binaries
def test_real_workers_spread_full_and_one_killed(
    real_workers, edge_factory, caller_factory, ports, tmp_path, question_pcm
):
    """(b) with the real gateway: 8 concurrent calls (baresip, G.722) spread 4 + 4 over the
    two `voicebot workers`, filling every slot; a 9th call gets 503 from the edge (each
    worker refuses it, the edge fails over, and neither is marked down for being full). One
    caller on the survivor hangs up, then the other worker is SIGKILLed: the prober marks it
    down; the survivor's 3 calls keep RTP both ways (rtpengine's per-call counters, the
    survivor's /metrics) while the dead worker's calls get nothing; a new call takes the
    survivor's free slot, the next ones get 503 without the dead worker being tried; a
    question asked after the kill on the survivor is heard by the bot and answered. Then
    the supervisor's restart of the killed worker rejoins the dispatcher and closes its 4
    calls as aborted."""
    rw = real_workers
    # fr_timer: a starved gateway (busy shared box) was seen to take > 2 s to send even its
    # 100 Trying; with 2 s the edge marked it down and its late 200 made a ghost call
    edge = edge_factory(rw.hostports, ping_interval=1, fr_timer=5000)
    wait_for(
        lambda: all(edge.dispatcher_flags().get(rw.uri(i), "").startswith("A") for i in (0, 1)),
        10,
        "both workers active in the dispatcher",
    )
    # the last caller dialled asks its question well after the kill (asserted below); all
    # hang up once the answer has been played; the others stay silent (one question keeps
    # the starved CPU for it)
    rate, lead = 16000, 18.0
    ask = caller_wav(tmp_path / "ask.wav", rate, lead, question_pcm(rate), tail_s=90.0)
    quiet = caller_wav(tmp_path / "quiet.wav", rate, 110.0)
    tag = uuid.uuid4().hex[:4]
    callers = [
        caller_factory(codecs=("g722",), rate=rate, wav=ask if k == 7 else quiet,
                       user=f"k{tag}c{k}")
        for k in range(8)
    ]
    asker = callers[-1]
    for c in callers:
        c.dial(f"sip:bot@{edge.ip}:{edge.udp}")
        time.sleep(0.5)
    wait_for(lambda: all([c.established() for c in callers]), 30, "8 calls established")
    where = {c.user: _record(rw, c.user) for c in callers}
    per_worker = [[c for c in callers if where[c.user][0] == i] for i in (0, 1)]
    assert [len(x) for x in per_worker] == [4, 4], {u: w for u, (w, _) in where.items()}
    assert [rw.metrics(i)["voicebot_active_calls"] for i in (0, 1)] == [4.0, 4.0]
    cid = {c.user: where[c.user][1]["sip_call_id"] for c in callers}
    survivor = where[asker.user][0]
    victim = 1 - survivor

    # capacity: a 9th call while all 8 slots are taken
    key = 'voicebot_calls_total{outcome="rejected_capacity"}'
    refused0 = [rw.metrics(i).get(key, 0) for i in (0, 1)]
    out, ok = sipp_uac(edge, ports, tmp_path / "uac-full", "127.0.0.4", 1, 1)
    err = (tmp_path / "uac-full" / "errors.log").read_text(errors="replace")
    assert ok == 0 and "SIP/2.0 503 No Worker Available" in err, out[-1500:]
    assert re.search(r"^Retry-After: 10\s*$", err, re.M), err[-1500:]

    def refused() -> list[float]:
        return [rw.metrics(i).get(key, 0) - r for i, r in zip((0, 1), refused0, strict=True)]

    # each worker refused it once (503, failover); a starved worker may publish it late
    with contextlib.suppress(AssertionError):
        wait_for(lambda: refused() == [1.0, 1.0], 5, "both workers counting the refusal")
    assert refused() == [1.0, 1.0], refused()
    flags = edge.dispatcher_flags()
    assert all(flags.get(rw.uri(i), "").startswith("A") for i in (0, 1)), flags

    # one (silent) caller on the survivor hangs up: one free slot there
    leaver = next(c for c in per_worker[survivor] if c is not asker)
    per_worker[survivor].remove(leaver)
    leaver.proc.stop()  # SIGTERM: baresip sends BYE
    _, rec = _record(rw, leaver.user, closed=True)
    assert rec["outcome"] == "ended_by_caller", rec
    kept, doomed = per_worker[survivor], per_worker[victim]

    def rtp(cs) -> dict[str, tuple[int, int]]:
        return {c.user: rtp_received(edge, cid[c.user], rw.rtp) for c in cs}

    def delta(a, b):
        return {u: (b[u][0] - a[u][0], b[u][1] - a[u][1]) for u in a}

    a = rtp(kept + doomed)
    time.sleep(2.0)
    pre = delta(a, rtp(kept + doomed))
    # 2 s at 50 packets/s = 100 each way; a gateway starved of CPU on a busy shared box sends
    # fewer (measured down to ~12/s with 8 calls on 2 cores), a dead one none
    assert all(x > 50 and y > 10 for x, y in pre.values()), pre
    m0 = rw.metrics(survivor)

    pid = rw.kill(victim)
    t_kill, wall_kill = time.monotonic(), time.time()
    wait_for(
        lambda: edge.dispatcher_flags().get(rw.uri(victim), "").startswith("I"),
        15,
        f"the dispatcher to mark worker {victim} inactive",
    )
    t_marked = time.monotonic()
    log_mark = len(edge.log())

    a = rtp(kept + doomed)
    time.sleep(3.0)
    post = delta(a, rtp(kept + doomed))
    m1 = rw.metrics(survivor)
    for c in kept:  # 3 s at 50 packets/s each way; the killed worker's restart loads its
        # models meanwhile, and the survivor, starved, sends fewer
        assert post[c.user][0] > 75 and post[c.user][1] > 15, (c.user, post)
    for c in doomed:  # the caller still sends; nothing comes from the dead worker
        assert post[c.user][0] > 75 and post[c.user][1] == 0, (c.user, post)
    rx_key = 'voicebot_rtp_packets_total{direction="received"}'
    tx_key = 'voicebot_rtp_packets_total{direction="sent"}'
    gw_rx, gw_tx = m1[rx_key] - m0[rx_key], m1[tx_key] - m0[tx_key]
    assert gw_rx > 3 * 50 * 2 and gw_tx > 3 * 15 * 2, (gw_rx, gw_tx)

    # new calls: the first takes the survivor's free slot, the next two find it full and
    # the other worker marked down: 503 from the edge, and the dead worker is never tried
    before = {r["id"] for r in rw.records(survivor)}
    out, ok = sipp_uac(edge, ports, tmp_path / "uac-after", "127.0.0.4", 3, 2, hold_ms=4000)
    new_recs = [r for r in rw.records(survivor) if r["id"] not in before]
    assert ok == 1 and len(new_recs) == 1 and "sipp@" in new_recs[0]["remote_uri"], out[-1500:]
    err = (tmp_path / "uac-after" / "errors.log").read_text(errors="replace")
    assert err.count("SIP/2.0 503 No Worker Available") == 2, err[-1500:]
    after = edge.log()[log_mark:]
    picked = re.findall(r"call from 127\.0\.0\.4:\d+ ua='[^']*' -> worker (\S+)", after)
    assert picked == [rw.uri(survivor)] * 3, picked
    assert rw.uri(victim) not in after, after[-2000:]
    assert edge.dispatcher_flags().get(rw.uri(victim), "").startswith("I"), "came back early"
    t_new = time.monotonic()

    # the asker's question comes after the kill; the bot answers it (the turn is in the
    # journal once the answer has been played); then everybody hangs up
    def answered() -> bool:
        _, rec = _record(rw, asker.user)
        return any(t.get("bot_text") and not t.get("ended_with_call") for t in rec["turns"])

    wait_for(answered, 120, "the bot's answer", step=0.5)
    t_answered = time.monotonic()
    time.sleep(1.0)  # the answer's last packets through the jitter buffers
    for c in kept + doomed:
        c.proc.stop()
    from testbed.harness import active_spans, read_wav

    figures = []
    for c in kept + doomed:
        pcm, r = heard(c)
        # the kill on this caller's recordings' clock: they start when the call is answered
        # (the journal's start_ts, taken just before the 200 OK) or a little later, so
        # this errs towards later (the "after the kill" window holds nothing from before)
        t_kill_rec = wall_kill - where[c.user][1]["start_ts"]
        if c in doomed:
            # (a starved worker may not have started its greeting before it was killed:
            # its RTP before the kill is asserted above)
            before_db = window_db(pcm, r, 0.3, t_kill_rec)
            after_db = window_db(pcm, r, t_kill_rec + 0.5)
            assert after_db < -55.0, (c.user, after_db)  # nothing from a dead worker
            figures.append(
                f"{c.user}@w{victim}: {before_db:.1f} dBFS before the kill (greeting), "
                f"{after_db:.1f} dBFS after"
            )
            continue
        sent, sr = read_wav(c.recording("enc"))
        spoken = active_spans(sent, sr)
        greet_s, greet_db = speech_in(pcm, r, 0.3, spoken[0][0] if spoken else None)
        assert greet_s > 1.0 and greet_db > -35.0, (c.user, greet_s, greet_db)  # the greeting
        _, rec = _record(rw, c.user, closed=True)
        # over the whole call (a stop at the kill would leave < 30 %)
        rx, tx, dur = _rtp_both_ways(rec, share=0.4)
        line = (f"{c.user}@w{survivor}: greeting {greet_s:.1f} s at {greet_db:.1f} dBFS; gateway"
                f" rx {rx}/tx {tx} packets in {dur:.1f} s")
        if c is asker:
            q0, q1 = spoken[0][0], spoken[-1][1]
            # after the kill itself: the dispatcher's mark only steers new calls, and on a busy
            # box it came 0.1 s before the question (a later question fell into the killed
            # worker's restart, whose model loading starved the survivor)
            t_kill_rec = wall_kill - where[c.user][1]["start_ts"]
            assert q0 > t_kill_rec + 1.0, "the question must come after the kill"
            # the survivor hears the question and answers it. Its words are not checked: the
            # killed worker's restart loads its models meanwhile, and on a slow 2-core box the
            # starved survivor heard "What time do you know that he's acting?"
            texts = [t.get("caller_text", "") for t in rec.get("turns", [])]
            assert any(t.strip() for t in texts), texts
            spans = [sp for sp in active_spans(pcm, r) if sp[0] > q1]
            assert spans, "no answer heard"
            answer_s, answer_db = speech_in(pcm, r, q1)
            assert answer_s > 0.5 and answer_db > -35.0, (answer_s, answer_db, spans)
            line += (f"; asked {q0 - t_kill_rec:.1f} s after the kill, bot heard {texts}, "
                     f"answer {spans[0][0] - q1:.1f} s after the question, {answer_s:.1f} s "
                     f"at {answer_db:.1f} dBFS")
        figures.append(line)

    # the supervisor restarts the killed worker; it rejoins and closes its calls as aborted
    wait_for(lambda: rw.ready(victim), 180, f"worker {victim} restarted", step=0.5)
    t_back = time.monotonic()
    wait_for(
        lambda: edge.dispatcher_flags().get(rw.uri(victim), "").startswith("A"),
        10,
        f"worker {victim} active again",
    )
    t_active = time.monotonic()
    assert f"worker {victim} (pid {pid}) exited with signal SIGKILL" in rw.log()
    outcomes = {c.user: _record(rw, c.user)[1].get("outcome") for c in doomed}
    assert set(outcomes.values()) == {"aborted"}, outcomes
    print(
        "\ncalls: "
        + ", ".join(f"{c.user}->w{where[c.user][0]}" for c in callers)
        + f"\n9th call with 8 up: 503 (refused once by each worker); {leaver.user} hung up"
        + "\nrtpengine packets in 2 s before the kill (from caller, from worker): "
        + str(pre)
        + f"\nkilled worker {victim} (pid {pid}) at "
        f"{time.strftime('%H:%M:%S', time.localtime(wall_kill))}; marked inactive after "
        f"{t_marked - t_kill:.1f} s"
        + "\nrtpengine packets in 3 s after it was marked: "
        + str(post)
        + f"\nsurvivor /metrics over the kill: +{gw_rx:.0f} received, +{gw_tx:.0f} sent"
        + f"\nnew calls after the kill: 1 to worker {survivor}, 2 x 503 "
        f"({t_new - t_marked:.1f} s); answer played {t_answered - t_kill:.0f} s after the kill\n"
        + "\n".join(figures)
        + f"\nworker {victim} ready again {t_back - t_kill:.0f} s after the kill, active in "
        f"the dispatcher after {t_active - t_kill:.0f} s; its calls: {outcomes}"
    )


@needs_binaries
def test_hostile_corpus_through_the_edge(edge_factory, procs, ports, tmp_path):
    """tests/sip_corpus/ sent to the edge with the real gateway behind it. Neither process
    dies, the edge answers OPTIONS after every message; wrong or twice-given Content-Length
    and a CSeq method mismatch get 400 (or a drop), and the edge's own answers (513, 481,
    415, 501, 416: see tests/sip_corpus/README.md) are asserted. Prints the whole tally:
    rtpengine rewrites SDP the gateway would refuse and the edge answers 405 to requests it
    will not route, so the direct expectations do not all apply."""
    from testbed.sip_corpus import corpus, probe
    from testbed.sip_probe import add_late_answers

    if not VoicebotWorker.BIN.exists():
        pytest.skip(f"{VoicebotWorker.BIN} not installed")
    worker = VoicebotWorker(procs, ports, tmp_path / "worker")
    # a worker busy with a 64 KB message must not be marked down for a late 100 Trying
    edge = edge_factory([(worker.ip, worker.port)], pike_density=1000, fr_timer=5000)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    rows = []
    try:
        for case in corpus():
            result, sock = probe(edge.udp, case, sink.getsockname()[1])
            try:
                assert edge.proc.alive(), f"the edge died on {case.name}:\n{edge.log()[-3000:]}"
                assert worker.proc.alive(), (
                    f"the gateway died on {case.name}:\n{worker.proc.text()[-3000:]}")
                alive = (sip_options(edge.ip, edge.udp) or "").startswith("SIP/2.0 200")
                add_late_answers(result, sock)
            finally:
                sock.close()
            assert alive, f"the edge did not answer OPTIONS after {case.name}"
            if result.answered:
                assert result.bye_status == 200, f"{case.name}: the call did not end cleanly"
            rows.append((case, result.outcome, case.allows(result.outcome, case.expect)))
    finally:
        sink.close()
    fixed = [(c.name, out) for c, out, ok in rows if c.seen and ok]
    still = [(c.name, out) for c, out, ok in rows if not ok]
    print(f"\n{len(rows)} messages through the edge: {sum(ok for _, _, ok in rows)} proper; "
          f"of the {sum(bool(c.seen) for c, _, _ in rows)} the gateway alone answers "
          f"improperly, the edge made {len(fixed)} proper: {fixed}\nnot proper: {still}")
    outcome = {c.name: out for c, out, _ in rows}
    for name in ("24-cseq-method-mismatch", "26-content-length-too-big",
                 "27-content-length-too-small", "30-content-length-twice"):
        assert outcome[name] in ("400", "drop"), (name, outcome[name])
    # the edge's own answers: what the worker cannot take is refused at the edge
    # (a datagram the worker would cut: 513, not a 503 after fr_timer), an in-dialog request
    # for no dialog gets 481, a body that is no SDP 415, a lower-case method 501
    for name, want in {"04-64k-datagram": "513", "33-huge-header-60k": "513",
                       "62-sdp-200-media-lines": "513", "75-from-display-30k": "513",
                       "41-bye-unknown-dialog": "481", "42-cancel-unknown": "481",
                       "43-reinvite-unknown-dialog": "481", "64-sdp-json-content-type": "415",
                       "12-lowercase-method": "501", "70-lowercase-invite-other-user": "501",
                       "76-from-display-3k": "200", "09-http-uri-scheme": "416"}.items():
        assert outcome[name] == want, (name, outcome[name], want)
    assert (sip_options(worker.ip, worker.port) or "").startswith("SIP/2.0 200")
