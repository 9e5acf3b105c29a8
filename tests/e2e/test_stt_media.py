"""End to end: speech-to-text never delays the media path.

A real caller (baresip, G.711 at 8 kHz) speaks real recordings (pocketsphinx-testdata
librivox) to the real gateway, which transcribes its turns (speculative decodes at pauses,
and finals; with beam search 5, heavier than the default greedy decode) and answers them.
The gateway's own media clock lateness histogram (``voicebot_media_callback_lateness_seconds``)
is scraped from /metrics every 100 ms during the call; every speech-to-text decode is placed
in time by the gateway's log line for it ("turn N: caller said ... (stt M ms)"). No callback
that ran while a decode was under way may be later than 30 ms against its 20 ms grid. Late
callbacks elsewhere in the call (LLM, TTS, or a busy machine) are printed, not judged here.
"""

from __future__ import annotations

import re
import threading
import time

import numpy as np
import pytest

from testbed.harness import GatewayProcess, baresip_call, free_tcp_port, need
from testbed.prometheus import sample, scrape
from testbed.speech_corpus import DATA, read_wav, resample

MAX_LATE = 0.030  # seconds: a callback later than this while STT runs fails
LATENESS = "voicebot_media_callback_lateness_seconds"
STT_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) .*turn \d+: caller said "
                      r".*stt (\d+) ms\)$")


def buckets(fams: dict) -> dict[float, float]:
    """Cumulative bucket counts by upper bound (inf included)."""
    return {float(s.labels["le"]): s.value for s in fams[LATENESS].samples
            if s.name == LATENESS + "_bucket"}


def stt_windows(log: str) -> list[tuple[float, float]]:
    """(start, end) epoch seconds of every decode the gateway logged."""
    out = []
    for line in log.splitlines():
        m = STT_LINE.match(line)
        if m:
            end = time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")) \
                + int(m.group(2)) / 1000
            out.append((end - int(m.group(3)) / 1000, end))
    return out


def test_no_media_callback_late_while_turns_are_transcribed(tmp_path):
    need("baresip")
    if not DATA.is_dir():
        pytest.skip("needs pocketsphinx-testdata")
    rate = 8000  # G.711 end to end (the harness's advice for narrowband codecs)
    # three turns (7.1, 5.3 and 3.3 s, with pauses inside: speculative decodes, then finals)
    # after the greeting; each next turn starts 2.5 s after the previous one (over the bot's
    # answer: barge-in), so decodes come often and the call stays short
    parts = [np.zeros(5 * rate, np.int16)]
    for name in ("0870", "0890", "0930"):
        pcm, r = read_wav(DATA / "librivox" / f"sense_and_sensibility_01_austen_64kb-{name}.wav")
        parts += [resample(pcm, r, rate), np.zeros(int(2.5 * rate), np.int16)]
    parts.append(np.zeros(2 * rate, np.int16))
    source = np.concatenate(parts)

    port = free_tcp_port()
    # beam search 5 instead of greedy: each decode costs ~2-3x the default, a harder test
    gw = GatewayProcess(tmp_path / "gw", extra_toml=(
        f"[metrics]\nport = {port}\n[stt]\nbeam_size = 5\n")).start()
    polls: list[tuple[float, dict[float, float]]] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            t = time.time()
            polls.append((t, buckets(scrape(port)[1])))
            stop.wait(max(0.0, 0.1 - (time.time() - t)))

    try:
        _, before = scrape(port)
        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        baresip_call(tmp_path / "caller", gw.uri, source.astype(np.int16), rate,
                     codecs=("g711",))
        stop.set()
        poller.join(10)
        _, after = scrape(port)
    finally:
        stop.set()
        code = gw.stop()
    assert code == 0, gw.log()[-3000:]

    inf = float("inf")
    windows = stt_windows(gw.log())
    late_in_stt = late_elsewhere = 0
    checked = 0
    for (t0, b0), (t1, b1) in zip(polls, polls[1:], strict=False):
        late = (b1[inf] - b1[MAX_LATE]) - (b0[inf] - b0[MAX_LATE])
        # the interval's callbacks ran between the two scrapes: did a decode overlap it?
        during = any(s < t1 and e > t0 for s, e in windows)
        if during:
            checked += b1[inf] - b0[inf]
            late_in_stt += late
        else:
            late_elsewhere += late
    total = buckets(after)[inf] - buckets(before)[inf]
    hist = {f"<={le * 1000:g}ms": int(n - buckets(before).get(le, 0))
            for le, n in buckets(after).items()}
    print(f"\nmedia callbacks in the call: {int(total)}; while speech-to-text ran: "
          f"{int(checked)} in {len(windows)} decodes "
          f"({sum(e - s for s, e in windows):.2f} s), later than 30 ms: {int(late_in_stt)}; "
          f"later than 30 ms elsewhere in the call: {int(late_elsewhere)}; "
          f"cumulative histogram {hist}")
    # the call really ran, and its turns were really transcribed while the clock ticked
    assert total > 0.8 * len(source) / rate / 0.020, hist
    stt = sample(after, "voicebot_stage_seconds", "voicebot_stage_seconds_count", stage="stt")
    assert stt >= 3 and len(windows) >= 3, gw.log()[-3000:]
    assert checked >= len(windows), (checked, windows)
    assert late_in_stt == 0, f"{int(late_in_stt)} media callbacks later than 30 ms while " \
                             f"speech-to-text ran: {hist}"
