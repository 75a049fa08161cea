"""The web process's memory: a few allocator arenas, not one per request thread (issue 15).

glibc's malloc gives each thread that allocates an arena of its own, up to eight per CPU,
and keeps what a thread frees in that arena for its reuse, rarely handing it back to the
system. `alluvial serve` runs 16 request threads (waitress), and what they allocate and
free varies with each request, so every arena keeps its own free memory. In the soak
(`python -m benchmarks.soak`, 20 requests/s, a third of them writes) the web process's
live memory stayed flat for 20 minutes (malloc'd memory in use about 24 MiB, Python's
objects and SQLite's caches level) while the free memory kept by its arenas rose from
2 to 30 MiB, and its RSS with it, 84 to 124 MiB: no leak, but memory that looked like one.
With two arenas the free memory kept rose from 2 to 9 MiB in 30 minutes, and RSS from
84 to 106 MiB (124 MiB before). The request threads hold the interpreter lock for most
of what they allocate, so two arenas cost them little waiting.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger("alluvial.memory")

ARENAS = 2  # like MALLOC_ARENA_MAX=2, which a deployment may still set itself
_M_ARENA_MAX = -8  # glibc's malloc.h


def cap_arenas(arenas: int = ARENAS) -> bool:
    """Let the threads started from now on share at most ``arenas`` malloc arenas.

    Call it before the request threads start. True when the C library is glibc and
    took the setting; on any other C library nothing is changed.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc: musl, macOS, Windows
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(_M_ARENA_MAX, arenas))
    if not done:
        log.warning("malloc did not take M_ARENA_MAX=%d", arenas)
    return done
