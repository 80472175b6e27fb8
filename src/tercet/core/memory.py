"""Giving freed memory back to the operating system after a burst.

glibc's allocator keeps the heap it has grown: memory freed in the middle of it (a burst of
logins' parsers and handshake buffers, between the sessions' long-lived objects) stays
resident until ``malloc_trim`` returns the whole pages that lie in free chunks. The
allocator does this by itself only at the top of the heap. Other C libraries have no such
call, and there this module does nothing.
"""

from __future__ import annotations

import ctypes
import logging
import sys
import time
from collections.abc import Callable

__all__ = ["TRIM_INTERVAL", "MemoryTrimmer"]

log = logging.getLogger("tercet.memory")

# Seconds at least between two trims: each walks the heap's free chunks (~0.3 ms on a heap
# of 40 MB), so a server whose bursts follow each other closely trims once per period.
TRIM_INTERVAL = 2.0


def _libc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the C library this process runs on
    except (OSError, AttributeError):
        return None  # musl and other C libraries: nothing to call
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


class MemoryTrimmer:
    """Calls ``malloc_trim(0)`` when asked, at most once per ``interval`` seconds."""

    def __init__(self, interval: float = TRIM_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._trim = _libc_trim()
        self._interval = interval
        self._clock = clock
        self._last: float | None = None
        #: Trims done so far.
        self.trims = 0

    @property
    def available(self) -> bool:
        return self._trim is not None

    def after_burst(self) -> bool:
        """A burst of short-lived allocations is over: give back the whole free pages it
        left, unless a trim ran less than ``interval`` seconds ago. True if one ran."""
        now = self._clock()
        if self._trim is None or (self._last is not None and now - self._last < self._interval):
            return False
        self._last = now
        started = time.perf_counter()
        released = self._trim(0)
        self.trims += 1
        log.debug("malloc_trim after a burst: %s in %.1f ms",
                  "pages released" if released else "nothing to release",
                  (time.perf_counter() - started) * 1000)
        return True
