"""``voicebot calls serve``'s list page rendered without calls (the served pages, over real
HTTP and in headless Chromium, are in tests/e2e/test_calls_web.py)."""

from __future__ import annotations

from pathlib import Path

from gateway.views import calls_web


def test_list_page_without_calls():
    page = calls_web.list_page([], Path("var/calls.jsonl"))
    assert "No calls yet." in page and "<table" not in page
