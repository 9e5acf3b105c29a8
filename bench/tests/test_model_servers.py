"""bench/model_servers.py's pure parts: how calls are split over workers, and the report."""

from __future__ import annotations

import re

import pytest

from bench.model_servers import Watched, paired_ms, report, split_calls


def test_calls_are_split_evenly_and_no_worker_takes_more_than_four():
    assert split_calls(8, 2) == [4, 4]
    assert split_calls(5, 2) == [3, 2]
    assert split_calls(2, 2) == [1, 1]
    with pytest.raises(ValueError, match="a worker takes 4"):
        split_calls(9, 2)
    with pytest.raises(ValueError):
        split_calls(1, 2)


def _phase(name: str, processes: list[dict], hop: dict | None = None) -> dict:
    r = {"phase": name, "seconds": 61.0, "calls_placed": 9, "calls_failed": 0,
         "caller_errors": [], "turns": 30, "turns_unanswered": 1,
         "caller_ttfa_ms": (1500.0, 4200.0), "gateway_ttfa_ms": (None, None),
         "llm_errors": 2, "processes": processes}
    if hop:
        r["hop"] = hop
    return r


def test_report_has_a_row_per_phase_and_per_process_and_the_hop():
    w = Watched("worker 0", pid=1, calls=4, anon_mb=[400.0, 600.0, 500.0], cpu_s=30.0,
                anon_ready_mb=350.0)
    srv = Watched("llm server", pid=2, anon_mb=[900.0], cpu_s=50.0)
    row = w.row()
    assert row["anon_median_mb"] == 500.0 and row["anon_peak_mb"] == 600.0
    assert row["anon_per_call_mb"] == 125.0
    assert srv.row()["anon_per_call_mb"] is None  # the server holds no call
    hop = {"trivial_request_ms": 1.2, "first_token_in_process_ms": 90.0,
           "first_token_over_http_ms": 95.5, "first_token_hop_ms": 5.5}
    lines = report([_phase("server", [row, srv.row()], hop), _phase("embedded", [row])], "head")
    text = "\n".join(lines)
    assert lines[0] == "head"
    assert sum(1 for ln in lines if ln.startswith("server ")) == 3  # TTFA row + 2 processes
    assert sum(1 for ln in lines if ln.startswith("embedded ")) == 2
    assert " 1500 /  4200" in text and "    - /     -" in text
    assert re.search(r"\(the hop\) +\+5\.5 ms", text) and "GET /v1/models" in text
    assert "   350        " in text  # private memory at ready, before the calls


def test_paired_timing_warms_each_side_once_then_takes_turns():
    order: list[str] = []
    a_ms, b_ms = iter([999.0, 10.0, 30.0, 20.0]), iter([999.0, 13.0, 31.0, 26.0])

    def a() -> float:
        order.append("a")
        return next(a_ms)

    def b() -> float:
        order.append("b")
        return next(b_ms)

    assert paired_ms(a, b, 3) == (20.0, 26.0, 3.0)  # warm-ups left out; diffs 3, 1, 6
    assert order == ["a", "b"] * 4
