"""The hand-written SIP corpus (tests/sip_corpus/*.sip): each case's expected outcomes, its
message rendered for a probe, and the probe itself.

A case file's first line is ``# OUTCOMES[ (seen: OUTCOMES)] | what it tests``; the rest is
the message, LF line ends sent as CRLF, with ``{host} {port} {lport} {branch} {tag} {callid}
{rtp}`` filled in, ``{len}`` the body length, and the macros ``{{rep:N:TEXT}}`` (TEXT N times,
``%d`` the index, ``\\n`` a line end), ``{{bytes:N}}`` (N seeded random bytes), ``{{hex:..}}``.
"""

from __future__ import annotations

import random
import re
import socket
from dataclasses import dataclass
from pathlib import Path

from testbed import sip_probe
from testbed.sip_probe import Probe

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "sip_corpus"


@dataclass(frozen=True)
class Case:
    path: Path
    expect: tuple[str, ...]
    seen: tuple[str, ...]  # a recorded deviation from the proper outcome (a finding)
    what: str
    template: str

    @property
    def name(self) -> str:
        return self.path.stem

    def allows(self, outcome: str, outcomes: tuple[str, ...]) -> bool:
        return any(o == outcome or (o == "4xx" and re.fullmatch(r"4\d\d", outcome))
                   for o in outcomes)


HEADER = re.compile(r"# ([\w,]+)(?: \(seen: ([\w,]+)\))? \| (.+)")
MACRO = re.compile(r"\{\{(rep|bytes|hex):([^}]*)\}\}")


def load_case(path: Path) -> Case:
    head, _, body = path.read_text("utf-8").partition("\n")
    m = HEADER.fullmatch(head)
    assert m, f"{path.name}: bad header line {head!r}"
    return Case(path, tuple(m.group(1).split(",")),
                tuple(m.group(2).split(",")) if m.group(2) else (), m.group(3), body)


def corpus() -> list[Case]:
    return [load_case(p) for p in sorted(CORPUS.glob("*.sip"))]


def render(case: Case, ctx: dict[str, object]) -> bytes:
    text = case.template.replace("\n", "\r\n")
    for key, value in ctx.items():
        text = text.replace("{" + key + "}", str(value))
    out, pos = bytearray(), 0
    rnd = random.Random(case.name)
    for m in MACRO.finditer(text):
        out += text[pos:m.start()].encode("utf-8")
        kind, arg = m.groups()
        if kind == "bytes":
            out += rnd.randbytes(int(arg))
        elif kind == "hex":
            out += bytes.fromhex(arg)
        else:
            n, _, unit = arg.partition(":")
            unit = unit.replace("\\n", "\r\n")
            out += "".join(unit.replace("%d", str(i)) for i in range(int(n))).encode()
        pos = m.end()
    data = bytes(out + text[pos:].encode("utf-8"))
    if b"{len}" in data:
        sep = data.find(b"\r\n\r\n")
        data = data.replace(b"{len}", str(len(data) - sep - 4 if sep >= 0 else 0).encode(), 1)
    return data


def probe(port: int, case: Case, rtp_port: int, **kw) -> tuple[Probe, socket.socket]:
    """``testbed.sip_probe.probe`` of one corpus case (rendered with the probe's context)."""
    return sip_probe.probe(port, lambda ctx: render(case, ctx), rtp_port, **kw)
