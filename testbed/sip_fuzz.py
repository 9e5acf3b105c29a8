"""A grammar-based fuzzer for SIP INVITEs and their SDP: seeded and reproducible.

The grammar is a valid INVITE as a list of header fields and SDP lines; each value is cut
into atoms at its separators (``: ; , / @ < > = space``). A case replaces one atom (or a
whole value, or a separator) of one field with one payload, or repeats or drops one header:

- overlong values at and around the usual limits (253/254/255 bytes: pjlib's host name
  limit; 1 K, 8 K, and 64 K, which is over one UDP datagram and so reported as not sent),
  as letters, digits and dotted host names;
- format strings, non-UTF-8 bytes (and a UTF-8 encoded surrogate), NUL and C0 controls;
- integer overflows (2^31, 2^32, 2^64, -1, 20 digits), an empty value;
- a separator dropped or doubled; a header repeated (twice, 100 times) or missing.

``valid_cases()`` are the other side: one legal but unusual change per case (RFC 4475's
shapes), which a compliant user agent answers as it answers the plain INVITE (the call is
taken: 200): a header folded onto a second line, whitespace before the colon and around
separators, a header name in mixed case, a %-escaped character in a URI's user part, a long
legal parameter or product token, the SIP version in lower case (RFC 3261 7.1: it is
case-insensitive).

``cases()`` enumerates every (field, atom, payload) combination in a fixed order;
``sample(n, seed)`` picks a subset that still covers every field and every payload. A case
is filled like a PROTOS case (``fill(ctx, teardown=False)``, the probe's context from
``testbed.sip_probe.probe``), so ``testbed.protos.Runner`` sends it to a real gateway.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass

HEADERS: tuple[tuple[str, str], ...] = (
    ("Via", "SIP/2.0/UDP {host}:{lport};branch={branch};rport"),
    ("Max-Forwards", "70"),
    ("From", '"Fuzz" <sip:fuzz@{host}:{lport}>;tag={tag}'),
    ("To", "<sip:bot@{host}:{port}>"),
    ("Call-ID", "{callid}"),
    ("CSeq", "1 INVITE"),
    ("Contact", "<sip:fuzz@{host}:{lport};transport=udp>"),
    ("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS"),
    ("Supported", "replaces, timer"),
    ("Session-Expires", "1800;refresher=uac"),
    ("Expires", "120"),
    ("User-Agent", "voicebot-fuzz/1"),
    ("Content-Type", "application/sdp"),
    ("Content-Length", "{length}"),
)
REQUEST_LINE = ("INVITE", "sip:bot@{host}:{port}", "SIP/2.0")
SDP: tuple[tuple[str, str], ...] = (
    ("v", "0"),
    ("o", "fuzz 1 1 IN IP4 {host}"),
    ("s", "-"),
    ("c", "IN IP4 {host}"),
    ("b", "AS:64"),
    ("t", "0 0"),
    ("m", "audio {rtp} RTP/AVP 9 0 101"),
    ("a", "rtpmap:9 G722/8000"),
    ("a", "rtpmap:0 PCMU/8000"),
    ("a", "rtpmap:101 telephone-event/8000"),
    ("a", "fmtp:101 0-16"),
    ("a", "ptime:20"),
    ("a", "rtcp:{rtcp} IN IP4 {host}"),
    ("a", "sendrecv"),
)

PAYLOADS: tuple[tuple[str, bytes], ...] = (
    ("a253", b"a" * 253), ("a254", b"a" * 254), ("a255", b"a" * 255),
    ("host254", (b"h" * 62 + b".") * 4 + b"ab"),  # a well-formed 254-byte host name
    ("a1k", b"a" * 1024), ("a8k", b"a" * 8192), ("a64k", b"a" * 65536),
    ("digits255", b"9" * 255), ("digits1k", b"1" * 1024),
    ("fmt", b"%s%s%s%n%x%d%p" * 4), ("fmt_long", b"%n" * 600),
    ("not_utf8", b"\xff\xfe\xc3\x28\xa0\xa1"), ("surrogate", b"\xed\xa0\x80x"),
    ("nul", b"a\x00b"), ("controls", b"\x01\x07\x1b[31m\x7f"),
    ("int2^31", b"2147483648"), ("int2^32", b"4294967296"), ("int2^64", b"18446744073709551616"),
    ("minus1", b"-1"), ("digits20", b"99999999999999999999"), ("empty", b""),
)
"""(name, bytes) put in place of one atom of a field."""

STRUCTURAL = ("sep_drop", "sep_double", "repeat2", "repeat100", "missing")
"""Mutations of a field's shape rather than its content (per field, not per atom)."""

VALID = ("fold", "spaces", "name_case", "escape", "long_value")
"""Legal changes of a field (``valid_cases``): the message stays a valid INVITE."""

_ATOM = re.compile(r"[^:;,/@<>= ]+")
_SEPARATOR = re.compile(r"[:;,/@<>= ]")
MAX_DATAGRAM = 65507


@dataclass(frozen=True)
class Target:
    kind: str  # "line" (request line), "header" or "sdp"
    index: int  # into REQUEST_LINE (one per part), HEADERS or SDP
    name: str  # for reports: "request-uri", "Via", "sdp-c", ...


def _targets() -> list[Target]:
    out = [Target("line", i, n) for i, n in enumerate(("method", "request-uri", "version"))]
    out += [Target("header", i, name) for i, (name, _) in enumerate(HEADERS)]
    out += [Target("sdp", i, f"sdp-{k}{i}") for i, (k, _) in enumerate(SDP)]
    return out


TARGETS = _targets()


@dataclass(frozen=True)
class FuzzCase:
    number: int
    target: Target
    mutation: str  # a PAYLOADS name or a STRUCTURAL one
    atom: int | None  # which atom of the (filled) value; None: the whole value

    @property
    def group(self) -> str:
        return f"fuzz-{self.target.name}"[:14]

    def describe(self) -> str:
        where = "whole" if self.atom is None else f"atom {self.atom}"
        return f"{self.target.name} {where}: {self.mutation}"

    def atom_text(self, ctx: dict) -> str | None:
        """The text of the atom this case replaces, filled from ``ctx`` (None: no atom)."""
        if self.atom is None or self.mutation in STRUCTURAL:
            return None
        atoms = _ATOM.findall(_template(self.target).format(**_values(ctx), length="0"))
        return atoms[self.atom % len(atoms)] if atoms else None

    def fill(self, ctx: dict, teardown: bool = False) -> bytes:
        values = _values(ctx)
        line = [p.format(**values).encode() for p in REQUEST_LINE]
        headers = [(n.encode(), v.format(length="{length}", **values).encode())
                   for n, v in HEADERS]
        sdp = [(k.encode(), v.format(**values).encode()) for k, v in SDP]
        if teardown:  # a CANCEL of the unmutated INVITE (same branch, Call-ID, tags)
            cancel = [(n, v) for n, v in headers
                      if n in (b"Via", b"From", b"To", b"Call-ID", b"Max-Forwards")]
            cancel += [(b"CSeq", b"1 CANCEL"), (b"Content-Length", b"0")]
            return _render([b"CANCEL", line[1], line[2]], cancel, None)
        t = self.target
        if t.kind == "line":
            line[t.index] = self._mutate_value(line[t.index])
        elif t.kind == "header":
            headers = self._mutate_list(headers, t.index)
        else:
            sdp = self._mutate_list(sdp, t.index)
        return _render(line, headers, sdp)

    def _mutate_list(self, fields: list[tuple[bytes, bytes]], index: int
                     ) -> list[tuple[bytes, bytes]]:
        fields = list(fields)
        name, value = fields[index]
        if self.mutation in VALID:
            fields[index] = legal_change(self.mutation, name, value)
        elif self.mutation == "missing":
            del fields[index]
        elif self.mutation == "repeat2":
            fields.insert(index, (name, value))
        elif self.mutation == "repeat100":
            fields[index:index + 1] = [(name, value)] * 100
        else:
            fields[index] = (name, self._mutate_value(value))
        return fields

    def _mutate_value(self, value: bytes) -> bytes:
        if self.mutation in VALID:
            return legal_change(self.mutation, b"", value)[1]
        text = value.decode("latin-1")
        if self.mutation in ("sep_drop", "sep_double"):
            seps = list(_SEPARATOR.finditer(text))
            if not seps:
                return value + (b"" if self.mutation == "sep_drop" else b";;")
            m = seps[(self.atom or 0) % len(seps)]
            glue = "" if self.mutation == "sep_drop" else m.group(0) * 2
            return (text[:m.start()] + glue + text[m.end():]).encode("latin-1")
        if self.mutation in ("missing", "repeat2", "repeat100"):  # request line parts
            return b"" if self.mutation == "missing" else value + b" " + value
        payload = dict(PAYLOADS)[self.mutation]
        atoms = list(_ATOM.finditer(text))
        if self.atom is None or not atoms:
            return payload
        m = atoms[self.atom % len(atoms)]
        return text[:m.start()].encode("latin-1") + payload + text[m.end():].encode("latin-1")


RTP_PORT = 49170
"""Where the offer's RTP goes when the probe gives no port (``rtp`` 0): a port of 0 would
decline the stream, and every case would end in 488 before its mutation mattered."""


def _values(ctx: dict) -> dict[str, str]:
    values = {k: str(v) for k, v in ctx.items()}
    rtp = int(ctx.get("rtp", 0) or 0) or RTP_PORT
    values["rtp"], values["rtcp"] = str(rtp), str(rtp + 1)
    return values


def _render(line: list[bytes], headers: list[tuple[bytes, bytes]],
            sdp: list[tuple[bytes, bytes]] | None) -> bytes:
    body = b"".join(k + b"=" + v + b"\r\n" for k, v in sdp) if sdp is not None else b""
    head = b" ".join(line) + b"\r\n" + b"".join(
        n + b": " + v.replace(b"{length}", str(len(body)).encode()) + b"\r\n"
        for n, v in headers)
    return head + b"\r\n" + body


def _template(target: Target) -> str:
    """The unfilled text of a target's value."""
    if target.kind == "line":
        return REQUEST_LINE[target.index]
    return (HEADERS if target.kind == "header" else SDP)[target.index][1]


def _atom_count(target: Target) -> int:
    ctx = {"host": "127.0.0.1", "port": 5060, "lport": 40000, "branch": "z9hG4bK-1",
           "tag": "t", "callid": "c@x", "rtp": 4000}
    return len(_ATOM.findall(_template(target).format(**_values(ctx), length="0")))


def cases() -> list[FuzzCase]:
    """Every case, in a fixed order: for each field, each payload on the whole value and on
    each of its atoms, then the structural mutations."""
    out: list[FuzzCase] = []

    def add(target: Target, mutation: str, atom: int | None) -> None:
        out.append(FuzzCase(len(out), target, mutation, atom))

    for target in TARGETS:
        atoms = _atom_count(target)
        for name, _ in PAYLOADS:
            add(target, name, None)
            if atoms > 1:
                for i in range(atoms):
                    add(target, name, i)
        for mutation in STRUCTURAL:
            add(target, mutation, 0)
    return out


_USER = re.compile(rb"(sips?:)([A-Za-z])")
_PARAMS = (b"Via", b"From", b"To", b"Contact", b"Session-Expires")


def legal_change(mutation: str, name: bytes, value: bytes) -> tuple[bytes, bytes]:
    """(name, value) changed in a way RFC 3261's grammar allows (``VALID``); unchanged where
    the change does not apply (``applies`` tells)."""
    if mutation == "fold":  # LWS may hold a line break before whitespace (RFC 3261 7.3.1)
        # the first ';' outside <...> (a URI holds no whitespace)
        m = re.match(rb"(?:[^<;]|<[^>]*>)*;", value) if name else None
        if m is not None:  # SEMI = SWS ";" SWS
            cut = m.end() - 1
            return name, value[:cut] + b"\r\n \t" + value[cut:]
        return name, b"\r\n  " + value  # after HCOLON
    if mutation == "spaces":  # HCOLON = *( SP / HTAB ) ":" SWS
        return name + b" \t", b"   " + value
    if mutation == "name_case":
        if not name:  # the request line's SIP-Version is case-insensitive (RFC 3261 7.1)
            return name, value.lower() if value.startswith(b"SIP/") else value
        return bytes(c ^ 0x20 if i % 2 and chr(c).isalpha() else c
                     for i, c in enumerate(name)), value
    if mutation == "escape":  # any user character may be %-escaped (RFC 3261 19.1.2)
        return name, _USER.sub(lambda m: m.group(1) + b"%%%02X" % m.group(2)[0], value, 1)
    if mutation == "long_value":
        if name in _PARAMS:
            return name, value + b";x-" + b"long-parameter-name" * 3 + b"=" + b"v" * 240
        if name == b"User-Agent":
            return name, value + b" " + b"Long-Product-Token-" * 12 + b"/1.0 (" + b"c" * 200 + b")"
    return name, value


def applies(mutation: str, target: Target) -> bool:
    """Whether ``legal_change`` changes ``target``'s field (the unfilled template)."""
    template = _template(target).encode()
    name = b"" if target.kind == "line" else (
        HEADERS[target.index][0] if target.kind == "header" else "").encode()
    if target.kind == "sdp":
        return False  # SDP has no folding, escaping or case freedom of its own
    if target.kind == "line":
        return ((mutation == "escape" and target.name == "request-uri")
                or (mutation == "name_case" and target.name == "version"))
    return legal_change(mutation, name, template) != (name, template)


def valid_cases(first: int = 100_000) -> list[FuzzCase]:
    """Every (field, legal change) that applies, numbered from ``first`` (apart from
    ``cases()``, whose numbers and sample stay as they were)."""
    out: list[FuzzCase] = []
    for target in TARGETS:
        for mutation in VALID:
            if applies(mutation, target):
                out.append(FuzzCase(first + len(out), target, mutation, None))
    return out


def sample(all_cases: list[FuzzCase], n: int = 120, seed: int = 14) -> list[FuzzCase]:
    """About ``n`` cases that cover every field and every mutation at least once, picked
    with ``seed`` (the same seed gives the same cases)."""
    rnd = random.Random(seed)
    picked: dict[int, FuzzCase] = {}
    by_target: dict[str, list[FuzzCase]] = {}
    by_mutation: dict[str, list[FuzzCase]] = {}
    for c in all_cases:
        by_target.setdefault(c.target.name, []).append(c)
        by_mutation.setdefault(c.mutation, []).append(c)
    for group in (*by_target.values(), *by_mutation.values()):
        c = rnd.choice(group)
        picked[c.number] = c
    rest = [c for c in all_cases if c.number not in picked]
    for c in rnd.sample(rest, max(0, min(len(rest), n - len(picked)))):
        picked[c.number] = c
    return [picked[k] for k in sorted(picked)]


def iter_messages(all_cases: list[FuzzCase], ctx: dict) -> Iterator[tuple[FuzzCase, bytes]]:
    for c in all_cases:
        yield c, c.fill(ctx)
