"""Give large freed allocations back to the operating system.

glibc's allocator raises its mmap threshold each time a large block is freed, so later
large blocks (an Argon2 hash takes 19 MiB) come from per-thread arenas that keep the
memory after it is freed: ten registrations handled by ten threads left a web process
200 MB larger for good. A fixed threshold turns the dynamic one off: blocks of 1 MiB
and more are mapped on their own and unmapped when freed. Elsewhere (musl, macOS) this
does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_MMAP_THRESHOLD = -3
THRESHOLD_BYTES = 1024 * 1024


def return_large_blocks() -> bool:
    """Fix the allocator's mmap threshold; True if it was set."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, THRESHOLD_BYTES))
