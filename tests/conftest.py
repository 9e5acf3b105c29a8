"""Fixtures shared by the SIP test modules; each module brings its own ``gateway``."""

from __future__ import annotations

import contextlib

import pytest

from testbed import harness
from testbed.sipp_harness import RtpPeer, SippRun, gateway_idle

# Gateways in the suite run the small bundled model unless a test asks for the default
# (tests of what the bot answers: test_call_e2e, test_facts_e2e)
harness.LLM = harness.SMALL_LLM


@pytest.fixture
def cleanup():
    """Collects sipp runs and RTP peers; kills / closes all of them after the test."""
    things: list[SippRun | RtpPeer] = []
    yield things
    for thing in things:
        with contextlib.suppress(Exception):
            thing.kill() if isinstance(thing, SippRun) else thing.close()


def sipp_maker(gateway, tmp_path, cleanup: list):
    """make(name, scenario, **kw) -> a not yet started SippRun aimed at ``gateway``."""
    def make(name: str, scenario: str, **kw) -> SippRun:
        run = SippRun(tmp_path / "sipp", name, scenario, f"127.0.0.1:{gateway.sip_port}", **kw)
        cleanup.append(run)
        return run

    return make


@pytest.fixture
def sipp(gateway, tmp_path, cleanup):
    """sipp(name, scenario, **kw) -> a not yet started SippRun aimed at the gateway."""
    gateway_idle(gateway)
    return sipp_maker(gateway, tmp_path, cleanup)


@pytest.fixture
def rtp_peers(cleanup):
    def make(n: int) -> list[RtpPeer]:
        peers = [RtpPeer() for _ in range(n)]
        cleanup.extend(peers)
        return peers

    return make
