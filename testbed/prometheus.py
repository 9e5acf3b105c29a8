"""A real Prometheus for end-to-end tests (Debian's ``prometheus``), and the Grafana dashboard's
queries made evaluable by it.

The test starts its own ``prometheus`` process (its own config, storage in a temporary folder,
a free loopback port): the Debian package's systemd service plays no part.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from bisect import bisect_left
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.openmetrics.parser import text_string_to_metric_families

from gateway.calls.metrics import LATENCY_BUCKETS
from testbed.harness import free_tcp_port

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "docker" / "grafana" / "dashboards" / "voicebot.json"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
PROMETHEUS, PROMTOOL = "prometheus", "promtool"  # Debian's package (scripts/setup.sh APT_TEST)


# --- the dashboard's queries --------------------------------------------------------------------

@dataclass(frozen=True)
class Query:
    panel: str
    legend: str
    expr: str


def dashboard_queries(path: Path = DASHBOARD) -> list[Query]:
    """Every panel target of the dashboard, in order."""
    d = json.loads(path.read_text())
    return [Query(p.get("title", "?"), t.get("legendFormat", ""), t["expr"])
            for p in d["panels"] for t in p.get("targets", []) if t.get("expr")]


def regex_alternatives(values: list[str]) -> str:
    """A multi-value Grafana variable inside ``=~"..."``, as Grafana writes it: each value
    regex-escaped, the backslashes doubled for the PromQL string, several values as (a|b)."""
    escaped = [re.escape(v).replace("\\", "\\\\") for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def grafana_expr(expr: str, window_s: int, instances: list[str],
                 interval_s: int = 1) -> str:
    """``expr`` with Grafana's variables replaced so Prometheus can evaluate it as one instant
    query over the last ``window_s`` seconds: ``$__rate_interval`` and ``$__range`` become that
    window (Grafana's own rate interval, 4 scrapes, would see nothing at the end of a test),
    ``$__interval`` the scrape interval, ``$instance`` the given instances. Any other variable
    is an error: a new one in the dashboard must be handled here, not sent as text."""
    values = {"__rate_interval": f"{window_s}s", "__range": f"{window_s}s",
              "__range_s": str(window_s), "__interval": f"{interval_s}s",
              "instance": regex_alternatives(instances)}

    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name not in values:
            raise ValueError(f"unknown dashboard variable ${name} in {expr}")
        return values[name]

    return _VARIABLE.sub(sub, expr)


# --- the process --------------------------------------------------------------------------------

CONFIG = """\
global:
  scrape_interval: {interval}s
  scrape_timeout: {interval}s
  evaluation_interval: {interval}s
scrape_configs:
  - job_name: voicebot
    static_configs:
      - targets: [{targets}]
"""


@dataclass
class Prometheus:
    """``prometheus`` scraping ``targets`` every ``interval`` seconds, on a free loopback port."""

    workdir: Path
    targets: list[str]
    interval: int = 1
    port: int = 0
    proc: subprocess.Popen | None = None
    log_path: Path = field(init=False)
    proc_started: float = 0.0
    """Unix time the process was started (before its first scrape)."""

    def start(self, timeout: float = 30.0) -> Prometheus:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_tcp_port()
        cfg = self.workdir / "prometheus.yml"
        cfg.write_text(CONFIG.format(interval=self.interval,
                                     targets=", ".join(json.dumps(t) for t in self.targets)))
        self.log_path = self.workdir / "prometheus.log"
        self.proc_started = time.time()
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [shutil.which(PROMETHEUS) or PROMETHEUS, f"--config.file={cfg}",
                 f"--storage.tsdb.path={self.workdir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}",
                 "--enable-feature=exemplar-storage"],
                stdout=log, stderr=subprocess.STDOUT)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.proc.returncode}:\n"
                                   f"{self.log()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"prometheus not ready after {timeout} s:\n{self.log()[-3000:]}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_bytes().decode("utf-8", "replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def api(self, path: str, **params: str) -> Any:
        """``/api/v1/<path>``'s ``data``; a query Prometheus refuses raises with its error."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                body = json.load(r)
        except urllib.error.HTTPError as e:
            raise AssertionError(f"{path} {params}: {e.code} {e.read().decode()}") from None
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's vector: [{"metric": {...}, "value": [t, "v"]}, ...]."""
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        return data["result"]

    def value(self, expr: str) -> float:
        """The single value of an instant query."""
        result = self.query(expr)
        assert len(result) == 1, (expr, result)
        return float(result[0]["value"][1])

    def wait_until(self, expr: str, want: float, timeout: float = 20.0) -> None:
        """Until ``expr`` (one series) has the value ``want``: the scrapes have caught up."""
        end, got = time.monotonic() + timeout, None
        while time.monotonic() < end:
            result = self.query(expr)
            if result and (got := float(result[0]["value"][1])) == want:
                return
            time.sleep(0.3)
        raise TimeoutError(f"{expr} = {got}, want {want} after {timeout} s:\n"
                           f"{self.log()[-2000:]}")


def dashboard_exprs() -> list[str]:
    d = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in d["panels"] for t in p.get("targets", [])]
    for v in d.get("templating", {}).get("list", []):
        q = v.get("query")
        exprs.append(q["query"] if isinstance(q, dict) else q)
    return exprs


_SELECTOR = re.compile(r"\b(voicebot_[a-zA-Z0-9_:]*)\s*(\{[^}]*\})?")
_MATCHER = re.compile(r'(\w+)\s*(=~|!=|!~|=)\s*"([^"]*)"')


def exposed(text: str) -> dict[str, list[dict]]:
    """sample name -> label sets, as in the exposition (histograms: _bucket/_sum/_count)."""
    out: dict[str, list[dict]] = {}
    for f in text_string_to_metric_families(text):
        for s in f.samples:
            out.setdefault(s.name, []).append(s.labels)
    return out


def check_dashboard_against(text: str) -> int:
    samples = exposed(text)
    checked = 0
    for expr in dashboard_exprs():
        found = _SELECTOR.findall(expr)
        assert found, f"a dashboard query without a voicebot metric: {expr}"
        for name, sel in found:
            assert name in samples, f"dashboard queries {name}, which /metrics lacks ({expr})"
            for label, op, value in _MATCHER.findall(sel or ""):
                if label == "instance" or "$" in value:
                    continue  # added by Prometheus / a dashboard variable
                sets = samples[name]
                if op == "=":
                    assert any(ls.get(label) == value for ls in sets), (name, label, value)
                elif op == "=~":
                    for alt in value.split("|"):
                        assert any(ls.get(label) == alt for ls in sets), (name, label, alt)
            checked += 1
    return checked


def scrape(port: int) -> tuple[str, dict]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                 headers={"Accept": OPENMETRICS})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.headers["Content-Type"].startswith("application/openmetrics-text")
        text = r.read().decode()
    return text, {f.name: f for f in text_string_to_metric_families(text)}


def sample(fams: dict, family: str, name: str, **labels) -> float:
    for s in fams[family].samples:
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise KeyError(f"{name}{labels}")


def bucket_of(value: float) -> tuple[float, float]:
    """The (lower, upper] bounds of the latency bucket holding ``value``."""
    bounds = (0.0, *LATENCY_BUCKETS, math.inf)
    i = max(1, bisect_left(bounds, value))
    return bounds[i - 1], bounds[i]


def expected_quantile_bucket(q: float, values: list[float]) -> tuple[float, float]:
    """Where ``histogram_quantile(q, ...)`` of these observations must land: the bucket of the
    ceil(q*n)-th smallest value (its rank is the first cumulative count >= q*n)."""
    ordered = sorted(values)
    return bucket_of(ordered[max(1, math.ceil(q * len(ordered))) - 1])
