"""The memory storage driver: plain dicts, lost on exit.

Used by tests and by ``storage = "memory"`` (e.g. for a throw-away anonymous host).
Values are kept as JSON text so that callers get the same copy semantics, and the
same ``TypeError`` for non-JSON values, as with the SQLite driver.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tercet.storage._codec import decode_json, encode_json, new_archive_key
from tercet.storage.base import (
    ArchiveItem,
    ArchiveKeyNotFound,
    ArchiveQuery,
    ArchiveStore,
    KeyValStore,
    MapStore,
    StorageDriver,
    bare_of,
)

if TYPE_CHECKING:
    from tercet.protocol.stanza import Element

__all__ = ["MemoryDriver", "create_memory_driver"]

_Slot = tuple[str, str]  # (host, store)


@dataclass(slots=True)
class _Entry:
    key: str
    value: Element
    when: float
    seq: int
    with_jid: str
    with_bare: str

    @property
    def position(self) -> tuple[float, int]:
        return (self.when, self.seq)

    def to_item(self) -> ArchiveItem:
        return ArchiveItem(self.key, self.value.copy(), self.when, self.with_jid)


class _Archive:
    """One user's archive: entries sorted by (when, seq), and an index by key."""

    __slots__ = ("by_key", "entries")

    def __init__(self) -> None:
        self.entries: list[_Entry] = []
        self.by_key: dict[str, _Entry] = {}

    def add(self, entry: _Entry) -> None:
        old = self.by_key.pop(entry.key, None)
        if old is not None:
            self.entries.remove(old)
        bisect.insort(self.entries, entry, key=lambda e: e.position)
        self.by_key[entry.key] = entry

    def remove(self, doomed: Iterable[_Entry]) -> int:
        keys = {e.key for e in doomed}
        for key in keys:
            del self.by_key[key]
        self.entries = [e for e in self.entries if e.key not in keys]
        return len(keys)

    def position_of(self, key: str) -> tuple[float, int]:
        entry = self.by_key.get(key)
        if entry is None:
            raise ArchiveKeyNotFound(key)
        return entry.position

    def select(self, q: ArchiveQuery) -> list[_Entry]:
        """Every entry matching the filters of ``q``, in archive order."""
        lo = self.position_of(q.after) if q.after is not None else None
        hi = self.position_of(q.before) if q.before is not None else None
        return [e for e in self.entries if _matches(e, q, lo, hi)]


def _matches(
    e: _Entry, q: ArchiveQuery, lo: tuple[float, int] | None, hi: tuple[float, int] | None
) -> bool:
    if q.start is not None and e.when < q.start:
        return False
    if q.end is not None and e.when > q.end:
        return False
    if q.with_jid is not None:
        # A bare JID in the query also matches items stored with a full JID under it.
        stored = e.with_jid if "/" in q.with_jid else e.with_bare
        if stored != q.with_jid:
            return False
    if q.ids is not None and e.key not in q.ids:
        return False
    if lo is not None and e.position <= lo:
        return False
    return hi is None or e.position < hi


class MemoryKeyValStore(KeyValStore):
    def __init__(self, data: dict[str | None, str]) -> None:
        self._data = data

    async def get(self, user: str | None) -> Any | None:
        text = self._data.get(user)
        return None if text is None else decode_json(text)

    async def set(self, user: str | None, value: Any | None) -> None:
        if value is None:
            self._data.pop(user, None)
        else:
            self._data[user] = encode_json(value)

    async def users(self) -> list[str]:
        return [u for u in self._data if u is not None]

    async def delete_user(self, user: str) -> None:
        self._data.pop(user, None)


class MemoryMapStore(MapStore):
    def __init__(self, data: dict[str | None, dict[str, str]]) -> None:
        self._data = data

    async def get(self, user: str | None, key: str) -> Any | None:
        text = self._data.get(user, {}).get(key)
        return None if text is None else decode_json(text)

    async def set(self, user: str | None, key: str, value: Any | None) -> None:
        await self.set_keys(user, {key: value})

    async def set_keys(self, user: str | None, values: dict[str, Any | None]) -> None:
        # Encode everything first so a bad value changes nothing (as a transaction would).
        encoded = {k: None if v is None else encode_json(v) for k, v in values.items()}
        keys = self._data.setdefault(user, {})
        for k, text in encoded.items():
            if text is None:
                keys.pop(k, None)
            else:
                keys[k] = text
        if not keys:
            del self._data[user]

    async def get_all(self, user: str | None) -> dict[str, Any]:
        return {k: decode_json(t) for k, t in self._data.get(user, {}).items()}

    async def users(self) -> list[str]:
        return [u for u in self._data if u is not None]

    async def delete_user(self, user: str) -> None:
        self._data.pop(user, None)


class MemoryArchiveStore(ArchiveStore):
    def __init__(self, data: dict[str, _Archive], seq: itertools.count[int]) -> None:
        self._data = data
        self._seq = seq

    async def append(
        self,
        user: str,
        value: Element,
        *,
        when: float,
        with_jid: str,
        key: str | None = None,
    ) -> str:
        key = new_archive_key() if key is None else key
        entry = _Entry(key, value.copy(), float(when), next(self._seq), with_jid, bare_of(with_jid))
        self._data.setdefault(user, _Archive()).add(entry)
        return key

    async def find(self, user: str, q: ArchiveQuery) -> list[ArchiveItem]:
        archive = self._archive_or_raise(user, q)
        if archive is None:
            return []
        entries = archive.select(q)
        n = q.page_size
        page = entries[::-1][:n] if q.reverse else entries[:n]
        return [e.to_item() for e in page]

    async def count(self, user: str, q: ArchiveQuery) -> int:
        archive = self._archive_or_raise(user, q)
        return 0 if archive is None else len(archive.select(q))

    async def delete(self, user: str, q: ArchiveQuery | None = None) -> int:
        archive = self._archive_or_raise(user, q)
        if archive is None:
            return 0
        if q is None:
            del self._data[user]
            return len(archive.entries)
        n = archive.remove(archive.select(q))
        if not archive.entries:
            del self._data[user]
        return n

    async def users(self) -> list[str]:
        return list(self._data)

    async def delete_user(self, user: str) -> None:
        self._data.pop(user, None)

    def _archive_or_raise(self, user: str, q: ArchiveQuery | None) -> _Archive | None:
        archive = self._data.get(user)
        if archive is None and q is not None:
            # No archive at all: any before/after key is unknown, as with a real table.
            for key in (q.after, q.before):
                if key is not None:
                    raise ArchiveKeyNotFound(key)
        return archive


class MemoryDriver(StorageDriver):
    """Keeps every store of every host in dictionaries owned by this driver."""

    name = "memory"

    def __init__(self) -> None:
        self._keyval: dict[_Slot, dict[str | None, str]] = {}
        self._map: dict[_Slot, dict[str | None, dict[str, str]]] = {}
        self._archive: dict[_Slot, dict[str, _Archive]] = {}
        # Driver-wide insertion counter: the tie-breaker of the archive order.
        self._seq = itertools.count()

    def keyval(self, host: str, store: str) -> KeyValStore:
        return MemoryKeyValStore(self._keyval.setdefault((host, store), {}))

    def map(self, host: str, store: str) -> MapStore:
        return MemoryMapStore(self._map.setdefault((host, store), {}))

    def archive(self, host: str, store: str) -> ArchiveStore:
        return MemoryArchiveStore(self._archive.setdefault((host, store), {}), self._seq)

    async def delete_user(self, host: str, user: str) -> None:
        tables: tuple[dict[_Slot, Any], ...] = (self._keyval, self._map, self._archive)
        for table in tables:
            for (h, _store), users in table.items():
                if h == host:
                    users.pop(user, None)

    async def purge_host(self, host: str) -> None:
        tables: tuple[dict[_Slot, Any], ...] = (self._keyval, self._map, self._archive)
        for table in tables:
            for (h, _store), users in table.items():
                if h == host:
                    # Clear in place: store objects already handed out keep working.
                    users.clear()

    async def close(self) -> None:
        pass


def create_memory_driver(data_path: Path, options: Mapping[str, Any]) -> MemoryDriver:
    """Driver factory for the registry; the memory driver takes no options."""
    del data_path, options
    return MemoryDriver()
