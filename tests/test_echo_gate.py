"""The double-talk gate on synthetic frames with known levels."""

import numpy as np

from pipeline.echo_gate import EchoGate

rng = np.random.default_rng(7)


def tone(peak: float, n: int = 320) -> np.ndarray:
    return (peak * np.sin(np.arange(n) * 0.3 + rng.uniform(0, 6))).astype(np.int16)


def test_silent_bot_never_gates():
    g = EchoGate(tail_frames=20)
    g.push(tone(100), np.zeros(320, np.int16))
    assert not g.echo_only()


def test_echo_below_the_bot_is_gated_and_a_caller_near_its_level_is_not():
    g = EchoGate(tail_frames=20, hangover_frames=0)
    for _ in range(5):
        g.push(tone(0.3 * 20000), tone(20000))  # echo 10 dB down
    assert g.echo_only()
    g.push(tone(15000), tone(20000))  # the caller, 2.5 dB under the bot
    assert not g.echo_only()


def test_soft_frames_after_the_caller_was_heard_count_for_the_hangover():
    g = EchoGate(tail_frames=20, hangover_frames=5)
    g.push(tone(15000), tone(20000))  # a loud syllable of the caller
    for _ in range(4):
        g.push(tone(6000), tone(20000))  # softer speech: within the hangover
        assert not g.echo_only()
    for _ in range(3):
        g.push(tone(6000), tone(20000))  # near-frame window passes, hangover runs out
    assert g.echo_only()


def test_the_bot_peak_is_remembered_over_the_echo_tail():
    g = EchoGate(tail_frames=10, hangover_frames=0)
    g.push(tone(100), tone(20000))  # a loud bot frame, then the bot pauses
    for _ in range(8):
        g.push(tone(6000), np.zeros(320, np.int16))  # its delayed echo still arrives
    assert g.echo_only()
    for _ in range(3):
        g.push(tone(6000), np.zeros(320, np.int16))  # beyond the tail: no longer the bot
    assert not g.echo_only()


def test_no_hangover_carried_from_the_bot_s_silence_into_its_speech():
    g = EchoGate(tail_frames=20, hangover_frames=12)
    for _ in range(30):
        g.push(tone(200), np.zeros(320, np.int16))  # nobody talks
    g.push(tone(100), tone(20000))  # the bot starts
    g.push(tone(6000), tone(20000))  # and its echo comes back at once
    assert g.echo_only()
