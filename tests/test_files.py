"""What the server creates is private to its user whatever the umask; `check` flags what
is not (issue: data directory 0755 and database 0644 let local users read SCRAM keys)."""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from harness import ServerHarness

from tercet.cli.main import cli
from tercet.core.logging import setup_logging
from tercet.files import loose_mode, private_dir, private_file


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The most permissive umask: anything private below was made private by Tercet."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_private_dir_and_file_ignore_the_umask(tmp_path: Path, open_umask: None) -> None:
    target = private_file(tmp_path / "a" / "b" / "secret")
    assert mode(tmp_path / "a") == 0o700 and mode(tmp_path / "a" / "b") == 0o700
    assert mode(target) == 0o600 and target.read_bytes() == b""


def test_existing_paths_are_the_operators(tmp_path: Path, open_umask: None) -> None:
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o750)
    (mine / "f").write_text("kept")
    (mine / "f").chmod(0o640)
    private_dir(mine)
    private_file(mine / "f")
    assert mode(mine) == 0o750 and mode(mine / "f") == 0o640
    assert (mine / "f").read_text() == "kept"
    assert loose_mode(mine) == "readable by its group (mode 0750)"
    assert loose_mode(mine / "missing") is None


def test_server_data_directory_and_database_are_private(tmp_path: Path,
                                                        open_umask: None) -> None:
    harness = ServerHarness(tmp_path / "srv").start()
    try:
        data = tmp_path / "srv" / "data"
        assert mode(data) == 0o700
        assert mode(data / "tercet.sqlite") == 0o600
    finally:
        harness.stop()


def test_log_file_is_private(tmp_path: Path, open_umask: None) -> None:
    log = tmp_path / "logs" / "tercet.log"
    try:
        setup_logging("info", log)
        logging.getLogger("tercet.test").info("written")
    finally:
        setup_logging("warning", None)
    assert mode(log.parent) == 0o700 and mode(log) == 0o600
    assert "written" in log.read_text()


def test_check_warns_about_loose_modes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o755)
    (data / "tercet.sqlite").write_bytes(b"")
    (data / "tercet.sqlite").chmod(0o644)
    config = tmp_path / "tercet.toml"
    config.write_text(f'data_path = "{data}"\n[virtualhosts."localhost"]\n')
    result = CliRunner().invoke(cli, ["-c", str(config), "check", "--json"])
    warnings = {p["fix"] for p in json.loads(result.output)["problems"]
                if p["severity"] == "warning"}
    assert warnings == {f"Run: chmod 700 {data}", f"Run: chmod 600 {data / 'tercet.sqlite'}"}
