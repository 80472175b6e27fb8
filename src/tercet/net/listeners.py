"""Listening sockets, and the per-IP cap on connections that have not authenticated."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from tercet.core.memory import MemoryTrimmer
from tercet.core.network import (
    ConnectSpec,
    FramedStream,
    ListenSpec,
    MessageLink,
    StreamLimits,
)
from tercet.net.c2s import C2SConnection, OutputBatch
from tercet.net.component import ComponentConnection
from tercet.net.framed import FramedC2SConnection
from tercet.net.readiness import ReadySet
from tercet.net.s2s import S2SConnection
from tercet.net.s2s import connect as connect_s2s
from tercet.net.tls import TLSManager
from tercet.net.tlslayer import TLSLayer
from tercet.protocol.errors import StreamError

if TYPE_CHECKING:
    from tercet.core.server import Server
    from tercet.core.session import ServerSession, Session

log = logging.getLogger("tercet.net")


@dataclass(frozen=True, slots=True)
class Listener:
    """What a connection knows of the listener that accepted it."""

    service: str
    direct_tls: bool
    limits: StreamLimits


class Listening:
    """The sockets of one ``listen`` call; ``close()`` stops accepting on all of them."""

    def __init__(self, manager: NetManager, key: str, servers: list[asyncio.Server]) -> None:
        self._manager = manager
        self._key = key
        self._servers = servers
        self.addresses = _addresses(servers)

    def close(self) -> None:
        gone = set(self.addresses)
        bound = self._manager.bound_addresses
        bound[self._key] = [a for a in bound.get(self._key, []) if a not in gone]
        for srv in self._servers:
            srv.close()


# Connections waiting to be accepted per listening socket (the kernel's accept queue).
LISTEN_BACKLOG = 1024
# Seconds between idle sweeps: a stream that read nothing for a whole period drops its
# parser until it reads again. A wake costs a fresh parser (~4.5 µs), at most once per second
# of a stream's quiet, against ~14 kB held per idle stream: with 5 s, RSS read 3 s after
# a burst of 10,000 logins was 28.3 kB per session, with 1 s 23.7 kB, at the same CPU
# and latency at 1,000 msgs/s (bench/README.md, "Idle sweep every second"). Each sweep
# visits only the streams that hold a parser (~0.1 µs each).
IDLE_SWEEP = 1.0
# Streams holding a parser above which the next sweep comes after IDLE_SWEEP_FAST instead:
# parsers (~14 kB each) bounded to about this many during a burst of logins. Without it,
# a second of logins at 500/s left ~14 MB of freed parsers as holes between the sessions'
# long-lived objects, memory neither allocator could return (bench/README.md, "Parsers
# of a login burst").
AWAKE_PARSERS_LIMIT = 128
# Seconds between sweeps while more streams than that hold a parser: a stream quiet for
# 0.1 s then pays a wake (~4.5 µs) on its next read, which a burst's memory is worth.
IDLE_SWEEP_FAST = 0.1
# Parsers dropped since the last trim (~1.8 MB of them) after which a sweep that finds at
# most AWAKE_PARSERS_LIMIT streams awake gives the whole free pages of the heap back to the
# system (core/memory.py; at most once per TRIM_INTERVAL).
TRIM_AFTER_PARSERS = 128


class StreamConnection(Protocol):
    """What the manager needs of any accepted connection: closing it with a stream error,
    and the session it carries (for metrics)."""

    def close_stream(self, error: StreamError | None = None) -> None: ...

    def idle_check(self) -> bool:
        """The idle sweep's visit (memory an idle stream can give back); True once the
        stream holds no parser, until it reads again and rejoins ``NetManager.awake``."""
        ...

    @property
    def session(self) -> Session: ...


# ListenSpec.service -> the protocol spoken on its sockets. A new stream kind (s2s,
# component) adds one entry here and nothing else in this file.
PROTOCOLS: dict[str, type[C2SConnection]] = {
    "c2s": C2SConnection,
    "component": ComponentConnection,
    "s2s": S2SConnection,
}


class NetManager:
    """Opens listeners for modules (``ModuleApi.listen``) and tracks unauthenticated peers."""

    def __init__(self, server: Server, tls: TLSManager) -> None:
        self.server = server
        self.tls = tls
        self._unauth: dict[str, int] = {}
        # Every open connection of any kind, so shutdown can close the unauthenticated too.
        self.connections: set[StreamConnection] = set()
        # The connections whose stream may hold a parser: the idle sweep visits only
        # these (a sleeping stream rejoins on its next read).
        self.awake: set[StreamConnection] = set()
        # "c2s" / "c2s/tls" -> bound addresses, for status output and tests on port 0
        self.bound_addresses: dict[str, list[tuple[str, int]]] = {}
        self._sweep: asyncio.TimerHandle | None = None
        # When the next sweep is due (loop time), so a burst can bring it forward.
        self._sweep_at = 0.0
        # Parsers dropped since the last trim.
        self._dropped = 0
        self.trimmer = MemoryTrimmer()
        # What tells TLS connections their socket is readable (net/readiness.py).
        self.readers = ReadySet()
        # Connections written to during this loop iteration, flushed by one callback.
        self.output = OutputBatch()

    def bound(self) -> dict[str, list[tuple[str, int]]]:
        return {key: list(addrs) for key, addrs in self.bound_addresses.items()}

    async def listen(self, spec: ListenSpec) -> Listening:
        if spec.service not in PROTOCOLS and spec.factory is None:
            raise ValueError(f"unknown service {spec.service!r}")
        listener = Listener(spec.service, spec.direct_tls, spec.limits)
        key = spec.service + ("/tls" if spec.direct_tls else "")
        servers: list[asyncio.Server] = []
        try:
            for port in spec.ports:
                for iface in spec.interfaces:
                    if spec.factory is not None:
                        servers.append(await self._open_factory(spec, iface, port))
                    else:
                        servers.append(await self._open(listener, iface, port))
        except OSError:
            Listening(self, key, servers).close()
            raise
        listening = Listening(self, key, servers)
        if self._sweep is None:
            self._schedule_sweep(IDLE_SWEEP)
        self.bound_addresses.setdefault(key, []).extend(listening.addresses)
        log.info("%s listening on %s", key, listening.addresses)
        return listening

    async def _open(self, listener: Listener, iface: str, port: int) -> asyncio.Server:
        protocol = PROTOCOLS[listener.service]
        # "*" is Prosody's spelling of "every IPv4 address".
        host = "0.0.0.0" if iface == "*" else iface
        factory: Callable[[], asyncio.Protocol]
        if listener.direct_tls:
            ssl_ctx = protocol.server_tls_context(self)

            def factory() -> asyncio.Protocol:
                conn = protocol(self.server, listener, self)
                return TLSLayer(conn, ssl_ctx, server_side=True,
                                on_handshake=conn.tls_handshake_done, readers=self.readers)
        else:
            def factory() -> asyncio.Protocol:
                return protocol(self.server, listener, self)
        return await asyncio.get_running_loop().create_server(
            factory, host, port, backlog=LISTEN_BACKLOG, reuse_address=True)

    async def _open_factory(self, spec: ListenSpec, iface: str, port: int) -> asyncio.Server:
        """A socket for a module's own protocol (``ListenSpec.factory``: HTTP)."""
        assert spec.factory is not None
        ssl_ctx = self.tls.server_context() if spec.direct_tls else None
        host = "0.0.0.0" if iface == "*" else iface
        return await asyncio.get_running_loop().create_server(
            spec.factory, host, port, ssl=ssl_ctx, backlog=LISTEN_BACKLOG,
            reuse_address=True, ssl_handshake_timeout=30 if ssl_ctx else None)

    def open_framed(self, link: MessageLink, limits: StreamLimits,
                    host: str | None = None, transport: str = "websocket") -> FramedStream:
        """A client stream over a message-framed transport (RFC 7395)."""
        conn = FramedC2SConnection(self.server, Listener("c2s/framed", link.secure, limits),
                                   self, link, host, transport)
        conn.start()
        return conn

    async def connect(self, spec: ConnectSpec) -> ServerSession:
        """An outbound stream (``spec.service`` "s2s"); raises PeerUnreachable."""
        if spec.service != "s2s":
            raise ValueError(f"cannot connect service {spec.service!r}")
        return await connect_s2s(self, spec)

    def sweep_idle(self) -> None:
        """Every IDLE_SWEEP seconds: streams idle for a whole period give back their
        parser (~14 kB each; bench/README.md, "TLS memory per session"). More often
        while more than AWAKE_PARSERS_LIMIT streams hold one."""
        awake = self.awake
        asleep = [conn for conn in awake if conn.idle_check()]
        awake.difference_update(asleep)
        self._dropped += len(asleep)
        if len(awake) > AWAKE_PARSERS_LIMIT:
            self._schedule_sweep(IDLE_SWEEP_FAST)
            return
        if self._dropped >= TRIM_AFTER_PARSERS and self.trimmer.after_burst():
            self._dropped = 0
        self._schedule_sweep(IDLE_SWEEP)

    def stream_awake(self, conn: StreamConnection) -> None:
        """``conn`` holds a parser (a new stream, or a sleeping one that read): the sweep
        visits it, and comes sooner once more than AWAKE_PARSERS_LIMIT streams hold one."""
        awake = self.awake
        awake.add(conn)
        if len(awake) > AWAKE_PARSERS_LIMIT and self._sweep is not None:
            due = asyncio.get_running_loop().time() + IDLE_SWEEP_FAST
            if self._sweep_at > due:
                self._sweep.cancel()
                self._schedule_sweep(IDLE_SWEEP_FAST)

    def _schedule_sweep(self, delay: float) -> None:
        loop = asyncio.get_running_loop()
        self._sweep_at = loop.time() + delay
        self._sweep = loop.call_at(self._sweep_at, self.sweep_idle)

    async def close_all(self, error: StreamError, grace: float = 2.0) -> None:
        """Send ``error`` to every connection, then wait (bounded) for them to go."""
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for conn in list(self.connections):
            conn.close_stream(error)
        deadline = asyncio.get_running_loop().time() + grace
        while self.connections and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        self.readers.close()

    def sessions(self) -> list[Session]:
        """The session of every open connection."""
        return [conn.session for conn in self.connections]

    def admit_unauthenticated(self, ip: str, limit: int) -> bool:
        """Count a new unauthenticated connection; False once the per-IP cap is reached."""
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


def _addresses(servers: list[asyncio.Server]) -> list[tuple[str, int]]:
    out = []
    for srv in servers:
        for sock in srv.sockets:
            addr = sock.getsockname()
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                out.append((addr[0], addr[1]))
    return out
