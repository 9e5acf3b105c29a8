"""The PROTOS c07-sip suite (OUSPG, 4527 hostile INVITEs) and the project's own grammar fuzzer
(``testbed/sip_fuzz.py``, 2717 cases) against the real gateway: a sample of each in the suite
(all of them: ``python -m bench.protos`` and ``python -m bench.protos --fuzz``).

One gateway (bundled models, default config; ``testbed.protos.Runner``) gets, one after
another, a deterministic sample of ~150 cases spread over every group of the suite (what
each case changes: the method, the Request-URI, each header, each SDP field), plus every
case whose SDP ``c=`` address is 254 bytes or longer (pjlib's host name limit: a gateway
that passes those on to pjsua aborts in ``pj_sockaddr_in_set_str_addr``). ~200 cases, ~1-2
min after the gateway's start.

Each case is one test: the gateway must not die, must answer OPTIONS afterwards, must not
answer 500 (a client error is a 4xx or a drop), must end an answered call cleanly (BYE 200),
and must not log a Traceback or "answering failed" meanwhile. Its outcome is printed (run
with ``-s`` to see them all; the last test prints the whole list and the table anyway). A
gateway that died is replaced so the next cases still run; after ``MAX_RESTARTS`` the
remaining cases fail as not run, so a broken gateway cannot hold the suite for long. The last
test checks that every answered call's journal record is closed and the logs are clean.

The cases are read from ``../shared/sip-torture/`` next to the checkout (``testbed.protos``).
"""

from __future__ import annotations

import re

import pytest

from testbed import protos, sip_fuzz, sip_probe

MAX_RESTARTS = 5
CASES = protos.load() if protos.TARBALL.exists() else {}
SELECTION = sorted(set(protos.sample(CASES)) | set(protos.long_c_address(CASES))) \
    if CASES else []
LONG_C = set(protos.long_c_address(CASES)) if CASES else set()
FUZZ = sip_fuzz.sample(sip_fuzz.cases(), n=120, seed=14)
VALID = sip_fuzz.valid_cases()


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    r = protos.Runner(tmp_path_factory.mktemp("protos"), max_restarts=MAX_RESTARTS)
    r.start()
    yield r
    if r.gateways and r.gw.proc.poll() is None:  # the summary test did not run
        r.gw.stop()


def test_the_suite_loads_and_fills():
    """All 4527 cases parse; once filled no placeholder is left, Content-Length is the
    body's length, 81 are over one datagram (as the suite's README says)."""
    cases = protos.load()
    assert sorted(cases) == list(range(protos.COUNT))
    ctx = {"host": "127.0.0.1", "port": 5060, "lport": 40000, "branch": "z9hG4bK-0a1b2c",
           "tag": "f00d", "callid": "c0ffee@x", "rtp": 0}
    placeholder = re.compile(
        rb"<(To|From|From-Address|Local-Port|From-IP|Call-ID|Branch-ID|CSeq|Content-Length|"
        rb"Teardown-Method)>")
    too_big = []
    for n, case in cases.items():
        invite, cancel = case.fill(ctx), case.fill(ctx, teardown=True)
        assert not placeholder.search(invite + cancel), n
        if len(invite) > sip_probe.MAX_DATAGRAM:
            too_big.append(n)
        m = re.search(rb"\r\nContent-Length: (\d+)\r\n", invite)
        if m and n not in range(2361, 2407):  # the Content-Length group changes the header
            assert int(m.group(1)) == protos.body_length(invite), n
    assert len(too_big) == 81, too_big
    valid = cases[0].fill(ctx).decode()
    body = valid.split("\r\n\r\n", 1)[1]
    assert valid.startswith("INVITE sip:bot@127.0.0.1:5060 SIP/2.0\r\n")
    for line in ("From: 0 <sip:protos@127.0.0.1:40000>;tag=0-f00d",
                 "Call-ID: c0ffee@127.0.0.1", "CSeq: 1 INVITE",
                 "Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK00000-0a1b2c",
                 f"Content-Length: {len(body)}"):
        assert f"\r\n{line}\r\n" in valid, line
    assert cases[0].fill(ctx, teardown=True).startswith(b"CANCEL sip:bot@127.0.0.1:5060 ")
    assert {protos.group_of(n) for n in SELECTION} == {g for _, _, g in protos.GROUPS}
    long_c = protos.long_c_address(cases)
    assert long_c and all(3423 <= n <= 3716 for n in long_c), long_c
    print(f"\n{len(SELECTION)} cases in the sample, {len(long_c)} with a c= address of "
          f"254+ bytes: {long_c}")


def check(runner: protos.Runner, case, what: str) -> protos.Outcome:
    try:
        out = runner.run(case)
    except protos.GaveUp as e:
        pytest.fail(f"not run: {e}")
    print(f"\n{out.line()}")
    if out.died or out.hung:
        tail = "\n".join(out.last_log)
        pytest.fail(f"the gateway {'died' if out.died else 'hung'} on {what} "
                    f"({out.group}; exit {out.exit_code}); its last log lines:\n{tail}")
    if out.outcome != "not sent":
        assert out.options == 200, f"OPTIONS after {what} got {out.options}"
    assert out.outcome != "500", f"{what} ({out.group}) got 500: {out.seen}"
    if out.answered:
        assert out.bye_status == 200, f"{what}: the answered call did not end cleanly"
    assert not out.tracebacks, f"{what}: {out.tracebacks} Traceback lines in the log"
    assert not out.answering_failed, f"{what}: 'answering failed' in the log"
    return out


@pytest.mark.parametrize("number", SELECTION)
def test_protos_case(runner, number):
    out = check(runner, CASES[number], f"PROTOS case {number}")
    if number in LONG_C:  # pjlib's assertion: these must be refused before pjsua
        assert out.outcome in ("400", "488", "513"), f"PROTOS case {number}: {out.seen}"


@pytest.mark.parametrize("case", FUZZ, ids=lambda c: f"fuzz{c.number}")
def test_fuzz_case(runner, case):
    """The grammar fuzzer's sample (every field and every mutation at least once)."""
    check(runner, case, f"fuzz case {case.number} ({case.describe()})")


@pytest.mark.parametrize("case", VALID, ids=lambda c: f"valid{c.number}")
def test_fuzz_valid_case(runner, case):
    """A legal but unusual INVITE (folding, whitespace, case, escaping, long legal values) is
    answered as the plain one is: the call is taken."""
    out = check(runner, case, f"valid case {case.number} ({case.describe()})")
    assert out.outcome == "200" and out.answered, (
        f"valid case {case.number} ({case.describe()}) answered {out.outcome}: {out.seen}")


def test_protos_summary(runner):
    """After the sample: the table, every case's outcome, closed records, clean logs."""
    summary = runner.finish()
    lines = [o.line() for o in runner.outcomes]
    text = protos.table(summary)
    print("\n" + "\n".join(lines) + "\n\n" + text)
    (runner.workdir / "outcomes.txt").write_text("\n".join(lines) + "\n\n" + text + "\n")
    assert runner.outcomes, "no case ran"
    assert summary["deaths"] == 0 and summary["hangs"] == 0, text
    assert summary["options_failures"] == 0, text
    assert summary["answers_500"] == 0, text
    assert summary["answered_not_closed"] == 0 and summary["records_open"] == 0, (
        f"{text}\n{summary['journals']}")
    assert summary["log_traceback_lines"] == 0, text
    assert summary["log_answering_failed_lines"] == 0, text
    assert summary["last_exit_code"] == 0, f"the last gateway exited with " \
        f"{summary['last_exit_code']}"
