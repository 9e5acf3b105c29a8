"""End to end: metrics and call records of real calls (real gateway, real baresip on loopback).

- the TTFA histogram counts the bot's replies, agrees with the TTFA measured on the caller's
  recording within 60 ms, names the call in its exemplar, and the call's record holds the
  same figures;
- a gateway killed with SIGKILL during a call leaves the call's record open; the next start
  closes it as aborted, and ``voicebot calls`` shows it so;
- /metrics listens on loopback only by default.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from gateway.calls import records
from gateway.views import records_view
from testbed.harness import (
    VOICEBOT,
    GatewayProcess,
    active_spans,
    baresip_call,
    espeak,
    free_tcp_port,
    need,
    wait_closed,
)
from testbed.prometheus import sample, scrape


def start_gateway(workdir: Path, journal: Path | None = None,
                  metrics_port: int | None = None) -> GatewayProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    port = metrics_port or free_tcp_port()
    journal = journal or workdir / "calls.jsonl"
    # [metrics] listen_address is left at its default (loopback): one test checks it
    gw = GatewayProcess(workdir, extra_toml=(
        f'\n[metrics]\nport = {port}\n[records]\npath = "{journal}"\n'))
    gw.metrics_port, gw.journal = port, journal  # type: ignore[attr-defined]
    return gw.start()


def caller_ttfas(result, n: int) -> list[float]:
    """TTFA of each caller turn on the caller's recording: end of the caller's speech (sent)
    to the start of the next bot audio (heard), as tests/e2e/test_call.py measures it."""
    spans = active_spans(result.sent, result.rate)
    assert len(spans) == n, spans
    out = []
    heard = active_spans(result.heard, result.rate)
    for _, end in spans:
        nxt = [s for s in heard if s[0] > end]
        assert nxt, "the bot never answered"
        out.append(nxt[0][0] - end)
    return out


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    need("baresip", "espeak-ng", "sox")
    gw = start_gateway(tmp_path_factory.mktemp("obs"))
    yield gw
    code = gw.stop()
    assert code == 0, gw.log()[-3000:]


def test_ttfa_metrics_exemplar_and_record_agree_with_the_caller(gateway, tmp_path):
    rate = 16000
    q1 = espeak("What time do you open in the morning?", tmp_path / "q1.wav", rate=rate)
    q2 = espeak("And where are you?", tmp_path / "q2.wav", rate=rate)
    gap = np.zeros(int(7.0 * rate), np.int16)
    source = np.concatenate([np.zeros(6 * rate, np.int16), q1, gap, q2, gap]).astype(np.int16)

    _, before = scrape(gateway.metrics_port)
    count0 = sample(before, "voicebot_ttfa_seconds", "voicebot_ttfa_seconds_count")
    sum0 = sample(before, "voicebot_ttfa_seconds", "voicebot_ttfa_seconds_sum")
    turns0 = sum(s.value for s in before["voicebot_turns"].samples
                 if s.name == "voicebot_turns_total")

    result = baresip_call(tmp_path / "caller", gateway.uri, source, rate)
    recs = wait_closed(gateway.journal)
    rec = recs[-1]
    _, after = scrape(gateway.metrics_port)

    wire = caller_ttfas(result, 2)
    turns = [t for t in rec["turns"] if t["ttfa_seconds"] is not None]
    rows = [(w, t["ttfa_seconds"], t["ttfa_bridge_seconds"], t["jb_delay_ms"])
            for w, t in zip(wire, turns, strict=False)]
    for w, g, b, jb in rows:
        print(f"TTFA caller {w * 1000:.0f} ms, gateway {g * 1000:.0f} ms (bridge {b * 1000:.0f}"
              f" jb {jb:.0f}), difference {(g - w) * 1000:+.0f} ms")
    print(records_view.format_call(rec))

    # one TTFA observation per bot reply (the greeting is not a reply), none for anything else
    assert len(turns) == 2, rec["turns"]
    count1 = sample(after, "voicebot_ttfa_seconds", "voicebot_ttfa_seconds_count")
    sum1 = sample(after, "voicebot_ttfa_seconds", "voicebot_ttfa_seconds_sum")
    assert count1 - count0 == 2
    turns1 = sum(s.value for s in after["voicebot_turns"].samples
                 if s.name == "voicebot_turns_total")
    assert turns1 - turns0 == len(rec["turns"])
    # the record holds the figures the histogram observed
    assert sum1 - sum0 == pytest.approx(sum(t["ttfa_seconds"] for t in turns), abs=1e-6)
    # ... and they agree with the caller's recording (same event, measured at both ends)
    for w, g, _, _ in rows:
        assert abs(g - w) < 0.060, rows
    # the exemplar names the call (the latest observation in its bucket: the second turn)
    exemplars = [s.exemplar for s in after["voicebot_ttfa_seconds"].samples
                 if s.name == "voicebot_ttfa_seconds_bucket" and s.exemplar is not None]
    ours = [e for e in exemplars if e.labels == {"call_id": rec["id"]}]
    assert ours, exemplars
    assert {round(e.value, 4) for e in ours} <= {round(t["ttfa_seconds"], 4) for t in turns}
    # the rest of the record
    assert rec["outcome"] == "ended_by_caller"
    assert rec["codec"] == "G722/16000" and rec["remote_rtp"].startswith("127.0.0.1:")
    assert rec["rtp"]["rx_packets"] > 500
    assert "open" in rec["turns"][0]["caller_text"].lower()
    assert all(t["bot_text"] and t["stt_seconds"] > 0 for t in turns)
    assert sample(after, "voicebot_calls", "voicebot_calls_total", outcome="ended_by_caller") >= 1
    assert sample(after, "voicebot_active_calls", "voicebot_active_calls") == 0
    assert sample(after, "voicebot_rtp_packets", "voicebot_rtp_packets_total",
                  direction="received") >= rec["rtp"]["rx_packets"]
    assert sample(after, "voicebot_media_callback_lateness_seconds",
                  "voicebot_media_callback_lateness_seconds_count") > 500


def test_metrics_listen_on_loopback_only_by_default(gateway):
    assert f"metrics on http://127.0.0.1:{gateway.metrics_port}/metrics" in gateway.log()
    ss = subprocess.run(["ss", "-Hltn", f"sport = :{gateway.metrics_port}"],
                        capture_output=True, text=True)
    if ss.returncode == 0:
        assert ss.stdout.split() and ss.stdout.split()[3] == f"127.0.0.1:{gateway.metrics_port}"
    addrs = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
    others = [a for a in addrs if not a.startswith("127.") and ":" not in a]
    if not others:
        pytest.skip("no non-loopback IPv4 address on this machine")
    for ip in others:
        with socket.socket() as s, pytest.raises(OSError):
            s.settimeout(2.0)
            s.connect((ip, gateway.metrics_port))


def test_kill_9_during_a_call_leaves_an_aborted_record(tmp_path):
    need("baresip", "espeak-ng", "sox")
    rate = 16000
    q = espeak("What time do you open in the morning?", tmp_path / "q.wav", rate=rate)
    source = np.concatenate([np.zeros(5 * rate, np.int16), q,
                             np.zeros(15 * rate, np.int16)]).astype(np.int16)
    gw = start_gateway(tmp_path / "gw")
    caller: dict = {}
    killed = threading.Event()

    def dial() -> None:
        try:
            caller["result"] = baresip_call(tmp_path / "caller", gw.uri, source, rate,
                                            until=killed.is_set)
        except Exception as e:  # noqa: BLE001 - the call is cut: that is the point
            caller["error"] = e

    t = threading.Thread(target=dial, daemon=True)
    t.start()
    try:
        # wait for the first turn to be recorded, then kill the gateway in the middle
        end = time.monotonic() + 60
        while time.monotonic() < end:
            recs = records.read(gw.journal).records()
            if recs and recs[-1]["turns"]:
                break
            time.sleep(0.2)
        assert recs and recs[-1]["state"] == "open", recs
        cid = recs[-1]["id"]
        gw.proc.send_signal(signal.SIGKILL)
        gw.proc.wait(10)
        killed.set()  # the caller hangs up too (a real one would, on the dead line)
    finally:
        gw.stop()
    t.join(60)
    assert records.read(gw.journal).calls[cid]["state"] == "open"
    listing = subprocess.run([*VOICEBOT, "calls", "--journal", str(gw.journal)],
                             capture_output=True, text=True, check=True).stdout
    assert cid in listing and "aborted?" in listing, listing  # owner gone, not closed yet

    gw2 = start_gateway(tmp_path / "gw2", journal=gw.journal)
    try:
        rec = records.read(gw.journal).calls[cid]
        assert rec["state"] == "closed" and rec["outcome"] == "aborted", rec
        assert rec["turns"] and rec["turns"][0]["caller_text"], rec
        assert "closed 1 call(s) left open by a crash as aborted" in gw2.log()
        _, fams = scrape(gw2.metrics_port)
        assert sample(fams, "voicebot_calls", "voicebot_calls_total", outcome="aborted") == 1
    finally:
        assert gw2.stop() == 0
    listing = subprocess.run([*VOICEBOT, "calls", "--journal", str(gw.journal)],
                             capture_output=True, text=True, check=True).stdout
    shown = subprocess.run([*VOICEBOT, "calls", "--journal", str(gw.journal), "show", cid],
                           capture_output=True, text=True, check=True).stdout
    print(listing)
    print(shown)
    row = next(line for line in listing.splitlines() if line.startswith(cid))
    assert " aborted " in row, listing
    assert "aborted: the gateway process ended during the call" in shown
    as_json = json.loads(subprocess.run(
        [*VOICEBOT, "calls", "--journal", str(gw.journal), "show", cid, "--json"],
        capture_output=True, text=True, check=True).stdout)
    assert as_json["outcome"] == "aborted"


def test_the_dashboard_queries_only_metrics_the_running_gateway_exposes(gateway):
    from testbed.prometheus import check_dashboard_against

    text, _ = scrape(gateway.metrics_port)
    assert check_dashboard_against(text) >= 20
