#!/usr/bin/env python3
"""Provision the benchmark data directly in the servers' storage (stop the server first).

``accounts``: user<first>..user<first+N-1> with password "pass" in Tercet, through the
Python API: ``InternalHashedProvider.create_user`` on a ``StorageManager`` built from the
bench config, so records are exactly what the server writes (salted SCRAM keys for
SHA-1/256/512 at the config's ``scram_iterations``). Key derivation runs in worker threads
(hashlib releases the GIL), ``--concurrency`` accounts at a time. Existing ones are kept.

``rosters``: every user gets ``--contacts`` contacts with subscription "both" (its ring
neighbours user<i-25>..user<i+25>, so the relation is mutual), or with ``--star`` the
first user gets all the others as contacts and each of them that one (pep_bench.py),
written
* for Tercet into the keyval store ``roster`` in the layout of tercet.modules._rosterlib
  (``{"<bare jid>": {"subscription": "both", "groups": []}, "@meta": {...}}``);
* for Prosody (``--prosody-data DIR``) as the Lua files its internal storage reads,
  ``DIR/<host>/roster/<user>.dat`` (format taken from a file Prosody 0.12 wrote itself).

    python3 bench/provision.py accounts --users 5000
    python3 bench/provision.py rosters --users 1000 --contacts 50
    python3 bench/provision.py rosters --users 1000 --contacts 50 \
        --prosody-data /tmp/benchdata/prosody/data
    python3 bench/provision.py rosters --users 101 --prefix pepuser --star
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

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


def contacts_of(index: int, first: int, users: int, contacts: int) -> list[int]:
    """Ring neighbours of user<index>: ``contacts // 2`` on each side, wrapping around."""
    half = min(contacts // 2, (users - 1) // 2)
    offset = index - first
    return [first + (offset + k) % users for k in range(-half, half + 1) if k != 0]


def star_contacts(index: int, first: int, users: int) -> list[int]:
    """The hub (the first user) has every other user; each of them has the hub."""
    if index == first:
        return list(range(first + 1, first + users))
    return [first]


def roster_record(names: list[str], host: str) -> dict[str, Any]:
    """A Tercet roster record: every contact with subscription "both"."""
    record: dict[str, Any] = {f"{n}@{host}": {"subscription": "both", "groups": []}
                              for n in names}
    record["@meta"] = {"version": 1, "pending": {}}
    return record


def prosody_roster(names: list[str], host: str) -> str:
    """The same roster as a Prosody 0.12 internal-storage data file (a Lua table)."""
    lines = ["return {", '\t[false] = {\n\t\t["version"] = 1;\n\t\t["pending"] = {};\n\t};']
    for n in names:
        lines.append(f'\t["{n}@{host}"] = {{\n\t\t["groups"] = {{}};\n'
                     f'\t\t["subscription"] = "both";\n\t}};')
    lines.append("};")
    return "\n".join(lines) + "\n"


async def write_rosters(config: Config, host: str, rosters: dict[str, list[str]]) -> None:
    storage = open_storage(config)
    await storage.ready()
    try:
        store = storage.open(host, "roster", "keyval")
        for user, names in rosters.items():
            await store.set(user, roster_record(names, host))
    finally:
        await storage.close()


def write_prosody_rosters(data_dir: Path, host: str, rosters: dict[str, list[str]]) -> None:
    # Prosody escapes the host name in paths (%2e for '.'); "localhost" has nothing to escape.
    directory = data_dir / host.replace(".", "%2e") / "roster"
    directory.mkdir(parents=True, exist_ok=True)
    for user, names in rosters.items():
        path = directory / f"{user}.dat"
        path.write_text(prosody_roster(names, host))
        os.chmod(path, 0o640)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["accounts", "rosters"])
    ap.add_argument("--config", default=str(DEFAULT_CONFIG))
    ap.add_argument("--host", default="localhost")
    ap.add_argument("--users", type=int, default=5000)
    ap.add_argument("--first", type=int, default=1)
    ap.add_argument("--prefix", default="user")
    ap.add_argument("--password", default="pass")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--contacts", type=int, default=50)
    ap.add_argument("--star", action="store_true",
                    help="rosters: a star around the first user instead of a ring")
    ap.add_argument("--prosody-data", default=None,
                    help="rosters: write Prosody's files under this data_path instead")
    args = ap.parse_args(argv)
    config = Config.load(args.config)
    t0 = time.monotonic()
    if args.what == "accounts":
        names = [f"{args.prefix}{i}" for i in range(args.first, args.first + args.users)]
        created, existing = asyncio.run(create_accounts(config, args.host, names,
                                                        args.password, max(1, args.concurrency)))
        print(f"accounts: {created} created, {existing} already there, "
              f"{time.monotonic() - t0:.1f} s", file=sys.stderr)
        return 0
    def contacts(i: int) -> list[int]:
        if args.star:
            return star_contacts(i, args.first, args.users)
        return contacts_of(i, args.first, args.users, args.contacts)
    rosters = {f"{args.prefix}{i}": [f"{args.prefix}{j}" for j in contacts(i)]
               for i in range(args.first, args.first + args.users)}
    if args.prosody_data:
        write_prosody_rosters(Path(args.prosody_data), args.host, rosters)
        where = f"Prosody files in {args.prosody_data}"
    else:
        asyncio.run(write_rosters(config, args.host, rosters))
        where = f"Tercet store 'roster' in {config.data_path}"
    shape = "star" if args.star else f"{args.contacts} contacts"
    print(f"rosters: {len(rosters)} x {shape} ({where}), "
          f"{time.monotonic() - t0:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
