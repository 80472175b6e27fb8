"""Fixtures for the plugin packaging, repository and installer tests.

Everything runs offline and on loopback: wheels are built with the real pip and the build
backend installed next to Tercet (setuptools), installs use ``pip --no-index``, and the
repository is served by ``tercet.plugins.repo.serve`` on 127.0.0.1, port 0.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from plugin_helpers import TERCET_VERSION, Repo, write_samples

from tercet.plugins.installer import Installer
from tercet.plugins.repo import serve, server_url


def _setuptools_can_build_wheels() -> bool:
    """setuptools >= 70.1 builds wheels alone; older ones need the wheel package."""
    if importlib.util.find_spec("setuptools") is None:
        return False
    if importlib.util.find_spec("wheel") is not None:
        return True
    from importlib.metadata import version

    from packaging.version import Version

    return Version(version("setuptools")) >= Version("70.1")


CAN_BUILD = _setuptools_can_build_wheels()
NO_BACKEND = ("building plugin wheels needs setuptools>=70.1, or setuptools and wheel "
              "(pip install -e .[test])")


@pytest.fixture(scope="module")
def build_backend() -> None:
    """Skip a test that builds wheels when no build backend is installed."""
    if not CAN_BUILD:
        pytest.skip(NO_BACKEND)


@pytest.fixture(autouse=True, scope="module")
def _offline_pip() -> Iterator[None]:
    """Keep pip away from user/site configuration and from any index."""
    with pytest.MonkeyPatch.context() as mp:
        for var in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"):
            mp.delenv(var, raising=False)
        mp.setenv("PIP_CONFIG_FILE", os.devnull)
        mp.setenv("PIP_NO_INDEX", "1")
        yield


@pytest.fixture(scope="module")
def built_repo(tmp_path_factory: pytest.TempPathFactory, build_backend: None) -> Repo:
    """A repository built once per test module from the two sample modules (read-only)."""
    base = tmp_path_factory.mktemp("repo")
    write_samples(base / "src")
    repo = Repo(base / "src", base / "out")
    repo.rebuild()
    return repo


@pytest.fixture
def repo(built_repo: Repo, tmp_path: Path) -> Repo:
    """A private copy of the built repository that a test may change."""
    return built_repo.copy(tmp_path / "repo")


@pytest.fixture(scope="module")
def http_repo(built_repo: Repo) -> Iterator[str]:
    """The built repository served over HTTP on 127.0.0.1 (port 0); yields its URL."""
    server = serve(built_repo.out)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield server_url(server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def make_installer(tmp_path: Path) -> Callable[..., Installer]:
    """Installer factory; the plugin directory is ``tmp_path / "plugins"``."""

    def make(repositories: list[str], **kwargs: object) -> Installer:
        options: dict[str, object] = {
            "tercet_version": TERCET_VERSION,
            "builtin_modules": {"ping", "disco"},
            "loaded_modules": set(),
        }
        options.update(kwargs)
        return Installer(tmp_path / "plugins", repositories, pip_options=["--no-index"],
                         timeout=5.0, **options)  # type: ignore[arg-type]

    return make


@pytest.fixture
def closed_port_url() -> str:
    """An http:// URL on loopback where nothing listens."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/repo/"
