"""SQLite's durability setting, from sqlite_synchronous through to the connection."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tercet.app import storage_config
from tercet.core.config import Config
from tercet.storage.manager import StorageManager
from tercet.storage.sqlite import SqliteDriver, create_sqlite_driver


@pytest.mark.parametrize(("setting", "pragma"), [("normal", 1), ("full", 2)])
def test_the_connection_uses_the_configured_setting(tmp_path: Path, setting: str,
                                                    pragma: int) -> None:
    config = Config.from_text(f'sqlite_synchronous = "{setting}"\n'
                              '[virtualhosts."localhost"]\n', tmp_path / "t.toml")

    async def main() -> int:
        storage = StorageManager(storage_config(config), tmp_path)
        try:
            await storage.ready()
            driver = storage._drivers["sqlite"]
            assert isinstance(driver, SqliteDriver)
            return int(await driver.call(
                lambda conn: conn.execute("PRAGMA synchronous").fetchone()[0], write=False))
        finally:
            await storage.close()
    assert asyncio.run(main()) == pragma


def test_an_unknown_setting_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'synchronous'"):
        create_sqlite_driver(tmp_path, {"synchronous": "off"})
