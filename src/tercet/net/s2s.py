"""Server-to-server streams (RFC 6120, ``jabber:server``), inbound and outbound.

The framing, output batching, bounded send buffer and per-session ordering (reading pauses
while a handler awaits) are those of client streams (:class:`C2SConnection`); this file
changes what differs: the headers (``from``/``to``, the ``db`` namespace of XEP-0220), the
events negotiation modules hook on the global bus, the addressing checks on every stanza
received, and STARTTLS as the initiating side.

Events fired on the global bus (payload :class:`ServerStreamEvent`):

``s2s-features``          inbound stream (re)opened: modules add to the features offered
``s2s-features-out``      outbound stream received the peer's features (STARTTLS, dialback)
``s2s/<ns>:<name>``       a non-stanza element (``<starttls/>``, ``<db:result/>``...)
``s2s-authenticated``     a domain pair authenticated on a stream (payload: the session)
``s2s-closed``            a stream ended (payload: the session)
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
import socket
import ssl
from typing import TYPE_CHECKING, Any

from cryptography import x509

from tercet.core.events import is_awaitable
from tercet.core.network import ConnectSpec, PeerUnreachable
from tercet.core.session import ServerSession, ServerStreamEvent
from tercet.net.c2s import STANZA_NAMES, C2SConnection
from tercet.net.certverify import TrustStore, peer_chain, status
from tercet.net.resolver import ConnectError, ResolveError, Resolver, connect_domain
from tercet.net.tls import ALPN_S2S
from tercet.net.tlslayer import TLSLayer
from tercet.protocol.dialback import NS_DIALBACK
from tercet.protocol.errors import NS_STREAMS, StreamError
from tercet.protocol.jid import InvalidJID
from tercet.protocol.stanza import NS_CLIENT, NS_SERVER, Element
from tercet.protocol.xmlstream import (
    NS_STREAM,
    StreamOpened,
    StreamReader,
    stream_element_xml,
    stream_header,
)

if TYPE_CHECKING:
    from tercet.core.server import Server
    from tercet.net.listeners import Listener, NetManager

log = logging.getLogger("tercet.s2s")


def to_client_namespace(el: Element) -> None:
    """Stanzas arrive in ``jabber:server``; inside the server every stanza is in
    ``jabber:client`` (RFC 6120 §4.8.3 makes the two equivalent for routing), so handlers
    do not care where a stanza came from. Bounded by the parser's depth limit."""
    stack = [el]
    while stack:
        node = stack.pop()
        if node.xmlns == NS_SERVER:
            node.xmlns = NS_CLIENT
            stack.extend(c for c in node.children if isinstance(c, Element))


class S2SConnection(C2SConnection):
    """One server-to-server TCP connection, either direction."""

    __slots__ = ("_held", "_peer_chain", "s2s")
    stream_type = "s2s"

    def __init__(self, server: Server, listener: Listener, net: NetManager,
                 direction: str = "in", local: str | None = None,
                 remote: str | None = None) -> None:
        super().__init__(server, listener, net)
        self._reader = StreamReader(listener.limits.stanza_size, content_ns=NS_SERVER)
        self.s2s = ServerSession(self, direction, local, remote)
        self.s2s.sent_counts = server.stats.counts_for(self.stream_type).sent
        self.s2s.reply_route = self._reply
        self.s2s.on_authenticated = self._pair_authenticated
        self.s2s.last_activity = server.clock()
        # The certificates the peer sent in the TLS handshake, leaf first.
        self._peer_chain: list[x509.Certificate] = []
        # Inbound, between SASL success and our new stream's features: what the session
        # writes waits here (a bidirectional stream's stanzas, XEP-0288), since the peer
        # expects a fresh stream header first (RFC 6120 §6.4.6).
        self._held: list[bytes] | None = None
        # The C2S machinery logs and closes through ``session``.
        self.session = self.s2s

    def limit_kind(self) -> str:
        return "s2sin" if self.s2s.direction == "in" else "s2sout"

    # -- connection lifecycle ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self.s2s.direction == "out" and not self._closing:
            self._send_header(None)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        session = self.s2s
        session.closed = True
        session.negotiated.set()
        session.ready.set()
        session.log.info("stream %s %s closed", "from" if session.direction == "in" else "to",
                         session.remote_domain)
        result = self.server.events.fire("s2s-closed", session)
        if is_awaitable(result):
            asyncio.ensure_future(result)

    def _session_closed(self, lost: bool) -> None:
        """Nothing for the client sessions' bookkeeping: a server stream ends in
        connection_lost above (``s2s-closed``)."""

    def _send_header(self, host: str | None) -> None:
        session = self.s2s
        db = {"db": NS_DIALBACK}
        if session.direction == "out":
            header = stream_header(content_ns=NS_SERVER, from_=session.local_domain,
                                   to=session.remote_domain, extra_ns=db)
        else:
            session.stream_id = secrets.token_urlsafe(16)
            header = stream_header(content_ns=NS_SERVER, from_=host or session.local_domain,
                                   to=session.remote_domain, id_=session.stream_id,
                                   extra_ns=db)
        self._queue(header.encode())
        self._header_sent = True

    def _tls_established(self) -> None:
        assert self.transport is not None
        sslobj = self.transport.get_extra_info("ssl_object")
        self.s2s.tls_info = {
            "version": sslobj.version() if sslobj is not None else None,
            "cipher": sslobj.cipher()[0] if sslobj is not None and sslobj.cipher() else None,
        }
        self._peer_chain = peer_chain(sslobj)
        if self.s2s.direction == "out":
            self._check_certificate()
        # Inbound: checked when the stream says which domain it speaks for.

    def _check_certificate(self) -> None:
        """RFC 6120 §13.7.2: the peer's certificate for the domain of the stream."""
        session = self.s2s
        session.cert_status = status(
            self._peer_chain, session.remote_domain, trust_store(self.net),
            dt.datetime.now(dt.UTC),
            # Inbound, OpenSSL checked the chain (CERT_OPTIONAL) or failed the handshake;
            # without a request there is no peer certificate ("none").
            chain_verified=session.direction == "in")
        session.log.debug("certificate of %s: %s", session.remote_domain,
                          session.cert_status)

    @staticmethod
    def server_tls_context(net: NetManager) -> ssl.SSLContext:
        return s2s_server_context(net)

    def restart_stream(self) -> None:
        """After SASL success (RFC 6120 §6.4.6): the initiating side opens a new stream."""
        super().restart_stream()
        if self.s2s.direction == "out":
            self._send_header(None)
        else:
            self._held = []

    def write(self, data: bytes) -> None:
        if self._held is not None:
            self._held.append(data)  # bounded by the link's queue, which feeds it
            return
        super().write(data)

    # -- stream events ------------------------------------------------------------------------
    def _stream_opened(self, event: StreamOpened) -> None:
        session = self.s2s
        attrs = event.attrs
        if session.direction == "out":
            session.remote_stream_id = attrs.get("id", "")
            if not attrs.get("version", "").startswith("1."):
                # RFC 6120 §4.7.5: we need features (STARTTLS, dialback) from 1.0 peers.
                raise StreamError("unsupported-version")
            return
        to = (attrs.get("to") or "").lower().rstrip(".")
        host = self.server.hosts.get(to)
        if session.local_domain is None:
            self._send_header(to or None)
            if host is None or host.kind != "local":
                raise StreamError("host-unknown")  # RFC 6120 §4.9.3.6
            session.local_domain = to
            session.remote_domain = (attrs.get("from") or "").lower() or None
        else:
            self._send_header(session.local_domain)
            if to != session.local_domain:
                raise StreamError("host-unknown", "the stream changed host")
            claimed = (attrs.get("from") or "").lower() or None
            if claimed != session.remote_domain and not session.remote_domains:
                session.remote_domain = claimed
                session.cert_status = None  # checked again for the domain now claimed
        if not attrs.get("version", "0.9").startswith("1."):
            raise StreamError("unsupported-version")
        if self._secure and session.cert_status is None:
            self._check_certificate()
        features = Element("features", NS_STREAM)
        self.server.fire_sync_or_log(self.server.events, "s2s-features",
                                     ServerStreamEvent(session, features))
        self._queue(stream_element_xml(features, NS_SERVER).encode())
        held, self._held = self._held, None
        for data in held or ():
            self.write(data)

    def _handle_element(self, el: Element) -> Any:
        session = self.s2s
        session.last_activity = self.server.clock()
        if el.name in STANZA_NAMES and el.xmlns == NS_SERVER:
            self._received[el.name] += 1
            return self._route_in(el)
        if el.xmlns == NS_STREAM and el.name == "error":
            self._peer_error(el)
            return None
        if el.xmlns == NS_STREAM and el.name == "features" and session.direction == "out":
            name = "s2s-features-out"
        else:
            name = f"s2s/{el.xmlns}:{el.name}"
        result = self.server.events.fire(name, ServerStreamEvent(session, el))
        if result is None:
            if name == "s2s-features-out":
                session.negotiated.set()
                raise StreamError("not-authorized", "no authentication method in common")
            raise StreamError("unsupported-stanza-type")
        return result

    def _peer_error(self, el: Element) -> None:
        """RFC 6120 §4.9: the peer ended the stream with an error. Say why, once, and
        close our side with no error of our own (§4.9.1.1: nothing more is sent)."""
        session = self.s2s
        condition = next((c.name for c in el.elements() if c.xmlns == NS_STREAMS
                          and c.name != "text"), "undefined-condition")
        text = el.child_text("text", NS_STREAMS)
        session.log.warning("%s ended the %s stream with the error %s%s",
                            session.remote_domain,
                            "outbound" if session.direction == "out" else "inbound",
                            condition, f": {text}" if text else "")
        self.close_stream(None)

    def _route_in(self, el: Element) -> Any:
        """RFC 6120 §8.1.1.1 and §4.9.3: a stanza from a peer names both ends; its
        ``from`` domain must be authenticated on this stream and its ``to`` ours."""
        session = self.s2s
        if session.direction == "out":
            return self._route_in_bidi(el)
        if not session.remote_domains:
            raise StreamError("not-authorized")  # §4.9.3.12: nothing before authentication
        from_text, to_text = el.attrs.get("from"), el.attrs.get("to")
        if not from_text or not to_text:
            raise StreamError("improper-addressing")  # §4.9.3.7
        try:
            from_ = self.server.parse_jid(from_text)
        except InvalidJID:
            raise StreamError("invalid-from") from None  # §4.9.3.9
        if from_.domain not in session.remote_domains:
            raise StreamError("invalid-from")
        try:
            to = self.server.parse_jid(to_text)
        except InvalidJID:
            raise StreamError("improper-addressing") from None
        host = self.server.hosts.get(to.domain)
        if host is None:
            raise StreamError("host-unknown")  # §4.9.3.6
        to_client_namespace(el)
        return self.server.router.route(session, el)

    def _route_in_bidi(self, el: Element) -> Any:
        """A stanza on a stream we opened: only on a bidirectional one (XEP-0288 §2.2),
        once authenticated, and only for the inverse of the pair it authenticated: from
        the peer's domain to ours. Otherwise, as before, RFC 6120 §2.1: not-authorized."""
        session = self.s2s
        if not session.bidi or not session.authenticated:
            raise StreamError("not-authorized")
        from_text, to_text = el.attrs.get("from"), el.attrs.get("to")
        if not from_text or not to_text:
            raise StreamError("improper-addressing")  # RFC 6120 §4.9.3.7
        try:
            from_ = self.server.parse_jid(from_text)
        except InvalidJID:
            raise StreamError("invalid-from") from None  # §4.9.3.9
        if from_.domain != session.remote_domain:
            raise StreamError("invalid-from")
        try:
            to = self.server.parse_jid(to_text)
        except InvalidJID:
            raise StreamError("improper-addressing") from None
        if to.domain != session.local_domain:
            raise StreamError("host-unknown")  # §4.9.3.6
        to_client_namespace(el)
        return self.server.router.route(session, el)

    def _pair_authenticated(self, local: str, remote: str) -> None:
        """``s2s-authenticated`` (payload: the session): a pair authenticated on this
        stream; the s2s links may now use a bidirectional inbound stream for it."""
        self.server.fire_sync_or_log(self.server.events, "s2s-authenticated", self.s2s)

    def _reply(self, stanza: Element) -> None:
        """A stanza "sent" to this inbound session: route it back to the peer's domain."""
        result = self.server.router.route(self.s2s, stanza)
        if is_awaitable(result):
            asyncio.ensure_future(result)

    # -- TLS -----------------------------------------------------------------------------------
    async def start_tls(self) -> None:
        """STARTTLS (RFC 6120 §5.4.3.3): the receiving side as a TLS server, the
        initiating side as a TLS client that presents its host's certificate."""
        if self.s2s.direction == "in":
            await super().start_tls()
            return
        ctx = client_context(self.net, self.s2s.local_domain)
        if await self._upgrade(ctx, server_side=False, server_hostname=self.s2s.remote_domain):
            self._send_header(None)  # RFC 6120 §5.4.3.3: a new stream over TLS


def trust_store(net: NetManager) -> TrustStore:
    """The anchors for peers' certificates: the system's plus ``s2s_cafile`` and
    ``s2s_capath`` (options of the s2s module), read once."""
    if net.tls.trust is None:
        config = net.server.config
        net.tls.trust = TrustStore(config.get("s2s_cafile") or None,
                                   config.get("s2s_capath") or None)
    return net.tls.trust


def s2s_server_context(net: NetManager) -> ssl.SSLContext:
    """The TLS server context of inbound s2s streams (STARTTLS and direct TLS). Peers'
    certificates are requested only under a policy that demands them (see
    TLSManager.s2s_server_context); otherwise inbound peers authenticate by dialback."""
    config = net.server.config
    demanding = bool(config.get("s2s_secure_auth") or config.get("s2s_secure_domains"))
    return net.tls.s2s_server_context(trust_store(net), request_certificate=demanding)


def client_context(net: NetManager, local: str | None) -> ssl.SSLContext:
    """The TLS client context of an outbound stream. The peer's certificate is not
    verified during the handshake but afterwards (``_check_certificate``), so that one
    that does not verify still leaves dialback. Our host's certificate goes out as the
    client certificate (SASL EXTERNAL, peers under secure auth) only when our own trust
    store validates it: a peer would fail the handshake on one it cannot verify
    (net/certverify.py)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    entry = net.tls.hosts.get(local or "")
    if entry is not None and local is not None:
        try:
            pem = entry.cert_path.read_bytes()
        except OSError:
            pem = b""
        if trust_store(net).validates(pem, local, dt.datetime.now(dt.UTC)):
            ctx.load_cert_chain(str(entry.cert_path), str(entry.key_path))
        else:
            log.debug("not presenting the certificate of %s: our trust store does not "
                      "validate it", local)
    ctx.set_alpn_protocols([ALPN_S2S])
    return ctx


async def connect(net: NetManager, spec: ConnectSpec) -> ServerSession:
    """Resolve and connect to ``spec.remote`` (RFC 6120 §3.2, RFC 8305), then start the
    stream; raises PeerUnreachable with the stanza error condition for queued stanzas."""
    from tercet.net.listeners import Listener

    resolver = Resolver(spec.nameservers)
    try:
        found = await connect_domain(resolver, spec.remote,
                                     connect_timeout=spec.connect_timeout,
                                     overall_timeout=spec.overall_timeout)
    except ResolveError as exc:
        log.info("s2s %s -> %s: %s", spec.local, spec.remote, exc)
        raise PeerUnreachable("remote-server-not-found", str(exc)) from None
    except ConnectError as exc:
        log.info("s2s %s -> %s: %s", spec.local, spec.remote, exc)
        raise PeerUnreachable("remote-server-timeout" if exc.timeout
                              else "remote-server-not-found", str(exc)) from None
    direct = found.target.direct_tls
    listener = Listener("s2s", direct, spec.limits)
    conn = S2SConnection(net.server, listener, net, "out", spec.local, spec.remote)
    try:
        if direct:
            await _connect_direct_tls(conn, found.sock, client_context(net, spec.local),
                                      spec.remote)
        else:
            await asyncio.get_running_loop().create_connection(lambda: conn, sock=found.sock)
    except (ssl.SSLError, OSError, TimeoutError) as exc:
        found.sock.close()
        raise PeerUnreachable("remote-server-not-found", f"TLS: {exc}") from None
    conn.s2s.log.info("connected to %s (%s port %d%s)", spec.remote, found.address,
                      found.target.port, ", direct TLS" if direct else "")
    return conn.s2s


async def _connect_direct_tls(conn: S2SConnection, sock: socket.socket,
                              ctx: ssl.SSLContext, remote: str) -> None:
    """XEP-0368: TLS from the first byte; returns once the handshake succeeded."""
    layer = TLSLayer(conn, ctx, server_side=False, server_hostname=remote,
                     on_handshake=conn.tls_handshake_done, readers=conn.net.readers)
    await asyncio.get_running_loop().create_connection(lambda: layer, sock=sock)
    await layer.handshake
