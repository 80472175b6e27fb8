from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

sys.path.insert(0, str(Path(__file__).parent))

if TYPE_CHECKING:
    from harness import ServerHarness


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerHarness]:
    from harness import ServerHarness

    harness = ServerHarness(tmp_path).start()
    try:
        yield harness
    finally:
        harness.stop()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[object]:
    """Factory for servers with extra config: make_server(extra='...', host_extra='...')."""
    from harness import ServerHarness

    started: list[ServerHarness] = []

    def factory(extra: str = "", host_extra: str = "", subdir: str = "srv") -> ServerHarness:
        h = ServerHarness(tmp_path / subdir, extra, host_extra).start()
        started.append(h)
        return h

    yield factory
    for h in started:
        h.stop()


def pytest_sessionstart(session: pytest.Session) -> None:
    # The tests must run the code as edited: an editable install's compiled hot path
    # (setup.py) would otherwise stand in front of a changed source file.
    import tercet

    stale = tercet.stale_compiled()
    if stale:
        pytest.exit("compiled modules older than their source: " + ", ".join(stale)
                    + "; rebuild (pip install -e .) or reinstall with TERCET_PURE_PYTHON=1",
                    returncode=4)
