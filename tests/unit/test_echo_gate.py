"""The double-talk gate on synthetic frames with known levels."""

import numpy as np

from pipeline.audio.echo_gate import EchoGate, echo_delay

rng = np.random.default_rng(7)


def tone(peak: float, n: int = 320) -> np.ndarray:
    return (peak * np.sin(np.arange(n) * 0.3 + rng.uniform(0, 6))).astype(np.int16)


def test_silent_bot_never_gates():
    g = EchoGate(tail_frames=20, adaptive=False)
    g.push(tone(100), np.zeros(320, np.int16))
    assert not g.echo_only()


def test_echo_below_the_bot_is_gated_and_a_caller_near_its_level_is_not():
    g = EchoGate(tail_frames=20, hangover_frames=0, adaptive=False)
    for _ in range(5):
        g.push(tone(0.3 * 20000), tone(20000))  # echo 10 dB down
    assert g.echo_only()
    g.push(tone(15000), tone(20000))  # the caller, 2.5 dB under the bot
    assert not g.echo_only()


def test_soft_frames_after_the_caller_was_heard_count_for_the_hangover():
    g = EchoGate(tail_frames=20, hangover_frames=5, adaptive=False)
    g.push(tone(15000), tone(20000))  # a loud syllable of the caller
    for _ in range(4):
        g.push(tone(6000), tone(20000))  # softer speech: within the hangover
        assert not g.echo_only()
    for _ in range(3):
        g.push(tone(6000), tone(20000))  # near-frame window passes, hangover runs out
    assert g.echo_only()


def test_the_bot_peak_is_remembered_over_the_echo_tail():
    g = EchoGate(tail_frames=10, hangover_frames=0, adaptive=False)
    g.push(tone(100), tone(20000))  # a loud bot frame, then the bot pauses
    for _ in range(8):
        g.push(tone(6000), np.zeros(320, np.int16))  # its delayed echo still arrives
    assert g.echo_only()
    for _ in range(3):
        g.push(tone(6000), np.zeros(320, np.int16))  # beyond the tail: no longer the bot
    assert not g.echo_only()


def test_no_hangover_carried_from_the_bot_s_silence_into_its_speech():
    g = EchoGate(tail_frames=20, hangover_frames=12, adaptive=False)
    for _ in range(30):
        g.push(tone(200), np.zeros(320, np.int16))  # nobody talks
    g.push(tone(100), tone(20000))  # the bot starts
    g.push(tone(6000), tone(20000))  # and its echo comes back at once
    assert g.echo_only()


def test_on_a_line_without_echo_a_soft_onset_passes_once_the_level_is_learned():
    early = EchoGate(tail_frames=20, hangover_frames=0)
    for _ in range(100):  # 2 s of bot speech: not learned yet, the fixed -6 dB applies
        early.push(tone(150), tone(20000))
    early.push(tone(3000), tone(20000))  # a soft consonant, 16 dB under the bot
    assert early.echo_only()
    g = EchoGate(tail_frames=20, hangover_frames=0)
    for _ in range(150):  # 3 s of bot speech, the line carrying only faint noise
        g.push(tone(150), tone(20000))
    assert g.threshold_db < -20
    g.push(tone(3000), tone(20000))
    assert not g.echo_only()


def test_a_caller_heard_while_learning_only_raises_the_threshold():
    g = EchoGate(tail_frames=20, hangover_frames=0)
    for i in range(200):  # the caller talks over the bot for 10 frames, the line is clean
        g.push(tone(6000 if 10 <= i < 20 else 150), tone(20000))
    assert abs(g.threshold_db + 6.0) < 1e-6  # -10.5 dB + 6 dB, capped at -6 dB


def test_a_line_with_10_db_echo_keeps_the_fixed_threshold():
    g = EchoGate(tail_frames=20, hangover_frames=0)
    for _ in range(200):
        g.push(tone(0.3 * 20000), tone(20000))  # echo 10 dB down
        assert g.echo_only()
    assert abs(g.threshold_db + 6.0) < 1e-6
    g.push(tone(15000), tone(20000))
    assert not g.echo_only()


def test_the_learned_threshold_sits_above_the_echo_and_no_lower_than_the_floor():
    g = EchoGate(tail_frames=20, hangover_frames=0, margin_db=6.0, floor_db=-30.0)
    for _ in range(200):
        g.push(tone(0.1 * 20000), tone(20000))  # echo 20 dB down
        assert g.echo_only()
    assert -15.5 < g.threshold_db < -13.0  # the echo's level + 6 dB
    g.push(tone(0.3 * 20000), tone(20000))  # a caller 10 dB under the bot: over the echo
    assert not g.echo_only()
    silent = EchoGate(tail_frames=20, hangover_frames=0)
    for _ in range(200):
        silent.push(np.zeros(320, np.int16), tone(20000))
    assert silent.threshold_db == -30.0


def push_levels(gate: EchoGate, near: np.ndarray, far: np.ndarray) -> None:
    """Feed ``gate`` frames at these peak levels (a level of 0 is a silent frame)."""
    for a, b in zip(near, far, strict=True):
        gate.push(tone(a), tone(b))


def speech_levels(n: int, seed: int) -> np.ndarray:
    """Frame peaks of talk: syllables of 3-8 frames at varied levels, with short pauses."""
    r = np.random.default_rng(seed)
    out: list[float] = []
    while len(out) < n:
        out += [r.uniform(2000, 20000)] * int(r.integers(3, 9))
        if r.random() < 0.3:
            out += [0.0] * int(r.integers(2, 12))
    return np.array(out[:n])


def run_echo_line(gate: EchoGate, delay: int, gain: float, n: int = 1000) -> list[int]:
    """Drive ``gate`` with bot speech whose echo returns ``delay`` frames late; returns the
    frames at which the echo alone was taken for the caller."""
    far = speech_levels(n, seed=3)
    missed = []
    for i in range(n):
        echo = far[i - delay] * gain if i >= delay else 0.0
        gate.push(tone(echo), tone(far[i]))
        if far[max(0, i - gate.base_tail):i + 1].max() >= 300 and not gate.echo_only():
            missed.append(i)
    return missed


def test_the_echo_delay_is_found_from_the_levels_alone():
    far = speech_levels(300, seed=5)
    near = np.concatenate([np.full(27, 40.0), far[:-27] * 0.2 + 40])
    lag, c, prominence = echo_delay(near, far, max_lag=50)
    assert lag == 27 and c > 0.9 and prominence > 0.5
    unrelated = speech_levels(300, seed=6) * 0.2
    assert echo_delay(unrelated, far, max_lag=50)[1] < 0.5


def test_turn_taking_without_echo_is_not_taken_for_an_echo():
    # the bot talks, the caller answers (at times over the bot's last words), and so on: on
    # a line without echo the caller's level follows the bot's turns, not its syllables
    r = np.random.default_rng(11)
    for _ in range(20):
        far, near = np.zeros(300), np.full(300, 30.0)
        t = 0
        while t < 300:
            n = int(r.integers(30, 120))
            far[t:t + n] = speech_levels(n, seed=int(r.integers(1000)))[: len(far[t:t + n])]
            start = t + n - int(r.integers(0, 15))
            m = int(r.integers(30, 100))
            seg = near[start:start + m]
            near[start:start + m] = speech_levels(m, seed=int(r.integers(1000)))[: len(seg)] / 2
            t = start + m + int(r.integers(5, 30))
        g = EchoGate(tail_frames=15, hangover_frames=0)
        push_levels(g, near, far)
        assert g.delay_frames is None and g.tail == 15


def test_an_echo_later_than_the_tail_widens_it_instead_of_interrupting_the_bot():
    # -8 dB echo 600 ms late through a 400 ms tail: a loud word's echo lands over a soft word
    fixed = EchoGate(tail_frames=20, hangover_frames=0, adaptive=False,
                     max_delay_frames=0)
    assert run_echo_line(fixed, delay=30, gain=0.4)  # the old gate lets some through
    g = EchoGate(tail_frames=20, hangover_frames=0, adaptive=False)
    missed = run_echo_line(g, delay=30, gain=0.4)
    assert g.delay_frames == 30 and g.tail >= 31
    assert all(i < 300 for i in missed)  # only before the first estimate (6 s window)


def test_a_line_without_echo_keeps_the_configured_tail():
    g = EchoGate(tail_frames=20, hangover_frames=0)
    far = speech_levels(600, seed=8)
    push_levels(g, np.full(600, 120.0), far)
    assert g.delay_frames is None and g.tail == 20


def test_closest_db_reports_how_near_the_line_came_to_the_bot():
    gate = EchoGate(tail_frames=3, adaptive=False)
    for near, far in [(1000, 10000)] * 10 + [(7000, 10000)] + [(1000, 10000)] * 5:
        gate.push(tone(near), tone(far))
    db, near, far = gate.closest_db(50)
    assert abs(near - 7000) < 20 and abs(far - 10000) < 20 and abs(db + 3.1) < 0.1
    # only frames while the bot talked count, and only the last ``frames`` of them
    assert abs(gate.closest_db(5)[1] - 1000) < 20
    quiet = EchoGate(tail_frames=3, adaptive=False)
    quiet.push(tone(5000), tone(0))
    assert quiet.closest_db(50) == (float("-inf"), 0, 0)
