"""Keep the C heap from holding on to freed frame buffers (glibc only; elsewhere a no-op).

Frames and their working images are 0.3-1 MB numpy arrays allocated and freed every frame
on several threads (loop, defect map, MJPEG encoder, capture writer). glibc's defaults
suit a desktop, not a 512 MB Pi:

* its mmap threshold is *dynamic*: after the first freed 1 MB array it rises to 1 MB, so
  later arrays come from the heap, whose freed space is kept rather than given back;
* each thread that allocates gets its own arena (up to 8 per core), and each keeps its
  own high-water mark.

A fixed threshold (which also switches the dynamic one off) sends every array of
``MMAP_THRESHOLD`` bytes or more straight to mmap, returned to the kernel when freed; two
arenas bound the per-thread copies. Measured in ``bench/bench_memory.py`` (see
``docs/performance.md``). ``MALLOC_*_`` environment variables the user set win.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8   # glibc's <malloc.h>
MMAP_THRESHOLD = 128 * 1024     # glibc's own starting value, held fixed
TRIM_THRESHOLD = 256 * 1024
ARENA_MAX = 2

_ENV = {M_MMAP_THRESHOLD: "MALLOC_MMAP_THRESHOLD_", M_TRIM_THRESHOLD: "MALLOC_TRIM_THRESHOLD_",
        M_ARENA_MAX: "MALLOC_ARENA_MAX"}


def tune_malloc(environ=os.environ) -> dict:
    """Apply the settings above; returns those applied ({} off glibc). Idempotent."""
    if not sys.platform.startswith("linux"):
        return {}
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):      # musl and friends have no mallopt
        return {}
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    done = {}
    for param, value in ((M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
                         (M_ARENA_MAX, ARENA_MAX)):
        if _ENV[param] in environ:
            continue
        if mallopt(param, value) == 1:
            done[_ENV[param]] = value
    log.debug("malloc: %s", done)
    return done
