"""Every community module follows the plugin format and the rules for modules: built and
installed like any plugin, metadata consistent, only the public module API used, every
option documented in its README."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

import pytest
from community_helpers import COMMUNITY, MODULES

from tercet.plugins.package import read_source_project

# What a module may import from Tercet (docs/internals.md): the module API and protocol/.
ALLOWED_TERCET = re.compile(r"^tercet\.(module|core\.moduleapi|protocol(\..+)?)$")
OPTION_CALL = re.compile(r"""module\.(?:global_)?option\(\s*"([a-z0-9_]+)\"""")


def test_there_are_at_least_six_modules() -> None:
    assert len(MODULES) >= 6, MODULES


@pytest.mark.parametrize("name", MODULES)
def test_metadata_is_consistent(name: str) -> None:
    folder = COMMUNITY / name
    project = read_source_project(folder)  # validates [tool.tercet]
    data = tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))
    assert project.distribution == "tercet-mod-" + name.replace("_", "-")
    assert data["project"]["version"] == "1.1.0"
    assert data["project"]["dependencies"] == []  # and never on tercet itself
    assert data["project"]["entry-points"]["tercet.modules"] == {name: f"tercet_mod_{name}"}
    assert data["build-system"]["build-backend"] == "setuptools.build_meta"
    meta = _module_meta(folder / f"tercet_mod_{name}" / "__init__.py")
    assert meta["stage"] == project.meta.stage
    assert tuple(meta["xeps"]) == project.meta.xeps
    assert meta["summary"] and project.meta.summary


@pytest.mark.parametrize("name", MODULES)
def test_only_the_public_module_api_is_used(name: str) -> None:
    tree = ast.parse((COMMUNITY / name / f"tercet_mod_{name}" / "__init__.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for imported in names:
            top = imported.split(".")[0]
            if top == "tercet":
                assert ALLOWED_TERCET.match(imported), f"{name} imports {imported}"
            else:
                assert top in sys.stdlib_module_names or top == "__future__", imported


@pytest.mark.parametrize("name", MODULES)
def test_every_option_is_documented(name: str) -> None:
    source = (COMMUNITY / name / f"tercet_mod_{name}" / "__init__.py").read_text()
    readme = (COMMUNITY / name / "README.md").read_text(encoding="utf-8")
    assert readme.startswith(f"# {name}") and "## Options" in readme and "## Example" in readme
    own = {o for o in OPTION_CALL.findall(source) if o != "admins"}  # admins: a core option
    for option in own:
        row = re.search(rf"^\| `{option}` \| ([^|]+) \| `([^`]*)`", readme, re.MULTILINE)
        assert row, f"{name}: option {option} is not in the README's options table"


def test_installed_plugins_are_discovered(community_plugins: dict[str, Path]) -> None:
    from importlib.metadata import distributions

    for name, plugin_dir in community_plugins.items():
        [dist] = distributions(path=[str(plugin_dir / name)])
        assert dist.version == "1.1.0"
        [ep] = dist.entry_points.select(group="tercet.modules")
        assert (ep.name, ep.value) == (name, f"tercet_mod_{name}")


def _module_meta(path: Path) -> dict[str, object]:
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "META" for t in node.targets):
            return dict(ast.literal_eval(node.value))
    raise AssertionError(f"{path} has no META")
