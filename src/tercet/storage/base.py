"""The three storage interfaces (keyval, map, archive) and the driver interface.

Modules never see a driver: they call ``module.open_store(name, kind)`` and get one
of :class:`KeyValStore`, :class:`MapStore` or :class:`ArchiveStore`, bound to one
host and one store name. Every method is a coroutine; drivers may do I/O.

Rules common to every store:

* ``user`` is a nodeprep'd localpart, or ``None`` for data that belongs to the
  host itself (keyval and map stores only). Drivers do no JID preparation.
* Keyval and map values are JSON-serialisable (dict, list, str, int, float,
  bool, ``None`` inside containers). Storing ``None`` deletes. A value is
  snapshotted when the call is made: mutating it afterwards changes nothing, and
  what ``get`` returns is a fresh copy the caller may mutate.
* Archive values are :class:`~tercet.protocol.stanza.Element` trees, serialised
  with ``Element.to_xml`` and read back with ``xmlstream.parse_fragment``.
* Driver failures (disk full, corrupt database, schema too new, ...) raise
  :class:`StorageError`. Misuse (a value that is not JSON, a negative limit)
  raises ``TypeError``/``ValueError``.
"""

from __future__ import annotations

import abc
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from tercet.protocol.stanza import Element

__all__ = [
    "MAX_ARCHIVE_PAGE",
    "ArchiveAppend",
    "ArchiveItem",
    "ArchiveKeyNotFound",
    "ArchiveQuery",
    "ArchiveStore",
    "KeyValStore",
    "MapStore",
    "StorageDriver",
    "StorageError",
    "Store",
    "StoreKind",
    "bare_of",
]

StoreKind = Literal["keyval", "map", "archive"]

# XEP-0313 §5.1 (Paging with RSM, XEP-0059 §2.1): "the server MAY impose a limit on the
# number of items returned"; clients page through larger archives. One call never
# materialises more than this many items, whatever the client asked for.
MAX_ARCHIVE_PAGE = 1000


class StorageError(Exception):
    """A storage driver could not do its job (I/O error, corrupt data, schema too new).

    The message is for logs and operators; it is never sent to a peer.
    """


class ArchiveKeyNotFound(LookupError):
    """``ArchiveQuery.before``/``after`` names a key that is not in the archive.

    XEP-0313 §5.1.2 / XEP-0059 §2.5: the MAM module answers ``item-not-found``.
    """

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def bare_of(jid: str) -> str:
    """Return the bare part of a JID string (everything before the first ``/``).

    RFC 6122 §2.1: neither the localpart nor the domainpart may contain ``/``, so
    the first slash always starts the resourcepart.
    """
    return jid.partition("/")[0]


@dataclass(frozen=True, slots=True)
class ArchiveQuery:
    """Which archive items a ``find``/``count``/``delete`` call selects.

    All given filters must hold (logical AND):

    * ``start``/``end``: inclusive bounds on ``when`` (seconds since the epoch).
    * ``with_jid``: a bare JID matches items stored with that bare JID *or any full
      JID under it*; a full JID matches only items stored with exactly that JID
      (XEP-0313 §4.1.1).
    * ``ids``: only items whose key is in this collection (XEP-0313 §4.1.3 ``ids``).
    * ``after``/``before``: only items strictly after/before the item with that key,
      in archive order. An unknown key raises :class:`ArchiveKeyNotFound`.

    Paging (``find`` only; ``count`` and ``delete`` ignore both):

    * ``limit``: at most this many items, clamped to :data:`MAX_ARCHIVE_PAGE`;
      ``None`` means the maximum.
    * ``reverse``: take items from the newest end and return them newest first.
      The RSM "last page" (``<before/>`` empty) is ``reverse=True`` with a limit;
      the next older page is ``reverse=True, before=<first key of this page>``.
    """

    start: float | None = None
    end: float | None = None
    with_jid: str | None = None
    before: str | None = None
    after: str | None = None
    ids: Collection[str] | None = None
    limit: int | None = None
    reverse: bool = False

    def __post_init__(self) -> None:
        if self.ids is not None:
            if isinstance(self.ids, str):
                raise TypeError("ArchiveQuery.ids must be a collection of keys, not a str")
            # A frozenset keeps the query hashable and makes membership tests cheap.
            object.__setattr__(self, "ids", frozenset(self.ids))
        if self.limit is not None:
            if self.limit < 0:
                raise ValueError(f"ArchiveQuery.limit must be >= 0, not {self.limit}")
            object.__setattr__(self, "limit", min(self.limit, MAX_ARCHIVE_PAGE))

    @property
    def page_size(self) -> int:
        """The number of items one ``find`` may return at most."""
        return MAX_ARCHIVE_PAGE if self.limit is None else self.limit


@dataclass(frozen=True, slots=True)
class ArchiveItem:
    """One archived element with its key, time and the JID it was exchanged with."""

    key: str
    value: Element
    when: float
    with_jid: str


@dataclass(frozen=True, slots=True)
class ArchiveAppend:
    """One item for :meth:`ArchiveStore.append_many` (the arguments of ``append``)."""

    user: str
    value: Element
    when: float
    with_jid: str
    key: str


class KeyValStore(abc.ABC):
    """One JSON value per user (``user=None``: one value for the host itself)."""

    @abc.abstractmethod
    async def get(self, user: str | None) -> Any | None:
        """Return the stored value, or ``None`` if there is none."""

    @abc.abstractmethod
    async def set(self, user: str | None, value: Any | None) -> None:
        """Store ``value``; ``None`` deletes."""

    @abc.abstractmethod
    async def users(self) -> list[str]:
        """Return the users that have a value (never the host-wide ``None`` entry)."""

    @abc.abstractmethod
    async def delete_user(self, user: str) -> None:
        """Delete the user's value, if any."""


class MapStore(abc.ABC):
    """Many keys per user, each with a JSON value."""

    @abc.abstractmethod
    async def get(self, user: str | None, key: str) -> Any | None:
        """Return the value stored under ``key``, or ``None``."""

    @abc.abstractmethod
    async def set(self, user: str | None, key: str, value: Any | None) -> None:
        """Store one key; ``None`` deletes it."""

    @abc.abstractmethod
    async def set_keys(self, user: str | None, values: dict[str, Any | None]) -> None:
        """Store several keys at once (atomically where the driver can); ``None`` deletes."""

    @abc.abstractmethod
    async def get_all(self, user: str | None) -> dict[str, Any]:
        """Return every key of the user (an empty dict if none)."""

    @abc.abstractmethod
    async def users(self) -> list[str]:
        """Return the users that have at least one key (never ``None``)."""

    @abc.abstractmethod
    async def delete_user(self, user: str) -> None:
        """Delete every key of the user."""


class ArchiveStore(abc.ABC):
    """Time-ordered :class:`~tercet.protocol.stanza.Element` items per user.

    Archive order is ``(when, insertion order)``: items with equal ``when`` keep the
    order in which they were appended.
    """

    @abc.abstractmethod
    async def append(
        self,
        user: str,
        value: Element,
        *,
        when: float,
        with_jid: str,
        key: str | None = None,
    ) -> str:
        """Archive ``value`` and return its key.

        Keys are unique per (host, user, store). Without ``key`` a new unguessable
        one is made (suitable as a XEP-0359 stanza-id). Appending with an existing
        key replaces that item: the old one is removed and the new one takes its
        place at the end of the order for its ``when``.
        """

    async def append_many(self, items: Sequence[ArchiveAppend]) -> None:
        """Append several items, of any users, in this order, as :meth:`append` does
        one by one (drivers may do it in one transaction)."""
        for item in items:
            await self.append(item.user, item.value, when=item.when, with_jid=item.with_jid,
                              key=item.key)

    @abc.abstractmethod
    async def find(self, user: str, q: ArchiveQuery) -> list[ArchiveItem]:
        """Return one page of matching items (see :class:`ArchiveQuery`)."""

    @abc.abstractmethod
    async def count(self, user: str, q: ArchiveQuery) -> int:
        """Count matching items, ignoring ``limit`` and ``reverse``."""

    @abc.abstractmethod
    async def delete(self, user: str, q: ArchiveQuery | None = None) -> int:
        """Delete matching items (all of the user's if ``q`` is None); return how many.

        ``limit`` and ``reverse`` are ignored.
        """

    @abc.abstractmethod
    async def users(self) -> list[str]:
        """Return the users that have at least one item."""

    @abc.abstractmethod
    async def delete_user(self, user: str) -> None:
        """Delete every item of the user."""


Store = KeyValStore | MapStore | ArchiveStore


class StorageDriver(abc.ABC):
    """A backend that makes stores of all three kinds for any host.

    Drivers are created by the factory given to
    :func:`tercet.storage.manager.register_driver`.
    """

    name: str

    @abc.abstractmethod
    def keyval(self, host: str, store: str) -> KeyValStore:
        """Return the keyval store ``store`` of ``host``."""

    @abc.abstractmethod
    def map(self, host: str, store: str) -> MapStore:
        """Return the map store ``store`` of ``host``."""

    @abc.abstractmethod
    def archive(self, host: str, store: str) -> ArchiveStore:
        """Return the archive store ``store`` of ``host``."""

    async def ready(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Wait until the driver is usable; raise :class:`StorageError` if it never will be."""

    @abc.abstractmethod
    async def delete_user(self, host: str, user: str) -> None:
        """Delete the user's data in every store of every kind, opened or not."""

    @abc.abstractmethod
    async def purge_host(self, host: str) -> None:
        """Delete all data of ``host`` (users and host-wide entries)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Flush and release resources; the driver is unusable afterwards."""
