"""Storage: keyval, map and archive stores behind swappable drivers.

Modules get stores from ``module.open_store(name, kind)``; the server owns one
:class:`StorageManager`. See ``docs/internals.md`` for the contracts.
"""

from __future__ import annotations

from tercet.storage.base import (
    MAX_ARCHIVE_PAGE,
    ArchiveAppend,
    ArchiveItem,
    ArchiveKeyNotFound,
    ArchiveQuery,
    ArchiveStore,
    KeyValStore,
    MapStore,
    StorageDriver,
    StorageError,
    Store,
    StoreKind,
)
from tercet.storage.manager import (
    DriverFactory,
    StorageConfig,
    StorageManager,
    known_drivers,
    register_driver,
)

__all__ = [
    "MAX_ARCHIVE_PAGE",
    "ArchiveAppend",
    "ArchiveItem",
    "ArchiveKeyNotFound",
    "ArchiveQuery",
    "ArchiveStore",
    "DriverFactory",
    "KeyValStore",
    "MapStore",
    "StorageConfig",
    "StorageDriver",
    "StorageError",
    "StorageManager",
    "Store",
    "StoreKind",
    "known_drivers",
    "register_driver",
]
