"""What the Wyoming hop costs on loopback: STT and TTS through the real servers
(wyoming-faster-whisper, wyoming-piper, serving the bundled files) vs the in-process engines.

Short: a few requests each, after a warm-up; prints the median per path. The servers run
with the gateway's own settings where they have one (int8, beam 1, 2 threads).

    .venv/bin/python -m bench.wyoming_hop [--reps 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

QUESTION = "Can I book a cleaning for next Tuesday afternoon?"
CLAUSE = "The clinic opens at nine in the morning."


def median_ms(fn, reps: int) -> float:
    fn()  # warm
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    from pipeline import models
    from pipeline.stt.whisper import WhisperStt
    from pipeline.stt.wyoming import WyomingStt
    from pipeline.tts.piper import PiperTts
    from pipeline.tts.wyoming import WyomingTts
    from pipeline.wyoming.client import exchange, parse_uri
    from pipeline.wyoming.protocol import Event
    from testbed.wyoming_server import WyomingServer

    paths = models.resolve()
    piper, whisper = PiperTts(paths.piper_voice), WhisperStt(paths.whisper_dir)
    (speech,) = piper.synthesize(QUESTION)
    audio = np.frombuffer(speech.pcm, "<i2").astype(np.float32) / 32768
    with tempfile.TemporaryDirectory() as d:
        servers = [WyomingServer("stt", Path(d) / "stt"), WyomingServer("tts", Path(d) / "tts"),
                   WyomingServer("tts", Path(d) / "plain", "--no-streaming")]
        try:
            stt_srv, tts_srv, plain_srv = (s.start() for s in servers)
            stt = WyomingStt(stt_srv.uri)
            heard = (whisper.transcribe(audio), stt.transcribe(audio))
            rows = [
                ("describe round trip to the STT server (the hop)", median_ms(lambda: exchange(
                    parse_uri(stt_srv.uri), [Event("describe")], lambda e: e.type == "info",
                    5.0), args.reps)),
                (f"STT {len(audio) / 16000:.1f} s question, in process",
                 median_ms(lambda: whisper.transcribe(audio), args.reps)),
                ("STT same, wyoming-faster-whisper",
                 median_ms(lambda: stt.transcribe(audio), args.reps)),
                ("TTS one clause, in process", median_ms(lambda: list(piper.synthesize(CLAUSE)),
                                                         args.reps)),
            ]
            for name, srv in (("streaming", tts_srv), ("whole-text", plain_srv)):
                tts = WyomingTts(srv.uri)
                rows.append((f"TTS same, wyoming-piper ({name})",
                             median_ms(lambda t=tts: list(t.synthesize(CLAUSE)), args.reps)))
        finally:
            for s in servers:
                s.kill()
    print(f"STT heard {heard[0]!r} in process, {heard[1]!r} over Wyoming")
    for name, ms in rows:
        print(f"{name:45s} {ms:8.1f} ms")


if __name__ == "__main__":
    main()
