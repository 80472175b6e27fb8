"""Client streams end to end: slixmpp over real TLS against a real server on port 0."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
import slixmpp
from harness import ServerHarness
from helpers import receive, run, until
from xmpp import available, login, logout

PASSWORD = "s3cret pass"


@pytest.fixture
def users(server: ServerHarness) -> ServerHarness:
    server.create_user("romeo", PASSWORD)
    server.create_user("juliet", PASSWORD)
    return server


@pytest.mark.parametrize("mech", ["SCRAM-SHA-256", "SCRAM-SHA-1", "SCRAM-SHA-512", "PLAIN"])
def test_login_over_starttls(users: ServerHarness, mech: str) -> None:
    async def main() -> None:
        client = await login("romeo@localhost/a", PASSWORD, users.port(), mech=mech)
        assert str(client.boundjid) == "romeo@localhost/a"
        assert client.socket.version() in ("TLSv1.2", "TLSv1.3")
        await logout(client)
    run(main())


def test_login_with_channel_binding_on_tls12(users: ServerHarness) -> None:
    """slixmpp does SCRAM-*-PLUS with tls-unique, which we offer on TLS 1.2 only."""
    async def main() -> None:
        client = await login("romeo@localhost/plus", PASSWORD, users.port(),
                             mech="SCRAM-SHA-1-PLUS", tls12=True)
        assert client.socket.version() == "TLSv1.2"
        assert client.plugin["feature_mechanisms"].mech.name == "SCRAM-SHA-1-PLUS"
        await logout(client)
    run(main())


def test_direct_tls_port(users: ServerHarness) -> None:
    async def main() -> None:
        client = await login("romeo@localhost/direct", PASSWORD, users.port(direct_tls=True),
                             direct_tls=True)
        assert client.socket.version() in ("TLSv1.2", "TLSv1.3")
        assert client.socket.selected_alpn_protocol() in (None, "xmpp-client")
        await logout(client)
    run(main())


def test_wrong_password_gives_not_authorized(users: ServerHarness) -> None:
    async def main() -> None:
        with pytest.raises(PermissionError) as info:
            await login("romeo@localhost", "wrong", users.port(), mech="SCRAM-SHA-256")
        assert "not-authorized" in str(info.value)
    run(main())


def test_unknown_user_gives_not_authorized(users: ServerHarness) -> None:
    async def main() -> None:
        with pytest.raises(PermissionError) as info:
            await login("nobody@localhost", "x", users.port(), mech="SCRAM-SHA-1")
        assert "not-authorized" in str(info.value)
    run(main())


def test_two_resources_and_message_routing(users: ServerHarness) -> None:
    async def main() -> None:
        r1 = await login("romeo@localhost/one", PASSWORD, users.port())
        r2 = await login("romeo@localhost/two", PASSWORD, users.port())
        juliet = await login("juliet@localhost/balcony", PASSWORD, users.port())
        await available(r1, ppriority=5)
        await available(r2, ppriority=1)
        await available(juliet)
        juliet.send_message(mto="romeo@localhost/two", mbody="to two")
        msg = await asyncio.wait_for(r2.messages.get(), 10)
        assert msg["body"] == "to two" and str(msg["from"]) == "juliet@localhost/balcony"
        juliet.send_message(mto="romeo@localhost", mbody="to bare", mtype="chat")
        msg = await asyncio.wait_for(r1.messages.get(), 10)
        assert msg["body"] == "to bare"
        # A copy for r2 would have been routed before this marker, from the same sender.
        juliet.send_message(mto="romeo@localhost/two", mbody="marker")
        msg = await asyncio.wait_for(r2.messages.get(), 10)
        assert msg["body"] == "marker", "bare JID messages go to the highest priority only"
        await logout(r1, r2, juliet)
    run(main())


def test_unknown_iq_gives_service_unavailable(users: ServerHarness) -> None:
    async def main() -> None:
        client = await login("romeo@localhost", PASSWORD, users.port())
        iq = client.make_iq_get(queryxmlns="urn:example:nothing", ito="localhost")
        with pytest.raises(slixmpp.exceptions.IqError) as info:
            await iq.send(timeout=10)
        assert info.value.condition == "service-unavailable"
        await logout(client)
    run(main())


def test_ping_version_time(users: ServerHarness) -> None:
    async def main() -> None:
        client = await login("romeo@localhost", PASSWORD, users.port(),
                             plugins=("xep_0199", "xep_0092", "xep_0202", "xep_0030"))
        rtt = await client.plugin["xep_0199"].ping("localhost", timeout=10)
        assert rtt >= 0
        version = await client.plugin["xep_0092"].get_version("localhost", timeout=10)
        assert version["software_version"]["name"] == "Tercet"
        info = await client.plugin["xep_0030"].get_info("localhost", timeout=10)
        assert "urn:xmpp:ping" in info["disco_info"]["features"]
        await logout(client)
    run(main())


def test_accounts_survive_a_restart(make_server) -> None:  # noqa: ANN001
    first = make_server(subdir="persist")
    first.create_user("mercutio", PASSWORD)
    first.stop()
    second = make_server(subdir="persist")

    async def main() -> None:
        # login() raises PermissionError if the account did not survive the restart.
        client = await login("mercutio@localhost/back", PASSWORD, second.port())
        assert str(client.boundjid) == "mercutio@localhost/back"
        await logout(client)
    run(main())


def test_resource_conflict_kicks_the_old_session(users: ServerHarness) -> None:
    async def main() -> None:
        old = await login("romeo@localhost/same", PASSWORD, users.port())
        new = await login("romeo@localhost/same", PASSWORD, users.port())
        await until(lambda: old.stream_errors, "the old session's stream error")
        assert old.stream_errors == ["conflict"]
        assert str(new.boundjid) == "romeo@localhost/same"
        await logout(new)
    run(main())


def test_server_generates_a_resource(users: ServerHarness) -> None:
    async def main() -> None:
        client = await login("romeo@localhost", PASSWORD, users.port())
        assert client.boundjid.resource
        await logout(client)
    run(main())


# -- raw sockets: bad input closes only the offending stream ----------------------------

HEADER = ("<?xml version='1.0'?><stream:stream to='localhost' version='1.0' "
          "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")


FEATURES_END = "</stream:features>"


def raw_exchange(port: int, payload: bytes, *, header: str = HEADER, wait: float = 5,
                 end: str | None = None) -> str:
    """Open a stream, send ``payload`` and return the answer: up to ``end`` when given
    (the server keeps the stream open), else until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        try:
            sock.sendall(header.encode())
            sock.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused at once (a cap): what the server said before closing is read
        return receive(sock, end, wait)


@pytest.mark.parametrize("payload,condition", [
    (b"<!DOCTYPE foo [<!ENTITY x 'y'>]>", "restricted-xml"),
    (b"<message><body>&x;</body></message>", "restricted-xml"),
    (b"<message><body></mess>", "not-well-formed"),
    (b"<message><body>" + b"A" * 300_000 + b"</body></message>", "policy-violation"),
])
def test_bad_input_closes_only_that_stream(users: ServerHarness, payload: bytes,
                                           condition: str) -> None:
    async def main() -> None:
        client = await login("romeo@localhost/steady", PASSWORD, users.port())
        juliet = await login("juliet@localhost/steady", PASSWORD, users.port())
        out = await asyncio.to_thread(raw_exchange, users.port(), payload)
        assert f"<{condition} xmlns=\"urn:ietf:params:xml:ns:xmpp-streams\"/>" in out
        assert out.rstrip().endswith("</stream:stream>")
        juliet.send_message(mto="romeo@localhost/steady", mbody="still here")
        msg = await asyncio.wait_for(client.messages.get(), 10)
        assert msg["body"] == "still here"
        await logout(client, juliet)
    run(main())


def test_unknown_host_is_refused(server: ServerHarness) -> None:
    out = raw_exchange(server.port(), b"", header=HEADER.replace("'localhost'", "'nowhere'"))
    assert "<host-unknown" in out


def test_plain_refused_without_tls(make_server) -> None:  # noqa: ANN001
    """With encryption not required, PLAIN is still withheld on a plaintext stream."""
    srv = make_server(extra="c2s_require_encryption = false")
    out = raw_exchange(srv.port(), b"", end=FEATURES_END)
    assert "<mechanisms" in out
    assert "<mechanism>PLAIN</mechanism>" not in out
    assert "SCRAM-SHA-1" in out
    out = raw_exchange(srv.port(), b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                       b"mechanism='PLAIN'>AHJvbWVvAHBhc3M=</auth>", end="</failure>")
    assert "<invalid-mechanism" in out or "<encryption-required" in out


def test_stanzas_before_auth_are_refused(server: ServerHarness) -> None:
    out = raw_exchange(server.port(), b"<message to='x@localhost'><body>hi</body></message>")
    assert "<not-authorized" in out


def test_encryption_required_by_default(server: ServerHarness) -> None:
    out = raw_exchange(server.port(), b"", end=FEATURES_END)
    assert "<starttls xmlns=\"urn:ietf:params:xml:ns:xmpp-tls\"><required/></starttls>" in out
    assert "<mechanisms" not in out


def test_unauthenticated_connections_time_out(make_server) -> None:  # noqa: ANN001
    srv = make_server(extra="c2s_timeout = 1")
    start = time.monotonic()
    out = raw_exchange(srv.port(), b"", wait=5)
    assert "<connection-timeout" in out
    assert time.monotonic() - start < 4


def test_per_ip_cap_on_unauthenticated_connections(make_server) -> None:  # noqa: ANN001
    srv = make_server(extra="c2s_max_unauthenticated_per_ip = 2")
    socks = [socket.create_connection(("127.0.0.1", srv.port()), timeout=5) for _ in range(2)]
    try:
        for sock in socks:  # the server has taken both once it answers their streams
            sock.sendall(HEADER.encode())
            assert FEATURES_END in receive(sock, FEATURES_END, 5)
        out = raw_exchange(srv.port(), b"", wait=2)
        assert "<policy-violation" in out
    finally:
        for s in socks:
            s.close()
