"""The HTTP server (Prosody's mod_http): plain and TLS ports that serve every module's
routes (``module.add_http_route``), chosen by ``Host:`` per virtual host. docs/web.md.

A port that cannot be bound fails the load, and at start-up the server's start, as for
every listener (``module.listen``).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from aiohttp import web

from tercet.module import Invalid, ListenSpec, ModuleApi, Option, valid_interfaces
from tercet.modules._httpserver import (
    Dispatcher,
    HttpSettings,
    RouteTable,
    ServerLimits,
    make_runner,
    parse_networks,
)

GLOBAL = True
META = {"summary": "HTTP server for web clients and HTTP services", "stage": "beta",
        "xeps": []}

LOOPBACK = ["127.0.0.1", "::1"]


def _valid_networks(value: list[str]) -> list[Invalid]:
    for item in value:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            return [Invalid("IP addresses or CIDR blocks", repr(item),
                            'Use an address such as "10.0.0.1" or a block such as '
                            '"10.0.0.0/8".')]
    return []


def _valid_base_url(value: str) -> list[Invalid]:
    if value and not value.startswith(("http://", "https://")):
        return [Invalid("an http:// or https:// URL", repr(value),
                        'Write the whole base URL, such as "https://example.org/".')]
    return []


def _ports(name: str, default: list[int], doc: str) -> Option[list[int]]:
    # Port 0 lets the OS choose (used by tests).
    return Option(name, list[int], default, doc, min=0, max=65535, scope="global",
                  restart=True)


HTTP_PORTS = _ports("http_ports", [5280], "Plain HTTP ports.")
HTTPS_PORTS = _ports("https_ports", [5281], "HTTPS ports (the hosts' certificates, by SNI).")
HTTP_INTERFACES = Option("http_interfaces", list[str], LOOPBACK,
                         'Addresses the HTTP ports listen on; "*" = all IPv4, "::" = all IPv6.',
                         scope="global", validate=valid_interfaces, restart=True)
HTTPS_INTERFACES = Option("https_interfaces", list[str], LOOPBACK,
                          "Addresses the HTTPS ports listen on.", scope="global",
                          validate=valid_interfaces, restart=True)
EXTERNAL_URL = Option("http_external_url", str, "",
                      "The public base URL of this host's HTTP services, as clients reach "
                      'them (behind a proxy: "https://example.org/"); empty: this server\'s '
                      "own first port.", example="https://example.org/",
                      validate=_valid_base_url)
DEFAULT_HOST = Option("http_default_host", str, "",
                      "The host a request is served for when its Host header names none of "
                      "ours (a request by IP address); empty: only global routes answer.",
                      scope="global")
PATHS = Option("http_paths", dict[str, str], {},
               'Base path per module, replacing its default ({ websocket = "/ws" }).',
               scope="global", example={"websocket": "/ws"})
TRUSTED_PROXIES = Option("trusted_proxies", list[str], LOOPBACK,
                         "Proxies whose X-Forwarded-For and X-Forwarded-Proto are believed "
                         "(addresses or CIDR blocks).", scope="global",
                         validate=_valid_networks)
CORS_ORIGINS = Option("access_control_allow_origins", list[str], [],
                      "Origins browsers may call CORS-enabled routes from "
                      '("https://chat.example.org"); empty: any origin ("*").',
                      scope="global")
CORS_OVERRIDE = Option("http_cors_override", dict[str, bool], {},
                       "CORS on or off per module, replacing the module's default "
                       "({ bosh = false }).", scope="global", example={"bosh": False})
# Prosody's http_max_content_size: bodies a handler reads whole (streaming handlers, file
# uploads, apply their own limits).
MAX_CONTENT = Option("http_max_content_size", int, 10 * 1024 * 1024,
                     "Largest request body read into memory, in bytes (413 beyond).",
                     min=1024, scope="global", cite="RFC 9110 §15.5.14")
MAX_HEADER = Option("http_max_header_size", int, 8190,
                    "Longest request line or header line, in bytes.", min=1024,
                    max=1024 * 1024, scope="global", cite="RFC 9110 §15.5.19")
MAX_HEADERS = Option("http_max_headers", int, 100, "Most header lines in one request.",
                     min=10, max=10000, scope="global", cite="RFC 9110 §15.5.19")
KEEPALIVE = Option("http_keepalive_timeout", int, 75,
                   "Seconds a connection may take to send its first or next whole request "
                   "before it is closed.", min=1, max=3600, scope="global",
                   cite="RFC 9112 §9.3")

OPTIONS: list[Option[Any]] = [
    HTTP_PORTS, HTTPS_PORTS, HTTP_INTERFACES, HTTPS_INTERFACES, EXTERNAL_URL, DEFAULT_HOST,
    PATHS, TRUSTED_PROXIES, CORS_ORIGINS, CORS_OVERRIDE, MAX_CONTENT, MAX_HEADER,
    MAX_HEADERS, KEEPALIVE,
]


class HttpServer:
    """The running server: the aiohttp runner and where it is bound (``http-server``)."""

    def __init__(self, module: ModuleApi, runner: web.AppRunner) -> None:
        self.module = module
        self.runner = runner
        self.bound: dict[str, list[tuple[str, int]]] = {"http": [], "https": []}

    def external_url(self, host: str | None, path: str) -> str:
        """``http_external_url`` of ``host`` (or the global one) joined with ``path``;
        without one, this server's first port under the host's name."""
        module = self.module
        base = module.option(EXTERNAL_URL, host=host) if host else module.global_option(
            EXTERNAL_URL)
        if not base:
            scheme, addrs = (("https", self.bound["https"]) if self.bound["https"]
                             and not self.bound["http"] else ("http", self.bound["http"]))
            port = addrs[0][1] if addrs else 5280
            name = host or (addrs[0][0] if addrs else "localhost")
            if ":" in name:
                name = f"[{name}]"
            base = f"{scheme}://{name}:{port}"
        return base.rstrip("/") + path


async def load(module: ModuleApi) -> None:
    routes = module.http_routes
    routes.set_paths(module.option(PATHS))
    settings = HttpSettings(
        trusted_proxies=parse_networks(module.option(TRUSTED_PROXIES)),
        default_host=module.option(DEFAULT_HOST) or None,
        cors_origins=frozenset(module.option(CORS_ORIGINS)),
        cors_override=dict(module.option(CORS_OVERRIDE)))
    table = RouteTable(routes.match, routes.allowed_methods,
                       lambda name: module.host_kind(name) is not None)
    limits = ServerLimits(max_body=module.option(MAX_CONTENT),
                          max_header=module.option(MAX_HEADER),
                          max_headers=module.option(MAX_HEADERS),
                          keepalive=module.option(KEEPALIVE))
    runner = await make_runner(Dispatcher(table, settings), limits)
    server = HttpServer(module, runner)
    module.provides("http-server", server)
    try:
        await _listen(module, server)
    except BaseException:
        await runner.cleanup()
        raise
    routes.url_for = server.external_url
    module.on_unload(lambda: setattr(routes, "url_for", None))


async def _listen(module: ModuleApi, server: HttpServer) -> None:
    factory = server.runner.server
    assert factory is not None
    ports = tuple(module.option(HTTP_PORTS))
    if ports:
        server.bound["http"] = await module.listen(ListenSpec(
            "http", ports, tuple(module.option(HTTP_INTERFACES)), factory=factory))
        module.log.info("HTTP on %s", server.bound["http"])
    tls_ports = tuple(module.option(HTTPS_PORTS))
    if tls_ports:
        if not module.tls_available:
            module.log.warning("no certificate: HTTPS ports %s not opened", tls_ports)
            return
        server.bound["https"] = await module.listen(ListenSpec(
            "http", tls_ports, tuple(module.option(HTTPS_INTERFACES)), direct_tls=True,
            factory=factory))
        module.log.info("HTTPS on %s", server.bound["https"])


async def unload(module: ModuleApi) -> None:
    server = module.find("http-server", HttpServer)
    if server is not None:
        # Ends open requests and WebSockets; the listening sockets close after this.
        await server.runner.cleanup()
