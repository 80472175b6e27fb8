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
   writes its tombstone there, caches (blocklist, ...) forget the user. It then fires on
   the server-wide bus, for components that keep users' data (uploaded files).

Offline (no server running) only steps 1, 4 and the tombstone are possible: the tombstone
is written here into the store mod_tombstones reads (see :data:`TOMBSTONE_STORE`) when the
configuration enables that module for the host.

With ``user_deletion_grace_period`` set (1.3), a deletion only locks the account: the
record is marked deleted (logins fail ``account-disabled``), ``before_close`` runs and the
sessions are closed, and the account is listed in :data:`DELETIONS_STORE`. Until the
period ends ``restore_account`` brings it back untouched; then ``purge_expired`` (the
auth module runs it periodically, in bounded batches) performs steps 1 and 3-5.

Logins also pass through here (:func:`logged_in`): the account's role is read for the
session and the time and address of the login recorded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tercet.auth.errors import UserNotFound
from tercet.auth.internal import InternalHashedProvider
from tercet.core import permissions as roles
from tercet.core.durations import parse_duration
from tercet.protocol.errors import StreamError

if TYPE_CHECKING:
    from tercet.core.config import Config
    from tercet.core.host import Host
    from tercet.core.server import Server
    from tercet.core.session import C2SSession
    from tercet.storage.manager import StorageManager

log = logging.getLogger("tercet.accounts")

#: mod_tombstones' store: a map store, host-wide (user ``None``), key = username,
#: value = epoch seconds of the deletion. Host-wide on purpose: purging the user's data
#: (every store keyed by that user) must not remove the tombstone.
TOMBSTONE_STORE = "tombstones"
TOMBSTONE_MODULE = "tombstones"
#: Accounts deleted with a grace period: a map store, host-wide (user ``None``), key =
#: username, value = epoch seconds of the deletion; the index the purge job reads.
DELETIONS_STORE = "account_deletions"
#: Accounts purged per run of the purge job: a long backlog (a mass deletion) is worked
#: off in steps so that one run never holds the event loop and the storage for long.
PURGE_BATCH = 50


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


def grace_period(config: Config, host: str) -> float:
    """``user_deletion_grace_period`` of ``host`` in seconds (0: delete at once)."""
    value = config.get("user_deletion_grace_period", host=host) or 0
    try:
        return parse_duration(value)
    except ValueError:
        log.error("user_deletion_grace_period of %s is not a duration (%r): deleting at "
                  "once", host, value)
        return 0.0


async def mark_deleted(storage: StorageManager, provider: InternalHashedProvider,
                       host: str, username: str, when: float) -> bool:
    """Lock ``username`` as deleted at ``when`` (record and index); False if the account
    was already waiting to be purged (its first deletion time stands)."""
    info = await provider.account_info(username)
    if info is None:
        raise UserNotFound(username)
    if info.deleted is not None:
        return False
    await provider.mark_deleted(username, when)
    await storage.open(host, DELETIONS_STORE, "map").set(None, username, when)
    return True


async def restore_account(storage: StorageManager, provider: InternalHashedProvider,
                          host: str, username: str) -> bool:
    """Bring back an account deleted with a grace period; False if it was not deleted
    (raises UserNotFound when it does not exist, or was purged already)."""
    restored = await provider.restore(username)
    await storage.open(host, DELETIONS_STORE, "map").set(None, username, None)
    if restored:
        log.info("restored %s@%s", username, host)
    return restored


async def delete_account(server: Server, host_name: str, username: str, *,
                         before_close: Callable[[], None] | None = None,
                         immediate: bool = False) -> bool:
    """Delete a live account (see the module docstring); False if there is no such account.

    With a grace period (and not ``immediate``) the account is locked, its sessions
    closed and its data kept until :func:`purge_expired` finds it expired.
    Storage errors propagate (after the record is gone the data may be partly deleted;
    running it again finishes the job, since every step tolerates missing data).
    """
    host = server.hosts.get(host_name)
    if host is None or host.auth is None:
        return False
    auth = host.auth
    if not await auth.user_exists(username):
        return False
    if not immediate and grace_period(server.config, host_name) > 0 and \
            isinstance(auth, InternalHashedProvider):
        await mark_deleted(server.storage, auth, host_name, username, server.clock())
        if before_close is not None:
            before_close()
        closed = close_sessions(server, host, username, "not-authorized", "account deleted")
        host.account_roles.pop(username, None)
        log.info("deleted %s@%s with a grace period (%d session(s) closed)", username,
                 host_name, closed)
        return True
    await auth.delete_user(username)
    host.account_roles.pop(username, None)
    await server.storage.open(host_name, DELETIONS_STORE, "map").set(None, username, None)
    if before_close is not None:
        before_close()
    closed = close_sessions(server, host, username, "not-authorized", "account deleted")
    if closed:
        # Let the unbind handlers' presence broadcasts leave before the roster is purged.
        await asyncio.sleep(0)
    await server.storage.delete_user(host_name, username)
    deleted = UserDeleted(username, host_name, server.clock())
    await host.events.fire_async("user-deleted", deleted)
    # Then server-wide, for services on other hosts that keep the user's data
    # (http_file_share's uploads live on the component), as Prosody fires it globally.
    await server.events.fire_async("user-deleted", deleted)
    log.info("deleted %s@%s (%d session(s) closed)", username, host_name, closed)
    return True


async def purge_expired(server: Server, host_name: str, limit: int = PURGE_BATCH) -> int:
    """Purge up to ``limit`` accounts whose grace period has ended, oldest first; returns
    how many were purged. Restored accounts and stale index entries are dropped."""
    host = server.hosts.get(host_name)
    auth = None if host is None else host.auth
    if not isinstance(auth, InternalHashedProvider):
        return 0
    index = server.storage.open(host_name, DELETIONS_STORE, "map")
    pending = await index.get_all(None)
    cutoff = server.clock() - grace_period(server.config, host_name)
    due = sorted((float(when), name) for name, when in pending.items()
                 if isinstance(when, (int, float)) and when <= cutoff)
    purged = 0
    for _when, username in due[:limit]:
        info = await auth.account_info(username)
        if info is not None and info.deleted is not None:
            await delete_account(server, host_name, username, immediate=True)
            purged += 1
        await index.set(None, username, None)
    if purged:
        log.info("purged %d account(s) of %s after their grace period", purged, host_name)
    return purged


async def logged_in(server: Server, session: C2SSession) -> str:
    """``session`` authenticated: read its account's role (kept on the session, and per
    host for checks by JID) and record the time and address of the login."""
    host, username = session.host, session.username
    if host is None or username is None:
        return roles.GUEST
    role = roles.DEFAULT_ROLE
    auth = host.auth
    if server.config.get("authentication", host=host.name) == "anonymous":
        role = roles.GUEST
    elif isinstance(auth, InternalHashedProvider):
        try:
            info = await auth.record_login(username, session.peer)
        except UserNotFound:
            info = None  # deleted between the password check and here
        if info is not None and info.role:
            role = info.role
        host.account_roles[username] = role
    session.role = role
    return role
