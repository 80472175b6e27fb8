"""What the core needs from the network layer, as protocols, so core imports no transport.

The composition root (tercet.app) gives the Server a concrete ``Network`` and
``TLSProvider`` (tercet.net); tests and later a cluster node can give others. Modules open
listeners with ``module.listen(ListenSpec(...))``: the module that owns a protocol passes
its limits as data and the network layer enforces them.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from tercet.core.session import ServerSession, Session
    from tercet.protocol.errors import StreamError

# RFC 6120 §13.12: a server may limit the resources a session uses to counter denial of
# service; a peer that stops reading is cut off once this much output waits for it.
DEFAULT_SEND_BUFFER_LIMIT = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """Per-connection limits of an XML stream listener."""

    # RFC 6120 §13.12: at least 10000 bytes must be accepted; counted while parsing.
    stanza_size: int = 262144
    # Seconds a peer may take to authenticate before the stream is closed.
    auth_timeout: float = 60.0
    # Connections from one IP address that have not authenticated yet.
    max_unauthenticated_per_ip: int = 20
    send_buffer: int = DEFAULT_SEND_BUFFER_LIMIT


@dataclass(frozen=True, slots=True)
class ListenSpec:
    """One listener a module asks for: which protocol, where, and with which limits.

    ``service`` names the protocol the network layer speaks on the sockets ("c2s",
    "s2s", "component"). A module that brings its own protocol (the ``http`` module's
    HTTP server) passes ``factory`` instead, with a service name of its own for status
    output (1.2): each accepted connection gets ``factory()``, and the network layer only
    binds, applies TLS (the hosts' certificates, chosen by SNI) and reports failures.
    """

    service: str
    ports: tuple[int, ...]
    interfaces: tuple[str, ...]
    direct_tls: bool = False
    limits: StreamLimits = StreamLimits()
    factory: Callable[[], asyncio.BaseProtocol] | None = None


@dataclass(frozen=True, slots=True)
class ConnectSpec:
    """One outbound stream a module asks for (``service`` "s2s"): from our ``local``
    domain to the ``remote`` one, found through DNS (RFC 6120 §3.2)."""

    service: str
    local: str
    remote: str
    limits: StreamLimits = StreamLimits()
    # "ip" or "ip:port"; empty: the system's resolver configuration (/etc/resolv.conf).
    nameservers: tuple[str, ...] = ()
    # RFC 8305 §5 does not fix it; Prosody's connect_timeout is 20 s.
    connect_timeout: float = 20.0
    # Bound on resolving and connecting, all targets together.
    overall_timeout: float = 60.0


class PeerUnreachable(Exception):
    """No connection to a remote domain; ``condition`` is the stanza error for what was
    queued for it: "remote-server-not-found" (does not resolve) or "remote-server-timeout"
    (RFC 6120 §8.3.3.15, §8.3.3.16)."""

    def __init__(self, condition: str, reason: str) -> None:
        super().__init__(reason)
        self.condition = condition


class Listening(Protocol):
    """A handle on the sockets one ``listen`` call opened."""

    @property
    def addresses(self) -> list[tuple[str, int]]: ...

    def close(self) -> None: ...


class MessageLink(Protocol):
    """A message-framed transport under a client stream (RFC 7395 WebSocket; 1.2): the
    transport module implements it; ``Network.open_framed`` runs the c2s stream on it.

    Each ``send_message`` is one complete XML element, sent as one transport message.
    """

    @property
    def peer(self) -> str:
        """The client's IP address (after trusted proxies)."""
        ...

    @property
    def secure(self) -> bool:
        """Whether the client's connection is encrypted (TLS here or at a trusted proxy)."""
        ...

    def send_message(self, data: bytes) -> None: ...

    def buffered(self) -> int:
        """Bytes handed to ``send_message`` that the client has not taken yet."""
        ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def close(self) -> None:
        """Close after the messages already handed over are sent."""
        ...

    def abort(self) -> None:
        """Close now, dropping what is unsent."""
        ...

    def extra_info(self, name: str) -> object:
        """Transport facts by asyncio's names (``ssl_object``), or None."""
        ...


class FramedStream(Protocol):
    """The client stream ``Network.open_framed`` runs over a ``MessageLink`` (1.2)."""

    def message_received(self, data: bytes) -> None:
        """One whole message from the client (RFC 7395 §3.3.3: one element)."""
        ...

    def connection_lost(self, exc: Exception | None) -> None:
        """The transport is gone (closed by either side)."""
        ...


class ReadLimiter(Protocol):
    """The read budget of one connection (1.3). For every chunk read, the connection
    asks how much of it may be processed now; it holds the rest and stops reading for
    ``wait`` seconds, then asks again."""

    def consume(self, size: int) -> int:
        """How many of ``size`` bytes just read may be processed now (spent)."""
        ...

    def wait(self, size: int) -> float:
        """Seconds until some of ``size`` held bytes may be processed."""
        ...


class TrafficPolicy(Protocol):
    """Abuse and load controls one module enforces through the network layer (1.3):
    which connections are accepted, and how fast each may send.

    ``kind`` is the stream type as Prosody names session types: "c2s", "s2sin",
    "s2sout", "component". Framed client streams (WebSocket, BOSH) are their transport
    module's to police and do not come here."""

    def admit(self, ip: str, kind: str) -> bool:
        """Whether a new inbound connection from ``ip`` is accepted (RFC 6120 §13.12)."""
        ...

    def read_limiter(self, kind: str, session: Session) -> ReadLimiter | None:
        """The read budget of a new connection carrying ``session``; None: unlimited."""
        ...


class Network(Protocol):
    """Listeners and live connections (tercet.net.NetManager is the real one)."""

    async def listen(self, spec: ListenSpec) -> Listening: ...

    def bound(self) -> dict[str, list[tuple[str, int]]]:
        """Bound addresses by listener ("c2s", "c2s/tls"), for status output."""
        ...

    async def close_all(self, error: StreamError) -> None:
        """Close every connection, authenticated or not (shutdown)."""
        ...

    def sessions(self) -> list[Session]:
        """The session of every open connection, authenticated or not (for metrics)."""
        ...

    async def connect(self, spec: ConnectSpec) -> ServerSession:
        """Open an outbound stream; raises PeerUnreachable. The session is returned once
        its stream header is sent; negotiation continues through stream events."""
        ...

    def open_framed(self, link: MessageLink, limits: StreamLimits,
                    host: str | None = None, transport: str = "websocket") -> FramedStream:
        """Run a client stream (RFC 7395 framing) over ``link``: the same c2s machinery
        as a TCP connection, with ``limits``; with ``host``, only for that host (1.2).
        ``transport`` names the transport for metrics ("websocket", "bosh")."""
        ...


class TLSProvider(Protocol):
    """Certificates per host, and whether any is loaded (tercet.net.tls.TLSManager)."""

    @property
    def available(self) -> bool: ...

    def add_host(self, host: str, cert_path: Path, key_path: Path) -> None: ...

    def server_context(self) -> ssl.SSLContext: ...
