"""The core protocol modules, XML in and XML out."""

from __future__ import annotations

import inspect

from helpers import run
from moduletest import FakeConnection, ModuleTestServer, condition

from tercet.core.session import C2SSession
from tercet.core.streamevents import StreamElementEvent
from tercet.protocol.jid import JID
from tercet.protocol.stanza import Element


def test_ping_and_unknown_iq() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            romeo = await srv.connect("romeo@localhost/a")
            await romeo.send("<iq xmlns='jabber:client' type='get' id='p' to='localhost'>"
                             "<ping xmlns='urn:xmpp:ping'/></iq>")
            romeo.expect("iq", type="result", id="p", from_="localhost")
            await romeo.send("<iq xmlns='jabber:client' type='get' id='u' to='localhost'>"
                             "<nope xmlns='urn:x'/></iq>")
            reply = romeo.expect("iq", type="error", id="u")
            assert reply.find("error").find(  # type: ignore[union-attr]
                "service-unavailable", "urn:ietf:params:xml:ns:xmpp-stanzas") is not None
    run(main())


def test_iq_without_payload_is_bad_request() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            romeo = await srv.connect("romeo@localhost/a")
            await romeo.send("<iq xmlns='jabber:client' type='get' id='x' to='localhost'/>")
            reply = romeo.expect("iq", type="error")
            assert reply.find("error").find(  # type: ignore[union-attr]
                "bad-request", "urn:ietf:params:xml:ns:xmpp-stanzas") is not None
    run(main())


def test_errors_are_never_answered() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            romeo = await srv.connect("romeo@localhost/a")
            await romeo.send("<iq xmlns='jabber:client' type='error' id='e' to='localhost'>"
                             "<error type='cancel'/></iq>")
            await romeo.send("<message xmlns='jabber:client' type='error' "
                             "to='nobody@localhost'/>")
            romeo.nothing()
    run(main())


def test_message_to_a_full_jid_of_another_resource() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            a = await srv.connect("romeo@localhost/a")
            b = await srv.connect("romeo@localhost/b")
            await a.send("<message xmlns='jabber:client' to='romeo@localhost/b'>"
                         "<body>hi</body></message>")
            msg = b.expect("message", from_="romeo@localhost/a")
            assert msg.child_text("body") == "hi"
            a.nothing()
    run(main())


def test_message_without_to_goes_to_the_senders_own_resources() -> None:
    # RFC 6120 §10.3.1: as if addressed to the sender's bare JID; no error comes back.
    async def main() -> None:
        async with ModuleTestServer() as srv:
            a = await srv.connect("romeo@localhost/a")
            b = await srv.connect("romeo@localhost/b")
            for client in (a, b):
                await client.send("<presence xmlns='jabber:client'/>")
            a.received()
            b.received()
            await a.send("<message xmlns='jabber:client' type='chat' id='n'>"
                         "<body>note to self</body></message>")
            for client in (a, b):
                msg = client.expect("message", from_="romeo@localhost/a")
                assert msg.get("to") == "romeo@localhost"
                assert msg.child_text("body") == "note to self"
            a.nothing()
    run(main())


def test_bind_prepares_the_requested_resource() -> None:
    # The resource is prepared on its own (no full JID parsed for it): the same result and
    # the same errors as preparing it in the full JID.
    async def main() -> None:
        async with ModuleTestServer() as srv:
            host = srv.server.hosts["localhost"]
            ns = "urn:ietf:params:xml:ns:xmpp-bind"

            async def bind(resource: str) -> Element:
                conn = FakeConnection()
                session = C2SSession(host, conn)
                session.username = "romeo"
                session.authenticated = True
                iq = Element("iq", "jabber:client", {"type": "set", "id": "b"})
                iq.tag("bind", ns).text_tag("resource", resource)
                result = host.events.fire(f"unbound-iq/{ns}:bind",
                                          StreamElementEvent(session, iq))
                if inspect.isawaitable(result):
                    await result
                return conn.stanzas[-1]

            for requested, prepared in (("Balcony", "Balcony"), ("a/b@c", "a/b@c"),
                                        ("\ufb00ort", "ffort"), ("x\u200by", "xy")):
                reply = await bind(requested)
                assert reply.get("type") == "result", reply
                jid = reply.find("bind", ns).child_text("jid", ns)  # type: ignore[union-attr]
                assert jid == f"romeo@localhost/{prepared}"
                assert str(JID.parse(jid or "")) == jid
            for bad in ("bell\u0007", "x" * 1100, "\u200b"):
                reply = await bind(bad)
                assert condition(reply) == "bad-request", reply
    run(main())
