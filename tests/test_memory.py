"""core/memory.py: glibc's malloc_trim after a burst, at most once per interval."""

from __future__ import annotations

import ctypes
import platform

import pytest

from tercet.core.memory import MemoryTrimmer

GLIBC = platform.libc_ver()[0] == "glibc"


def _rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_a_trim_gives_freed_heap_pages_back_and_not_again_within_the_interval() -> None:
    now = [100.0]
    trimmer = MemoryTrimmer(interval=2.0, clock=lambda: now[0])
    assert trimmer.available
    # 60 MB of heap blocks, then one kept after them: freed, they are a free chunk in the
    # middle of the heap, which glibc keeps resident (only the top is given back).
    blocks = [ctypes.create_string_buffer(3000) for _ in range(20_000)]
    kept = ctypes.create_string_buffer(3000)
    del blocks
    before = _rss_kb()
    assert trimmer.after_burst()
    assert before - _rss_kb() > 30_000  # kB: at least half of it went back
    assert trimmer.trims == 1
    now[0] += 1.9
    assert not trimmer.after_burst()  # within the interval: nothing done
    assert trimmer.trims == 1
    now[0] += 0.2
    assert trimmer.after_burst()
    assert trimmer.trims == 2
    del kept


def test_without_malloc_trim_nothing_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    import tercet.core.memory as memory

    monkeypatch.setattr(memory, "_libc_trim", lambda: None)
    trimmer = memory.MemoryTrimmer()
    assert not trimmer.available
    assert not trimmer.after_burst()
    assert trimmer.trims == 0
