"""Block lists of online users stay in memory whatever the LRU cache size (the fix for
the storage read per stanza seen in the benchmark with more users online than the cache
holds); offline users' lists still go through the bounded LRU cache."""

from __future__ import annotations

from pathlib import Path

from helpers import run
from moduletest import ModuleTestServer

from tercet.modules.blocklist import Blocklists
from tercet.storage.memory import create_memory_driver

NS = "urn:xmpp:blocking"


def test_pinned_lists_survive_eviction_and_unpinned_ones_do_not(tmp_path: Path) -> None:
    async def main() -> None:
        store = create_memory_driver(tmp_path, {}).keyval("localhost", "blocklist")
        for user in ("romeo", "juliet", "nurse"):
            await store.set(user, {"items": {f"{user}-foe@localhost": 1.0}})
        lists = Blocklists(store, size=1)
        lists.pin("romeo")
        assert await lists.get("romeo") == {"romeo-foe@localhost": 1.0}
        await lists.get("juliet")
        await lists.get("nurse")  # the LRU (size 1) now holds only nurse
        assert lists.cached("romeo") == {"romeo-foe@localhost": 1.0}
        assert lists.cached("juliet") is None
        lists.unpin("romeo")  # back into the LRU, which evicts nurse
        assert lists.cached("romeo") is not None
        assert lists.cached("nurse") is None
        await lists.get("juliet")
        assert lists.cached("romeo") is None
    run(main())


def test_online_users_list_is_not_reread_while_online() -> None:
    """With a cache of one, an online user's list is still served from memory: a change
    made behind the module's back in storage is not seen until the user goes offline."""
    async def main() -> None:
        async with ModuleTestServer("blocklist_cache_size = 1",
                                    'modules_enabled = ["blocklist"]') as srv:
            romeo = await srv.connect("romeo@localhost/a")
            juliet = await srv.connect("juliet@localhost/a")
            mallory = await srv.connect("mallory@localhost/a")
            await romeo.send(f"<iq type='set' id='b'><block xmlns='{NS}'>"
                             "<item jid='mallory@localhost'/></block></iq>")
            romeo.expect("iq", type="result")
            for client in (juliet, mallory):  # load other lists through the tiny cache
                await client.send(f"<iq type='get' id='g'><blocklist xmlns='{NS}'/></iq>")
                client.expect("iq", type="result")
            store = srv.server.storage.open("localhost", "blocklist", "keyval")
            await store.set("romeo", None)  # behind the module's back
            await mallory.send("<message to='romeo@localhost/a' type='chat'><body>1</body>"
                               "</message>")
            romeo.nothing()  # still blocked: the list came from memory
            await romeo.disconnect()  # romeo's list goes back to the LRU...
            await srv.create_user("nurse")
            await juliet.send("<message to='nurse@localhost' type='chat'><body>n</body>"
                              "</message>")  # ...and nurse's (offline) list evicts it
            romeo = await srv.connect("romeo@localhost/b")
            await mallory.send("<message to='romeo@localhost/b' type='chat'><body>2</body>"
                               "</message>")
            assert romeo.expect("message").child_text("body") == "2"  # re-read: unblocked
    run(main())
