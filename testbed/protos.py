"""The PROTOS c07-sip suite (OUSPG): load its 4527 INVITE cases, fill them in, send them one
after another to a real gateway and tally what happens. Used by ``tests/e2e/test_protos.py`` (a
sample) and ``bench/protos.py`` (all of them).

The cases are read from ``../shared/sip-torture/protos-c07-sip.tar.xz`` next to the checkout
(format in that folder's README.md): the tarball is read in memory at run time (37 MB
unpacked, ~0.5 s), nothing is unpacked into the checkout. Each ``cases/NNNNNNN`` file is
``<len> <INVITE><len> <teardown>``; the lengths are those of the unfilled templates.

Filling (``ProtosCase.fill``): ``<To>`` = the gateway (``bot@127.0.0.1:PORT``), ``<From>``
= the prober's own socket (``protos@127.0.0.1:LPORT``), ``<From-Address>`` and
``<From-IP>`` = 127.0.0.1, ``<Local-Port>`` = LPORT, a fresh ``<Call-ID>`` and
``<Branch-ID>`` per send, ``<CSeq>`` = 1, ``<Teardown-Method>`` = CANCEL, and
``<Content-Length>`` = the length of the body once everything else is filled (after the
first empty line; 0 for the cases that have none). The suite's From tag is the case number
(``;tag=N``); it gets a fresh suffix (``;tag=N-<hex>``) where the From line ends that way
(not where the case garbles the From header). A filled INVITE longer than one UDP datagram
(65507 bytes) is not sent (outcome ``not sent``).

Sending (``Runner``): ``testbed.sip_probe.probe`` sends the INVITE, waits ``wait_drop`` for
an answer, up to ``wait_final`` once a 1xx came; a 2xx is ACKed and hung up at once (BYE),
another final answer ACKed; with no final answer the case's teardown (CANCEL) is sent. Then
an OPTIONS must get 200; answers that came late are folded in (a late 2xx is ACKed and hung
up too). A gateway that died (or stopped answering OPTIONS twice) is logged with its last
log lines and replaced by a fresh one on new ports and a new journal.
"""

from __future__ import annotations

import collections
import functools
import random
import re
import socket
import tarfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from testbed import sip_probe
from testbed.harness import GatewayProcess

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / ".." / "shared" / "sip-torture"
TARBALL = SUITE / "protos-c07-sip.tar.xz"
COUNT = 4527

# The case groups: which field of case 0 (the valid INVITE) each case changes, found by
# comparing every case with case 0 line by line (the suite's documentation lists the same
# fields in this order). Inclusive ranges.
GROUPS: tuple[tuple[int, int, str], ...] = (
    (0, 0, "valid"), (1, 193, "method"), (194, 254, "request-uri"),
    (255, 329, "sip-version"), (330, 629, "via"), (630, 956, "from"),
    (957, 1242, "contact"), (1243, 1467, "to"), (1468, 1782, "call-id"),
    (1783, 1828, "expires"), (1829, 1874, "max-forwards"), (1875, 2113, "cseq"),
    (2114, 2360, "content-type"), (2361, 2406, "content-length"),
    (2407, 2436, "line-ends"), (2437, 2691, "sdp-v"), (2692, 3229, "sdp-o"),
    (3230, 3422, "sdp-s"), (3423, 3716, "sdp-c"), (3717, 3763, "sdp-t"),
    (3764, 4166, "sdp-m"), (4167, 4526, "sdp-a"),
)
PJ_MAX_HOSTNAME = 254
"""pjlib's host name limit: ``pj_sockaddr_in_set_str_addr`` asserts ``slen < 254``."""


def group_of(number: int) -> str:
    for lo, hi, name in GROUPS:
        if lo <= number <= hi:
            return name
    raise ValueError(f"no PROTOS case {number}")


_LEN = re.compile(rb"(\d+) ")
_FROM_TAG = re.compile(rb"^(From:[^\r\n]*;tag=)(\d+)(\r?\n)", re.M)
_C_ADDRESS = re.compile(rb"^c=[^ \r\n]* [^ \r\n]* ([^/ \t\r\n]*)", re.M)


def body_start(message: bytes) -> int | None:
    """Where the body starts: after the first CRLF CRLF, or the first LF LF in a message
    without one; None: no body. (Some cases put LF LF into the request line on purpose:
    their body is still the SDP after the CRLF CRLF.)"""
    for sep in (b"\r\n\r\n", b"\n\n"):
        at = message.find(sep)
        if at >= 0:
            return at + len(sep)
    return None


def body_length(message: bytes) -> int:
    start = body_start(message)
    return 0 if start is None else len(message) - start


@dataclass(frozen=True)
class ProtosCase:
    number: int
    invite: bytes  # the templates, placeholders unfilled
    teardown: bytes

    @property
    def group(self) -> str:
        return group_of(self.number)

    def fill(self, ctx: dict, teardown: bool = False) -> bytes:
        """The INVITE (or its teardown) filled for a probe's ``ctx`` (sip_probe.probe)."""
        host = str(ctx["host"]).encode()
        lport = str(ctx["lport"]).encode()
        values = {
            b"<To>": b"bot@%s:%d" % (host, int(ctx["port"])),
            b"<From>": b"protos@%s:%s" % (host, lport),
            b"<From-Address>": host, b"<From-IP>": host, b"<Local-Port>": lport,
            b"<Call-ID>": str(ctx["callid"]).split("@")[0].encode(),
            b"<Branch-ID>": str(ctx["branch"]).removeprefix("z9hG4bK").encode(),
            b"<CSeq>": b"1", b"<Teardown-Method>": b"CANCEL",
        }
        tag = str(ctx["tag"]).encode()
        data = _FROM_TAG.sub(lambda m: m.group(1) + m.group(2) + b"-" + tag + m.group(3),
                             self.teardown if teardown else self.invite, count=1)
        for key, value in values.items():
            data = data.replace(key, value)
        return data.replace(b"<Content-Length>", str(body_length(data)).encode())

    def c_address_length(self) -> int:
        """Length of the longest SDP ``c=`` address once filled (0: no c= line with one)."""
        start = body_start(self.invite)
        body = b"" if start is None else self.invite[start:]
        body = body.replace(b"<From-IP>", b"127.0.0.1").replace(b"<From-Address>",
                                                                b"127.0.0.1")
        return max((len(m.group(1)) for m in _C_ADDRESS.finditer(body)), default=0)


def parse(number: int, data: bytes) -> ProtosCase:
    m = _LEN.match(data)
    if not m:
        raise ValueError(f"PROTOS case {number}: no length prefix")
    end = m.end() + int(m.group(1))
    invite = data[m.end():end]
    m2 = _LEN.match(data, end)
    if not m2 or len(invite) != int(m.group(1)):
        raise ValueError(f"PROTOS case {number}: no teardown after the INVITE")
    teardown = data[m2.end():m2.end() + int(m2.group(1))]
    if len(teardown) != int(m2.group(1)) or m2.end() + len(teardown) != len(data):
        raise ValueError(f"PROTOS case {number}: teardown length does not match")
    return ProtosCase(number, invite, teardown)


@functools.lru_cache(maxsize=2)
def load(tarball: Path = TARBALL) -> dict[int, ProtosCase]:
    """{case number: case}, all of the suite, read from the tarball."""
    if not tarball.exists():
        raise FileNotFoundError(
            f"{tarball.resolve()} not found: the PROTOS suite is read from "
            f"../shared/sip-torture/ next to the checkout")
    cases: dict[int, ProtosCase] = {}
    with tarfile.open(tarball, "r:xz") as tar:
        for member in tar:
            name = member.name.rsplit("/", 1)[-1]
            if member.isfile() and member.name.startswith("cases/") and name.isdigit():
                cases[int(name)] = parse(int(name), tar.extractfile(member).read())
    return dict(sorted(cases.items()))


def long_c_address(cases: dict[int, ProtosCase]) -> list[int]:
    """The cases whose SDP c= address is at least pjlib's 254-byte host name limit (a
    gateway without its own check aborts on them; see the field notes)."""
    return [n for n, c in cases.items() if c.c_address_length() >= PJ_MAX_HOSTNAME]


def sample(cases: dict[int, ProtosCase], n: int = 150, seed: int = 14) -> list[int]:
    """A deterministic sample of about ``n`` cases spread over every group (at least 3 per
    group, the rest in proportion to the group's size), case 0 always in."""
    rnd = random.Random(seed)
    by_group: dict[str, list[int]] = collections.defaultdict(list)
    for number in cases:
        by_group[group_of(number)].append(number)
    picked = {0} if 0 in cases else set()
    for members in by_group.values():
        k = min(len(members), max(3, round(n * len(members) / len(cases))))
        picked.update(rnd.sample(members, k))
    return sorted(picked)


def parse_ranges(text: str) -> list[int]:
    """``"0-200,3631-3716,4000"`` -> case numbers (inclusive ranges)."""
    out: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


# --------------------------------------------------------------------------- running


def answer_class(outcome: str) -> str:
    """The table row of an outcome: ``2xx``, each other status code, ``drop``, ``not sent``."""
    if outcome.isdigit() and outcome.startswith("2"):
        return "2xx"
    return outcome


def printable(text: str, limit: int = 120) -> str:
    """ASCII-only, bounded (status lines and log lines may hold hostile bytes)."""
    out = text.encode("ascii", "backslashreplace").decode("ascii")
    return out if len(out) <= limit else out[:limit] + "..."


@dataclass
class Outcome:
    case: int
    group: str
    outcome: str  # "not sent", "drop", or the first final status code
    seen: list[str]  # status lines received (ASCII-escaped)
    answered: bool = False
    bye_status: int | None = None
    options: int | None = None  # the OPTIONS after the case (None: no answer)
    died: bool = False  # the gateway process was gone after this case
    hung: bool = False  # alive but OPTIONS unanswered twice: replaced
    exit_code: int | None = None
    gateway: int = 0  # which gateway (0 = the first, 1 = its first replacement, ...)
    seconds: float = 0.0
    tracebacks: int = 0  # log lines with "Traceback" / "answering failed" during the case
    answering_failed: int = 0
    last_log: list[str] = field(default_factory=list)  # after a death or a hang

    def line(self) -> str:
        extra = []
        if self.answered:
            extra.append(f"answered, BYE {self.bye_status}")
        if self.died:
            extra.append(f"GATEWAY DIED (exit {self.exit_code})")
        if self.hung:
            extra.append("GATEWAY HUNG")
        if self.options != 200 and not self.died and self.outcome != "not sent":
            extra.append(f"OPTIONS {self.options}")
        if self.tracebacks or self.answering_failed:
            extra.append(f"log: {self.tracebacks} Traceback, "
                         f"{self.answering_failed} answering failed")
        seen = "; ".join(self.seen) or "no answer"
        return (f"case {self.case:4d} {self.group:14} {self.outcome:>8}  "
                f"({printable(seen, 90)}){' [' + '; '.join(extra) + ']' if extra else ''}")


@dataclass
class _Incarnation:
    gw: GatewayProcess
    answered: list[str | None] = field(default_factory=list)  # Call-IDs of the 2xx
    log_offset: int = 0


def _log_lines_since(gw: GatewayProcess, offset: int) -> tuple[list[str], int]:
    with gw.log_path.open("rb") as f:
        f.seek(offset)
        data = f.read()
    return data.decode("utf-8", "replace").splitlines(), offset + len(data)


class GaveUp(RuntimeError):
    """The gateway was replaced ``max_restarts`` times already: no case is sent any more."""


class Runner:
    """Sends PROTOS cases one after another to a real gateway (bundled models, default
    config, its own ports and journal under ``workdir``) and replaces it when it dies or
    hangs, ``max_restarts`` times at most (None: always)."""

    def __init__(self, workdir: Path, wait_drop: float = 0.3, wait_final: float = 3.0,
                 extra_toml: str = "", say: Callable[[str], None] = print,
                 max_restarts: int | None = None) -> None:
        self.workdir = workdir
        self.max_restarts = max_restarts
        self.gave_up = False
        self.last_exit_code: int | None = None
        self.wait_drop, self.wait_final = wait_drop, wait_final
        self.extra_toml = extra_toml
        self.say = say
        self.gateways: list[_Incarnation] = []
        self.outcomes: list[Outcome] = []
        self.start_seconds: list[float] = []

    @property
    def gw(self) -> GatewayProcess:
        return self.gateways[-1].gw

    def start(self) -> GatewayProcess:
        n = len(self.gateways)
        gw = GatewayProcess(self.workdir / f"gw{n}", extra_toml=self.extra_toml)
        self.gateways.append(_Incarnation(gw))
        t0 = time.monotonic()
        gw.start()
        self.start_seconds.append(time.monotonic() - t0)
        self.gateways[-1].log_offset = gw.log_path.stat().st_size
        if n:
            self.say(f"  gateway {n} started in {self.start_seconds[-1]:.0f} s")
        return gw

    def run(self, case: ProtosCase) -> Outcome:
        if self.gave_up:
            raise GaveUp(f"case {case.number} not sent: the gateway died or hung "
                         f"{len(self.gateways)} times (cases "
                         f"{[o.case for o in self.outcomes if o.died or o.hung]})")
        if not self.gateways:
            self.start()
        inc = self.gateways[-1]
        gw = inc.gw
        t0 = time.monotonic()
        result, sock = sip_probe.probe(
            gw.sip_port, case.fill, 0, wait_drop=self.wait_drop, wait_final=self.wait_final,
            teardown=functools.partial(case.fill, teardown=True))
        out = Outcome(case.number, case.group, result.outcome, [], gateway=len(self.gateways)
                      - 1)
        try:
            if result.outcome != "not sent" and gw.proc.poll() is None:
                out.options = sip_probe.options_status(gw.sip_port)
                if out.options is None and gw.proc.poll() is None:
                    out.options = sip_probe.options_status(gw.sip_port)  # a second chance
                    out.hung = out.options is None and gw.proc.poll() is None
                self._settle_late(result, sock, gw.sip_port)
        finally:
            sock.close()
        out.seen = [printable(s) for s in result.seen]
        out.outcome, out.answered, out.bye_status = result.outcome, result.answered, \
            result.bye_status
        if result.answered:
            inc.answered.append(result.call_id)
        lines, inc.log_offset = _log_lines_since(gw, inc.log_offset)
        out.tracebacks = sum("Traceback" in x for x in lines)
        out.answering_failed = sum("answering failed" in x for x in lines)
        if gw.proc.poll() is not None or out.hung:
            out.died = not out.hung
            out.last_log = [printable(x, 300) for x in gw.log().splitlines()[-25:]]
            if out.hung:
                gw.proc.kill()
            gw.stop()
            out.exit_code = gw.proc.returncode
            out.seconds = time.monotonic() - t0
            self.outcomes.append(out)
            self.say(out.line())
            if self.max_restarts is not None and len(self.gateways) > self.max_restarts:
                self.gave_up = True
            else:
                self.start()
            return out
        out.seconds = time.monotonic() - t0
        self.outcomes.append(out)
        return out

    def _settle_late(self, result: sip_probe.Probe, sock: socket.socket, port: int) -> None:
        """Fold late answers in; ACK a late final answer to the INVITE, and hang up a late
        2xx (ACK + BYE), waiting briefly for the BYE's answer."""
        for m in sip_probe.add_late_answers(result, sock):
            if m.status is None:
                if m.method not in ("ACK", None):
                    sip_probe.answer_request(sock, ("127.0.0.1", port), m)
            elif m.cseq_method == "INVITE" and m.status >= 300:
                sip_probe.ack_non_2xx(sock, port, m, {})
            elif m.cseq_method == "INVITE" and m.status >= 200 and not result.answered:
                result.answered, result.call_id = True, m.header("Call-ID")
                sip_probe.ack_and_bye(sock, port, m)
                end = time.monotonic() + 3.0
                while time.monotonic() < end and result.bye_status is None:
                    sock.settimeout(max(0.01, end - time.monotonic()))
                    try:
                        data, addr = sock.recvfrom(65535)
                    except (TimeoutError, OSError):
                        break
                    r = sip_probe.received(data)
                    if r.status is None and r.method not in ("ACK", None):
                        sip_probe.answer_request(sock, addr, r)
                    elif r.cseq_method == "BYE" and r.status and r.status >= 200:
                        result.bye_status = r.status

    def finish(self, settle: float = 15.0) -> dict:
        """Wait for the answered calls' records to close (``settle`` s at most), stop the
        gateway, and return the summary (``summarize``)."""
        from gateway.calls import records

        gw = self.gw if self.gateways else None
        if gw is not None and gw.proc is not None and gw.proc.poll() is None:
            end = time.monotonic() + settle
            path = gw.workdir / "calls.jsonl"
            while time.monotonic() < end:
                recs = records.read(path).records() if path.exists() else []
                if len(recs) >= len(self.gateways[-1].answered) and all(
                        r.get("state") == "closed" for r in recs):
                    break
                time.sleep(0.5)
            self.last_exit_code = gw.stop()
            if self.last_exit_code != 0:
                self.say(f"  the last gateway exited with {self.last_exit_code}")
        journals = []
        for i, inc in enumerate(self.gateways):
            path = inc.gw.workdir / "calls.jsonl"
            recs = records.read(path).records() if path.exists() else []
            journals.append(journal_check(i, inc.answered, recs))
        logs = [inc.gw.log() for inc in self.gateways]
        summary = summarize(self.outcomes, journals, logs, self.start_seconds)
        summary["last_exit_code"] = self.last_exit_code
        summary["gave_up"] = self.gave_up
        return summary


def journal_check(gateway: int, answered: list[str | None], recs: list[dict]) -> dict:
    """Answered calls (Call-IDs of the 2xx seen) against one gateway's journal. A record is
    matched by its ``sip_call_id``; Call-IDs the journal stores escaped (hostile bytes) are
    matched by count against the closed records left over."""
    closed = [r for r in recs if r.get("state") == "closed"]
    free = collections.Counter(r.get("sip_call_id") for r in closed)
    unmatched = 0
    for call_id in answered:
        if call_id is not None and free[call_id] > 0:
            free[call_id] -= 1
        else:
            unmatched += 1
    spare_closed = sum(free.values())
    not_closed = max(0, unmatched - spare_closed)
    return {"gateway": gateway, "answered": len(answered), "records": len(recs),
            "records_closed": len(closed), "records_open": len(recs) - len(closed),
            "answered_not_closed": not_closed}


def summarize(outcomes: Iterable[Outcome], journals: list[dict], logs: list[str],
              start_seconds: list[float] | None = None) -> dict:
    outcomes = list(outcomes)
    classes = collections.Counter(answer_class(o.outcome) for o in outcomes)
    return {
        "cases": len(outcomes),
        "answers": dict(sorted(classes.items(), key=lambda kv: _class_order(kv[0]))),
        "answers_500": classes.get("500", 0),
        "answers_500_cases": [o.case for o in outcomes if o.outcome == "500"],
        "deaths": sum(o.died for o in outcomes),
        "death_cases": [o.case for o in outcomes if o.died],
        "hangs": sum(o.hung for o in outcomes),
        "hang_cases": [o.case for o in outcomes if o.hung],
        "options_failures": sum(1 for o in outcomes
                                if o.options != 200 and not o.died and o.outcome != "not sent"),
        "options_failure_cases": [o.case for o in outcomes if o.options != 200
                                  and not o.died and o.outcome != "not sent"],
        "answered": sum(o.answered for o in outcomes),
        "answered_bye_not_200": [o.case for o in outcomes if o.answered and o.bye_status != 200],
        "answered_not_closed": sum(j["answered_not_closed"] for j in journals),
        "records_open": sum(j["records_open"] for j in journals),
        "journals": journals,
        "log_traceback_lines": sum(x.count("Traceback") for x in logs),
        "log_answering_failed_lines": sum(
            sum("answering failed" in line for line in x.splitlines()) for x in logs),
        "traceback_cases": [o.case for o in outcomes if o.tracebacks],
        "answering_failed_cases": [o.case for o in outcomes if o.answering_failed],
        "gateways_started": len(journals),
        "gateway_start_seconds": [round(s, 1) for s in start_seconds or []],
    }


def _class_order(key: str) -> tuple:
    if key == "2xx":
        return (2, 0)
    if key.isdigit():
        return (int(key[0]), int(key))
    return (9, key)


def _ranges(numbers: list[int]) -> str:
    """[1, 2, 3, 7] -> "1-3, 7"."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def table(summary: dict) -> str:
    """The summary as a plain-text table."""
    rows = [f"{summary['cases']} cases", "", "answers by class:"]
    for key, n in summary["answers"].items():
        name = {"drop": "drop / no answer", "2xx": "2xx (call answered)"}.get(key, key)
        rows.append(f"  {name:24} {n:6d}")
    rows += [
        "",
        f"  {'500 answers':24} {summary['answers_500']:6d}"
        + (f"  cases {_ranges(summary['answers_500_cases'])}"
           if summary["answers_500_cases"] else ""),
        f"  {'gateway deaths':24} {summary['deaths']:6d}"
        + (f"  cases {_ranges(summary['death_cases'])}" if summary["death_cases"] else ""),
        f"  {'gateway hangs':24} {summary['hangs']:6d}"
        + (f"  cases {_ranges(summary['hang_cases'])}" if summary["hang_cases"] else ""),
        f"  {'OPTIONS failed after':24} {summary['options_failures']:6d}"
        + (f"  cases {_ranges(summary['options_failure_cases'])}"
           if summary["options_failure_cases"] else ""),
        f"  {'answered calls':24} {summary['answered']:6d}"
        + (f"  BYE not 200: {_ranges(summary['answered_bye_not_200'])}"
           if summary["answered_bye_not_200"] else ""),
        f"  {'answered, record open':24} {summary['answered_not_closed']:6d}"
        f"  (open records in the journals: {summary['records_open']})",
        f"  {'log lines Traceback':24} {summary['log_traceback_lines']:6d}"
        + (f"  cases {_ranges(summary['traceback_cases'])}"
           if summary["traceback_cases"] else ""),
        f"  {'log: answering failed':24} {summary['log_answering_failed_lines']:6d}"
        + (f"  cases {_ranges(summary['answering_failed_cases'])}"
           if summary["answering_failed_cases"] else ""),
        f"  {'gateways started':24} {summary['gateways_started']:6d}",
    ]
    return "\n".join(rows)


def as_json(outcomes: Iterable[Outcome]) -> list[dict]:
    return [asdict(o) for o in outcomes]
