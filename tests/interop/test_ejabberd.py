"""ejabberd 23 (Debian's package) as a federation peer inside a test namespace.

First ejabberd with Prosody 0.12, a known-good peer, to prove the ejabberd fixture itself;
then Tercet with ejabberd in both directions: messages, IQ results and errors, and a series
of messages that must arrive complete and in order. Every peer finds the others by their
``_xmpp-server._tcp`` SRV records (s2s ports other than 5269) through the namespace's DNS
responder, and all trust the test's private CA.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import netns_ejabberd as ejabberd_peer
import pytest
from conftest import require
from netns import Netns, logged
from netns_ca import PrivatePKI
from netns_clients import InteropClient, login_to, next_message
from netns_ejabberd import Ejabberd
from netns_prosody import Prosody
from slixmpp.exceptions import IqError
from xmpp import available, logout

pytestmark = pytest.mark.interop

MakeEjabberd = Callable[..., Ejabberd]
MakeProsody = Callable[..., Prosody]

NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
#: Messages sent back to back in each direction; all must arrive, in order.
SERIES = 20


@pytest.fixture
def ejabberd(ns: Netns, pki: PrivatePKI) -> Iterator[MakeEjabberd]:
    """``ejabberd("ejabberd-a.test", users={"alice": "secret"}, ...)``: a started ejabberd
    peer (see :class:`netns_ejabberd.Ejabberd` for the options), its accounts registered
    once it runs. All are stopped after the test."""
    require(ejabberd_peer.missing_requirements())
    started: list[Ejabberd] = []

    def make(domain: str, *, users: dict[str, str] | None = None,
             **options: Any) -> Ejabberd:
        peer = Ejabberd(ns, pki, domain, **options)
        started.append(peer)
        peer.start()
        for user, password in (users or {}).items():
            peer.register(user, password)
        return peer

    yield make
    for peer in reversed(started):
        peer.stop()


async def exchange(sender: InteropClient, receiver: InteropClient, body: str) -> Any:
    """``sender`` sends a chat message to ``receiver``'s bare JID; the message that arrives."""
    sender.send_message(mto=receiver.boundjid.bare, mbody=body, mtype="chat")
    return await next_message(receiver)


def assert_message(received: Any, sender: InteropClient, body: str) -> None:
    assert (received["from"].bare, received["type"], received["body"]) == (
        sender.boundjid.bare, "chat", body)


def test_ejabberd_and_prosody_exchange_messages_both_ways(
        ns: Netns, ejabberd: MakeEjabberd, prosody: MakeProsody) -> None:
    e = ejabberd("ejabberd-a.test", s2s_port=5270, users={"alice": "alice-secret"})
    p = prosody("prosody-a.test", s2s_port=5271, secure_auth=True)
    p.register("bob", "bob-secret")

    async def main() -> None:
        alice = await login_to(e, "alice", "alice-secret")
        bob = await login_to(p, "bob", "bob-secret")
        try:
            await available(alice, bob)
            assert_message(await exchange(alice, bob, "hello Prosody"), alice, "hello Prosody")
            assert_message(await exchange(bob, alice, "hello ejabberd"), bob, "hello ejabberd")
        finally:
            await logout(alice, bob)

    ns.run(main())
    # ejabberd found Prosody by SRV through our responder, and Prosody (under secure auth)
    # accepted ejabberd's certificate: SASL EXTERNAL, no dialback.
    assert "_xmpp-server._tcp.prosody-a.test. SRV -> NOERROR, 1 answers" in ns.dns_log()
    logged(p, "Accepting SASL EXTERNAL identity from ejabberd-a.test")
    logged(p, "SASL EXTERNAL with ejabberd-a.test succeeded")


# -- Tercet with ejabberd -----------------------------------------------------------------

MakeTercet = Callable[..., Any]

#: Bound on each stanza's round trip between Tercet and ejabberd (milliseconds when they
#: work; also how long an expected failure below takes to show).
WAIT = 5.0

#: How ejabberd's stream to Tercet authenticates: Tercet requests a TLS client certificate
#: only under ``s2s_secure_auth`` (net/tls.py), so by default ejabberd falls back to dialback.
AUTH = [
    pytest.param("external", id="tercet-secure-auth-external"),
    # Needs the db: prefix on dialback elements (protocol/dialback.py to_wire): ejabberd
    # 23 drops <verify xmlns='jabber:server:dialback'/> written without it.
    pytest.param("dialback", id="tercet-default-dialback"),
]


def tercet_and_ejabberd(tercet: MakeTercet, ejabberd: MakeEjabberd,
                        auth: str) -> tuple[Any, Ejabberd]:
    """Tercet (alice) and ejabberd (bob), started, on s2s ports other than 5269: each can
    reach the other only through its SRV record. ``auth="external"``: Tercet under
    ``s2s_secure_auth``, so ejabberd's stream to it authenticates by certificate too."""
    t = tercet("tercet-a.test", s2s_port=5270, users={"alice": "alice-secret"},
               secure_auth=auth == "external")
    e = ejabberd("ejabberd-a.test", s2s_port=5271, users={"bob": "bob-secret"})
    return t, e


async def clients(t: Any, e: Ejabberd) -> tuple[InteropClient, InteropClient]:
    """alice on Tercet and bob on ejabberd, logged in and available."""
    alice = await login_to(t, "alice", "alice-secret")
    bob = await login_to(e, "bob", "bob-secret")
    await available(alice, bob)
    return alice, bob


async def assert_disco_info_result(client: InteropClient, server: str) -> None:
    """disco#info of ``server`` (XEP-0030) answers with a result naming an IM server."""
    iq = client.make_iq_get(queryxmlns=NS_DISCO_INFO, ito=server)
    result = await iq.send(timeout=WAIT)
    assert (result["type"], result["from"], result["id"]) == ("result", server, iq["id"])
    query = result.xml.find(f"{{{NS_DISCO_INFO}}}query")
    assert query is not None, result
    identities = {(i.get("category"), i.get("type"))
                  for i in query.iter(f"{{{NS_DISCO_INFO}}}identity")}
    assert ("server", "im") in identities, result


async def assert_iq_error(client: InteropClient, to: str, condition: str) -> None:
    """An iq get to ``to`` comes back as an error with ``condition``, same id, from ``to``."""
    iq = client.make_iq_get(queryxmlns=NS_DISCO_INFO, ito=to)
    with pytest.raises(IqError) as caught:
        await iq.send(timeout=WAIT)
    error = caught.value.iq
    assert (error["type"], error["from"], error["id"]) == ("error", to, iq["id"])
    assert error["error"]["condition"] == condition, error


@pytest.mark.parametrize("auth", AUTH)
def test_messages_between_tercet_and_ejabberd_both_ways(
        ns: Netns, tercet: MakeTercet, ejabberd: MakeEjabberd, auth: str) -> None:
    t, e = tercet_and_ejabberd(tercet, ejabberd, auth)

    async def main() -> None:
        alice, bob = await clients(t, e)
        try:
            alice.send_message(mto=bob.boundjid.bare, mbody="hello ejabberd", mtype="chat")
            received = await next_message(bob, WAIT)
            assert_message(received, alice, "hello ejabberd")
            assert received["from"] == alice.boundjid  # the full JID, resource included
            bob.send_message(mto=alice.boundjid.bare, mbody="hello Tercet", mtype="chat")
            received = await next_message(alice, WAIT)
            assert_message(received, bob, "hello Tercet")
            assert received["from"] == bob.boundjid
        finally:
            await logout(alice, bob)

    ns.run(main())
    # Each found the other by SRV through our responder, and ejabberd accepted Tercet's
    # certificate (SASL EXTERNAL, XEP-0178).
    for domain in (t.domain, e.domain):
        assert f"_xmpp-server._tcp.{domain}. SRV -> NOERROR, 1 answers" in ns.dns_log()
    logged(e, "Accepted inbound s2s EXTERNAL authentication tercet-a.test -> ejabberd-a.test")


@pytest.mark.parametrize("auth", AUTH)
def test_iq_results_and_errors_between_tercet_and_ejabberd(
        ns: Netns, tercet: MakeTercet, ejabberd: MakeEjabberd, auth: str) -> None:
    t, e = tercet_and_ejabberd(tercet, ejabberd, auth)

    async def main() -> None:
        alice = await login_to(t, "alice", "alice-secret")
        bob = await login_to(e, "bob", "bob-secret")
        try:
            # Tercet -> ejabberd: the server answers; a resource of an account that does
            # not exist cannot (RFC 6121 §8.5.2.2.1 / §8.5.1: service-unavailable).
            await assert_disco_info_result(alice, e.domain)
            await assert_iq_error(alice, f"nobody@{e.domain}/phone", "service-unavailable")
            # ejabberd -> Tercet: the same, answered by Tercet over ejabberd's stream.
            await assert_disco_info_result(bob, t.domain)
            await assert_iq_error(bob, f"nobody@{t.domain}/phone", "service-unavailable")
        finally:
            await logout(alice, bob)

    ns.run(main())


@pytest.mark.parametrize("auth", AUTH)
def test_series_of_messages_arrives_complete_and_in_order_both_ways(
        ns: Netns, tercet: MakeTercet, ejabberd: MakeEjabberd, auth: str) -> None:
    t, e = tercet_and_ejabberd(tercet, ejabberd, auth)

    async def series(sender: InteropClient, receiver: InteropClient, tag: str) -> None:
        bodies = [f"{tag} {i}" for i in range(SERIES)]
        for body in bodies:
            sender.send_message(mto=receiver.boundjid.bare, mbody=body, mtype="chat")
        received = [await next_message(receiver, WAIT) for _ in bodies]
        assert [m["body"] for m in received] == bodies
        assert {(m["from"].bare, m["type"]) for m in received} == {
            (sender.boundjid.bare, "chat")}

    async def main() -> None:
        alice, bob = await clients(t, e)
        try:
            # Both links are opened by the series itself: the first stanzas wait in a
            # queue while the stream is set up, and must keep their place.
            await series(alice, bob, "to ejabberd")
            await series(bob, alice, "to Tercet")
        finally:
            await logout(alice, bob)

    ns.run(main())
