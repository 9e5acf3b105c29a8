"""Answer accuracy: does the bot tell callers the right facts? Real models, no SIP.

    .venv/bin/python -m bench.answers [--models 1.5b,0.5b] [--notes on,off] [--seeds 1,2,3]
                                      [--persona KEY] [--out FILE] [--json FILE]
    .venv/bin/python -m bench.answers --rescore FILE.json [--out FILE]

For each persona (testbed/answer_cases.py: a business as the ``[business]`` config table) the
system prompt is built exactly as the gateway builds it (gateway.app.system_prompt), and
each case is a short call: the caller's turns in order, each answered by the model with the
gateway's history and sampling settings; only the last answer is scored, strictly (every
required pattern present, no contrary claim). The clock is the case's: the computed-facts
note (``[business] note``) is made for that local time. Runs every model x note setting x
seed, prints each verdict (so a person can check the scorer), then accuracy per category,
side by side, for the tuning cases and the held-out ones separately, and how often a
question the facts do not answer got the fallback. ``--rescore`` judges the answers a run
stored (``--json``) again with the cases as they are now (a scorer made stricter), no model.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from bench.report import write_json
from gateway.app import fact_index, system_prompt
from gateway.config import build, business_of
from pipeline import models
from pipeline.facts.turns import CallFacts
from pipeline.llm.chat import spaced_after, stream_chat
from pipeline.llm.embedded import SharedModel, go_on
from pipeline.reply.chunker import ClauseChunker
from pipeline.reply.guard import Guess
from pipeline.reply.history import ChatHistory
from pipeline.reply.worker import FIRST_CLAUSE_WORDS
from testbed.answer_cases import (
    CASES,
    CATEGORIES,
    FALLBACK_MUST,
    PERSONAS,
    STYLES,
    Case,
    normalise,
    score,
)

MODELS = {"1.5b": "qwen2.5-coder-1.5b", "0.5b": "qwen2.5-coder-0.5b"}
NOTE_MODES = {  # --notes: (column name, [business] note, [business] meaning)
    "on": ("note", True, True),
    "rules": ("rules-note", True, False),
    "off": ("no-note", False, False),
}
STYLE = ("You are the phone receptionist of {name}. Answer in one or two short spoken "
         "sentences, plain words, no lists, no markdown, no emoji.")


def persona_config(key: str, note: bool, meaning: bool = True):
    table = dict(PERSONAS[key].business, note=note, meaning=meaning)
    name = table["name"]
    return build({"business": table, "llm": {"system_prompt": STYLE.format(name=name),
                                             "greeting": f"Hello, {name}, how can I help?"}})


def wall_of(case: Case, timezone: str) -> float:
    return datetime.fromisoformat(case.clock).replace(tzinfo=ZoneInfo(timezone)).timestamp()


_INDEXES: dict[str, object] = {}


def run_case(llm, cfg, case: Case, seed: int) -> tuple[list[str], list[str], float]:
    """The model's answers to the case's turns, the notes it read, seconds per turn."""
    business = business_of(cfg.business)
    if case.persona not in _INDEXES:  # as the gateway: embedded once per process
        _INDEXES[case.persona] = fact_index(cfg)
    facts = CallFacts(business, _INDEXES[case.persona]) if cfg.business.note else None
    history = ChatHistory(system_prompt(cfg), cfg.llm.history_turns)
    history.add_bot(cfg.llm.greeting)
    wall = wall_of(case, cfg.business.timezone)
    answers, notes = [], []
    llm.set_seed(seed)
    t0 = time.monotonic()
    for text in case.turns:
        note = facts.note(text, wall) if facts else ""
        notes.append(note)
        history.add_user(text, note)
        opening = facts.opening(note) if facts else ""
        whole = facts.whole_answer(note) if facts else ""
        if whole:  # computed whole, said without the model: as the reply worker
            answers.append(whole)
            history.add_bot(whole)
            continue
        if opening:  # said by the gateway, the model goes on after it: as the reply worker
            rest = "".join(go_on(llm, history.messages(), opening, cfg.llm.max_tokens,
                                 cfg.llm.temperature))
            reply = (opening + spaced_after(opening, rest)).strip()
        else:
            reply = "".join(stream_chat(llm, history.messages(), cfg.llm.max_tokens,
                                        cfg.llm.temperature)).strip()
        instead = facts.instead_of_guessing(note) if facts else ""
        if instead:
            reply = without_guess(reply, instead, history.messages(), business.name)
        then = facts.then_say(note) if facts else ""
        if then and then.lower() not in reply.lower():  # as the reply worker does
            reply = f"{reply} {then}"
        answers.append(reply)
        history.add_bot(reply)
    return answers, notes, (time.monotonic() - t0) / len(case.turns)


def without_guess(reply: str, instead: str, messages: list[dict[str, str]], name: str) -> str:
    """``reply`` as the reply worker says it: cut into its clauses, the first that names what
    the prompt does not hold replaced by ``instead``, and nothing after it."""
    chunker = ClauseChunker(first_max_words=FIRST_CLAUSE_WORDS, names=(name,))
    guess = Guess(instead, " ".join(m["content"] for m in messages))
    said = guess.check(chunker.feed(reply) + chunker.flush())
    return " ".join(said) if guess.stopped else reply


def table(rows: list[dict], combos: list[str], held_out: bool) -> list[str]:
    out = [f"{'category':10} " + " ".join(f"{c:>18}" for c in combos)]
    for cat in (*CATEGORIES, "all"):
        cells = []
        for combo in combos:
            sel = [r for r in rows if r["combo"] == combo and r["held_out"] == held_out
                   and (cat == "all" or r["category"] == cat)]
            ok = sum(r["ok"] for r in sel)
            cells.append(f"{ok:>4}/{len(sel):<4} {100 * ok / len(sel):5.1f}%" if sel else
                         f"{'-':>18}")
        out.append(f"{cat:10} " + " ".join(f"{c:>18}" for c in cells))
    return out



def says_fallback(answer: str) -> bool:
    """The answer says it does not know (the first half of the fallback's test)."""
    import re

    return bool(re.search(FALLBACK_MUST[0], normalise(answer)))


def natural_report(rows: list[dict], combos: list[str], say) -> None:
    """The natural-phrasing set: right, false fallbacks (said it does not know where the facts
    answer all of it), invented answers (an unknown question answered without the fallback),
    per category and per way of phrasing."""
    for held in (True, False):
        nat = [r for r in rows if r.get("style") and r["held_out"] == held]
        if nat:
            say()
            say(f"natural phrasing, {'held out' if held else 'tuning'} (right / false "
                "fallbacks / invented):")
            natural_table(nat, combos, say)


def natural_table(nat: list[dict], combos: list[str], say) -> None:
    say(f"  {'':12} " + " ".join(f"{c:>26}" for c in combos))
    groups = [("category", c) for c in CATEGORIES] + [("style", s) for s in STYLES] + [
        ("all", "all")]
    for key, val in groups:
        cells = []
        for combo in combos:
            sel = [r for r in nat if r["combo"] == combo and (key == "all" or r[key] == val)]
            if not sel:
                cells.append(f"{'-':>26}")
                continue
            ok = sum(r["ok"] for r in sel)
            answerable = [r for r in sel if r["category"] not in ("unknown", "partial")]
            false_fb = sum(says_fallback(r["answers"][-1]) for r in answerable)
            unknown = [r for r in sel if r["category"] == "unknown"]
            invented = sum(not r["ok"] for r in unknown)
            cells.append(f"{ok:>3}/{len(sel):<3} {100 * ok / len(sel):5.1f}% "
                         f"ff {false_fb:>2}/{len(answerable):<3} inv {invented}/{len(unknown)}")
        say(f"  {val:12} " + " ".join(f"{c:>26}" for c in cells))


def report(rows: list[dict], combos: list[str], say) -> None:
    natural_report(rows, combos, say)
    worded = [r for r in rows if not r.get("style")]  # the questions worded like the facts
    say()
    for held in (False, True):
        say("held-out cases (never used to tune the prompt or the note):" if held
            else "tuning cases:")
        for line in table(worded, combos, held):
            say("  " + line)
    say()
    for combo in combos:
        unk = [r for r in rows if r["combo"] == combo and r["category"] == "unknown"]
        fb = sum(r["ok"] for r in unk)
        secs = sorted(r["seconds"] for r in rows if r["combo"] == combo)
        mine = [r for r in rows if r["combo"] == combo]
        ok = sum(r["ok"] for r in mine)
        say(f"{combo}: all cases {ok}/{len(mine)} {100 * ok / len(mine):.1f}%; unknown answered "
            f"with the fallback {fb}/{len(unk)}; seconds per turn p50 "
            f"{secs[len(secs) // 2]:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="1.5b,0.5b")
    ap.add_argument("--notes", default="on,off",
                    help="on: the computed note, questions judged by meaning (the default); "
                         "rules: the note without meaning; off: no note")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--persona", default="", help="only this persona")
    ap.add_argument("--cases", default="", help="only these case ids (comma-separated)")
    ap.add_argument("--held-out", choices=("both", "only", "none"), default="both")
    ap.add_argument("--out", help="also write the report here")
    ap.add_argument("--json", help="write every verdict as JSON")
    ap.add_argument("--rescore", help="judge a --json file's answers again; run no model")
    args = ap.parse_args()
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    def verdict_line(r: dict) -> str:
        return (f"{'PASS' if r['ok'] else 'FAIL'} [{r['combo']} s{r['seed']}] {r['id']} "
                f"{r['category']}{' (held out)' if r['held_out'] else ''}"
                f"{' natural/' + r['style'] if r.get('style') else ''}: "
                + " | ".join(f"Q: {q} A: {a}" for q, a in zip(r["turns"], r["answers"],
                                                              strict=True))
                + ("" if r["ok"] else f"  -- {'; '.join(r['why'])}"))

    if args.rescore:
        by_id = {c.id: c for c in CASES}
        rows = json.loads(Path(args.rescore).read_text())
        changed = 0
        for r in rows:
            ok, why = score(by_id[r["id"]], r["answers"][-1])
            changed += ok != r["ok"]
            r.update(ok=ok, why=why, held_out=by_id[r["id"]].held_out,
                     style=by_id[r["id"]].style)
        say(f"bench.answers --rescore {args.rescore}: {len(rows)} stored answers judged with "
            f"today's cases, {changed} verdicts changed")
        for r in rows:
            say(verdict_line(r))
        report(rows, list(dict.fromkeys(r["combo"] for r in rows)), say)
        if args.out:
            Path(args.out).write_text("\n".join(lines) + "\n")
        return
    seeds = [int(s) for s in args.seeds.split(",")]
    notes = args.notes.split(",")
    only = set(filter(None, args.cases.split(",")))
    cases = [c for c in CASES if (not args.persona or c.persona == args.persona)
             and (not only or c.id in only)
             and (args.held_out == "both" or c.held_out == (args.held_out == "only"))]
    cases.sort(key=lambda c: c.persona)  # one persona's prompt prefix stays cached
    rows: list[dict] = []
    combos: list[str] = []
    say(f"bench.answers: {len(cases)} cases x seeds {seeds} x notes {args.notes} x models "
        f"{args.models}, started {time.strftime('%Y-%m-%d %H:%M')}")
    for short in args.models.split(","):
        path = models.assemble_llm(MODELS[short])
        cfg0 = build({})
        model = SharedModel(path, 0, cfg0.llm.repack_weights)
        llm = model.context(cfg0.llm.context_tokens, cfg0.llm.threads)
        for note in notes:
            combo = f"{short} {NOTE_MODES[note][0]}"
            combos.append(combo)
            for seed in seeds:
                for case in cases:
                    cfg = persona_config(case.persona, *NOTE_MODES[note][1:])
                    answers, seen, secs = run_case(llm, cfg, case, seed)
                    ok, why = score(case, answers[-1])
                    rows.append({"combo": combo, "seed": seed, "id": case.id,
                                 "category": case.category, "held_out": case.held_out,
                                 "style": case.style,
                                 "ok": ok, "why": why, "turns": list(case.turns),
                                 "answers": answers, "notes": seen, "seconds": secs})
                    say(verdict_line(rows[-1]))
        del llm, model
    report(rows, combos, say)
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")
    write_json(args.json, rows, indent=1)


if __name__ == "__main__":
    main()
