"""The README's picture of the call timeline page: a recorded call's page, as Chromium paints it.

    .venv/bin/python -m bench.timeline_shot [--out docs/timeline.png] [--size 1400x1000]

Renders the recorded call of the browser test (tests/data/timeline: a real soak-run call with
a barge-in; ``testbed.browser.timeline_page``) with ``voicebot calls show ID --html`` and its
turn WAVs, loads it in headless Chromium (Debian's ``chromium``, ``scripts/setup.sh install
--test``) and writes the screenshot. It fails if the page logged a console error.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from testbed import browser

ROOT = Path(__file__).resolve().parent.parent


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.partition("x")
    try:
        return int(width), int(height)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not WIDTHxHEIGHT: {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench.timeline_shot", description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "timeline.png"), metavar="PNG")
    ap.add_argument("--size", type=_size, default="{}x{}".format(*browser.WINDOW), metavar="WxH",
                    help="browser window (default %(default)s)")
    args = ap.parse_args(argv)
    if shutil.which(browser.CHROMIUM) is None:
        print("timeline_shot: needs chromium (scripts/setup.sh install --test)", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="timeline-shot-") as tmp:
        page = browser.timeline_page(Path(tmp))
        rendered = browser.chromium(page, out, Path(tmp) / "chromium", args.size)
        errors = browser.console_messages(rendered.log, page)
    if errors:
        print("timeline_shot: the page logged errors:\n" + "\n".join(errors), file=sys.stderr)
        return 1
    print(f"timeline_shot: wrote {out} ({out.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
