"""Offline messages (XEP-0160 with XEP-0203 delay stamps), XML in and XML out."""

from __future__ import annotations

from helpers import run
from moduletest import ModuleTestServer, TestClient

from tercet.protocol.stanza import NS_DELAY, NS_STANZAS, Element
from tercet.storage.base import ArchiveQuery


def error_of(stanza: Element) -> tuple[str, str | None]:
    error = stanza.find("error")
    assert error is not None, stanza
    cond = next(c.name for c in error.elements() if c.xmlns == NS_STANZAS and c.name != "text")
    return cond, error.child_text("text", NS_STANZAS)


async def stored(srv: ModuleTestServer, user: str) -> list[str | None]:
    archive = srv.server.storage.open("localhost", "offline", "archive")
    return [i.value.child_text("body") for i in await archive.find(user, ArchiveQuery())]


def bodies(client: TestClient) -> list[str | None]:
    return [s.child_text("body") for s in client.received() if s.name == "message"]


async def message(sender: TestClient, body: str, payload: str = "",
                  to: str = "juliet@localhost", mtype: str = "chat") -> None:
    await sender.send(f"<message xmlns='jabber:client' to='{to}' type='{mtype}'>"
                      f"<body>{body}</body>{payload}</message>")


def test_stored_then_delivered_in_order_with_delay_at_initial_presence() -> None:
    async def main() -> None:
        clock = [1_700_000_000.0]
        async with ModuleTestServer() as srv:
            srv.server.clock = lambda: clock[0]
            romeo = await srv.connect("romeo@localhost/a")
            await srv.create_user("juliet")
            for n in ("1", "2", "3"):
                await message(romeo, n, "<x xmlns='urn:example'/>")
                clock[0] += 60
            romeo.nothing()  # kept, not bounced
            assert await stored(srv, "juliet") == ["1", "2", "3"]
            juliet = await srv.connect("juliet@localhost/b")
            juliet.nothing()  # bound but not available yet
            await juliet.send("<presence/>")
            got = juliet.received()
            assert got[0].name == "presence"  # own presence first
            messages = got[1:]
            assert [m.child_text("body") for m in messages] == ["1", "2", "3"]
            first = messages[0]
            assert first.get("from") == romeo.jid and first.get("type") == "chat"
            assert first.find("x", "urn:example") is not None  # payload kept
            delay = first.find("delay", NS_DELAY)
            assert delay is not None and delay.attrs == {"from": "localhost",
                                                         "stamp": "2023-11-14T22:13:20Z"}
            assert messages[2].find("delay", NS_DELAY).get("stamp") == "2023-11-14T22:15:20Z"
            assert await stored(srv, "juliet") == []  # delivered once, then deleted
            other = await srv.connect("juliet@localhost/c")
            await other.send("<presence/>")
            assert bodies(other) == []
    run(main())


def test_negative_priority_waits_for_non_negative_presence() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            romeo = await srv.connect("romeo@localhost/a")
            await srv.create_user("juliet")
            await message(romeo, "hi")
            juliet = await srv.connect("juliet@localhost/b")
            await juliet.send("<presence><priority>-5</priority></presence>")
            assert bodies(juliet) == []  # XEP-0160 §2: not to a negative priority
            await message(romeo, "again")  # still nobody with priority >= 0: stored
            await juliet.send("<presence><priority>1</priority></presence>")
            assert bodies(juliet) == ["hi", "again"]
            await juliet.send("<presence><priority>2</priority></presence>")
            assert bodies(juliet) == []
    run(main())


def test_a_full_store_bounces_with_a_clear_error() -> None:
    async def main() -> None:
        async with ModuleTestServer(host_extra="offline_message_limit = 2") as srv:
            romeo = await srv.connect("romeo@localhost/a")
            await srv.create_user("juliet")
            for n in ("1", "2", "3"):
                await message(romeo, n)
            bounce = romeo.expect("message", type="error")
            assert bounce.get("from") == "juliet@localhost"
            assert bounce.child_text("body") == "3"
            assert error_of(bounce) == ("service-unavailable", "offline storage full")
            romeo.nothing()
            assert await stored(srv, "juliet") == ["1", "2"]
    run(main())


def test_limit_zero_stores_nothing() -> None:
    async def main() -> None:
        async with ModuleTestServer(host_extra="offline_message_limit = 0") as srv:
            romeo = await srv.connect("romeo@localhost/a")
            await srv.create_user("juliet")
            await message(romeo, "1")
            assert error_of(romeo.expect("message", type="error"))[0] == "service-unavailable"
            assert await stored(srv, "juliet") == []
    run(main())


def test_hints_and_chat_states() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            romeo = await srv.connect("romeo@localhost/a")
            await srv.create_user("juliet")
            await message(romeo, "secret", "<no-store xmlns='urn:xmpp:hints'/>")
            assert error_of(romeo.expect("message", type="error"))[0] == "service-unavailable"
            # A standalone chat state is neither kept nor bounced (XEP-0085).
            await romeo.send("<message xmlns='jabber:client' to='juliet@localhost' "
                             "type='chat'><composing xmlns='http://jabber.org/protocol/"
                             "chatstates'/></message>")
            romeo.nothing()
            # ... unless the sender asks for it to be stored (XEP-0334).
            await romeo.send("<message xmlns='jabber:client' to='juliet@localhost' "
                             "type='chat'><gone xmlns='http://jabber.org/protocol/"
                             "chatstates'/><store xmlns='urn:xmpp:hints'/></message>")
            # A chat state with a body is an ordinary message; so is a body-less receipt.
            await message(romeo, "with state", "<active xmlns='http://jabber.org/protocol/"
                                               "chatstates'/>")
            await romeo.send("<message xmlns='jabber:client' to='juliet@localhost'>"
                             "<received xmlns='urn:xmpp:receipts' id='x'/></message>")
            romeo.nothing()
            assert await stored(srv, "juliet") == [None, "with state", None]
    run(main())


def test_types_that_are_never_stored_and_unknown_accounts() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            romeo = await srv.connect("romeo@localhost/a")
            await srv.create_user("juliet")
            await message(romeo, "h", mtype="headline")
            romeo.nothing()  # dropped (RFC 6121 §8.5.2.2.1)
            await message(romeo, "g", mtype="groupchat")
            assert error_of(romeo.expect("message", type="error"))[0] == "service-unavailable"
            await message(romeo, "n", mtype="normal")
            await message(romeo, "x", to="nobody@localhost")
            assert error_of(romeo.expect("message", type="error"))[0] == "service-unavailable"
            assert await stored(srv, "juliet") == ["n"]
    run(main())


def test_feature_is_advertised() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            assert "msgoffline" in srv.server.hosts["localhost"].features
    run(main())
