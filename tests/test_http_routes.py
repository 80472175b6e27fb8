"""The core's HTTP route table (core/http.py): resolution, matching, removal."""

from __future__ import annotations

from typing import Any

import pytest

from tercet.core.http import HttpRoute, HttpRoutes


async def handler(request: Any) -> Any:
    return None


def route(method: str, path: str, *, module: str = "m", base: str = "/m",
          host: str | None = None) -> HttpRoute:
    return HttpRoute(method, path, handler, module, base, host)


def test_exact_and_parameters() -> None:
    routes = HttpRoutes()
    a = route("GET", "")
    b = route("PUT", "/{slot}/{name}")
    routes.add(a)
    routes.add(b)
    assert routes.match(None, "GET", "/m") == (a, {})
    assert routes.match(None, "HEAD", "/m") == (a, {})  # HEAD falls back to GET
    assert routes.match(None, "PUT", "/m/s1/f.txt") == (b, {"slot": "s1", "name": "f.txt"})
    assert routes.match(None, "PUT", "/m/s1/") is None  # empty segment
    assert routes.match(None, "PUT", "/m/s1/f/g") is None
    assert routes.match(None, "POST", "/m") is None
    assert routes.allowed_methods(None, "/m") == ["GET", "HEAD"]


def test_host_routes_before_global_ones() -> None:
    routes = HttpRoutes()
    global_ = route("GET", "/x")
    local = route("GET", "/x", module="n", base="/m", host="a.test")
    routes.add(global_)
    routes.add(local)
    assert routes.match("a.test", "GET", "/m/x") == (local, {})
    assert routes.match("b.test", "GET", "/m/x") == (global_, {})
    assert routes.match(None, "GET", "/m/x") == (global_, {})


def test_host_route_answers_only_its_host() -> None:
    routes = HttpRoutes()
    routes.add(route("GET", "", host="a.test"))
    assert routes.match("b.test", "GET", "/m") is None
    assert routes.match(None, "GET", "/m") is None


def test_paths_override_base() -> None:
    routes = HttpRoutes()
    r = route("GET", "/x")
    routes.add(r)
    routes.set_paths({"m": "/elsewhere/"})
    assert routes.resolve(r) == "/elsewhere/x"
    assert routes.match(None, "GET", "/elsewhere/x") == (r, {})
    assert routes.match(None, "GET", "/m/x") is None


def test_conflict_and_removal() -> None:
    routes = HttpRoutes()
    remove = routes.add(route("GET", "/x"))
    with pytest.raises(ValueError):
        routes.add(route("GET", "/x", module="other", base="/m"))
    remove()
    assert routes.match(None, "GET", "/m/x") is None
    routes.add(route("GET", "/x", module="other", base="/m"))


@pytest.mark.parametrize("bad", [route("BREW", ""), route("GET", "x"),
                                 route("GET", "", base="m")])
def test_bad_routes(bad: HttpRoute) -> None:
    with pytest.raises(ValueError):
        HttpRoutes().add(bad)
