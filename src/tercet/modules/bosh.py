"""BOSH (XEP-0124) for XMPP (XEP-0206), Prosody's mod_bosh: ``/http-bind`` on the HTTP
server. Each BOSH session runs the same client stream as TCP and WebSocket (SASL with
SCRAM, bind, stream management, CSI, carbons: ``module.open_framed_stream``); the
session (modules/_bosh.py) only carries its elements over long-polled HTTP requests.
docs/web.md.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from aiohttp import web

from tercet.module import AltConnection, ModuleApi, Option, StreamLimits
from tercet.modules._bosh import BoshSession, Reply, error_reply
from tercet.protocol.bosh import (
    CONTENT_TYPE,
    BodyRequest,
    BoshError,
    Bounds,
    negotiate,
    parse_body,
    terminate,
)

META = {"summary": "BOSH: XMPP over long-polled HTTP", "stage": "beta",
        "xeps": ["XEP-0124", "XEP-0206"]}

REL = "urn:xmpp:alt-connections:xbosh"  # XEP-0156 §3

MAX_WAIT = Option("bosh_max_wait", int, 120,
                  "Longest time in seconds a request is held before an empty answer; "
                  "a client's smaller 'wait' wins.", min=1, max=3600,
                  cite="XEP-0124 §7.2")
HOLD = Option("bosh_hold", int, 1,
              "Most requests held at once per session; a client's smaller 'hold' wins.",
              min=0, max=10, cite="XEP-0124 §7.2")
MAX_REQUESTS = Option("bosh_max_requests", int, 2,
                      "Simultaneous requests a session may make: the width of the "
                      "request-id window and of the retransmission buffer (at least "
                      "'hold' + 1).", min=1, max=20, cite="XEP-0124 §11, §14")
MAX_INACTIVITY = Option("bosh_max_inactivity", int, 60,
                        "Seconds a session may go without any request before it is "
                        "considered disconnected.", min=1, max=3600,
                        cite="XEP-0124 §10")
MAX_POLLING = Option("bosh_max_polling", int, 5,
                     "Shortest interval in seconds between two empty requests of a "
                     "polling session (hold 0).", min=0, max=600, cite="XEP-0124 §12")
MAX_PAUSE = Option("bosh_max_pause", int, 120,
                   "Longest pause in seconds a client may ask for (while a page reloads).",
                   min=1, max=3600, cite="XEP-0124 §10")
CONSIDER_SECURE = Option("consider_bosh_secure", bool, False,
                         "Treat BOSH clients as encrypted although they reach this server "
                         "over plain HTTP (a TLS-terminating proxy in front).")

OPTIONS: list[Option[Any]] = [MAX_WAIT, HOLD, MAX_REQUESTS, MAX_INACTIVITY, MAX_POLLING,
                              MAX_PAUSE, CONSIDER_SECURE]

GET_PAGE = """<!DOCTYPE html>
<html><head><title>BOSH</title></head><body>
<p>This is an XMPP over BOSH endpoint (XEP-0124, XEP-0206). Point a BOSH client at this
address; it talks with POST requests.</p>
</body></html>
"""


class Bosh:
    """The module's sessions, by sid, and what every request needs."""

    def __init__(self, module: ModuleApi) -> None:
        self.module = module
        self.sessions: dict[str, BoshSession] = {}
        self.bounds = Bounds(
            max_wait=module.option(MAX_WAIT), max_hold=module.option(HOLD),
            max_requests=module.option(MAX_REQUESTS),
            inactivity=module.option(MAX_INACTIVITY), polling=module.option(MAX_POLLING),
            max_pause=module.option(MAX_PAUSE))
        limit = module.option("c2s_stanza_size_limit")
        self.limits = StreamLimits(
            stanza_size=limit, auth_timeout=module.option("c2s_timeout"),
            max_unauthenticated_per_ip=module.option("c2s_max_unauthenticated_per_ip"))
        # A body may hold several stanzas; one stanza over the limit is the stream's
        # policy-violation. Past twice the limit the HTTP layer refuses the body (413),
        # as the WebSocket layer refuses such a frame.
        self.max_body = 2 * limit
        self.consider_secure = module.option(CONSIDER_SECURE)

    async def post(self, request: web.Request) -> web.StreamResponse:
        data = await _read_limited(request, self.max_body)
        if data is None:
            raise web.HTTPRequestEntityTooLarge(self.max_body, request.content_length or 0)
        try:
            req = parse_body(data, self.max_body)
        except BoshError as err:
            self.module.log.info("bad BOSH request from %s: %s", request.remote, err)
            return _respond(error_reply(err.condition, legacy=False))
        secure = request.secure or self.consider_secure
        if req.sid is None:
            return await self.create(req, request.remote or "?", secure)
        session = self.sessions.get(req.sid)
        if session is None or (session.secure and not secure):
            # §17.2 item-not-found; a session made over HTTPS is not reachable over plain
            # HTTP (its sid would travel in clear text).
            return _respond(Reply(terminate("item-not-found")))
        result = session.request(req)
        reply = result if isinstance(result, Reply) else await _shielded(result)
        return _respond(reply, session.params.content)

    async def create(self, req: BodyRequest, peer: str, secure: bool) -> web.StreamResponse:
        """A session creation request (XEP-0124 §7.1, XEP-0206 §3)."""
        legacy = req.attrs.get("ver") is None
        try:
            params = negotiate(req, self.bounds)
        except BoshError as err:
            return _respond(error_reply(err.condition, legacy))
        to = (req.attrs.get("to") or "").lower().rstrip(".")
        if not to:
            return _respond(Reply(terminate("improper-addressing")))  # §17.2
        if not self._serves(to):
            return _respond(Reply(terminate("host-unknown")))  # §17.2
        sid = secrets.token_urlsafe(24)  # §19.3: unpredictable, never repeated
        session = BoshSession(sid, params, req, peer=peer, secure=secure, host=to,
                              on_end=self._ended, log=self.module.log)
        self.sessions[sid] = session
        # Logs name a session by the start of its sid: the sid itself is a credential.
        self.module.log.debug("new BOSH session %s... from %s", sid[:6], peer)
        stream = self.module.open_framed_stream(session, self.limits)
        reply = await _shielded(session.start(stream))
        return _respond(reply, params.content)

    def _serves(self, to: str) -> bool:
        host = self.module.host
        return to == host if host != "*" else self.module.is_local_host(to)

    def _ended(self, session: BoshSession) -> None:
        if self.sessions.get(session.sid) is session:
            del self.sessions[session.sid]

    def shutdown(self) -> None:
        for session in list(self.sessions.values()):
            session.shutdown("system-shutdown")  # §17.2


async def _read_limited(request: web.Request, limit: int) -> bytes | None:
    """The request body, or None when it is longer than ``limit``."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(16384):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _shielded(future: asyncio.Future[Reply]) -> Reply:
    # The session owns the future: a request that goes away must not cancel it.
    return await asyncio.shield(future)


def _respond(reply: Reply, content_type: str = CONTENT_TYPE) -> web.Response:
    """XEP-0124 §7.1: every response has the session's Content-Type."""
    if reply.status != 200:
        return web.Response(status=reply.status)
    return web.Response(body=reply.body, headers={"Content-Type": content_type,
                                                  "Cache-Control": "no-store"})


async def get_page(request: web.Request) -> web.StreamResponse:
    """XEP-0124 §5: clients use POST; a browser pointed here gets an explanation."""
    return web.Response(text=GET_PAGE, content_type="text/html")


def load(module: ModuleApi) -> None:
    module.depends("http")
    bosh = Bosh(module)
    route = module.add_http_route("POST", "", bosh.post, base="/http-bind", cors=True)
    module.add_http_route("GET", "", get_page, base="/http-bind", cors=True)
    module.provides("altconnect", AltConnection(REL, route))
    module.on_unload(bosh.shutdown)
