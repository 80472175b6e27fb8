"""The HTTP server (module ``http``) against a real server on OS-picked ports: routing by
Host and path, the route API and unload, http_paths, trusted proxies, CORS, limits,
HTTPS, the access log, and a port that cannot be bound."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from harness import ServerHarness
from helpers import run

from tercet.core.http import AltConnection
from tercet.core.moduleapi import ModuleApi, ModuleError

HTTP = """
http_ports = [0]
https_ports = [0]
http_interfaces = ["127.0.0.1"]
https_interfaces = ["127.0.0.1"]
{more}

[virtualhosts."other.test"]
modules_enabled = []
"""
MODULES = 'modules_enabled = ["websocket", "http_altconnect"]'
ONLY_HTTP = 'modules_enabled = ["http"]'
NS_XRD = "http://docs.oasis-open.org/ns/xri/xrd-1.0"


def start(make_server: Any, more: str = "", host_extra: str = MODULES) -> ServerHarness:
    server: ServerHarness = make_server(extra=HTTP.format(more=more), host_extra=host_extra)
    return server


def http_port(server: ServerHarness, tls: bool = False) -> int:
    assert server.server is not None
    return server.server.net.bound()["http/tls" if tls else "http"][0][1]


async def get(url: str, **kw: Any) -> tuple[int, str, Any]:
    async with aiohttp.ClientSession() as http, http.get(url, **kw) as resp:
        return resp.status, await resp.text(), resp.headers


def add_route(server: ServerHarness, method: str, path: str, handler: Any,
              host: str = "*") -> ModuleApi:
    """Register a route as a module named ``echo`` would; ``_unload()`` removes it."""
    assert server.server is not None
    api = ModuleApi(server.server, "echo", host)
    server.call(_add(api, method, path, handler))
    return api


async def _add(api: ModuleApi, method: str, path: str, handler: Any) -> None:
    api.add_http_route(method, path, handler)


def unload(server: ServerHarness, api: ModuleApi) -> None:
    """Undo everything ``api`` registered, on the server's loop, and wait for it."""
    async def undo() -> None:
        api._unload()
    server.call(undo())


@pytest.fixture
def access_log() -> Iterator[list[str]]:
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger = logging.getLogger("tercet.http.access")
    handler, level = Keep(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lines
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_host_meta_xrd_and_json(make_server: Any) -> None:
    server = start(make_server)
    port = http_port(server)

    async def main() -> None:
        status, body, headers = await get(f"http://localhost:{port}/.well-known/host-meta")
        assert status == 200
        assert headers["Content-Type"].startswith("application/xrd+xml")
        assert f"<XRD xmlns=\"{NS_XRD}\">" in body
        assert ('<Link rel="urn:xmpp:alt-connections:websocket" '
                f'href="ws://localhost:{port}/xmpp-websocket"/>') in body
        status, body, headers = await get(
            f"http://localhost:{port}/.well-known/host-meta.json")
        assert status == 200 and headers["Content-Type"].startswith("application/json")
        assert json.loads(body) == {"links": [{
            "rel": "urn:xmpp:alt-connections:websocket",
            "href": f"ws://localhost:{port}/xmpp-websocket"}]}
        assert headers["Server"] == "Tercet"  # no library version banner
    run(main())


def test_host_meta_lists_what_modules_offer(make_server: Any) -> None:
    """A transport lists itself with an ``altconnect`` service (how BOSH will), and
    leaves the list when it unloads."""
    server = start(make_server)
    port = http_port(server)
    assert server.server is not None
    bosh = ModuleApi(server.server, "bosh", "localhost")

    async def handler(request: web.Request) -> web.Response:
        return web.Response()

    async def offer() -> None:
        route = bosh.add_http_route("POST", "", handler, base="/http-bind", cors=True)
        bosh.provides("altconnect", AltConnection("urn:xmpp:alt-connections:xbosh", route))

    server.call(offer())
    url = f"http://localhost:{port}/.well-known/host-meta.json"
    links = json.loads(run(get(url))[1])["links"]
    assert {"rel": "urn:xmpp:alt-connections:xbosh",
            "href": f"http://localhost:{port}/http-bind"} in links
    assert len(links) == 2
    unload(server, bosh)
    assert len(json.loads(run(get(url))[1])["links"]) == 1


def test_routes_by_host(make_server: Any) -> None:
    """A route of a module on localhost answers Host: localhost only."""
    server = start(make_server)
    port = http_port(server)
    url = f"http://127.0.0.1:{port}/.well-known/host-meta.json"

    async def main() -> None:
        assert (await get(url, headers={"Host": f"localhost:{port}"}))[0] == 200
        assert (await get(url, headers={"Host": "LOCALHOST."}))[0] == 200
        assert (await get(url, headers={"Host": "other.test"}))[0] == 404
        assert (await get(url))[0] == 404  # by IP: no host, no http_default_host
    run(main())


def test_default_host(make_server: Any) -> None:
    server = start(make_server, 'http_default_host = "localhost"')
    port = http_port(server)

    async def main() -> None:
        status, body, _ = await get(f"http://127.0.0.1:{port}/.well-known/host-meta.json")
        assert status == 200 and "/xmpp-websocket" in body
    run(main())


def test_external_url_and_http_paths(make_server: Any) -> None:
    server = start(make_server, 'http_paths = { websocket = "/ws" }',
                   MODULES + '\nhttp_external_url = "https://chat.example.org/"')
    port = http_port(server)

    async def main() -> None:
        status, body, _ = await get(f"http://localhost:{port}/.well-known/host-meta.json")
        assert json.loads(body)["links"][0]["href"] == "wss://chat.example.org/ws"
        # The WebSocket is at the new path, not the default one.
        assert (await get(f"http://localhost:{port}/xmpp-websocket"))[0] == 404
        assert (await get(f"http://localhost:{port}/ws"))[0] == 400  # not an upgrade
    run(main())


def test_route_api_parameters_methods_and_unload(make_server: Any) -> None:
    server = start(make_server, host_extra=ONLY_HTTP)
    port = http_port(server)

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.Response(text=f"{request.match_info['name']}:{body.decode()}")

    api = add_route(server, "POST", "/{name}", echo)

    async def main() -> None:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"http://localhost:{port}/echo/x", data=b"hi") as resp:
                assert (resp.status, await resp.text()) == (200, "x:hi")
            async with http.get(f"http://localhost:{port}/echo/x") as resp:
                assert resp.status == 405 and resp.headers["Allow"] == "POST"
            async with http.get(f"http://localhost:{port}/nothing") as resp:
                assert resp.status == 404
    run(main())
    unload(server, api)

    async def gone() -> None:
        async with aiohttp.ClientSession() as http, http.post(
                f"http://localhost:{port}/echo/x", data=b"hi") as resp:
            assert resp.status == 404
    run(gone())


def test_route_conflict_raises(make_server: Any) -> None:
    server = start(make_server, host_extra=ONLY_HTTP)

    async def nothing(request: web.Request) -> web.Response:
        return web.Response()

    add_route(server, "GET", "/a", nothing)
    with pytest.raises(ValueError):
        add_route(server, "GET", "/a", nothing)


def test_body_and_header_limits(make_server: Any) -> None:
    server = start(make_server, "http_max_content_size = 2048\nhttp_max_header_size = 1024",
                   host_extra=ONLY_HTTP)
    port = http_port(server)

    async def size(request: web.Request) -> web.Response:
        return web.Response(text=str(len(await request.read())))

    add_route(server, "POST", "", size)

    async def main() -> None:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"http://localhost:{port}/echo", data=b"x" * 2048) as resp:
                assert (resp.status, await resp.text()) == (200, "2048")
            async with http.post(f"http://localhost:{port}/echo", data=b"x" * 2049) as resp:
                assert resp.status == 413
            async with http.get(f"http://localhost:{port}/echo",
                                headers={"X-Big": "y" * 2000}) as resp:
                assert resp.status in (400, 431)
    run(main())


def test_slow_requests_are_cut_off(make_server: Any) -> None:
    """A connection that has not sent a whole request within http_keepalive_timeout is
    closed: the bound on clients that trickle their headers (slowloris)."""
    server = start(make_server, "http_keepalive_timeout = 1", host_extra=ONLY_HTTP)
    port = http_port(server)

    async def main() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /echo HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the server
        writer.close()
    run(main())


def test_trusted_proxy_headers(make_server: Any, access_log: list[str]) -> None:
    """X-Forwarded-For from a trusted proxy (loopback by default) names the client."""
    server = start(make_server, host_extra=ONLY_HTTP)
    port = http_port(server)
    seen: list[tuple[str | None, bool]] = []

    async def who(request: web.Request) -> web.Response:
        seen.append((request.remote, request.secure))
        return web.Response()

    add_route(server, "GET", "", who)
    forwarded = {"X-Forwarded-For": "203.0.113.9, 127.0.0.1", "X-Forwarded-Proto": "https"}

    async def main() -> None:
        await get(f"http://localhost:{port}/echo", headers=forwarded)
        await get(f"http://localhost:{port}/echo")
    run(main())
    assert seen == [("203.0.113.9", True), ("127.0.0.1", False)]
    assert any(line.startswith('203.0.113.9 "GET /echo HTTP/1.1" 200') for line in access_log)


def test_untrusted_proxy_headers_ignored(make_server: Any) -> None:
    server = start(make_server, 'trusted_proxies = ["10.0.0.0/8"]', host_extra=ONLY_HTTP)
    port = http_port(server)
    seen: list[tuple[str | None, bool]] = []

    async def who(request: web.Request) -> web.Response:
        seen.append((request.remote, request.secure))
        return web.Response()

    add_route(server, "GET", "", who)
    run(get(f"http://localhost:{port}/echo", headers={
        "X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}))
    assert seen == [("127.0.0.1", False)]


def test_cors_any_origin(make_server: Any) -> None:
    server = start(make_server)
    url = f"http://localhost:{http_port(server)}/.well-known/host-meta"

    async def main() -> None:
        _, _, headers = await get(url, headers={"Origin": "https://page.example"})
        assert headers["Access-Control-Allow-Origin"] == "*"
        async with aiohttp.ClientSession() as http, http.options(url, headers={
                "Origin": "https://page.example",
                "Access-Control-Request-Method": "GET"}) as resp:
            assert resp.status == 204
            assert resp.headers["Access-Control-Allow-Origin"] == "*"
            assert resp.headers["Access-Control-Allow-Methods"] == "GET, HEAD"
        # Not a CORS route: no grant.
        _, _, headers = await get(url.replace(".well-known/host-meta", "xmpp-websocket"),
                                  headers={"Origin": "https://page.example"})
        assert "Access-Control-Allow-Origin" not in headers
    run(main())


def test_cors_listed_origins_and_override(make_server: Any) -> None:
    server = start(make_server, 'access_control_allow_origins = ["https://chat.example"]')
    url = f"http://localhost:{http_port(server)}/.well-known/host-meta"

    async def main() -> None:
        _, _, headers = await get(url, headers={"Origin": "https://chat.example"})
        assert headers["Access-Control-Allow-Origin"] == "https://chat.example"
        assert "Origin" in headers.getall("Vary")
        _, _, headers = await get(url, headers={"Origin": "https://evil.example"})
        assert "Access-Control-Allow-Origin" not in headers
    run(main())

    off = make_server(extra=HTTP.format(more="http_cors_override = { http_altconnect = false }"),
                      host_extra=MODULES, subdir="off")
    url = f"http://localhost:{http_port(off)}/.well-known/host-meta"
    headers = run(get(url, headers={"Origin": "https://page.example"}))[2]
    assert "Access-Control-Allow-Origin" not in headers


def test_https_with_the_hosts_certificate(make_server: Any) -> None:
    server = start(make_server)
    port = http_port(server, tls=True)
    ctx = ssl.create_default_context(cafile=str(server.directory / "certs" / "localhost.crt"))

    async def main() -> None:
        status, body, _ = await get(f"https://localhost:{port}/.well-known/host-meta.json",
                                    ssl=ctx)
        assert status == 200 and "/xmpp-websocket" in body
    run(main())


def test_port_in_use_fails_the_start(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        harness = ServerHarness(tmp_path, HTTP.format(more="").replace(
            "http_ports = [0]", f"http_ports = [{port}]"), MODULES)
        with pytest.raises(ModuleError, match="http"):
            harness.start()
