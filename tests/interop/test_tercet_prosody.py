"""Tercet federating with Prosody 0.12 inside a test namespace, in both directions.

Tercet serves ``tercet-a.test`` (alice), Prosody ``prosody-a.test`` (bob). Each finds the
other by its ``_xmpp-server._tcp`` SRV record through the namespace's DNS responder; both
trust the test's private CA, so they authenticate each other by certificate (SASL EXTERNAL,
XEP-0178) unless a test gives Tercet an untrusted certificate. Prosody runs with
``s2s_secure_auth = false`` (dialback allowed) except in the refusal test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from helpers import until
from netns import Netns, logged
from netns_clients import InteropClient, login_to, next_bounce, next_message
from netns_prosody import Prosody
from netns_tercet import Tercet
from slixmpp.exceptions import IqError
from xmpp import TIMEOUT, available, logout

pytestmark = pytest.mark.interop

MakeProsody = Callable[..., Prosody]
MakeTercet = Callable[..., Tercet]

NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
ALICE, BOB = "alice@tercet-a.test", "bob@prosody-a.test"
#: 50 messages in a burst (issue 8, item 7).
BURST = 50


def peers(prosody: MakeProsody, tercet: MakeTercet, *, secure_auth: bool = False,
          untrusted_cert: bool = False) -> tuple[Tercet, Prosody]:
    """Tercet (alice) and Prosody (bob), started, on s2s ports other than 5269: each can
    reach the other only through its SRV record."""
    t = tercet("tercet-a.test", s2s_port=5270, users={"alice": "alice-secret"},
               untrusted_cert=untrusted_cert)
    p = prosody("prosody-a.test", s2s_port=5271, secure_auth=secure_auth)
    p.register("bob", "bob-secret")
    return t, p


async def clients(t: Tercet, p: Prosody) -> tuple[InteropClient, InteropClient]:
    """alice on Tercet and bob on Prosody, logged in and available (messages to a bare
    JID go to available resources)."""
    alice = await login_to(t, "alice", "alice-secret")
    bob = await login_to(p, "bob", "bob-secret")
    await available(alice, bob)
    return alice, bob


async def exchange(sender: InteropClient, receiver: InteropClient, body: str) -> Any:
    """``sender`` sends a chat message to ``receiver``'s bare JID; the message that arrives."""
    sender.send_message(mto=receiver.boundjid.bare, mbody=body, mtype="chat")
    return await next_message(receiver)


def assert_message(received: Any, sender: InteropClient, body: str) -> None:
    assert (received["from"].bare, received["type"], received["body"]) == (
        sender.boundjid.bare, "chat", body)


def test_message_from_tercet_arrives_at_prosody(ns: Netns, prosody: MakeProsody,
                                                tercet: MakeTercet) -> None:
    t, p = peers(prosody, tercet)

    async def main() -> None:
        alice, bob = await clients(t, p)
        try:
            received = await exchange(alice, bob, "hello Prosody, from Tercet")
            assert_message(received, alice, "hello Prosody, from Tercet")
            assert received["from"] == alice.boundjid  # the full JID, resource included
        finally:
            await logout(alice, bob)

    ns.run(main())
    # Tercet found Prosody by SRV through the namespace's responder, and the certificates
    # from the private CA authenticated Tercet to Prosody (XEP-0178).
    assert "_xmpp-server._tcp.prosody-a.test. SRV -> NOERROR, 1 answers" in ns.dns_log()
    logged(p, "Accepting SASL EXTERNAL identity from tercet-a.test")


def test_reply_from_prosody_arrives_at_tercet(ns: Netns, prosody: MakeProsody,
                                              tercet: MakeTercet) -> None:
    t, p = peers(prosody, tercet)

    async def main() -> None:
        alice, bob = await clients(t, p)
        try:
            assert_message(await exchange(alice, bob, "ping"), alice, "ping")
            received = await exchange(bob, alice, "pong, from Prosody")  # inbound to Tercet
            assert_message(received, bob, "pong, from Prosody")
            assert received["from"] == bob.boundjid
        finally:
            await logout(alice, bob)

    ns.run(main())
    # Prosody opened its own stream to Tercet (found by SRV) and authenticated on it: by
    # dialback today, as Tercet requests no client certificate unless its policy needs one.
    assert "_xmpp-server._tcp.tercet-a.test. SRV -> NOERROR, 1 answers" in ns.dns_log()
    logged(p, "Outgoing s2s connection prosody-a.test->tercet-a.test complete")


async def assert_disco_info_result(client: InteropClient, server: str) -> None:
    """disco#info of ``server`` (XEP-0030) answers with a result naming an IM server."""
    iq = client.make_iq_get(queryxmlns=NS_DISCO_INFO, ito=server)
    result = await iq.send(timeout=TIMEOUT)
    assert (result["type"], result["from"], result["id"]) == ("result", server, iq["id"])
    query = result.xml.find(f"{{{NS_DISCO_INFO}}}query")
    assert query is not None, result
    identities = {(i.get("category"), i.get("type"))
                  for i in query.iter(f"{{{NS_DISCO_INFO}}}identity")}
    features = {f.get("var") for f in query.iter(f"{{{NS_DISCO_INFO}}}feature")}
    assert ("server", "im") in identities, result
    assert NS_DISCO_INFO in features, result


async def assert_iq_error(client: InteropClient, to: str, condition: str) -> None:
    """An iq get to ``to`` comes back as an error with ``condition``, same id, from ``to``."""
    iq = client.make_iq_get(queryxmlns=NS_DISCO_INFO, ito=to)
    with pytest.raises(IqError) as caught:
        await iq.send(timeout=TIMEOUT)
    error = caught.value.iq
    assert (error["type"], error["from"], error["id"]) == ("error", to, iq["id"])
    assert error["error"]["condition"] == condition, error


def test_iq_results_and_errors_both_ways(ns: Netns, prosody: MakeProsody,
                                         tercet: MakeTercet) -> None:
    t, p = peers(prosody, tercet)

    async def main() -> None:
        alice = await login_to(t, "alice", "alice-secret")
        bob = await login_to(p, "bob", "bob-secret")
        try:
            # Tercet -> Prosody: the server answers; an account that does not exist cannot
            # (RFC 6121 §8.5.2.2.1 / §8.5.1: service-unavailable).
            await assert_disco_info_result(alice, p.domain)
            await assert_iq_error(alice, f"nobody@{p.domain}/phone", "service-unavailable")
            # Prosody -> Tercet: the same, answered by Tercet over Prosody's stream.
            await assert_disco_info_result(bob, t.domain)
            await assert_iq_error(bob, f"nobody@{t.domain}/phone", "service-unavailable")
        finally:
            await logout(alice, bob)

    ns.run(main())


def test_burst_of_messages_arrives_complete_and_in_order_both_ways(
        ns: Netns, prosody: MakeProsody, tercet: MakeTercet) -> None:
    t, p = peers(prosody, tercet)

    async def burst(sender: InteropClient, receiver: InteropClient, tag: str) -> None:
        bodies = [f"{tag} {i}" for i in range(BURST)]
        for body in bodies:
            sender.send_message(mto=receiver.boundjid.bare, mbody=body, mtype="chat")
        received = [await next_message(receiver) for _ in bodies]
        assert [m["body"] for m in received] == bodies
        assert {(m["from"].bare, m["type"]) for m in received} == {
            (sender.boundjid.bare, "chat")}

    async def main() -> None:
        alice, bob = await clients(t, p)
        try:
            # Both links are opened by the burst itself: the first stanzas wait in the
            # queue while the stream is set up, and must keep their place.
            await burst(alice, bob, "to Prosody")
            await burst(bob, alice, "to Tercet")
        finally:
            await logout(alice, bob)

    ns.run(main())


async def next_presence(client: InteropClient, type_: str, from_bare: str,
                        timeout: float = TIMEOUT) -> Any:
    """The next presence of ``type_`` (``available`` for none) from ``from_bare``; others
    (the client's own, roster-related ones) are skipped. AssertionError after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    seen: list[str] = []
    while True:
        try:
            stanza = await asyncio.wait_for(client.presences.get(), deadline - loop.time())
        except TimeoutError:
            raise AssertionError(f"{client.boundjid} received no {type_} presence from "
                                 f"{from_bare} in {timeout} s; it received: {seen}") from None
        if stanza["from"].bare == from_bare and stanza["type"] == type_:
            return stanza
        seen.append(f"{stanza['type']} from {stanza['from']}")


async def interested(*clients: InteropClient) -> None:
    """Make each client an *interested resource* (RFC 6121 §2.1.6: it requested the
    roster), which servers deliver subscription approvals and roster pushes to; answering
    subscription requests is left to the test, not to slixmpp."""
    for client in clients:
        client.auto_authorize = None
        client.auto_subscribe = False
        await client.get_roster(timeout=TIMEOUT)


def subscription(client: InteropClient, contact: str) -> str:
    """The subscription state of ``contact`` in ``client``'s copy of its roster (kept up to
    date by roster pushes)."""
    return str(client.client_roster[contact]["subscription"])


def test_presence_subscription_both_ways(ns: Netns, prosody: MakeProsody,
                                         tercet: MakeTercet) -> None:
    t, p = peers(prosody, tercet)

    async def main() -> None:
        alice, bob = await clients(t, p)
        await interested(alice, bob)
        try:
            # RFC 6121 §3.1: alice (Tercet) subscribes to bob (Prosody)...
            alice.send_presence(pto=BOB, ptype="subscribe")
            await next_presence(bob, "subscribe", ALICE)
            bob.send_presence(pto=ALICE, ptype="subscribed")
            await next_presence(alice, "subscribed", BOB)
            # ... §3.1.5: bob's server then sends alice bob's current presence.
            assert (await next_presence(alice, "available", BOB))["from"] == bob.boundjid

            # ... and bob (Prosody) to alice (Tercet).
            bob.send_presence(pto=ALICE, ptype="subscribe")
            await next_presence(alice, "subscribe", BOB)
            alice.send_presence(pto=BOB, ptype="subscribed")
            await next_presence(bob, "subscribed", ALICE)
            assert (await next_presence(bob, "available", ALICE))["from"] == alice.boundjid

            # Both rosters say "both" (RFC 6121 §3.1.6, the roster pushes).
            await until(lambda: subscription(alice, BOB) == "both", "alice's roster push")
            await until(lambda: subscription(bob, ALICE) == "both", "bob's roster push")
        finally:
            await logout(alice, bob)

        # RFC 6121 §4.2: presence after login. bob logs in: alice is told (Prosody's
        # broadcast to a subscriber on Tercet); alice logs in: Tercet probes bob
        # (§4.3) and broadcasts alice's presence to bob.
        alice = await login_to(t, "alice", "alice-secret")
        try:
            await available(alice)
            bob = await login_to(p, "bob", "bob-secret")
            try:
                bob.send_presence()
                assert (await next_presence(alice, "available", BOB))["from"] == bob.boundjid
                assert (await next_presence(bob, "available", ALICE))["from"] == alice.boundjid
                await logout(alice)
                await next_presence(bob, "unavailable", ALICE)
                alice = await login_to(t, "alice", "alice-secret")
                alice.send_presence()
                assert (await next_presence(alice, "available", BOB))["from"] == bob.boundjid
                assert (await next_presence(bob, "available", ALICE))["from"] == alice.boundjid
            finally:
                await logout(bob)
        finally:
            await logout(alice)

    ns.run(main())


def test_prosody_restart_mid_conversation(ns: Netns, prosody: MakeProsody,
                                          tercet: MakeTercet) -> None:
    t, p = peers(prosody, tercet)

    async def main() -> None:
        alice, bob = await clients(t, p)
        try:
            assert_message(await exchange(alice, bob, "before 1"), alice, "before 1")
            assert_message(await exchange(bob, alice, "before 2"), bob, "before 2")
            # alice stays logged in to Tercet; Prosody goes away with both s2s streams
            # (bob leaves first, so that his client does not see its server vanish).
            await logout(bob)
            await asyncio.to_thread(p.restart)
            bob = await login_to(p, "bob", "bob-secret")
            await available(bob)
            # Tercet's stream to Prosody died with it: a new one, set up on demand.
            assert_message(await exchange(alice, bob, "after 1"), alice, "after 1")
            assert_message(await exchange(bob, alice, "after 2"), bob, "after 2")
            assert_message(await exchange(alice, bob, "after 3"), alice, "after 3")
        finally:
            await logout(alice, bob)

    ns.run(main())
    # Two s2s connections from Tercet to Prosody: one before the restart, one after.
    assert t.log_text().count("connected to prosody-a.test") == 2


def test_prosody_secure_auth_refuses_untrusted_tercet(ns: Netns, prosody: MakeProsody,
                                                      tercet: MakeTercet) -> None:
    t, p = peers(prosody, tercet, secure_auth=True, untrusted_cert=True)

    async def main() -> None:
        alice = await login_to(t, "alice", "alice-secret")
        try:
            alice.send_message(mto=BOB, mbody="never delivered", mtype="chat")
            bounce = await next_bounce(alice)
            # RFC 6120 §8.3.1: from the address it was sent to, the original payload.
            assert (bounce["type"], bounce["from"], bounce["body"]) == (
                "error", BOB, "never delivered")
            assert bounce["error"]["condition"].startswith("remote-server-"), bounce
        finally:
            await logout(alice)

    ns.run(main())
    logged(p, "Forbidding insecure connection to/from tercet-a.test")


def test_dialback_both_ways_when_tercet_certificate_is_untrusted(
        ns: Netns, prosody: MakeProsody, tercet: MakeTercet) -> None:
    """Prosody cannot validate Tercet's certificate but its policy allows dialback
    (XEP-0220): it verifies Tercet's key over its own stream back to Tercet."""
    t, p = peers(prosody, tercet, untrusted_cert=True)

    async def main() -> None:
        alice, bob = await clients(t, p)
        try:
            assert_message(await exchange(alice, bob, "by dialback"), alice, "by dialback")
            assert_message(await exchange(bob, alice, "by dialback too"), bob,
                           "by dialback too")
        finally:
            await logout(alice, bob)

    ns.run(main())
    log = p.log_text()
    assert "Accepting SASL EXTERNAL identity from tercet-a.test" not in log
    assert "Incoming s2s connection tercet-a.test->prosody-a.test complete" in log
    assert "Outgoing s2s connection prosody-a.test->tercet-a.test complete" in log
    # Tercet validates Prosody's certificate, but cannot use SASL EXTERNAL without
    # presenting a valid one of its own: dialback on both streams.
    logged(t, "authenticated to prosody-a.test by dialback")
    logged(t, "prosody-a.test authenticated by dialback")


def test_message_to_a_domain_that_does_not_resolve_bounces(ns: Netns,
                                                           tercet: MakeTercet) -> None:
    t = tercet("tercet-a.test", users={"alice": "alice-secret"})
    nowhere = "someone@nowhere.test"

    async def main() -> None:
        alice = await login_to(t, "alice", "alice-secret")
        try:
            for i in range(3):
                alice.send_message(mto=nowhere, mbody=f"lost {i}", mtype="chat")
            bounces = [await next_bounce(alice) for _ in range(3)]
            # RFC 6120 §8.3.3.16, in order, from the address each was sent to.
            assert [(b["from"], b["body"], b["error"]["condition"]) for b in bounces] == [
                (nowhere, f"lost {i}", "remote-server-not-found") for i in range(3)]
        finally:
            await logout(alice)

    ns.run(main())
    assert "_xmpp-server._tcp.nowhere.test. SRV -> NXDOMAIN" in ns.dns_log()


def test_tercet_logs_why_prosody_refused_it(ns: Netns, prosody: MakeProsody,
                                            tercet: MakeTercet) -> None:
    t, p = peers(prosody, tercet, secure_auth=True, untrusted_cert=True)

    async def main() -> None:
        alice = await login_to(t, "alice", "alice-secret")
        try:
            alice.send_message(mto=BOB, mbody="never delivered", mtype="chat")
            await next_bounce(alice)
        finally:
            await logout(alice)

    ns.run(main())
    logged(p, "Forbidding insecure connection to/from tercet-a.test")
    logged(t, "prosody-a.test ended the outbound stream with the error not-authorized")
