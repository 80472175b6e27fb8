"""Persistent rooms (modules/_muc/store.py) on the real SQLite store: what was changed
before the module unloads is what the next start finds, even when the disk is slow."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from tercet.modules._muc.api import RoomConfig
from tercet.modules._muc.room import Room
from tercet.modules._muc.store import RoomStore
from tercet.protocol.jid import JID
from tercet.storage.sqlite import SqliteDriver


def test_unload_waits_for_the_write_under_way(tmp_path: Path) -> None:
    """The writer task has taken the room's latest state off the queue and waits for the
    database (busy with a long transaction): flush (run at unload, before the module's
    tasks are cancelled) waits for that write instead of returning at once."""
    async def main() -> None:
        driver = SqliteDriver(tmp_path / "tercet.sqlite")
        await driver.ready()
        store = driver.keyval("conference.localhost", "muc_rooms")
        tasks: list[asyncio.Task[None]] = []

        def spawn(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
            task = asyncio.ensure_future(coro)
            tasks.append(task)
            return task
        rooms = RoomStore(store, spawn)
        # Room only keeps its service; nothing here asks it anything.
        room = Room(None, JID("kept", "conference.localhost"),  # type: ignore[arg-type]
                    RoomConfig(persistent=True))
        disk_free = threading.Event()
        busy = asyncio.ensure_future(driver.call(lambda conn: disk_free.wait(10),
                                                 write=False))
        await asyncio.sleep(0.05)  # the database thread is now inside that transaction
        room.set_affiliation_raw("juliet@localhost", "member")
        rooms.changed(room)
        await asyncio.sleep(0.05)  # the writer took the state and waits for the thread
        flushing = asyncio.ensure_future(rooms.flush())
        await asyncio.sleep(0.05)
        assert not flushing.done()
        disk_free.set()
        await asyncio.wait_for(flushing, 10)
        for task in tasks:  # what unloading does next
            task.cancel()
        await busy
        stored = await store.get("kept")
        assert stored is not None and stored["affiliations"] == {"juliet@localhost": "member"}
        await driver.close()
    asyncio.run(asyncio.wait_for(main(), 30))


def test_settle_waits_until_every_marked_change_is_stored(tmp_path: Path) -> None:
    """What a room acknowledges (an owner's iq result) waits for ``settle``: it returns
    only once the change is on disk, including a change marked while the writer ran."""
    async def main() -> None:
        driver = SqliteDriver(tmp_path / "tercet.sqlite")
        await driver.ready()
        store = driver.keyval("conference.localhost", "muc_rooms")
        rooms = RoomStore(store, asyncio.ensure_future)
        room = Room(None, JID("kept", "conference.localhost"),  # type: ignore[arg-type]
                    RoomConfig(persistent=True))
        await rooms.settle()  # nothing marked: at once
        disk_free = threading.Event()
        busy = asyncio.ensure_future(driver.call(lambda conn: disk_free.wait(10),
                                                 write=False))
        await asyncio.sleep(0.05)  # the database thread is busy
        room.set_affiliation_raw("juliet@localhost", "member")
        rooms.changed(room)
        settling = asyncio.ensure_future(rooms.settle())
        await asyncio.sleep(0.05)
        room.set_affiliation_raw("romeo@localhost", "admin")
        rooms.changed(room)  # marked while the writer waits: settle waits for it too
        await asyncio.sleep(0.05)
        assert not settling.done()
        disk_free.set()
        await asyncio.wait_for(settling, 10)
        await busy
        stored = await store.get("kept")
        assert stored is not None and stored["affiliations"] == {
            "juliet@localhost": "member", "romeo@localhost": "admin"}
        await driver.close()
    asyncio.run(asyncio.wait_for(main(), 30))
