"""The server as operators run it: `tercet start` in a real process, signals, admin socket."""

from __future__ import annotations

import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import until_sync
from procsite import TERCET, admin_socket, c2s_port, init_site, tercet, wait_port


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Path]:
    config = init_site(tmp_path / "site")
    yield config
    admin_socket(config).unlink(missing_ok=True)  # a server killed by a test leaves it


def test_foreground_start_sigterm_closes_sessions_and_exits_0(site: Path) -> None:
    port = c2s_port(site)
    proc = subprocess.Popen([*TERCET, "-c", str(site), "start"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_port(port)
        sock = socket.create_connection(("127.0.0.1", port), 5)
        sock.sendall(b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0' "
                     b"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
        sock.settimeout(5)
        data = b""
        while b"</stream:features>" not in data:  # the server has the stream open
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        sock_path = next(line.split('"')[1] for line in site.read_text().splitlines()
                         if line.startswith("admin_socket"))
        assert not Path(sock_path).exists()  # no stale admin socket after a clean stop
        while chunk := sock.recv(65536):
            data += chunk
        assert b"<system-shutdown" in data
        sock.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_daemon_status_module_commands_reload_stop(site: Path) -> None:
    assert tercet(site, "status").returncode == 3
    started = tercet(site, "start", "--daemon")
    assert started.returncode == 0, started.stderr + started.stdout
    try:
        wait_port(c2s_port(site))
        status = tercet(site, "status", "--json")
        assert status.returncode == 0 and '"running": true' in status.stdout
        listed = tercet(site, "module", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        assert '"ping"' in listed.stdout
        unloaded = tercet(site, "module", "unload", "ping")
        assert unloaded.returncode == 0, unloaded.stderr
        assert '"ping"' not in tercet(site, "module", "list", "--json").stdout
        loaded = tercet(site, "module", "load", "ping")
        assert loaded.returncode == 0, loaded.stderr
        assert '"ping"' in tercet(site, "module", "list", "--json").stdout
        missing = tercet(site, "module", "load", "no_such_module")
        assert missing.returncode == 1 and "not found" in missing.stderr
        log = site.parent / "data" / "tercet.log"
        assert tercet(site, "reload").returncode == 0
        until_sync(lambda: "configuration reloaded" in log.read_text(), "the reload")
        # What a reload applies, and what it cannot, as the operator sees it.
        site.write_text(site.read_text().replace(
            "allow_registration = false", 'allow_registration = true\nname = "Renamed"')
            .replace("c2s_interfaces = [", 'c2s_interfaces = ["127.0.0.2", '))
        done = tercet(site, "reload")
        assert done.returncode == 0, done.stderr
        assert "reloaded: disco@localhost (name)" in done.stdout, done.stdout
        assert "reloaded: register@localhost (allow_registration)" in done.stdout
        assert "needs a restart: c2s_interfaces" in done.stdout
        assert tercet(site, "status").returncode == 0
    finally:
        stopped = tercet(site, "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert tercet(site, "status").returncode == 3


def test_a_port_in_use_is_fatal_and_named(site: Path) -> None:
    """A server that cannot listen where its config says exits non-zero and says why."""
    port = c2s_port(site)
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        blocker.bind(("127.0.0.1", port))
        blocker.listen(1)
        out = tercet(site, "start")
    finally:
        blocker.close()
    assert out.returncode == 1, out.stderr
    assert "c2s" in out.stderr and str(port) in out.stderr, out.stderr
    assert "running" not in out.stderr


def test_an_unusable_certificate_is_fatal_and_named(site: Path) -> None:
    """A certificate file that is there but cannot be used stops the start (exit 1)."""
    [cert] = sorted((site.parent / "certs").glob("*.crt"))
    cert.write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    out = tercet(site, "start")
    assert out.returncode == 1, out.stderr
    assert "cannot use the certificate for localhost" in out.stderr, out.stderr
    assert cert.name in out.stderr
