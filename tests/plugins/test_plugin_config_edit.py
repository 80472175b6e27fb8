"""Editing ``modules_enabled`` in the operator's tercet.toml (``plugin install --enable``).

The basics are in test_plugin_cli.py; these cover layouts and errors around them.
"""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path

import pytest

from tercet.cli.plugin_cmds import ConfigEditError, enable_module_in_file, enable_module_in_toml
from tercet.cli.templates import render_config
from tercet.core.config import DEFAULT_MODULES


def _added_lines(before: str, after: str) -> list[str]:
    """The lines *after* adds to *before*; fails if it changes or removes any."""
    diff = list(difflib.ndiff(before.splitlines(keepends=True), after.splitlines(keepends=True)))
    assert not [line for line in diff if line.startswith("- ")]
    return [line[2:] for line in diff if line.startswith("+ ")]


def test_the_generated_config_keeps_every_line() -> None:
    text = render_config("example.org")
    new = enable_module_in_toml(text, "new")
    added = _added_lines(text, new)
    assert added[0] == "modules_enabled = [\n" and added[-2:] == ["]\n", "\n"]
    assert tomllib.loads(new)["modules_enabled"] == [*DEFAULT_MODULES, "new"]
    # Just below the last global option, above the comments about contact_info.
    assert 'certificates = "certs"\n\nmodules_enabled = [\n' in new

    new = enable_module_in_toml(text, "new", "example.org")
    assert _added_lines(text, new) == ['modules_enabled = ["new"]\n']
    assert '[virtualhosts."example.org"]\nmodules_enabled = ["new"]\n# enabled = true\n' in new


def test_comments_above_the_next_table_stay_there() -> None:
    text = 'a = 1\n# the hosts\n[virtualhosts."example.org"]\nb = 2\n\n# c\n[components]\n'
    new = enable_module_in_toml(text, "new", "example.org")
    assert new == text.replace("b = 2\n", 'modules_enabled = ["new"]\nb = 2\n')
    new = enable_module_in_toml(text, "new")
    assert new.startswith("a = 1\n\nmodules_enabled = [\n")
    assert new.endswith(']\n\n# the hosts\n[virtualhosts."example.org"]\nb = 2\n\n# c\n'
                        "[components]\n")


@pytest.mark.parametrize("before", ["", "# just a comment\n", "a = 1", "a = 1\r\n\r\n[t]\r\n"])
def test_adding_the_global_key(before: str) -> None:
    new = enable_module_in_toml(before, "new")
    assert tomllib.loads(new)["modules_enabled"] == [*DEFAULT_MODULES, "new"]
    if "\r\n" in before:
        assert "\n" not in new.replace("\r\n", "")
    assert _added_lines(before if before.endswith("\n") else before and before + "\n", new)


def test_dotted_host_keys() -> None:
    text = 'virtualhosts."example.org".modules_enabled = ["a"]  # dotted\n'
    assert enable_module_in_toml(text, "new", "example.org") == text.replace('"a"', '"a", "new"')
    text = 'virtualhosts."example.org".enabled = true\n'
    new = enable_module_in_toml(text, "new", "example.org")
    assert tomllib.loads(new)["virtualhosts"]["example.org"] == {
        "enabled": True, "modules_enabled": ["new"]}
    assert _added_lines(text, new) == ['virtualhosts."example.org".modules_enabled = ["new"]\n']


def test_an_empty_host_table() -> None:
    text = '[virtualhosts."example.org"]\n'
    assert enable_module_in_toml(text, "new", "example.org") == text + 'modules_enabled = ["new"]\n'


@pytest.mark.parametrize(
    ("text", "host", "message"),
    [
        ('modules_enabled = "roster"\n', None, "^modules_enabled is not an array$"),
        ('[virtualhosts."example.org"]\nmodules_enabled = 1\n', "example.org",
         '^modules_enabled in \\[virtualhosts."example.org"\\] is not an array$'),
        ('[virtualhosts]\n"example.org" = { enabled = true }\n', "example.org",
         'modules_enabled in \\[virtualhosts."example.org"\\] is in an inline table; '
         'add "new" by hand'),
        ("modules_enabled = [\n", None, "^the configuration is not valid TOML"),
    ],
)
def test_refusals_name_the_key(text: str, host: str | None, message: str) -> None:
    with pytest.raises(ConfigEditError, match=message):
        enable_module_in_toml(text, "new", host)


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "tercet.toml"
    path.write_text('modules_enabled = "roster"\n', encoding="utf-8")
    with pytest.raises(ConfigEditError) as caught:
        enable_module_in_file(path, "new")
    assert str(caught.value) == f"{path}: modules_enabled is not an array"
    assert path.read_text(encoding="utf-8") == 'modules_enabled = "roster"\n'
    assert list(tmp_path.iterdir()) == [path]
    with pytest.raises(ConfigEditError, match=f"^cannot read {tmp_path / 'missing.toml'}: "):
        enable_module_in_file(tmp_path / "missing.toml", "new")
