"""Idle streams give their parser back (net/listeners.py ``sweep_idle``,
StreamReader.hibernate) and carry on as before when they read again: a real server, a
real TLS client with its own namespace prefix on the stream. More streams awake than
``AWAKE_PARSERS_LIMIT`` bring the sweep forward, and the burst's freed memory is trimmed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from harness import ServerHarness
from helpers import run
from sasl2client import RawClient

import tercet.net.listeners

PASSWORD = "sweep pass"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
# The stream prefix is the peer's choice; a woken parser must still know it.
HEADER = ("<?xml version='1.0'?><x:stream xmlns='jabber:client' "
          "xmlns:x='http://etherx.jabber.org/streams' to='localhost' version='1.0'>")


def parsers_held(server: ServerHarness) -> list[bool]:
    assert server.server is not None
    conns: Any = server.server.net.connections
    return [conn._reader._parser is not None for conn in conns]


def test_an_idle_stream_drops_its_parser_and_wakes_on_the_next_stanza(
        make_server, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(tercet.net.listeners, "IDLE_SWEEP", 0.2)
    server: ServerHarness = make_server()
    server.create_user("romeo", PASSWORD)

    async def main() -> None:
        client, jid = await _bound_client(server, "romeo")
        for n in range(3):
            await asyncio.sleep(0.7)  # more than two sweeps: idle for a whole period
            assert parsers_held(server) == [False]
            client.send(f"<message to='{jid}' id='m{n}'><body>still here {n}</body></message>")
            echoed = await client.next_named("message")
            assert echoed.get("id") == f"m{n}"
            assert echoed.find("body", "jabber:client").text == f"still here {n}"  # type: ignore[union-attr]
        # Reading keeps the parser: an active stream is never put to sleep.
        for n in range(4):
            client.send(f"<iq type='get' id='p{n}' to='localhost'>"
                        "<ping xmlns='urn:xmpp:ping'/></iq>")
            assert (await client.next_named("iq")).get("type") == "result"
            await asyncio.sleep(0.1)
        assert parsers_held(server) == [True]
        await client.close()
    run(main())


def test_a_burst_of_streams_brings_the_sweep_forward_and_trims_after_it(
        make_server, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    # The regular sweep would come only after the test; the burst's may not wait for it.
    monkeypatch.setattr(tercet.net.listeners, "IDLE_SWEEP", 60.0)
    monkeypatch.setattr(tercet.net.listeners, "IDLE_SWEEP_FAST", 0.1)
    monkeypatch.setattr(tercet.net.listeners, "AWAKE_PARSERS_LIMIT", 2)
    monkeypatch.setattr(tercet.net.listeners, "TRIM_AFTER_PARSERS", 2)
    server: ServerHarness = make_server()
    names = ["romeo", "juliet", "nurse", "tybalt"]
    for name in names:
        server.create_user(name, PASSWORD)
    assert server.server is not None
    net = server.server.net

    async def main() -> None:
        # Four streams awake: the sweep comes 0.1 s after the third, not in a minute.
        clients = [await _bound_client(server, name) for name in names]
        for _ in range(40):  # bounded: 2 s
            await asyncio.sleep(0.05)
            if not net.awake:
                break
        assert parsers_held(server) == [False] * 4
        assert not net.awake
        if net.trimmer.available:
            assert net.trimmer.trims >= 1
        # A sleeping stream that reads is awake again, and visited by the next sweep.
        client, jid = clients[0]
        client.send(f"<message to='{jid}' id='w'><body>awake</body></message>")
        assert (await client.next_named("message")).get("id") == "w"
        assert len(net.awake) == 1
        assert parsers_held(server).count(True) == 1
        for client, _jid in clients:
            await client.close()
    run(main())


async def _bound_client(server: ServerHarness, user: str) -> tuple[RawClient, str]:
    """A client logged in over direct TLS and bound; its full JID."""
    client = RawClient()
    client.features = await _connect(client, server.port(direct_tls=True))
    assert (await client.plain_login(user, PASSWORD)).name == "success"
    client.parser.reset()
    client.send(HEADER)
    await client.next_named("features")
    client.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
    bound = (await client.next_named("iq")).find_ns(NS_BIND)
    assert bound is not None
    jid = bound.find("jid", NS_BIND).text  # type: ignore[union-attr]
    assert jid
    return client, jid


async def _connect(client: RawClient, port: int) -> Any:
    """Direct TLS with this test's own stream header (prefix ``x``)."""
    import ssl

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    client.reader, client.writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=ctx, server_hostname="localhost")
    client.send(HEADER)
    return await client.next_named("features")
