"""Fixtures for the community module tests.

Each community module is installed the way operators install it: its source folder is built
into a wheel and installed with ``pip --target`` by the real plugin installer, into a plugin
directory of its own. Tests then load it into a :class:`ModuleTestServer` through the module
manager's entry-point discovery. Everything is offline (``pip --no-index``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from community_helpers import COMMUNITY, MODULES

from tercet import __version__
from tercet.cli.plugin_cmds import builtin_modules
from tercet.plugins.installer import Installer


def _can_build_wheels() -> bool:
    import importlib.util

    return importlib.util.find_spec("setuptools") is not None


@pytest.fixture(scope="session")
def community_plugins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Module name -> a plugin directory holding that module, built and installed once."""
    if not _can_build_wheels():
        pytest.skip("building plugin wheels needs setuptools (pip install -e .[test])")
    root = tmp_path_factory.mktemp("community-plugins")
    builtins = builtin_modules()

    def install(name: str) -> Path:
        path = root / name
        Installer(path, [], __version__, builtins, None, pip_options=["--no-index"],
                  timeout=5.0).install(str(COMMUNITY / name))
        return path

    with pytest.MonkeyPatch.context() as mp:
        # Offline and independent of the user's pip configuration.
        mp.setenv("PIP_CONFIG_FILE", os.devnull)
        mp.setenv("PIP_NO_INDEX", "1")
        # One plugin directory per module, so the installs can run side by side.
        with ThreadPoolExecutor(max_workers=4) as pool:
            yield dict(zip(MODULES, pool.map(install, MODULES), strict=True))
