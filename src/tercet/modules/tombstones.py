"""Tombstones: remember deleted accounts so their names are not handed to someone else.

When an account is deleted (``user-deleted``), its username is kept with the time of
deletion for ``user_tombstone_expiry`` seconds (default 30 days; 0 keeps them forever).
Meanwhile the name cannot be registered in-band (``conflict``), and presence to it tells
former contacts the account is gone (``gone`` error, then ``unsubscribed`` for a probe or
``unsubscribe`` otherwise, as Prosody does), so stale subscriptions get cleaned up.

Tombstones live in a host-wide map store (user ``None``, key = username) so that purging
the user's data keeps them; `tercet user del` writes the same store when the server is not
running (tercet.core.accounts.TOMBSTONE_STORE).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from tercet.module import JID, ModuleApi, Option, StanzaError, StanzaEvent, UserDeleted
from tercet.modules._registration import RegistrationAttempt
from tercet.protocol.stanza import Element

META = {"summary": "Keep deleted usernames from being reused", "stage": "stable",
        "xeps": []}
STORE = "tombstones"
DEFAULT_EXPIRY = 30 * 86400
# Bound on the in-memory cache of lookups (hits and misses), least recently used dropped.
DEFAULT_CACHE_SIZE = 1024

OPTIONS: list[Option[Any]] = [
    Option("user_tombstone_expiry", int, DEFAULT_EXPIRY,
           "Seconds a deleted username stays reserved (0: forever).",
           min=0, max=100 * 365 * 86400),
    Option("tombstone_cache_size", int, DEFAULT_CACHE_SIZE,
           "Tombstone lookups kept in memory.", min=1, max=1_000_000),
]

_NONE = -1.0  # cached "no tombstone"


class Graveyard:
    """Tombstone lookups with an LRU cache in front of the store."""

    def __init__(self, module: ModuleApi, expiry: float, cache_size: int) -> None:
        self.module = module
        self.store = module.open_map(STORE)
        self.expiry = expiry
        self.cache_size = cache_size
        self._cache: OrderedDict[str, float] = OrderedDict()

    def _remember(self, username: str, when: float) -> None:
        self._cache[username] = when
        self._cache.move_to_end(username)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    async def lookup(self, username: str) -> float | None:
        """When ``username`` was deleted, or None if it has no live tombstone."""
        when = self._cache.get(username)
        if when is None:
            stored = await self.store.get(None, username)
            when = float(stored) if isinstance(stored, (int, float)) else _NONE
        if when == _NONE:
            self._remember(username, _NONE)
            return None
        if self.expiry and when + self.expiry < self.module.now():
            await self.store.set(None, username, None)
            self._remember(username, _NONE)
            return None
        self._remember(username, when)
        return when

    async def bury(self, username: str, when: float) -> None:
        await self.store.set(None, username, when)
        self._remember(username, when)


def load(module: ModuleApi) -> None:
    graveyard = Graveyard(
        module,
        module.option("user_tombstone_expiry"),
        module.option("tombstone_cache_size"))

    async def on_deleted(event: UserDeleted) -> None:
        await graveyard.bury(event.username, event.when)
        module.log.info("tombstone for %s", event.username)

    async def on_registering(attempt: RegistrationAttempt) -> StanzaError | None:
        if await graveyard.lookup(attempt.username) is None:
            return None
        return StanzaError("conflict", "The requested username already exists.")

    async def on_presence(event: StanzaEvent) -> bool | None:
        to = event.to
        ptype = event.stanza.get("type")
        if to is None or to.node is None or ptype not in (None, "unavailable", "probe"):
            return None
        if await graveyard.lookup(to.node) is None:
            return None
        if await module.account_exists(to.node):
            return None  # re-created by an administrator: a live account again
        await answer_gone(event, to, "unsubscribed" if ptype == "probe" else "unsubscribe")
        return True

    async def answer_gone(event: StanzaEvent, to: JID, follow_up: str) -> None:
        stanza, origin = event.stanza, event.origin
        sender = stanza.get("from")
        if sender is None:
            return
        gone = stanza.error_reply(StanzaError("gone", "User deleted"))
        notice = Element("presence", attrs={"type": follow_up, "to": sender,
                                            "from": str(to.bare)})
        for reply in (gone, notice):
            # Straight back to a local client (as Prosody), routed otherwise.
            if origin.kind == "c2s":
                origin.send(reply)
            else:
                await module.send(reply)

    module.hook("user-deleted", on_deleted)
    module.hook("user-registering", on_registering)
    # Above the presence/roster handlers (0 and below), below blocking (100).
    module.hook("presence/bare", on_presence, 1)
    module.hook("presence/full", on_presence, 1)
