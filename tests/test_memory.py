"""core/memory.py: glibc's malloc_trim after a burst, at most once per interval."""

from __future__ import annotations

import ctypes
import platform

import pytest

from tercet.core.memory import MemoryTrimmer

GLIBC = platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_a_trim_runs_after_a_burst_and_not_again_within_the_interval() -> None:
    now = [100.0]
    trimmer = MemoryTrimmer(interval=2.0, clock=lambda: now[0])
    assert trimmer.available
    # Something to give back: many medium blocks freed in the middle of the heap.
    blocks = [ctypes.create_string_buffer(3000) for _ in range(2000)]
    del blocks[::2]
    assert trimmer.after_burst()
    assert trimmer.trims == 1
    now[0] += 1.9
    assert not trimmer.after_burst()  # within the interval: nothing done
    assert trimmer.trims == 1
    now[0] += 0.2
    assert trimmer.after_burst()
    assert trimmer.trims == 2
    del blocks


def test_without_malloc_trim_nothing_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    import tercet.core.memory as memory

    monkeypatch.setattr(memory, "_libc_trim", lambda: None)
    trimmer = memory.MemoryTrimmer()
    assert not trimmer.available
    assert not trimmer.after_burst()
    assert trimmer.trims == 0
