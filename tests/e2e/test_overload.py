"""A burst of INVITEs against a real gateway (4 call slots) from sipp: admission holds.

30 INVITEs in 2 s (testbed/sipp/overload_uac.xml; answered calls are held 3 s, so the burst
is over before any slot frees): every INVITE gets a final response, 200 or 503 with
Retry-After; never more than 4 calls answered at once (seen by the caller and in the
gateway's log); 503s come fast; and afterwards the gateway is alive, answers OPTIONS and
takes a normal call. ``python -m bench.overload`` is the full rate ramp.
"""

from __future__ import annotations

import time

import pytest

from testbed.harness import GatewayProcess, need
from testbed.sip_overload import (
    CAPACITY,
    SCENARIO,
    RtpSink,
    analyze,
    calls_of,
    gateway_max_concurrent,
    normal_call_ok,
    options_ok,
    parse_timed_trace,
    pctl,
    run_sipp,
    wait_gateway_idle,
)

BURST = 30
BURST_SECONDS = 2.0
HOLD_MS = 3000
REFUSAL_P95_MS = 200.0


@pytest.fixture
def gateway(tmp_path):
    need("sipp")
    gw = GatewayProcess(tmp_path / "gw", extra_toml='user = "bot"')
    try:
        gw.start()
        yield gw
    finally:
        gw.stop()


def test_invite_burst_is_admitted_up_to_capacity_and_refused_fast(gateway, tmp_path):
    sink = RtpSink()
    try:
        log_at = len(gateway.log_path.read_bytes())
        t0 = time.monotonic()
        # 3 INVITEs every 200 ms: 30 in 2 s, evenly (no 1 s clumps)
        code, trace, screen = run_sipp(
            tmp_path / "sipp", "burst", f"127.0.0.1:{gateway.sip_port}", SCENARIO,
            rate=BURST / BURST_SECONDS / 5, rate_period_ms=200, calls=BURST, hold_ms=HOLD_MS,
            rows=[[str(sink.port)]], timeout_s=30)
        burst_s = time.monotonic() - t0
    finally:
        sink.close()
    msgs = parse_timed_trace(trace)
    calls = calls_of(msgs)
    flow = "\n".join(f"{c.call_id[:24]} {c.final_status} {c.setup_ms}" for c in calls.values())
    detail = f"sipp exit {code}\n{screen[-2000:]}\n{flow}"
    step = analyze(msgs, BURST / BURST_SECONDS, BURST_SECONDS)
    invites = [c.invite_at for c in calls.values()]

    assert step.attempted == BURST, detail
    assert max(invites) - min(invites) < BURST_SECONDS + 0.5, detail  # it was a burst
    # every INVITE got a final response, and only 200 or 503
    assert step.no_final == 0, detail
    assert step.other == {}, detail
    assert step.answered + step.refused_503 == BURST, detail
    # capacity used, never exceeded
    assert step.answered >= CAPACITY, detail
    assert step.max_answered_at_once <= CAPACITY, detail
    log = gateway.log_path.read_bytes()[log_at:].decode("utf-8", "replace")
    assert gateway_max_concurrent(log) <= CAPACITY, log[-4000:]
    # refusals: 503 with a numeric Retry-After, fast
    assert step.refused_503 >= BURST - CAPACITY - 2, detail
    assert step.refused_503_retry_after == step.refused_503, detail
    p95 = pctl(step.refused_ms, 0.95)
    assert p95 is not None and p95 < REFUSAL_P95_MS, (p95, detail)
    # the answered calls completed normally (BYE answered) and sipp saw no failed call
    assert all(c.bye_done_at is not None for c in calls.values() if c.final_status == 200), \
        detail
    assert code == 0, detail
    assert burst_s < 25, detail

    # afterwards: every call ended, alive, OPTIONS answered, a normal call works
    assert wait_gateway_idle(gateway, 20), gateway.log()[-4000:]
    assert gateway.proc.poll() is None, gateway.log()[-4000:]
    assert options_ok(gateway, tmp_path / "after"), gateway.log()[-2000:]
    ok, why = normal_call_ok(gateway, tmp_path / "after")
    assert ok, f"{why}\n{gateway.log()[-3000:]}"
