"""Give freed heap back to the kernel when a call ends.

A call's models, threads and buffers allocate in glibc's per-thread arenas; what a finished
call frees stays mapped in them, so the resident size swung by +-100 MB between calls and
rose for minutes before it settled (bench/soak.py). ``malloc_trim(0)`` walks every arena and
returns its free pages. It costs a few milliseconds and runs on the ended call's own stop
thread, never on the media clock.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

_trim = None
try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    _trim = getattr(_libc, "malloc_trim", None)  # glibc only (not musl)
    if _trim is not None:
        _trim.argtypes = [ctypes.c_size_t]
        _trim.restype = ctypes.c_int
except OSError:  # no C library by that name: nothing to trim
    pass


def release_free_heap() -> bool:
    """True when memory was returned to the system."""
    return bool(_trim(0)) if _trim is not None else False
