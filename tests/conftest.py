from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from importlib.machinery import EXTENSION_SUFFIXES, ModuleSpec, PathFinder
from importlib.util import spec_from_file_location
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest

sys.path.insert(0, str(Path(__file__).parent))


class _SourceFirst:
    """Under TERCET_INTERPRETED=1, Tercet's modules load from their .py files even where a
    compiled one stands beside them: how tests/test_build.py runs tests on the pure-Python
    install that a machine without a compiler gets."""

    @staticmethod
    def find_spec(name: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if not name.startswith("tercet"):
            return None
        spec = PathFinder.find_spec(name, path, target)
        origin = spec.origin if spec is not None else None
        if origin is None or not origin.endswith(tuple(EXTENSION_SUFFIXES)):
            return spec
        source = Path(origin).with_name(Path(origin).name.split(".", 1)[0] + ".py")
        return spec_from_file_location(name, source) if source.exists() else spec


if os.environ.get("TERCET_INTERPRETED"):
    sys.meta_path.insert(0, _SourceFirst)

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

    if os.environ.get("TERCET_INTERPRETED") and tercet.compiled():
        pytest.exit("TERCET_INTERPRETED=1, yet the compiled hot path was loaded", returncode=4)
    stale = tercet.stale_compiled()
    if stale:
        pytest.exit("compiled modules older than their source: " + ", ".join(stale)
                    + "; rebuild (pip install -e .) or reinstall with TERCET_PURE_PYTHON=1",
                    returncode=4)
