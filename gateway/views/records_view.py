"""Call records for a terminal: the list of recent calls and one call's turns (``voicebot
calls``). Every value goes through ``clean_text``: a record with any text in it prints."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from gateway.calls.records import LONG_TEXT_LIMIT, TEXT_LIMIT, Folded, clean_text, owner_alive


def state_of(rec: Mapping[str, Any], alive: Callable[[Any, Any], bool] = owner_alive) -> str:
    """closed records: their outcome; open ones: in progress, or aborted (not yet closed) when
    their gateway process is gone."""
    if rec.get("state") == "closed":
        return str(rec.get("outcome") or "closed")
    return "in progress" if alive(rec.get("pid"), rec.get("pid_start")) else "aborted?"


def find(folded: Folded, key: str) -> dict[str, Any]:
    """A record by id, unique id prefix, or log name (``call-3``: the latest such call)."""
    if key in folded.calls:
        return folded.calls[key]
    by_name = [r for r in folded.records() if r.get("call") == key]
    if by_name:
        return by_name[-1]
    hits = [r for cid, r in folded.calls.items() if cid.startswith(key)]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise LookupError(f"no call {key!r} in the journal")
    raise LookupError(f"{key!r} matches {len(hits)} calls: "
                      + ", ".join(r["id"] for r in hits[:10]))


def _number(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) \
        and math.isfinite(x) else None


def _ms(x: Any) -> str:
    x = _number(x)
    return "-" if x is None else f"{x * 1000:.0f}"


def _show(x: Any, limit: int = TEXT_LIMIT) -> str:
    """A value of a record as text for a terminal: escaped and bounded (``clean_text``), so a
    record with any text in it (an old journal, a hand-edited line) prints."""
    return clean_text("-" if x is None else x, limit)


def _dicts(x: Any) -> list[Mapping[str, Any]]:
    return [i for i in x if isinstance(i, Mapping)] if isinstance(x, list) else []


FROM_COLUMN = 80
"""The widest FROM cell of ``format_list`` (the whole URI is in ``show``)."""


LIST_COLUMNS = ("ID", "START (UTC)", "DURATION", "TURNS", "OUTCOME", "CODEC", "TTFA p50 ms",
                "FROM")


def list_rows(recs: list[Mapping[str, Any]]) -> list[tuple[str, ...]]:
    """One row of display text per call (``LIST_COLUMNS``), for the terminal and the web page."""
    rows = []
    for r in recs:
        turns = _dicts(r.get("turns"))
        ttfas = sorted(v for v in (_number(t.get("ttfa_seconds")) for t in turns)
                       if v is not None)
        dur = _number(r.get("duration_seconds"))
        rows.append((
            _show(r.get("id")), _show(r.get("start") or "?", 19).replace("T", " "),
            "-" if dur is None else f"{dur:.1f} s", str(len(turns)),
            _show(state_of(r)), _show(r.get("codec") or "-", 40),
            _ms(ttfas[len(ttfas) // 2]) if ttfas else "-",
            _show(r.get("remote_uri") or "-", FROM_COLUMN)))
    return rows


def format_list(recs: list[Mapping[str, Any]]) -> str:
    rows = [LIST_COLUMNS, *list_rows(recs)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


def format_call(r: Mapping[str, Any]) -> str:
    rtp = r.get("rtp") if isinstance(r.get("rtp"), Mapping) else {}
    dur = _number(r.get("duration_seconds"))

    def f1(x: Any) -> str:
        x = _number(x)
        return "?" if x is None else f"{x:.1f}"

    lines = [
        f"call {_show(r.get('id'))}  ({_show(r.get('call', '?'))}, pid {_show(r.get('pid', '?'))})",
        f"  state      {_show(state_of(r))}"
        + (f": {_show(r['end_cause'])}" if r.get("end_cause") else ""),
        f"  from       {_show(r.get('remote_uri'))}  to {_show(r.get('local_uri'))}",
        f"  media      {_show(r.get('codec') or '-')}  remote RTP {_show(r.get('remote_rtp'))}",
        f"  start      {_show(r.get('start'))}",
        f"  end        {_show(r.get('end'))}"
        + (f"  ({dur:.1f} s)" if dur is not None else "")
        + (f"  SIP {_show(r['sip_status'])} {_show(r.get('sip_reason', ''))}".rstrip()
           if r.get("sip_status") else ""),
    ]
    if r.get("remote_contact") or r.get("sip_call_id"):
        lines.insert(3, f"  contact    {_show(r.get('remote_contact'))}  Call-ID "
                        f"{_show(r.get('sip_call_id'))}")
    if rtp:
        g = lambda k: _show(rtp.get(k, "?"), 40)  # noqa: E731
        lines.append(
            f"  rtp        rx {g('rx_packets')} pkts (lost {g('rx_lost')}, discarded "
            f"{g('rx_discard')}), tx {g('tx_packets')} pkts, jitter mean "
            f"{f1(rtp.get('rx_jitter_ms_mean') or 0.0)} ms, jitter buffer "
            f"{g('jb_delay_ms_avg')} ms (lost {g('jb_lost')}, discarded {g('jb_discard')}, "
            f"empty {g('jb_empty')})")
    keys = _dicts(r.get("dtmf"))
    if keys:
        lines.append("  keys       " + " ".join(_show(k.get("digit", "?"), 40) for k in keys)
                     + "  (" + ", ".join(f"{_show(k.get('method', '?'), 40)} at "
                                         f"{_show(k.get('t', '?'), 40)} s" for k in keys)
                     + ")")
    for x in _dicts(r.get("transfers")):
        lines.append(f"  transfer   to {_show(x.get('target', '?'))}: "
                     f"{_show(x.get('outcome', '?'))} "
                     f"({_show(x.get('status', '-'))} {_show(x.get('reason', ''))}".rstrip()
                     + f") at {_show(x.get('t', '?'))} s")
    turns = _dicts(r.get("turns"))
    lines.append(f"  turns      {len(turns)}")
    for t in turns:
        flags = " [barge-in]" if t.get("interrupted") else ""
        flags += " [call ended]" if t.get("ended_with_call") else ""
        lines += [
            f"  turn {_show(t.get('turn'))} at {_show(t.get('speech_end_at'))} s{flags}",
            f"    caller   '{_show(t.get('caller_text', ''), LONG_TEXT_LIMIT)}'",
            f"    bot      '{_show(t.get('bot_text', ''), LONG_TEXT_LIMIT)}'",
        ]
        if t.get("interrupted"):
            lines.append(f"    heard    '{_show(t.get('heard_text', ''), LONG_TEXT_LIMIT)}'")
        jb = _number(t.get("jb_delay_ms")) or 0.0
        lines.append(
            "    ms       end-of-turn {}  stt {}  llm first token {}  tts first audio {}  "
            "TTFA {} (pipeline: {}; jitter buffer {:.0f})".format(
                _ms(t.get("end_of_turn_seconds")), _ms(t.get("stt_seconds")),
                _ms(t.get("llm_first_token_seconds")), _ms(t.get("tts_first_audio_seconds")),
                _ms(t.get("ttfa_seconds")), _ms(t.get("ttfa_bridge_seconds")), jb))
        if _number(t.get("barge_in_seconds")) is not None:
            lines.append(f"    barge-in {_ms(t['barge_in_seconds'])} ms")
        if t.get("llm_error"):
            lines.append(f"    llm error {_show(t['llm_error'])} "
                         f"({_show(t.get('llm_backend', '?'))}; the caller heard the apology)")
        for stage in ("stt", "tts"):  # a speech server failed this turn (the call went on)
            if t.get(f"{stage}_error"):
                lines.append(f"    {stage} error {_show(t[f'{stage}_error'])}")
        for tool in _dicts(t.get("tools")):
            lines.append(f"    tool     {_show(tool.get('name', '?'))} "
                         f"{_show(tool.get('arguments', {}))} "
                         f"-> {_show(tool.get('decision', '?'))}, "
                         f"{_show(tool.get('outcome', '?'))} "
                         f"({_show(tool.get('ms', '-'))} ms)")
    return "\n".join(lines)
