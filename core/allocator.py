"""The C allocator's handling of large blocks, for training processes (glibc only).

A training step allocates and frees the same large activations every step. glibc serves every
block above its mmap threshold (dynamic, at most 32 MiB on 64-bit) with its own ``mmap`` and
gives it back with ``munmap`` when freed, so the next step faults every page in again: measured on
the 150x150 seed VAE (batch 64) in torch eager, 0.9 million page faults and 1.3 of 2.8
CPU-seconds a step were the kernel's. :func:`retain_freed_memory` raises the mmap and trim
thresholds so freed blocks stay in the heap and are reused: the faults go to zero after the first
step. The process keeps its peak memory instead of returning it between steps, which a training
process reaches again every step anyway.

This is process-wide; the trainers' CLI (:func:`core.training.main`) turns it on, and
``bench/train.py`` switches it per contender (``retain=False`` restores glibc's steady-state
defaults, what a process that never called this runs with once its threshold has grown).
Elsewhere than glibc it does nothing and says so at DEBUG.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform

log = logging.getLogger(__name__)

#: mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: retained: blocks up to 1 GiB come from the heap, and the heap's top is never trimmed
RETAIN = {_M_MMAP_THRESHOLD: 1 << 30, _M_TRIM_THRESHOLD: (1 << 31) - 1}
#: glibc's dynamic thresholds once grown to their ceiling (DEFAULT_MMAP_THRESHOLD_MAX, trim twice it)
GLIBC_STEADY_STATE = {_M_MMAP_THRESHOLD: 32 << 20, _M_TRIM_THRESHOLD: 64 << 20}


def _mallopt() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        fn = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return fn


def retain_freed_memory(retain: bool = True) -> bool:
    """Keep freed large blocks in the heap for reuse (``retain``), or go back to glibc's
    steady-state thresholds; True when the allocator took the setting, False where it cannot
    (not glibc, or mallopt refused)."""
    fn = _mallopt()
    if fn is None:
        log.debug("allocator: not glibc (%s); large blocks left to the C library's defaults", platform.libc_ver())
        return False
    values = RETAIN if retain else GLIBC_STEADY_STATE
    ok = all(fn(param, value) == 1 for param, value in values.items())
    log.debug("allocator: %s freed large blocks%s", "retaining" if retain else "returning",
              "" if ok else " (mallopt refused)")
    return ok
