"""Installing, updating and removing plugins with the real pip, from a repository served on
loopback (or a file:// copy a test may tamper with)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from plugin_helpers import COMPATIBLE, Repo, tree_snapshot, write_plugin

from tercet.plugins.installer import (
    CorruptWheel,
    HashMismatch,
    IncompatibleVersion,
    Installer,
    InstallError,
    ModuleConflict,
    NotInstalled,
    PipFailed,
    RepositoryUnavailable,
    ShadowsBuiltin,
    UnknownPlugin,
    discover,
    plugin_paths,
)

MakeInstaller = Callable[..., Installer]


def import_in_subprocess(plugin_dir: Path, module: str) -> str:
    """Import *module* with *plugin_dir* on sys.path in a fresh interpreter; its VERSION."""
    code = (f"import sys; sys.path.insert(0, {str(plugin_dir)!r}); import {module} as m; "
            "assert callable(m.load); print(m.VERSION)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    return proc.stdout.strip()


def installed_json(installer: Installer) -> dict:
    path = installer.plugin_path / "installed.json"
    return json.loads(path.read_text())["plugins"] if path.exists() else {}


def assert_nothing_left_behind(installer: Installer) -> None:
    for scratch in (".staging", ".trash"):
        directory = installer.plugin_path / scratch
        assert not directory.exists() or not any(directory.iterdir())


# -- the happy path ---------------------------------------------------------------------------


def test_install_from_http_repository(http_repo: str, make_installer: MakeInstaller) -> None:
    installer = make_installer([http_repo])
    progress: list[str] = []
    result = installer.install("motd", progress=progress.append)
    assert (result.name, result.version, result.previous) == ("motd", "1.0.0", None)
    assert result.path == installer.plugin_path / "motd"
    assert any(line.startswith("downloading http://127.0.0.1:") for line in progress)
    record = installed_json(installer)["motd"]
    assert record["version"] == "1.0.0"
    assert record["source"] == http_repo
    assert len(record["sha256"]) == 64
    assert record["installed_at"].endswith("Z")
    [entry] = discover(installer.plugin_path).values()
    assert (entry.name, entry.module, entry.distribution, entry.version) == (
        "motd", "tercet_mod_motd", "tercet-mod-motd", "1.0.0")
    assert plugin_paths(installer.plugin_path) == [installer.plugin_path / "motd"]
    assert import_in_subprocess(entry.path, entry.module) == "1.0.0"
    assert_nothing_left_behind(installer)


def test_required_modules_are_installed_too(http_repo: str, make_installer: MakeInstaller) -> None:
    installer = make_installer([http_repo])
    result = installer.install("welcome")
    assert [(d.name, d.version) for d in result.also_installed] == [("motd", "1.0.0")]
    assert sorted(discover(installer.plugin_path)) == ["motd", "welcome"]
    assert sorted(installed_json(installer)) == ["motd", "welcome"]


def test_list_search_info(http_repo: str, make_installer: MakeInstaller) -> None:
    installer = make_installer([http_repo])
    installer.install("motd==1.0.0")
    [listed] = installer.list_installed()
    assert (listed.name, listed.version, listed.latest, listed.outdated) == (
        "motd", "1.0.0", None, False)
    hits = installer.search("XEP-0199")
    assert [(h.name, h.installed) for h in hits] == [("welcome", None)]
    assert [h.name for h in installer.search("")] == ["motd", "welcome"]
    info = installer.info("tercet-mod-motd")
    assert info.entry is not None and info.entry.distribution == "tercet-mod-motd"
    assert info.compatible == "1.0.0"
    assert info.installed is not None and info.installed.version == "1.0.0"
    assert info.to_dict()["readme_html"].startswith("<h1>motd</h1>")


def test_update_then_remove(repo: Repo, make_installer: MakeInstaller) -> None:
    installer = make_installer([repo.url])
    installer.install("motd")
    assert installer.update() == []

    write_plugin(repo.src, "motd", "1.1.0")
    repo.rebuild()
    installer = make_installer([repo.url])  # a new run reads the new catalog
    [listed] = installer.list_installed()
    assert (listed.version, listed.latest, listed.outdated) == ("1.0.0", "1.1.0", True)

    [updated] = installer.update("motd")
    assert (updated.name, updated.previous, updated.version) == ("motd", "1.0.0", "1.1.0")
    assert discover(installer.plugin_path)["motd"].version == "1.1.0"
    assert import_in_subprocess(installer.plugin_path / "motd", "tercet_mod_motd") == "1.1.0"
    assert installed_json(installer)["motd"]["version"] == "1.1.0"
    # Only one copy of the distribution is left in the plugin's directory.
    assert [p.name for p in (installer.plugin_path / "motd").glob("*.dist-info")] == [
        "tercet_mod_motd-1.1.0.dist-info"]
    assert_nothing_left_behind(installer)

    removed = installer.remove("motd")
    assert removed.version == "1.1.0"
    assert discover(installer.plugin_path) == {}
    assert not (installer.plugin_path / "motd").exists()
    assert installed_json(installer) == {}
    with pytest.raises(NotInstalled):
        installer.remove("motd")


def test_explicit_older_version_and_update_skips_incompatible(
    repo: Repo, make_installer: MakeInstaller
) -> None:
    write_plugin(repo.src, "motd", "2.0.0", tercet=">=99.0")
    repo.rebuild()
    installer = make_installer([repo.url])
    assert installer.install("motd").version == "1.0.0"  # 2.0.0 needs a newer Tercet
    assert installer.update() == []
    with pytest.raises(IncompatibleVersion, match=r"motd 2\.0\.0 requires Tercet >=99\.0"):
        installer.install("motd==2.0.0")


def test_install_from_local_wheel_and_project(built_repo: Repo, tmp_path: Path,
                                              make_installer: MakeInstaller) -> None:
    installer = make_installer([])
    wheel = built_repo.out / "files" / "tercet_mod_motd-1.0.0-py3-none-any.whl"
    result = installer.install(str(wheel))
    assert (result.version, result.source) == ("1.0.0", str(wheel))
    write_plugin(tmp_path / "work", "greeter", "0.1.0")
    result = installer.install(str(tmp_path / "work" / "greeter"))
    assert result.name == "greeter"
    assert sorted(discover(installer.plugin_path)) == ["greeter", "motd"]


def test_install_from_url_with_hash(http_repo: str, built_repo: Repo,
                                    make_installer: MakeInstaller) -> None:
    wheel = "tercet_mod_motd-1.0.0-py3-none-any.whl"
    digest = json.loads((built_repo.out / "catalog.json").read_text())["modules"][0][
        "versions"][0]["sha256"]
    installer = make_installer([])
    with pytest.raises(HashMismatch):
        installer.install(f"{http_repo}files/{wheel}#sha256={'0' * 64}")
    assert installed_json(installer) == {}
    assert installer.install(f"{http_repo}files/{wheel}#sha256={digest}").version == "1.0.0"


def test_replace_builtin(http_repo: str, make_installer: MakeInstaller) -> None:
    installer = make_installer([http_repo], builtin_modules={"motd"})
    with pytest.raises(ShadowsBuiltin, match="built-in module"):
        installer.install("motd")
    assert installer.install("motd", replace_builtin=True).version == "1.0.0"


# -- refusals leave everything as it was ------------------------------------------------------


@pytest.fixture
def installed_state(http_repo: str, make_installer: MakeInstaller) -> Installer:
    """A plugin directory that already holds motd 1.0.0, to show refusals change nothing."""
    installer = make_installer([http_repo])
    installer.install("motd")
    return installer


def refused(installer: Installer, spec: str, error: type[InstallError], match: str,
            **kwargs: bool) -> InstallError:
    before = tree_snapshot(installer.plugin_path)
    with pytest.raises(error, match=match) as info:
        installer.install(spec, **kwargs)
    assert tree_snapshot(installer.plugin_path) == before
    assert_nothing_left_behind(installer)
    return info.value


def test_refuses_wrong_hash(repo: Repo, installed_state: Installer,
                            make_installer: MakeInstaller) -> None:
    catalog_file = repo.out / "catalog.json"
    data = json.loads(catalog_file.read_text())
    data["modules"][1]["versions"][0]["sha256"] = "f" * 64  # welcome
    catalog_file.write_text(json.dumps(data))
    installer = make_installer([repo.url])
    refused(installer, "welcome", HashMismatch, "expected f{64}")


def test_refuses_corrupted_wheel(repo: Repo, installed_state: Installer,
                                 make_installer: MakeInstaller) -> None:
    wheel = repo.out / "files" / "tercet_mod_welcome-0.3.0-py3-none-any.whl"
    wheel.write_bytes(wheel.read_bytes()[:200])
    installer = make_installer([repo.url])
    # The catalog still has the good hash: the truncated file fails that check first ...
    refused(installer, "welcome", HashMismatch, "SHA-256")
    # ... and with a catalog that matches the damaged file, the zip check catches it.
    import hashlib

    catalog_file = repo.out / "catalog.json"
    data = json.loads(catalog_file.read_text())
    version = data["modules"][1]["versions"][0]
    version["sha256"] = hashlib.sha256(wheel.read_bytes()).hexdigest()
    version["size"] = wheel.stat().st_size
    catalog_file.write_text(json.dumps(data))
    refused(make_installer([repo.url]), "welcome", CorruptWheel, "not a valid wheel")


def test_refuses_oversized_download(repo: Repo, installed_state: Installer,
                                    make_installer: MakeInstaller) -> None:
    wheel = repo.out / "files" / "tercet_mod_welcome-0.3.0-py3-none-any.whl"
    wheel.write_bytes(wheel.read_bytes() + b"\0" * 4096)
    refused(make_installer([repo.url]), "welcome", HashMismatch, "larger than the catalog")


def test_refuses_unreachable_repository(closed_port_url: str, installed_state: Installer,
                                        make_installer: MakeInstaller) -> None:
    installer = make_installer([closed_port_url])
    error = refused(installer, "welcome", RepositoryUnavailable, "connection refused")
    assert closed_port_url in str(error)
    with pytest.raises(RepositoryUnavailable, match="connection refused"):
        installer.search("x")


def test_refuses_missing_catalog(tmp_path: Path, installed_state: Installer,
                                 make_installer: MakeInstaller) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    refused(make_installer([empty.as_uri()]), "welcome", RepositoryUnavailable,
            r"no such file \(reading file://.*/empty/catalog\.json\)")


def test_refuses_incompatible_tercet(http_repo: str, installed_state: Installer,
                                     make_installer: MakeInstaller) -> None:
    installer = make_installer([http_repo], tercet_version="0.5.0")
    error = refused(installer, "welcome", IncompatibleVersion, f"requires Tercet {COMPATIBLE}")
    assert "this is Tercet 0.5.0" in str(error)


def test_refuses_builtin_shadowing(http_repo: str, installed_state: Installer,
                                   make_installer: MakeInstaller) -> None:
    installer = make_installer([http_repo], builtin_modules={"welcome"})
    refused(installer, "welcome", ShadowsBuiltin, "--replace-builtin")


def test_refuses_conflict_with_loaded_module(http_repo: str, installed_state: Installer,
                                             make_installer: MakeInstaller) -> None:
    installer = make_installer([http_repo], loaded_modules={"legacy_welcome", "motd"})
    refused(installer, "welcome", ModuleConflict, "legacy_welcome")


def test_refuses_unknown_name(http_repo: str, installed_state: Installer,
                              make_installer: MakeInstaller) -> None:
    error = refused(make_installer([http_repo]), "welcom", UnknownPlugin, "did you mean welcome")
    assert isinstance(error, UnknownPlugin) and error.suggestions == ["welcome"]
    refused(make_installer([http_repo]), "motd==9.9", UnknownPlugin, "available: 1.0.0")


def test_pip_failure_changes_nothing(tmp_path: Path, installed_state: Installer) -> None:
    write_plugin(tmp_path / "work", "needy", "0.1.0",
                 dependencies=("tercet-test-no-such-package>=1",))
    refused(installed_state, str(tmp_path / "work" / "needy"), PipFailed, "pip install failed")


def test_a_second_operation_waits_its_turn(installed_state: Installer) -> None:
    # Another `tercet plugin` run holds the lock:
    with installed_state._locked(), pytest.raises(InstallError, match="another plugin operation"):
        installed_state.remove("motd")
    assert installed_state.remove("motd").name == "motd"
