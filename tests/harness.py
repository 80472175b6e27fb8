"""A real Tercet server for tests: its own thread and event loop, OS-chosen loopback ports,
a self-signed certificate, SQLite storage in a temporary directory."""

from __future__ import annotations

import asyncio
import shutil
import socket
import tempfile
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from tercet.app import Application
from tercet.core.certs import generate_self_signed
from tercet.core.config import Config
from tercet.core.server import Server

T = TypeVar("T")

BASE_CONFIG = """
admins = ["admin@localhost"]
c2s_ports = [{port}]
c2s_direct_tls_ports = [{tls_port}]
c2s_interfaces = ["127.0.0.1"]
data_path = "data"
certificates = "certs"
log = "warning"
admin_socket = "{admin_socket}"
{extra}

[virtualhosts."localhost"]
{host_extra}
"""


def free_port() -> int:
    """A currently free loopback port chosen by the OS.

    The config schema (like Prosody's) takes real port numbers, so the OS picks one here
    and the server binds it right after; the window for a clash is tiny.
    """
    return free_ports(1)[0]


#: Ports free_ports has handed out in this process: not handed out again, so two servers
#: a test configures before either binds (a federation's two domains) never share one.
_HANDED_OUT: set[int] = set()


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports, none handed out before in this process:
    the sockets are held open together while the OS picks (bounded retries)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count + 64):
            if len(socks) == count:
                break
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            if int(sock.getsockname()[1]) in _HANDED_OUT:
                sock.close()
                continue
            socks.append(sock)
        if len(socks) < count:
            raise RuntimeError("no unused loopback port found")
        ports = [int(sock.getsockname()[1]) for sock in socks]
        _HANDED_OUT.update(ports)
        return ports
    finally:
        for sock in socks:
            sock.close()


class ServerHarness:
    def __init__(self, directory: Path, extra: str = "", host_extra: str = "") -> None:
        self.directory = directory
        (directory / "certs").mkdir(parents=True, exist_ok=True)
        if not (directory / "certs" / "localhost.crt").exists():
            generate_self_signed("localhost", directory / "certs")
        self.config_path = directory / "tercet.toml"
        # Unix socket paths are limited to ~107 bytes; pytest's tmp dirs can be longer.
        self.socket_dir = Path(tempfile.mkdtemp(prefix="tercet-"))
        self.admin_socket = self.socket_dir / "admin.sock"
        port, tls_port = free_ports(2)
        self.config_path.write_text(BASE_CONFIG.format(
            extra=extra, host_extra=host_extra, admin_socket=self.admin_socket,
            port=port, tls_port=tls_port))
        self.loop = asyncio.new_event_loop()
        self.server: Server | None = None
        self.app: Application | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> ServerHarness:
        self._thread.start()
        try:
            config = Config.load(self.config_path)
            self.app = Application(config)
            self.server = self.app.server
            self.call(self.app.start())
        except BaseException:
            self.stop()  # a failed start leaves no thread, loop, socket or directory behind
            raise
        return self

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run a coroutine on the server's loop and wait for its result."""
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    async def acall(self, coro: Coroutine[Any, Any, T]) -> T:
        """:meth:`call` for a test's own event loop: await the result instead of blocking."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def port(self, direct_tls: bool = False) -> int:
        assert self.server is not None
        return self.server.net.bound()["c2s/tls" if direct_tls else "c2s"][0][1]

    def create_user(self, username: str, password: str, host: str = "localhost") -> None:
        assert self.server is not None
        auth = self.server.hosts[host].auth
        assert auth is not None
        self.call(auth.create_user(username, password))

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        if self.app is not None:
            self.call(self.app.stop())
            self.app = self.server = None
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
        self.loop.close()
        shutil.rmtree(self.socket_dir, ignore_errors=True)
