"""Timed stores: the manager tells its observer of every store operation (storage/timed.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import async_test

from tercet.protocol.stanza import message
from tercet.storage import ArchiveQuery, StorageConfig, StorageError, StorageManager
from tercet.storage.base import ArchiveAppend

HOST = "example.org"


@pytest.fixture(params=["memory", "sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@async_test
async def test_every_kind_of_operation_is_observed(backend: str, tmp_path: Path) -> None:
    seen: list[tuple[str, str, str]] = []
    durations: list[float] = []

    def observe(driver: str, kind: str, operation: str, seconds: float) -> None:
        seen.append((driver, kind, operation))
        durations.append(seconds)

    m = StorageManager(StorageConfig(default=backend), tmp_path)
    await m.ready()
    try:
        # Opened before the observer is set: timing follows the manager, not the store.
        kv = m.open(HOST, "vcard", "keyval")
        m.observer = observe
        await kv.set("alice", {"a": 1})
        assert await kv.get("alice") == {"a": 1}
        mp = m.open(HOST, "private", "map")
        await mp.set_keys("alice", {"k": 1})
        assert await mp.get_all("alice") == {"k": 1}
        ar = m.open(HOST, "archive", "archive")
        item = message(to="bob@example.org", body="hi")
        await ar.append_many([ArchiveAppend("alice", item, 1.0, "bob@example.org", "k1")])
        assert await ar.count("alice", ArchiveQuery()) == 1
        m.observer = None
        await kv.get("alice")  # no longer observed
    finally:
        await m.close()
    assert seen == [(backend, "keyval", "set"), (backend, "keyval", "get"),
                    (backend, "map", "set_keys"), (backend, "map", "get_all"),
                    (backend, "archive", "append_many"), (backend, "archive", "count")]
    assert all(d >= 0 for d in durations)


@async_test
async def test_a_failed_operation_is_observed_too(tmp_path: Path) -> None:
    seen: list[str] = []
    m = StorageManager(StorageConfig(default="sqlite"), tmp_path)
    await m.ready()
    kv = m.open(HOST, "vcard", "keyval")
    m.observer = lambda driver, kind, operation, seconds: seen.append(operation)
    await m.close()
    with pytest.raises(StorageError):
        await kv.get("alice")
    assert seen == ["get"]
