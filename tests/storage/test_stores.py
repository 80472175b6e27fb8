"""The storage contracts, run against every driver (memory, and SQLite on real files)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from helpers import async_test, run

from tercet.protocol.stanza import Element, message
from tercet.storage import (
    MAX_ARCHIVE_PAGE,
    ArchiveAppend,
    ArchiveKeyNotFound,
    ArchiveQuery,
    ArchiveStore,
    KeyValStore,
    MapStore,
    StorageConfig,
    StorageError,
    StorageManager,
    known_drivers,
    register_driver,
)
from tercet.storage.memory import MemoryDriver, MemoryKeyValStore
from tercet.storage.sqlite import DB_FILENAME, MIGRATIONS, SqliteDriver, SqliteKeyValStore
from tercet.storage.timed import TimedKeyValStore

HOST = "example.org"


@pytest.fixture(params=["memory", "sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@contextlib.asynccontextmanager
async def opened(backend: str, path: Path, **stores: str) -> AsyncIterator[StorageManager]:
    m = StorageManager(StorageConfig(default=backend, stores=stores), path)
    await m.ready()
    try:
        yield m
    finally:
        await m.close()


def msg(body: str, **attrs: str) -> Element:
    el = message(to="juliet@example.org", from_="romeo@example.net/orchard", type_="chat",
                 body=body)
    el.attrs.update(attrs)
    return el


def bodies(items: list[Any]) -> list[str | None]:
    return [i.value.child_text("body") for i in items]


# --- keyval ---------------------------------------------------------------------------


@async_test
async def test_keyval_get_set_delete(backend: str, tmp_path: Path) -> None:
    async with opened(backend, tmp_path) as m:
        kv = m.open(HOST, "vcard", "keyval")
        assert await kv.get("alice") is None
        await kv.set("alice", {"fn": "Alice", "n": [1, 2.5, True, None]})
        assert await kv.get("alice") == {"fn": "Alice", "n": [1, 2.5, True, None]}
        await kv.set("alice", "just a string")
        assert await kv.get("alice") == "just a string"
        await kv.set("alice", None)
        assert await kv.get("alice") is None
        await kv.set("nobody", None)  # deleting what is not there is fine


@async_test
async def test_keyval_host_entry_and_users(backend: str, tmp_path: Path) -> None:
    async with opened(backend, tmp_path) as m:
        kv = m.open(HOST, "settings", "keyval")
        await kv.set(None, {"motd": "hi"})
        await kv.set("alice", 1)
        await kv.set("bob", 2)
        assert await kv.get(None) == {"motd": "hi"}
        assert sorted(await kv.users()) == ["alice", "bob"]
        await kv.delete_user("alice")
        assert await kv.users() == ["bob"]
        assert await kv.get(None) == {"motd": "hi"}


@async_test
async def test_keyval_values_are_copies(backend: str, tmp_path: Path) -> None:
    async with opened(backend, tmp_path) as m:
        kv = m.open(HOST, "s", "keyval")
        value: dict[str, Any] = {"list": [1]}
        await kv.set("alice", value)
        value["list"].append(2)
        got = await kv.get("alice")
        assert got == {"list": [1]}
        got["list"].append(3)
        assert await kv.get("alice") == {"list": [1]}
        await kv.set("u", {"unicode": "żółw ☃", "t": (1, 2)})
        assert await kv.get("u") == {"unicode": "żółw ☃", "t": [1, 2]}


@async_test
async def test_keyval_rejects_non_json(backend: str, tmp_path: Path) -> None:
    async with opened(backend, tmp_path) as m:
        kv = m.open(HOST, "s", "keyval")
        await kv.set("alice", 1)
        with pytest.raises(TypeError):
            await kv.set("alice", {"x": object()})
        with pytest.raises(ValueError):
            await kv.set("alice", float("nan"))
        assert await kv.get("alice") == 1


@async_test
async def test_stores_are_separate_by_name_host_and_kind(backend: str, tmp_path: Path) -> None:
    async with opened(backend, tmp_path) as m:
        await m.open(HOST, "a", "keyval").set("alice", "a")
        await m.open(HOST, "b", "keyval").set("alice", "b")
        await m.open("other.example", "a", "keyval").set("alice", "other")
        await m.open(HOST, "a", "map").set("alice", "k", "map")
        assert await m.open(HOST, "a", "keyval").get("alice") == "a"
        assert await m.open(HOST, "b", "keyval").get("alice") == "b"
        assert await m.open("other.example", "a", "keyval").get("alice") == "other"
        assert await m.open(HOST, "a", "map").get_all("alice") == {"k": "map"}


# --- map ------------------------------------------------------------------------------


@async_test
async def test_map_operations(backend: str, tmp_path: Path) -> None:
    async with opened(backend, tmp_path) as m:
        mp = m.open(HOST, "private", "map")
        assert await mp.get("alice", "k") is None
        assert await mp.get_all("alice") == {}
        await mp.set("alice", "k1", {"v": 1})
        await mp.set_keys("alice", {"k2": [2], "k3": "three"})
        assert await mp.get("alice", "k1") == {"v": 1}
        assert await mp.get_all("alice") == {"k1": {"v": 1}, "k2": [2], "k3": "three"}
        await mp.set_keys("alice", {"k1": None, "k2": "new", "absent": None})
        assert await mp.get_all("alice") == {"k2": "new", "k3": "three"}
        await mp.set("alice", "k3", None)
        assert await mp.get_all("alice") == {"k2": "new"}
        await mp.set("bob", "x", 1)
        await mp.set(None, "host-key", True)
        assert sorted(await mp.users()) == ["alice", "bob"]
        assert await mp.get(None, "host-key") is True
        await mp.delete_user("alice")
        assert await mp.get_all("alice") == {}
        assert await mp.users() == ["bob"]
        await mp.set_keys("bob", {})
        assert await mp.get_all("bob") == {"x": 1}


@async_test
async def test_map_set_keys_is_all_or_nothing(backend: str, tmp_path: Path) -> None:
    async with opened(backend, tmp_path) as m:
        mp = m.open(HOST, "private", "map")
        await mp.set("alice", "a", 1)
        with pytest.raises(TypeError):
            await mp.set_keys("alice", {"a": 2, "b": {1, 2}})
        assert await mp.get_all("alice") == {"a": 1}


# --- archive --------------------------------------------------------------------------


async def fill(arc: ArchiveStore, times: list[float], user: str = "alice") -> list[str]:
    keys = []
    for i, when in enumerate(times):
        with_jid = f"contact{i % 2}@example.net/res{i}"
        keys.append(await arc.append(user, msg(f"m{i}"), when=when, with_jid=with_jid))
    return keys


@async_test
async def test_archive_roundtrip_keeps_the_element(backend: str, tmp_path: Path) -> None:
    async with opened(backend, tmp_path) as m:
        arc = m.open(HOST, "archive", "archive")
        el = msg("<b>&amp; \"quoted\" 'x' ☃", id="abc")
        el.tag("stanza-id", "urn:xmpp:sid:0", {"id": "s1", "by": "example.org"})
        el.tag("x", "jabber:x:oob").text_tag("url", "https://example.org/?a=1&b=2")
        el.tag("delay", "urn:xmpp:delay", {"stamp": "2024-01-01T00:00:00Z"})
        key = await arc.append("alice", el, when=1000.5, with_jid="romeo@example.net/orchard")
        el.text_tag("body", "mutated after append")
        [item] = await arc.find("alice", ArchiveQuery())
        assert item.key == key
        assert item.when == 1000.5
        assert item.with_jid == "romeo@example.net/orchard"
        assert item.value.find("x", "jabber:x:oob") is not None
        assert item.value.xmlns == "jabber:client"
        assert item.value.find("stanza-id", "urn:xmpp:sid:0") is not None
        assert len(list(item.value.find_all("body"))) == 1
        el.children.pop()
        assert item.value == el


@async_test
async def test_archive_order_is_when_then_insertion(backend: str, tmp_path: Path) -> None:
    async with opened(backend, tmp_path) as m:
        arc = m.open(HOST, "archive", "archive")
        keys = await fill(arc, [30, 10, 20, 10, 30, 10])
        items = await arc.find("alice", ArchiveQuery())
        assert bodies(items) == ["m1", "m3", "m5", "m2", "m0", "m4"]
        assert [i.key for i in items] == [keys[i] for i in (1, 3, 5, 2, 0, 4)]
        rev = await arc.find("alice", ArchiveQuery(reverse=True))
        assert bodies(rev) == ["m4", "m0", "m2", "m5", "m3", "m1"]


@async_test
async def test_archive_append_many_keeps_order_users_and_replaces(backend: str,
                                                                   tmp_path: Path) -> None:
    async with opened(backend, tmp_path) as m:
        arc = m.open(HOST, "archive", "archive")
        await arc.append("alice", msg("old"), when=5, with_jid="bob@example.org", key="k1")
        await arc.append_many([
            ArchiveAppend("alice", msg("a"), 10, "bob@example.org/x", "k2"),
            ArchiveAppend("carol", msg("c"), 10, "bob@example.org", "k3"),
            ArchiveAppend("alice", msg("b"), 10, "bob@example.org", "k1"),  # replaces
        ])
        items = await arc.find("alice", ArchiveQuery())
        assert [(i.key, i.with_jid) for i in items] == [
            ("k2", "bob@example.org/x"), ("k1", "bob@example.org")]
        assert bodies(items) == ["a", "b"]
        assert bodies(await arc.find("carol", ArchiveQuery())) == ["c"]


@async_test
async def test_archive_time_and_id_filters(backend: str, tmp_path: Path) -> None:
    async with opened(backend, tmp_path) as m:
        arc = m.open(HOST, "archive", "archive")
        keys = await fill(arc, [1, 2, 3, 4, 5, 6])
        assert bodies(await arc.find("alice", ArchiveQuery(start=2, end=4))) == ["m1", "m2", "m3"]
        assert bodies(await arc.find("alice", ArchiveQuery(start=5))) == ["m4", "m5"]
        assert bodies(await arc.find("alice", ArchiveQuery(end=1.5))) == ["m0"]
        q = ArchiveQuery(ids=[keys[4], keys[1], "no-such-key"])
        assert bodies(await arc.find("alice", q)) == ["m1", "m4"]
        assert await arc.count("alice", q) == 2
        assert await arc.find("alice", ArchiveQuery(ids=[])) == []
        with pytest.raises(TypeError):
            ArchiveQuery(ids="abc")


@async_test
async def test_archive_with_jid_bare_matches_full(backend: str, tmp_path: Path) -> None:
    async with opened(backend, tmp_path) as m:
        arc = m.open(HOST, "archive", "archive")
        await arc.append("alice", msg("full1"), when=1, with_jid="romeo@example.net/orchard")
        await arc.append("alice", msg("bare"), when=2, with_jid="romeo@example.net")
        await arc.append("alice", msg("full2"), when=3, with_jid="romeo@example.net/balcony")
        await arc.append("alice", msg("other"), when=4, with_jid="tybalt@example.net/x")
        await arc.append("alice", msg("domain"), when=5, with_jid="example.net/x")

        async def with_(jid: str) -> list[str | None]:
            return bodies(await arc.find("alice", ArchiveQuery(with_jid=jid)))

        assert await with_("romeo@example.net") == ["full1", "bare", "full2"]
        assert await with_("romeo@example.net/orchard") == ["full1"]
        assert await with_("romeo@example.net/nowhere") == []
        assert await with_("example.net") == ["domain"]
        assert await arc.count("alice", ArchiveQuery(with_jid="romeo@example.net")) == 3


@async_test
async def test_archive_paging_forward_and_backward(backend: str, tmp_path: Path) -> None:
    async with opened(backend, tmp_path) as m:
        arc = m.open(HOST, "archive", "archive")
        # Duplicate timestamps make sure paging uses the insertion tie-breaker.
        keys = await fill(arc, [1, 1, 1, 2, 2, 3, 4, 4, 4, 5, 6])

        pages, after = [], None
        while True:
            page = await arc.find("alice", ArchiveQuery(after=after, limit=3))
            if not page:
                break
            pages.append([i.key for i in page])
            after = page[-1].key
        assert pages == [keys[0:3], keys[3:6], keys[6:9], keys[9:11]]

        pages, before = [], None
        first = await arc.find("alice", ArchiveQuery(reverse=True, limit=4))
        assert [i.key for i in first] == keys[::-1][:4]  # newest first
        before = first[-1].key
        while before is not None:
            page = await arc.find("alice", ArchiveQuery(before=before, reverse=True, limit=4))
            pages.append([i.key for i in page])
            before = page[-1].key if page else None
        assert pages == [keys[6::-1][:4], keys[2::-1], []]

        between = ArchiveQuery(after=keys[1], before=keys[7])
        assert [i.key for i in await arc.find("alice", between)] == keys[2:7]
        assert await arc.count("alice", between) == 5
        assert await arc.count("alice", ArchiveQuery(after=keys[1], limit=1)) == 9
        assert await arc.find("alice", ArchiveQuery(after=keys[-1])) == []


@async_test
async def test_archive_unknown_paging_key(backend: str, tmp_path: Path) -> None:
    async with opened(backend, tmp_path) as m:
        arc = m.open(HOST, "archive", "archive")
        with pytest.raises(ArchiveKeyNotFound):
            await arc.find("alice", ArchiveQuery(after="nope"))
        await fill(arc, [1, 2])
        with pytest.raises(ArchiveKeyNotFound) as info:
            await arc.find("alice", ArchiveQuery(before="nope"))
        assert info.value.key == "nope"
        with pytest.raises(ArchiveKeyNotFound):
            await arc.count("alice", ArchiveQuery(after="nope"))
        with pytest.raises(ArchiveKeyNotFound):
            await arc.delete("alice", ArchiveQuery(after="nope"))
        # Another user's key is unknown in this user's archive.
        [bob_key] = await fill(arc, [3], user="bob")
        with pytest.raises(ArchiveKeyNotFound):
            await arc.find("alice", ArchiveQuery(after=bob_key))


@async_test
async def test_archive_limit_is_clamped(backend: str, tmp_path: Path) -> None:
    assert ArchiveQuery(limit=10**9).limit == MAX_ARCHIVE_PAGE
    assert ArchiveQuery().page_size == MAX_ARCHIVE_PAGE
    with pytest.raises(ValueError):
        ArchiveQuery(limit=-1)
    async with opened(backend, tmp_path) as m:
        arc = m.open(HOST, "archive", "archive")
        for i in range(MAX_ARCHIVE_PAGE + 5):
            await arc.append("alice", Element("item", "urn:test", {"n": str(i)}), when=i,
                             with_jid="x@example.net")
        assert len(await arc.find("alice", ArchiveQuery())) == MAX_ARCHIVE_PAGE
        page = await arc.find("alice", ArchiveQuery(limit=5000, reverse=True))
        assert len(page) == MAX_ARCHIVE_PAGE
        assert page[0].value.get("n") == str(MAX_ARCHIVE_PAGE + 4)
        assert await arc.find("alice", ArchiveQuery(limit=0)) == []
        assert await arc.count("alice", ArchiveQuery()) == MAX_ARCHIVE_PAGE + 5


@async_test
async def test_archive_delete(backend: str, tmp_path: Path) -> None:
    async with opened(backend, tmp_path) as m:
        arc = m.open(HOST, "archive", "archive")
        keys = await fill(arc, [1, 2, 3, 4, 5, 6])
        await fill(arc, [1, 2], user="bob")
        assert await arc.delete("alice", ArchiveQuery(end=2, limit=1)) == 2
        assert await arc.delete("alice", ArchiveQuery(ids=[keys[5]])) == 1
        assert await arc.delete("alice", ArchiveQuery(with_jid="contact0@example.net")) == 2
        assert bodies(await arc.find("alice", ArchiveQuery())) == ["m3"]
        assert await arc.delete("alice") == 1
        assert await arc.delete("alice") == 0
        assert await arc.users() == ["bob"]
        assert await arc.count("bob", ArchiveQuery()) == 2
        await arc.delete_user("bob")
        assert await arc.users() == []


@async_test
async def test_archive_custom_key_and_replace(backend: str, tmp_path: Path) -> None:
    async with opened(backend, tmp_path) as m:
        arc = m.open(HOST, "pep", "archive")
        assert await arc.append("alice", msg("one"), when=1, with_jid="a@b", key="item1") == "item1"
        await arc.append("alice", msg("two"), when=2, with_jid="a@b", key="item2")
        await arc.append("alice", msg("one again"), when=2, with_jid="a@b", key="item1")
        items = await arc.find("alice", ArchiveQuery())
        assert [(i.key, i.value.child_text("body")) for i in items] == [
            ("item2", "two"), ("item1", "one again")]
        # The same key may exist for another user or store.
        await arc.append("bob", msg("bob's"), when=1, with_jid="a@b", key="item1")
        await m.open(HOST, "other", "archive").append("alice", msg("x"), when=1, with_jid="a@b",
                                                      key="item1")
        assert await arc.count("alice", ArchiveQuery()) == 2
        generated = {await arc.append("carol", msg("g"), when=1, with_jid="a@b")
                     for _ in range(20)}
        assert len(generated) == 20


# --- manager and cross-store operations ------------------------------------------------


@async_test
async def test_open_returns_cached_stores(backend: str, tmp_path: Path) -> None:
    async with opened(backend, tmp_path) as m:
        assert m.open(HOST, "roster", "keyval") is m.open(HOST, "roster", "keyval")
        assert isinstance(m.open(HOST, "roster", "keyval"), KeyValStore)
        assert isinstance(m.open(HOST, "roster", "map"), MapStore)
        assert isinstance(m.open(HOST, "roster", "archive"), ArchiveStore)
        with pytest.raises(ValueError, match="kind"):
            m.open(HOST, "roster", "table")  # type: ignore[call-overload]


async def populate(m: StorageManager, host: str, user: str) -> None:
    await m.open(host, "roster", "keyval").set(user, {"items": []})
    await m.open(host, "vcard", "keyval").set(user, {"fn": user})
    await m.open(host, "private", "map").set_keys(user, {"a": 1, "b": 2})
    await m.open(host, "archive", "archive").append(user, msg("hi"), when=1, with_jid="x@y")


async def has_data(m: StorageManager, host: str, user: str) -> list[bool]:
    return [
        await m.open(host, "roster", "keyval").get(user) is not None,
        await m.open(host, "vcard", "keyval").get(user) is not None,
        await m.open(host, "private", "map").get_all(user) != {},
        await m.open(host, "archive", "archive").count(user, ArchiveQuery()) > 0,
    ]


@async_test
async def test_delete_user_everywhere(backend: str, tmp_path: Path) -> None:
    async with opened(backend, tmp_path) as m:
        for host, user in ((HOST, "alice"), (HOST, "bob"), ("other.example", "alice")):
            await populate(m, host, user)
        await m.open(HOST, "settings", "keyval").set(None, {"host": "wide"})
        await m.delete_user(HOST, "alice")
        assert await has_data(m, HOST, "alice") == [False] * 4
        assert await has_data(m, HOST, "bob") == [True] * 4
        assert await has_data(m, "other.example", "alice") == [True] * 4
        assert await m.open(HOST, "settings", "keyval").get(None) == {"host": "wide"}


@async_test
async def test_delete_user_reaches_stores_not_opened(tmp_path: Path) -> None:
    async with opened("sqlite", tmp_path) as m:
        await populate(m, HOST, "alice")
        await populate(m, HOST, "bob")
    async with opened("sqlite", tmp_path) as m:  # a new process: nothing opened yet
        await m.delete_user(HOST, "alice")
    async with opened("sqlite", tmp_path) as m:
        assert await has_data(m, HOST, "alice") == [False] * 4
        assert await has_data(m, HOST, "bob") == [True] * 4


@async_test
async def test_per_store_driver_overrides(tmp_path: Path) -> None:
    async with opened("sqlite", tmp_path, roster="memory") as m:
        roster = m.open(HOST, "roster", "keyval")
        vcard = m.open(HOST, "vcard", "keyval")
        # The manager's stores are timed wrappers around the driver's (storage/timed.py).
        assert isinstance(roster, TimedKeyValStore)
        assert isinstance(roster.inner, MemoryKeyValStore)
        assert isinstance(vcard, TimedKeyValStore)
        assert isinstance(vcard.inner, SqliteKeyValStore)
        await roster.set("alice", 1)
        await vcard.set("alice", 2)
        await m.delete_user(HOST, "alice")  # reaches both drivers
        assert await roster.get("alice") is None
        assert await vcard.get("alice") is None
        await roster.set("bob", 1)
        await vcard.set("bob", 2)
    async with opened("sqlite", tmp_path, roster="memory") as m:
        assert await m.open(HOST, "roster", "keyval").get("bob") is None  # memory is gone
        assert await m.open(HOST, "vcard", "keyval").get("bob") == 2


@async_test
async def test_purge_host(backend: str, tmp_path: Path) -> None:
    async with opened(backend, tmp_path) as m:
        await populate(m, HOST, "alice")
        await populate(m, "other.example", "alice")
        settings = m.open(HOST, "settings", "keyval")
        await settings.set(None, 1)
        await m.purge_host(HOST)
        assert await has_data(m, HOST, "alice") == [False] * 4
        assert await settings.get(None) is None
        assert await has_data(m, "other.example", "alice") == [True] * 4
        await settings.set(None, 2)  # stores handed out before the purge still work
        assert await settings.get(None) == 2


def test_storage_config_from_option() -> None:
    assert StorageConfig.from_option(None) == StorageConfig()
    assert StorageConfig.from_option("memory").default == "memory"
    c = StorageConfig.from_option({"default": "memory", "roster": "sqlite"})
    assert (c.default, dict(c.stores)) == ("memory", {"roster": "sqlite"})
    assert c.driver_for("roster") == "sqlite"
    assert c.driver_for("vcard") == "memory"
    assert c.drivers_in_use() == ["memory", "sqlite"]
    assert StorageConfig.from_option({"roster": "memory"}).default == "sqlite"
    with pytest.raises(ValueError, match=r"storage\.roster"):
        StorageConfig.from_option({"roster": 3})
    with pytest.raises(ValueError, match="storage"):
        StorageConfig.from_option(["sqlite"])


def test_unknown_driver_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'mysql'") as info:
        StorageManager(StorageConfig(default="mysql"), tmp_path)
    assert "memory" in str(info.value) and "sqlite" in str(info.value)
    with pytest.raises(ValueError, match=r"storage\.roster.*'nosql'"):
        StorageManager(StorageConfig(stores={"roster": "nosql"}), tmp_path)


@async_test
async def test_register_driver(tmp_path: Path) -> None:
    made: list[tuple[Path, dict[str, Any]]] = []

    def factory(data_path: Path, options: Any) -> MemoryDriver:
        made.append((data_path, dict(options)))
        return MemoryDriver()

    register_driver("test-driver", factory)
    assert "test-driver" in known_drivers()
    config = StorageConfig(default="test-driver", options={"test-driver": {"dsn": "x"}})
    m = StorageManager(config, tmp_path)
    await m.open(HOST, "s", "keyval").set("alice", 1)
    assert made == [(tmp_path, {"dsn": "x"})]
    await m.close()
    with pytest.raises(StorageError):
        m.open(HOST, "s", "keyval")
    # A manager can also be given its own registry.
    with pytest.raises(ValueError, match="known drivers: only"):
        StorageManager(StorageConfig(default="sqlite"), tmp_path, drivers={"only": factory})


# --- SQLite specifics -----------------------------------------------------------------


@async_test
async def test_sqlite_persists_across_reopen(tmp_path: Path) -> None:
    async with opened("sqlite", tmp_path) as m:
        await m.open(HOST, "kv", "keyval").set("alice", {"a": 1})
        await m.open(HOST, "kv", "keyval").set(None, "host")
        await m.open(HOST, "mp", "map").set("alice", "k", [1])
        keys = await fill(m.open(HOST, "arc", "archive"), [3, 1, 2])
    assert (tmp_path / DB_FILENAME).exists()
    async with opened("sqlite", tmp_path) as m:
        assert await m.open(HOST, "kv", "keyval").get("alice") == {"a": 1}
        assert await m.open(HOST, "kv", "keyval").get(None) == "host"
        assert await m.open(HOST, "mp", "map").get_all("alice") == {"k": [1]}
        items = await m.open(HOST, "arc", "archive").find("alice", ArchiveQuery())
        assert [i.key for i in items] == [keys[1], keys[2], keys[0]]
        # Insertion order keeps counting after a reopen.
        arc = m.open(HOST, "arc", "archive")
        k = await arc.append("alice", msg("late"), when=1, with_jid="a@b")
        assert [i.key for i in await arc.find("alice", ArchiveQuery(end=1))] == [keys[1], k]


def test_sqlite_pragmas_and_schema(tmp_path: Path) -> None:
    async def main() -> None:
        async with opened("sqlite", tmp_path):
            pass

    run(main())
    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [
            (len(MIGRATIONS),)]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert {"keyval", "map", "archive", "archive_when", "archive_with"} <= tables
    finally:
        conn.close()


@async_test
async def test_sqlite_newer_schema_is_refused(tmp_path: Path) -> None:
    async with opened("sqlite", tmp_path):
        pass
    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    with conn:
        conn.execute("UPDATE schema_version SET version = ?", (len(MIGRATIONS) + 1,))
    conn.close()
    m = StorageManager(StorageConfig(default="sqlite"), tmp_path)
    with pytest.raises(StorageError, match="newer") as info:
        await m.ready()
    assert str(len(MIGRATIONS) + 1) in str(info.value)
    with pytest.raises(StorageError, match="newer"):
        await m.open(HOST, "kv", "keyval").get("alice")
    await m.close()


@async_test
async def test_sqlite_unopenable_file(tmp_path: Path) -> None:
    (tmp_path / DB_FILENAME).write_bytes(b"this is not a database" * 100)
    driver = SqliteDriver(tmp_path / DB_FILENAME)
    with pytest.raises(StorageError, match="cannot open"):
        await driver.ready()
    await driver.close()


@async_test
async def test_sqlite_runs_on_one_thread_and_closes(tmp_path: Path) -> None:
    driver = SqliteDriver(tmp_path / "x" / "db.sqlite")  # missing directories are made
    await driver.ready()

    def thread_name(conn: sqlite3.Connection) -> str:
        return threading.current_thread().name

    names = await asyncio.gather(*(driver.call(thread_name, write=False) for _ in range(20)))
    assert len(set(names)) == 1
    assert names[0] != threading.current_thread().name
    kv = driver.keyval(HOST, "s")
    await kv.set("alice", 1)
    await driver.close()
    await driver.close()  # idempotent
    with pytest.raises(StorageError, match="closed"):
        await kv.get("alice")
    assert not (tmp_path / "x" / "db.sqlite-wal").exists() or (
        (tmp_path / "x" / "db.sqlite-wal").stat().st_size == 0)


@async_test
async def test_failed_operation_rolls_back(tmp_path: Path) -> None:
    driver = SqliteDriver(tmp_path / DB_FILENAME)

    def half_done(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO keyval VALUES ('h', 'u', 's', '1')")
        conn.execute("INSERT INTO no_such_table VALUES (1)")

    with pytest.raises(StorageError, match="no_such_table"):
        await driver.call(half_done, write=True)
    assert await driver.keyval("h", "s").get("u") is None
    await driver.close()


# --- concurrency ----------------------------------------------------------------------


@async_test
async def test_many_concurrent_tasks(backend: str, tmp_path: Path) -> None:
    async with opened(backend, tmp_path) as m:
        kv = m.open(HOST, "kv", "keyval")
        mp = m.open(HOST, "mp", "map")
        arc = m.open(HOST, "arc", "archive")

        async def worker(n: int) -> None:
            user = f"user{n % 10}"
            await kv.set(f"u{n}", {"n": n})
            await mp.set(user, f"k{n}", n)
            await arc.append(user, msg(str(n)), when=n % 7, with_jid=f"c{n}@example.net/r")
            assert await kv.get(f"u{n}") == {"n": n}

        await asyncio.gather(*(worker(n) for n in range(300)))
        assert len(await kv.users()) == 300
        assert sorted(await mp.users()) == [f"user{i}" for i in range(10)]
        for i in range(10):
            assert len(await mp.get_all(f"user{i}")) == 30
            items = await arc.find(f"user{i}", ArchiveQuery())
            assert len(items) == 30
            whens = [it.when for it in items]
            assert whens == sorted(whens)


@async_test
async def test_manager_accepts_the_raw_option(tmp_path: Path) -> None:
    m = StorageManager({"default": "memory", "roster": "sqlite"}, tmp_path)
    vcard = m.open(HOST, "vcard", "keyval")
    roster = m.open(HOST, "roster", "keyval")
    assert isinstance(vcard, TimedKeyValStore) and isinstance(vcard.inner, MemoryKeyValStore)
    assert isinstance(roster, TimedKeyValStore) and isinstance(roster.inner, SqliteKeyValStore)
    await m.ready()
    await m.close()
    await m.close()  # idempotent
