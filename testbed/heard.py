"""What the caller heard: the bot's answer after a question, cut from a call's recording and
transcribed by Whisper; and the call's record once the gateway has closed it."""

from __future__ import annotations

import time

import numpy as np

from gateway.calls import records
from testbed.harness import GatewayProcess, active_spans


def transcribe(whisper, pcm: np.ndarray, rate: int) -> str:
    """What was said in ``pcm``, decoded stretch by stretch between pauses (300 ms and more):
    over a 12 s answer with the gateway's fallback after a pause, one Whisper decode of the
    whole stopped at the pause."""
    import soxr

    spans = active_spans(pcm, rate, min_gap_ms=300) or [(0.0, len(pcm) / rate)]
    audio = pcm.astype(np.float32) / 32768
    if rate != 16000:
        audio = soxr.resample(audio, rate, 16000)
    pad = int(0.2 * 16000)
    parts = [whisper.transcribe(audio[max(0, int(a * 16000) - pad): int(b * 16000) + pad])
             for a, b in spans]
    return " ".join(p.strip() for p in parts if p.strip())


def answer_after(result, question_end: float) -> tuple[float, np.ndarray]:
    """(seconds from the end of the question to the bot's first audio, the answer's audio)."""
    spans = [s for s in active_spans(result.heard, result.rate) if s[0] > question_end]
    assert spans, "the bot never answered"
    start = spans[0][0]
    return start - question_end, result.heard[int(start * result.rate):]


def hear(whisper, pcm: np.ndarray) -> str:
    return whisper.transcribe(pcm.astype(np.float32) / 32768).strip()


def last_closed_record(gw: GatewayProcess, timeout: float = 30.0) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        recs = records.read(gw.workdir / "calls.jsonl").records()
        if recs and all(r["state"] == "closed" for r in recs):
            return recs[-1]
        time.sleep(0.3)
    raise AssertionError(f"a call record left open:\n{gw.log()[-3000:]}")


def bot_audio(heard: np.ndarray, start: float, end: float, rate: int = 16000) -> np.ndarray:
    """The audio heard between ``start`` and ``end`` seconds."""
    return heard[int(start * rate): int(end * rate)]
