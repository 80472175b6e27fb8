"""An installed plugin's OPTIONS are known like the built-in modules' own: ``tercet check``
type-checks them (and does not call them unknown), ``tercet config-reference`` lists them."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tercet.cli.main import cli
from tercet.plugins.installer import Installer

COMMUNITY = Path(__file__).resolve().parents[2] / "community"


@pytest.fixture
def installed(tmp_path: Path, build_backend: None,
              make_installer: Callable[..., Installer]) -> Iterator[Path]:
    """community/rate_limit installed into ``tmp_path / "plugins"``; sys.path and the
    plugin's import are put back afterwards (reading OPTIONS imports the module file)."""
    saved_path = list(sys.path)
    make_installer([]).install(str(COMMUNITY / "rate_limit"))
    yield tmp_path / "plugins"
    sys.path[:] = saved_path
    for name in [n for n in sys.modules if n.startswith("tercet_mod_rate_limit")]:
        del sys.modules[name]


def config(tmp_path: Path, plugins: Path, options: str) -> Path:
    path = tmp_path / "tercet.toml"
    path.write_text(f'installer_plugin_path = "{plugins}"\ndata_path = "{tmp_path}"\n'
                    f'{options}\n[virtualhosts."localhost"]\n', encoding="utf-8")
    return path


def check(path: Path) -> list[dict[str, Any]]:
    result = CliRunner().invoke(cli, ["-c", str(path), "check", "--json"])
    problems: list[dict[str, Any]] = json.loads(result.stdout)["problems"]
    return [p for p in problems if p["key"].startswith("rate_limit")]


def test_check_validates_a_plugins_option(tmp_path: Path, installed: Path) -> None:
    path = config(tmp_path, installed, "rate_limit_rate = 5\nrate_limit_burst = 0")
    assert check(path) == [{
        "severity": "error", "file": str(path), "line": 4, "key": "rate_limit_burst",
        "message": "expected a value from 1 to 100000, found 0",
        "fix": "Set rate_limit_burst = 1 (the minimum) or more."}]
    config(tmp_path, installed, "rate_limit_rate = 5\nrate_limit_burst = 20")
    assert check(path) == []                          # known: no "unknown option" warning


def test_without_the_plugin_its_option_is_unknown(tmp_path: Path) -> None:
    # A fresh process: plugin directories other tests loaded stay on this one's sys.path,
    # where the environment's entry points would find the plugin.
    path = config(tmp_path, tmp_path / "plugins", "rate_limit_burst = 0")
    out = subprocess.run([sys.executable, "-m", "tercet", "-c", str(path), "check", "--json"],
                         capture_output=True, text=True, timeout=60)
    [problem] = [p for p in json.loads(out.stdout)["problems"]
                 if p["key"].startswith("rate_limit")]
    assert problem["severity"] == "warning"
    assert "unknown option 'rate_limit_burst'" in problem["message"]


def test_config_reference_documents_a_plugins_options(tmp_path: Path, installed: Path) -> None:
    path = config(tmp_path, installed, "")
    text = CliRunner().invoke(cli, ["-c", str(path), "config-reference"]).stdout
    assert "## Module `rate_limit`" in text
    assert "| `rate_limit_burst` | an integer | `30` | host |" in text
    builtin = CliRunner().invoke(cli, ["-c", str(path), "config-reference", "--builtin-only"])
    assert "rate_limit" not in builtin.stdout
