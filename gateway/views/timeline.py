"""One call as a self-contained HTML page: who spoke when, what the pipeline did in between,
and the transcript (``voicebot calls show ID --html FILE``).

Made from the call's journal record alone (``gateway/calls/records.py``) and, if given, the caller's
turn WAVs that ``[log] turn_audio_dir`` kept. The page loads nothing: inline CSS and inline
SVG, no script, and a Content-Security-Policy that forbids every fetch. Every text from the
record goes through ``clean_text`` (controls, invalid bytes, length) and then ``html.escape``:
a record holds whatever a caller or a hand-edited journal put in it.

The axis is seconds since the call was answered (the turns' ``*_at`` fields). A reply's bar
runs from its first sound to ``bot_audio_end_at`` (when its audio stopped, played or cut). The
journal does not say when the pipeline's stages ran (only how long they took), and journals
older than ``bot_audio_end_at`` not when a reply stopped: those times are estimated, drawn
dashed (class ``estimated``), and their tooltips say how.

Stable class names, for tests and a headless browser:

- ``lane-caller`` / ``lane-bot``: the two lanes (SVG groups); ``bar-caller`` / ``bar-bot``:
  one bar per turn in them; ``waveform``: a turn's audio envelope in the caller lane;
- ``mark`` with ``mark-speech-end``, ``mark-committed``, ``mark-stt``, ``mark-llm``,
  ``mark-clause``, ``mark-first-audio``: a turn's pipeline markers;
- ``ttfa``: a TTFA bracket labelled ``TTFA N ms`` (N: the record's ``ttfa_seconds``);
- ``barge-in``: an interruption, in the SVG and as the heard/generated block of its turn;
- ``tool``, ``dtmf``, ``transfer``: tool calls, keys and transfers, in the SVG and as lists;
- ``transcript``: the transcript section; ``turn``: one turn's block in it; ``heard`` /
  ``unheard``: the part of an interrupted reply the caller heard, and the rest.

Every per-turn element carries ``data-turn="N"``; every bar and marker has a ``<title>``.
"""

from __future__ import annotations

import html
import math
import re
import sys
import wave
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.calls.records import LONG_TEXT_LIMIT, clean_text

RATE = 16000
"""The bridge rate the ``speech_*_sample`` counts are in (pipeline/audio/frames.py)."""
PRE_ROLL_S, POST_ROLL_S = 5120 / RATE, 1600 / RATE
"""A turn WAV holds this much audio before the detected onset and after the detected end
(``PRE_ROLL`` / ``POST_ROLL`` of pipeline/stt/transcriber.py)."""
CHARS_PER_SECOND = 15.0
"""Piper's speaking rate, to guess when a reply stopped (bench calls: 11-16 characters/s)."""
PX_PER_SECOND = 100.0
MIN_WIDTH, MAX_WIDTH = 800.0, 30000.0
"""The plot's width in px: the call's length at ``PX_PER_SECOND``, within these bounds."""
MAX_SECONDS = 86400.0
"""A time past this is a broken record, not a call: it is left off the axis."""
ENVELOPE_RATE = 100
"""Points per second of a turn's waveform (one px at ``PX_PER_SECOND``)."""
SHORT, NAME = 300, 200
"""The longest text in a tooltip, and in a header field or label."""
LEFT, RIGHT = 70.0, 30.0
"""Room left of the plot for the lane names, and right of it for the last label."""

# the rows of the SVG: (top, height)
AXIS = (0.0, 22.0)
CALLER = (28.0, 56.0)
BOT = (90.0, 44.0)
MARKS = (140.0, 26.0)
TTFA = (172.0, 40.0)
EVENTS = (218.0, 44.0)
HEIGHT = 268.0

MARK_KINDS = {  # kind: (legend, exact?)
    "speech-end": ("end of caller speech (VAD)", True),
    "committed": ("end-of-turn decision", True),
    "stt": ("STT done (estimated)", False),
    "llm": ("LLM first token (estimated)", False),
    "clause": ("first clause audio ready (estimated)", False),
    "first-audio": ("first reply audio on the wire", True),
}


# --- record values -----------------------------------------------------------------------------

def _num(x: Any) -> float | None:
    """A finite number of the record, else None (old or hand-edited journals hold anything)."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    return float(x) if math.isfinite(x) else None


def _time(x: Any) -> float | None:
    """A time on the axis (seconds since the answer), or None if missing or absurd."""
    t = _num(x)
    return t if t is not None and 0.0 <= t <= MAX_SECONDS else None


def _dicts(x: Any) -> list[Mapping[str, Any]]:
    return [i for i in x if isinstance(i, Mapping)] if isinstance(x, list) else []


def _text(x: Any, limit: int = SHORT) -> str:
    """Record text as safe display text: escaped controls and bad bytes, clipped."""
    return clean_text("" if x is None else x, limit)


def esc(x: Any, limit: int = SHORT) -> str:
    """Record text as HTML (text or attribute value)."""
    return html.escape(_text(x, limit), quote=True)


def _quote(x: Any) -> str:
    """Record text quoted for a tooltip (not ``repr``: it would double the escapes)."""
    return f"\u201c{_text(x)}\u201d"


def _ms(x: Any) -> str:
    v = _num(x)
    return "-" if v is None else f"{v * 1000:.0f}"


def _s(t: float | None) -> str:
    return "-" if t is None else f"{t:.2f} s"


# --- turn WAVs ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Waveform:
    """A turn's audio as a min/max envelope, ``ENVELOPE_RATE`` points a second, in -1..1."""
    seconds: float
    lows: tuple[float, ...]
    highs: tuple[float, ...]


def read_wav(path: str | Path, max_seconds: float = 600.0) -> Waveform | None:
    """A 16-bit WAV's envelope (its first channel), or None if it is not one."""
    try:
        with wave.open(str(path), "rb") as w:
            rate, channels = w.getframerate(), w.getnchannels()
            if w.getsampwidth() != 2 or rate <= 0 or channels <= 0:
                return None
            data = w.readframes(min(w.getnframes(), int(rate * max_seconds)))
    except (OSError, EOFError, wave.Error):
        return None
    samples = array("h")
    samples.frombytes(data[:len(data) // 2 * 2])
    if sys.byteorder == "big":  # WAV is little-endian
        samples.byteswap()
    mono = samples[::channels]
    step = max(1, rate // ENVELOPE_RATE)
    chunks = [mono[i:i + step] for i in range(0, len(mono), step)]
    return Waveform(len(mono) / rate, tuple(min(c) / 32768 for c in chunks),
                    tuple(max(c) / 32768 for c in chunks))


_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,100}")


def _written_during(path: Path, rec: Mapping[str, Any]) -> bool:
    """Log names (call-3) start again at every gateway start: a WAV written outside this
    call's time is another call's."""
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return False
    start, end = _num(rec.get("start_ts")), _num(rec.get("end_ts"))
    if start is not None and mtime < start - 1.0:
        return False
    return end is None or mtime <= end + 60.0


def turn_waveforms(rec: Mapping[str, Any], audio_dir: str | Path) -> dict[int, Waveform]:
    """The envelopes of the call's turn WAVs in ``audio_dir`` (``<call>-turn<N>.wav``, as
    ``[log] turn_audio_dir`` names them), by turn number; turns without one are left out."""
    name = rec.get("call")
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name):
        return {}  # never a path out of the journal: "../x" or "/etc" are not call names
    out: dict[int, Waveform] = {}
    for t in _dicts(rec.get("turns")):
        no = t.get("turn")
        if isinstance(no, bool) or not isinstance(no, int):
            continue
        path = Path(audio_dir) / f"{name}-turn{no}.wav"
        if _written_during(path, rec) and (w := read_wav(path)) is not None:
            out[no] = w
    return out


# --- where things are in time ------------------------------------------------------------------

@dataclass
class Span:
    start: float
    end: float
    how: str
    """How the span was found (tooltips)."""
    estimated: bool = False


@dataclass
class Mark:
    kind: str
    t: float
    title: str


@dataclass
class Turn:
    """One turn of the record, placed on the axis."""
    index: int
    key: str
    """Its ``data-turn`` value: the turn number (or its place, if the record has none)."""
    raw: Mapping[str, Any]
    caller: Span | None = None
    bot: Span | None = None
    reply_start: float | None = None
    marks: list[Mark] = field(default_factory=list)


def _caller_span(t: Mapping[str, Any]) -> Span | None:
    """The caller's speech: its length from the VAD's sample counts, ending at
    ``speech_end_at`` (the sample clock starts at media-up, not at the answer)."""
    end = _time(t.get("speech_end_at"))
    s0, s1 = _num(t.get("speech_start_sample")), _num(t.get("speech_end_sample"))
    length = (s1 - s0) / RATE if s0 is not None and s1 is not None and s1 >= s0 else None
    if end is not None:
        if length is None:
            return Span(end, end, "speech_end_at only (no sample counts)", True)
        return Span(max(0.0, end - length), end, "length from the VAD's sample counts")
    if length is not None and s0 is not None and _time(s0 / RATE) is not None:
        return Span(s0 / RATE, s0 / RATE + length, "sample counts only (media clock)", True)
    return None


def _reply_start(t: Mapping[str, Any]) -> float | None:
    """When the reply was started (the transcript was in), estimated: the journal keeps the
    stages' durations, not their times. After the commit plus the STT time, unless the first
    audio came too early for that (a reply prepared during a pause, held until the commit)."""
    committed, first = _time(t.get("committed_at")), _time(t.get("first_audio_at"))
    stt, tts = _num(t.get("stt_seconds")), _num(t.get("tts_first_audio_seconds"))
    forward = None if committed is None else committed + (stt or 0.0)
    back = None if first is None or tts is None else first - tts
    known = [x for x in (forward, back) if x is not None and x >= 0.0]
    return min(known) if known else None


def _marks(t: Mapping[str, Any], reply: float | None) -> list[Mark]:
    out: list[Mark] = []

    def add(kind: str, at: float | None, title: str) -> None:
        if at is not None and 0.0 <= at <= MAX_SECONDS:
            out.append(Mark(kind, at, f"{MARK_KINDS[kind][0]} at {at:.2f} s{title}"))

    add("speech-end", _time(t.get("speech_end_at")), "")
    why = t.get("end_of_turn_reason") or ""
    score = _num(t.get("end_of_turn_score"))
    why = (f", {why}" if why else "") + ("" if score is None else f", score {score:.2f}")
    add("committed", _time(t.get("committed_at")),
        f" (end-of-turn {_ms(t.get('end_of_turn_seconds'))} ms after the speech end{why})")
    stt, llm, tts = (_num(t.get(k)) for k in ("stt_seconds", "llm_first_token_seconds",
                                              "tts_first_audio_seconds"))
    if reply is not None:
        how = ": placed from the stage durations"
        add("stt", reply if stt is not None else None, f"{how} (STT {_ms(stt)} ms)")
        add("llm", None if llm is None else reply + llm, f"{how} ({_ms(llm)} ms after STT)")
        add("clause", None if tts is None else reply + tts, f"{how} ({_ms(tts)} ms after STT)")
    wire, bridge = _time(t.get("bot_sound_start_at")), _time(t.get("first_audio_at"))
    add("first-audio", wire if wire is not None else bridge,
        f" (handed to the bridge at {_s(bridge)}, loud on the wire at {_s(wire)})")
    return out


def _bot_span(t: Mapping[str, Any], next_onset: float | None, limit: float) -> Span | None:
    """The reply's audio, from its first sound to ``bot_audio_end_at`` (when its last frame
    left: played to the end or cut). Journals from before that field get an estimated end:
    for a barge-in, the next turn's onset plus the barge-in latency, else the text's length
    read aloud."""
    start = _time(t.get("bot_sound_start_at"))
    if start is None:
        start = _time(t.get("first_audio_at"))
    if start is None:
        return None
    end = _time(t.get("bot_audio_end_at"))
    if end is not None and end >= start:
        return Span(start, min(end, max(start, limit)), "end measured: its last frame sent")
    barge = _num(t.get("barge_in_seconds"))
    if t.get("interrupted") and barge is not None and next_onset is not None \
            and next_onset >= start:
        end, how = next_onset + barge, "end estimated: the next turn's onset + the barge-in"
    else:
        said = t.get("heard_text") if t.get("interrupted") else t.get("bot_text")
        chars = len(said) if isinstance(said, str) else 0
        end = start + max(0.2, chars / CHARS_PER_SECOND)
        how = f"end estimated from the text's length ({CHARS_PER_SECOND:.0f} chars/s)"
    return Span(start, max(start, min(end, limit)), how, True)


def place_turns(rec: Mapping[str, Any], limit: float = MAX_SECONDS) -> list[Turn]:
    """The record's turns on the axis; no bot span ends past ``limit`` (the call's end)."""
    turns = []
    for i, t in enumerate(_dicts(rec.get("turns"))):
        no = t.get("turn")
        key = str(no) if isinstance(no, int) and not isinstance(no, bool) else str(i + 1)
        reply = _reply_start(t)
        turns.append(Turn(i, key, t, _caller_span(t), reply_start=reply,
                          marks=_marks(t, reply)))
    for i, turn in enumerate(turns):  # a barge-in's reply ends where the next turn starts
        nxt = turns[i + 1].caller if i + 1 < len(turns) else None
        turn.bot = _bot_span(turn.raw, None if nxt is None else nxt.start, limit)
    return turns


def _events(rec: Mapping[str, Any]) -> Iterator[float]:
    for t in _dicts(rec.get("turns")):
        for k in ("speech_end_at", "committed_at", "first_audio_at", "bot_sound_start_at",
                  "bot_audio_end_at"):
            if (v := _time(t.get(k))) is not None:
                yield v
    for x in _dicts(rec.get("dtmf")) + _dicts(rec.get("transfers")):
        if (v := _time(x.get("t"))) is not None:
            yield v


def call_seconds(rec: Mapping[str, Any]) -> float:
    """The axis' length: the call's duration, or its last event (an open record)."""
    dur = _time(rec.get("duration_seconds")) or 0.0
    return max([1.0, dur] + [t + 1.0 for t in _events(rec)])


# --- SVG ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Axis:
    seconds: float
    width: float

    @classmethod
    def of(cls, seconds: float) -> Axis:
        return cls(seconds, min(MAX_WIDTH, max(MIN_WIDTH, seconds * PX_PER_SECOND)))

    def x(self, t: float) -> float:
        return LEFT + min(max(t, 0.0), self.seconds) / self.seconds * self.width


def _f(x: float) -> str:
    return f"{x:.1f}"


def _title(text: str) -> str:
    """A tooltip: the text is already display text; it is escaped here."""
    return f"<title>{html.escape(text)}</title>"


def _tick_step(axis: Axis) -> float:
    px = axis.width / axis.seconds
    for step in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600):
        if step * px >= 70:
            return float(step)
    return 7200.0


def _axis_svg(axis: Axis) -> str:
    step, parts = _tick_step(axis), []
    n = int(axis.seconds // step)
    for i in range(n + 1):
        x = _f(axis.x(i * step))
        parts.append(f'<line class="tick" x1="{x}" y1="{AXIS[1] - 4}" x2="{x}" y2="{HEIGHT}"/>'
                     f'<text class="tick-label" x="{x}" y="12">{i * step:g} s</text>')
    return '<g class="axis">' + "".join(parts) + "</g>"


def _lane(cls: str, row: tuple[float, float], label: str, body: list[str], axis: Axis) -> str:
    top, h = row
    return (f'<g class="lane {cls}"><rect class="lane-bg" x="{LEFT}" y="{top}" '
            f'width="{_f(axis.width)}" height="{h}"/>'
            f'<text class="lane-label" x="4" y="{top + h / 2 + 4}">{label}</text>'
            f"{''.join(body)}</g>")


def _bar(cls: str, turn: Turn, span: Span, row: tuple[float, float], axis: Axis,
         title: str) -> str:
    top, h = row
    x0, x1 = axis.x(span.start), axis.x(span.end)
    est = " estimated" if span.estimated else ""
    return (f'<a href="#turn-{esc(turn.key)}"><g class="{cls}{est}" data-turn="{esc(turn.key)}">'
            f"{_title(title)}"
            f'<rect x="{_f(x0)}" y="{top + 4}" width="{_f(max(2.0, x1 - x0))}" '
            f'height="{h - 8}" rx="3"/>'
            f'<text class="bar-label" x="{_f(x0 + 3)}" y="{top + 15}">{esc(turn.key)}</text>'
            "</g></a>")


def _waveform(turn: Turn, speech: Span, w: Waveform, axis: Axis) -> str:
    """The envelope, its end at the speech end plus the post-roll (the WAV's start may have
    been cut at the start of the call's audio, its end never is)."""
    top, h = CALLER
    mid, half = top + h / 2, h / 2 - 5
    end = speech.end + POST_ROLL_S
    start = end - w.seconds

    def x(i: int) -> str:
        return _f(axis.x(start + i / ENVELOPE_RATE))

    upper = [f"{x(i)},{mid - hi * half:.1f}" for i, hi in enumerate(w.highs)]
    lower = [f"{x(i)},{mid - lo * half:.1f}" for i, lo in reversed(list(enumerate(w.lows)))]
    if not upper:
        return ""
    d = "M" + " L".join(upper + lower) + " Z"
    return (f'<path class="waveform" data-turn="{esc(turn.key)}" d="{d}">'
            f"{_title(f'turn {_text(turn.key, NAME)}: the caller audio kept, {w.seconds:.2f} s')}"
            "</path>")


def _caller_title(turn: Turn, span: Span) -> str:
    return (f"turn {_text(turn.key, NAME)}, caller {span.start:.2f}-{span.end:.2f} s "
            f"({span.how}): {_quote(turn.raw.get('caller_text'))}")


def _bot_title(turn: Turn, span: Span) -> str:
    return (f"turn {_text(turn.key, NAME)}, bot {span.start:.2f}-{span.end:.2f} s "
            f"({span.how}): {_quote(turn.raw.get('bot_text'))}")


def _lanes_svg(turns: list[Turn], axis: Axis, waves: Mapping[int, Waveform]) -> str:
    caller, bot = [], []
    for turn in turns:
        if turn.caller is not None:
            caller.append(_bar("bar-caller", turn, turn.caller, CALLER, axis,
                               _caller_title(turn, turn.caller)))
            w = waves.get(int(turn.key)) if turn.key.isdigit() else None
            if w is not None:
                caller.append(_waveform(turn, turn.caller, w, axis))
        if turn.bot is not None:
            bot.append(_bar("bar-bot", turn, turn.bot, BOT, axis, _bot_title(turn, turn.bot)))
    return (_lane("lane-caller", CALLER, "caller", caller, axis)
            + _lane("lane-bot", BOT, "bot", bot, axis))


def _marks_svg(turns: list[Turn], axis: Axis) -> str:
    top, h = MARKS
    parts = []
    for turn in turns:
        for m in turn.marks:
            est = "" if MARK_KINDS[m.kind][1] else " estimated"
            x = _f(axis.x(m.t))
            parts.append(f'<g class="mark mark-{m.kind}{est}" data-turn="{esc(turn.key)}">'
                         f"{_title(f'turn {_text(turn.key, NAME)}: {m.title}')}"
                         f'<line x1="{x}" y1="{top + 2}" x2="{x}" y2="{top + h - 2}"/></g>')
    return (f'<g class="marks"><text class="lane-label" x="4" y="{top + h / 2 + 4}">pipeline'
            f"</text>{''.join(parts)}</g>")


def _ttfa_svg(turn: Turn, axis: Axis) -> str:
    t = turn.raw
    ttfa = _num(t.get("ttfa_seconds"))
    start = _time(t.get("caller_sound_end_at"))
    start = _time(t.get("speech_end_at")) if start is None else start
    end = _time(t.get("bot_sound_start_at"))
    end = _time(t.get("first_audio_at")) if end is None else end
    if ttfa is None or start is None or end is None:
        return ""
    top = TTFA[0] + (turn.index % 2) * 18  # neighbours' labels on alternate rows
    x0, x1 = axis.x(start), axis.x(max(start, end))
    label = f"TTFA {ttfa * 1000:.0f} ms"
    title = (f"turn {_text(turn.key, NAME)}: {label}, from the caller's last sound "
             f"({start:.2f} s) to the reply's first sound on the wire ({end:.2f} s); "
             f"at the bridge {_ms(t.get('ttfa_bridge_seconds'))} ms, jitter buffer "
             f"{_ms((_num(t.get('jb_delay_ms')) or 0.0) / 1000)} ms")
    return (f'<g class="ttfa" data-turn="{esc(turn.key)}">{_title(title)}'
            f'<path d="M{_f(x0)},{top + 2} V{top + 8} H{_f(x1)} V{top + 2}"/>'
            f'<text x="{_f(x0 + 2)}" y="{top + 19}">{label}</text></g>')


def _barge_svg(turn: Turn, next_turn: Turn | None, axis: Axis) -> str:
    t = turn.raw
    if not t.get("interrupted") or turn.bot is None:
        return ""
    onset = next_turn.caller.start if next_turn and next_turn.caller else turn.bot.end
    px = axis.x(onset)
    x = _f(px)
    title = (f"turn {_text(turn.key, NAME)}: barge-in at {onset:.2f} s, the bot stopped "
             f"{_ms(t.get('barge_in_seconds'))} ms later. Heard: "
             f"{_quote(t.get('heard_text'))}; generated: {_quote(t.get('bot_text'))}")
    top = CALLER[0]
    return (f'<g class="barge-in" data-turn="{esc(turn.key)}">{_title(title)}'
            f'<line x1="{x}" y1="{top}" x2="{x}" y2="{BOT[0] + BOT[1]}"/>'
            f'<path d="M{x},{top} l-5,-6 h10 Z"/>'
            f'<text x="{_f(px + 3)}" y="{BOT[0] + BOT[1] - 4}">barge-in '
            f"{_ms(t.get('barge_in_seconds'))} ms</text></g>")


def _tool_title(tool: Mapping[str, Any]) -> str:
    return (f"tool {_text(tool.get('name', '?'), NAME)} {_text(tool.get('arguments', {}))} -> "
            f"{_text(tool.get('decision', '?'), NAME)}, {_text(tool.get('outcome', '?'), NAME)} "
            f"({_text(tool.get('ms', '-'), 40)} ms)")


def _tools_svg(turn: Turn, axis: Axis) -> str:
    at = turn.reply_start
    at = _time(turn.raw.get("committed_at")) if at is None else at
    tools = _dicts(turn.raw.get("tools"))
    if at is None or not tools:
        return ""
    top, parts = EVENTS[0] + 26, []
    for i, tool in enumerate(tools):
        x = axis.x(at) + i * 12
        title = (f"turn {_text(turn.key, NAME)}: {_tool_title(tool)} (placed where the "
                 "transcript was in: the journal keeps no time for a tool call)")
        label = f"{_text(tool.get('name', '?'), 40)}: {_text(tool.get('decision', '?'), 40)}"
        text = f'<text x="{_f(x + 7)}" y="{top + 10}">{html.escape(label)}</text>'
        parts.append(f'<g class="tool" data-turn="{esc(turn.key)}">{_title(title)}'
                     f'<path d="M{_f(x)},{top} l5,6 l-5,6 l-5,-6 Z"/>'
                     f'{text if i == 0 else ""}</g>')
    return "".join(parts)


def _dtmf_svg(rec: Mapping[str, Any], axis: Axis) -> str:
    top, parts = EVENTS[0], []
    for k in _dicts(rec.get("dtmf")):
        at = _time(k.get("t"))
        if at is None:
            continue
        x, digit = axis.x(at), _text(k.get("digit", "?"), 8)
        title = f"key {digit} ({_text(k.get('method', '?'), 40)}) at {at:.2f} s"
        parts.append(f'<g class="dtmf">{_title(title)}<circle cx="{_f(x)}" cy="{top + 8}" '
                     f'r="7"/><text x="{_f(x)}" y="{top + 12}">{html.escape(digit)}</text></g>')
    return "".join(parts)


def _transfer_text(x: Mapping[str, Any]) -> str:
    return (f"transfer to {_text(x.get('target', '?'))}: {_text(x.get('outcome', '?'), 40)} "
            f"({_text(x.get('status', '-'), 40)} {_text(x.get('reason', ''), NAME)})")


def _transfers_svg(rec: Mapping[str, Any], axis: Axis) -> str:
    top, parts = EVENTS[0], []
    for i, x in enumerate(_dicts(rec.get("transfers"))):
        at = _time(x.get("t"))
        if at is None:
            continue
        px, y = axis.x(at), top + 2 + (i % 2) * 12
        parts.append(f'<g class="transfer">{_title(f"{_transfer_text(x)} at {at:.2f} s")}'
                     f'<path d="M{_f(px)},{y} l8,5 l-8,5 Z"/><text x="{_f(px + 10)}" '
                     f'y="{y + 9}">{esc(x.get("outcome", "?"), 40)}</text></g>')
    return "".join(parts)


def _end_svg(rec: Mapping[str, Any], axis: Axis) -> str:
    dur = _time(rec.get("duration_seconds"))
    if dur is None:
        return ""
    x = _f(axis.x(dur))
    return (f'<g class="call-end">{_title(f"call ended at {dur:.2f} s")}<line x1="{x}" '
            f'y1="{AXIS[1]}" x2="{x}" y2="{HEIGHT}"/></g>')


def timeline_svg(rec: Mapping[str, Any], turns: list[Turn], axis: Axis,
                 waves: Mapping[int, Waveform]) -> str:
    per_turn = []
    for i, turn in enumerate(turns):
        per_turn += [_ttfa_svg(turn, axis), _tools_svg(turn, axis),
                     _barge_svg(turn, turns[i + 1] if i + 1 < len(turns) else None, axis)]
    width = LEFT + axis.width + RIGHT
    return (f'<svg class="timeline-svg" width="{_f(width)}" height="{HEIGHT}" '
            f'viewBox="0 0 {_f(width)} {HEIGHT}" role="img" aria-label="call timeline">'
            + _axis_svg(axis) + _lanes_svg(turns, axis, waves) + _marks_svg(turns, axis)
            + f'<text class="lane-label" x="4" y="{TTFA[0] + 14}">TTFA</text>'
            + f'<text class="lane-label" x="4" y="{EVENTS[0] + 14}">events</text>'
            + "".join(per_turn) + _dtmf_svg(rec, axis) + _transfers_svg(rec, axis)
            + _end_svg(rec, axis) + "</svg>")


# --- HTML --------------------------------------------------------------------------------------

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fff}
h1{font-size:1.3em;overflow-wrap:anywhere}h2{font-size:1.1em;margin-top:1.5em}
dl.call{display:grid;grid-template-columns:max-content 1fr;gap:.15em 1em;margin:0}
dl.call dt{color:#666}dl.call dd{margin:0;overflow-wrap:anywhere}
.note{color:#666;font-size:.9em}
.scroll{overflow-x:auto;border:1px solid #ddd;background:#fcfcfc}
svg text{font-size:11px;fill:#333}
.tick{stroke:#eee}.tick-label{fill:#999}.lane-bg{fill:#f4f4f4}.lane-label{fill:#666}
.bar-caller rect{fill:#9cc3e6;stroke:#3b78b0}.bar-bot rect{fill:#b5dfb0;stroke:#3f8f3a}
.bar-bot.estimated rect,.bar-caller.estimated rect{stroke-dasharray:4 3}
.bar-label{font-weight:bold}
.waveform{fill:#1f4e79;fill-opacity:.55;stroke:none}
.mark line{stroke-width:2}.mark.estimated line{stroke-dasharray:3 2}
.mark-speech-end line,.sw-speech-end{stroke:#1f4e79;background:#1f4e79}
.mark-committed line,.sw-committed{stroke:#7b3fa0;background:#7b3fa0}
.mark-stt line,.sw-stt{stroke:#c77c02;background:#c77c02}
.mark-llm line,.sw-llm{stroke:#d0421b;background:#d0421b}
.mark-clause line,.sw-clause{stroke:#8a6d3b;background:#8a6d3b}
.mark-first-audio line,.sw-first-audio{stroke:#2e7d32;background:#2e7d32}
.ttfa path{fill:none;stroke:#444}.ttfa text{font-weight:bold}
.barge-in line{stroke:#c62828;stroke-width:2}.barge-in path{fill:#c62828}
.barge-in text{fill:#c62828}
.tool path{fill:#6a1b9a}.dtmf circle{fill:#fff;stroke:#555}.dtmf text{text-anchor:middle}
.transfer path{fill:#00838f}.call-end line{stroke:#000;stroke-dasharray:6 3}
ul.legend{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:.3em 1.2em}
.swatch{display:inline-block;width:.9em;height:.9em;margin-right:.35em;vertical-align:-2px}
.sw-caller{background:#9cc3e6}.sw-bot{background:#b5dfb0}.sw-estimated{border:1px dashed #555}
.sw-ttfa{border-bottom:2px solid #444}.sw-barge-in{background:#c62828}
.sw-tool{background:#6a1b9a}.sw-dtmf{border:1px solid #555;border-radius:50%}
.sw-transfer{background:#00838f}
.transcript .turn{border-top:1px solid #ddd;padding:.5em 0}
.turn h3{font-size:1em;margin:.2em 0}.who{color:#666;display:inline-block;width:3.5em}
.said{white-space:pre-wrap;overflow-wrap:anywhere}
.unheard{color:#999;text-decoration:line-through dotted}
.barge-in.block{color:#c62828}
table.timings{border-collapse:collapse;font-size:.9em;margin:.3em 0}
table.timings td,table.timings th{border:1px solid #ddd;padding:.1em .5em;text-align:right}
details pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f6f6;padding:.5em}
"""


def _header(rec: Mapping[str, Any], turns: list[Turn], state: str) -> str:
    rtp = rec.get("rtp") if isinstance(rec.get("rtp"), Mapping) else {}
    dur = _num(rec.get("duration_seconds"))
    sip = f"{_text(rec.get('sip_status'), 40)} {_text(rec.get('sip_reason'), NAME)}".strip() \
        if rec.get("sip_status") is not None else "-"
    count = str(len(turns))
    if _num(rec.get("turn_count")) not in (None, len(turns)):
        count += f" (the close line says {_text(rec.get('turn_count'), 40)})"
    pid = _text(rec.get("pid", "-"), 40)
    rows = [("call", f"{_text(rec.get('call', '-'), NAME)} (pid {pid})"),
            ("start", _text(rec.get("start", "-"), NAME)),
            ("duration", "-" if dur is None else f"{dur:.1f} s"),
            ("outcome", state),
            ("end cause", _text(rec.get("end_cause") or "-", NAME)),
            ("from", _text(rec.get("remote_uri") or "-", NAME)),
            ("to", _text(rec.get("local_uri") or "-", NAME)),
            ("codec", _text(rec.get("codec") or rtp.get("codec") or "-", NAME)),
            ("SIP status", sip),
            ("turns", count),
            ("barge-ins", _text(rec.get("barge_ins", sum(1 for t in turns
                                                        if t.raw.get("interrupted"))), 40))]
    cells = "".join(f"<dt>{k}</dt><dd>{html.escape(v)}</dd>" for k, v in rows)
    return (f'<header><h1>Call {esc(rec.get("id"), NAME)}</h1>'
            f'<dl class="call">{cells}</dl></header>')


def _legend() -> str:
    items = [("caller", "caller speech (bar: the turn number)"),
             ("bot", "bot speech"), ("estimated", "dashed: estimated")]
    items += [(k, v[0]) for k, v in MARK_KINDS.items()]
    items += [("ttfa", "TTFA: caller's last sound to the reply's first, on the wire"),
              ("barge-in", "barge-in (the caller spoke over the bot)"), ("tool", "tool call"),
              ("dtmf", "key pressed"), ("transfer", "transfer")]
    return '<ul class="legend">' + "".join(
        f'<li><span class="swatch sw-{k}"></span>{html.escape(v)}</li>' for k, v in items) + "</ul>"


def _bot_text_html(t: Mapping[str, Any]) -> str:
    """The reply; if interrupted, the part the caller heard and the rest apart."""
    bot = _text(t.get("bot_text"), LONG_TEXT_LIMIT)
    if not t.get("interrupted"):
        return html.escape(bot)
    heard = _text(t.get("heard_text"), LONG_TEXT_LIMIT)
    if heard and bot.startswith(heard):
        return (f'<span class="heard">{html.escape(heard)}</span>'
                f'<span class="unheard">{html.escape(bot[len(heard):])}</span>')
    return f'<span class="unheard">{html.escape(bot)}</span>'


def _barge_block(t: Mapping[str, Any], key: str) -> str:
    if not t.get("interrupted"):
        return ""
    return (f'<p class="barge-in block" data-turn="{esc(key)}">Barge-in: the bot stopped '
            f"{_ms(t.get('barge_in_seconds'))} ms after the caller spoke. Heard: "
            f'<q class="heard">{esc(t.get("heard_text"), LONG_TEXT_LIMIT)}</q>; generated: '
            f'<q class="generated">{esc(t.get("bot_text"), LONG_TEXT_LIMIT)}</q></p>')


def _timings_table(t: Mapping[str, Any]) -> str:
    cols = [("end-of-turn", "end_of_turn_seconds"), ("STT", "stt_seconds"),
            ("LLM first token", "llm_first_token_seconds"),
            ("TTS first audio", "tts_first_audio_seconds"), ("TTFA", "ttfa_seconds"),
            ("TTFA at the bridge", "ttfa_bridge_seconds"), ("barge-in", "barge_in_seconds")]
    head = "".join(f"<th>{k}</th>" for k, _ in cols)
    row = "".join(f"<td>{_ms(t.get(v))}</td>" for _, v in cols)
    return f'<table class="timings"><tr><th>ms</th>{head}</tr><tr><th></th>{row}</tr></table>'


def _tools_list(t: Mapping[str, Any], key: str) -> str:
    tools = _dicts(t.get("tools"))
    if not tools:
        return ""
    return '<ul class="tools">' + "".join(
        f'<li class="tool" data-turn="{esc(key)}">{html.escape(_tool_title(x))}</li>'
        for x in tools) + "</ul>"


def _facts(t: Mapping[str, Any]) -> str:
    note = t.get("facts_note")
    if not note:
        return ""
    # the journal escapes newlines (clean_text): the note is the gateway's own text, show its lines
    text = _text(note, LONG_TEXT_LIMIT).replace("\\x0a", "\n")
    return f"<details><summary>facts note</summary><pre>{html.escape(text)}</pre></details>"


def _turn_html(turn: Turn) -> str:
    t, key = turn.raw, turn.key
    flags = (" · barge-in" if t.get("interrupted") else "") \
        + (" · call ended" if t.get("ended_with_call") else "")
    at = _time(t.get("speech_end_at"))
    return (f'<article class="turn" data-turn="{esc(key)}" id="turn-{esc(key)}">'
            f"<h3>Turn {esc(key)} · {_s(at)} · TTFA {_ms(t.get('ttfa_seconds'))} ms{flags}</h3>"
            f'<div><span class="who">caller</span> <span class="said caller">'
            f"{esc(t.get('caller_text'), LONG_TEXT_LIMIT)}</span></div>"
            f'<div><span class="who">bot</span> <span class="said bot">{_bot_text_html(t)}'
            f"</span></div>{_barge_block(t, key)}{_tools_list(t, key)}{_timings_table(t)}"
            f"{_facts(t)}</article>")


def _events_html(rec: Mapping[str, Any]) -> str:
    keys = [f'<li class="dtmf">key {esc(k.get("digit", "?"), 40)} ({esc(k.get("method"), 40)})'
            f' at {esc(k.get("t", "?"), 40)} s</li>' for k in _dicts(rec.get("dtmf"))]
    moves = [f'<li class="transfer">{html.escape(_transfer_text(x))} at {esc(x.get("t", "?"), 40)}'
             f" s</li>" for x in _dicts(rec.get("transfers"))]
    if not keys and not moves:
        return ""
    return f'<section class="events"><h2>Keys and transfers</h2><ul>{"".join(keys + moves)}</ul>' \
        "</section>"


def _state(rec: Mapping[str, Any]) -> str:
    if rec.get("state") == "closed":
        return _text(rec.get("outcome") or "closed", NAME)
    return "open: no close line (in progress, or its gateway ended and has not restarted)"


def _recording_html(rec: Mapping[str, Any], href: str, play: bool) -> str:
    """The call's recording: a player (served pages) or a link (a page saved to a file)."""
    start = _num(rec.get("recording_start_at"))
    when = f" It starts {start:.2f} s after the answer." if start is not None else ""
    link = f'<a href="{esc(href, 2000)}">{esc(rec.get("recording"), NAME)}</a>'
    player = (f'<audio controls preload="none" src="{esc(href, 2000)}"></audio>'
              if play else "")
    return ('<section class="recording"><h2>Recording</h2>' + player
            + f'<p class="note">The caller on the left, the bot on the right: {link}.{when}'
            "</p></section>")


def render(rec: Mapping[str, Any], waveforms: Mapping[int, Waveform] | None = None,
           state: str | None = None, recording: str | None = None,
           play: bool = False) -> str:
    """The call's page. ``waveforms``: turn WAV envelopes by turn number (``turn_waveforms``);
    ``state``: the outcome to show (default: the record's, or open); ``recording``: where
    the call's recording is (a URL), played on the page with ``play``."""
    axis = Axis.of(call_seconds(rec))
    turns = place_turns(rec, _time(rec.get("duration_seconds")) or axis.seconds)
    transcript = "".join(_turn_html(t) for t in turns) or "<p>No turns.</p>"
    shown_state = _text(state, NAME) if state is not None else _state(rec)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'"
        + ("; media-src 'self'" if recording and play else "") + '">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Call {esc(rec.get('id'), NAME)}</title><style>{CSS}</style></head><body>"
        + _header(rec, turns, shown_state)
        + (_recording_html(rec, recording, play) if recording else "")
        + '<section class="timeline"><h2>Timeline</h2><p class="note">Seconds since the call '
        "was answered. Hover a bar or a marker for its values; a bar links to its turn.</p>"
        f'<div class="scroll">{timeline_svg(rec, turns, axis, waveforms or {})}</div>'
        + _legend() + "</section>" + _events_html(rec)
        + f'<section class="transcript"><h2>Transcript</h2>{transcript}</section>'
        + "</body></html>\n")
