"""How a benchmark ends: its figures written as JSON where asked (``--json FILE``), and, after
pjsua2 ran in the process, an exit that skips pjsua2's destructors."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import NoReturn


def write_json(path: str | None, figures: object, indent: int | None = 2) -> None:
    """Write ``figures`` to ``path`` as JSON (nothing if no path was given)."""
    if path:
        Path(path).write_text(json.dumps(figures, indent=indent))


def leave(code: int = 0) -> NoReturn:
    """End the process now. Destroying pjsua2's Calls and ports while the library runs races
    its threads, and after libDestroy their destructors assert (bench/turns.py
    ``Caller.close``): the objects are left to the exit."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
