"""Typed sessions. A session is what a stanza comes from and what it is delivered to.

The network layer owns the connection; the session only knows a small ``Connection``
protocol (write bytes, close, start TLS, peer address), so tests and other transports
(BOSH, WebSocket, cluster peers) can provide their own.
"""

from __future__ import annotations

import itertools
import logging
from typing import TYPE_CHECKING, Any, Protocol

from tercet.protocol.errors import StreamError
from tercet.protocol.stanza import Element

if TYPE_CHECKING:
    from tercet.core.host import Host

_ids = itertools.count(1)


class Connection(Protocol):
    """What a session needs from its transport (TCP today; BOSH, WebSocket, cluster peers
    provide their own)."""

    def write(self, data: bytes) -> None: ...
    def close_stream(self, error: StreamError | None = None) -> None: ...
    @property
    def peer(self) -> str: ...
    @property
    def secure(self) -> bool: ...
    async def start_tls(self) -> None:
        """Upgrade the transport to TLS in place (RFC 6120 §5.4.3.3)."""
        ...
    def restart_stream(self) -> None:
        """Expect a fresh stream header with a fresh parser (RFC 6120 §4.3.3)."""
        ...
    def authenticated(self) -> None:
        """Authentication succeeded: stop the auth timeout and the unauthenticated count."""
        ...


class SessionLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger adapter that starts every message with the session id."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f"{self.extra['session']}: {msg}", kwargs  # type: ignore[index]


class Session:
    """Base of every session kind; ``kind`` names it for logs and event names."""

    kind = "local"
    __slots__ = ("id", "host", "closed", "data")

    def __init__(self, host: Host | None) -> None:
        self.id = f"{self.kind}{next(_ids)}"
        self.host = host
        self.closed = False
        # Per-session scratch space for modules (keyed by module name), so modules keep
        # their state on the session without monkey-patching attributes onto it.
        self.data: dict[str, Any] = {}

    @property
    def log(self) -> SessionLog:
        """A logger for this session (``tercet.<kind>``, messages prefixed with the id).

        Made when used rather than kept: a ``logging.getLogger`` per session would stay in
        the logging module's registry forever, growing with every connection ever made.
        """
        return SessionLog(logging.getLogger(f"tercet.{self.kind}"), {"session": self.id})

    def send(self, stanza: Element) -> None:
        raise NotImplementedError

    def close(self, error: StreamError | None = None) -> None:
        self.closed = True

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id}>"


class HostSession(Session):
    """The host itself as an origin, for stanzas the server generates (module.send)."""

    kind = "host"
    __slots__ = ()

    def send(self, stanza: Element) -> None:
        # Replies addressed to the host itself (e.g. an error for a stanza we sent) end here.
        self.log.debug("dropping stanza addressed to the host: %s", stanza)


class C2SSession(Session):
    """A client session (RFC 6120). Fields are set as negotiation advances."""

    kind = "c2s"
    __slots__ = (
        "conn", "username", "resource", "full_jid", "bare_jid", "authenticated", "bound",
        "priority", "presence", "available", "interested", "directed", "stream_id",
        "lang", "sasl", "auth_failures", "stream_version", "secure_tls", "tls_info",
    )

    def __init__(self, host: Host | None, conn: Connection) -> None:
        super().__init__(host)
        self.conn = conn
        self.username: str | None = None
        self.resource: str | None = None
        self.full_jid: str | None = None
        self.bare_jid: str | None = None
        self.authenticated = False
        self.bound = False
        self.priority = 0
        self.presence: Element | None = None  # last available presence broadcast
        self.available = False
        self.interested = False  # fetched the roster (RFC 6121 §2.1.6)
        self.directed: set[str] = set()  # JIDs that got directed presence (§4.6)
        self.stream_id = ""
        self.lang = "en"
        self.sasl: Any = None  # the SASL mechanism in progress
        self.auth_failures = 0
        self.stream_version = "1.0"
        self.secure_tls = False
        self.tls_info: dict[str, Any] = {}

    @property
    def secure(self) -> bool:
        return self.conn.secure

    def send(self, stanza: Element) -> None:
        if self.closed:
            return
        self.conn.write(stanza.to_xml().encode())

    def send_raw(self, data: str) -> None:
        """Write a non-stanza stream element (SASL, STARTTLS) already serialised."""
        if not self.closed:
            self.conn.write(data.encode())

    def send_element(self, element: Element) -> None:
        """Write a stream-level element (SASL, STARTTLS, SM) in the stream's namespace."""
        if not self.closed:
            self.conn.write(element.to_xml(None).encode())

    # -- negotiation steps a module may ask for -------------------------------------------
    @property
    def peer(self) -> str:
        """The peer's IP address (for throttles and logs)."""
        return self.conn.peer

    async def start_tls(self) -> None:
        """STARTTLS (RFC 6120 §5.4.3.3): upgrade the transport, then expect a new stream."""
        await self.conn.start_tls()

    def restart_stream(self) -> None:
        """After SASL success (RFC 6120 §6.4.6): a fresh parser, a fresh header expected."""
        self.conn.restart_stream()

    def set_authenticated(self, username: str) -> None:
        """Record a successful authentication as ``username`` (RFC 6120 §6.4.6)."""
        self.username = username
        self.authenticated = True
        self.conn.authenticated()

    def bind(self, resource: str) -> None:
        """Bind ``resource`` (RFC 6120 §7): the session becomes routable as its full JID.

        The caller has settled conflicts with existing resources (the bind module's policy).
        """
        assert self.host is not None and self.username is not None
        self.resource = resource
        self.bare_jid = f"{self.username}@{self.host.name}"
        self.full_jid = f"{self.bare_jid}/{resource}"
        self.bound = True
        self.host.add_session(self)

    def close(self, error: StreamError | None = None) -> None:
        if self.closed:
            return
        self.closed = True
        self.conn.close_stream(error)

    def __repr__(self) -> str:
        return f"<C2SSession {self.id} {self.full_jid or self.conn.peer}>"
