"""bench/distribution_shot.py: the README's histograms read every turn of a bench.turns
results file and put each value in its bin (the picture itself: ``python -m
bench.distribution_shot``)."""

from __future__ import annotations

import re

from bench import distribution_shot as shot

RESULTS = """\
# python -m bench.turns ...

streaming  question  ttfa  2210 barge     - jb  20  What time do you open in the morning?
streaming  barge_in  ttfa  1280 barge    10 jb  20  Can you explain in detail how to book
sequential question  ttfa  2800 barge     - jb  20  Where is the clinic?
cascade    question  ttfa     - barge     - jb  20  How much does a check-up cost?
streaming  barge_in  ttfa  1740 barge   180 jb  20  Please tell me everything

figures at the caller, its own jitter-buffer delay subtracted (ms):
  ttfa_streaming            n=8   p50   1850  p95   2190  max   2190
"""


def test_parse_reads_every_turn_line_and_nothing_else():
    ttfa, barge = shot.parse(RESULTS)
    assert ttfa == {"streaming": [2.21, 1.28, 1.74], "sequential": [2.8]}
    assert barge == [0.01, 0.18]


def test_counts_bins_values_and_keeps_the_tail_in_the_last_bin():
    assert shot.counts([0.0, 0.24, 0.25, 0.5, 0.99, 7.0], 0.25, 1.0) == [2, 1, 1, 2]
    assert sum(shot.counts([0.3] * 5, 0.25, 2.0)) == 5


def test_the_svg_has_one_bar_per_filled_bin_and_the_percentiles():
    svg = shot.chart_svg("t", [shot.Series("streaming", [1.3, 1.35, 2.1], "#000")], 0.25, 4.0,
                         1.0)
    bars = [int(c) for c in re.findall(r'class="bar" data-count="(\d+)"', svg)]
    assert sorted(bars) == [1, 2]  # 1.25-1.5 s: two, 2.0-2.25 s: one
    assert "p50 1350 ms" in svg and "p95 2100 ms" in svg
