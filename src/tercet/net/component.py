"""External component connections (XEP-0114): bytes <-> stream events <-> the router.

The protocol is short. The component opens a stream in ``jabber:component:accept`` whose
``to`` is its own domain; we answer with a stream id; it sends ``<handshake>`` with the hex
SHA-1 of that id and the shared secret. Whether that proves the secret is for the
component's host to say: the handshake goes to the ``component-handshake`` event on that
host (module ``component`` answers it, or nobody, and the domain is unknown here). Once
accepted, the component's stanzas are routed with its session as the origin, from any
address at its domain; before, nothing is routed.

The framing, output batching, bounded send buffer and per-session ordering (reading pauses
while a handler awaits) are those of client streams (:class:`C2SConnection`); this file
changes what differs: the header, the handshake, and the addressing of routed stanzas.
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Any

from tercet.core.config import normalize_host
from tercet.core.session import ComponentSession
from tercet.core.streamevents import ComponentHandshake
from tercet.net.c2s import STANZA_NAMES, C2SConnection
from tercet.protocol.component import NS_COMPONENT, from_component_namespace
from tercet.protocol.errors import StreamError
from tercet.protocol.jid import InvalidJID
from tercet.protocol.stanza import NS_CLIENT, Element
from tercet.protocol.xmlstream import StreamOpened, StreamReader, stream_header

if TYPE_CHECKING:
    from tercet.core.host import Host
    from tercet.core.server import Server
    from tercet.net.listeners import Listener, NetManager

log = logging.getLogger("tercet.component")

HANDSHAKE_EVENT = "component-handshake"
STANZA_NAMESPACES = frozenset((NS_COMPONENT, NS_CLIENT))


class ComponentConnection(C2SConnection):
    """One external component's TCP connection (the listener's sockets are loopback by
    default: the secret and the stanzas travel in clear, XEP-0114 §5)."""

    __slots__ = ("component",)
    _error_ns = NS_COMPONENT
    stream_type = "component"

    def __init__(self, server: Server, listener: Listener, net: NetManager) -> None:
        super().__init__(server, listener, net)
        self._secure = False  # no TLS on component streams, even on a direct-TLS listener
        self._reader = StreamReader(listener.limits.stanza_size, content_ns=NS_COMPONENT)
        self.component = ComponentSession(None, self)
        self.component.sent_counts = server.stats.counts_for(self.stream_type).sent
        # The C2S machinery logs and closes through ``session``.
        self.session = self.component

    # -- transport for the session ------------------------------------------------------
    def close_stream(self, error: StreamError | None = None) -> None:
        if error is not None and not self._closing and self.transport is not None:
            # Once per connection: the peer and why it is refused or cut off.
            self.session.log.info("closing the stream of %s (%s): %s", self._peer,
                                  self._domain(), error)
        super().close_stream(error)

    def authenticated(self) -> None:
        """The handshake proved the secret: acknowledge it (XEP-0114 §3)."""
        super().authenticated()
        self.write(b"<handshake/>")

    def _session_closed(self, lost: bool) -> None:
        if self.component.authenticated:
            self.session.log.info("component %s disconnected", self._domain())

    def _stream_opened(self, event: StreamOpened) -> None:
        to = event.attrs.get("to") or ""
        try:
            domain = normalize_host(to)
        except ValueError:
            self._send_header(None)
            raise StreamError("improper-addressing" if not to else "host-unknown",
                              "the stream header must name the component's domain") from None
        self._send_header(domain)
        host = self.server.hosts.get(domain)
        if host is None or not host.events.has_handlers(HANDSHAKE_EVENT):
            raise StreamError("host-unknown", "no external component of that name here")
        self.session.host = host

    def _send_header(self, domain: str | None) -> None:
        # XEP-0114 streams carry no version: there are no stream features.
        self.session.stream_id = secrets.token_hex(16)
        self._queue(stream_header(content_ns=NS_COMPONENT, from_=domain,
                                  id_=self.session.stream_id, version="").encode())
        self._header_sent = True

    def _handle_element(self, el: Element) -> Any:
        session = self.component
        host = session.host
        if session.authenticated and host is not None:
            # COMPAT: some libraries put jabber:client on the stanzas they send; Prosody
            # accepts them too.
            if el.name in STANZA_NAMES and el.xmlns in STANZA_NAMESPACES:
                self._received[el.name] += 1
                return self._route_from(host, el)
            raise StreamError("unsupported-stanza-type")
        if host is None or el.name != "handshake" or el.xmlns != NS_COMPONENT \
                or any(True for _ in el.elements()):
            raise StreamError("not-authorized", "complete the handshake first")
        result = host.events.fire(HANDSHAKE_EVENT, ComponentHandshake(session, el.text))
        if result is None:
            raise StreamError("not-authorized")
        return result

    def _route_from(self, host: Host, el: Element) -> Any:
        to, from_ = el.attrs.get("to"), el.attrs.get("from")
        if not to or not from_:
            # The component speaks for many addresses: it must say which, and to whom.
            raise StreamError("improper-addressing", "stanzas need 'to' and 'from'")
        try:
            sender = self.server.parse_jid(from_)
        except InvalidJID:
            raise StreamError("invalid-from", "'from' is not a valid address") from None
        if sender.domain != host.name:
            raise StreamError("invalid-from", f"'from' must be an address at {host.name}")
        el.attrs["from"] = str(sender)
        return self.server.router.route(self.session, from_component_namespace(el))

    def _domain(self) -> str:
        return self.session.host.name if self.session.host is not None else "no domain yet"

    def _auth_timeout(self) -> None:
        self._timeout = None
        if not self.component.authenticated:
            self.close_stream(StreamError("connection-timeout", "no handshake in time"))
