"""How the Grafana dashboard's variables ($__rate_interval, $__range, $instance) are filled in
so that Prometheus can evaluate its queries (tests/e2e/test_prometheus.py runs them)."""

from __future__ import annotations

import json
import math
import re

import pytest

from testbed.prometheus import (
    DASHBOARD,
    bucket_of,
    dashboard_queries,
    expected_quantile_bucket,
    grafana_expr,
    regex_alternatives,
)


def test_rate_interval_range_and_instance_are_filled_in():
    expr = ('histogram_quantile(0.5, sum by (le) (rate(x_bucket{instance=~"$instance"}'
            '[$__rate_interval]))) + increase(y[$__range]) + z[${__interval}]')
    out = grafana_expr(expr, 90, ["127.0.0.1:9464"], interval_s=2)
    assert out == ('histogram_quantile(0.5, sum by (le) (rate(x_bucket{instance=~'
                   '"127\\\\.0\\\\.0\\\\.1:9464"}[90s]))) + increase(y[90s]) + z[2s]')
    assert "$" not in out


def test_literal_ranges_and_label_values_stay():
    expr = 'sum(increase(voicebot_calls_total{outcome=~"failed|aborted"}[5m])) by (outcome)'
    assert grafana_expr(expr, 60, ["a:1"]) == expr


def test_an_unknown_variable_is_an_error_not_text():
    with pytest.raises(ValueError, match=r"\$job"):
        grafana_expr('up{job="$job"}', 60, ["a:1"])


def test_several_instances_become_alternatives_that_match_only_them():
    alt = regex_alternatives(["127.0.0.1:9464", "127.0.0.1:9465"])
    assert alt == "(127\\\\.0\\\\.0\\\\.1:9464|127\\\\.0\\\\.0\\\\.1:9465)"
    # what Prometheus reads once the PromQL string is unquoted: the dots match only dots
    pattern = re.compile(alt.replace("\\\\", "\\"))
    assert pattern.fullmatch("127.0.0.1:9465")
    assert not pattern.fullmatch("127x0.0.1:9464")


def test_every_dashboard_query_is_read():
    panels = json.loads(DASHBOARD.read_text())["panels"]
    n = sum(len(p.get("targets", [])) for p in panels)
    assert len(dashboard_queries()) == n >= 20


def test_expected_quantile_bucket():
    assert bucket_of(0.05) == (0.0, 0.05) and bucket_of(0.051) == (0.05, 0.1)
    assert expected_quantile_bucket(0.5, [1.22, 0.31, 2.0]) == (1.2, 1.25)
    assert expected_quantile_bucket(0.95, [1.22, 0.31, 2.0]) == (1.95, 2.0)
    assert bucket_of(12.0) == (10.0, math.inf)


