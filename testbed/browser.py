"""A real browser for page tests: headless Chromium's DOM, console and screenshot, a small DOM
tree and a PNG reader (no PIL), and the recorded call whose timeline page they look at."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "chromium"  # Debian's package (scripts/setup.sh APT_TEST)
WINDOW = (1400, 1000)

TIMELINE_DATA = ROOT / "tests" / "data" / "timeline"
RECORDED_CALL = "call-12-ba6874"
"""A real call from a soak run (bench/soak.py): 4 turns, the first one barged in on; its
journal lines are ``TIMELINE_DATA/calls.jsonl``, its turn WAVs ``TIMELINE_DATA/turns/``."""


# --- Chromium ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rendered:
    dom: str
    """The DOM after loading, serialized (``--dump-dom``)."""
    log: str
    """Chromium's stderr: its own noise and the page's console messages."""
    screenshot: Path


def _uri(page: Path | str) -> str:
    """A file's URI, or ``page`` itself if it is already a URL (a served page)."""
    return page if isinstance(page, str) else page.resolve().as_uri()


def chromium(page: Path | str, screenshot: Path, scratch: Path,
             window: tuple[int, int] = WINDOW, timeout: float = 120.0) -> Rendered:
    """Load ``page`` (a file, or a URL) once in headless Chromium: its DOM, console log and a
    screenshot. ``scratch``: a folder for the browser's profile, config and cache."""
    cmd = [CHROMIUM, "--headless=new",
           "--no-sandbox",  # Chromium's sandbox refuses to run as root (CI runs as root)
           "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           f"--user-data-dir={scratch / 'profile'}",
           "--enable-logging=stderr", "--v=0",
           f"--window-size={window[0]},{window[1]}", f"--screenshot={screenshot}",
           "--dump-dom", _uri(page)]
    # nothing in ~/.config or ~/.cache (the crash database ignores --user-data-dir): runs in
    # parallel do not share state, and a test leaves nothing behind
    env = dict(os.environ, XDG_CONFIG_HOME=str(scratch / "config"),
               XDG_CACHE_HOME=str(scratch / "cache"))
    screenshot.unlink(missing_ok=True)  # an old one must not pass for this run's
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False,
                          env=env)
    if proc.returncode != 0 or not screenshot.exists():
        raise RuntimeError(f"chromium exited with {proc.returncode}:\n{proc.stderr[-3000:]}")
    return Rendered(proc.stdout, proc.stderr, screenshot)


# [pid:tid:MMDD/HHMMSS.us:INFO:CONSOLE:3] "text", source: file:///.../page.html (3)
# (older builds: "INFO:CONSOLE(3)]"); Chromium logs every console level as INFO
_CONSOLE = re.compile(r"^\[[^\]]*:CONSOLE[:(][^\]]*\] ")


def console_messages(log: str, page: Path | str) -> list[str]:
    """The console messages about ``page`` in a Chromium log: script errors, CSP violations,
    invalid SVG attributes. Not Chromium's own noise (dbus, GPU, sandbox warnings)."""
    uri = _uri(page)
    return [line for line in log.splitlines()
            if (_CONSOLE.match(line) and uri in line) or "Uncaught" in line]


# --- the DOM -----------------------------------------------------------------------------------

_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
         "track", "wbr"}


@dataclass(eq=False)
class Node:
    tag: str
    attrs: dict[str, str]
    parent: Node | None = None
    children: list[Node | str] = field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    @property
    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text for c in self.children)

    def walk(self) -> Iterator[Node]:
        for c in self.children:
            if isinstance(c, Node):
                yield c
                yield from c.walk()

    def find(self, *classes: str, tag: str | None = None) -> list[Node]:
        """Descendants that have all of ``classes`` (and are ``tag``s)."""
        return [n for n in self.walk()
                if set(classes) <= n.classes and (tag is None or n.tag == tag)]

    def within(self, *classes: str) -> bool:
        """Whether an ancestor has all of ``classes``."""
        node = self.parent
        while node is not None:
            if set(classes) <= node.classes:
                return True
            node = node.parent
        return False


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = self.node = Node("#document", {})

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, self.node)
        self.node.children.append(node)
        if tag not in _VOID:
            self.node = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.node.children.append(Node(tag, {k: v or "" for k, v in attrs}, self.node))

    def handle_endtag(self, tag: str) -> None:
        node: Node | None = self.node
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:  # a stray end tag closes nothing
            self.node = node.parent

    def handle_data(self, data: str) -> None:
        self.node.children.append(data)


def parse_dom(text: str) -> Node:
    builder = _TreeBuilder()
    builder.feed(text)
    builder.close()
    return builder.root


# --- PNG ---------------------------------------------------------------------------------------

def read_png(path: Path) -> np.ndarray:
    """An 8-bit RGB or RGBA PNG (what Chromium writes) as an array (height, width, channels)."""
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG")
    pos, chunks, header = 8, [], b""
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body, pos = data[pos + 8:pos + 8 + size], pos + 12 + size
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    if depth != 8 or colour not in (2, 6) or interlace:
        raise ValueError(f"{path}: only 8-bit RGB(A), not interlaced (got {depth}, {colour})")
    bpp = 3 if colour == 2 else 4
    rows = np.frombuffer(zlib.decompress(b"".join(chunks)), np.uint8)
    rows = rows.reshape(height, width * bpp + 1)
    out = np.zeros((height, width * bpp), np.uint8)
    prev = np.zeros(width * bpp, np.uint8)
    for y in range(height):
        out[y] = prev = _unfilter(int(rows[y, 0]), rows[y, 1:], prev, bpp)
    return out.reshape(height, width, bpp)


def _unfilter(kind: int, line: np.ndarray, prev: np.ndarray, bpp: int) -> np.ndarray:
    """One scanline with its PNG filter undone (uint8 arithmetic wraps, as PNG's does)."""
    if kind == 0:
        return line
    if kind == 1:  # Sub: a running sum per channel
        return line.reshape(-1, bpp).cumsum(axis=0, dtype=np.uint8).reshape(-1)
    if kind == 2:
        return line + prev
    # Average and Paeth depend on the byte just decoded: byte by byte
    cur, up = bytearray(line.tobytes()), prev.tobytes()
    for i in range(len(cur)):
        left = cur[i - bpp] if i >= bpp else 0
        if kind == 3:
            cur[i] = (cur[i] + ((left + up[i]) >> 1)) & 0xFF
            continue
        corner = up[i - bpp] if i >= bpp else 0
        p = left + up[i] - corner
        pa, pb, pc = abs(p - left), abs(p - up[i]), abs(p - corner)
        pred = left if pa <= pb and pa <= pc else up[i] if pb <= pc else corner
        cur[i] = (cur[i] + pred) & 0xFF
    return np.frombuffer(bytes(cur), np.uint8)


# --- the recorded call -------------------------------------------------------------------------

def journal_lines(call_id: str = RECORDED_CALL) -> list[dict[str, Any]]:
    lines = (TIMELINE_DATA / "calls.jsonl").read_text(encoding="utf-8").splitlines()
    return [d for d in map(json.loads, lines) if d.get("id") == call_id]


def recorded_turns(call_id: str = RECORDED_CALL) -> list[dict[str, Any]]:
    return [d["turn"] for d in journal_lines(call_id) if d["type"] == "turn"]


def recorded_turn_audio(out_dir: Path, call_id: str = RECORDED_CALL) -> Path:
    """The recorded call's turn WAVs, copied into ``out_dir/turns`` with the times the gateway
    wrote them (returns that folder)."""
    audio = out_dir / "turns"
    audio.mkdir(parents=True, exist_ok=True)
    opened = next(d for d in journal_lines(call_id) if d["type"] == "open")
    start, call = opened["start_ts"], opened["call"]
    for turn in recorded_turns(call_id):
        src = TIMELINE_DATA / "turns" / f"{call}-turn{turn['turn']}.wav"
        if src.exists():
            dst = audio / src.name
            shutil.copyfile(src, dst)
            # the page skips a WAV written outside the call's time (another call's: log names
            # start again at every gateway start); a checkout's mtime is now, so put it back
            # at about when the gateway wrote it, the turn's speech end
            at = start + turn["speech_end_at"]
            os.utime(dst, (at, at))
    return audio


def timeline_page(out_dir: Path, call_id: str = RECORDED_CALL) -> Path:
    """The recorded call's page, written by the real CLI into ``out_dir``, with the turn WAVs
    that the test data keeps."""
    from gateway import cli

    audio = recorded_turn_audio(out_dir, call_id)
    page = out_dir / "timeline.html"
    rc = cli.main(["calls", "--journal", str(TIMELINE_DATA / "calls.jsonl"), "show", call_id,
                   "--html", str(page), "--audio-dir", str(audio)])
    if rc != 0:
        raise RuntimeError(f"voicebot calls show {call_id} --html exited with {rc}")
    return page
