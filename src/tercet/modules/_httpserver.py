"""The HTTP server behind the ``http`` module: aiohttp serving the core's route table.

aiohttp parses HTTP and WebSocket (no hand-written parsing here); this file adds what is
ours: dispatch by ``Host:`` to the routes of that virtual host (core/http.py), the client's
real address behind trusted proxies, CORS for routes that allow it, and an access log line
in the server's log format. aiohttp's own router is not used: it freezes when serving
starts, and modules add and remove routes as they load and unload.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from tercet.module import HttpRoute
from tercet.modules._ratelimit import Network, ip_in

access_log = logging.getLogger("tercet.http.access")

#: What a request to ``client_key`` records: the client's address as the route sees it.
CLIENT_KEY = web.RequestKey("tercet_client", str)
_CORS_KEY = web.RequestKey("tercet_cors_origin", str)

# CORS preflight answers may be cached this long by browsers (Fetch standard, "CORS-
# preflight cache"); a day, as common servers do.
CORS_MAX_AGE = 86400
CORS_ALLOW_HEADERS = "Content-Type, Authorization"
SHUTDOWN_TIMEOUT = 5.0


def parse_networks(values: Sequence[str]) -> tuple[Network, ...]:
    """IP addresses and CIDR blocks (``trusted_proxies``) as networks."""
    return tuple(ipaddress.ip_network(v, strict=False) for v in values)


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """The http module's options, as the request path needs them."""

    trusted_proxies: tuple[Network, ...]
    default_host: str | None
    cors_origins: frozenset[str]
    cors_override: dict[str, bool] = field(default_factory=dict)


class RouteTable:
    """What the server asks of the core's route table (``module``-level view of it)."""

    def __init__(self, match: Callable[[str | None, str, str],
                                       tuple[HttpRoute, dict[str, str]] | None],
                 allowed: Callable[[str | None, str], list[str]],
                 is_host: Callable[[str], bool]) -> None:
        self.match = match
        self.allowed = allowed
        self.is_host = is_host


def client_of(request: web.BaseRequest, proxies: Sequence[Network]) -> tuple[str, bool]:
    """The client's address and whether it came over TLS. ``X-Forwarded-For`` and
    ``X-Forwarded-Proto`` count only from a trusted proxy (anyone else could forge them);
    the address is the last hop in the chain that is not itself a trusted proxy."""
    peer = request.remote or "?"
    secure = request.secure
    if not ip_in(peer, proxies):
        return peer, secure
    forwarded = request.headers.get("X-Forwarded-For", "")
    for hop in reversed([h.strip() for h in forwarded.split(",") if h.strip()]):
        peer = hop
        if not ip_in(hop, proxies):
            break
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    if proto:
        secure = proto in ("https", "wss")
    return peer, secure


def request_host(request: web.BaseRequest, table: RouteTable,
                 default_host: str | None) -> str | None:
    """The virtual host a request is for, by its ``Host:`` header (port dropped), else
    ``http_default_host``; None when it names none (global routes still answer)."""
    raw = (request.host or "").strip().lower()
    if raw.startswith("["):
        name = raw[1:raw.find("]")] if "]" in raw else raw
    else:
        name = raw.rsplit(":", 1)[0] if raw.count(":") == 1 else raw
    name = name.rstrip(".")
    if name and table.is_host(name):
        return name
    return default_host


class Dispatcher:
    """The one aiohttp handler: finds the route, applies proxies and CORS, calls it."""

    def __init__(self, table: RouteTable, settings: HttpSettings) -> None:
        self.table = table
        self.settings = settings

    async def handle(self, request: web.Request) -> web.StreamResponse:
        settings = self.settings
        ip, secure = client_of(request, settings.trusted_proxies)
        request[CLIENT_KEY] = ip
        host = request_host(request, self.table, settings.default_host)
        path = request.path
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            return self._preflight(request, host, path)
        found = self.table.match(host, request.method, path)
        if found is None:
            allowed = self.table.allowed(host, path)
            if allowed:
                raise web.HTTPMethodNotAllowed(request.method, allowed)
            raise web.HTTPNotFound()
        route, params = found
        origin = self._cors_origin(request, route)
        if origin is not None:
            request[_CORS_KEY] = origin
        scheme = "https" if secure else "http"
        if ip != request.remote or scheme != request.scheme:
            request = request.clone(remote=ip, scheme=scheme)
        request.match_info.update(params)
        response: web.StreamResponse = await route.handler(request)
        return response

    def _cors_enabled(self, route: HttpRoute) -> bool:
        return self.settings.cors_override.get(route.module, route.cors)

    def _cors_origin(self, request: web.BaseRequest, route: HttpRoute) -> str | None:
        """The Access-Control-Allow-Origin value for this request, or None."""
        origin = request.headers.get("Origin")
        if origin is None or not self._cors_enabled(route):
            return None
        allowed = self.settings.cors_origins
        if not allowed:
            return "*"
        return origin if origin in allowed else None

    def _preflight(self, request: web.Request, host: str | None,
                   path: str) -> web.StreamResponse:
        wanted = request.headers["Access-Control-Request-Method"].upper()
        found = self.table.match(host, wanted, path)
        origin = self._cors_origin(request, found[0]) if found is not None else None
        if origin is None:
            # Not a CORS route (or not this origin): no grant; the browser refuses.
            return web.Response(status=204 if found is not None else 404)
        headers = {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": ", ".join(self.table.allowed(host, path)),
            "Access-Control-Allow-Headers": CORS_ALLOW_HEADERS,
            "Access-Control-Max-Age": str(CORS_MAX_AGE),
        }
        if origin != "*":
            headers["Vary"] = "Origin"
        return web.Response(status=204, headers=headers)


async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """Headers every response gets: CORS for granted requests, and no version banner."""
    origin = request.get(_CORS_KEY)
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        if origin != "*":
            response.headers.add("Vary", "Origin")
    response.headers["Server"] = "Tercet"


class AccessLog(AbstractAccessLogger):
    """One line per request in the server's log, at info level on ``tercet.http.access``:
    client, request line, status, bytes sent (headers included), milliseconds, user agent."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse,
            time: float) -> None:
        client = request.get(CLIENT_KEY) or request.remote or "?"
        self.logger.info('%s "%s %s HTTP/%d.%d" %d %d %.1fms "%s"', client,
                         request.method, request.path_qs, request.version.major,
                         request.version.minor, response.status, response.body_length,
                         time * 1000, request.headers.get("User-Agent", "-"))

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


class PeerErrorLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's error logger, quieter: a malformed or oversized request is the client's
    fault, worth an info line, not an error with a traceback anyone could flood us with.
    Errors of our own handlers still come with theirs, at error level."""

    def exception(self, msg: object, *args: object, exc_info: object = True,
                  **kwargs: object) -> None:
        exc = exc_info if isinstance(exc_info, BaseException) else None
        if exc is not None and type(exc).__module__ == "aiohttp.http_exceptions":
            self.logger.info("%s: %s", str(msg) % args if args else msg,
                             str(exc).splitlines()[0])
            return
        self.logger.error(msg, *args, exc_info=exc_info, **kwargs)


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """Request bounds (RFC 9110 §15.5.14 413, §15.5.19 431 are the answers to them)."""

    max_body: int
    max_header: int
    max_headers: int
    keepalive: float


async def make_runner(dispatch: Dispatcher, limits: ServerLimits) -> web.AppRunner:
    """An aiohttp application with one catch-all route to ``dispatch``, set up; its
    ``server`` is the protocol factory the listeners use."""
    app = web.Application(client_max_size=limits.max_body, handler_args={
        "max_line_size": limits.max_header, "max_field_size": limits.max_header,
        "max_headers": limits.max_headers, "keepalive_timeout": limits.keepalive,
        "logger": PeerErrorLog(logging.getLogger("tercet.http"), {})})
    app.router.add_route("*", "/{_path:.*}", dispatch.handle)
    app.on_response_prepare.append(on_prepare)
    # Unloading waits this long for requests still running (WebSockets are closed by
    # their own module first), then cancels them.
    runner = web.AppRunner(app, access_log_class=AccessLog, access_log=access_log,
                           handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    return runner
