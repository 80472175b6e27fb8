#!/usr/bin/env python3
"""Create the benchmark accounts user<first>..user<first+N-1> (password "pass") in Tercet's
storage, directly through the Python API (no server needs to run, and none should: the
SQLite file is written from here).

Accounts go through ``InternalHashedProvider.create_user`` on a ``StorageManager`` built from
the bench config, so records are exactly what the server writes (salted SCRAM keys for
SHA-1/256/512 at the config's ``scram_iterations``). Key derivation runs in worker threads
(hashlib releases the GIL), ``--concurrency`` accounts at a time.

    /work/venv/bin/python bench/provision.py --users 5000
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from tercet.auth.errors import UserExists
from tercet.auth.internal import InternalHashedProvider
from tercet.core.config import Config
from tercet.storage.manager import StorageConfig, StorageManager

HERE = Path(__file__).resolve().parent
DEFAULT_CONFIG = HERE / "tercet-bench.toml"


def open_storage(config: Config) -> StorageManager:
    """The storage manager the server would use for this config."""
    return StorageManager(StorageConfig.from_option(config.get("storage")), config.data_path)


async def create_accounts(config: Config, host: str, names: list[str], password: str,
                          concurrency: int) -> tuple[int, int]:
    """Create the missing accounts among ``names``; returns (created, existing)."""
    storage = open_storage(config)
    await storage.ready()
    try:
        auth = InternalHashedProvider(storage.open(host, "accounts", "keyval"),
                                      iterations=int(config.get("scram_iterations", host=host)))
        have = set(await auth.users())
        todo = [n for n in names if n not in have]
        # Bounded fan-out: at most ``concurrency`` derivations queued at once.
        sem = asyncio.Semaphore(concurrency)
        created = 0

        async def one(name: str) -> None:
            nonlocal created
            async with sem:
                try:
                    await auth.create_user(name, password)
                    created += 1
                except UserExists:
                    pass

        await asyncio.gather(*(one(n) for n in todo))
        return created, len(names) - len(todo)
    finally:
        await storage.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(DEFAULT_CONFIG))
    ap.add_argument("--host", default="localhost")
    ap.add_argument("--users", type=int, default=5000)
    ap.add_argument("--first", type=int, default=1)
    ap.add_argument("--prefix", default="user")
    ap.add_argument("--password", default="pass")
    ap.add_argument("--concurrency", type=int, default=64)
    args = ap.parse_args(argv)
    config = Config.load(args.config)
    names = [f"{args.prefix}{i}" for i in range(args.first, args.first + args.users)]
    t0 = time.monotonic()
    created, existing = asyncio.run(create_accounts(config, args.host, names, args.password,
                                                    max(1, args.concurrency)))
    print(f"accounts: {created} created, {existing} already there, "
          f"{time.monotonic() - t0:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
