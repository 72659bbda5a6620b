"""Keep freed memory for reuse in a process padlib owns (its command line, the book's chapter kernels).

glibc hands every allocation above its mmap threshold (at most 32 MiB) to the kernel and gives it back when freed,
so each forward of a large input (an activation batch of a segmenter at 512 px is tens of MiB) faults its pages in
afresh: on LR-ASPP at 512 px (8 images, 2 threads) half the CPU time went to the kernel, and the forwards ran
2.1x faster with the thresholds raised. Raising them is a setting of the whole process, so ``import padlib`` never
does it; the ``padlib`` command does (:func:`keep_freed_memory`), and the book's build passes the same settings to
its chapter kernels as glibc's environment variables (:data:`MALLOC_ENV`). Freed memory up to :data:`KEEP_BYTES`
stays with the process (its peak grows by at most that); a larger allocation still goes to the kernel.
Elsewhere than glibc (macOS, musl) nothing changes.
"""
from __future__ import annotations

import ctypes
import ctypes.util

KEEP_BYTES = 256 * 2 ** 20
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(KEEP_BYTES), "MALLOC_TRIM_THRESHOLD_": str(KEEP_BYTES)}


def keep_freed_memory(keep_bytes: int = KEEP_BYTES) -> bool:
    """Raise glibc's mmap and trim thresholds to ``keep_bytes`` for this process; True where it took effect."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, keep_bytes)) and bool(mallopt(M_TRIM_THRESHOLD, keep_bytes))
