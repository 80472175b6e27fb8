"""A site made by `tercet init` with loopback ports the OS picked, for tests that run the
server as operators do: `tercet start` in a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from harness import free_ports
from helpers import accepts, until_sync

TERCET = [sys.executable, "-m", "tercet"]


def tercet(config: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TERCET, "-c", str(config), *args], capture_output=True, text=True,
                          timeout=timeout)


def init_site(directory: Path, host_lines: str = "") -> Path:
    """`tercet init DIRECTORY`, its ports replaced by free ones (files ``port`` and
    ``tls_port`` beside the config say which), ``host_lines`` added to the localhost
    table. Returns the config file."""
    out = subprocess.run([*TERCET, "init", str(directory)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    config = directory / "tercet.toml"
    text = config.read_text()
    port, tls_port = free_ports(2)
    # Unix socket paths are short; keep the admin socket out of pytest's long tmp path.
    sock = Path("/tmp") / f"tercet-test-{os.getpid()}-{port}.sock"
    text = text.replace("c2s_ports = [5222]", f"c2s_ports = [{port}]")
    text = text.replace("c2s_direct_tls_ports = [5223]", f"c2s_direct_tls_ports = [{tls_port}]")
    # The localhost table is the last one in the file: lines appended land in it.
    config.write_text(f'admin_socket = "{sock}"\n' + text + "\n" + host_lines + "\n")
    (directory / "port").write_text(str(port))
    (directory / "tls_port").write_text(str(tls_port))
    return config


def admin_socket(config: Path) -> Path:
    return Path(next(line.split('"')[1] for line in config.read_text().splitlines()
                     if line.startswith("admin_socket")))


def wait_port(port: int, timeout: float = 20) -> None:
    until_sync(lambda: accepts(port), f"port {port} to open", timeout=timeout)


def c2s_port(config: Path) -> int:
    return int((config.parent / "port").read_text())


def tls_port(config: Path) -> int:
    return int((config.parent / "tls_port").read_text())
