"""stranger_filter: messages and subscription requests from JIDs not in the roster."""

from __future__ import annotations

import inspect
from pathlib import Path

from community_helpers import error_condition, load, messages, server_with
from helpers import run

from tercet.protocol.stanza import message

ADD_ROMEO = ("<iq xmlns='jabber:client' type='set' id='r'><query xmlns='jabber:iq:roster'>"
             "<item jid='romeo@localhost' name='Romeo'/></query></iq>")


def chat(to: str, body: str, mtype: str = "chat") -> str:
    return (f"<message xmlns='jabber:client' to='{to}' type='{mtype}'>"
            f"<body>{body}</body></message>")


def subscribe(to: str) -> str:
    return f"<presence xmlns='jabber:client' to='{to}' type='subscribe'/>"


def test_contacts_get_through_strangers_do_not(community_plugins: dict[str, Path]) -> None:
    async def main() -> None:
        async with server_with(community_plugins["stranger_filter"]) as srv:
            await load(srv, "stranger_filter")
            juliet = await srv.connect("juliet@localhost/balcony")
            await juliet.send("<presence xmlns='jabber:client'/>")
            await juliet.send(ADD_ROMEO)
            juliet.received()
            romeo = await srv.connect("romeo@localhost/garden")
            tybalt = await srv.connect("tybalt@localhost/street")
            await romeo.send(chat("juliet@localhost", "from a contact"))
            await tybalt.send(chat("juliet@localhost", "from a stranger"))
            await tybalt.send(chat("juliet@localhost/balcony", "to the full JID"))
            assert [m.child_text("body") for m in messages(juliet)] == ["from a contact"]
            assert tybalt.received() == []  # dropped silently by default
            await tybalt.send(subscribe("juliet@localhost"))
            assert juliet.received() == []
            await romeo.send(subscribe("juliet@localhost"))
            [request] = juliet.received()
            assert request.get("type") == "subscribe"
            assert request.get("from") == "romeo@localhost"
            # Errors, and the server itself, always get through.
            await tybalt.send(chat("juliet@localhost/balcony", "oops", "error"))
            notice = message(to="juliet@localhost", from_="localhost", body="notice")
            host = srv.server.hosts["localhost"]
            result = srv.server.router.route(host.origin, notice)
            if inspect.isawaitable(result):
                await result
            assert [(m.get("type"), m.child_text("body")) for m in messages(juliet)] == [
                ("error", "oops"), (None, "notice")]
    run(main())


def test_bounce_allowed_hosts_and_directed_presence(community_plugins: dict[str, Path]) -> None:
    async def main() -> None:
        async with server_with(community_plugins["stranger_filter"],
                               "stranger_filter_bounce = true") as srv:
            await load(srv, "stranger_filter")
            juliet = await srv.connect("juliet@localhost/balcony")
            await juliet.send("<presence xmlns='jabber:client'/>")
            juliet.received()
            tybalt = await srv.connect("tybalt@localhost/street")
            await tybalt.send(chat("juliet@localhost", "hello?"))
            [bounce] = messages(tybalt)
            assert bounce.get("type") == "error"
            assert error_condition(bounce) == "service-unavailable"
            assert messages(juliet) == []
            # Juliet sends tybalt directed presence (as when joining a room): he may write.
            await juliet.send("<presence xmlns='jabber:client' to='tybalt@localhost/street'/>")
            tybalt.received()
            await tybalt.send(chat("juliet@localhost", "now you know me"))
            assert [m.child_text("body") for m in messages(juliet)] == ["now you know me"]
        async with server_with(community_plugins["stranger_filter"],
                               'stranger_filter_allow_hosts = ["localhost"]') as srv:
            await load(srv, "stranger_filter")
            juliet = await srv.connect("juliet@localhost/balcony")
            await juliet.send("<presence xmlns='jabber:client'/>")
            juliet.received()
            tybalt = await srv.connect("tybalt@localhost/street")
            await tybalt.send(chat("juliet@localhost", "same server"))
            assert [m.child_text("body") for m in messages(juliet)] == ["same server"]
    run(main())
