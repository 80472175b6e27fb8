"""XMPP over WebSocket (RFC 7395), Prosody's mod_websocket: ``/xmpp-websocket`` on the
HTTP server, the ``xmpp`` subprotocol, one element per text message, and behind it the
same client stream as on TCP (SASL, bind, stream management, CSI, carbons: the c2s
machinery, through ``module.open_framed_stream``). docs/web.md.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from aiohttp import WSMsgType, web
from yarl import URL

from tercet.module import (
    AltConnection,
    FramedStream,
    ModuleApi,
    Option,
    StreamLimits,
)
from tercet.protocol.framing import SUBPROTOCOL

META = {"summary": "XMPP over WebSocket (RFC 7395)", "stage": "beta", "xeps": []}

REL = "urn:xmpp:alt-connections:websocket"  # XEP-0156 §3

CONSIDER_SECURE = Option("consider_websocket_secure", bool, False,
                         "Treat WebSocket clients as encrypted although they reach this "
                         "server over plain HTTP (a TLS-terminating proxy in front).")
CROSS_DOMAIN = Option[bool | list[str]](
    "cross_domain_websocket", bool | list[str], False,
    "Web pages allowed to open WebSockets, by Origin: false = only this host's own "
    "(its http_external_url or the request's), true = any, or a list of origins.",
    example=["https://chat.example.org"])
PING_INTERVAL = Option("websocket_ping_interval", int, 60,
                       "Seconds between WebSocket pings; a client that misses the pong "
                       "is disconnected.", min=1, max=3600, cite="RFC 6455 §5.5.2")

OPTIONS: list[Option[Any]] = [CONSIDER_SECURE, CROSS_DOMAIN, PING_INTERVAL]

# RFC 6455 §7.4.1: 1003 = a data type the endpoint cannot accept (binary, §3.2 of 7395).
CLOSE_UNSUPPORTED_DATA = 1003


class WebSocketLink:
    """A MessageLink over one aiohttp WebSocket: queued text messages, written in order
    by one writer task; reading pauses while the stream's handlers work."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, secure: bool) -> None:
        self._ws = ws
        self._request = request
        self._peer = request.remote or "?"
        self._secure = secure
        self._queue: deque[bytes] = deque()
        self._size = 0
        self._wake = asyncio.Event()
        self._closing = False
        self.readable = asyncio.Event()
        self.readable.set()

    @property
    def peer(self) -> str:
        return self._peer

    @property
    def secure(self) -> bool:
        return self._secure

    def send_message(self, data: bytes) -> None:
        if self._closing:
            return
        self._queue.append(data)  # UTF-8 already: sent as is, in a text frame
        self._size += len(data)
        self._wake.set()

    def buffered(self) -> int:
        transport = self._request.transport
        return self._size + (transport.get_write_buffer_size() if transport else 0)

    def pause_reading(self) -> None:
        self.readable.clear()

    def resume_reading(self) -> None:
        self.readable.set()

    def close(self) -> None:
        self._closing = True
        self._wake.set()
        self.readable.set()

    def abort(self) -> None:
        self._queue.clear()
        self._size = 0
        self.close()

    def extra_info(self, name: str) -> object:
        transport = self._request.transport
        return transport.get_extra_info(name) if transport is not None else None

    async def write_loop(self) -> None:
        """Send queued messages in order; after ``close()``, the rest, then the close."""
        ws = self._ws
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._queue:
                    data = self._queue.popleft()
                    self._size -= len(data)
                    await ws.send_frame(data, WSMsgType.TEXT)
                if self._closing:
                    break
        except (ConnectionError, RuntimeError):
            pass  # the client is gone; the read loop sees it too
        finally:
            await ws.close()


def origin_allowed(origin: str | None, request: web.Request, policy: bool | list[str],
                   own_urls: list[str]) -> bool:
    """``cross_domain_websocket``: a browser page may connect only from an allowed
    origin (RFC 6455 §10.2: the Origin header protects against pages on other sites)."""
    if origin is None or policy is True:
        return True  # not a browser (no Origin), or any site allowed
    wanted = origin.rstrip("/").lower()
    allowed = {str(request.url.origin()).lower()}
    allowed.update(str(URL(u).origin()).lower() for u in own_urls if u)
    if isinstance(policy, list):
        allowed.update(o.rstrip("/").lower() for o in policy)
    return wanted in allowed


def load(module: ModuleApi) -> None:
    module.depends("http")
    route = module.add_http_route("GET", "", lambda request: handle(module, request),
                                  base="/xmpp-websocket")
    module.provides("altconnect", AltConnection(REL, route))


async def handle(module: ModuleApi, request: web.Request) -> web.StreamResponse:
    own = [module.option("http_external_url")]
    if not origin_allowed(request.headers.get("Origin"), request,
                          module.option(CROSS_DOMAIN), own):
        module.log.info("refusing a WebSocket from origin %s", request.headers.get("Origin"))
        raise web.HTTPForbidden(text="this origin may not connect\n")
    limit = module.option("c2s_stanza_size_limit")
    ws = web.WebSocketResponse(protocols=(SUBPROTOCOL,), heartbeat=module.option(
        PING_INTERVAL), max_msg_size=2 * limit)
    ready = ws.can_prepare(request)
    if not ready.ok:
        raise web.HTTPBadRequest(text="a WebSocket upgrade is expected here\n")
    if ready.protocol != SUBPROTOCOL:
        # RFC 7395 §3.1: the handshake must negotiate the "xmpp" subprotocol.
        raise web.HTTPBadRequest(text='the "xmpp" WebSocket subprotocol is required\n')
    await ws.prepare(request)
    link = WebSocketLink(ws, request, request.secure or module.option(CONSIDER_SECURE))
    limits = StreamLimits(stanza_size=limit, auth_timeout=module.option("c2s_timeout"),
                          max_unauthenticated_per_ip=module.option(
                              "c2s_max_unauthenticated_per_ip"))
    writer = module.spawn(link.write_loop())
    stream = module.open_framed_stream(link, limits)
    try:
        await _read(ws, link, stream)
    finally:
        stream.connection_lost(None)
        link.close()
        await asyncio.shield(writer)
    return ws


async def _read(ws: web.WebSocketResponse, link: WebSocketLink, stream: FramedStream) -> None:
    while True:
        await link.readable.wait()
        msg = await ws.receive()
        if msg.type == WSMsgType.TEXT:
            stream.message_received(msg.data.encode())
        elif msg.type == WSMsgType.BINARY:
            await ws.close(code=CLOSE_UNSUPPORTED_DATA, message=b"text frames only")
            return
        else:  # CLOSE, CLOSING, CLOSED, ERROR (too large, broken)
            return
