"""The CPU's memory allocator: reuse freed blocks instead of asking the system for fresh pages every step.

glibc's ``malloc`` serves large blocks (above 128 KiB at first, a threshold it raises to at most 32 MiB) with a
fresh ``mmap`` each and unmaps them on ``free``, so every training step's activations (33 MB for the first layer
of a width-128 ConvNet batch of 64) were new pages, faulted in and zeroed by the kernel: hundreds of thousands
of page faults per epoch and up to 40% of a step's time on this project's CPU (BENCHMARKS.md, "The CPU's
allocator"). yoco tells it to serve every block from its heap (no per-block ``mmap``) and to keep up to 256 MiB
of freed memory for reuse. The numbers are unchanged: only where memory comes from changes.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's mallopt parameters (malloc.h)
TRIM_THRESHOLD = 256 << 20  # freed memory kept at the heap's top before any is returned to the system
_tuned: bool | None = None


def tune_allocator() -> bool:
    """Set glibc's parameters once per process (a no-op elsewhere, when ``YOCO_MALLOC=0``, or when the user set
    glibc's ``MALLOC_*`` variables themselves); returns whether they are set."""
    global _tuned
    if _tuned is not None:
        return _tuned
    _tuned = False
    if (sys.platform != "linux" or os.environ.get("YOCO_MALLOC") == "0"
            or any(k.startswith("MALLOC_") for k in os.environ)):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        _tuned = bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    except (OSError, AttributeError):  # not glibc (musl, ...): its allocator keeps its own habits
        return False
    log.debug("glibc malloc: no per-block mmap, trim threshold %d bytes (%s)", TRIM_THRESHOLD,
              "set" if _tuned else "refused")
    return _tuned
