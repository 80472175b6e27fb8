"""Abuse and load controls on a real server over real TLS: read rates (module ``limits``),
connection rates per address (127.0.0.1 and 127.0.0.2), and the registration throttle
surviving a restart (module ``register``)."""

from __future__ import annotations

import asyncio
import logging
import ssl

import pytest
from harness import ServerHarness
from helpers import run
from sasl2client import HEADER, RawClient

PASSWORD = "limits pass"
RATE = 2000  # bytes per second: "2kb/s"
BURST = 1.0  # seconds: "1s"
PING_SIZE = 500
LIMITED = """
limits = { c2s = { rate = "2kb/s", burst = "1s" } }
limits_connection_rate = 1
limits_connection_burst = 3
"""


def limited_server(make_server, extra: str = LIMITED) -> ServerHarness:  # noqa: ANN001
    modules = 'modules_enabled = ["limits", "roster", "saslauth", "tls", "ping", "register",' \
              ' "c2s", "bind", "iq", "message", "presence", "disco"]'
    return make_server(extra=f"{extra}\n{modules}")


async def bound_client(port: int, source: str = "127.0.0.1") -> RawClient:
    client = await RawClient().connect(port, source)
    assert (await client.plain_login("romeo", PASSWORD)).name == "success"
    client.parser.reset()  # the server answers with a new stream (RFC 6120 §6.4.6)
    client.send(HEADER)
    await client.next_named("features")
    client.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
    assert (await client.next_named("iq")).get("type") == "result"
    return client


def padded_ping(n: int) -> str:
    ping = f"<iq type='get' id='p{n}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"
    return ping + " " * (PING_SIZE - len(ping))


def test_a_client_sending_faster_than_the_rate_is_slowed(
        make_server, caplog: pytest.LogCaptureFixture) -> None:  # noqa: ANN001
    caplog.set_level(logging.INFO, logger="tercet")
    server = limited_server(make_server)
    server.create_user("romeo", PASSWORD)
    port = server.port(direct_tls=True)

    async def main() -> None:
        client = await bound_client(port)
        loop = asyncio.get_running_loop()
        client.send("".join(padded_ping(n) for n in range(40)))  # 20 kB at once
        start = loop.time()
        answered = 0
        window = 3.0
        while loop.time() - start < window:
            try:
                reply = await asyncio.wait_for(client.next(), window - (loop.time() - start))
            except TimeoutError:
                break
            if reply.name == "iq" and (reply.get("id") or "").startswith("p"):
                answered += 1
        elapsed = loop.time() - start
        # What the server processed in the window is within the bucket: a full burst plus
        # the rate for the time that passed (plus the ping a chunk boundary may split).
        assert answered > 0
        assert answered * PING_SIZE <= RATE * BURST + RATE * elapsed + PING_SIZE, \
            (answered, elapsed)
        assert answered < 40
        await client.close()
    run(main())
    assert any("throttling c2s session" in r.getMessage() for r in caplog.records)


UNLIMITED = """
limits = { c2s = { rate = "100b/s", burst = "60s" } }
unlimited_jids = ["romeo@localhost"]
"""


def test_unlimited_jids_read_without_a_budget(make_server) -> None:  # noqa: ANN001
    # 100 bytes a second would take minutes for these 20 kB; romeo is exempt once logged in
    # (the 6 kB burst covers the login itself).
    server = limited_server(make_server, UNLIMITED)
    server.create_user("romeo", PASSWORD)

    async def main() -> None:
        client = await bound_client(server.port(direct_tls=True))
        client.send("".join(padded_ping(n) for n in range(40)))
        answered = set()
        while len(answered) < 40:
            reply = await client.next()
            if reply.name == "iq":
                answered.add(reply.get("id"))
        await client.close()
    run(main())


def test_connection_burst_from_one_address_is_refused_not_from_another(
        make_server, caplog: pytest.LogCaptureFixture) -> None:  # noqa: ANN001
    caplog.set_level(logging.INFO, logger="tercet")
    server = limited_server(make_server)
    port = server.port(direct_tls=True)

    async def main() -> None:
        admitted = [await RawClient().connect(port, "127.0.0.1") for _ in range(3)]
        for client in admitted:
            assert client.features.name == "features"
        # Refused when TCP accepts, before any TLS: the handshake never starts, so a
        # flood of refused connections costs no handshake and holds no descriptor.
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await RawClient().connect(port, "127.0.0.1")
        other = await RawClient().connect(port, "127.0.0.2")
        assert other.features.name == "features"
        for client in [*admitted, other]:
            await client.close()
    run(main())
    refusals = [r.getMessage() for r in caplog.records
                if "refusing a c2s connection from 127.0.0.1" in r.getMessage()]
    assert len(refusals) == 1


def test_exempt_addresses_and_the_default_are_generous(make_server) -> None:  # noqa: ANN001
    # The defaults: 40 logins a minute from one address (a household, an office) pass.
    server = limited_server(make_server, "")
    port = server.port(direct_tls=True)

    async def main() -> None:
        for _ in range(2):
            clients = [await RawClient().connect(port, "127.0.0.1") for _ in range(20)]
            assert all(c.features.name == "features" for c in clients)
            for client in clients:
                await client.close()
    run(main())


REGISTER = ("<iq type='set' id='r'><query xmlns='jabber:iq:register'><username>{}</username>"
            "<password>pw</password></query></iq>")
OPEN = """
allow_registration = true
registration_allowlist = []
min_seconds_between_registrations = 3600
"""


async def register(port: int, username: str) -> str:
    client = await RawClient().connect(port, "127.0.0.1")
    try:
        client.send(REGISTER.format(username))
        reply = await client.next_named("iq")
        error = reply.find("error")
        return "ok" if error is None else next(c.name for c in error.elements())
    finally:
        await client.close()


def test_registration_throttle_survives_a_restart(make_server) -> None:  # noqa: ANN001
    server: ServerHarness = make_server(extra=OPEN)
    run(register(server.port(direct_tls=True), "first"))
    server.stop()
    server = make_server(extra=OPEN)
    assert run(register(server.port(direct_tls=True), "second")) == "policy-violation"
    # Another address is not throttled.

    async def elsewhere() -> str:
        client = await RawClient().connect(server.port(direct_tls=True), "127.0.0.2")
        try:
            client.send(REGISTER.format("third"))
            reply = await client.next_named("iq")
            return str(reply.get("type"))
        finally:
            await client.close()
    assert run(elsewhere()) == "result"
