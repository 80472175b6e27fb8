"""What the core knows of HTTP: routes as data, in one table the ``http`` module serves.

Modules register routes with ``module.add_http_route`` (which records the removal for
unload) whether or not the HTTP server has loaded yet; the ``http`` module (aiohttp) looks
requests up here. Core never imports the HTTP library: a handler is called with the
library's request object and returns its response, typed here only loosely (docs/web.md
names the concrete types).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

#: ``async def handler(request) -> response``: an aiohttp ``web.Request`` in, an aiohttp
#: ``web.StreamResponse`` out. Typed loosely on purpose: core does not import aiohttp.
HttpHandler = Callable[[Any], Awaitable[Any]]

_PARAM = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"))


@dataclass(frozen=True, slots=True, eq=False)
class HttpRoute:
    """One route a module registers (1.2).

    ``path`` is relative to the module's base path: ``http_paths[module]`` when the
    operator set one, else ``base``. A segment written ``{name}`` matches one path segment
    and reaches the handler as ``request.match_info[name]``. ``host`` is the host whose
    ``Host:`` header the route answers, or None for any. ``cors``: browsers on other
    origins may call it (the CORS options of the http module decide which).
    """

    method: str
    path: str
    handler: HttpHandler
    module: str
    base: str
    host: str | None = None
    cors: bool = False


@dataclass(frozen=True, slots=True)
class AltConnection:
    """A connection method host-meta lists (XEP-0156 §3), offered as the ``altconnect``
    service: ``rel`` is ``urn:xmpp:alt-connections:websocket`` or ``...:xbosh`` (1.2)."""

    rel: str
    route: HttpRoute


class HttpRoutes:
    """Every registered route; the ``http`` module sets ``paths`` (``http_paths``) and
    ``url_for`` (external URLs) when it loads, and dispatches with ``match``."""

    def __init__(self) -> None:
        self._routes: list[HttpRoute] = []
        self._paths: Mapping[str, str] = MappingProxyType({})
        # (host, method, path) -> route for paths without parameters: one lookup.
        self._exact: dict[tuple[str | None, str, str], HttpRoute] | None = None
        self._patterns: list[tuple[HttpRoute, list[str]]] = []
        self.url_for: Callable[[str | None, str], str] | None = None

    def set_paths(self, paths: Mapping[str, str]) -> None:
        self._paths = MappingProxyType(dict(paths))
        self._exact = None

    def resolve(self, route: HttpRoute) -> str:
        """The path ``route`` is served at."""
        base = self._paths.get(route.module, route.base).rstrip("/")
        path = base + route.path
        return path or "/"

    def add(self, route: HttpRoute) -> Callable[[], None]:
        """Serve ``route``; returns its removal. ValueError when the method, host and
        path are taken."""
        if route.method not in METHODS:
            raise ValueError(f"unknown HTTP method {route.method!r}")
        if not route.base.startswith("/") or (route.path and not route.path.startswith("/")):
            raise ValueError("HTTP paths start with '/'")
        path = self.resolve(route)
        for other in self._routes:
            if (other.host, other.method, self.resolve(other)) == (
                    route.host, route.method, path):
                raise ValueError(f"{route.method} {path} is already served by {other.module}")
        self._routes.append(route)
        self._exact = None

        def remove() -> None:
            self._routes = [r for r in self._routes if r is not route]
            self._exact = None
        return remove

    def routes(self) -> list[HttpRoute]:
        return list(self._routes)

    def match(self, host: str | None, method: str, path: str
              ) -> tuple[HttpRoute, dict[str, str]] | None:
        """The route for a request to ``host`` (a hosted domain, or None), host routes
        before global ones, with its path parameters. HEAD falls back to GET."""
        if self._exact is None:
            self._index()
        assert self._exact is not None
        methods = (method, "GET") if method == "HEAD" else (method,)
        for key_host in (host, None) if host is not None else (None,):
            for m in methods:
                found = self._exact.get((key_host, m, path))
                if found is not None:
                    return found, {}
                for route, parts in self._patterns:
                    if route.host == key_host and route.method == m:
                        params = _match_parts(parts, path)
                        if params is not None:
                            return route, params
        return None

    def allowed_methods(self, host: str | None, path: str) -> list[str]:
        """The methods some route serves ``path`` with (for 405 and CORS preflight)."""
        return sorted(m for m in METHODS if self.match(host, m, path) is not None)

    def _index(self) -> None:
        exact: dict[tuple[str | None, str, str], HttpRoute] = {}
        patterns: list[tuple[HttpRoute, list[str]]] = []
        for route in self._routes:
            path = self.resolve(route)
            if "{" in path:
                patterns.append((route, path.split("/")))
            else:
                exact[(route.host, route.method, path)] = route
        self._exact, self._patterns = exact, patterns


def _match_parts(parts: list[str], path: str) -> dict[str, str] | None:
    segments = path.split("/")
    if len(segments) != len(parts):
        return None
    params: dict[str, str] = {}
    for want, got in zip(parts, segments, strict=True):
        param = _PARAM.match(want)
        if param is not None:
            if not got:
                return None
            params[param.group(1)] = got
        elif want != got:
            return None
    return params
