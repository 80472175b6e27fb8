#!/usr/bin/env python3
"""Fill one user's message archive with N messages, on Tercet and on Prosody (servers stopped).

Both archives get the same conversation: ``--user`` (default puser1) with 10 contacts
(puser2..puser11), messages alternating out/in, 64-byte bodies, one every 0.5 s ending now
(100,000 messages span ~14 h, well inside both servers' default 1-week expiry). The item
ids are written, in archive order, to ``--ids-out`` (one per line) so the query client can
ask for random pages by id.

* Tercet: through its storage layer, ``StorageManager.open(host, "archive", "archive")``
  (the store name module ``mam`` uses) and ``ArchiveStore.append(..., key=...)``, so the
  rows are exactly what the server writes; ``--concurrency`` appends in flight.
* Prosody 0.12 (``--prosody-db``): rows INSERTed directly into ``prosodyarchive`` of the
  SQLite file mod_storage_sql made (the schema and the value format were read with sqlite3
  from rows Prosody wrote itself for real messages: ``type='xml'``, ``value`` = the
  message as Prosody serialises it, ``when`` = integer seconds, ``with`` = the other
  party's bare JID, ``key`` = a UUID). One transaction for all rows.

    python bench/mam_fill.py tercet --ids-out /tmp/benchdata/mam-ids-tercet.txt
    python bench/mam_fill.py prosody --prosody-db /tmp/benchdata/prosody/data/prosody-mam.sqlite \
        --ids-out /tmp/benchdata/mam-ids-prosody.txt
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent


def conversation(user: str, host: str, n: int, now: float):
    """(key, when, with_bare, xml) for each message, oldest first."""
    pad = "x" * 64
    for i in range(n):
        contact = f"puser{2 + i % 10}@{host}"
        me = f"{user}@{host}"
        frm, to = (me + "/bench", contact + "/bench") if i % 2 == 0 else \
            (contact + "/bench", me + "/bench")
        xml = (f"<message from='{frm}' type='chat' id='f{i}' xml:lang='en' to='{to}'>"
               f"<body>fill {i} {pad}</body></message>")
        yield str(uuid.uuid4()), now - (n - i) * 0.5, contact, xml


async def fill_tercet(args: argparse.Namespace) -> list[str]:
    from tercet.core.config import Config
    from tercet.protocol.xmlstream import parse_fragment
    from tercet.storage.manager import StorageConfig, StorageManager

    config = Config.load(args.config)
    storage = StorageManager(StorageConfig.from_option(config.get("storage")), config.data_path)
    await storage.ready()
    keys: list[str] = []
    try:
        store = storage.open(args.host, "archive", "archive")
        await store.delete_user(args.user)
        sem = asyncio.Semaphore(args.concurrency)

        async def one(key: str, when: float, with_bare: str, xml: str) -> None:
            async with sem:
                await store.append(args.user, parse_fragment(xml), when=when,
                                   with_jid=with_bare, key=key)

        batch = []
        for key, when, with_bare, xml in conversation(args.user, args.host, args.messages,
                                                       time.time()):
            keys.append(key)
            batch.append(one(key, when, with_bare, xml))
            if len(batch) >= 2000:  # bounded: at most 2000 coroutines alive
                await asyncio.gather(*batch)
                batch.clear()
        await asyncio.gather(*batch)
    finally:
        await storage.close()
    return keys


def fill_prosody(args: argparse.Namespace) -> list[str]:
    conn = sqlite3.connect(args.prosody_db)
    try:
        conn.execute("DELETE FROM prosodyarchive WHERE host = ? AND user = ? AND store = ?",
                     (args.host, args.user, "archive"))
        rows = [(args.host, args.user, "archive", key, int(when), with_bare, "xml", xml)
                for key, when, with_bare, xml in conversation(args.user, args.host,
                                                              args.messages, time.time())]
        conn.executemany('INSERT INTO prosodyarchive (host, user, store, "key", "when", "with", '
                         'type, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?)', rows)
        conn.commit()
    finally:
        conn.close()
    return [r[3] for r in rows]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("server", choices=["tercet", "prosody"])
    ap.add_argument("--config", default=str(HERE / "tercet-bench-mam.toml"))
    ap.add_argument("--prosody-db", default="/tmp/benchdata/prosody/data/prosody-mam.sqlite")
    ap.add_argument("--host", default="localhost")
    ap.add_argument("--user", default="puser1")
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--concurrency", type=int, default=256)
    ap.add_argument("--ids-out", required=True)
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    keys = asyncio.run(fill_tercet(args)) if args.server == "tercet" else fill_prosody(args)
    Path(args.ids_out).write_text("\n".join(keys) + "\n")
    print(f"{args.server}: {len(keys)} messages archived for {args.user} in "
          f"{time.monotonic() - t0:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
