"""Alternative connection methods (XEP-0156 §3): ``/.well-known/host-meta`` (XRD, RFC
6415) and ``/.well-known/host-meta.json`` (JRD) list the host's WebSocket and BOSH URLs.

A transport module lists itself by offering an ``altconnect`` service (an
``AltConnection``: its link relation and its route), so BOSH adds itself with one line
and this module lists whatever is loaded when a request comes. Served with CORS, so web
clients on other origins can discover the endpoints (§3.1 expects JavaScript readers).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from tercet.module import AltConnection, ModuleApi, Option
from tercet.protocol.stanza import Element

META = {"summary": "host-meta: WebSocket and BOSH discovery", "stage": "beta",
        "xeps": ["XEP-0156"]}
OPTIONS: list[Option[Any]] = []

NS_XRD = "http://docs.oasis-open.org/ns/xri/xrd-1.0"


def load(module: ModuleApi) -> None:
    module.depends("http")
    module.add_http_route("GET", "/host-meta", lambda r: xrd(module, r),
                          base="/.well-known", cors=True)
    module.add_http_route("GET", "/host-meta.json", lambda r: jrd(module, r),
                          base="/.well-known", cors=True)


def links(module: ModuleApi) -> list[tuple[str, str]]:
    """(rel, href) for every connection method on this host, WebSocket URLs as ws(s)."""
    out = []
    for alt in module.alt_connections():
        out.append((alt.rel, _href(module, alt)))
    return sorted(out)


def _href(module: ModuleApi, alt: AltConnection) -> str:
    url = module.http_url(alt.route)
    if alt.rel.endswith(":websocket"):
        if url.startswith("https:"):
            return "wss:" + url[len("https:"):]
        if url.startswith("http:"):
            return "ws:" + url[len("http:"):]
    return url


async def xrd(module: ModuleApi, request: web.Request) -> web.StreamResponse:
    """RFC 6415 §3: an XRD document of Link elements."""
    doc = Element("XRD", NS_XRD)
    for rel, href in links(module):
        doc.tag("Link", NS_XRD, {"rel": rel, "href": href})
    body = "<?xml version='1.0' encoding='utf-8'?>\n" + doc.to_xml(None)
    return web.Response(text=body, content_type="application/xrd+xml")


async def jrd(module: ModuleApi, request: web.Request) -> web.StreamResponse:
    """RFC 6415 Appendix A: the same as JSON (XEP-0156 §3.2)."""
    body = {"links": [{"rel": rel, "href": href} for rel, href in links(module)]}
    return web.Response(text=json.dumps(body), content_type="application/json")
