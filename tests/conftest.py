"""The suite's layout and shared fixtures.

``tests/unit/`` runs in this process (scripted fakes or real models, no other process);
``tests/e2e/`` starts real processes (a gateway, SIP clients, servers, a browser) and is marked
``e2e`` by its place: ``pytest -m "not e2e"`` is the quick run. The fixtures below serve the
SIP modules; each brings its own ``gateway``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from testbed import harness
from testbed.sipp_harness import RtpPeer, SippRun, gateway_idle, sipp_maker

# Gateways in the suite run the small bundled model unless a test asks for the default
# (tests of what the bot answers: e2e/test_call.py, e2e/test_facts.py)
harness.LLM = harness.SMALL_LLM

E2E = Path(__file__).resolve().parent / "e2e"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if E2E in item.path.parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
def cleanup():
    """Collects sipp runs and RTP peers; kills / closes all of them after the test."""
    things: list[SippRun | RtpPeer] = []
    yield things
    for thing in things:
        with contextlib.suppress(Exception):
            thing.kill() if isinstance(thing, SippRun) else thing.close()


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
