"""The roster cache: rosters of users with a bound session stay in memory, others in a
bounded LRU, written through on every change (bench/README.md: a login with 50 contacts
read 50 rosters and 50 account records from storage).

Store reads are counted through a real storage driver registered for the ``roster`` and
``accounts`` stores: the memory driver, with its keyval stores wrapped.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from helpers import idle, run
from moduletest import BASE, ModuleTestServer, TestClient

from tercet.app import build_server
from tercet.core.accounts import delete_account
from tercet.core.config import Config
from tercet.modules._rosterlib import RosterCache, RosterRecord
from tercet.protocol.stanza import NS_STANZAS, Element
from tercet.storage.base import KeyValStore, StorageError
from tercet.storage.manager import register_driver
from tercet.storage.memory import MemoryDriver

NS = "jabber:iq:roster"
DRIVER = "counting-memory"


class CountingKeyVal(KeyValStore):
    """A memory keyval store that counts reads per user and can be told to fail writes."""

    def __init__(self, inner: KeyValStore, name: str, driver: CountingDriver) -> None:
        self.inner, self.name, self.driver = inner, name, driver

    async def get(self, user: str | None) -> Any | None:
        self.driver.reads[(self.name, user)] += 1
        return await self.inner.get(user)

    async def set(self, user: str | None, value: Any | None) -> None:
        if self.driver.fail_writes:
            raise StorageError("disk full")
        await self.inner.set(user, value)

    async def users(self) -> list[str]:
        return await self.inner.users()

    async def delete_user(self, user: str) -> None:
        await self.inner.delete_user(user)


class CountingDriver(MemoryDriver):
    last: CountingDriver | None = None

    def __init__(self) -> None:
        super().__init__()
        self.reads: Counter[tuple[str, str | None]] = Counter()
        self.fail_writes = False
        CountingDriver.last = self

    def keyval(self, host: str, store: str) -> KeyValStore:
        return CountingKeyVal(super().keyval(host, store), store, self)

    def count(self, store: str) -> int:
        return sum(n for (name, _), n in self.reads.items() if name == store)


def _factory(data_path: Path, options: Mapping[str, Any]) -> CountingDriver:
    del data_path, options
    return CountingDriver()


register_driver(DRIVER, _factory)


class CountingServer(ModuleTestServer):
    """ModuleTestServer with the roster and account stores on the counting driver."""

    def __init__(self) -> None:  # noqa: D107 - ModuleTestServer's, with another storage
        self._tmp = tempfile.TemporaryDirectory(prefix="tercet-mt-")
        path = Path(self._tmp.name)
        storage = f'storage = {{ default = "memory", roster = "{DRIVER}", accounts = "{DRIVER}" }}'
        text = BASE.format(extra="", host_extra="", sock=path / "admin.sock").replace(
            'storage = "memory"', storage)
        (path / "tercet.toml").write_text(text)
        self.server = build_server(Config.load(path / "tercet.toml"))

    @property
    def driver(self) -> CountingDriver:
        driver = CountingDriver.last
        assert driver is not None
        return driver

    @property
    def roster(self) -> Any:
        return self.server.hosts["localhost"].providers["roster"][0]


async def befriend(srv: CountingServer, user: str, contacts: list[str]) -> None:
    """Mutual "both" subscriptions, written to the store before anyone logs in."""
    store = srv.server.storage.open("localhost", "roster", "keyval")
    for contact in contacts:
        for owner, other in ((user, contact), (contact, user)):
            record = await store.get(owner) or {}
            record[f"{other}@localhost"] = {"subscription": "both", "groups": []}
            await store.set(owner, record)


async def roster_items(client: TestClient) -> dict[str, str]:
    await client.send(f"<iq type='get' id='r'><query xmlns='{NS}'/></iq>")
    query = client.expect("iq", type="result", id="r").find("query", NS)
    assert query is not None
    return {el.get("jid") or "": el.get("subscription") or ""
            for el in query.find_all("item", NS)}


def test_initial_presence_probes_online_contacts_without_store_reads() -> None:
    contacts = [f"c{i}" for i in range(10)]

    async def main() -> None:
        async with CountingServer() as srv:
            await befriend(srv, "romeo", contacts)
            clients = [await srv.connect(f"{c}@localhost/a") for c in contacts]
            for client in clients:
                await client.send("<presence/>")  # loads (and keeps) their rosters
            romeo = await srv.connect("romeo@localhost/a")
            for client in clients:
                client.received()
            srv.driver.reads.clear()
            await romeo.send("<presence/>")
            got = [p for p in romeo.received() if p.name == "presence"]
            # Every contact answered the probe with its presence (§4.3.2)...
            assert {p.get("from") for p in got} >= {f"{c}@localhost/a" for c in contacts}
            # ...without reading its roster or its account record: romeo's own roster
            # (first use) is the only read.
            assert srv.driver.reads == Counter({("roster", "romeo"): 1})
            await romeo.send("<presence><show>away</show></presence>")
            assert srv.driver.reads == Counter({("roster", "romeo"): 1})  # broadcast: none
            assert len(clients[0].received()) == 2  # initial and away reached the contact
    run(main())


def test_probe_of_offline_user_still_checks_the_account() -> None:
    async def main() -> None:
        async with CountingServer() as srv:
            await befriend(srv, "romeo", ["juliet", "ghost"])
            await srv.create_user("juliet")  # exists, offline; ghost has no account
            romeo = await srv.connect("romeo@localhost/a")
            srv.driver.reads.clear()
            await romeo.send("<presence/>")
            got = {(p.get("from"), p.get("type")) for p in romeo.received()}
            assert ("juliet@localhost", "unavailable") in got
            # RFC 6121 §8.5.1: ghost's server answers "unsubscribed" for it.
            assert await srv.roster.subscription("romeo", "ghost@localhost") == "from"
            assert srv.driver.reads[("accounts", "juliet")] == 1
            assert srv.driver.reads[("accounts", "ghost")] == 1
    run(main())


def test_change_while_online_is_seen_without_a_store_read() -> None:
    async def main() -> None:
        async with CountingServer() as srv:
            romeo = await srv.connect("romeo@localhost/a")
            assert await roster_items(romeo) == {}
            await romeo.send(f"<iq type='set' id='s'><query xmlns='{NS}'>"
                             "<item jid='nurse@localhost'/></query></iq>")
            romeo.received()
            srv.driver.reads.clear()
            assert await roster_items(romeo) == {"nurse@localhost": "none"}
            assert srv.driver.count("roster") == 0
            # Written through: the store holds the same record.
            stored = await srv.server.storage.open("localhost", "roster", "keyval").get("romeo")
            assert RosterRecord.from_json(stored) == await srv.roster.load("romeo")
    run(main())


def test_failed_store_write_leaves_the_cache_unchanged() -> None:
    async def main() -> None:
        async with CountingServer() as srv:
            romeo = await srv.connect("romeo@localhost/a")
            await romeo.send(f"<iq type='set' id='s1'><query xmlns='{NS}'>"
                             "<item jid='nurse@localhost'/></query></iq>")
            romeo.received()
            before = (await srv.roster.load("romeo")).copy()
            srv.driver.fail_writes = True
            await romeo.send(f"<iq type='set' id='s2'><query xmlns='{NS}'>"
                             "<item jid='tybalt@localhost'/></query></iq>")
            error = romeo.expect("iq", type="error", id="s2").find("error")
            assert error is not None and error.find("internal-server-error", NS_STANZAS) is not None
            romeo.nothing()  # no push for a change that was not stored
            assert await srv.roster.load("romeo") == before
            srv.driver.fail_writes = False
            srv.driver.reads.clear()
            assert await roster_items(romeo) == {"nurse@localhost": "none"}
            assert srv.driver.count("roster") == 0  # from the cache, which kept the old one
            await romeo.send(f"<iq type='set' id='s3'><query xmlns='{NS}'>"
                             "<item jid='tybalt@localhost'/></query></iq>")
            push = [el for el in romeo.received() if el.get("type") == "set"]
            query = push[0].find("query", NS)
            assert query is not None and query.get("ver") == str(before.version + 1)
    run(main())


def test_deleted_account_does_not_keep_its_cached_roster() -> None:
    async def main() -> None:
        async with CountingServer() as srv:
            await befriend(srv, "romeo", ["juliet"])
            romeo = await srv.connect("romeo@localhost/a")
            assert await roster_items(romeo) == {"juliet@localhost": "both"}
            assert await delete_account(srv.server, "localhost", "romeo")
            await idle()  # the unbind handlers run detached
            await srv.create_user("romeo")
            again = await srv.connect("romeo@localhost/b")
            assert await roster_items(again) == {}
    run(main())


def test_unload_drops_the_cache_and_reload_pins_online_users() -> None:
    async def main() -> None:
        async with CountingServer() as srv:
            romeo = await srv.connect("romeo@localhost/a")
            await romeo.send(f"<iq type='set' id='s'><query xmlns='{NS}'>"
                             "<item jid='nurse@localhost'/></query></iq>")
            old = srv.roster
            await srv.server.modules.unload("roster", "localhost")
            assert len(old.cache) == 0
            await srv.server.modules.load("roster", "localhost")
            new = srv.roster
            assert new is not old
            await new.load("romeo")
            for n in range(3):  # past any LRU: romeo is online, so pinned
                new.cache.size = 1
                await new.load(f"other{n}")
            srv.driver.reads.clear()
            await new.load("romeo")
            assert srv.driver.count("roster") == 0
    run(main())


def test_lru_is_bounded_and_pinned_rosters_survive_it() -> None:
    cache = RosterCache(size=2)
    records = {name: RosterRecord(version=i) for i, name in enumerate("abcd")}
    cache.pin("a")
    for name, record in records.items():
        cache.put(name, record)
    assert cache.get("a") is records["a"]  # pinned: not counted against the LRU
    assert cache.get("b") is None  # least recently used, evicted
    assert cache.get("c") is records["c"] and cache.get("d") is records["d"]
    cache.unpin("a")  # back to the LRU as most recent: evicts c
    assert cache.get("c") is None and cache.get("a") is records["a"]
    epoch = cache.epoch
    cache.forget("a")
    assert cache.get("a") is None and cache.epoch > epoch
    cache.clear()
    assert len(cache) == 0


def test_roster_pushes_still_reach_other_resources() -> None:
    """The record handed out by the cache is the one pushes describe."""
    async def main() -> None:
        async with CountingServer() as srv:
            a = await srv.connect("romeo@localhost/a")
            b = await srv.connect("romeo@localhost/b")
            await roster_items(b)
            await a.send(f"<iq type='set' id='s'><query xmlns='{NS}'>"
                         "<item jid='nurse@localhost' name='N'/></query></iq>")
            push = b.expect("iq", type="set")
            item = push.find("query", NS)
            assert isinstance(item, Element)
            assert [el.get("name") for el in item.find_all("item", NS)] == ["N"]
    run(main())
