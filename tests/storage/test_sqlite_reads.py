"""SQLite point reads on the event loop's own connection (storage/sqlite.py): they never
wait behind the database thread's other reads, yet always see every write asked for
before them, and what another process committed."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

from tercet.storage.sqlite import SqliteDriver


def test_point_reads_see_every_write_asked_before_them(tmp_path: Path) -> None:
    async def main() -> None:
        driver = SqliteDriver(tmp_path / "tercet.sqlite")
        await driver.ready()
        kv = driver.keyval("localhost", "accounts")
        roster = driver.map("localhost", "roster")
        await kv.set("romeo", {"v": 0})
        free = threading.Event()
        # The database thread is busy (a long read of someone else's).
        busy = asyncio.ensure_future(driver.call(lambda conn: free.wait(10), write=False))
        await asyncio.sleep(0.05)
        # No write queued: the read is answered at once, not behind the busy thread.
        assert await asyncio.wait_for(kv.get("romeo"), 2) == {"v": 0}
        # A write queued behind the busy thread: a read asked for after it waits for it
        # rather than answer with the state before it.
        writing = asyncio.ensure_future(kv.set("romeo", {"v": 1}))
        setting = asyncio.ensure_future(roster.set("romeo", "juliet@localhost", {"n": "J"}))
        await asyncio.sleep(0)
        reading = asyncio.ensure_future(kv.get("romeo"))
        listing = asyncio.ensure_future(roster.get_all("romeo"))
        await asyncio.sleep(0.05)
        assert not reading.done() and not listing.done()
        free.set()
        assert await reading == {"v": 1}
        assert await listing == {"juliet@localhost": {"n": "J"}}
        await asyncio.gather(writing, setting, busy)
        # What another process commits (`tercet user add` beside a running server).
        other = sqlite3.connect(tmp_path / "tercet.sqlite", isolation_level=None)
        other.execute("UPDATE keyval SET value = '{\"v\": 2}' WHERE user = 'romeo'")
        other.close()
        assert await kv.get("romeo") == {"v": 2}
        assert await roster.get("romeo", "juliet@localhost") == {"n": "J"}
        await driver.close()
    asyncio.run(asyncio.wait_for(main(), 30))


def test_reads_from_another_thread_take_the_database_thread(tmp_path: Path) -> None:
    # The loop's connection belongs to the thread that opened it; a driver used from
    # another thread's loop still answers, through the database thread.
    driver = SqliteDriver(tmp_path / "tercet.sqlite")

    async def first() -> None:
        await driver.ready()
        await driver.keyval("localhost", "s").set("romeo", {"v": 1})
        assert await driver.keyval("localhost", "s").get("romeo") == {"v": 1}

    asyncio.run(first())
    got: list[object] = []

    def elsewhere() -> None:
        got.append(asyncio.run(driver.keyval("localhost", "s").get("romeo")))
    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join(10)
    assert got == [{"v": 1}]
    asyncio.run(driver.close())
