"""Listening sockets, and the per-IP cap on connections that have not authenticated."""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tercet.net.c2s import C2SConnection
from tercet.protocol.errors import StreamError

if TYPE_CHECKING:
    from tercet.core.server import Server

log = logging.getLogger("tercet.net")


@dataclass(frozen=True)
class Listener:
    service: str
    direct_tls: bool


class NetManager:
    """Opens listeners for modules (``ModuleApi.listen``) and tracks unauthenticated peers."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self._unauth: dict[str, int] = {}
        # Every open client connection, so shutdown can close the unauthenticated ones too.
        self.connections: set[C2SConnection] = set()
        # (service, direct_tls) -> bound addresses, for status output and tests on port 0
        self.bound: dict[tuple[str, bool], list[tuple[str, int]]] = {}

    async def listen(self, service: str, ports: list[int], interfaces: list[str],
                     direct_tls: bool) -> list[asyncio.Server]:
        if service != "c2s":
            raise ValueError(f"unknown service {service!r}")
        loop = asyncio.get_running_loop()
        listener = Listener(service, direct_tls)
        ssl_ctx = self.server.tls.server_context() if direct_tls else None
        servers = []
        try:
            for port in ports:
                for iface in interfaces:
                    # "*" is Prosody's spelling of "every IPv4 address".
                    iface = "0.0.0.0" if iface == "*" else iface
                    srv = await loop.create_server(
                        lambda: C2SConnection(self.server, listener), iface, port,
                        ssl=ssl_ctx, backlog=1024, reuse_address=True,
                        ssl_handshake_timeout=30 if ssl_ctx else None)
                    servers.append(srv)
                    self.bound.setdefault((service, direct_tls), []).extend(
                        self.addresses([srv]))
                    log.info("%s listening on %s (direct TLS: %s)", service,
                             self.addresses([srv]), direct_tls)
        except OSError:
            self.close_listeners(servers)
            raise
        return servers

    def close_listeners(self, servers: list[asyncio.Server]) -> None:
        for srv in servers:
            gone = set(self.addresses([srv]))
            for key, addrs in self.bound.items():
                self.bound[key] = [a for a in addrs if a not in gone]
            srv.close()

    @staticmethod
    def addresses(servers: list[asyncio.Server]) -> list[tuple[str, int]]:
        out = []
        for srv in servers:
            for sock in srv.sockets:
                addr = sock.getsockname()
                if sock.family in (socket.AF_INET, socket.AF_INET6):
                    out.append((addr[0], addr[1]))
        return out

    async def close_all(self, error: StreamError, grace: float = 2.0) -> None:
        """Send ``error`` to every connection, then wait (bounded) for them to go."""
        for conn in list(self.connections):
            conn.close_stream(error)
        deadline = asyncio.get_running_loop().time() + grace
        while self.connections and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)

    def admit_unauthenticated(self, ip: str) -> bool:
        """Count a new unauthenticated connection; False once the per-IP cap is reached."""
        limit = self.server.config.get("c2s_max_unauthenticated_per_ip")
        count = self._unauth.get(ip, 0)
        if count >= limit:
            log.warning("refusing connection from %s: %d unauthenticated already", ip, count)
            return False
        self._unauth[ip] = count + 1
        return True

    def release_unauthenticated(self, ip: str) -> None:
        count = self._unauth.get(ip, 0) - 1
        if count > 0:
            self._unauth[ip] = count
        else:
            self._unauth.pop(ip, None)
