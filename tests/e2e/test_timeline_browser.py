"""The call timeline page in a real browser: a recorded call's page (``voicebot calls show ID
--html``) loaded in headless Chromium, checked by what Chromium built and painted: the DOM after
loading, its console (no errors) and a screenshot. Unit tests of the page are in
tests/unit/test_timeline.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from testbed import browser, harness


@dataclass(frozen=True)
class Shown:
    page: Path
    rendered: browser.Rendered
    dom: browser.Node
    svg: browser.Node
    turns: list[dict[str, Any]]


@pytest.fixture(scope="module")
def shown(tmp_path_factory: pytest.TempPathFactory) -> Shown:
    harness.need(browser.CHROMIUM)
    out = tmp_path_factory.mktemp("timeline")
    page = browser.timeline_page(out)
    rendered = browser.chromium(page, out / "shot.png", out / "chromium")
    dom = browser.parse_dom(rendered.dom)
    [svg] = dom.find("timeline-svg", tag="svg")
    return Shown(page, rendered, dom, svg, browser.recorded_turns())


def _by_turn(nodes: list[browser.Node]) -> dict[str, browser.Node]:
    return {n.attrs["data-turn"]: n for n in nodes}


def test_the_recorded_call_is_worth_drawing(shown: Shown) -> None:
    """The test data: a real call with several turns and a barge-in (a guard for the data)."""
    assert len(shown.turns) >= 3
    assert any(t["interrupted"] for t in shown.turns)


def test_one_bar_per_turn_in_each_lane(shown: Shown) -> None:
    spoke = [str(t["turn"]) for t in shown.turns if t.get("speech_end_at") is not None]
    answered = [str(t["turn"]) for t in shown.turns if t.get("bot_sound_start_at") is not None]
    callers, bots = shown.svg.find("bar-caller"), shown.svg.find("bar-bot")
    assert [b.attrs["data-turn"] for b in callers] == spoke
    assert [b.attrs["data-turn"] for b in bots] == answered
    # the browser's parser kept every bar in its lane (a misplaced tag would have moved it)
    assert all(b.within("lane-caller") and b.find(tag="rect") for b in callers)
    assert all(b.within("lane-bot") and b.find(tag="rect") for b in bots)


def test_ttfa_labels_show_the_recorded_ttfa(shown: Shown) -> None:
    labels = _by_turn(shown.svg.find("ttfa"))
    assert set(labels) == {str(t["turn"]) for t in shown.turns}
    for t in shown.turns:
        label = labels[str(t["turn"])].find(tag="text")[0].text
        assert label == f"TTFA {round(t['ttfa_seconds'] * 1000)} ms"


def test_each_turn_wav_is_drawn_as_a_waveform(shown: Shown) -> None:
    call = browser.journal_lines()[0]["call"]
    kept = {str(t["turn"]) for t in shown.turns
            if (browser.TIMELINE_DATA / "turns" / f"{call}-turn{t['turn']}.wav").exists()}
    assert kept, "the test data keeps no turn WAV"
    waves = _by_turn(shown.svg.find("waveform", tag="path"))
    assert set(waves) == kept
    for wave in waves.values():
        assert wave.within("lane-caller")
        assert wave.attrs["d"].count(" L") > 100  # an envelope, 100 points a second


def test_the_transcript_holds_what_was_said(shown: Shown) -> None:
    [transcript] = shown.dom.find("transcript", tag="section")
    turns = _by_turn(transcript.find("turn", tag="article"))
    assert list(turns) == [str(t["turn"]) for t in shown.turns]
    for t in shown.turns:
        block = turns[str(t["turn"])]
        assert block.find("said", "caller")[0].text == t["caller_text"]
        assert block.find("said", "bot")[0].text == t["bot_text"]


def test_a_barge_in_shows_what_the_caller_heard(shown: Shown) -> None:
    cut = [t for t in shown.turns if t["interrupted"]]
    assert set(_by_turn(shown.svg.find("barge-in"))) == {str(t["turn"]) for t in cut}
    blocks = _by_turn(shown.dom.find("barge-in", "block"))
    for t in cut:
        said = blocks[str(t["turn"])].parent.find("said", "bot")[0]
        assert said.find("heard")[0].text == t["heard_text"]
        assert said.find("unheard")[0].text == t["bot_text"][len(t["heard_text"]):]


def test_the_page_logs_no_console_errors(shown: Shown) -> None:
    assert browser.console_messages(shown.rendered.log, shown.page) == []


def test_the_console_check_sees_a_broken_page(tmp_path: Path) -> None:
    """The check above must not pass because Chromium's log format moved: a page with an
    invalid SVG path and a script error is caught."""
    harness.need(browser.CHROMIUM)
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><svg width="9" height="9"><path d="M1,1 Lx,y"/></svg>'
                    "<script>notDefined()</script>", encoding="utf-8")
    log = browser.chromium(page, tmp_path / "shot.png", tmp_path / "chromium").log
    found = "\n".join(browser.console_messages(log, page))
    assert "attribute d" in found and "Uncaught ReferenceError" in found


def test_the_screenshot_shows_the_drawn_timeline(shown: Shown) -> None:
    image = browser.read_png(shown.rendered.screenshot)
    assert image.shape[:2] == (browser.WINDOW[1], browser.WINDOW[0])
    rgb = image[..., :3].astype(np.uint32)
    pixels = (rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2]).ravel()
    assert len(np.unique(pixels)) > 100, "a blank or flat screenshot"
    # the fills of the page's CSS, painted: caller bars, bot bars, the barge-in line
    for colour in ("#9cc3e6", "#b5dfb0", "#c62828"):
        assert np.count_nonzero(pixels == int(colour[1:], 16)) > 200, colour
