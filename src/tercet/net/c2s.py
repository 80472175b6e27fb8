"""Client connections: bytes <-> stream events <-> the session's host events.

Negotiation features (STARTTLS, SASL, bind) are modules: this file only frames the stream,
asks modules for ``stream-features``, hands non-stanza elements to ``stream/<ns>:<name>``
handlers and stanzas to the router, and keeps per-session order: while a handler awaits,
reading stops (``pause_reading``), so a slow handler never makes us buffer without bound.

Output is batched: everything written to one connection during one event-loop iteration
leaves in one ``transport.write`` (one system call) when the iteration ends; one write per
stanza was the largest single cost of a delivery (bench/README.md).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import ssl
from collections import deque
from typing import TYPE_CHECKING, Any, ClassVar

from mypy_extensions import mypyc_attr

from tercet.core.events import is_awaitable
from tercet.core.network import ReadLimiter
from tercet.core.session import C2SSession, ComponentSession, ServerSession
from tercet.core.streamevents import StreamElementEvent, StreamFeaturesEvent
from tercet.net.tlslayer import HANDSHAKE_TIMEOUT, TLSLayer
from tercet.protocol.errors import StreamError
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
    from tercet.core.server import Server
    from tercet.net.listeners import Listener, NetManager

log = logging.getLogger("tercet.c2s")

STANZA_NAMES = frozenset(("message", "presence", "iq"))
#: Bytes held beyond the read budget while reading is paused: what one read returns
#: (asyncio reads at most 256 KiB), with room for a TLS record in flight.
MAX_HELD = 512 * 1024


class OutputBatch:
    """The connections written to in this loop iteration, each flushed once when it ends
    by one loop callback for all of them (one per connection was a handle and a bound
    method each for the garbage collector to track). Compiled with the connection: it
    runs once per delivery (bench/README.md, "The output batch, compiled")."""

    __slots__ = ("_dirty", "_loop")

    def __init__(self) -> None:
        self._dirty: list[C2SConnection] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(self, conn: C2SConnection) -> None:
        """Flush ``conn`` when this iteration ends (once however often it is added)."""
        dirty = self._dirty
        dirty.append(conn)
        if len(dirty) == 1:
            loop = self._loop
            if loop is None or loop.is_closed():
                # Found once, not per call: Python 3.11's get_running_loop() makes a
                # getpid() system call every time.
                loop = self._loop = asyncio.get_running_loop()
            loop.call_soon(self.flush_all)

    def flush_all(self) -> None:
        # Writes made while flushing (a close after an overflow) start a fresh batch.
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            conn.flush()


@mypyc_attr(allow_interpreted_subclasses=True)
class C2SConnection(asyncio.Protocol):
    """One client TCP connection (plain, STARTTLS-upgraded or direct TLS)."""

    # Class variables the component and s2s subclasses override: ClassVar, so compiled
    # code looks them up on the instance's class (a plain class attribute becomes an
    # instance default there, and the subclasses' values would be ignored).
    #: The content namespace a closing ``<stream:error/>`` is serialised against.
    _error_ns: ClassVar[str] = NS_CLIENT

    #: The stream type stanzas are counted under (core/stats.py).
    stream_type: ClassVar[str] = "c2s"

    #: The session this stream carries: a client's here; the component and
    #: server-to-server subclasses put theirs in the same place. Compiled code checks an
    #: attribute's type on assignment, so it names all three; the client-only paths take
    #: it through ``_client``.
    session: C2SSession | ComponentSession | ServerSession

    # One of these per connected client: slots keep idle sessions small.
    __slots__ = ("_active", "_asleep", "_backlog", "_busy", "_closing", "_counted_unauth",
                 "_header_sent", "_limiter", "_out", "_out_size", "_peer", "_reader",
                 "_received", "_secure", "_send_limit", "_sent_size", "_stream_lang",
                 "_throttled", "_timeout", "listener", "net", "server", "session", "transport")

    def __init__(self, server: Server, listener: Listener, net: NetManager) -> None:
        self.server = server
        self.listener = listener
        self.net = net
        self.transport: asyncio.Transport | None = None
        counts = server.stats.counts_for(self.stream_type)
        # Stanzas received, by name (one increment per stanza; core/stats.py).
        self._received = counts.received
        self.session = C2SSession(None, self)
        self.session.sent_counts = counts.sent
        self._peer = "?"
        self._secure = listener.direct_tls
        self._reader = StreamReader(listener.limits.stanza_size)
        self._stream_lang: str | None = None
        # Events parsed but not handled yet (a handler is awaiting); made when needed.
        self._backlog: deque[StreamEvent] | None = None
        self._busy = False
        # Read anything since the last idle sweep (NetManager.sweep_idle)?
        self._active = True
        # The sweep dropped the parser and took this stream out of ``net.awake``.
        self._asleep = False
        self._header_sent = False
        self._closing = False
        self._counted_unauth = False
        self._timeout: asyncio.TimerHandle | None = None
        # The read budget (the traffic policy's), and the bytes read beyond it, held while
        # reading waits for it to refill (None: not waiting).
        self._limiter: ReadLimiter | None = None
        self._throttled: bytes | None = None
        self._send_limit = listener.limits.send_buffer
        # Output written during this loop iteration, sent by flush (None: nothing). A
        # bytearray, which the garbage collector does not track: a list per connection
        # per iteration drove collections (bench/README.md, "Hot path over TLS").
        self._out: bytearray | None = None
        self._out_size = 0
        # The transport's own buffer at the last flush. It only shrinks until the next
        # flush, so pending + this bounds what the peer has not read yet.
        self._sent_size = 0

    # -- Connection protocol for the session ---------------------------------------------
    @property
    def peer(self) -> str:
        return self._peer

    @property
    def secure(self) -> bool:
        return self._secure

    def write(self, data: bytes) -> None:
        """Queue bytes for the peer; they leave when this loop iteration ends."""
        if self.transport is None or self._closing:
            return
        self._queue(data)
        if self._out_size + self._sent_size > self._send_limit:
            # _sent_size is the transport's buffer at the last flush: it may have drained.
            if self.transport is not None:
                self._sent_size = self.transport.get_write_buffer_size()
            if self._out_size + self._sent_size > self._send_limit:
                self._overflow()

    def _queue(self, data: bytes) -> None:
        out = self._out
        if out is None:
            self._out = bytearray(data)
            self._out_size = len(data)
            self.net.output.add(self)
        else:
            out += data
            self._out_size += len(data)

    def flush(self) -> None:
        """Hand everything queued in this iteration to the transport in one write
        (called once per iteration for all connections: OutputBatch)."""
        out, self._out = self._out, None
        transport = self.transport
        if not out or transport is None or self._closing:
            return
        transport.write(out)
        self._out_size = 0
        self._sent_size = transport.get_write_buffer_size()
        if self._sent_size > self._send_limit:
            self._overflow()

    def _drop_output(self) -> None:
        self._out = None

    def _overflow(self) -> None:
        self.session.log.warning("send buffer over %d bytes, closing", self._send_limit)
        self._drop_output()  # the peer is not reading: drop what it would not read anyway
        self.close_stream(StreamError("policy-violation", "too much unread data", remote=True))

    def close_stream(self, error: StreamError | None = None) -> None:
        if self._closing or self.transport is None:
            return
        if not self._header_sent:
            self._send_header(self.session.host.name if self.session.host else None)
        if error is not None:
            self._queue(stream_element_xml(error.to_element(), self._error_ns).encode())
        self._queue(STREAM_CLOSE.encode())
        self.flush()
        self._closing = True
        self.session.closed = True
        self.transport.close()

    # -- asyncio.Protocol -----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only look-alikes.
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self._peer = peer[0] if isinstance(peer, tuple) else str(peer)
        self.session.log.debug("connection from %s (direct TLS: %s)", self._peer, self._secure)
        net = self.net
        net.connections.add(self)
        net.stream_awake(self)
        limits = self.listener.limits
        if not net.admit_unauthenticated(self._peer, limits.max_unauthenticated_per_ip):
            self.close_stream(StreamError("policy-violation", "too many connections"))
            return
        self._counted_unauth = True
        if not self._apply_policy():
            return
        # On a direct-TLS port this runs when TCP accepts, before the handshake: a stalled
        # handshake counts against the cap above and the timeout below.
        self._timeout = asyncio.get_running_loop().call_later(limits.auth_timeout,
                                                              self._auth_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self.net.connections.discard(self)
        self.net.awake.discard(self)
        # Gone without a stream close (ours or the client's): stream management may keep
        # the session for a resumption (XEP-0198 §5).
        lost = not self._closing
        self._closing = True
        self._drop_output()
        self.session.closed = True
        if self._timeout is not None:
            self._timeout.cancel()
        self._release_unauth()
        self.transport = None
        self._session_closed(lost)

    def _session_closed(self, lost: bool) -> None:
        self.server.session_closed(self._client(), lost=lost)

    def _client(self) -> C2SSession:
        """The client session, on the paths only a client stream takes (the subclasses
        carrying another kind override them)."""
        session = self.session
        if not isinstance(session, C2SSession):
            raise TypeError(f"{type(self).__name__} carries no client session")
        return session

    def limit_kind(self) -> str | None:
        """The stream type the traffic policy knows this connection by (None: not its)."""
        return self.stream_type

    def _apply_policy(self) -> bool:
        """Ask the traffic policy (if any) to admit this connection and for its read
        budget; False when refused (the stream is closed)."""
        policy = self.server.traffic_policy
        kind = self.limit_kind()
        if policy is None or kind is None:
            return True
        if kind != "s2sout" and not policy.admit(self._peer, kind):
            self.close_stream(StreamError("policy-violation",
                                          "too many connections from your address; "
                                          "try again later"))
            return False
        self._limiter = policy.read_limiter(kind, self.session)
        return True

    def _within_budget(self, data: bytes) -> bytes:
        """The part of ``data`` the read budget allows now; the rest is held and reading
        stops until the budget refills (a timer, not a loop)."""
        limiter = self._limiter
        assert limiter is not None
        if self._throttled is not None:
            # In flight when reading paused; bounded by what one read returns.
            self._throttled += data
            if len(self._throttled) > MAX_HELD:
                self.close_stream(StreamError("policy-violation", "sending too fast"))
            return b""
        allowed = limiter.consume(len(data))
        if allowed >= len(data):
            return data
        held = self._throttled = data[allowed:]
        if self.transport is not None:
            self.transport.pause_reading()
        asyncio.get_running_loop().call_later(limiter.wait(len(held)), self._unthrottle)
        return data[:allowed]

    def _unthrottle(self) -> None:
        held, self._throttled = self._throttled, None
        if self.transport is None or self._closing or held is None:
            return
        allowed = self._within_budget(held)
        if allowed:
            self._feed(allowed)
        if self._throttled is None and not self._busy and self.transport is not None \
                and not self._closing:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        self._active = True
        if self._limiter is not None:
            data = self._within_budget(data)
            if not data:
                return
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        if self._asleep:  # here, not in data_received: bytes held by the budget wake it too
            self._wake_up()
        try:
            events = self._reader.feed(data)
        except StreamError as err:
            self.session.log.info("stream error from %s: %s", self._peer, err.condition)
            self.close_stream(err)
            return
        self._take(events)

    def _take(self, events: list[StreamEvent]) -> None:
        """Handle parsed events in order, queueing them while a handler waits."""
        if not events:
            return
        if len(events) == 1 and self._backlog is None and not self._busy and not self._closing:
            self._handle_one(events[0])  # the usual read: one stanza, no deque
            return
        if self._backlog is None:
            self._backlog = deque(events)
        else:
            self._backlog.extend(events)
        if not self._busy:
            self._drain()

    def eof_received(self) -> bool | None:
        return None

    def idle_check(self) -> bool:
        """Called by the idle sweep: a stream that read nothing since the previous sweep
        drops its parser until its next read (StreamReader.hibernate). True if it did:
        the sweep then leaves it alone until ``_wake_up``."""
        if self._active:
            self._active = False
            return False
        if self._busy or self._backlog is not None or not self._reader.hibernate():
            return False
        self._asleep = True
        return True

    def _wake_up(self) -> None:
        """The first read after the sweep put this stream to sleep: visited again."""
        self._asleep = False
        self.net.stream_awake(self)

    # -- processing in order --------------------------------------------------------------
    def _handle_one(self, event: StreamEvent) -> None:
        """Handle one event; a handler that must wait makes the stream busy."""
        try:
            result = self._handle(event)
        except StreamError as err:
            self.close_stream(err)
            return
        except Exception:
            self.session.log.exception("error while processing a stanza")
            self.close_stream(StreamError("internal-server-error", remote=False))
            return
        if is_awaitable(result):
            self._await(result)

    def _await(self, result: Any) -> None:
        """A handler is waiting: stop reading until it is done (then _wait drains)."""
        self._busy = True
        if self.transport is not None:
            self.transport.pause_reading()
        asyncio.ensure_future(self._wait(result))

    def _drain(self) -> None:
        backlog = self._backlog
        if backlog is None:
            return
        while backlog and not self._busy and not self._closing:
            self._handle_one(backlog.popleft())  # an error closes the stream: loop ends
        if not backlog and self._backlog is backlog:
            self._backlog = None  # idle sessions keep no deque (~600 bytes each)

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
        if (not self._busy and self._throttled is None and self.transport is not None
                and not self._closing):
            self.transport.resume_reading()

    def _handle(self, event: StreamEvent) -> Any:
        if type(event) is StanzaReceived:
            return self._handle_element(event.element)
        if isinstance(event, StreamOpened):
            return self._stream_opened(event)
        if isinstance(event, StreamClosed):
            self.session.log.debug("client closed the stream")
            self.close_stream(None)
        return None

    def _stream_opened(self, event: StreamOpened) -> None:
        to = (event.attrs.get("to") or "").lower().rstrip(".")
        session = self._client()
        host = self.server.hosts.get(to)
        if session.host is None:
            self._send_header(to or None)
            if host is None or host.kind != "local":
                raise StreamError("host-unknown")
            session.host = host
        elif host is not session.host:
            self._send_header(session.host.name)
            raise StreamError("host-unknown", "the stream changed host")
        else:
            self._send_header(session.host.name)
        # RFC 6120 §4.7.4: the stream's language, stamped on stanzas that carry none.
        self._stream_lang = event.attrs.get("xml:lang")
        session.lang = self._stream_lang or "en"
        version = event.attrs.get("version", "0.9")
        if not version.startswith("1."):
            raise StreamError("unsupported-version")
        features = Element("features", "http://etherx.jabber.org/streams")
        self.server.fire_sync_or_log(session.host.events, "stream-features",
                                     StreamFeaturesEvent(session, features))
        self._queue(stream_element_xml(features).encode())

    def _send_header(self, host: str | None) -> None:
        self.session.stream_id = secrets.token_urlsafe(12)
        header = stream_header(from_=host, id_=self.session.stream_id)
        self._queue(header.encode())
        self._header_sent = True

    def _handle_element(self, el: Element) -> Any:
        session = self._client()
        if el.name in STANZA_NAMES and el.xmlns == NS_CLIENT:
            session.stanzas_in += 1
            self._received[el.name] += 1
            if session.bound:
                return self._route(el, session)
            if session.host is None:
                raise StreamError("not-authorized")
            # IQs before binding go to modules: in-band registration (XEP-0077) answers
            # "unauthenticated-iq/...", binding answers "unbound-iq/...".
            prefix = "unbound-iq" if session.authenticated else "unauthenticated-iq"
            child = el.iq_payload() if el.name == "iq" else None
            name = f"{prefix}/{child.xmlns}:{child.name}" if child is not None else ""
            result = session.host.events.fire(name, StreamElementEvent(session, el))
            if result is None:
                raise StreamError("not-authorized", "bind a resource first"
                                  if session.authenticated else None)
            return result
        if session.host is None:
            raise StreamError("not-authorized")
        result = session.host.events.fire(f"stream/{el.xmlns}:{el.name}",
                                          StreamElementEvent(session, el))
        if result is None:
            raise StreamError("unsupported-stanza-type")
        return result

    def _route(self, el: Element, session: C2SSession) -> Any:
        from_ = el.attrs.get("from")
        if from_ is None:
            el.attrs["from"] = session.full_jid  # type: ignore[assignment]
        elif from_ != session.full_jid and from_ != session.bare_jid:
            # RFC 6120 §8.1.2.1: a client may not claim another address.
            raise StreamError("invalid-from")
        if self._stream_lang is not None and "xml:lang" not in el.attrs:
            el.attrs["xml:lang"] = self._stream_lang  # RFC 6120 §4.7.4 (SHOULD)
        return self.server.router.route(session, el)

    # -- hooks used by negotiation modules ------------------------------------------------
    def restart_stream(self) -> None:
        """After SASL success (RFC 6120 §6.4.6): a fresh parser, a fresh header expected."""
        self._reader.reset()
        self._drop_backlog()

    def adopt(self, session: C2SSession) -> None:
        """Carry ``session`` (resumed, XEP-0198 §5) instead of the one this stream
        negotiated; the stream's own facts (id, TLS, language) go with it."""
        fresh = self._client()
        session.stream_id = fresh.stream_id
        session.secure_tls = fresh.secure_tls
        session.tls_info = fresh.tls_info
        session.lang = fresh.lang
        session.framed = fresh.framed
        session.transport = fresh.transport
        fresh.closed = True
        self.session = session

    def release(self) -> None:
        """The session moved to another connection: forget it and drop this transport
        without a stream close, so nothing here ends the session."""
        self.session = C2SSession(None, self)
        self.session.closed = True
        if self.transport is not None and not self._closing:
            self._closing = True
            self._drop_output()
            self.transport.abort()

    def _drop_backlog(self) -> None:
        # Cleared in place: _drain may be iterating over this very deque right now.
        if self._backlog is not None:
            self._backlog.clear()

    def authenticated(self) -> None:
        if self._timeout is not None:
            self._timeout.cancel()
            self._timeout = None
        self._release_unauth()

    async def start_tls(self) -> None:
        """STARTTLS (RFC 6120 §5.4.3.3): upgrade in place, then restart the stream."""
        await self._upgrade(self._server_tls_context(), server_side=True)

    async def _upgrade(self, ctx: ssl.SSLContext, *, server_side: bool,
                       server_hostname: str | None = None) -> bool:
        """Put TLS under this stream; True once the handshake succeeded (the stream then
        expects a fresh header), False when it failed (the connection is aborted)."""
        assert self.transport is not None
        self._reader.reset()
        self._drop_backlog()
        self.flush()  # <proceed/> must reach the peer before the TLS handshake starts
        layer = TLSLayer.upgrade(self.transport, self, ctx, server_side=server_side,
                                 server_hostname=server_hostname,
                                 handshake_timeout=HANDSHAKE_TIMEOUT, readers=self.net.readers)
        # From now on everything written goes through TLS (held until the handshake ends).
        self.transport = layer  # type: ignore[assignment]
        try:
            await layer.handshake
        except (TimeoutError, ssl.SSLError, ConnectionError, OSError) as exc:
            self.session.log.info("TLS handshake failed: %s", exc)
            return False
        if self._closing:
            return False
        self._secure = True
        self._tls_established()
        return True

    def tls_handshake_done(self, exc: BaseException | None) -> None:
        """The handshake of a direct-TLS connection ended (net/tlslayer.py); on failure
        the layer aborts the connection."""
        if exc is None:
            self._tls_established()
        else:
            self.session.log.info("TLS handshake with %s failed: %s", self._peer, exc)

    def _server_tls_context(self) -> ssl.SSLContext:
        # Through the class: the s2s subclass overrides this static method.
        return type(self).server_tls_context(self.net)

    @staticmethod
    def server_tls_context(net: NetManager) -> ssl.SSLContext:
        """The TLS server context of this stream kind (STARTTLS and direct TLS ports)."""
        return net.tls.server_context()

    def _tls_established(self) -> None:
        assert self.transport is not None
        session = self._client()
        session.secure_tls = True
        session.tls_info = self.net.tls.session_info(
            self.transport.get_extra_info("ssl_object"))

    def _auth_timeout(self) -> None:
        self._timeout = None
        if not self.session.authenticated:
            self.session.log.info("closing a stream that did not authenticate in time")
            self.close_stream(StreamError("connection-timeout"))

    def _release_unauth(self) -> None:
        if self._counted_unauth:
            self._counted_unauth = False
            self.net.release_unauthenticated(self._peer)
