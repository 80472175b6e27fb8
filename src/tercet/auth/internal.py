"""The internal account provider: salted SCRAM keys in a keyval store, never passwords.

One record per user in the ``accounts`` keyval store::

    {"scram": {"SHA-1":   {"salt": b64, "iterations": n, "stored_key": b64, "server_key": b64},
               "SHA-256": {...}, "SHA-512": {...}},
     "created": <epoch seconds>, "disabled": false,
     # optional, absent while unset (1.3):
     "disabled_reason": "text shown at login", "role": "tercet:member",
     "last_login": {"time": <epoch seconds>, "address": "192.0.2.1"},
     "deleted": <epoch seconds: deleted with a grace period, purged later>}

Keeping StoredKey/ServerKey (RFC 5802 §3) rather than a password hash lets SCRAM run
without ever seeing the password; PLAIN is checked by deriving the same keys.
Usernames arrive nodeprep'd: validating them is the caller's job.

Given a ``logins`` map store (the server's ``account_logins``), the last login of each
account goes there instead, host-wide, one key per account, ``{"time": ..., "address":
...}``, written in batches: a login queues its entry and at most every
``LOGIN_FLUSH_DELAY`` seconds one write stores all queued ones. Rewriting the whole
record per login cost a storage write each, about a quarter of a login's server CPU
during a burst (bench/README.md, "Last-login times in batches"). A record's own
``last_login`` (written by earlier versions) still counts where it is the later one.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tercet.auth.errors import UserExists, UserNotFound
from tercet.protocol.sasl.scram import (
    AccountCredentials,
    ScramCredentials,
    check_password,
    decoy_credentials,
    derive_scram,
)
from tercet.storage.base import KeyValStore, MapStore

__all__ = ["DEFAULT_ITERATIONS", "DELETED_REASON", "LOGINS_STORE", "SCRAM_HASHES",
           "AccountInfo", "InternalHashedProvider"]

log = logging.getLogger("tercet.auth")

# Every new or changed password is stored for all three, so any SCRAM variant the
# client picks works (XEP-0474 downgrade protection needs the full list advertised).
SCRAM_HASHES = ("SHA-1", "SHA-256", "SHA-512")

# RFC 5802 §5.1 and RFC 7677 §4: servers SHOULD use an iteration count of at least 4096.
DEFAULT_ITERATIONS = 4096

#: The map store of last logins (host-wide, one key per account).
LOGINS_STORE = "account_logins"
#: Seconds a last-login time may wait before it is written, with the others queued by
#: then: what a crash can lose of them, and how stale ``tercet user list`` may read them.
LOGIN_FLUSH_DELAY = 0.25
#: Queued last-login times that are written at once, without waiting for the delay (the
#: queue holds one entry per account at most, the latest).
LOGIN_BATCH = 500


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object) -> bytes:
    if not isinstance(text, str):
        raise TypeError("expected base64 text")
    return base64.b64decode(text, validate=True)


def _encode_scram(creds: ScramCredentials) -> dict[str, Any]:
    return {
        "salt": _b64(creds.salt),
        "iterations": creds.iterations,
        "stored_key": _b64(creds.stored_key),
        "server_key": _b64(creds.server_key),
    }


def _decode_record(username: str, record: Any) -> AccountCredentials:
    """Turn a stored record into credentials; ``ValueError`` names the broken account."""
    try:
        scram: dict[str, ScramCredentials] = {}
        for hash_name, entry in record["scram"].items():
            iterations = entry["iterations"]
            if not isinstance(iterations, int) or iterations < 1:
                raise ValueError(f"bad iteration count {iterations!r}")
            scram[hash_name] = ScramCredentials(
                hash_name=hash_name,
                salt=_unb64(entry["salt"]),
                iterations=iterations,
                stored_key=_unb64(entry["stored_key"]),
                server_key=_unb64(entry["server_key"]),
            )
        info = _info(username, record)
        return AccountCredentials(scram=scram, disabled=info.locked,
                                  disabled_reason=info.lock_reason)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ValueError(f"account record of {username!r} is corrupt: {exc!r}") from exc


#: The <text/> of account-disabled for an account deleted with a grace period.
DELETED_REASON = "This account has been deleted."


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """What an account record says besides its keys (1.3)."""

    username: str
    created: float | None = None
    disabled: bool = False
    disabled_reason: str | None = None
    role: str | None = None  # None: the default role
    last_login: float | None = None
    last_address: str | None = None
    deleted: float | None = None  # deleted with a grace period at this time

    @property
    def locked(self) -> bool:
        """No login: disabled, or deleted and waiting to be purged."""
        return self.disabled or self.deleted is not None

    @property
    def lock_reason(self) -> str | None:
        return DELETED_REASON if self.deleted is not None else self.disabled_reason

    def to_dict(self) -> dict[str, Any]:
        return {"username": self.username, "created": self.created,
                "disabled": self.disabled, "disabled_reason": self.disabled_reason,
                "role": self.role, "last_login": self.last_login,
                "last_address": self.last_address, "deleted": self.deleted}


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and \
        not isinstance(value, bool) else None


def _info(username: str, record: dict[str, Any],
          login: dict[str, Any] | None = None) -> AccountInfo:
    """The record's information; ``login`` (from the logins store) is the last login when
    it is later than the one the record itself keeps."""
    last = record.get("last_login")
    last = last if isinstance(last, dict) else {}
    if login is not None and (_number(login.get("time")) or 0) >= (_number(last.get("time")) or 0):
        last = login
    reason = record.get("disabled_reason")
    role = record.get("role")
    address = last.get("address")
    return AccountInfo(username, _number(record.get("created")),
                       bool(record.get("disabled", False)),
                       reason if isinstance(reason, str) else None,
                       role if isinstance(role, str) else None,
                       _number(last.get("time")),
                       address if isinstance(address, str) else None,
                       _number(record.get("deleted")))


class InternalHashedProvider:
    """Accounts whose salted SCRAM keys live in a :class:`KeyValStore`.

    Key derivation (PBKDF2, three hashes) runs in a worker thread so that a login or
    password change never stalls the event loop.
    """

    name = "internal_hashed"
    scram_hashes = SCRAM_HASHES

    def __init__(
        self,
        store: KeyValStore,
        iterations: int = DEFAULT_ITERATIONS,
        *,
        clock: Callable[[], float] = time.time,
        logins: MapStore | None = None,
    ) -> None:
        if iterations < 1:
            raise ValueError(
                f"iterations must be >= 1 (RFC 5802 asks for >= 4096), not {iterations}")
        self._store = store
        self.iterations = iterations
        self._clock = clock
        # Serialises read-modify-write of records within this process.
        # TODO: a cluster needs a compare-and-set in the store for create_user.
        self._lock = asyncio.Lock()
        # Last logins (see the module docstring): the store, the entries not written yet,
        # and the write under way or waiting for its delay.
        self._logins = logins
        self._pending_logins: dict[str, dict[str, Any]] = {}
        self._login_flush: asyncio.Task[None] | None = None
        self._logins_full = asyncio.Event()
        # Orders the batch writes and the deletions of an account's entry.
        self._logins_lock = asyncio.Lock()

    async def _derive_all(self, password: str) -> dict[str, Any]:
        def derive() -> dict[str, Any]:
            return {
                h: _encode_scram(derive_scram(password, h, iterations=self.iterations))
                for h in SCRAM_HASHES
            }

        return await asyncio.to_thread(derive)

    async def _record(self, username: str) -> dict[str, Any] | None:
        record = await self._store.get(username)
        if record is not None and not isinstance(record, dict):
            raise ValueError(f"account record of {username!r} is corrupt: not an object")
        return record

    async def _existing(self, username: str) -> dict[str, Any]:
        record = await self._record(username)
        if record is None:
            raise UserNotFound(username)
        return record

    async def create_user(self, username: str, password: str) -> None:
        """Create an account; raise :class:`UserExists` if there is one already.

        A password SASLprep rejects (RFC 4013) raises ``ValueError``.
        """
        scram = await self._derive_all(password)
        async with self._lock:
            if await self._record(username) is not None:
                raise UserExists(username)
            record = {"scram": scram, "created": self._clock(), "disabled": False}
            await self._store.set(username, record)

    async def set_password(self, username: str, password: str) -> None:
        """Replace the account's keys (new salts); raise :class:`UserNotFound` if none."""
        scram = await self._derive_all(password)
        async with self._lock:
            record = await self._existing(username)
            record["scram"] = scram
            await self._store.set(username, record)

    async def delete_user(self, username: str) -> None:
        """Delete the account record only (the StorageManager deletes the user's data)."""
        async with self._lock:
            await self._existing(username)
            await self._store.set(username, None)
        async with self._logins_lock:  # after a batch holding it, not before
            self._pending_logins.pop(username, None)
            if self._logins is not None:
                await self._logins.set(None, username, None)

    async def user_exists(self, username: str) -> bool:
        return await self._record(username) is not None

    async def get_credentials(self, username: str) -> AccountCredentials | None:
        """The stored SCRAM keys for SASL, or ``None`` if there is no such account."""
        record = await self._record(username)
        return None if record is None else _decode_record(username, record)

    async def test_password(self, username: str, password: str) -> bool:
        """True if the account exists, is enabled, and ``password`` is its password.

        An unknown user costs the same key derivation as a known one, so response
        times do not tell which usernames exist.
        """
        creds = await self.get_credentials(username)
        if creds is None:
            decoy = decoy_credentials("SHA-256", username, self.iterations)
            decoy_account = AccountCredentials({"SHA-256": decoy})
            await asyncio.to_thread(check_password, decoy_account, password)
            return False
        ok = await asyncio.to_thread(check_password, creds, password)
        return ok and not creds.disabled

    async def users(self) -> list[str]:
        """Every account name, sorted."""
        return sorted(await self._store.users())

    async def set_disabled(self, username: str, disabled: bool,
                           reason: str | None = None) -> None:
        """Disable (or re-enable) logins, with an optional ``reason`` shown to the user
        when a login is refused (1.3); raise :class:`UserNotFound` if no account."""
        def change(record: dict[str, Any]) -> None:
            record["disabled"] = bool(disabled)
            if disabled and reason:
                record["disabled_reason"] = reason
            else:
                record.pop("disabled_reason", None)
        await self._update(username, change)

    async def is_disabled(self, username: str) -> bool:
        """Whether logins are disabled; raise :class:`UserNotFound` if no account."""
        record = await self._existing(username)
        return bool(record.get("disabled", False))

    # -- account lifecycle (1.3) -------------------------------------------------------------
    async def _update(self, username: str,
                      change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        async with self._lock:
            record = await self._existing(username)
            change(record)
            await self._store.set(username, record)
            return record

    async def account_info(self, username: str) -> AccountInfo | None:
        """Everything but the keys, or None if there is no such account."""
        record = await self._record(username)
        return None if record is None else _info(username, record,
                                                 await self._last_login(username))

    async def set_role(self, username: str, role: str | None) -> None:
        """Store the account's role (None: back to the default); the server applies it
        from the account's next login. Raise :class:`UserNotFound` if no account."""
        def change(record: dict[str, Any]) -> None:
            if role is None:
                record.pop("role", None)
            else:
                record["role"] = role
        await self._update(username, change)

    async def record_login(self, username: str, address: str | None) -> AccountInfo:
        """Note a successful login now from ``address``; returns the account's info."""
        login = {"time": self._clock(), "address": address}
        if self._logins is None:
            def change(record: dict[str, Any]) -> None:
                record["last_login"] = login
            return _info(username, await self._update(username, change))
        info = _info(username, await self._existing(username), login)
        self._pending_logins[username] = login
        if len(self._pending_logins) >= LOGIN_BATCH:
            self._logins_full.set()
        if self._login_flush is None:
            self._login_flush = asyncio.ensure_future(self._flush_logins_later())
        return info

    async def _last_login(self, username: str) -> dict[str, Any] | None:
        login = self._pending_logins.get(username)
        if login is None and self._logins is not None:
            stored = await self._logins.get(None, username)
            login = stored if isinstance(stored, dict) else None
        return login

    async def _flush_logins_later(self) -> None:
        """Write the queued last logins after LOGIN_FLUSH_DELAY, or as soon as LOGIN_BATCH
        are queued; the logins queued meanwhile wait for the next write."""
        try:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._logins_full.wait(), LOGIN_FLUSH_DELAY)
            self._logins_full.clear()
            await self._write_logins()
        except Exception:
            # Informational data: a failed write is logged, the logins go on.
            log.exception("could not store the last logins of some accounts")
        finally:
            self._login_flush = None
        if self._pending_logins:
            self._login_flush = asyncio.ensure_future(self._flush_logins_later())

    async def _write_logins(self) -> None:
        async with self._logins_lock:
            batch, self._pending_logins = self._pending_logins, {}
            if batch and self._logins is not None:
                await self._logins.set_keys(None, dict(batch))

    async def flush_logins(self) -> None:
        """Write the queued last logins now (the module's unload, before storage closes)."""
        for _ in range(3):  # no new logins come while the server stops
            task = self._login_flush
            if task is None:
                break
            self._logins_full.set()
            await asyncio.wait([task])  # its own errors are logged there
        await self._write_logins()

    async def mark_deleted(self, username: str, when: float) -> None:
        """Lock the account as deleted at ``when``; its data stays until it is purged."""
        def change(record: dict[str, Any]) -> None:
            record["deleted"] = when
        await self._update(username, change)

    async def restore(self, username: str) -> bool:
        """Undo ``mark_deleted``; False if the account was not waiting to be purged."""
        pending = False

        def change(record: dict[str, Any]) -> None:
            nonlocal pending
            pending = record.pop("deleted", None) is not None
        await self._update(username, change)
        return pending
