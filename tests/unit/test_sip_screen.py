"""The request screen (``gateway/telephony/sip_screen/``), pure: what it refuses, with which answer,
and that it takes any bytes. The same checks against a real gateway: ``test_protos.py``
(PROTOS and the grammar fuzzer), ``test_reliability.py`` (the hand-written corpus)."""

from __future__ import annotations

import pytest

from gateway.telephony import sip_screen
from gateway.telephony.sip_screen import screen
from testbed import sip_fuzz

CTX = {"host": "127.0.0.1", "port": 5060, "lport": 40000, "branch": "z9hG4bK-5c1ee9",
       "tag": "f00d", "callid": "c0ffee@x", "rtp": 4000}
BASE = sip_fuzz.FuzzCase(-1, sip_fuzz.TARGETS[0], "sep_double", 0)  # only used for its fill


def valid() -> bytes:
    """The fuzzer's unmutated INVITE (its CANCEL is built the same way)."""
    case = next(c for c in sip_fuzz.cases() if c.target.name == "User-Agent"
                and c.mutation == "repeat2")
    return case.fill(CTX).replace(b"User-Agent: voicebot-fuzz/1\r\n", b"", 1)


def replace(old: bytes, new: bytes, msg: bytes | None = None) -> bytes:
    """``msg`` (the valid INVITE) with ``old`` replaced once, Content-Length kept right."""
    msg = valid() if msg is None else msg
    assert old in msg, old
    msg = msg.replace(old, new, 1)
    head, _, body = msg.partition(b"\r\n\r\n")
    lines = [ln if not ln.startswith(b"Content-Length:") else
             b"Content-Length: %d" % len(body) for ln in head.split(b"\r\n")]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def verdict(msg: bytes, truncated: bool = False) -> tuple[int, str] | None:
    r = screen(msg, truncated)
    return None if r is None else (r.status, r.label)


def test_a_valid_invite_and_its_cancel_pass():
    assert verdict(valid()) is None
    assert verdict(BASE.fill(CTX, teardown=True)) is None
    assert verdict(b"\r\n\r\n" + valid()) is None  # leading CRLFs are ignored (RFC 3261 7.5)


@pytest.mark.parametrize("length, expected", [
    (253, None), (254, (488, "sdp_address")), (1000, (488, "sdp_address"))])
def test_the_sdp_c_address_is_held_to_pjlibs_host_limit(length, expected):
    # pjlib asserts (and aborts the process) on an address of 254+ bytes
    host = b"h" * (length - 4) + b".com"
    assert verdict(replace(b"c=IN IP4 127.0.0.1", b"c=IN IP4 " + host)) == expected


@pytest.mark.parametrize("old, new", [
    (b"o=fuzz 1 1 IN IP4 127.0.0.1", b"o=fuzz 1 1 IN IP4 " + b"a" * 254),
    (b"a=rtcp:4001 IN IP4 127.0.0.1", b"a=rtcp:4001 IN IP4 " + b"a" * 254),
])
def test_every_sdp_address_is_held_to_the_same_limit(old, new):
    assert verdict(replace(old, new)) == (488, "sdp_address")


@pytest.mark.parametrize("old, new, expected", [
    (b"Via: SIP/2.0/UDP 127.0.0.1:", b"Via: SIP/2.0/UDP " + b"a" * 254 + b":", (400, "host")),
    (b"<sip:fuzz@127.0.0.1:40000;transport", b"<sip:fuzz@" + b"a" * 254 + b":40000;transport",
     (400, "host")),
    (b"To: <sip:bot@127.0.0.1:5060>", b"To: <sip:bot@" + b"a" * 300 + b">", (400, "host")),
    (b"INVITE sip:bot@127.0.0.1:5060 ", b"INVITE sip:bot@" + b"a" * 254 + b" ", (400, "host")),
    (b"INVITE sip:bot@127.0.0.1:5060 ", b"INVITE sip:bot@" + b"a" * 3000 + b" ",
     (414, "uri_size")),
    (b"a=rtpmap:9 G722/8000", b"a=rtpmap:9 G722/0", (400, "sdp")),
    (b"m=audio 4000 ", b"m=audio 99999 ", (400, "port")),
    (b"RTP/AVP 9 0 101", b"RTP/AVP 9 0 99999", (400, "sdp")),
    (b"RTP/AVP 9 0 101", b"RTP/AVP " + b" ".join(b"%d" % i for i in range(40)),
     (488, "sdp_formats")),
    (b"a=sendrecv\r\n", b"a=sendrecv\r\n" + b"m=audio 0 RTP/AVP 0\r\n" * 16, (488, "sdp_media")),
    (b"a=sendrecv\r\n", b"a=" + b"x" * 2000 + b"\r\n", (400, "sdp_size")),
    (b"c=IN IP4 127.0.0.1", b"c=IN IP4 127.0.0.1\x00", (400, "sdp")),
    # no c= anywhere: PJMEDIA asserted in create_answer (found by the grammar fuzzer)
    (b"c=IN IP4 127.0.0.1\r\n", b"", (400, "sdp")),
    (b"s=-\r\n", b"", (400, "sdp")),
    (b"t=0 0\r\n", b"", (400, "sdp")),
    (b"CSeq: 1 INVITE", b"CSeq: 1 BYE", (400, "cseq")),
    (b"CSeq: 1 INVITE", b"CSeq: x INVITE", (400, "cseq")),
    (b"CSeq: 1 INVITE", b"CSeq: 4294967296 INVITE", (400, "cseq")),
    (b"Max-Forwards: 70", b"Max-Forwards: 4294967296", (400, "number")),
    (b"Expires: 120", b"Expires: -1", (400, "number")),
    (b"Call-ID: ", b"Call-ID: second@x\r\nCall-ID: ", (400, "duplicate_header")),
    (b"From: ", b"From: <sip:a@b>;tag=1\r\nFrom: ", (400, "duplicate_header")),
    (b"INVITE sip:", b"INVITE xmpp:", (416, "uri_scheme")),
    (b"Supported: replaces, timer", b"Require: foo, 100rel", (420, "require")),
    (b"Content-Type: application/sdp", b"Content-Type: text/plain", (415, "content_type")),
    (b"Content-Type: application/sdp",
     b"Content-Type: application/sdp\r\nContent-Encoding: gzip", (415, "content_encoding")),
    (b"INVITE sip:", b"invite sip:", (501, "method")),
    (b"INVITE sip:", b" INVITE sip:", (400, "request_line")),
    (b"SIP/2.0\r\nVia", b"SIP/3.0\r\nVia", (505, "version")),
    (b"User-Agent", b"User Agent", (400, "header")),
    # pjsua cannot reach a TCP/TLS Contact over its UDP transport: it answered 500 (fuzzer)
    (b";transport=udp>", b";transport=tcp>", (400, "contact")),
    (b";transport=udp>", b";transport=4294967296>", (400, "contact")),
    (b";transport=udp>", b";transport=UDP>", None),
    # every host PJSIP may send to, also in parameters and in the route set
    (b"Allow:", b"Record-Route: <sip:" + b"a" * 254 + b";lr>\r\nAllow:", (400, "host")),
    (b"Allow:", b"Record-Route: <sip:p1;lr>, <sip:" + b"a" * 254 + b";lr>\r\nAllow:",
     (400, "host")),
    (b"Allow:", b"Route: <sip:127.0.0.1;lr>\r\nAllow:", None),
    (b";rport", b";rport;maddr=" + b"a" * 254, (400, "host")),
    (b";rport", b";rport;received=2001:db8::1", None),
    (b";transport=udp>", b";maddr=" + b"a" * 254 + b">", (400, "host")),
    (b";transport=udp>", b";transport=tls>\r\nRecord-Route: <sip:127.0.0.1:5999;lr>", None),
])
def test_each_refusal(old, new, expected):
    assert verdict(replace(old, new)) == expected


def test_a_connection_line_per_media_instead_of_one_for_the_session_passes():
    msg = replace(b"c=IN IP4 127.0.0.1\r\n", b"")
    assert verdict(replace(b"a=rtpmap:9 ", b"c=IN IP4 127.0.0.1\r\na=rtpmap:9 ", msg)) is None


def test_require_names_what_is_unsupported_and_register_gets_allow():
    r = screen(replace(b"Supported: replaces, timer", b"Require: foo, 100rel"))
    assert r is not None and dict(r.headers) == {"Unsupported": "foo"}
    msg = valid().replace(b"INVITE sip:", b"REGISTER sip:", 1).replace(b"1 INVITE", b"1 REGISTER")
    r = screen(msg)
    assert r is not None and (r.status, r.label) == (405, "method")
    assert "INVITE" in dict(r.headers)["Allow"]


def test_content_length_must_match_the_datagram():
    msg = valid()
    longer = msg.replace(b"Content-Length: ", b"Content-Length: 9", 1)
    assert verdict(longer) == (400, "content_length")
    line = next(ln for ln in msg.split(b"\r\n") if ln.startswith(b"Content-Length: "))
    twice = msg.replace(line, line + b"\r\n" + line, 1)
    assert verdict(twice) == (400, "duplicate_header")
    assert verdict(msg, truncated=True) == (513, "too_large")


def test_excess_octets_are_refused_only_where_pjsip_would_read_them_as_the_body():
    # RFC 3261 18.3: discard what follows Content-Length; PJSIP takes the rest of the datagram
    # for the body when there is a Content-Type, and reads no body without one
    register = valid().replace(b"INVITE sip:", b"REGISTER sip:", 1).replace(
        b"1 INVITE", b"1 REGISTER").split(b"\r\n\r\n")[0]
    register = b"\r\n".join(ln for ln in register.split(b"\r\n")
                             if not ln.startswith((b"Content-Type", b"Content-Length")))
    second = b"INVITE sip:bot@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP x\r\n\r\n"
    assert verdict(register + b"\r\nContent-Length: 0\r\n\r\n" + second) == (405, "method")
    msg = valid()
    assert verdict(msg + b"INVITE sip:x SIP/2.0\r\n") == (400, "content_length")


def test_rfc_4475_shapes_pass_the_screen():
    # an rtpmap without its clock rate (3.1.1.1's "31 LPC"), on a stream not taken
    extra = b"a=sendrecv\r\nm=video 3227 RTP/AVP 31\r\na=rtpmap:31 LPC\r\n"
    assert verdict(replace(b"a=sendrecv\r\n", extra)) is None
    # a header whose whole value is on the folded line
    assert verdict(replace(b"Max-Forwards: 70", b"MaX-fOrWaRdS :\r\n   0070")) is None
    assert verdict(replace(b"CSeq: 1 INVITE", b"cseq: 0009\r\n  INVITE")) is None
    # Via with whitespace around its slashes, folded
    assert verdict(replace(b"Via: SIP/2.0/UDP", b"Via  : SIP  /   2.0\r\n /UDP\r\n   ")) is None
    # %-escaped user and parameter
    assert verdict(replace(b"INVITE sip:bot@", b"INVITE sip:%62%6Ft@")) is None
    # an unknown method of every token character: 501
    odd = b"!odd-Method0123456789_*+`.%indeed'~"
    msg = valid().replace(b"INVITE sip:", odd + b" sip:", 1).replace(b"1 INVITE", b"1 " + odd)
    assert verdict(msg) == (501, "method")


def test_a_stateless_response_copies_what_matches_it_and_adds_a_to_tag():
    msg = replace(b"INVITE sip:bot@127.0.0.1:5060 ",
                  b"OPTIONS nobodyKnowsThisScheme:opaque ").replace(b"1 INVITE", b"1 OPTIONS")
    msg = msg.replace(b"Max-Forwards: 70", b"Via: SIP/2.0/UDP proxy.example;branch=z9hG4bK2")
    req = sip_screen.parse(msg)
    refusal = screen(msg)
    assert refusal is not None and (refusal.status, refusal.label) == (416, "uri_scheme")
    out = sip_screen.stateless_response(req, refusal, "t4g").decode()
    head, _, body = out.partition("\r\n\r\n")
    lines = head.split("\r\n")
    assert lines[0] == "SIP/2.0 416 Unsupported URI Scheme" and body == ""
    assert [ln for ln in lines if ln.startswith("Via: ")] == [
        "Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK-5c1ee9;rport",
        "Via: SIP/2.0/UDP proxy.example;branch=z9hG4bK2"]
    assert "To: <sip:bot@127.0.0.1:5060>;tag=t4g" in lines
    assert 'From: "Fuzz" <sip:fuzz@127.0.0.1:40000>;tag=f00d' in lines
    assert "Call-ID: c0ffee@x" in lines and "CSeq: 1 OPTIONS" in lines
    assert lines[-1] == "Content-Length: 0"
    # a To that already has a tag keeps it; an ACK and a request without a Call-ID get none
    tagged = sip_screen.parse(msg.replace(b"5060>", b"5060>;tag=old", 1))
    assert "tag=t4g" not in sip_screen.stateless_response(tagged, refusal, "t4g").decode()
    ack = sip_screen.parse(msg.replace(b"OPTIONS nob", b"ACK nob").replace(b"1 OPTIONS", b"1 ACK"))
    assert sip_screen.stateless_response(ack, refusal, "t") is None
    no_id = sip_screen.parse(b"\r\n".join(ln for ln in msg.split(b"\r\n")
                                           if not ln.startswith(b"Call-ID")))
    assert sip_screen.stateless_response(no_id, refusal, "t") is None


def test_a_stateless_response_carries_any_bytes_but_no_line_break():
    msg = replace(b"Call-ID: c0ffee@x", b"Call-ID: a\rInjected: 1\xff\x01")
    refusal = sip_screen.Refusal(400, "Bad Request", "header")
    out = sip_screen.stateless_response(sip_screen.parse(msg), refusal, "t")
    assert out is not None and b"\r\nInjected" not in out and b"\rInjected" not in out
    assert b"Call-ID: a Injected: 1\xff\x01\r\n" in out


def test_a_refusal_detail_is_printable_and_bounded():
    r = screen(replace(b"c=IN IP4 127.0.0.1", b"c=IN IP4 \xff\xfe" + b"\x1b" * 900))
    assert r is not None and r.status == 488
    assert len(r.detail) < 260 and all(" " <= ch <= "~" for ch in r.detail), r.detail


# --------------------------------------------------------------------------- the fuzzer


ALL = sip_fuzz.cases()


def test_the_fuzzer_is_reproducible_and_covers_every_field_and_mutation():
    assert [c.fill(CTX) for c in ALL[:50]] == [c.fill(CTX) for c in sip_fuzz.cases()[:50]]
    a, b = sip_fuzz.sample(ALL, seed=14), sip_fuzz.sample(ALL, seed=14)
    assert [c.number for c in a] == [c.number for c in b]
    assert [c.number for c in a] != [c.number for c in sip_fuzz.sample(ALL, seed=15)]
    assert {c.target.name for c in a} == {t.name for t in sip_fuzz.TARGETS}
    mutations = {n for n, _ in sip_fuzz.PAYLOADS} | set(sip_fuzz.STRUCTURAL)
    assert {c.mutation for c in a} == mutations
    sizes = {len(c.fill(CTX)) for c in ALL}
    assert max(sizes) > sip_fuzz.MAX_DATAGRAM  # the 64 K payloads are not sendable
    c_host = [c for c in ALL if c.target.name.startswith("sdp-c")
              and c.mutation == "a254" and c.atom_text(CTX) == "127.0.0.1"]
    assert len(c_host) == 1 and b"c=IN IP4 " + b"a" * 254 + b"\r\n" in c_host[0].fill(CTX)


def test_every_fuzz_case_gets_a_verdict_and_no_host_over_pjlibs_limit_passes():
    """All the fuzzer's cases (~2700): the screen never raises, answers only 4xx-6xx but
    never 500, with a known label; every case that puts 254+ bytes where a host goes (Via,
    From, To, Contact, Request-URI, SDP o=, c=, a=rtcp) is refused."""
    verdicts: dict[str, int] = {}
    missed = []
    for case in ALL:
        msg = case.fill(CTX)
        r = screen(msg[:sip_screen.MAX_PACKET], truncated=len(msg) >= sip_screen.MAX_PACKET)
        if r is not None:
            assert 400 <= r.status < 700 and r.status != 500, (case.describe(), r)
            assert r.label in sip_screen.REASONS, (case.describe(), r)
        key = "pass" if r is None else str(r.status)
        verdicts[key] = verdicts.get(key, 0) + 1
        payload = dict(sip_fuzz.PAYLOADS).get(case.mutation, b"")
        if case.atom_text(CTX) == CTX["host"] and len(payload) >= 254 and r is None:
            missed.append(case.describe())
    print(f"\n{len(ALL)} fuzz cases: {dict(sorted(verdicts.items()))}")
    assert not missed, missed
    assert verdicts["pass"] > 100  # harmless mutations (a long User-Agent...) still pass


@pytest.mark.parametrize("value, tagged", [
    ("<sip:bot@h>;tag=a1", True), ("sip:bot@h;tag=a1", True), ("<sip:bot@h;tag=x>", False),
    ('"x;tag=1" <sip:bot@h>', False), ("<sip:bot@h> ; TAG = 9", True), ("", False)])
def test_has_tag_reads_the_header_parameter_not_the_uri(value, tagged):
    assert sip_screen.has_tag(value) is tagged


def test_every_label_the_screen_can_give_is_a_metric_label():
    import inspect
    import re as _re

    from gateway.telephony.sip_screen import headers, message, sdp

    source = "".join(inspect.getsource(m) for m in (sip_screen, headers, message, sdp))
    used = set(_re.findall(r'\bbad\(\s*\d+,\s*"[^"]*",\s*"([a-z_0-9]+)"', source))
    assert used and used <= set(sip_screen.REASONS), used - set(sip_screen.REASONS)


def test_the_log_budget_holds_back_a_flood_and_says_so(caplog):
    from gateway.telephony.admission import LogBudget

    budget = LogBudget(per_window=3, window=10.0)
    allowed = [budget.allow(t * 0.1) for t in range(50)]  # 50 refusals in 5 s
    assert allowed[:3] == [True] * 3 and not any(allowed[3:])
    assert budget.held == 47
    with caplog.at_level("INFO"):
        assert budget.allow(11.0)  # a new window: the count of held lines is logged
    assert "47 more such lines held back" in caplog.text and budget.held == 0
