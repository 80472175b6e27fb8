"""Deletion with a grace period inside the server (tercet.core.accounts): XEP-0077 cancel
locks the account instead of purging it, the purge job works in bounded batches on the
server's clock, and a restored account is never purged."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from moduletest import ModuleTestServer

from tercet.auth.internal import InternalHashedProvider
from tercet.core import accounts

DAY = 86400.0
GRACE = 'user_deletion_grace_period = "2d"'


def run(body: Callable[[ModuleTestServer], Awaitable[None]]) -> None:
    async def main() -> None:
        async with ModuleTestServer(GRACE) as srv:
            srv.server.clock = lambda: 1000.0
            await body(srv)
    asyncio.run(asyncio.wait_for(main(), 30))


def provider(srv: ModuleTestServer) -> InternalHashedProvider:
    auth = srv.server.hosts["localhost"].auth
    assert isinstance(auth, InternalHashedProvider)
    return auth


def test_cancel_locks_the_account_and_keeps_its_data() -> None:
    async def body(srv: ModuleTestServer) -> None:
        romeo = await srv.connect("romeo@localhost/a")
        vcards = srv.server.storage.open("localhost", "vcard", "keyval")
        await vcards.set("romeo", {"fn": "Romeo"})
        await romeo.send("<iq type='set' id='bye'><query xmlns='jabber:iq:register'>"
                         "<remove/></query></iq>")
        assert romeo.expect("iq", id="bye").get("type") == "result"
        assert romeo.conn.closed_with  # XEP-0077 §3.2: the stream is closed
        info = await provider(srv).account_info("romeo")
        assert info is not None and info.deleted == 1000.0 and info.locked
        creds = await provider(srv).get_credentials("romeo")
        assert creds is not None and creds.disabled and creds.disabled_reason
        assert await vcards.get("romeo") == {"fn": "Romeo"}
        assert await provider(srv).user_exists("romeo")  # the name stays taken
    run(body)


def test_purge_in_batches_after_the_period() -> None:
    async def body(srv: ModuleTestServer) -> None:
        for name in ("a", "b", "c", "d"):
            await srv.create_user(name)
            assert await accounts.delete_account(srv.server, "localhost", name)
        assert await accounts.restore_account(srv.server.storage, provider(srv),
                                              "localhost", "d")
        srv.server.clock = lambda: 1000.0 + 2 * DAY - 1
        assert await accounts.purge_expired(srv.server, "localhost", limit=2) == 0
        srv.server.clock = lambda: 1000.0 + 2 * DAY
        assert await accounts.purge_expired(srv.server, "localhost", limit=2) == 2
        assert await accounts.purge_expired(srv.server, "localhost", limit=2) == 1
        assert await accounts.purge_expired(srv.server, "localhost", limit=2) == 0
        assert await provider(srv).users() == ["d"]
        index = srv.server.storage.open("localhost", accounts.DELETIONS_STORE, "map")
        assert await index.get_all(None) == {}
    run(body)


def test_deleting_twice_keeps_the_first_time_and_now_purges_at_once() -> None:
    async def body(srv: ModuleTestServer) -> None:
        await srv.create_user("romeo")
        assert await accounts.delete_account(srv.server, "localhost", "romeo")
        srv.server.clock = lambda: 5000.0
        assert await accounts.delete_account(srv.server, "localhost", "romeo")
        info = await provider(srv).account_info("romeo")
        assert info is not None and info.deleted == 1000.0
        assert await accounts.delete_account(srv.server, "localhost", "romeo",
                                             immediate=True)
        assert await provider(srv).account_info("romeo") is None
    run(body)
