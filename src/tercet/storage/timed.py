"""Stores that time their operations for an observer (the metrics module's histograms).

The manager hands out every store wrapped in one of these, so timing does not depend on
when the observer arrived: a store opened at start-up is timed once metrics are loaded.
Without an observer a call costs one attribute test and one extra coroutine frame; with
one, two clock reads and the observer's call. No metrics library is imported here: the
observer is a plain callable, ``observer(driver, kind, operation, seconds)``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from tercet.storage.base import (
    ArchiveAppend,
    ArchiveItem,
    ArchiveQuery,
    ArchiveStore,
    KeyValStore,
    MapStore,
    StoreKind,
)

if TYPE_CHECKING:
    from tercet.protocol.stanza import Element

__all__ = ["StorageObserver", "TimedArchiveStore", "TimedKeyValStore", "TimedMapStore"]

T = TypeVar("T")

#: ``observer(driver, kind, operation, seconds)``: one finished store operation (failed
#: ones too), e.g. ``("sqlite", "archive", "append", 0.0004)``. Must not raise or block.
StorageObserver = Callable[[str, str, str, float], None]


class ObserverSlot(Protocol):
    """Where the current observer is read from at each call (the manager)."""

    @property
    def observer(self) -> StorageObserver | None: ...


class _Timing:
    """What the three wrappers share: the observer's source and their labels."""

    __slots__ = ("driver", "kind", "slot")

    def __init__(self, slot: ObserverSlot, driver: str, kind: StoreKind) -> None:
        self.slot = slot
        self.driver = driver
        self.kind = kind

    async def run(self, operation: str, pending: Awaitable[T]) -> T:
        observer = self.slot.observer
        if observer is None:
            return await pending
        start = time.perf_counter()
        try:
            return await pending
        finally:
            observer(self.driver, self.kind, operation, time.perf_counter() - start)


class TimedKeyValStore(KeyValStore):
    """A keyval store whose operations are timed; ``inner`` is the driver's store."""

    __slots__ = ("_t", "inner")

    def __init__(self, inner: KeyValStore, slot: ObserverSlot, driver: str) -> None:
        self.inner = inner
        self._t = _Timing(slot, driver, "keyval")

    async def get(self, user: str | None) -> Any | None:
        return await self._t.run("get", self.inner.get(user))

    async def set(self, user: str | None, value: Any | None) -> None:
        await self._t.run("set", self.inner.set(user, value))

    async def users(self) -> list[str]:
        return await self._t.run("users", self.inner.users())

    async def delete_user(self, user: str) -> None:
        await self._t.run("delete_user", self.inner.delete_user(user))


class TimedMapStore(MapStore):
    """A map store whose operations are timed; ``inner`` is the driver's store."""

    __slots__ = ("_t", "inner")

    def __init__(self, inner: MapStore, slot: ObserverSlot, driver: str) -> None:
        self.inner = inner
        self._t = _Timing(slot, driver, "map")

    async def get(self, user: str | None, key: str) -> Any | None:
        return await self._t.run("get", self.inner.get(user, key))

    async def set(self, user: str | None, key: str, value: Any | None) -> None:
        await self._t.run("set", self.inner.set(user, key, value))

    async def set_keys(self, user: str | None, values: dict[str, Any | None]) -> None:
        await self._t.run("set_keys", self.inner.set_keys(user, values))

    async def get_all(self, user: str | None) -> dict[str, Any]:
        return await self._t.run("get_all", self.inner.get_all(user))

    async def users(self) -> list[str]:
        return await self._t.run("users", self.inner.users())

    async def delete_user(self, user: str) -> None:
        await self._t.run("delete_user", self.inner.delete_user(user))


class TimedArchiveStore(ArchiveStore):
    """An archive store whose operations are timed; ``inner`` is the driver's store."""

    __slots__ = ("_t", "inner")

    def __init__(self, inner: ArchiveStore, slot: ObserverSlot, driver: str) -> None:
        self.inner = inner
        self._t = _Timing(slot, driver, "archive")

    async def append(self, user: str, value: Element, *, when: float, with_jid: str,
                     key: str | None = None) -> str:
        return await self._t.run("append", self.inner.append(
            user, value, when=when, with_jid=with_jid, key=key))

    async def append_many(self, items: Sequence[ArchiveAppend]) -> None:
        # The driver's own batch (one transaction), not the base class's loop.
        await self._t.run("append_many", self.inner.append_many(items))

    async def find(self, user: str, q: ArchiveQuery) -> list[ArchiveItem]:
        return await self._t.run("find", self.inner.find(user, q))

    async def count(self, user: str, q: ArchiveQuery) -> int:
        return await self._t.run("count", self.inner.count(user, q))

    async def delete(self, user: str, q: ArchiveQuery | None = None) -> int:
        return await self._t.run("delete", self.inner.delete(user, q))

    async def users(self) -> list[str]:
        return await self._t.run("users", self.inner.users())

    async def delete_user(self, user: str) -> None:
        await self._t.run("delete_user", self.inner.delete_user(user))
