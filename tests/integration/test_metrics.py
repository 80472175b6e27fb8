"""Metrics (module ``http_openmetrics``) against a real server: scrapes before and after
logins (slixmpp over TLS, and a WebSocket), messages, a wrong password and storage work,
parsed with prometheus-client's own parsers; OpenMetrics negotiation; the address
allow-list; unload and reload; module failures and the event loop's lag."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from harness import ServerHarness
from helpers import run, until
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families
from wsclient import WSClient
from xmpp import login, logout

from tercet import __version__
from tercet.core.config import ConfigError

PASSWORD = "s3cret pass"
HTTP = """
http_ports = [0]
https_ports = []
http_interfaces = ["127.0.0.1"]
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
{more}
"""
MODULES = 'modules_enabled = ["http_openmetrics", "websocket"]'
PROMETHEUS_TYPE = "text/plain; version=0.0.4"
OPENMETRICS = "application/openmetrics-text; version=1.0.0"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def start(make_server: Any, more: str = "", subdir: str = "srv") -> ServerHarness:
    server: ServerHarness = make_server(extra=HTTP.format(more=more), host_extra=MODULES,
                                        subdir=subdir)
    return server


def metrics_url(server: ServerHarness, host: str = "127.0.0.1") -> str:
    assert server.server is not None
    return f"http://{host}:{server.server.net.bound()['http'][0][1]}/metrics"


async def fetch(url: str, *, local: str | None = None, **kw: Any) -> tuple[int, str, str]:
    """GET ``url`` (from the address ``local`` when given): status, body, content type."""
    connector = aiohttp.TCPConnector(local_addr=(local, 0) if local else None)
    async with aiohttp.ClientSession(connector=connector) as http, \
            http.get(url, **kw) as resp:
        return resp.status, await resp.text(), resp.headers.get("Content-Type", "")


def samples_of(families: Iterable[Metric]) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in families for s in family.samples}


async def scrape(server: ServerHarness) -> Samples:
    """One scrape in the Prometheus text format, parsed by prometheus-client's parser
    (which rejects what is not valid exposition)."""
    status, body, content_type = await fetch(metrics_url(server))
    assert status == 200, body
    assert content_type.startswith(PROMETHEUS_TYPE)
    return samples_of(text_string_to_metric_families(body))


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == name and want <= have)


def label_values(samples: Samples, name: str, label: str, **labels: str) -> set[str]:
    want = set(labels.items())
    return {dict(have)[label] for (n, have), v in samples.items()
            if n == name and want <= have and v > 0}


def test_sessions_stanzas_authentication_and_storage(make_server: Any) -> None:
    server = start(make_server)
    for name in ("romeo", "juliet"):
        server.create_user(name, PASSWORD)

    async def main() -> None:
        before = await scrape(server)
        assert value(before, "tercet_sessions", type="c2s", host="localhost") == 0
        assert value(before, "tercet_info", version=__version__) == 1
        storage_ops = total(before, "tercet_storage_operation_duration_seconds_count")

        romeo = await login("romeo@localhost/orchard", PASSWORD, server.port())
        juliet = await login("juliet@localhost/balcony", PASSWORD, server.port())
        after = await scrape(server)
        assert value(after, "tercet_sessions", type="c2s", host="localhost") == 2
        assert total(after, "tercet_authentications_total", result="success") == 2
        mechanisms = label_values(after, "tercet_authentications_total", "mechanism")
        assert len(mechanisms) == 1 and next(iter(mechanisms)).startswith("SCRAM-")
        # Logins read the accounts (and bind, roster) stores: each one timed.
        assert total(after, "tercet_storage_operation_duration_seconds_count",
                     driver="sqlite") > storage_ops
        assert total(after, "tercet_storage_operation_duration_seconds_count",
                     driver="sqlite", kind="keyval", operation="get") > 0

        received = value(after, "tercet_stanzas_received_total", stream="c2s",
                         kind="message")
        sent = value(after, "tercet_stanzas_sent_total", stream="c2s", kind="message")
        for n in range(3):
            romeo.send_message(mto="juliet@localhost/balcony", mbody=f"hi {n}", mtype="chat")
            assert (await asyncio.wait_for(juliet.messages.get(), 10))["body"] == f"hi {n}"
        moved = await scrape(server)
        assert value(moved, "tercet_stanzas_received_total", stream="c2s",
                     kind="message") == received + 3
        assert value(moved, "tercet_stanzas_sent_total", stream="c2s",
                     kind="message") == sent + 3
        assert value(moved, "tercet_stanzas_received_total", stream="c2s", kind="iq") > 0

        # A wrong password: one failure, under the mechanism the client tried.
        with pytest.raises(PermissionError):
            await login("romeo@localhost/wrong", "not the password", server.port(),
                        mech="SCRAM-SHA-256")
        failed = await scrape(server)
        assert total(failed, "tercet_authentications_total", result="failure") == 1
        assert value(failed, "tercet_authentications_total", host="localhost",
                     mechanism="SCRAM-SHA-256", result="failure") == 1

        await logout(romeo)
        await until(lambda: server.call(_c2s_sessions(server)) == 1, "romeo's session gone")
        down = await scrape(server)
        assert value(down, "tercet_sessions", type="c2s", host="localhost") == 1
        await logout(juliet)
    run(main())


async def _c2s_sessions(server: ServerHarness) -> int:
    assert server.server is not None
    return sum(1 for _ in server.server.hosts["localhost"].all_sessions())


def test_websocket_sessions_and_stanzas_are_their_own_type(make_server: Any) -> None:
    server = start(make_server)
    server.create_user("romeo", PASSWORD)

    async def main() -> None:
        assert server.server is not None
        port = server.server.net.bound()["http"][0][1]
        ws = await WSClient.connect(f"ws://localhost:{port}/xmpp-websocket")
        await ws.login("romeo", PASSWORD, "SCRAM-SHA-256")
        await ws.send("<presence/>")
        while (await ws.recv()).name != "presence":
            pass
        samples = await scrape(server)
        assert value(samples, "tercet_sessions", type="websocket", host="localhost") == 1
        assert value(samples, "tercet_sessions", type="c2s", host="localhost") == 0
        assert value(samples, "tercet_stanzas_received_total", stream="websocket",
                     kind="presence") == 1
        assert value(samples, "tercet_stanzas_sent_total", stream="websocket",
                     kind="presence") == 1
        assert value(samples, "tercet_authentications_total", host="localhost",
                     mechanism="SCRAM-SHA-256", result="success") == 1
        await ws.close()
    run(main())


def test_unauthenticated_connections_are_counted_apart(make_server: Any) -> None:
    server = start(make_server)

    async def main() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port())
        writer.write(b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0' "
                     b"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
        await reader.readuntil(b"</stream:features>")
        samples = await scrape(server)
        assert value(samples, "tercet_unauthenticated_connections", type="c2s") == 1
        assert value(samples, "tercet_sessions", type="c2s", host="localhost") == 0
        writer.close()
        await writer.wait_closed()
    run(main())


def test_content_negotiation(make_server: Any) -> None:
    server = start(make_server)

    async def main() -> None:
        url = metrics_url(server)
        for accept in ("application/openmetrics-text; version=1.0.0",
                       "application/openmetrics-text",
                       "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"):
            status, body, content_type = await fetch(url, headers={"Accept": accept})
            assert status == 200
            assert content_type.startswith(OPENMETRICS)
            assert body.endswith("# EOF\n")
            families = {f.name: f for f in parse_openmetrics(body)}
            assert families["tercet_stanzas_received"].type == "counter"
            assert families["tercet_storage_operation_duration_seconds"].type == "histogram"
            assert families["tercet_sessions"].type == "gauge"
            assert families["tercet"].type == "info"
        # Prometheus text for anything else, as for no Accept at all.
        for accept in ("text/plain", "*/*", None):
            headers = {"Accept": accept} if accept else {}
            status, body, content_type = await fetch(url, headers=headers)
            assert status == 200 and content_type.startswith(PROMETHEUS_TYPE)
            assert "# EOF" not in body
            assert samples_of(text_string_to_metric_families(body))
    run(main())


def test_process_loop_lag_and_runtime_series(make_server: Any) -> None:
    server = start(make_server)

    async def main() -> None:
        samples = await scrape(server)
        assert value(samples, "process_resident_memory_bytes") > 1_000_000
        assert ("process_cpu_seconds_total", frozenset()) in samples
        assert any(name == "python_info" for name, _ in samples)

        async def lag_measured() -> bool:
            return value(await scrape(server), "tercet_event_loop_lag_seconds_count") >= 1
        await _until_async(lag_measured)
        samples = await scrape(server)
        assert value(samples, "tercet_event_loop_lag_seconds_sum") >= 0
        assert ("tercet_event_loop_last_lag_seconds", frozenset()) in samples
    run(main())


async def _until_async(check: Any, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.1)


def test_module_load_failures_are_counted(make_server: Any) -> None:
    server = start(make_server)
    assert server.server is not None
    manager = server.server.modules

    async def main() -> None:
        await server.acall(_load(manager, "no_such_module"))
        await server.acall(_load(manager, "no_such_module"))
        samples = await scrape(server)
        assert value(samples, "tercet_module_load_failures_total",
                     module="no_such_module") == 2
    run(main())


async def _load(manager: Any, name: str) -> None:
    entry = await manager.load(name, "localhost")
    assert entry.status == "failed"


def test_allow_list(make_server: Any) -> None:
    """Loopback only by default; ``openmetrics_allow_ips`` and ``openmetrics_allow_cidr``
    judge the client's address (after trusted proxies)."""
    only = start(make_server, 'openmetrics_allow_ips = ["127.0.0.1"]')
    block = start(make_server, 'openmetrics_allow_ips = []\n'
                  'openmetrics_allow_cidr = "127.0.0.0/30"', subdir="cidr")

    async def main() -> None:
        assert (await fetch(metrics_url(only), local="127.0.0.1"))[0] == 200
        status, body, _ = await fetch(metrics_url(only), local="127.0.0.2")
        assert status == 403 and "tercet" not in body
        # Through the (trusted, loopback) proxy, the client it names is judged.
        status, _, _ = await fetch(metrics_url(only), local="127.0.0.1",
                                   headers={"X-Forwarded-For": "203.0.113.9"})
        assert status == 403
        # 127.0.0.2 is not a trusted proxy: what it claims is not believed.
        status, _, _ = await fetch(metrics_url(only), local="127.0.0.2",
                                   headers={"X-Forwarded-For": "127.0.0.1"})
        assert status == 403
        assert (await fetch(metrics_url(block), local="127.0.0.2"))[0] == 200
        assert (await fetch(metrics_url(block), local="127.0.0.1"))[0] == 200
        assert (await fetch(metrics_url(block), local="127.0.0.5"))[0] == 403
    run(main())


def test_bad_allow_list_options_are_refused(make_server: Any) -> None:
    with pytest.raises(ConfigError, match="openmetrics_allow_ips: expected IP addresses"):
        start(make_server, 'openmetrics_allow_ips = ["localhost"]')
    with pytest.raises(ConfigError, match="openmetrics_allow_cidr: expected a CIDR block"):
        start(make_server, 'openmetrics_allow_cidr = "10.0.0.0/33"', subdir="cidr")


def test_unload_removes_the_route_and_collectors_and_reload_starts_afresh(
        make_server: Any) -> None:
    """Two servers in one process, each with its own registry (prometheus-client's
    default registry would refuse the second set of series); unload and load again."""
    first = start(make_server)
    second = start(make_server, subdir="second")
    assert first.server is not None
    manager, storage = first.server.modules, first.server.storage

    async def main() -> None:
        assert (await fetch(metrics_url(second)))[0] == 200
        assert storage.observer is not None
        await first.acall(manager.unload("http_openmetrics", "*"))
        assert (await fetch(metrics_url(first)))[0] == 404
        assert storage.observer is None
        assert (await fetch(metrics_url(second)))[0] == 200
        entry = await first.acall(manager.load("http_openmetrics", "*"))
        assert entry.status == "loaded", entry.error
        samples = await scrape(first)
        assert value(samples, "tercet_info", version=__version__) == 1
    run(main())


def test_s2s_streams_stanzas_and_authentications(tmp_path: Path) -> None:
    """a.test sends to b.test: an outbound stream on one side, inbound on the other."""
    from test_s2s import federation  # tests/integration: two Tercets and their DNS

    http = HTTP.format(more="")
    extra = {"a.test": http, "b.test": http}

    async def main() -> None:
        async with federation(tmp_path, extra=extra, modules=(
                "s2s", "dialback", "http_openmetrics")) as servers:
            a, b = servers["a.test"], servers["b.test"]
            alice = await login("user@a.test", "pass", a.c2s_port)
            bob = await login("user@b.test/x", "pass", b.c2s_port)
            try:
                alice.send_message(mto="user@b.test/x", mbody="hello b", mtype="chat")
                assert (await asyncio.wait_for(bob.messages.get(), 15))["body"] == "hello b"
                sent = await scrape(a)
                assert value(sent, "tercet_sessions", type="s2s_out", host="a.test") == 1
                assert value(sent, "tercet_s2s_authentications_total", direction="out",
                             method="dialback") >= 1
                assert value(sent, "tercet_stanzas_sent_total", stream="s2s",
                             kind="message") == 1
                got = await scrape(b)
                assert value(got, "tercet_sessions", type="s2s_in", host="b.test") == 1
                assert value(got, "tercet_stanzas_received_total", stream="s2s",
                             kind="message") == 1
                assert value(got, "tercet_s2s_authentications_total", direction="in",
                             method="dialback") >= 1
            finally:
                await logout(alice, bob)
            # b.test goes away: a.test's outbound stream closes.
            await asyncio.to_thread(b.stop)

            async def closed() -> bool:
                now = await scrape(a)
                return value(now, "tercet_s2s_connections_closed_total",
                             direction="out") >= 1 and value(
                    now, "tercet_sessions", type="s2s_out", host="a.test") == 0
            await _until_async(closed)
    run(main(), timeout=90)


def test_hibernated_sessions(make_server: Any) -> None:
    """A stream-management session whose connection died is still a session, and is
    counted as hibernated too (XEP-0198 §5)."""
    import test_smacks  # tests/integration: a hand-written client that can die

    server: ServerHarness = make_server(
        extra=HTTP.format(more=""),
        host_extra=MODULES[:-1] + ', "smacks"]\nsmacks_hibernation_time = 60')
    server.create_user("romeo", test_smacks.PASSWORD)
    assert server.server is not None
    host = server.server.hosts["localhost"]

    async def main() -> None:
        raw = await test_smacks.Raw.login("romeo", server.port())
        await raw.bind("phone")
        await raw.enable()
        raw.kill()
        await until(lambda: host.user_sessions("romeo")["phone"].detached, "hibernation")
        samples = await scrape(server)
        assert value(samples, "tercet_hibernated_sessions", host="localhost") == 1
        assert value(samples, "tercet_sessions", type="c2s", host="localhost") == 1
        assert value(samples, "tercet_authentications_total", host="localhost",
                     mechanism="PLAIN", result="success") == 1
    run(main())
