"""`tercet plugin ...` and `tercet repo ...` through click.

Commands that talk to a running server do so to a real one (tests/harness.py), whose
``installer_plugin_path`` is the directory the CLI installs into; the tests assert what the
server really did (``server.modules.loaded``), not what the CLI sent.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import pytest
from click.testing import CliRunner, Result
from plugin_helpers import TERCET_VERSION, Repo, write_plugin, write_samples

from tercet.cli.plugin_cmds import (
    ConfigEditError,
    PluginSettings,
    enable_module_in_toml,
    plugin,
    repo,
)
from tercet.cli.templates import render_config
from tercet.core.config import DEFAULT_MODULES, Config

if TYPE_CHECKING:
    from harness import ServerHarness

    from tercet.core.modulemanager import LoadedModule

# A second virtual host on the test server, so that --host visibly restricts the load.
OTHER_HOST = "second.test"

# -- helpers ----------------------------------------------------------------------------------


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "tercet.toml"
    path.write_text(render_config("example.org"), encoding="utf-8")
    return path


def settings(tmp_path: Path, repositories: list[str], config_file: Path | None = None,
             admin_socket: Path | None = None) -> PluginSettings:
    return PluginSettings(
        plugin_path=tmp_path / "plugins",
        repositories=repositories,
        tercet_version=TERCET_VERSION,
        builtin_modules={"ping"},
        loaded_modules=set(),
        config_file=config_file,
        admin_socket=admin_socket or tmp_path / "no-server.sock",
        pip_options=["--no-index"],
        admin_timeout=5.0,
    )


def run(group: click.Group, args: list[str], obj: Any = None) -> Result:
    return CliRunner().invoke(group, args, obj=obj, catch_exceptions=False)


def enabled(config_file: Path, host: str | None = None) -> list[str]:
    data = tomllib.loads(config_file.read_text())
    if host is not None:
        data = data["virtualhosts"][host]
    return data.get("modules_enabled", [])


def _forget_plugin_imports() -> None:
    for name in [n for n in sys.modules if n.startswith("tercet_mod_")]:
        del sys.modules[name]
    importlib.invalidate_caches()


def _holds_plugins(entry: str) -> bool:
    """Whether a sys.path entry is a plugin directory (holds a tercet_mod_* module)."""
    folder = Path(entry or ".")
    return folder.is_dir() and any(folder.glob("tercet_mod_*"))


@pytest.fixture
def fresh_plugin_imports() -> Iterator[None]:
    """The test server imports plugins into this process, and the module manager appends
    plugin directories to sys.path for good: hide other tests' plugin modules and
    directories (a same-named module there would win), so that a server imports the copy
    in its own plugin directory; put sys.path back afterwards."""
    saved_path = list(sys.path)
    sys.path[:] = [entry for entry in saved_path if not _holds_plugins(entry)]
    _forget_plugin_imports()
    yield
    sys.path[:] = saved_path
    _forget_plugin_imports()


PluginServer = Callable[[list[str]], "tuple[ServerHarness, PluginSettings]"]


@pytest.fixture
def plugin_server(make_server: Callable[..., ServerHarness], tmp_path: Path,
                  fresh_plugin_imports: None) -> PluginServer:
    """Start a real server installing from *repositories* into ``tmp_path / "plugins"``;
    returns it and the CLI settings read from its own configuration file."""

    def start(repositories: list[str]) -> tuple[ServerHarness, PluginSettings]:
        plugins = tmp_path / "plugins"
        harness = make_server(extra=(f'installer_plugin_path = "{plugins}"\n'
                                     f"plugin_repositories = {json.dumps(repositories)}\n"
                                     f'[virtualhosts."{OTHER_HOST}"]\n'))
        found = PluginSettings.from_config(Config.load(harness.config_path))
        assert found.plugin_path == plugins and found.admin_socket == harness.admin_socket
        return harness, dataclasses.replace(found, pip_options=["--no-index"],
                                            admin_timeout=30.0)

    return start


def loaded(harness: ServerHarness, name: str) -> dict[str, LoadedModule]:
    """The server's entries for module *name*, by host (read on the server's own loop)."""

    async def snapshot() -> dict[str, LoadedModule]:
        assert harness.server is not None
        return {host: entry for (mod, host), entry in harness.server.modules.loaded.items()
                if mod == name}

    return harness.call(snapshot())


# -- repo -------------------------------------------------------------------------------------


def test_repo_build(tmp_path: Path, build_backend: None) -> None:
    write_samples(tmp_path / "src")
    result = run(repo, ["build", str(tmp_path / "src"), str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"{tmp_path / 'out'}: 2 built, 0 unchanged, 0 failed"
    assert "building motd ..." in result.stderr
    result = run(repo, ["build", str(tmp_path / "src"), str(tmp_path / "out")])
    assert result.stdout.strip() == f"{tmp_path / 'out'}: 0 built, 2 unchanged, 0 failed"
    write_plugin(tmp_path / "src", "broken", "1.0", dependencies=("tercet",))
    result = run(repo, ["build", str(tmp_path / "src"), str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "broken: " in result.stderr and "must not depend on 'tercet'" in result.stderr


# -- plugin install ---------------------------------------------------------------------------


def test_install_prints_how_to_enable(http_repo: str, tmp_path: Path, config_file: Path) -> None:
    result = run(plugin, ["install", "motd"], settings(tmp_path, [http_repo], config_file))
    assert result.exit_code == 0, result.output
    assert f"Installed motd 1.0.0 into {tmp_path / 'plugins' / 'motd'}" in result.stdout
    # The whole list, so the line can be pasted as it is without losing the defaults.
    full = ", ".join(f'"{m}"' for m in (*DEFAULT_MODULES, "motd"))
    assert f"modules_enabled = [{full}]" in result.stdout
    assert "downloading" in result.stderr and "downloading" not in result.stdout
    assert enabled(config_file) == []  # not touched without --enable
    again = run(plugin, ["install", "motd"], settings(tmp_path, [http_repo], config_file))
    assert again.exit_code == 0, again.output
    assert "motd 1.0.0 is already installed" in again.stderr
    assert "Installed" not in again.stdout


def test_search_without_a_repository_or_a_match_exits_1(http_repo: str,
                                                         tmp_path: Path) -> None:
    result = run(plugin, ["search", "motd"], settings(tmp_path, []))
    assert result.exit_code == 1
    assert "no plugin repository is configured" in result.stderr
    result = run(plugin, ["search", "no-such-thing"], settings(tmp_path, [http_repo]))
    assert result.exit_code == 1 and "No plugin matches 'no-such-thing'" in result.stdout


def test_install_enable_without_a_running_server(http_repo: str, tmp_path: Path,
                                                 config_file: Path) -> None:
    result = run(plugin, ["install", "--enable", "motd"],
                 settings(tmp_path, [http_repo], config_file))
    assert result.exit_code == 0, result.output
    assert enabled(config_file) == [*DEFAULT_MODULES, "motd"]  # the default set is kept
    assert "is the server running?" in result.stderr
    assert "motd will be loaded at the next start" in result.stderr
    text = config_file.read_text()
    assert "# Tercet configuration (TOML, https://toml.io)." in text  # comments survive


def test_install_enable_loads_on_the_running_server(http_repo: str,
                                                    plugin_server: PluginServer) -> None:
    harness, obj = plugin_server([http_repo])
    result = run(plugin, ["install", "--enable", "--host", "localhost", "motd"], obj)
    assert result.exit_code == 0, result.output
    assert "module.load motd on localhost: done" in result.stderr
    entries = loaded(harness, "motd")
    assert list(entries) == ["localhost"]  # --host reached the server: not on OTHER_HOST
    entry = entries["localhost"]
    assert entry.status == "loaded", entry.error
    assert entry.source.origin == "plugin" and entry.source.version == "1.0.0"
    assert entry.source.path == obj.plugin_path / "motd"
    assert getattr(entry.api, "loaded", False) is True  # the plugin's load() ran
    assert enabled(harness.config_path, "localhost") == ["motd"]
    assert enabled(harness.config_path, OTHER_HOST) == []
    assert enabled(harness.config_path) == []


def test_install_enable_when_the_server_refuses(http_repo: str,
                                                plugin_server: PluginServer) -> None:
    harness, obj = plugin_server([http_repo])
    # A host added to the file after the server started: the CLI can enable the module
    # there, but the running server (which read its configuration at start) has no such
    # host and answers ok:false.
    with harness.config_path.open("a", encoding="utf-8") as config:
        config.write('\n[virtualhosts."later.test"]\n')
    result = run(plugin, ["install", "--enable", "--host", "later.test", "motd"], obj)
    assert result.exit_code == 1
    assert "the server could not module.load motd: no such host 'later.test'" in result.stderr
    assert "installed and enabled, but did not load" in result.stderr
    assert loaded(harness, "motd") == {}
    assert enabled(harness.config_path, "later.test") == ["motd"]
    assert (obj.plugin_path / "motd").is_dir()  # installed all the same


def test_install_enable_when_the_module_fails_to_load(tmp_path: Path, build_backend: None,
                                                     plugin_server: PluginServer) -> None:
    project = write_plugin(tmp_path / "src", "motd", "1.0.0",
                           body='    raise RuntimeError("no motd_text")\n')
    harness, obj = plugin_server([])
    result = run(plugin, ["install", "--enable", str(project)], obj)
    assert result.exit_code == 1
    assert "module.load motd failed on localhost: RuntimeError: no motd_text" in result.stderr
    assert f"module.load motd failed on {OTHER_HOST}: RuntimeError: no motd_text" \
        in result.stderr
    assert "installed and enabled, but did not load" in result.stderr
    entries = loaded(harness, "motd")
    assert {host: e.status for host, e in entries.items()} == {
        "localhost": "failed", OTHER_HOST: "failed"}
    assert "RuntimeError: no motd_text" in (entries["localhost"].error or "")
    assert enabled(harness.config_path) == [*DEFAULT_MODULES, "motd"]


def test_install_error_is_one_line_and_exit_1(http_repo: str, tmp_path: Path) -> None:
    result = run(plugin, ["install", "mtod"], settings(tmp_path, [http_repo]))
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: no repository has a plugin named 'mtod'; did you mean motd?\n")
    assert result.stdout == ""


# -- list, search, info, update, remove -------------------------------------------------------


def test_list_search_info(http_repo: str, tmp_path: Path) -> None:
    obj = settings(tmp_path, [http_repo])
    assert run(plugin, ["list"], obj).stdout == "No plugins installed\n"
    run(plugin, ["install", "motd"], obj)
    listed = json.loads(run(plugin, ["list", "--json"], obj).stdout)
    assert [(p["name"], p["version"], p["latest"]) for p in listed] == [("motd", "1.0.0", None)]
    assert run(plugin, ["list", "--outdated"], obj).stdout == "No outdated plugins\n"
    found = run(plugin, ["search", "xep-0199"], obj).stdout
    assert found.startswith("welcome") and "alpha" in found and "(XEP-0199)" in found
    details = json.loads(run(plugin, ["info", "motd", "--json"], obj).stdout)
    assert details["installed"]["version"] == "1.0.0"
    assert details["latest"] == "1.0.0" and details["compatible"] == "1.0.0"
    text = run(plugin, ["info", "welcome"], obj).stdout
    assert "requires:    motd" in text and "installed:   no" in text
    assert f"docs:        {http_repo}modules/welcome.html" in text
    assert run(plugin, ["info", "nothing"], obj).exit_code == 1


def test_update_reloads_and_remove_unloads(repo: Repo, plugin_server: PluginServer) -> None:
    harness, obj = plugin_server([repo.url])
    assert run(plugin, ["install", "--enable", "motd"], obj).exit_code == 0
    before = loaded(harness, "motd")
    assert {h: (e.status, e.source.version) for h, e in before.items()} == {
        "localhost": ("loaded", "1.0.0"), OTHER_HOST: ("loaded", "1.0.0")}
    assert run(plugin, ["update"], obj).stdout == "Everything is up to date\n"
    write_plugin(repo.src, "motd", "1.2.0")
    repo.rebuild()
    outdated = run(plugin, ["list", "--outdated"], obj).stdout
    assert "update available: 1.2.0" in outdated
    result = run(plugin, ["update", "motd"], obj)
    assert result.exit_code == 0, result.output
    assert result.stdout == "Updated motd 1.0.0 -> 1.2.0\n"
    assert "module.reload motd on localhost: done" in result.stderr
    after = loaded(harness, "motd")
    assert {h: (e.status, e.source.version) for h, e in after.items()} == {
        "localhost": ("loaded", "1.2.0"), OTHER_HOST: ("loaded", "1.2.0")}
    # Re-imported from the new files, not the cached 1.0.0 module.
    assert getattr(after["localhost"].pymodule, "VERSION", None) == "1.2.0"
    result = run(plugin, ["remove", "motd"], obj)
    assert result.exit_code == 0, result.output
    assert "Removed motd 1.2.0" in result.stdout
    assert "still lists \"motd\"" in result.stdout
    assert loaded(harness, "motd") == {}
    assert not (obj.plugin_path / "motd").exists()


# -- configuration ----------------------------------------------------------------------------


def test_settings_from_a_real_config(config_file: Path) -> None:
    config_file.write_text(
        config_file.read_text().replace(
            'data_path = "data"',
            'data_path = "data"\nplugin_repositories = ["https://plugins.example.org/"]'),
        encoding="utf-8")
    found = PluginSettings.from_config(Config.load(config_file))
    assert found.plugin_path == config_file.parent / "data" / "plugins"
    assert found.admin_socket == config_file.parent / "data" / "admin.sock"
    assert found.repositories == ["https://plugins.example.org/"]
    assert found.config_file == config_file
    assert {"c2s", "roster", "ping"} <= (found.loaded_modules or set())
    assert "ping" in found.builtin_modules


def test_commands_read_the_main_groups_config(config_file: Path) -> None:
    from tercet.cli.main import CliContext

    @click.group()
    @click.pass_context
    def main(ctx: click.Context) -> None:
        ctx.obj = CliContext(config_file)

    main.add_command(plugin)
    result = run(main, ["plugin", "list"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "No plugins installed\n"
    assert (config_file.parent / "data" / "plugins").is_dir() is False  # list creates nothing


# -- editing modules_enabled ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ('modules_enabled = []\n', 'modules_enabled = ["new"]\n'),
        ('modules_enabled = ["a", "b"]  # why\n', 'modules_enabled = ["a", "b", "new"]  # why\n'),
        ('modules_enabled = ["a",]\n', 'modules_enabled = ["a", "new"]\n'),
        ('modules_enabled = [\n    "a",\n    "b",\n]\n',
         'modules_enabled = [\n    "a",\n    "b",\n    "new",\n]\n'),
        ('modules_enabled = [\n  "a", # one\n  "b" # two ]\n] # end\n[t]\nmodules_enabled = []\n',
         ('modules_enabled = [\n  "a", # one\n  "b", # two ]\n  "new"\n] # end\n[t]\n'
         'modules_enabled = []\n')),
        ('modules_enabled = ["new"]\n', 'modules_enabled = ["new"]\n'),
        ('x = 1\r\nmodules_enabled = [\r\n  "a",\r\n]\r\n',
         'x = 1\r\nmodules_enabled = [\r\n  "a",\r\n  "new",\r\n]\r\n'),
    ],
)
def test_enable_edits_existing_arrays(before: str, after: str) -> None:
    assert enable_module_in_toml(before, "new") == after


def test_enable_adds_the_key_with_the_default_set() -> None:
    text = 'admins = []\n\n# hosts follow\n[virtualhosts."example.org"]\n'
    new = enable_module_in_toml(text, "new")
    assert new.startswith("admins = []\n\nmodules_enabled = [\n")
    assert new.endswith('\n\n# hosts follow\n[virtualhosts."example.org"]\n')
    assert tomllib.loads(new)["modules_enabled"] == [*DEFAULT_MODULES, "new"]


def test_enable_for_a_host() -> None:
    text = 'admins = []\n[virtualhosts."Example.org"] # the host\nenabled = true\n'
    new = enable_module_in_toml(text, "new", "example.org")
    assert new == ('admins = []\n[virtualhosts."Example.org"] # the host\n'
                   'modules_enabled = ["new"]\nenabled = true\n')
    assert enable_module_in_toml(new, "other", "example.org").count("modules_enabled") == 1
    with pytest.raises(ConfigEditError, match='no \\[virtualhosts."other.org"\\]'):
        enable_module_in_toml(text, "new", "other.org")


def test_enable_ignores_lookalikes_in_strings() -> None:
    text = 'motd = """\n[x]\nmodules_enabled = ["fake"]\n"""\nmodules_enabled = ["a"]\n'
    new = enable_module_in_toml(text, "new")
    assert new.endswith('"""\nmodules_enabled = ["a", "new"]\n')


def test_enable_refuses_layouts_it_does_not_understand() -> None:
    text = 'virtualhosts = { "example.org" = { modules_enabled = ["a"] } }\n'
    with pytest.raises(ConfigEditError):
        enable_module_in_toml(text, "new", "example.org")


def test_enable_in_file_keeps_permissions(config_file: Path) -> None:
    from tercet.cli.plugin_cmds import enable_module_in_file

    config_file.chmod(0o640)
    assert enable_module_in_file(config_file, "motd") is True
    assert enable_module_in_file(config_file, "motd") is False
    assert config_file.stat().st_mode & 0o777 == 0o640
    assert enabled(config_file)[-1] == "motd"
