"""Persistent rooms (XEP-0045 §10.2 ``muc#roomconfig_persistentroom``): configuration,
affiliations (with reserved nicks and reasons) and subject, one keyval entry per room.

Writes do not hold up the room: a changed room is marked and one writer task stores the
latest state of every marked room, in turn, so a burst of changes costs one write per
room and the order of writes cannot leave an older state stored last. What the room sends
because of a change (the owner's iq result, the broadcast) waits for that write
(``settle``), so an acknowledged change survives a crash.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from tercet.module import KeyValStore, StorageError
from tercet.modules._muc.api import Affiliation, RoomConfig
from tercet.modules._muc.config import role_tuple
from tercet.modules._muc.room import AffiliationData, Room
from tercet.modules._muc.service import Service
from tercet.protocol.jid import JID

log = logging.getLogger("tercet.mod.muc.store")

_AFFILIATIONS: dict[str, Affiliation] = {
    "owner": "owner", "admin": "admin", "member": "member", "outcast": "outcast"}


class RoomStore:
    """Saves persistent rooms and loads them at start."""

    def __init__(self, store: KeyValStore,
                 spawn: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]]) -> None:
        self._store = store
        self._spawn = spawn
        self._dirty: dict[str, Room | None] = {}  # node -> room to save (None: delete)
        self._writing = False
        self._writer: asyncio.Task[None] | None = None

    def changed(self, room: Room) -> None:
        """Queue the room's state (or its deletion when it is no longer persistent)."""
        self._mark(room.jid.node or "", room if room.config.persistent else None)

    def destroyed(self, room: Room) -> None:
        self._mark(room.jid.node or "", None)

    def _mark(self, node: str, room: Room | None) -> None:
        self._dirty[node] = room
        if not self._writing:
            self._writing = True
            self._writer = self._spawn(self._write())

    async def _write(self) -> None:
        try:
            while self._dirty:
                await self._write_one()
        finally:
            self._writing = False

    async def _write_one(self) -> None:
        node = next(iter(self._dirty))
        room = self._dirty.pop(node)
        try:
            await self._store.set(node, None if room is None else room.snapshot())
        except StorageError:
            log.exception("could not save room %s", node)

    async def settle(self) -> None:
        """Wait until every change marked so far is stored (the writer has emptied the
        queue): what a room acknowledges, it has stored (a crash right after the iq
        result loses nothing). Only the writer writes, so the order of writes holds."""
        writer = self._writer
        while self._writing and writer is not None and not writer.done():
            await asyncio.wait([writer])
            writer = self._writer

    async def flush(self) -> None:
        """Write everything still queued (before unloading). The writer task finishes
        first: it holds the state it took off the queue, and unloading cancels the
        module's tasks, so that state would be lost (and an earlier one stay stored)."""
        writer = self._writer
        if writer is not None and not writer.done():
            await asyncio.wait([writer])
        while self._dirty:
            await self._write_one()

    async def load(self, service: Service) -> int:
        """Recreate every stored room; returns how many."""
        count = 0
        for node in await self._store.users():
            data = await self._store.get(node)
            if isinstance(data, dict):
                service.add_room(room_from(service, node, data))
                count += 1
        return count


def room_from(service: Service, node: str, data: dict[str, Any]) -> Room:
    """A room from its snapshot (unknown keys ignored, so older data still loads)."""
    config = RoomConfig()
    for name, value in dict(data.get("config") or {}).items():
        if name in RoomConfig.__slots__:
            setattr(config, name, value)
    config.presence_broadcast = role_tuple(list(config.presence_broadcast))
    config.get_member_list = role_tuple(list(config.get_member_list))
    config.extra = dict(config.extra or {})
    room = Room(service, JID(node, service.host), config)
    extra_data = dict(data.get("affiliation_data") or {})
    for bare, name in dict(data.get("affiliations") or {}).items():
        affiliation = _AFFILIATIONS.get(str(name))
        if affiliation is None:
            continue
        found = extra_data.get(bare) or {}
        room.set_affiliation_raw(str(bare), affiliation, AffiliationData(
            found.get("nick"), found.get("reason")))
    for bare, hats in dict(data.get("hats") or {}).items():
        if isinstance(hats, dict) and hats:
            room.hats[str(bare)] = {str(uri): str(title) for uri, title in hats.items()}
    room.set_subject_raw(str(data.get("subject") or ""), data.get("subject_from"))
    room.locked = bool(data.get("locked"))
    room.history.resize(config.history_length)
    return room
