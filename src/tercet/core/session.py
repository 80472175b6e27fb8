"""Typed sessions. A session is what a stanza comes from and what it is delivered to.

The network layer owns the connection; the session only knows a small ``Connection``
protocol (write bytes, close, start TLS, peer address), so tests and other transports
(BOSH, WebSocket, cluster peers) can provide their own.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from mypy_extensions import mypyc_attr

from tercet.protocol import dialback
from tercet.protocol.errors import StreamError
from tercet.protocol.stanza import Element

if TYPE_CHECKING:
    from tercet.core.host import Host

_ids = itertools.count(1)

#: The logger of each session kind ("c2s", "s2s", "component", "host"), for Session.log:
#: logging.getLogger takes the logging module's lock on every call.
_KIND_LOGGERS: dict[str, logging.Logger] = {}

#: ``C2SSession.directed`` while no directed presence was sent: one for every session.
NO_DIRECTED: frozenset[str] = frozenset()


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
    def adopt(self, session: C2SSession) -> None:
        """Carry ``session`` from now on (stream management resumption, XEP-0198 §5)."""
        ...
    def release(self) -> None:
        """The session moved to another connection: drop it and close the transport
        without ending the session."""
        ...


class _Detached:
    """The connection of a session that has none (XEP-0198 hibernation): writes go
    nowhere, and closing the session calls ``on_close`` so its owner can end it."""

    __slots__ = ("_on_close", "peer", "secure")

    def __init__(self, peer: str, secure: bool, on_close: Callable[[], None]) -> None:
        self.peer = peer
        self.secure = secure
        self._on_close = on_close

    def write(self, data: bytes) -> None:
        return None

    def close_stream(self, error: StreamError | None = None) -> None:
        self._on_close()

    async def start_tls(self) -> None:
        return None

    def restart_stream(self) -> None:
        return None

    def authenticated(self) -> None:
        return None

    def adopt(self, session: C2SSession) -> None:
        return None

    def release(self) -> None:
        return None


class ComponentTransport(Protocol):
    """What an external component's session needs from its transport (XEP-0114)."""

    def write(self, data: bytes) -> None: ...
    def close_stream(self, error: StreamError | None = None) -> None: ...
    @property
    def peer(self) -> str: ...
    def authenticated(self) -> None:
        """The handshake succeeded: acknowledge it to the component (XEP-0114 §3) and stop
        the authentication timeout and the unauthenticated count."""
        ...


class SessionLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger adapter that starts every message with the session id."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f"{self.extra['session']}: {msg}", kwargs  # type: ignore[index]


@mypyc_attr(allow_interpreted_subclasses=True)
class Session:
    """Base of every session kind; ``kind`` names it for logs and event names."""

    kind = "local"
    __slots__ = ("id", "host", "closed", "data", "sent_counts")

    def __init__(self, host: Host | None) -> None:
        self.id = f"{self.kind}{next(_ids)}"
        self.host = host
        self.closed = False
        # Per-session scratch space for modules (keyed by module name), so modules keep
        # their state on the session without monkey-patching attributes onto it.
        self.data: dict[str, Any] = {}
        # Stanzas written, by name: the ``sent`` counts of the stream type (core/stats.py),
        # given by the connection; None for sessions no connection carries.
        self.sent_counts: dict[str, int] | None = None

    def _count_sent(self, name: str) -> None:
        counts = self.sent_counts
        if counts is not None and name in counts:
            counts[name] += 1

    @property
    def log(self) -> SessionLog:
        """A logger for this session (``tercet.<kind>``, messages prefixed with the id).

        Made when used rather than kept: a ``logging.getLogger`` per session would stay in
        the logging module's registry forever, growing with every connection ever made.
        """
        logger = _KIND_LOGGERS.get(self.kind)
        if logger is None:
            logger = _KIND_LOGGERS[self.kind] = logging.getLogger(f"tercet.{self.kind}")
        return SessionLog(logger, {"session": self.id})

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


class ComponentSession(Session):
    """An external component's stream (XEP-0114): a process that serves a component's
    domain. ``host`` is that component's host, set from the stream header; the component
    may send from any address at its domain once ``authenticated`` (the handshake proved
    the shared secret), and nothing is routed before."""

    kind = "component"
    __slots__ = ("authenticated", "conn", "stream_id")

    def __init__(self, host: Host | None, conn: ComponentTransport) -> None:
        super().__init__(host)
        self.conn = conn
        self.stream_id = ""  # the id of our stream header, input of the handshake
        self.authenticated = False

    @property
    def peer(self) -> str:
        """The component's IP address (for logs)."""
        return self.conn.peer

    def send(self, stanza: Element) -> None:
        # Serialised against jabber:client: the stanza's namespace is left implicit, so on
        # the wire it is the stream's default, jabber:component:accept.
        if not self.closed:
            self._count_sent(stanza.name)
            self.conn.write(stanza.to_xml().encode())

    def set_authenticated(self) -> None:
        """Accept the component: its stanzas are routed from now on, and the connection
        acknowledges the handshake (XEP-0114 §3)."""
        self.authenticated = True
        self.conn.authenticated()

    def close(self, error: StreamError | None = None) -> None:
        if self.closed:
            return
        self.closed = True
        self.conn.close_stream(error)

    def __repr__(self) -> str:
        name = self.host.name if self.host is not None else "?"
        return f"<ComponentSession {self.id} {name} {self.conn.peer}>"


SendFilter = Callable[[Element], "Element | None"]


class C2SSession(Session):
    """A client session (RFC 6120). Fields are set as negotiation advances."""

    kind = "c2s"
    __slots__ = (
        "conn", "username", "resource", "full_jid", "bare_jid", "authenticated", "bound",
        "priority", "presence", "available", "interested", "directed", "stream_id",
        "lang", "sasl", "auth_failures", "stream_version", "secure_tls", "tls_info",
        "_filters", "stanzas_in", "framed", "transport", "sasl_mechanism", "role",
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
        # The last available presence, without "from"; shared by sessions whose presences
        # are the same (modules/presence.py): never changed in place.
        self.presence: Element | None = None
        self.available = False
        self.interested = False  # fetched the roster (RFC 6121 §2.1.6)
        # JIDs that got directed presence (§4.6): the presence module's to change. One
        # shared empty frozenset until the first (an empty set is 216 B per session).
        self.directed: set[str] | frozenset[str] = NO_DIRECTED
        self.stream_id = ""
        self.lang = "en"
        self.sasl: Any = None  # the SASL mechanism in progress
        # The name of the mechanism of the latest authentication attempt, set by the SASL
        # modules for one they offer (None before, or for a mechanism not offered), so
        # authentication-success/-failure handlers can tell it (metrics) (1.2).
        self.sasl_mechanism: str | None = None
        self.auth_failures = 0
        self.stream_version = "1.0"
        self.secure_tls = False
        self.tls_info: dict[str, Any] = {}
        # (priority, filter) pairs, highest priority first; None until a module adds one,
        # so sessions nobody filters pay one attribute test per stanza.
        self._filters: list[tuple[float, SendFilter]] | None = None
        # Stanzas received from the client, counted by the connection (XEP-0198 §4).
        self.stanzas_in = 0
        # The stream is message-framed (WebSocket, RFC 7395): no STARTTLS on it (§3.8:
        # TLS belongs to the WebSocket's own connection) (1.2).
        self.framed = False
        # What carries the stream: "tcp", or the module that frames it ("websocket",
        # "bosh") (1.2).
        self.transport = "tcp"
        # The account's role as read at login (docs/roles.md); None before authentication.
        # A role changed later applies from the account's next login (1.3).
        self.role: str | None = None

    @property
    def secure(self) -> bool:
        return self.conn.secure

    @property
    def detached(self) -> bool:
        """Whether the session has no connection (hibernated, XEP-0198 §5)."""
        return isinstance(self.conn, _Detached)

    def send(self, stanza: Element) -> None:
        """Deliver ``stanza`` to the client, through the send filters if any."""
        if self.closed:
            return
        if self._filters is not None:
            self._send_through(stanza, 0)
            return
        counts = self.sent_counts
        if counts is not None and stanza.name in counts:
            counts[stanza.name] += 1
        self.conn.write(stanza.to_xml().encode())

    # -- send filters (1.0): modules that hold back or record what goes out ------------
    def add_send_filter(self, fn: SendFilter, priority: float = 0) -> None:
        """Run ``fn(stanza)`` on every stanza sent to this client, highest priority
        first; a filter returns the stanza (possibly changed) to pass it on, or None to
        take it (hold it back, e.g. client state indication, XEP-0352). Stream
        management (XEP-0198) counts what leaves, so it filters last (lowest priority)."""
        filters = self._filters or []
        filters.append((priority, fn))
        filters.sort(key=lambda pair: -pair[0])
        self._filters = filters

    def remove_send_filter(self, fn: SendFilter) -> None:
        if self._filters is not None:
            self._filters = [p for p in self._filters if p[1] is not fn] or None

    def send_after(self, fn: SendFilter, stanza: Element) -> None:
        """Send ``stanza`` through the filters that come after ``fn`` only: how a filter
        releases what it held back (the later filters still see it)."""
        if self.closed:
            return
        filters = self._filters or []
        index = next((i + 1 for i, pair in enumerate(filters) if pair[1] is fn), 0)
        self._send_through(stanza, index)

    def _send_through(self, stanza: Element, start: int) -> None:
        for _priority, fn in (self._filters or [])[start:]:
            passed = fn(stanza)
            if passed is None:
                return
            stanza = passed
        self._count_sent(stanza.name)
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

    # -- stream management (XEP-0198): a session outliving its connection --------------
    def detach(self, on_close: Callable[[], None]) -> None:
        """Keep this session without a connection (hibernation, XEP-0198 §5): it stays
        bound and open, send filters still run, writes go nowhere. Closing it then calls
        ``on_close`` (the owner ends it with ``close_session``)."""
        previous = self.conn
        self.conn = _Detached(previous.peer, previous.secure, on_close)
        self.closed = False
        previous.release()

    def attach(self, conn: Connection) -> None:
        """Move this session onto ``conn`` (resumption, XEP-0198 §5), which adopts it;
        a connection it still had is released first."""
        previous = self.conn
        self.conn = conn
        self.closed = False
        previous.release()
        conn.adopt(self)

    def close(self, error: StreamError | None = None) -> None:
        if self.closed:
            return
        self.closed = True
        self.conn.close_stream(error)

    def __repr__(self) -> str:
        return f"<C2SSession {self.id} {self.full_jid or self.conn.peer}>"


class ServerSession(Session):
    """A server-to-server stream (RFC 6120), inbound or outbound (``direction``).

    An inbound stream carries stanzas from the remote domains it authenticated
    (``remote_domains``) to our hosts; an outbound one carries ours from ``local_domain`` to
    ``remote_domain`` once ``authenticated``. ``negotiated`` is set when an outbound stream
    has received its final features (after STARTTLS), so dialback verification requests may
    use it; ``ready`` when it authenticated (or closed: check ``closed``).
    """

    kind = "s2s"
    __slots__ = ("conn", "direction", "local_domain", "remote_domain", "remote_domains",
                 "stream_id", "remote_stream_id", "authenticated", "auth_method",
                 "negotiated", "ready", "tls_info", "reply_route", "cert_status", "bidi",
                 "pairs", "last_activity", "on_authenticated")

    def __init__(self, conn: Connection, direction: str, local_domain: str | None = None,
                 remote_domain: str | None = None) -> None:
        super().__init__(None)
        self.conn = conn
        self.direction = direction  # "in" or "out"
        self.local_domain = local_domain
        self.remote_domain = remote_domain
        self.remote_domains: set[str] = set()  # inbound: domains authenticated on it
        self.stream_id = ""  # the id we sent (inbound) ...
        self.remote_stream_id = ""  # ... and the one the peer sent (outbound)
        self.authenticated = False
        self.auth_method: str | None = None  # "dialback" / "EXTERNAL"
        self.negotiated = asyncio.Event()
        self.ready = asyncio.Event()
        self.tls_info: dict[str, Any] = {}
        # The peer's certificate as checked for its domain (RFC 6125): "valid", or why not
        # ("untrusted", "name-mismatch", "expired", "none" without a certificate); None
        # before TLS.
        self.cert_status: str | None = None
        # Inbound streams carry nothing back (RFC 6120 §2.1): what handlers "send" to an
        # inbound session (replies, errors) is routed, and leaves on an outbound stream
        # (which may be this one, made bidirectional: see ``transmit``).
        self.reply_route: Callable[[Element], None] | None = None
        # XEP-0288: the initiating side asked for a bidirectional stream (§2.2).
        self.bidi = False
        # The (our domain, their domain) pairs authenticated on this stream.
        self.pairs: set[tuple[str, str]] = set()
        # Server clock of the last stanza or stream element in either direction (the idle
        # timeout, ``s2s_timeout``); set by whoever has the clock.
        self.last_activity = 0.0
        # Called with the pair once a pair authenticates (the connection fires an event).
        self.on_authenticated: Callable[[str, str], None] | None = None

    @property
    def secure(self) -> bool:
        return self.conn.secure

    @property
    def peer(self) -> str:
        return self.conn.peer

    def send(self, stanza: Element) -> None:
        if self.direction == "in":
            if self.reply_route is not None:
                self.reply_route(stanza)
            return
        self.transmit(stanza)

    def transmit(self, stanza: Element) -> None:
        """Write ``stanza`` on this stream, whichever side opened it: an outbound stream,
        or an inbound one made bidirectional (XEP-0288) that the s2s links chose for it."""
        # Serialised against jabber:client: the stanza's own namespace is left implicit,
        # so on the wire it is the stream's default, jabber:server (RFC 6120 §4.8.3).
        if not self.closed:
            self._count_sent(stanza.name)
            self.conn.write(stanza.to_xml().encode())

    def carries(self, local: str, remote: str) -> bool:
        """Whether stanzas from ``local`` to ``remote`` may be written on this stream:
        an authenticated outbound stream for its pair, or a bidirectional inbound one
        where the pair authenticated (XEP-0288 §2.2: only for those)."""
        if self.closed:
            return False
        if self.direction == "out":
            return self.authenticated and (local, remote) == (
                self.local_domain, self.remote_domain)
        return self.bidi and (local, remote) in self.pairs

    def send_element(self, element: Element) -> None:
        """Write a stream-level element (STARTTLS, dialback) in its own namespace;
        dialback elements with the ``db`` prefix peers expect (protocol.dialback)."""
        if not self.closed:
            text = (dialback.to_wire(element) if element.xmlns == dialback.NS_DIALBACK
                    else element.to_xml(None))
            self.conn.write(text.encode())

    async def start_tls(self) -> None:
        """STARTTLS in this session's direction (RFC 6120 §5.4.3.3)."""
        await self.conn.start_tls()

    def restart_stream(self) -> None:
        """After SASL success (RFC 6120 §6.4.6, XEP-0178): a fresh parser; the
        initiating side also sends a new stream header."""
        self.conn.restart_stream()

    def set_authenticated(self, remote: str, method: str, local: str | None = None
                          ) -> None:
        """Record that ``remote`` authenticated on this stream (RFC 6120 §4.9.3.9: until
        then, nothing but negotiation is accepted), to talk with our ``local`` domain
        (default: the stream's; dialback names its own pair, XEP-0220 §2.1)."""
        self.auth_method = method
        local = local or self.local_domain
        if local is not None:
            self.pairs.add((local, remote))
        if self.direction == "in":
            self.remote_domains.add(remote)
        else:
            self.authenticated = True
            self.ready.set()
        self.conn.authenticated()
        if local is not None and self.on_authenticated is not None:
            self.on_authenticated(local, remote)

    def close(self, error: StreamError | None = None) -> None:
        if self.closed:
            return
        self.closed = True
        self.negotiated.set()
        self.ready.set()
        self.conn.close_stream(error)

    def __repr__(self) -> str:
        return (f"<ServerSession {self.id} {self.direction} {self.local_domain}"
                f"{'->' if self.direction == 'out' else '<-'}{self.remote_domain}>")


class ServerStreamEvent:
    """Payload of the s2s stream events on the global bus (``s2s-features``,
    ``s2s-features-out``, ``s2s/<ns>:<name>``, ``s2s-authenticate``): the session and
    the element concerned (the features being offered or received, or the element)."""

    __slots__ = ("element", "session")

    def __init__(self, session: ServerSession, element: Element) -> None:
        self.session = session
        self.element = element

    def __repr__(self) -> str:
        return f"<ServerStreamEvent {self.session.id} {self.element.name}>"
