"""Plugins end to end, as an operator meets them.

A repository is built from ``community/`` with ``tercet repo build`` and served over HTTP on
loopback; a real server runs in its own process (``tercet start --daemon``); the plugin
commands install, update and remove ``motd`` while it runs, and a real client (slixmpp over
TLS) sees the module's behaviour change. Then bad input: a wheel whose hash does not match
the catalog, a corrupted wheel, an unreachable repository and a module that raises in
``load()`` must all leave the server and the plugin directory as they were.

Every wait is bounded; everything listens on 127.0.0.1; only processes started here are
stopped here.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import free_port
from helpers import accepts, run, until_sync
from xmpp import login, logout

from tercet.plugins.repo import serve, server_url

COMMUNITY = Path(__file__).resolve().parents[2] / "community"
TERCET = [sys.executable, "-m", "tercet"]
PASSWORD = "s3cret pass"
CLI_TIMEOUT = 300  # seconds for one CLI call (a repository build runs pip for each plugin)
# Offline, and independent of the user's pip configuration.
ENV = {**os.environ, "PIP_NO_INDEX": "1", "PIP_CONFIG_FILE": os.devnull}


def tercet(config: Path | None, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [*TERCET, *(["-c", str(config)] if config else []), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=CLI_TIMEOUT, env=ENV,
                          check=False)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"{result.args}:\n{result.stdout}\n{result.stderr}"
    return result


def refused(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    """The command failed with exit code 1 and said why; returns its stderr."""
    assert result.returncode == 1, f"{result.args}:\n{result.stdout}\n{result.stderr}"
    for needle in needles:
        assert needle in result.stderr, result.stderr
    return result.stderr


# -- the server ---------------------------------------------------------------------------------


class Site:
    """A server directory made by ``tercet init``, running as a daemon."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = root / "tercet.toml"
        self.port = free_port()
        self.plugins = root / "data" / "plugins"
        # Unix socket paths are short; keep the admin socket out of pytest's long tmp path.
        self.admin_socket = Path("/tmp") / f"tercet-e2e-{os.getpid()}-{self.port}.sock"

    def create(self) -> None:
        ok(tercet(None, "init", str(self.root)))
        text = self.config.read_text()
        text = text.replace("c2s_ports = [5222]", f"c2s_ports = [{self.port}]")
        text = text.replace("c2s_direct_tls_ports = [5223]",
                            f"c2s_direct_tls_ports = [{free_port()}]")
        head = (f'admin_socket = "{self.admin_socket}"\n'
                'motd_text = "Welcome to {host}"\n'
                'plugin_repositories = []\n')
        self.config.write_text(head + text)
        ok(tercet(self.config, "user", "add", "romeo@localhost", "--password", PASSWORD))

    def config_for(self, repository: str, name: str) -> Path:
        """A copy of the configuration that uses another repository. It sits next to the
        original, so data, plugin directory and admin socket are the same."""
        path = self.root / f"{name}.toml"
        text = self.config.read_text().replace(
            "plugin_repositories = []", f'plugin_repositories = ["{repository}"]', 1)
        path.write_text(text)
        return path

    def start(self) -> None:
        ok(tercet(self.config, "start", "--daemon"))
        until_sync(lambda: accepts(self.port), f"port {self.port} to open", timeout=30)

    def stop(self) -> None:
        pidfile = self.root / "data" / "tercet.pid"
        pid = int(pidfile.read_text()) if pidfile.exists() else None
        if tercet(self.config, "stop").returncode != 0 and pid is not None:
            os.kill(pid, signal.SIGKILL)  # the server this fixture started, by its pid
        self.admin_socket.unlink(missing_ok=True)  # it lives outside the tmp dir

    def modules(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = json.loads(
            ok(tercet(self.config, "module", "list", "--json")).stdout)
        return rows

    def module(self, name: str) -> dict[str, Any] | None:
        found = [row for row in self.modules() if row["name"] == name]
        assert len(found) <= 1, found  # one virtual host
        return found[0] if found else None

    def installed(self) -> dict[str, Any]:
        path = self.plugins / "installed.json"
        plugins: dict[str, Any] = json.loads(path.read_text())["plugins"] if path.exists() else {}
        return plugins

    def plugin_files(self) -> dict[str, bytes]:
        """Every file of the plugin directory (the installer's lock file aside)."""
        if not self.plugins.exists():
            return {}
        return {p.relative_to(self.plugins).as_posix(): p.read_bytes()
                for p in sorted(self.plugins.rglob("*")) if p.is_file() and p.name != ".lock"}

    def log(self) -> str:
        log = self.root / "data" / "tercet.log"
        return log.read_text(errors="replace")[-4000:] if log.exists() else ""


@pytest.fixture(scope="module")
def built_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tercet repo build community/ OUT``, once for the whole file."""
    out = tmp_path_factory.mktemp("repository") / "out"
    result = ok(tercet(None, "repo", "build", str(COMMUNITY), str(out)))
    assert " 0 failed" in result.stdout
    return out


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    s = Site(tmp_path_factory.mktemp("e2e") / "site")
    s.create()
    s.start()
    try:
        yield s
    except BaseException:
        print(s.log(), file=sys.stderr)
        raise
    finally:
        s.stop()


@pytest.fixture
def repository(built_repository: Path, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A private copy of the built repository, served on 127.0.0.1 (port 0): (dir, URL)."""
    out = tmp_path / "repo"
    shutil.copytree(built_repository, out)
    httpd = serve(out)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield out, server_url(httpd)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


# -- the client ---------------------------------------------------------------------------------


async def motd_at_login(port: int, resource: str) -> str | None:
    """Log in, send initial presence; the body of the message the server sent, if any.

    A ping follows the presence: the server handles a session's stanzas in order, so once
    the ping is answered any message of the day has arrived.
    """
    client = await login(f"romeo@localhost/{resource}", PASSWORD, port, plugins=("xep_0199",))
    try:
        client.send_presence()
        await client.plugin["xep_0199"].ping(jid="localhost", timeout=10)
        while not client.messages.empty():
            msg = client.messages.get_nowait()
            if str(msg["from"]) == "localhost":
                return str(msg["body"])
        return None
    finally:
        await logout(client)


async def ping_server(port: int) -> float:
    client = await login("romeo@localhost/pinger", PASSWORD, port, plugins=("xep_0199",))
    try:
        rtt: float = await client.plugin["xep_0199"].ping(jid="localhost", timeout=10)
        return rtt
    finally:
        await logout(client)


# -- publishing -----------------------------------------------------------------------------------


# The published community/motd, and the release the update test publishes after it.
MOTD_VERSION = tomllib.loads((COMMUNITY / "motd" / "pyproject.toml").read_text())[
    "project"]["version"]
NEXT_VERSION = "9.0.0"


def publish_motd_1_1(src: Path, out: Path) -> None:
    """Copy community/motd, make it NEXT_VERSION with a visibly different text, rebuild
    ``out``."""
    folder = src / "motd"
    shutil.copytree(COMMUNITY / "motd", folder)
    pyproject = folder / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(f'version = "{MOTD_VERSION}"',
                                                        f'version = "{NEXT_VERSION}"'))
    with (folder / "tercet_mod_motd" / "__init__.py").open("a") as fh:
        fh.write("\n\n_format_1_0 = format_motd\n\n\n"
                 "def format_motd(text: str, host: str) -> str:\n"
                 '    return "[1.1] " + _format_1_0(text, host)\n')
    result = ok(tercet(None, "repo", "build", str(src), str(out)))
    assert "1 built" in result.stdout


# -- the tests ------------------------------------------------------------------------------------


def test_install_update_remove_while_running(site: Site, repository: tuple[Path, str],
                                             tmp_path: Path) -> None:
    out, url = repository
    config = site.config_for(url, "lifecycle")
    assert site.module("motd") is None

    result = ok(tercet(config, "plugin", "install", "motd", "--enable"))
    assert f"Installed motd {MOTD_VERSION}" in result.stdout
    row = site.module("motd")
    assert row is not None
    assert (row["status"], row["origin"], row["version"]) == ("loaded", "plugin", MOTD_VERSION)
    assert site.installed()["motd"]["version"] == MOTD_VERSION
    assert run(motd_at_login(site.port, "one")) == "Welcome to localhost"

    publish_motd_1_1(tmp_path / "src", out)
    listed = ok(tercet(config, "plugin", "list", "--outdated"))
    assert f"update available: {NEXT_VERSION}" in listed.stdout
    result = ok(tercet(config, "plugin", "update", "motd"))
    assert f"Updated motd {MOTD_VERSION} -> {NEXT_VERSION}" in result.stdout
    row = site.module("motd")
    assert row is not None and (row["status"], row["version"]) == ("loaded", NEXT_VERSION)
    assert run(motd_at_login(site.port, "two")) == "[1.1] Welcome to localhost"

    result = ok(tercet(config, "plugin", "remove", "motd"))
    assert f"Removed motd {NEXT_VERSION}" in result.stdout
    assert site.module("motd") is None
    assert "motd" not in site.installed() and not (site.plugins / "motd").exists()
    assert run(motd_at_login(site.port, "three")) is None


def test_bad_input_changes_nothing(site: Site, repository: tuple[Path, str],
                                   tmp_path: Path) -> None:
    out, url = repository
    config = site.config_for(url, "bad-input")
    # Something installed and loaded, so that "nothing changed" has something to keep.
    ok(tercet(config, "plugin", "install", "announce", "--enable"))
    files, modules = site.plugin_files(), site.modules()
    assert "announce/tercet_mod_announce/__init__.py" in files

    def unchanged() -> None:
        assert site.plugin_files() == files
        assert site.modules() == modules

    catalog_path = out / "catalog.json"
    original = catalog_path.read_bytes()
    catalog = json.loads(original)
    [motd] = [m for m in catalog["modules"] if m["name"] == "motd"]
    [release] = motd["versions"]

    # A catalog hash that does not match the wheel: refused before pip sees the file.
    release["sha256"] = "0" * 64
    catalog_path.write_text(json.dumps(catalog))
    refused(tercet(config, "plugin", "install", "motd"), "SHA-256", "refusing it")
    unchanged()

    # A corrupted wheel that the catalog vouches for: the zip checks refuse it.
    wheel = out / release["url"]
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = b"\0" * 64
    wheel.write_bytes(bytes(data))
    release["sha256"] = hashlib.sha256(bytes(data)).hexdigest()
    release["size"] = len(data)
    catalog_path.write_text(json.dumps(catalog))
    refused(tercet(config, "plugin", "install", "motd"), "corrupted or invalid plugin wheel")
    unchanged()
    catalog_path.write_bytes(original)

    # A repository nobody answers at.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    stderr = refused(tercet(site.config_for(dead, "unreachable"), "plugin", "install", "motd"),
                     "repository unavailable", dead)
    assert "Traceback" not in stderr
    unchanged()

    # A plugin that raises in load(): installed, reported, and the server carries on.
    broken = write_broken_plugin(tmp_path / "broken")
    result = tercet(config, "plugin", "install", str(broken), "--enable")
    refused(result, "did not load")
    assert "Installed broken 1.0.0" in result.stdout
    row = site.module("broken")
    assert row is not None and row["status"] == "failed"
    assert "RuntimeError: broken on purpose" in (row["error"] or "")
    assert run(ping_server(site.port)) >= 0
    assert ok(tercet(config, "status")).stdout.startswith("running")
    others = [r for r in site.modules() if r["name"] != "broken"]
    assert others == modules

    ok(tercet(config, "plugin", "remove", "broken"))
    ok(tercet(config, "plugin", "remove", "announce"))
    assert site.module("announce") is None and site.installed() == {}


def write_broken_plugin(folder: Path) -> Path:
    """A well-formed plugin project whose module raises in load()."""
    package = folder / "tercet_mod_broken"
    package.mkdir(parents=True)
    (folder / "pyproject.toml").write_text("""\
[build-system]
requires = ["setuptools>=77"]
build-backend = "setuptools.build_meta"

[project]
name = "tercet-mod-broken"
version = "1.0.0"
requires-python = ">=3.11"

[project.entry-points."tercet.modules"]
broken = "tercet_mod_broken"

[tool.setuptools]
packages = ["tercet_mod_broken"]

[tool.tercet]
summary = "Fails to load, on purpose"
stage = "alpha"
""")
    (package / "__init__.py").write_text(
        "def load(module):\n"
        '    module.add_feature("urn:example:broken")\n'
        '    raise RuntimeError("broken on purpose")\n')
    return folder
