"""The internal SCRAM-hashed account provider, on the memory and SQLite drivers."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from helpers import async_test

from tercet.auth import (
    SCRAM_HASHES,
    AuthProvider,
    InternalHashedProvider,
    UserExists,
    UserNotFound,
)
from tercet.auth.internal import LOGIN_BATCH, LOGIN_FLUSH_DELAY, LOGINS_STORE
from tercet.protocol.sasl.scram import check_password
from tercet.storage import KeyValStore, StorageConfig, StorageManager

HOST = "example.org"
PASSWORD = "Tr0ub4dor&3-correct-horse-ŵ"
NEW_PASSWORD = "battery-staple-Ünïcode-9f8e7d"


@pytest.fixture(params=["memory", "sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@contextlib.asynccontextmanager
async def storage(backend: str, path: Path) -> AsyncIterator[StorageManager]:
    m = StorageManager(StorageConfig(default=backend), path)
    await m.ready()
    try:
        yield m
    finally:
        await m.close()


@contextlib.asynccontextmanager
async def accounts(
    backend: str, path: Path, **kwargs: Any
) -> AsyncIterator[tuple[InternalHashedProvider, KeyValStore]]:
    async with storage(backend, path) as m:
        store = m.open(HOST, "accounts", "keyval")
        yield InternalHashedProvider(store, **kwargs), store


@async_test
async def test_create_and_test_password(backend: str, tmp_path: Path) -> None:
    async with accounts(backend, tmp_path) as (auth, _):
        assert isinstance(auth, AuthProvider)
        assert not await auth.user_exists("alice")
        await auth.create_user("alice", PASSWORD)
        assert await auth.user_exists("alice")
        assert await auth.test_password("alice", PASSWORD)
        assert not await auth.test_password("alice", NEW_PASSWORD)
        assert not await auth.test_password("alice", "")
        assert not await auth.test_password("nobody", PASSWORD)
        with pytest.raises(UserExists):
            await auth.create_user("alice", NEW_PASSWORD)
        assert await auth.test_password("alice", PASSWORD)  # unchanged by the failed create


@async_test
async def test_credentials_for_every_hash(backend: str, tmp_path: Path) -> None:
    async with accounts(backend, tmp_path, iterations=5000) as (auth, _):
        assert await auth.get_credentials("alice") is None
        await auth.create_user("alice", PASSWORD)
        creds = await auth.get_credentials("alice")
        assert creds is not None
        assert not creds.disabled
        assert set(creds.scram) == set(SCRAM_HASHES) == {"SHA-1", "SHA-256", "SHA-512"}
        for name, sc in creds.scram.items():
            assert sc.hash_name == name
            assert sc.iterations == 5000
            assert len(sc.salt) >= 16
        assert len({sc.salt for sc in creds.scram.values()}) == 3  # one salt per hash
        assert check_password(creds, PASSWORD)
        assert not check_password(creds, NEW_PASSWORD)


@async_test
async def test_set_password(backend: str, tmp_path: Path) -> None:
    async with accounts(backend, tmp_path) as (auth, store):
        with pytest.raises(UserNotFound):
            await auth.set_password("alice", PASSWORD)
        assert not await auth.user_exists("alice")
        await auth.create_user("alice", PASSWORD)
        before: Any = await store.get("alice")
        await auth.set_password("alice", NEW_PASSWORD)
        after: Any = await store.get("alice")
        assert not await auth.test_password("alice", PASSWORD)
        assert await auth.test_password("alice", NEW_PASSWORD)
        assert after["created"] == before["created"]
        for name in SCRAM_HASHES:
            assert after["scram"][name]["salt"] != before["scram"][name]["salt"]


@async_test
async def test_disabled_accounts(backend: str, tmp_path: Path) -> None:
    async with accounts(backend, tmp_path) as (auth, _):
        await auth.create_user("alice", PASSWORD)
        assert not await auth.is_disabled("alice")
        await auth.set_disabled("alice", True)
        assert await auth.is_disabled("alice")
        assert not await auth.test_password("alice", PASSWORD)
        creds = await auth.get_credentials("alice")
        assert creds is not None and creds.disabled
        await auth.set_disabled("alice", False)
        assert await auth.test_password("alice", PASSWORD)
        await auth.set_password("alice", NEW_PASSWORD)
        await auth.set_disabled("alice", True)
        await auth.set_password("alice", PASSWORD)  # a new password does not re-enable
        assert await auth.is_disabled("alice")
        for call in (auth.set_disabled("bob", True), auth.is_disabled("bob")):
            with pytest.raises(UserNotFound):
                await call


@async_test
async def test_users_and_delete(backend: str, tmp_path: Path) -> None:
    async with accounts(backend, tmp_path) as (auth, _):
        for name in ("carol", "alice", "bob"):
            await auth.create_user(name, PASSWORD)
        assert await auth.users() == ["alice", "bob", "carol"]
        await auth.delete_user("bob")
        assert await auth.users() == ["alice", "carol"]
        assert not await auth.user_exists("bob")
        assert not await auth.test_password("bob", PASSWORD)
        with pytest.raises(UserNotFound):
            await auth.delete_user("bob")
        await auth.create_user("bob", NEW_PASSWORD)  # the name is free again
        assert await auth.test_password("bob", NEW_PASSWORD)


@async_test
async def test_record_format(backend: str, tmp_path: Path) -> None:
    async with accounts(backend, tmp_path, clock=lambda: 1700000000.0) as (auth, store):
        await auth.create_user("alice", PASSWORD)
        record: Any = await store.get("alice")
        assert set(record) == {"scram", "created", "disabled"}
        assert record["created"] == 1700000000.0
        assert record["disabled"] is False
        assert set(record["scram"]) == set(SCRAM_HASHES)
        for entry in record["scram"].values():
            assert set(entry) == {"salt", "iterations", "stored_key", "server_key"}
            assert entry["iterations"] == 4096
            for field in ("salt", "stored_key", "server_key"):
                base64.b64decode(entry[field], validate=True)
        assert PASSWORD not in repr(record)


@async_test
async def test_corrupt_record_is_reported(backend: str, tmp_path: Path) -> None:
    async with accounts(backend, tmp_path) as (auth, store):
        await store.set("alice", {"scram": {"SHA-1": {"salt": "!!"}}})
        with pytest.raises(ValueError, match="alice"):
            await auth.get_credentials("alice")
        await store.set("bob", ["not", "a", "record"])
        with pytest.raises(ValueError, match="bob"):
            await auth.test_password("bob", PASSWORD)


@async_test
async def test_concurrent_creates_of_one_name(backend: str, tmp_path: Path) -> None:
    async with accounts(backend, tmp_path) as (auth, _):
        results = await asyncio.gather(
            *(auth.create_user("alice", f"pw{i}") for i in range(5)), return_exceptions=True
        )
        assert sum(r is None for r in results) == 1
        assert all(isinstance(r, UserExists) for r in results if r is not None)
        winner = next(i for i, r in enumerate(results) if r is None)
        assert await auth.test_password("alice", f"pw{winner}")


def test_iterations_must_be_positive() -> None:
    with pytest.raises(ValueError):
        InternalHashedProvider(object(), iterations=0)  # type: ignore[arg-type]


def _files_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(path.iterdir()) if p.is_file())


@async_test
async def test_no_plaintext_password_in_sqlite_files(tmp_path: Path) -> None:
    needles = [p.encode(enc) for p in (PASSWORD, NEW_PASSWORD) for enc in ("utf-8", "utf-16-le")]
    needles += [base64.b64encode(p.encode()) for p in (PASSWORD, NEW_PASSWORD)]
    async with accounts("sqlite", tmp_path) as (auth, _):
        await auth.create_user("alice", PASSWORD)
        await auth.set_password("alice", NEW_PASSWORD)
        await auth.create_user("bob", PASSWORD)
        await auth.test_password("alice", NEW_PASSWORD)
        while_open = _files_bytes(tmp_path)  # includes the WAL before the checkpoint
    after_close = _files_bytes(tmp_path)
    assert b"alice" in while_open + after_close  # we did read the database
    for needle in needles:
        assert needle not in while_open
        assert needle not in after_close


@async_test
async def test_last_logins_are_written_in_batches(backend: str, tmp_path: Path) -> None:
    # A login queues its last-login time; one write stores every queued one, after
    # LOGIN_FLUSH_DELAY or at LOGIN_BATCH, and a flush (unload) writes what is left.
    async with storage(backend, tmp_path) as m:
        logins = m.open(HOST, LOGINS_STORE, "map")
        auth = InternalHashedProvider(m.open(HOST, "accounts", "keyval"), iterations=1,
                                      clock=lambda: 1000.0, logins=logins)
        for name in ("alice", "bob", "carol"):
            await auth.create_user(name, PASSWORD)
        info = await auth.record_login("alice", "192.0.2.1")
        await auth.record_login("bob", "192.0.2.2")
        assert (info.last_login, info.last_address) == (1000.0, "192.0.2.1")
        # Not written yet, but what the provider reports already.
        assert await logins.get_all(None) == {}
        assert (await auth.account_info("bob")).last_address == "192.0.2.2"  # type: ignore[union-attr]
        await asyncio.sleep(LOGIN_FLUSH_DELAY + 0.2)
        assert await logins.get_all(None) == {
            "alice": {"time": 1000.0, "address": "192.0.2.1"},
            "bob": {"time": 1000.0, "address": "192.0.2.2"}}
        # A full batch is written without waiting for the delay.
        for i in range(LOGIN_BATCH):
            auth._pending_logins[f"u{i}"] = {"time": 1.0, "address": None}
        await auth.record_login("carol", None)
        await asyncio.sleep(0.1)
        assert len(await logins.get_all(None)) == LOGIN_BATCH + 3
        # The unload's flush; then a new provider on the same stores reads them back, and
        # deleting the account deletes its last login.
        await auth.record_login("alice", "192.0.2.9")
        await auth.flush_logins()
        again = InternalHashedProvider(m.open(HOST, "accounts", "keyval"), logins=logins)
        info = await again.account_info("alice")
        assert info is not None and info.last_address == "192.0.2.9"
        await again.delete_user("alice")
        assert await logins.get(None, "alice") is None


@async_test
async def test_a_record_last_login_from_an_earlier_version_still_counts(
        backend: str, tmp_path: Path) -> None:
    async with storage(backend, tmp_path) as m:
        store = m.open(HOST, "accounts", "keyval")
        old = InternalHashedProvider(store, iterations=1)
        await old.create_user("alice", PASSWORD)
        await old.record_login("alice", "192.0.2.5")  # into the record, as before batches
        later = (await store.get("alice"))["last_login"]["time"] + 60
        auth = InternalHashedProvider(store, clock=lambda: later,
                                      logins=m.open(HOST, LOGINS_STORE, "map"))
        info = await auth.account_info("alice")
        assert info is not None and info.last_address == "192.0.2.5"
        await auth.record_login("alice", "192.0.2.6")
        await auth.flush_logins()
        info = await auth.account_info("alice")  # the later one wins
        assert info is not None and (info.last_login, info.last_address) == (later,
                                                                              "192.0.2.6")
