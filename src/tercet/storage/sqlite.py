"""The SQLite storage driver (the default): one file, one dedicated thread.

Every write, and every read that is more than a point lookup, is exactly one hop to the
database thread, where a single function does the whole operation inside one
transaction. Per-statement hops were measured 5-20x slower (docs: DESIGN.md, "Storage").
Nothing else ever touches that connection, so it needs no locking.

Point reads (a keyval record, a map key, one user's map) run on the event loop's own
read-only connection instead, when no write is queued: the lookup takes ~10 µs, where
the hop costs ~80 µs of CPU in thread wake-ups (bench/README.md, "Storage reads and
logins"). While a write is queued they take the hop, behind it, so a read always sees
the writes asked for before it (WAL: the loop's reads never wait for the writer, nor it
for them).

The schema is versioned: ``schema_version`` holds the number of migrations applied
and :data:`MIGRATIONS` lists them in order. Add a migration by appending a function;
never edit one that has shipped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from tercet.protocol.xmlstream import parse_fragment
from tercet.storage._codec import decode_json, encode_json, new_archive_key
from tercet.storage.base import (
    ArchiveAppend,
    ArchiveItem,
    ArchiveKeyNotFound,
    ArchiveQuery,
    ArchiveStore,
    KeyValStore,
    MapStore,
    StorageDriver,
    StorageError,
    bare_of,
)

if TYPE_CHECKING:
    from tercet.protocol.stanza import Element

__all__ = ["DB_FILENAME", "MIGRATIONS", "SqliteDriver", "create_sqlite_driver"]

log = logging.getLogger(__name__)

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], T]

DB_FILENAME = "tercet.sqlite"
#: The sqlite_synchronous setting -> the PRAGMA. NORMAL with WAL: a commit survives a crash
#: of the process, and the last ones may be lost to a power cut; FULL: they survive both.
SYNCHRONOUS = {"normal": "NORMAL", "full": "FULL"}

# Our own bound on operations waiting for the database thread. Each one is awaited by a
# task, so this only caps bursts (say, a server-wide presence flood of roster loads):
# beyond it callers wait on the event loop instead of growing the executor queue.
MAX_PENDING_OPERATIONS = 1024

# How long a write waits for another process (e.g. `tercet user add` while the server
# runs) to release the database lock before failing with "database is locked".
BUSY_TIMEOUT_MS = 5000

# Pages the event loop's read-only connection keeps cached, in KiB (SQLite's default is
# 2,000 per connection). Its reads are point lookups: the B-trees' upper levels stay
# cached, and a leaf page it misses is a copy from the kernel's page cache, which holds
# the file anyway (a few µs), where each page cached here stays on the heap for the life
# of the server: 1,000 logins left ~0.6 MB of them (bench/README.md, "Fewer objects per
# idle session"). The database thread's connection keeps the default, for scans and writes.
READER_CACHE_SIZE_KIB = 256

# The empty string stands for "the host itself" (user None): NULLs never collide in a
# UNIQUE index, and a real localpart is never empty (RFC 6122 §2.3: 1 to 1023 bytes).
_HOST_USER = ""


# --- schema ---------------------------------------------------------------------------


def _migration_1_initial(conn: sqlite3.Connection) -> None:
    conn.execute(
        """CREATE TABLE keyval (
            host TEXT NOT NULL, user TEXT NOT NULL, store TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (host, user, store)
        ) WITHOUT ROWID"""
    )
    conn.execute(
        """CREATE TABLE map (
            host TEXT NOT NULL, user TEXT NOT NULL, store TEXT NOT NULL,
            "key" TEXT NOT NULL, value TEXT NOT NULL,
            PRIMARY KEY (host, user, store, "key")
        ) WITHOUT ROWID"""
    )
    # AUTOINCREMENT: ids are never reused, so insertion order survives deletions.
    conn.execute(
        """CREATE TABLE archive (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            host TEXT NOT NULL, user TEXT NOT NULL, store TEXT NOT NULL,
            "key" TEXT NOT NULL, "when" REAL NOT NULL,
            with_jid TEXT NOT NULL, with_bare TEXT NOT NULL,
            value TEXT NOT NULL,
            UNIQUE (host, user, store, "key")
        )"""
    )
    # The rowid (id) is the implicit last column of every index, so these also give
    # the (when, id) archive order without a sort.
    conn.execute('CREATE INDEX archive_when ON archive (host, user, store, "when")')
    conn.execute('CREATE INDEX archive_with ON archive (host, user, store, with_bare, "when")')


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _migration_1_initial,
)


def _schema_version(conn: sqlite3.Connection) -> int:
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    if row is None:
        conn.execute("INSERT INTO schema_version (version) VALUES (0)")
        return 0
    return int(row[0])


def migrate(conn: sqlite3.Connection, path: Path | str) -> int:
    """Bring the schema up to date, one transaction per migration; return the version.

    Raises :class:`StorageError` if the file was written by a newer Tercet.
    """
    with _transaction(conn, write=True):
        version = _schema_version(conn)
    known = len(MIGRATIONS)
    if version > known:
        raise StorageError(
            f"{path}: database schema version {version} is newer than this version of "
            f"Tercet supports ({known}); upgrade Tercet or restore a backup"
        )
    for number in range(version + 1, known + 1):
        log.info("%s: applying schema migration %d", path, number)
        with _transaction(conn, write=True):
            MIGRATIONS[number - 1](conn)
            conn.execute("UPDATE schema_version SET version = ?", (number,))
    return known


class _transaction:
    """``with _transaction(conn, write=...)``: BEGIN [IMMEDIATE] ... COMMIT / ROLLBACK."""

    def __init__(self, conn: sqlite3.Connection, *, write: bool) -> None:
        self.conn = conn
        self.write = write

    def __enter__(self) -> sqlite3.Connection:
        # IMMEDIATE takes the write lock up front, so a read-then-write operation can
        # never fail half-way with SQLITE_BUSY on the lock upgrade.
        self.conn.execute("BEGIN IMMEDIATE" if self.write else "BEGIN")
        return self.conn

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        elif self.conn.in_transaction:
            self.conn.execute("ROLLBACK")


# --- the driver -----------------------------------------------------------------------


class SqliteDriver(StorageDriver):
    """All stores of all hosts in one SQLite file, ``<data_path>/tercet.sqlite``."""

    name = "sqlite"

    def __init__(self, path: Path, *, synchronous: str = "normal") -> None:
        self.path = path
        self.synchronous = SYNCHRONOUS[synchronous]
        self._conn: sqlite3.Connection | None = None
        self._open_error: StorageError | None = None
        self._closed = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tercet-sqlite")
        self._pending = asyncio.Semaphore(MAX_PENDING_OPERATIONS)
        # Writes asked for and not finished: while there are any, reads take the hop.
        self._writes = 0
        # The event loop's read-only connection for point reads (opened when first used,
        # by the thread that runs the loop; another thread's reads take the hop).
        self._reader: sqlite3.Connection | None = None
        self._reader_thread = 0
        # Opening runs on the database thread too; operations queue up behind it.
        self._opened: Future[None] = self._executor.submit(self._open)

    # -- on the database thread ---------------------------------------------------------

    def _open(self) -> None:
        try:
            _create_private(self.path)
            conn = sqlite3.connect(self.path, isolation_level=None)
            try:
                conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute(f"PRAGMA synchronous = {self.synchronous}")
                conn.execute("PRAGMA foreign_keys = ON")
                migrate(conn, self.path)
            except BaseException:
                conn.close()
                raise
        except StorageError as exc:
            self._open_error = exc
            raise
        except (sqlite3.Error, OSError) as exc:
            self._open_error = StorageError(f"{self.path}: cannot open database: {exc}")
            raise self._open_error from exc
        self._conn = conn

    def _run(self, op: Op[T], write: bool) -> T:
        conn = self._conn
        if conn is None:
            # A fresh exception each time: re-raising one instance grows its traceback.
            reason = self._open_error or f"{self.path}: database is not open"
            raise StorageError(str(reason))
        try:
            with _transaction(conn, write=write):
                return op(conn)
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: {exc}") from exc

    def _shutdown(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:  # the data is safe in the WAL; just say so
            log.warning("%s: checkpoint at close failed: %s", self.path, exc)
        finally:
            conn.close()

    # -- on the event loop --------------------------------------------------------------

    async def call(self, op: Op[T], *, write: bool) -> T:
        """Run ``op(conn)`` on the database thread inside one transaction.

        Stores use this for every operation; ``sqlite3.Error`` becomes
        :class:`StorageError`, anything else ``op`` raises propagates unchanged.
        """
        if write:
            self._writes += 1
        try:
            async with self._pending:
                # Checked after the wait too: close() may have run while we queued.
                if self._closed:
                    raise StorageError(f"{self.path}: storage is closed")
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(self._executor, self._run, op, write)
        finally:
            if write:
                self._writes -= 1

    async def read(self, op: Op[T]) -> T:
        """A point read (one statement, one indexed lookup): ``op(conn)`` on the event loop's own
        connection when no write is queued, else through the database thread behind the
        writes (see the module docstring)."""
        if self._writes == 0 and not self._closed and self._conn is not None:
            conn = self._reader if self._reader_thread == threading.get_ident() \
                else self._open_reader()
            if conn is not None:
                try:
                    # One statement: its own read transaction (autocommit), so no BEGIN
                    # and COMMIT around it (two of a read's three statements; a login
                    # makes about five reads).
                    return op(conn)
                except sqlite3.OperationalError:
                    pass  # busy (a checkpoint resetting the WAL): the thread waits for it
                except sqlite3.Error as exc:
                    raise StorageError(f"{self.path}: {exc}") from exc
        return await self.call(op, write=False)

    def _open_reader(self) -> sqlite3.Connection | None:
        if self._reader is not None:
            return None  # the loop's connection belongs to another thread
        try:
            conn = sqlite3.connect(self.path, isolation_level=None)
            # Never wait on the event loop: a busy database sends the read to the thread.
            conn.execute("PRAGMA busy_timeout = 0")
            conn.execute("PRAGMA query_only = ON")
            conn.execute(f"PRAGMA cache_size = -{READER_CACHE_SIZE_KIB}")
        except sqlite3.Error as exc:
            log.warning("%s: reads go through the database thread: %s", self.path, exc)
            return None
        self._reader = conn
        self._reader_thread = threading.get_ident()
        return conn

    async def ready(self) -> None:
        try:
            await asyncio.wrap_future(self._opened)
        except StorageError:
            raise
        except Exception as exc:  # pragma: no cover - _open wraps what it expects
            raise StorageError(f"{self.path}: cannot open database: {exc}") from exc

    def keyval(self, host: str, store: str) -> KeyValStore:
        return SqliteKeyValStore(self, host, store)

    def map(self, host: str, store: str) -> MapStore:
        return SqliteMapStore(self, host, store)

    def archive(self, host: str, store: str) -> ArchiveStore:
        return SqliteArchiveStore(self, host, store)

    async def delete_user(self, host: str, user: str) -> None:
        def op(conn: sqlite3.Connection) -> None:
            for table in ("keyval", "map", "archive"):
                conn.execute(f"DELETE FROM {table} WHERE host = ? AND user = ?", (host, user))

        await self.call(op, write=True)

    async def purge_host(self, host: str) -> None:
        def op(conn: sqlite3.Connection) -> None:
            for table in ("keyval", "map", "archive"):
                conn.execute(f"DELETE FROM {table} WHERE host = ?", (host,))

        await self.call(op, write=True)

    async def close(self) -> None:
        """Checkpoint the WAL and close the connection on its thread, then stop the thread."""
        if self._closed:
            return
        self._closed = True
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._shutdown)
        finally:
            self._executor.shutdown(wait=False)


def create_sqlite_driver(data_path: Path, options: Mapping[str, Any]) -> SqliteDriver:
    """Driver factory for the registry. Option ``file``: the database file name."""
    name = options.get("file", DB_FILENAME)
    if not isinstance(name, str) or not name:
        raise ValueError(
            f"storage option 'file' of driver 'sqlite' must be a file name, not {name!r}")
    synchronous = options.get("synchronous", "normal")
    if synchronous not in SYNCHRONOUS:
        raise ValueError(f"storage option 'synchronous' of driver 'sqlite' must be one of "
                         f"{', '.join(SYNCHRONOUS)}, not {synchronous!r}")
    return SqliteDriver(data_path / name, synchronous=synchronous)


def _user(user: str | None) -> str:
    return _HOST_USER if user is None else user


# --- keyval and map -------------------------------------------------------------------


class SqliteKeyValStore(KeyValStore):
    def __init__(self, driver: SqliteDriver, host: str, store: str) -> None:
        self._driver = driver
        self._where = (host, store)

    async def get(self, user: str | None) -> Any | None:
        host, store = self._where

        def op(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT value FROM keyval WHERE host = ? AND user = ? AND store = ?",
                (host, _user(user), store),
            ).fetchone()
            return None if row is None else str(row[0])

        text = await self._driver.read(op)
        return None if text is None else decode_json(text)

    async def set(self, user: str | None, value: Any | None) -> None:
        host, store = self._where
        # Encode here, not on the thread: the caller sees a TypeError for a bad value and
        # may mutate its object as soon as we return.
        text = None if value is None else encode_json(value)

        def op(conn: sqlite3.Connection) -> None:
            if text is None:
                conn.execute(
                    "DELETE FROM keyval WHERE host = ? AND user = ? AND store = ?",
                    (host, _user(user), store),
                )
            else:
                conn.execute(
                    "INSERT INTO keyval (host, user, store, value) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (host, user, store) DO UPDATE SET value = excluded.value",
                    (host, _user(user), store, text),
                )

        await self._driver.call(op, write=True)

    async def users(self) -> list[str]:
        host, store = self._where

        def op(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT user FROM keyval WHERE host = ? AND store = ? AND user != ?",
                (host, store, _HOST_USER),
            )
            return [str(r[0]) for r in rows]

        return await self._driver.call(op, write=False)

    async def delete_user(self, user: str) -> None:
        await self.set(user, None)


class SqliteMapStore(MapStore):
    def __init__(self, driver: SqliteDriver, host: str, store: str) -> None:
        self._driver = driver
        self._where = (host, store)

    async def get(self, user: str | None, key: str) -> Any | None:
        host, store = self._where

        def op(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                'SELECT value FROM map WHERE host = ? AND user = ? AND store = ? AND "key" = ?',
                (host, _user(user), store, key),
            ).fetchone()
            return None if row is None else str(row[0])

        text = await self._driver.read(op)
        return None if text is None else decode_json(text)

    async def set(self, user: str | None, key: str, value: Any | None) -> None:
        await self.set_keys(user, {key: value})

    async def set_keys(self, user: str | None, values: dict[str, Any | None]) -> None:
        host, store = self._where
        u = _user(user)
        encoded = [(k, None if v is None else encode_json(v)) for k, v in values.items()]
        deletes = [(host, u, store, k) for k, text in encoded if text is None]
        upserts = [(host, u, store, k, text) for k, text in encoded if text is not None]

        def op(conn: sqlite3.Connection) -> None:
            conn.executemany(
                'DELETE FROM map WHERE host = ? AND user = ? AND store = ? AND "key" = ?',
                deletes,
            )
            conn.executemany(
                'INSERT INTO map (host, user, store, "key", value) VALUES (?, ?, ?, ?, ?) '
                'ON CONFLICT (host, user, store, "key") DO UPDATE SET value = excluded.value',
                upserts,
            )

        await self._driver.call(op, write=True)

    async def get_all(self, user: str | None) -> dict[str, Any]:
        host, store = self._where

        def op(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            rows = conn.execute(
                'SELECT "key", value FROM map WHERE host = ? AND user = ? AND store = ?',
                (host, _user(user), store),
            )
            return [(str(k), str(v)) for k, v in rows]

        rows = await self._driver.read(op)
        return {k: decode_json(v) for k, v in rows}

    async def users(self) -> list[str]:
        host, store = self._where

        def op(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT DISTINCT user FROM map WHERE host = ? AND store = ? AND user != ?",
                (host, store, _HOST_USER),
            )
            return [str(r[0]) for r in rows]

        return await self._driver.call(op, write=False)

    async def delete_user(self, user: str) -> None:
        host, store = self._where

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "DELETE FROM map WHERE host = ? AND user = ? AND store = ?", (host, user, store)
            )

        await self._driver.call(op, write=True)


# --- archive --------------------------------------------------------------------------


def _archive_filter(
    conn: sqlite3.Connection, scope: tuple[str, str, str], q: ArchiveQuery | None
) -> tuple[str, list[Any]]:
    """The WHERE clause (and its parameters) selecting ``q``'s items in ``scope``."""
    clauses = ["host = ?", "user = ?", "store = ?"]
    params: list[Any] = list(scope)
    if q is None:
        return " AND ".join(clauses), params
    if q.start is not None:
        clauses.append('"when" >= ?')
        params.append(q.start)
    if q.end is not None:
        clauses.append('"when" <= ?')
        params.append(q.end)
    if q.with_jid is not None:
        # A bare JID in the query also matches items stored with a full JID under it.
        clauses.append("with_jid = ?" if "/" in q.with_jid else "with_bare = ?")
        params.append(q.with_jid)
    if q.ids is not None:
        # One JSON parameter instead of one "?" per id: no SQLITE_MAX_VARIABLE_NUMBER limit.
        clauses.append('"key" IN (SELECT value FROM json_each(?))')
        params.append(encode_json(sorted(q.ids)))
    for key, op in ((q.after, ">"), (q.before, "<")):
        if key is not None:
            when, rowid = _position(conn, scope, key)
            # Strictly after/before (when, id). The redundant '"when" >= ?' lets SQLite
            # seek in the index instead of scanning the user's archive from its start.
            clauses.append(f'"when" {op}= ? AND ("when" {op} ? OR id {op} ?)')
            params += [when, when, rowid]
    return " AND ".join(clauses), params


def _position(conn: sqlite3.Connection, scope: tuple[str, str, str], key: str) -> tuple[float, int]:
    row = conn.execute(
        'SELECT "when", id FROM archive WHERE host = ? AND user = ? AND store = ? AND "key" = ?',
        (*scope, key),
    ).fetchone()
    if row is None:
        raise ArchiveKeyNotFound(key)
    return float(row[0]), int(row[1])


def _to_item(path: Path, key: str, when: float, with_jid: str, xml: str) -> ArchiveItem:
    try:
        value = parse_fragment(xml)
    except Exception as exc:
        raise StorageError(f"{path}: archive item {key!r} holds unparsable XML: {exc}") from exc
    return ArchiveItem(key, value, when, with_jid)


class SqliteArchiveStore(ArchiveStore):
    def __init__(self, driver: SqliteDriver, host: str, store: str) -> None:
        self._driver = driver
        self._host = host
        self._store = store

    def _scope(self, user: str) -> tuple[str, str, str]:
        return (self._host, user, self._store)

    async def append(
        self,
        user: str,
        value: Element,
        *,
        when: float,
        with_jid: str,
        key: str | None = None,
    ) -> str:
        scope = self._scope(user)
        key = new_archive_key() if key is None else key
        row = (*scope, key, float(when), with_jid, bare_of(with_jid), value.to_xml(None))

        def op(conn: sqlite3.Connection) -> None:
            # Replacing deletes first so the item gets a new id, i.e. a new position.
            conn.execute(
                'DELETE FROM archive WHERE host = ? AND user = ? AND store = ? AND "key" = ?',
                (*scope, key),
            )
            conn.execute(
                'INSERT INTO archive (host, user, store, "key", "when", with_jid, with_bare, '
                "value) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )

        await self._driver.call(op, write=True)
        return key

    async def append_many(self, items: Sequence[ArchiveAppend]) -> None:
        """All of ``items`` in one transaction (one hop to the database thread)."""
        rows = [(self._host, i.user, self._store, i.key, float(i.when), i.with_jid,
                 bare_of(i.with_jid), i.value.to_xml(None)) for i in items]

        def op(conn: sqlite3.Connection) -> None:
            for row in rows:
                conn.execute(
                    'DELETE FROM archive WHERE host = ? AND user = ? AND store = ? '
                    'AND "key" = ?', row[:4],
                )
                conn.execute(
                    'INSERT INTO archive (host, user, store, "key", "when", with_jid, '
                    "with_bare, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )

        if rows:
            await self._driver.call(op, write=True)

    async def find(self, user: str, q: ArchiveQuery) -> list[ArchiveItem]:
        scope = self._scope(user)
        path = self._driver.path
        order = "DESC" if q.reverse else "ASC"

        def op(conn: sqlite3.Connection) -> list[ArchiveItem]:
            where, params = _archive_filter(conn, scope, q)
            rows = conn.execute(
                f'SELECT "key", "when", with_jid, value FROM archive WHERE {where} '
                f'ORDER BY "when" {order}, id {order} LIMIT ?',
                (*params, q.page_size),
            ).fetchall()
            # Parsed here, on the database thread, so a 1000-item page does not stall the
            # event loop; the transaction is the same hop, as the design asks.
            return [_to_item(path, k, w, j, x) for k, w, j, x in rows]

        return await self._driver.call(op, write=False)

    async def count(self, user: str, q: ArchiveQuery) -> int:
        scope = self._scope(user)

        def op(conn: sqlite3.Connection) -> int:
            where, params = _archive_filter(conn, scope, q)
            return int(conn.execute(f"SELECT COUNT(*) FROM archive WHERE {where}", params)
                       .fetchone()[0])

        return await self._driver.call(op, write=False)

    async def delete(self, user: str, q: ArchiveQuery | None = None) -> int:
        scope = self._scope(user)

        def op(conn: sqlite3.Connection) -> int:
            where, params = _archive_filter(conn, scope, q)
            return conn.execute(f"DELETE FROM archive WHERE {where}", params).rowcount

        return await self._driver.call(op, write=True)

    async def users(self) -> list[str]:
        host, store = self._host, self._store

        def op(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT DISTINCT user FROM archive WHERE host = ? AND store = ?", (host, store)
            )
            return [str(r[0]) for r in rows]

        return await self._driver.call(op, write=False)

    async def delete_user(self, user: str) -> None:
        await self.delete(user)


def _create_private(path: Path) -> None:
    """Create the database file 0600 in a 0700 directory when it does not exist: it holds
    SCRAM keys and archives, whatever the umask (SQLite gives its -wal and -shm files the
    database file's mode)."""
    if path.exists():
        return
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
        os.chmod(path.parent, 0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.fchmod(fd, 0o600)
    os.close(fd)
