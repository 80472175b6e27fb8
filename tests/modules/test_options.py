"""module.option: options are read by name or by declaration, and must be declared."""

from __future__ import annotations

from pathlib import Path

import pytest

from tercet.app import build_server
from tercet.core.config import Config, ConfigError
from tercet.core.moduleapi import ModuleApi, ModuleError
from tercet.module import Option

COLOUR = Option("probe_colour", str, "red", "Colour of the probe.", choices=("red", "blue"))


def probe(tmp_path: Path, text: str = "") -> ModuleApi:
    """The API a module named "probe" gets on localhost, declaring COLOUR."""
    config = Config.from_text(f'storage = "memory"\n{text}\n[virtualhosts."localhost"]\n'
                              'probe_colour = "blue"\n', tmp_path / "tercet.toml")
    api = ModuleApi(build_server(config), "probe", "localhost")
    api._declare([COLOUR])  # what the module manager does with the module's OPTIONS
    return api


def test_reading_an_undeclared_option_is_a_module_error(tmp_path: Path) -> None:
    api = probe(tmp_path)
    with pytest.raises(ModuleError) as info:
        api.option("probe_size")
    assert str(info.value) == (
        "module probe reads option 'probe_size', which no module declares: add "
        'Option("probe_size", <type>, <default>, "<one-line doc>") to OPTIONS in module probe')
    with pytest.raises(ModuleError, match="probe_size"):
        api.global_option("probe_size")


def test_own_core_and_other_modules_options_are_readable(tmp_path: Path) -> None:
    api = probe(tmp_path, "c2s_require_encryption = false")
    assert api.option("probe_colour") == "blue"           # the host table's value
    assert api.global_option("probe_colour") == "red"     # the declared default
    assert api.option(COLOUR) == "blue"                   # typed by the declaration
    assert api.option("scram_iterations") == 4096         # a core option
    assert api.option("c2s_require_encryption") is False  # declared by the c2s module


def test_a_bad_value_names_file_key_and_fix(tmp_path: Path) -> None:
    config = Config.from_text('[virtualhosts."localhost"]\nprobe_colour = "green"\n',
                              tmp_path / "tercet.toml")  # nobody declares it: a warning
    api = ModuleApi(build_server(config), "probe", "localhost")
    api._declare([COLOUR])
    with pytest.raises(ConfigError) as info:
        api.option("probe_colour")
    [problem] = info.value.problems
    assert (problem.file, problem.key, problem.line) == (
        str(tmp_path / "tercet.toml"), "virtualhosts.localhost.probe_colour", 2)
    assert problem.message == 'expected one of "red", "blue", found "green"'
