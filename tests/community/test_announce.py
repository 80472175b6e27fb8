"""announce: admins message every session online on the host."""

from __future__ import annotations

from pathlib import Path

from community_helpers import error_condition, load, messages, server_with
from helpers import run

ADMINS = 'admins = ["admin@localhost"]'
ANNOUNCE = ("<message xmlns='jabber:client' to='localhost/announce/online' type='headline'>"
            "<subject>Maintenance</subject><body>Restart in 10 minutes</body></message>")


def test_admin_announcement_reaches_every_online_session(
        community_plugins: dict[str, Path]) -> None:
    async def main() -> None:
        async with server_with(community_plugins["announce"], ADMINS) as srv:
            await load(srv, "announce")
            admin = await srv.connect("admin@localhost/desk")
            romeo_a = await srv.connect("romeo@localhost/a")
            romeo_b = await srv.connect("romeo@localhost/b")
            juliet = await srv.connect("juliet@localhost/phone")
            await admin.send(ANNOUNCE)
            for client in (admin, romeo_a, romeo_b, juliet):
                [copy] = messages(client)
                assert copy.get("from") == "localhost" and copy.get("to") == client.jid
                assert copy.get("type") == "headline"
                assert copy.child_text("body") == "Restart in 10 minutes"
                assert copy.child_text("subject") == "Maintenance"
    run(main())


def test_non_admins_are_refused_and_nothing_is_sent(community_plugins: dict[str, Path]) -> None:
    async def main() -> None:
        async with server_with(community_plugins["announce"], ADMINS) as srv:
            await load(srv, "announce")
            romeo = await srv.connect("romeo@localhost/a")
            juliet = await srv.connect("juliet@localhost/a")
            await romeo.send(ANNOUNCE)
            [error] = messages(romeo)
            assert error.get("type") == "error" and error_condition(error) == "forbidden"
            assert messages(juliet) == []
            # An error sent to the address is never answered (RFC 6120 §8.3.1).
            await romeo.send("<message xmlns='jabber:client' type='error' "
                             "to='localhost/announce/online'><body>x</body></message>")
            assert messages(romeo) == [] and messages(juliet) == []
            # Other messages to the host are not the module's business.
            await romeo.send("<message xmlns='jabber:client' to='localhost'><body>hi</body>"
                             "</message>")
            [bounce] = messages(romeo)
            assert error_condition(bounce) == "service-unavailable"
    run(main())


def test_unloaded_module_no_longer_announces(community_plugins: dict[str, Path]) -> None:
    async def main() -> None:
        async with server_with(community_plugins["announce"], ADMINS) as srv:
            await load(srv, "announce")
            await srv.server.modules.unload("announce", "localhost")
            admin = await srv.connect("admin@localhost/desk")
            juliet = await srv.connect("juliet@localhost/a")
            await admin.send(ANNOUNCE)
            assert messages(juliet) == []
            [bounce] = messages(admin)
            assert error_condition(bounce) == "service-unavailable"
    run(main())
