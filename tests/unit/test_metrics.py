"""Metric names and units, the registry passed in, RTP deltas, audible edges, the /metrics
server, and the Grafana dashboard's queries against the gateway's real exposition."""

from __future__ import annotations

import socket
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.openmetrics.exposition import generate_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from gateway.calls import metrics as M
from gateway.calls.audio_edges import AudioEdges
from gateway.config import Config
from testbed.prometheus import check_dashboard_against, dashboard_exprs

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "docker" / "grafana" / "dashboards" / "voicebot.json"
FORBIDDEN_LABELS = {"call", "call_id", "id", "number", "uri", "from", "to", "caller", "user"}


def exposition(m: M.Metrics) -> str:
    return generate_latest(m.registry).decode()


def families(m: M.Metrics) -> dict:
    return {f.name: f for f in text_string_to_metric_families(exposition(m))}


def test_names_units_and_labels_follow_the_conventions():
    fams = families(M.Metrics(CollectorRegistry(), capacity=4))
    assert fams, "no metrics"
    for name, f in fams.items():
        assert name.startswith("voicebot_"), name
        if f.type == "counter":
            assert not name.endswith("_total")  # the exposition adds it to the samples
            assert all(s.name in (name + "_total", name + "_created") for s in f.samples)
        if f.type == "histogram":
            assert name.endswith("_seconds"), name
        for s in f.samples:
            assert not FORBIDDEN_LABELS & set(s.labels), (name, s.labels)
    for wanted in ("voicebot_ttfa_seconds", "voicebot_barge_in_seconds", "voicebot_stage_seconds",
                   "voicebot_calls", "voicebot_turns", "voicebot_barge_ins",
                   "voicebot_pipeline_errors", "voicebot_active_calls", "voicebot_call_capacity",
                   "voicebot_media_callback_lateness_seconds", "voicebot_rtp_jitter_seconds",
                   "voicebot_jitter_buffer_delay_seconds", "voicebot_rtp_rx_problem_packets",
                   "voicebot_jitter_buffer_frames", "voicebot_rtp_packets",
                   "voicebot_dtmf_digits", "voicebot_transfers"):
        assert wanted in fams, wanted
    outcomes = {s.labels["outcome"] for s in fams["voicebot_calls"].samples}
    assert {"answered", "rejected_capacity", "failed", "ended_by_caller", "ended_by_bot",
            "bot_hangup", "transferred", "media_timeout"} <= outcomes
    assert {s.labels["method"] for s in fams["voicebot_dtmf_digits"].samples} == \
        {"rfc4733", "sip_info"}
    assert {s.labels["outcome"] for s in fams["voicebot_transfers"].samples} == \
        {"accepted", "failed", "timeout"}
    stages = {s.labels["stage"] for s in fams["voicebot_stage_seconds"].samples}
    assert stages == {"end_of_turn", "stt", "llm_first_token", "tts_first_audio"}
    assert next(s.value for s in fams["voicebot_call_capacity"].samples) == 4


def test_latency_buckets_resolve_50_ms_up_to_3_s():
    b = M.LATENCY_BUCKETS
    steps = [round(y - x, 3) for x, y in zip(b, b[1:], strict=False) if y <= 3.0]
    assert b[0] == 0.05 and set(steps) == {0.05} and 3.0 in b and b[-1] >= 5


def test_the_global_registry_is_never_used():
    M.Metrics(CollectorRegistry())
    M.Metrics(CollectorRegistry())  # a second instance does not collide
    assert not [n for n in REGISTRY._names_to_collectors if n.startswith("voicebot_")]


def test_rtp_cumulative_stats_become_counter_deltas():
    m = M.Metrics(CollectorRegistry())
    m.rtp_update("a", {"rx_packets": 100, "tx_packets": 90, "rx_lost": 2, "jb_empty": 5,
                       "rx_jitter_ms_last": 4.0, "jb_delay_ms_avg": 40.0})
    m.rtp_update("b", {"rx_packets": 10, "rx_lost": 0})
    m.rtp_update("a", {"rx_packets": 150, "tx_packets": 140, "rx_lost": 3, "jb_empty": 5})
    m.rtp_update("a", {"rx_packets": 20, "rx_lost": 0})  # stream restarted: no negative step
    g = m.registry.get_sample_value
    assert g("voicebot_rtp_packets_total", {"direction": "received"}) == 150 + 10
    assert g("voicebot_rtp_packets_total", {"direction": "sent"}) == 140
    assert g("voicebot_rtp_rx_problem_packets_total", {"kind": "lost"}) == 3
    assert g("voicebot_jitter_buffer_frames_total", {"event": "empty"}) == 5
    assert g("voicebot_rtp_jitter_seconds_count") >= 1
    assert g("voicebot_jitter_buffer_delay_seconds_sum") == pytest.approx(0.04)
    m.rtp_forget("a")


def test_audible_edges_find_the_last_caller_sound_and_the_first_bot_sound():
    e = AudioEdges(seconds=2.0)
    loud = (np.sin(np.arange(320) / 3) * 8000).astype("<i2").tobytes()
    quiet = (np.random.default_rng(1).standard_normal(320) * 50).astype("<i2").tobytes()
    pushed = []
    inbound = e.tap_inbound(pushed.append)
    times = []
    for pcm in [quiet, loud, loud, quiet, quiet]:
        inbound(pcm)
        times.append(e.in_t[(e.n_in - 1) % e.size])
    assert len(pushed) == 5
    assert e.last_loud_in(not_after=times[-1], not_before=times[0]) == times[2]
    assert e.last_loud_in(not_after=times[0], not_before=times[0]) is None
    queue = [quiet, quiet, loud, quiet]
    outbound = e.tap_outbound(lambda: queue.pop(0))
    out_t = []
    for _ in range(4):
        outbound()
        out_t.append(e.out_t[(e.n_out - 1) % e.size])
    assert e.first_loud_out(not_before=out_t[0], not_after=out_t[-1] + 1) == out_t[2]
    assert e.first_loud_out(not_before=out_t[3], not_after=out_t[3] + 1) is None
    for _ in range(300):  # the ring wraps around without errors
        inbound(quiet)
    assert e.last_loud_in(not_after=time.monotonic(), not_before=0.0) is None


def _free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_defaults_to_loopback_and_speaks_openmetrics_with_exemplars(caplog):
    cfg = Config()
    assert cfg.metrics.listen_address == "127.0.0.1" and cfg.metrics.port > 0
    m = M.Metrics(CollectorRegistry())
    m.ttfa.observe(1.23, exemplar={"call_id": "call-7-abcdef"})
    srv = M.start_server(m.registry, cfg.metrics.listen_address, _free_tcp_port())
    assert srv is not None
    try:
        host, port = srv.address
        assert host == "127.0.0.1"
        req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={
            "Accept": "application/openmetrics-text; version=1.0.0; charset=utf-8"})
        with urllib.request.urlopen(req, timeout=5) as r:
            body = r.read().decode()
        assert '# {call_id="call-7-abcdef"} 1.23' in body
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            assert "voicebot_ttfa_seconds_count 1.0" in r.read().decode()  # classic text too
        # a port in use: logged, no exception (calls matter more than their metrics)
        assert M.start_server(m.registry, "127.0.0.1", port) is None
        assert "cannot listen" in caplog.text
    finally:
        srv.close()
    assert M.start_server(m.registry, "127.0.0.1", 0) is None  # 0 = off


# --- the dashboard queries only what the gateway exposes ------------------------------------


def test_every_metric_the_dashboard_queries_is_exposed():
    assert check_dashboard_against(exposition(M.Metrics(CollectorRegistry()))) >= 20


def test_dashboard_covers_the_issue():
    text = " ".join(dashboard_exprs())
    for needle in ("histogram_quantile(0.5", "histogram_quantile(0.95", "voicebot_ttfa_seconds",
                   "voicebot_barge_in_seconds", "voicebot_stage_seconds", "voicebot_active_calls",
                   "voicebot_rtp_", "voicebot_jitter_buffer_", "voicebot_pipeline_errors_total"):
        assert needle in text, needle


def test_prometheus_scrape_config_targets_the_workers():
    import yaml

    cfg = yaml.safe_load((ROOT / "docker" / "prometheus.yml").read_text())
    targets = [t for sc in cfg["scrape_configs"] for st in sc["static_configs"]
               for t in st["targets"]]
    assert f"127.0.0.1:{Config().metrics.port}" in targets
    assert any("OpenMetrics" in p for sc in cfg["scrape_configs"]
               for p in sc.get("scrape_protocols", []))
