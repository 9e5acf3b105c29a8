"""Scripted VAD timelines for the conversation core: windows of (end sample, probability)."""

from __future__ import annotations

from pipeline.audio.vad import WINDOW
from pipeline.core.conversation import Conversation, TurnSettings

MS = 16  # samples per millisecond


def timeline(*parts: tuple[float, int]) -> list[tuple[int, float]]:
    """VAD windows: parts of (probability, duration in ms) -> [(end sample, prob)]."""
    out, t = [], 0
    for prob, ms in parts:
        for _ in range(ms * MS // WINDOW):
            t += WINDOW
            out.append((t, prob))
    return out


def settings(**kw) -> TurnSettings:
    base = dict(threshold=0.5, end_silence=500 * MS, min_speech=150 * MS,
                min_barge_in=200 * MS, pause=200 * MS, max_turn=30_000 * MS, barge_in=True)
    base.update(kw)
    return TurnSettings(**base)


def feed(conv: Conversation, tl, start: int = 0):
    actions = []
    for end, prob in tl:
        actions += conv.on_vad(start + end, prob)
    return actions
