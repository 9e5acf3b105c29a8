"""TEST ONLY: make one call's pipeline stage raise, to prove that a failure ends that call only.

Off unless the environment variable ``VOICEBOT_TEST_FAULT`` is set when the gateway starts,
as ``STAGE:N``: the call logged as ``call-N`` gets engines whose STAGE raises ``InjectedFault``
(``vad``: every VAD frame; ``stt``: every transcription; ``tts``: every synthesis, i.e. at
once on the greeting; ``llm``: taking the LLM context for the first reply). It is read once at
start-up: nothing that arrives from the network can switch it on or choose the call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

ENV = "VOICEBOT_TEST_FAULT"
STAGES = {"vad": "stream", "stt": "transcribe", "tts": "synthesize", "llm": "acquire"}


class InjectedFault(RuntimeError):
    """The test-only fault: never raised unless VOICEBOT_TEST_FAULT asks for it."""


@dataclasses.dataclass(frozen=True)
class Fault:
    stage: str
    call: str  # the call's log name, e.g. "call-2"


def from_env(env: Mapping[str, str]) -> Fault | None:
    spec = env.get(ENV, "")
    if not spec:
        return None
    stage, _, n = spec.partition(":")
    if stage not in STAGES or not n.isdigit() or int(n) < 1:
        raise ValueError(f"{ENV}={spec!r} is invalid: expected STAGE:N with STAGE one of "
                         f"{', '.join(STAGES)} and N a call number (call-N in the log)")
    return Fault(stage, f"call-{int(n)}")


class _Raising:
    """Wraps an engine (or a VAD stream): ``method`` raises, the rest is delegated."""

    def __init__(self, inner: Any, method: str, stage: str, call: str) -> None:
        self._inner, self._method, self._stage, self._call = inner, method, stage, call

    def __getattr__(self, name: str) -> Any:
        if name == self._method == "stream":  # the VAD fails on its first frame, not at set-up
            return lambda *a, **kw: _Raising(self._inner.stream(*a, **kw), "feed",
                                             self._stage, self._call)
        if name == self._method:
            def fail(*a: Any, **kw: Any) -> Any:
                raise InjectedFault(f"test fault injected in {self._stage} of {self._call}")
            return fail
        return getattr(self._inner, name)


def engines_for(engines: Any, fault: Fault | None, call: str) -> Any:
    """The engines this call uses: the shared ones, or (test only) a copy with one stage
    that raises."""
    if fault is None or fault.call != call:
        return engines
    inner = getattr(engines, fault.stage)
    return dataclasses.replace(engines, **{fault.stage: _Raising(
        inner, STAGES[fault.stage], fault.stage, call)})
