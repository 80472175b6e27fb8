"""External component connections (XEP-0114): bytes <-> stream events <-> the router.

The protocol is short. The component opens a stream in ``jabber:component:accept`` whose
``to`` is its own domain; we answer with a stream id; it sends ``<handshake>`` with the hex
SHA-1 of that id and the shared secret. Whether that proves the secret is for the
component's host to say: the handshake goes to the ``component-handshake`` event on that
host (module ``component`` answers it, or nobody, and the domain is unknown here). Once
accepted, the component's stanzas are routed with its session as the origin, from any
address at its domain; before, nothing is routed.

As in net/c2s.py: output written during one loop iteration leaves in one write, bounded by
the listener's send buffer, and while a handler awaits, reading stops, so the component's
stanzas keep their order without being buffered without bound.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import deque
from typing import TYPE_CHECKING, Any

from tercet.core.config import normalize_host
from tercet.core.events import is_awaitable
from tercet.core.session import ComponentSession
from tercet.core.streamevents import ComponentHandshake
from tercet.protocol.component import NS_COMPONENT, from_component_namespace
from tercet.protocol.errors import StreamError
from tercet.protocol.jid import InvalidJID
from tercet.protocol.stanza import NS_CLIENT, Element
from tercet.protocol.xmlstream import (
    STREAM_CLOSE,
    StanzaReceived,
    StreamClosed,
    StreamEvent,
    StreamOpened,
    StreamReader,
    stream_element_xml,
    stream_header,
)

if TYPE_CHECKING:
    from tercet.core.host import Host
    from tercet.core.server import Server
    from tercet.net.listeners import Listener, NetManager

log = logging.getLogger("tercet.component")

HANDSHAKE_EVENT = "component-handshake"
STANZA_NAMES = frozenset(("message", "presence", "iq"))
STANZA_NAMESPACES = frozenset((NS_COMPONENT, NS_CLIENT))


class ComponentConnection(asyncio.Protocol):
    """One external component's TCP connection (the listener's sockets are loopback by
    default: the secret and the stanzas travel in clear, XEP-0114 §5)."""

    __slots__ = ("_backlog", "_busy", "_closing", "_counted_unauth", "_header_sent", "_out",
                 "_out_size", "_peer", "_reader", "_send_limit", "_sent_size", "_timeout",
                 "listener", "net", "server", "session", "transport")

    def __init__(self, server: Server, listener: Listener, net: NetManager) -> None:
        self.server = server
        self.listener = listener
        self.net = net
        self.transport: asyncio.Transport | None = None
        self.session = ComponentSession(None, self)
        self._peer = "?"
        self._reader = StreamReader(listener.limits.stanza_size, content_ns=NS_COMPONENT)
        self._backlog: deque[StreamEvent] | None = None  # parsed, waiting for a handler
        self._busy = False
        self._header_sent = False
        self._closing = False
        self._counted_unauth = False
        self._timeout: asyncio.TimerHandle | None = None
        self._send_limit = listener.limits.send_buffer
        self._out: list[bytes] | None = None  # written during this loop iteration
        self._out_size = 0
        self._sent_size = 0  # the transport's own buffer at the last flush

    # -- transport for the session ------------------------------------------------------
    @property
    def peer(self) -> str:
        return self._peer

    def write(self, data: bytes) -> None:
        """Queue bytes for the component; they leave when this loop iteration ends."""
        if self.transport is None or self._closing:
            return
        self._queue(data)
        if self._out_size + self._sent_size > self._send_limit:
            self._overflow()

    def _queue(self, data: bytes) -> None:
        if self._out is None:
            self._out = [data]
            self._out_size = len(data)
            if self.transport is not None:
                self._sent_size = self.transport.get_write_buffer_size()
            asyncio.get_running_loop().call_soon(self._flush)
        else:
            self._out.append(data)
            self._out_size += len(data)

    def _flush(self) -> None:
        out, self._out = self._out, None
        transport = self.transport
        if not out or transport is None or self._closing:
            return
        transport.write(b"".join(out))
        self._out_size = 0
        self._sent_size = transport.get_write_buffer_size()
        if self._sent_size > self._send_limit:
            self._overflow()

    def _overflow(self) -> None:
        self._out = None  # the component is not reading: drop what it would not read
        self.close_stream(StreamError("policy-violation", "too much unread data"))

    def close_stream(self, error: StreamError | None = None) -> None:
        if self._closing or self.transport is None:
            return
        if not self._header_sent:
            self._send_header(None)
        if error is not None:
            # Once per connection: the peer and why it is refused or cut off.
            self.session.log.info("closing the stream of %s (%s): %s", self._peer,
                                  self._domain(), error)
            self._queue(stream_element_xml(error.to_element(), NS_COMPONENT).encode())
        self._queue(STREAM_CLOSE.encode())
        self._flush()
        self._closing = True
        self.session.closed = True
        self.transport.close()

    def authenticated(self) -> None:
        """The handshake proved the secret: acknowledge it (XEP-0114 §3)."""
        if self._timeout is not None:
            self._timeout.cancel()
            self._timeout = None
        self._release_unauth()
        self.write(b"<handshake/>")

    # -- asyncio.Protocol ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop look-alikes
        peer = transport.get_extra_info("peername")
        self._peer = peer[0] if isinstance(peer, tuple) else str(peer)
        self.session.log.debug("component connection from %s", self._peer)
        self.net.connections.add(self)
        limits = self.listener.limits
        if not self.net.admit_unauthenticated(self._peer, limits.max_unauthenticated_per_ip):
            self.close_stream(StreamError("policy-violation", "too many connections"))
            return
        self._counted_unauth = True
        self._timeout = asyncio.get_running_loop().call_later(limits.auth_timeout,
                                                              self._auth_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self.net.connections.discard(self)
        self._closing = True
        self._out = None
        self.session.closed = True
        if self._timeout is not None:
            self._timeout.cancel()
        self._release_unauth()
        self.transport = None
        if self.session.authenticated:
            self.session.log.info("component %s disconnected", self._domain())

    def data_received(self, data: bytes) -> None:
        try:
            events = self._reader.feed(data)
        except StreamError as err:
            self.close_stream(err)
            return
        if events:
            if self._backlog is None:
                self._backlog = deque(events)
            else:
                self._backlog.extend(events)
            if not self._busy:
                self._drain()

    def eof_received(self) -> bool | None:
        return None

    # -- processing in order ------------------------------------------------------------
    def _drain(self) -> None:
        backlog = self._backlog
        if backlog is None:
            return
        while backlog and not self._busy and not self._closing:
            event = backlog.popleft()
            try:
                result = self._handle(event)
            except StreamError as err:
                self.close_stream(err)
                return
            except Exception:
                self.session.log.exception("error while processing a component stanza")
                self.close_stream(StreamError("internal-server-error", remote=False))
                return
            if is_awaitable(result):
                self._busy = True
                if self.transport is not None:
                    self.transport.pause_reading()
                asyncio.ensure_future(self._wait(result))
        if not backlog and self._backlog is backlog:
            self._backlog = None

    async def _wait(self, pending: Any) -> None:
        try:
            await pending
        except StreamError as err:
            self.close_stream(err)
        except Exception:
            self.session.log.exception("error in an async handler")
        self._busy = False
        if self._closing or self.transport is None:
            return
        self._drain()
        if not self._busy and self.transport is not None and not self._closing:
            self.transport.resume_reading()

    def _handle(self, event: StreamEvent) -> Any:
        if type(event) is StanzaReceived:
            return self._handle_element(event.element)
        if isinstance(event, StreamOpened):
            self._stream_opened(event)
        elif isinstance(event, StreamClosed):
            self.close_stream(None)
        return None

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
        session = self.session
        host = session.host
        if session.authenticated and host is not None:
            # COMPAT: some libraries put jabber:client on the stanzas they send; Prosody
            # accepts them too.
            if el.name in STANZA_NAMES and el.xmlns in STANZA_NAMESPACES:
                return self._route(host, el)
            raise StreamError("unsupported-stanza-type")
        if host is None or el.name != "handshake" or el.xmlns != NS_COMPONENT \
                or any(True for _ in el.elements()):
            raise StreamError("not-authorized", "complete the handshake first")
        result = host.events.fire(HANDSHAKE_EVENT, ComponentHandshake(session, el.text))
        if result is None:
            raise StreamError("not-authorized")
        return result

    def _route(self, host: Host, el: Element) -> Any:
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
        if not self.session.authenticated:
            self.close_stream(StreamError("connection-timeout", "no handshake in time"))

    def _release_unauth(self) -> None:
        if self._counted_unauth:
            self._counted_unauth = False
            self.net.release_unauthenticated(self._peer)
