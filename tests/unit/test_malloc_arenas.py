"""glibc's malloc arenas are capped at start (``gateway.app.limit_malloc_arenas``): the
4-call soak's memory grew in per-thread 64 MB arenas; an operator's MALLOC_ARENA_MAX wins."""

from __future__ import annotations

import platform

import pytest

from gateway import app


def test_an_operators_malloc_arena_max_is_left_alone():
    assert app.limit_malloc_arenas({"MALLOC_ARENA_MAX": "8"}) is False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_the_arenas_are_capped_on_glibc():
    assert app.limit_malloc_arenas({}) is True
