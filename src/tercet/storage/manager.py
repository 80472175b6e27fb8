"""Which driver serves which store, and the store cache.

Configuration (``storage`` in the server's TOML)::

    storage = "sqlite"                                  # every store
    storage = { default = "sqlite", roster = "memory" } # per-store overrides

Drivers are made by factories registered by name (``memory`` and ``sqlite`` built in,
``postgresql`` later) and created on first use. The manager is owned by the Server
and handed to whatever needs it; there is no global instance.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, overload

from tercet.storage.base import (
    ArchiveStore,
    KeyValStore,
    MapStore,
    StorageDriver,
    StorageError,
    Store,
    StoreKind,
)
from tercet.storage.memory import create_memory_driver
from tercet.storage.sqlite import create_sqlite_driver
from tercet.storage.timed import (
    StorageObserver,
    TimedArchiveStore,
    TimedKeyValStore,
    TimedMapStore,
)

__all__ = [
    "DEFAULT_DRIVER",
    "DriverFactory",
    "StorageConfig",
    "StorageManager",
    "known_drivers",
    "register_driver",
]

log = logging.getLogger(__name__)

DEFAULT_DRIVER = "sqlite"

DriverFactory = Callable[[Path, Mapping[str, Any]], StorageDriver]
"""``factory(data_path, options) -> StorageDriver``; options come from the config."""

# Factories by name. Filled at import time by this module and by driver packages
# (``register_driver("postgresql", ...)``); a manager takes a snapshot when created.
_REGISTRY: dict[str, DriverFactory] = {
    "memory": create_memory_driver,
    "sqlite": create_sqlite_driver,
}


def register_driver(name: str, factory: DriverFactory) -> None:
    """Make ``storage = "<name>"`` use ``factory``. Re-registering a name replaces it."""
    if not name or not isinstance(name, str):
        raise ValueError(f"a storage driver name must be a non-empty string, not {name!r}")
    _REGISTRY[name] = factory


def known_drivers() -> list[str]:
    """The registered driver names, sorted."""
    return sorted(_REGISTRY)


def _check_driver(name: str, known: Mapping[str, DriverFactory], where: str) -> None:
    if name not in known:
        raise ValueError(
            f"{where}: unknown storage driver {name!r}; known drivers: {', '.join(sorted(known))}"
        )


@dataclass(frozen=True)
class StorageConfig:
    """The ``storage`` setting: a default driver and per-store overrides.

    ``options`` holds per-driver settings (e.g. ``{"sqlite": {"file": "x.sqlite"}}``),
    handed to the driver's factory.
    """

    default: str = DEFAULT_DRIVER
    stores: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_option(cls, value: object, *, key: str = "storage") -> StorageConfig:
        """Build from the TOML value: a driver name or a table of store -> driver.

        Raises ``ValueError`` naming ``key`` when the value has the wrong shape.
        """
        if value is None:
            return cls()
        if isinstance(value, str):
            return cls(default=value)
        if not isinstance(value, Mapping):
            # Config errors are ValueError throughout, so the loader reports them alike.
            raise ValueError(  # noqa: TRY004
                f"{key}: expected a driver name or a table such as "
                f'{{default = "sqlite", roster = "memory"}}, not {type(value).__name__}'
            )
        stores: dict[str, str] = {}
        for store, driver in value.items():
            if not isinstance(driver, str):
                msg = f"{key}.{store}: expected a driver name, not {driver!r}"
                raise ValueError(msg)  # noqa: TRY004
            stores[str(store)] = driver
        default = stores.pop("default", DEFAULT_DRIVER)
        return cls(default=default, stores=stores)

    def driver_for(self, store: str) -> str:
        """The name of the driver that serves ``store``."""
        return self.stores.get(store, self.default)

    def drivers_in_use(self) -> list[str]:
        """Every driver named by this configuration: the default first."""
        names = [self.default]
        for name in self.stores.values():
            if name not in names:
                names.append(name)
        return names


class StorageManager:
    """Opens stores through the configured drivers, caches them, and cleans up users."""

    def __init__(
        self,
        config: StorageConfig | str | Mapping[str, str],
        data_path: Path,
        *,
        drivers: Mapping[str, DriverFactory] | None = None,
    ) -> None:
        """``config`` may also be the raw ``storage`` option (a name or a table).

        ``drivers`` replaces the registry (tests); unknown driver names raise
        ``ValueError`` naming the driver and the known ones.
        """
        if not isinstance(config, StorageConfig):
            config = StorageConfig.from_option(config)
        self.config = config
        self.data_path = data_path
        self._factories = dict(_REGISTRY if drivers is None else drivers)
        _check_driver(config.default, self._factories, "storage.default")
        for store, name in config.stores.items():
            _check_driver(name, self._factories, f"storage.{store}")
        self._drivers: dict[str, StorageDriver] = {}
        self._stores: dict[tuple[str, str, StoreKind], Store] = {}
        self._closed = False
        # Told of every store operation and its duration when set (the metrics module);
        # the stores ``open`` returns read it at each call (storage/timed.py).
        self.observer: StorageObserver | None = None

    def driver(self, name: str) -> StorageDriver:
        """The driver called ``name``, created on first use."""
        if self._closed:
            raise StorageError("storage manager is closed")
        driver = self._drivers.get(name)
        if driver is None:
            _check_driver(name, self._factories, "storage")
            options = self.config.options.get(name, {})
            driver = self._drivers[name] = self._factories[name](self.data_path, options)
        return driver

    async def ready(self) -> None:
        """Create every configured driver and wait until it is usable.

        Call at startup so that a bad database (e.g. a schema from a newer Tercet)
        stops the server there, not at the first login.
        """
        for name in self.config.drivers_in_use():
            await self.driver(name).ready()

    @overload
    def open(self, host: str, store: str, kind: Literal["keyval"]) -> KeyValStore: ...
    @overload
    def open(self, host: str, store: str, kind: Literal["map"]) -> MapStore: ...
    @overload
    def open(self, host: str, store: str, kind: Literal["archive"]) -> ArchiveStore: ...
    @overload
    def open(self, host: str, store: str, kind: StoreKind) -> Store: ...

    def open(self, host: str, store: str, kind: StoreKind) -> Store:
        """Return the store ``store`` of ``kind`` for ``host`` (the same object each time),
        timed for ``observer`` (the driver's own store is its ``inner``)."""
        cached = self._stores.get((host, store, kind))
        if cached is not None:
            return cached
        driver = self.driver(self.config.driver_for(store))
        opened: Store
        if kind == "keyval":
            opened = TimedKeyValStore(driver.keyval(host, store), self, driver.name)
        elif kind == "map":
            opened = TimedMapStore(driver.map(host, store), self, driver.name)
        elif kind == "archive":
            opened = TimedArchiveStore(driver.archive(host, store), self, driver.name)
        else:
            raise ValueError(f"unknown store kind {kind!r}; expected keyval, map or archive")
        self._stores[(host, store, kind)] = opened
        return opened

    def _all_drivers(self) -> list[StorageDriver]:
        for name in self.config.drivers_in_use():
            self.driver(name)
        return list(self._drivers.values())

    async def delete_user(self, host: str, user: str) -> None:
        """Delete the user's data in every store of every kind of every driver in use.

        Stores never opened in this process are included: drivers delete by
        (host, user) across all their tables. Every driver is tried even if one fails;
        the first failure is raised at the end.
        """
        await self._each_driver(lambda d: d.delete_user(host, user), f"deleting {user}@{host}")

    async def purge_host(self, host: str) -> None:
        """Delete every piece of data of ``host`` in every driver in use."""
        await self._each_driver(lambda d: d.purge_host(host), f"purging {host}")

    async def _each_driver(self, action: Callable[[StorageDriver], Any], what: str) -> None:
        first: BaseException | None = None
        for driver in self._all_drivers():
            try:
                await action(driver)
            except StorageError as exc:
                log.error("storage driver %s failed %s: %s", driver.name, what, exc)
                first = first or exc
        if first is not None:
            raise first

    async def close(self) -> None:
        """Close every driver (flushing what they hold); the manager is unusable after."""
        if self._closed:
            return
        self._closed = True
        self._stores.clear()
        drivers, self._drivers = list(self._drivers.values()), {}
        first: BaseException | None = None
        for driver in drivers:
            try:
                await driver.close()
            except StorageError as exc:
                log.error("storage driver %s failed to close: %s", driver.name, exc)
                first = first or exc
        if first is not None:
            raise first
