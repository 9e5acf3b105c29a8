"""The README's picture of a distribution from a real run: TTFA on the wire per reply mode and
barge-in latency, as histograms, from a ``bench.turns`` results file.

    .venv/bin/python -m bench.distribution_shot [--results FILE] [--out docs/ttfa-histogram.png]

Reads the per-turn lines of the results (``streaming  question  ttfa  2210 barge  - ...``),
draws one histogram per series in an inline SVG (no plotting library), marks p50 and p95 (the
same percentile as ``bench.turns``), and screenshots the page in headless Chromium (Debian's
``chromium``, ``scripts/setup.sh install --test``).
"""

from __future__ import annotations

import argparse
import html
import math
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.turns import MODES, pct
from testbed import browser

ROOT = Path(__file__).resolve().parent.parent

RESULTS = ROOT / "bench" / "results" / "turns-1.5b.txt"
_TURN = re.compile(r"^(\w+)\s+(\w+)\s+ttfa\s+(\d+|-)\s+barge\s+(\d+|-)\s", re.M)
COLORS = {"streaming": "#2e7d32", "sequential": "#c77c02", "cascade": "#7b3fa0",
          "barge-in": "#c62828"}


@dataclass(frozen=True)
class Series:
    label: str
    seconds: list[float]
    color: str


def parse(text: str) -> tuple[dict[str, list[float]], list[float]]:
    """(TTFA seconds per reply mode, barge-in seconds) of a ``bench.turns`` results text."""
    ttfa: dict[str, list[float]] = {}
    barge: list[float] = []
    for mode, _kind, t, b in _TURN.findall(text):
        if t != "-":
            ttfa.setdefault(mode, []).append(int(t) / 1000)
        if b != "-":
            barge.append(int(b) / 1000)
    return ttfa, barge


def counts(values: list[float], bin_s: float, x_max: float) -> list[int]:
    """How many values fall in each bin [i*bin_s, (i+1)*bin_s) up to ``x_max`` (the last bin
    takes everything above)."""
    n = math.ceil(x_max / bin_s - 1e-9)
    out = [0] * n
    for v in values:
        out[min(n - 1, max(0, int(v / bin_s + 1e-9)))] += 1
    return out


# --- SVG ---------------------------------------------------------------------------------------

LEFT, RIGHT, ROW, GAP, TOP = 130.0, 20.0, 70.0, 14.0, 10.0


def _ms(s: float) -> str:
    return f"{s * 1000:.0f} ms"


def chart_svg(title: str, series: list[Series], bin_s: float, x_max: float, tick_s: float,
              width: float = 860.0) -> str:
    """Small multiples on one time axis: a row of bars per series, p50/p95 marked."""
    plot = width - LEFT - RIGHT
    height = TOP + len(series) * (ROW + GAP) + 30

    def x(t: float) -> float:
        return LEFT + min(t, x_max) / x_max * plot

    parts = [f'<text class="title" x="{LEFT}" y="0">{html.escape(title)}</text>']
    for i in range(int(x_max / tick_s + 1e-9) + 1):
        t = i * tick_s
        parts.append(f'<line class="grid" x1="{x(t):.1f}" y1="{TOP}" x2="{x(t):.1f}" '
                     f'y2="{height - 24}"/><text class="tick" x="{x(t):.1f}" '
                     f'y="{height - 8}">{t:g} s</text>')
    for row, s in enumerate(series):
        base = TOP + row * (ROW + GAP) + ROW
        bins = counts(s.seconds, bin_s, x_max)
        peak = max(bins) or 1
        parts.append(f'<g class="series" data-n="{len(s.seconds)}">'
                     f'<text class="label" x="{LEFT - 8}" y="{base - ROW / 2}">'
                     f"{html.escape(s.label)}</text>"
                     f'<text class="n" x="{LEFT - 8}" y="{base - ROW / 2 + 15}">'
                     f"n={len(s.seconds)}</text>")
        for i, c in enumerate(bins):
            if not c:
                continue
            h = c / peak * (ROW - 16)
            parts.append(f'<rect class="bar" data-count="{c}" x="{x(i * bin_s) + 0.5:.1f}" '
                         f'y="{base - h:.1f}" width="{x(bin_s) - LEFT - 1:.1f}" height="{h:.1f}" '
                         f'fill="{s.color}"><title>{c} in {_ms(i * bin_s)}-'
                         f"{_ms((i + 1) * bin_s)}</title></rect>")
        marks = [(q, pct(s.seconds, q), dash)
                 for q, dash in ((0.5, ""), (0.95, ' stroke-dasharray="4 3"'))]
        parts += [f'<line class="q" x1="{x(v):.1f}" y1="{base - ROW + 4}" x2="{x(v):.1f}" '
                  f'y2="{base}"{dash}/>' for _, v, dash in marks]
        parts += [f'<text class="q" x="{x(v) + 3:.1f}" y="{base - ROW + 12 + (q > 0.5) * 12}">'
                  f"p{q * 100:.0f} {_ms(v)}</text>" for q, v, _ in marks]  # over the lines
        parts.append(f'<line class="axis" x1="{LEFT}" y1="{base}" x2="{width - RIGHT}" '
                     f'y2="{base}"/></g>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" '
            f'height="{height + 14:.0f}" viewBox="0 -14 {width:.0f} {height + 14:.0f}">'
            f'{"".join(parts)}</svg>')


CSS = """
body{font:13px system-ui,sans-serif;margin:16px;background:#fff;color:#222}
p{margin:4px 0 10px;color:#555;max-width:860px}
svg text{font-size:12px;fill:#333}.title{font-weight:bold;font-size:14px}
.label{text-anchor:end;font-weight:bold}.n{text-anchor:end;fill:#777}
.tick{text-anchor:middle;fill:#777}.grid{stroke:#eee}.axis{stroke:#999}
line.q{stroke:#222}text.q{font-size:11px;paint-order:stroke;stroke:#fff;stroke-width:3px}
"""


def page(results: Path) -> str:
    ttfa, barge = parse(results.read_text())
    modes = [Series(m, ttfa[m], COLORS[m]) for m in MODES if ttfa.get(m)]
    x_max = max(4.0, math.ceil(max(v for s in modes for v in s.seconds)))
    shown = results.relative_to(ROOT).as_posix() if results.is_relative_to(ROOT) \
        else results.name
    note = (f"From {html.escape(shown)} (python -m bench.turns: real calls on loopback, "
            "measured on the caller's recording). Bars: 250 ms bins (barge-in: 20 ms); "
            "solid line p50, dashed p95.")
    svgs = chart_svg("TTFA on the wire, by reply mode (every turn of the run)", modes, 0.25,
                     x_max, 1.0)
    if barge:
        svgs += chart_svg("Barge-in: the caller's onset to the bot's silence",
                          [Series("barge-in", barge, COLORS["barge-in"])], 0.02,
                          max(0.3, math.ceil(max(barge) * 10) / 10), 0.05)
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>TTFA distribution</title><style>{CSS}</style></head><body>"
            f"<p>{note}</p>{svgs}</body></html>\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench.distribution_shot",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--results", default=str(RESULTS), metavar="FILE",
                    help="a bench.turns results file (default %(default)s)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "ttfa-histogram.png"), metavar="PNG")
    args = ap.parse_args(argv)
    if shutil.which(browser.CHROMIUM) is None:
        print("distribution_shot: needs chromium (scripts/setup.sh install --test)",
              file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="distribution-shot-") as tmp:
        html_path = Path(tmp) / "distribution.html"
        html_path.write_text(page(Path(args.results).resolve()), encoding="utf-8")
        rendered = browser.chromium(html_path, out, Path(tmp) / "chromium", (900, 520))
        errors = browser.console_messages(rendered.log, html_path)
    if errors:
        print("distribution_shot: the page logged errors:\n" + "\n".join(errors),
              file=sys.stderr)
        return 1
    print(f"distribution_shot: wrote {out} ({out.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
