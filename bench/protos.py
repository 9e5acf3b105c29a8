"""The PROTOS c07-sip suite (4527 hostile INVITEs, OUSPG) against one real gateway.

    .venv/bin/python -m bench.protos [--cases 0-200,3631-3716] [--out bench/results/protos.json]
    .venv/bin/python -m bench.protos --fuzz [--seed 14] [--out bench/results/sip-fuzz.json]

``--fuzz`` sends the project's own grammar fuzzer's cases (``testbed/sip_fuzz.py``: every SIP
header and SDP field with overlong, format-string, non-UTF-8, NUL, overflow and separator
payloads, repeated and missing headers; 2717 cases in a fixed order) instead of PROTOS, with
the same checks and table.

Starts one gateway on loopback (``testbed.harness.GatewayProcess``: bundled models, default
config, its own ports, journal and log) and sends the cases one after another
(``testbed.protos``: how the placeholders are filled, how long an answer is waited for, what
is ACKed, hung up or cancelled). After every case an OPTIONS must get 200. A gateway that
died is counted (case number, exit code, its last log lines), and a fresh one takes the next
case. At the end: the answered calls whose journal record is not closed, and the log lines
with "Traceback" or "answering failed".

Prints the table and every case that did not end in a plain answer or drop; writes the
table, the per-case outcomes and the last log lines of every death to ``--out`` (JSON) and
a short Markdown report beside it (same name, ``.md``). Cases are read from
``../shared/sip-torture/`` next to the checkout. Exit status 0 when the acceptance of issue
14 holds: no death or hang, OPTIONS answered after every case, no 500, every answered call's
record closed, no Traceback / "answering failed" in the log.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from testbed import protos, sip_fuzz

ROOT = Path(__file__).resolve().parent.parent

DEFAULT_OUT = ROOT / "bench" / "results" / "protos.json"


def passed(summary: dict) -> bool:
    return not (summary["deaths"] or summary["hangs"] or summary["options_failures"]
                or summary["answers_500"] or summary["answered_not_closed"]
                or summary["records_open"] or summary["log_traceback_lines"]
                or summary["log_answering_failed_lines"])


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def markdown(summary: dict, meta: dict, outcomes: list[protos.Outcome]) -> str:
    deaths = [o for o in outcomes if o.died or o.hung]
    lines = [
        f"# {meta['suite']} against the gateway",
        "",
        f"`{meta['command']}` on {meta['started']}, commit `{meta['commit']}`"
        f"{' + uncommitted ' + ', '.join(meta['modified']) if meta['modified'] else ''}; "
        f"{meta['seconds']:.0f} s; "
        f"load average {meta['load_before']} before, {meta['load_after']} after "
        f"({os.cpu_count()} cores). Verdict: **{'pass' if meta['passed'] else 'FAIL'}**.",
        "",
        "```",
        protos.table(summary),
        "```",
    ]
    if deaths:
        lines += ["", "## Deaths", ""]
        for o in deaths:
            tail = next((x for x in reversed(o.last_log) if "Assertion" in x or "ERROR" in x),
                        o.last_log[-1] if o.last_log else "")
            lines.append(f"- case {o.case} ({o.group}): {'hung' if o.hung else 'died'}, exit "
                         f"{o.exit_code}, after {'; '.join(o.seen) or 'no answer'}: "
                         f"`{tail.strip()}`")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default=f"0-{protos.COUNT - 1}",
                    help="case numbers, ranges and lists: 0-200,3631-3716 (default: all)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT,
                    help="JSON file (a .md report is written beside it)")
    ap.add_argument("--wait-drop", type=float, default=0.3,
                    help="seconds to wait for a first answer before taking a drop (0.3)")
    ap.add_argument("--wait-final", type=float, default=3.0,
                    help="seconds to wait for a final answer after a 1xx (3)")
    ap.add_argument("--keep", action="store_true", help="keep the gateways' work folders")
    ap.add_argument("--fuzz", action="store_true",
                    help="the grammar fuzzer's cases (testbed/sip_fuzz.py) instead of PROTOS")
    args = ap.parse_args(argv)
    if args.fuzz and args.out == DEFAULT_OUT:
        args.out = DEFAULT_OUT.with_name("sip-fuzz.json")

    cases = ({c.number: c for c in sip_fuzz.cases()} if args.fuzz else protos.load())
    if args.fuzz and args.cases == ap.get_default("cases"):
        args.cases = f"0-{len(cases) - 1}"
    wanted = [n for n in protos.parse_ranges(args.cases) if n in cases]
    if not wanted:
        ap.error(f"no case in {args.cases!r} (there are 0-{len(cases) - 1})")
    started = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    # the code under test is what the gateway loads now, not what is committed at the end
    commit = _git("rev-parse", "--short", "HEAD")
    modified = [x[3:] for x in _git("status", "--porcelain").splitlines()
                if x[3:].startswith(("gateway/", "pipeline/"))]
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    work = Path(tempfile.mkdtemp(prefix="bench-protos-"))
    suite = "grammar fuzzer" if args.fuzz else "PROTOS c07-sip"
    print(f"{suite}: {len(wanted)} cases, gateways in {work}", flush=True)
    runner = protos.Runner(work, wait_drop=args.wait_drop, wait_final=args.wait_final,
                           say=lambda s: print(s, flush=True))
    t0 = time.monotonic()
    try:
        runner.start()
        print(f"  gateway 0 started in {runner.start_seconds[0]:.0f} s", flush=True)
        for i, n in enumerate(wanted, 1):
            out = runner.run(cases[n])
            if not out.died and not out.hung and (
                    out.outcome == "500" or out.options != 200 and out.outcome != "not sent"
                    or out.tracebacks or out.answering_failed):
                print(out.line(), flush=True)
            if i % 250 == 0:
                el = time.monotonic() - t0
                print(f"  ... {i}/{len(wanted)} cases in {el:.0f} s "
                      f"(~{el / i * (len(wanted) - i):.0f} s to go)", flush=True)
    finally:
        summary = runner.finish()
    seconds = time.monotonic() - t0
    meta = {
        "command": "python -m bench.protos " + " ".join(argv if argv is not None
                                                        else sys.argv[1:]),
        "started": started, "seconds": round(seconds, 1),
        "commit": commit,
        "modified": modified,  # the gateway runs from the working tree: edits count
        "load_before": load_before,
        "load_after": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "suite": suite, "cases_requested": args.cases, "wait_drop": args.wait_drop,
        "wait_final": args.wait_final,
    }
    meta["passed"] = passed(summary)
    print()
    print(protos.table(summary))
    print(f"\n{len(wanted)} cases in {seconds:.0f} s; verdict: "
          f"{'pass' if meta['passed'] else 'FAIL'}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "summary": summary,
                                    "table": protos.table(summary),
                                    "cases": protos.as_json(runner.outcomes)}, indent=1)
                        + "\n")
    md = args.out.with_suffix(".md")
    md.write_text(markdown(summary, meta, runner.outcomes))
    print(f"wrote {args.out} and {md}")
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"kept {work}")
    return 0 if meta["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
