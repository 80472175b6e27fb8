"""Resolution through a real DNS responder, connections to real sockets on 127.0.0.x."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from dnsresponder import DnsResponder
from helpers import async_test

from tercet.net.resolver import (
    ConnectError,
    HostsFile,
    ResolveError,
    Resolver,
    connect_domain,
    happy_eyeballs,
    parse_nameserver,
)
from tercet.protocol.srv import Target


def test_parse_nameserver() -> None:
    assert parse_nameserver("127.0.0.1") == ("127.0.0.1", 53)
    assert parse_nameserver("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_nameserver("::1") == ("::1", 53)
    assert parse_nameserver("[::1]:5353") == ("::1", 5353)
    with pytest.raises(ValueError):
        parse_nameserver("dns.example:53")


async def _listener(host: str) -> tuple[asyncio.Server, int, list[str]]:
    accepted: list[str] = []

    async def on_conn(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        accepted.append(host)
        w.close()

    srv = await asyncio.start_server(on_conn, host, 0)
    return srv, srv.sockets[0].getsockname()[1], accepted


class Blackhole:
    """A loopback address:port whose accept queue is full, so new connection attempts
    hang (Linux drops the SYN) instead of being refused: a peer that never answers."""

    def __init__(self, host: str) -> None:
        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.sock.listen(0)
        self.port = int(self.sock.getsockname()[1])
        self.fill: list[socket.socket] = []
        for _ in range(3):
            c = socket.socket()
            c.setblocking(False)
            try:
                c.connect((host, self.port))
            except BlockingIOError:
                pass
            self.fill.append(c)

    def close(self) -> None:
        for c in self.fill:
            c.close()
        self.sock.close()


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@async_test
async def test_srv_targets_and_connect(tmp_path: Path) -> None:
    srv, port, accepted = await _listener("127.0.0.3")
    dead = _free_port("127.0.0.2")  # nothing listens there: refused at once
    zone = {
        ("_xmpp-server._tcp.a.test", "SRV"): [f"10 0 {dead} dead.a.test.",
                                              f"20 0 {port} live.a.test."],
        ("dead.a.test", "A"): ["127.0.0.2"],
        ("live.a.test", "A"): ["127.0.0.3"],
    }
    async with DnsResponder(zone) as dns, srv:
        resolver = Resolver([dns.nameserver], hosts=HostsFile(tmp_path / "none"))
        targets = await resolver.targets("a.test")
        assert targets == [Target("dead.a.test", dead), Target("live.a.test", port)]
        connected = await connect_domain(resolver, "a.test", connect_timeout=2)
        connected.sock.close()
        assert connected.target.host == "live.a.test" and connected.address == "127.0.0.3"
        assert ("_xmpps-server._tcp.a.test", "SRV") in dns.queries


@async_test
async def test_fallback_to_a_record_on_5269(tmp_path: Path) -> None:
    async with DnsResponder({("b.test", "A"): ["127.0.0.4"]}) as dns:
        resolver = Resolver([dns.nameserver], hosts=HostsFile(tmp_path / "none"))
        assert await resolver.targets("b.test") == [Target("b.test", 5269)]
        assert await resolver.addresses("b.test") == ["127.0.0.4"]


@async_test
async def test_hosts_file_consulted_before_dns(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.5 c.test # comment\n::1 c.test\n")
    async with DnsResponder({("c.test", "A"): ["127.0.0.9"]}) as dns:
        resolver = Resolver([dns.nameserver], hosts=HostsFile(hosts))
        assert await resolver.addresses("c.test") == ["::1", "127.0.0.5"]
        assert ("c.test", "A") not in dns.queries


@async_test
async def test_unresolvable_domain(tmp_path: Path) -> None:
    async with DnsResponder({}) as dns:
        resolver = Resolver([dns.nameserver], hosts=HostsFile(tmp_path / "none"))
        with pytest.raises(ResolveError):
            await connect_domain(resolver, "nowhere.test")
        dns.add("_xmpp-server._tcp.none.test", "SRV", ["0 0 0 ."])
        with pytest.raises(ResolveError):
            await connect_domain(resolver, "none.test")


@async_test
async def test_happy_eyeballs_staggers_and_first_wins() -> None:
    hole = Blackhole("127.0.0.6")
    srv = await asyncio.start_server(lambda _r, w: w.close(), "127.0.0.7", hole.port)
    try:
        # The first address never answers: the second starts 250 ms later (RFC 8305 §5)
        # and wins; the hanging attempt is cancelled.
        loop = asyncio.get_running_loop()
        start = loop.time()
        sock, addr = await happy_eyeballs(["127.0.0.6", "127.0.0.7"], hole.port, timeout=5)
        elapsed = loop.time() - start
        sock.close()
        assert addr == "127.0.0.7"
        assert 0.2 <= elapsed < 2.0
    finally:
        srv.close()
        hole.close()


@async_test
async def test_happy_eyeballs_all_fail() -> None:
    port = _free_port("127.0.0.8")
    with pytest.raises(ConnectError):
        await happy_eyeballs(["127.0.0.8", "127.0.0.9"], port, timeout=2)


@async_test
async def test_overall_timeout() -> None:
    hole = Blackhole("127.0.0.6")
    zone = {("_xmpp-server._tcp.slow.test", "SRV"): [f"0 0 {hole.port} slow.test."],
            ("slow.test", "A"): ["127.0.0.6"]}
    try:
        async with DnsResponder(zone) as dns:
            resolver = Resolver([dns.nameserver], hosts=HostsFile(Path("/nonexistent")))
            with pytest.raises(ConnectError) as info:
                await connect_domain(resolver, "slow.test", overall_timeout=0.5)
            assert info.value.timeout
    finally:
        hole.close()
