"""The one way an account is deleted: by the user (XEP-0077 cancel), by `tercet user del`
(offline, or through the admin command ``user.delete`` when the server runs), or by a module.

Order of a live deletion, and why:

1. the account record goes first, so no new login can succeed from here on;
2. ``before_close`` runs (mod_register sends its IQ result here: XEP-0077 §3.2 says the
   result follows the removal and precedes the stream error);
3. every session of the account is closed with ``not-authorized`` (XEP-0077 §3.2), while
   the roster still exists, so contacts get their unavailable presence;
4. every store of the host is purged for the user (``StorageManager.delete_user``);
5. ``user-deleted`` fires on the host's bus with a :class:`UserDeleted`; mod_tombstones
   writes its tombstone there, caches (blocklist, ...) forget the user.

Offline (no server running) only steps 1, 4 and the tombstone are possible: the tombstone
is written here into the store mod_tombstones reads (see :data:`TOMBSTONE_STORE`) when the
configuration enables that module for the host.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tercet.protocol.errors import StreamError

if TYPE_CHECKING:
    from tercet.core.host import Host
    from tercet.core.server import Server
    from tercet.storage.manager import StorageManager

log = logging.getLogger("tercet.accounts")

#: mod_tombstones' store: a map store, host-wide (user ``None``), key = username,
#: value = epoch seconds of the deletion. Host-wide on purpose: purging the user's data
#: (every store keyed by that user) must not remove the tombstone.
TOMBSTONE_STORE = "tombstones"
TOMBSTONE_MODULE = "tombstones"


@dataclass(frozen=True, slots=True)
class UserDeleted:
    """Payload of the ``user-deleted`` event (host bus)."""

    username: str
    host: str
    when: float


async def write_tombstone(storage: StorageManager, host: str, username: str,
                          when: float) -> None:
    """Remember that ``username`` existed (mod_tombstones' format)."""
    await storage.open(host, TOMBSTONE_STORE, "map").set(None, username, when)


async def delete_offline(storage: StorageManager, host: str, username: str, *,
                         tombstone: bool, when: float) -> None:
    """Delete the account and every piece of its data with no server running.

    The account record lives in the host's ``accounts`` store, so purging the user's
    data removes it too.
    """
    await storage.delete_user(host, username)
    if tombstone:
        await write_tombstone(storage, host, username, when)
    log.info("deleted %s@%s (offline%s)", username, host,
             ", tombstone written" if tombstone else "")


def close_sessions(server: Server, host: Host, username: str, condition: str,
                   text: str) -> int:
    """Close every bound session of the account with a stream error; returns the count."""
    sessions = list(host.user_sessions(username).values())
    for session in sessions:
        session.close(StreamError(condition, text, remote=False))
        server.session_closed(session)
    return len(sessions)


async def delete_account(server: Server, host_name: str, username: str, *,
                         before_close: Callable[[], None] | None = None) -> bool:
    """Delete a live account (see the module docstring); False if there is no such account.

    Storage errors propagate (after the record is gone the data may be partly deleted;
    running it again finishes the job, since every step tolerates missing data).
    """
    host = server.hosts.get(host_name)
    if host is None or host.auth is None:
        return False
    auth = host.auth
    if not await auth.user_exists(username):
        return False
    await auth.delete_user(username)
    if before_close is not None:
        before_close()
    closed = close_sessions(server, host, username, "not-authorized", "account deleted")
    if closed:
        # Let the unbind handlers' presence broadcasts leave before the roster is purged.
        await asyncio.sleep(0)
    await server.storage.delete_user(host_name, username)
    await host.events.fire_async("user-deleted",
                                 UserDeleted(username, host_name, server.clock()))
    log.info("deleted %s@%s (%d session(s) closed)", username, host_name, closed)
    return True
