"""The interop infrastructure proves itself: two Prosody 0.12 servers federate inside a test
namespace, find each other by SRV through its DNS responder, and authenticate each other
with certificates from the test's private CA under ``s2s_secure_auth = true``; a peer whose
certificate does not chain to that CA is refused."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from netns import Netns, logged
from netns_clients import login_to, next_bounce, next_message
from netns_prosody import Prosody
from xmpp import available, logout

pytestmark = pytest.mark.interop

MakeProsody = Callable[..., Prosody]


def test_message_between_two_prosody_servers(ns: Netns, prosody: MakeProsody) -> None:
    # s2s on ports other than 5269, and no A record for either domain itself: the only way
    # to reach a peer is its _xmpp-server._tcp SRV record.
    a = prosody("prosody-a.test", s2s_port=5270, secure_auth=True)
    b = prosody("prosody-b.test", s2s_port=5271, secure_auth=True)
    alice = a.register("alice", "alice-secret")
    bob = b.register("bob", "bob-secret")

    async def main() -> None:
        on_a = await login_to(a, "alice", "alice-secret")
        on_b = await login_to(b, "bob", "bob-secret")
        try:
            # Available, so that a message to the bare JID is delivered, not stored offline.
            await available(on_a, on_b)
            on_a.send_message(mto=bob, mbody="hello from A", mtype="chat")
            received = await next_message(on_b)
            assert (received["from"].bare, received["body"]) == (alice, "hello from A")
            on_b.send_message(mto=alice, mbody="hello from B", mtype="chat")  # B -> A link
            received = await next_message(on_a)
            assert (received["from"].bare, received["body"]) == (bob, "hello from B")
        finally:
            await logout(on_a, on_b)

    ns.run(main())

    # Each side found the other by SRV (the only way: see above) through our responder...
    for peer in (a, b):
        assert f"_xmpp-server._tcp.{peer.domain}. SRV -> NOERROR, 1 answers" in ns.dns_log()
    # ... and authenticated its certificate (SASL EXTERNAL, XEP-0178), in both directions.
    for server, peer in ((a, b), (b, a)):
        log = server.log_text()
        assert f"SASL EXTERNAL with {peer.domain} succeeded" in log
        assert f"Accepting SASL EXTERNAL identity from {peer.domain}" in log


def test_secure_auth_refuses_a_peer_with_an_untrusted_certificate(
        ns: Netns, prosody: MakeProsody) -> None:
    a = prosody("prosody-a.test", secure_auth=True)
    b = prosody("prosody-b.test", untrusted_cert=True)  # right name, unknown CA
    a.register("alice", "alice-secret")
    bob = b.register("bob", "bob-secret")

    async def main() -> None:
        on_a = await login_to(a, "alice", "alice-secret")
        try:
            on_a.send_message(mto=bob, mbody="never delivered", mtype="chat")
            bounce = await next_bounce(on_a)
            assert (bounce["type"], bounce["from"].bare) == ("error", bob)
            # Prosody's choice of condition; the text names the reason.
            assert bounce["error"]["condition"] == "remote-server-timeout", bounce
            assert "certificate is not trusted" in bounce["error"]["text"]
        finally:
            await logout(on_a)

    ns.run(main())
    logged(a, "Forbidding insecure connection to/from prosody-b.test")
