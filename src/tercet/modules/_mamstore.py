"""Archive store work that the user archive (``mam``) and room archives (``muc_mam``)
share: the background writer (:class:`ArchiveWriter`), paging a query into RSM pages
(XEP-0313 §4, XEP-0059) and expiring old items in bounded batches. The owner is a username
or a room's node; the wire format is _mamlib's.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import deque
from collections.abc import Awaitable, Callable

from tercet.module import (
    MAX_ARCHIVE_PAGE,
    ArchiveAppend,
    ArchiveItem,
    ArchiveQuery,
    ArchiveStore,
    ModuleApi,
    StorageError,
)
from tercet.modules._mamlib import MamQuery, Page, QueryError

# Expiry deletes at most CLEANUP_BATCH items per store call and CLEANUP_BATCHES calls per
# run, then asks to come back after CLEANUP_CONTINUE seconds: a large backlog never holds
# the event loop or the database for long.
CLEANUP_BATCH = 500
CLEANUP_BATCHES = 100
CLEANUP_CONTINUE = 1.0
# Appends waiting for a writer task. A bound on what a burst of messages can make the
# server hold in memory (RFC 6120 §13.12, denial of service): beyond it, the handler awaits
# its own write, as without the queue, pausing that sender's stream.
ARCHIVE_QUEUE_MAX = 4096
# Most queued appends a writer hands to the store in one call (one transaction).
WRITE_BATCH = 256


async def query_page(store: ArchiveStore, owner: str, q: MamQuery, limit: int,
                     with_jid: str | None) -> tuple[list[ArchiveItem], Page]:
    """The page of ``owner``'s archive that ``q`` asks for, at most ``limit`` items, in
    chronological order, and what RSM can say about it without counting (a count only
    for ``<max>0</max>``, XEP-0059 §2.7)."""
    if q.start is not None and q.end is not None and q.start > q.end:
        raise QueryError("bad-request", "start is after end")
    # The result set: the form's filters (before-id/after-id are bounds of the set).
    whole = ArchiveQuery(start=q.start, end=q.end, with_jid=with_jid, ids=q.ids,
                         after=q.after_id, before=q.before_id)
    backwards = q.before is not None
    if backwards:  # the page ending just before <before/> ("": the last page)
        page_q = dataclasses.replace(whole, before=q.before or q.before_id,
                                     after=q.after or q.after_id, reverse=True)
    else:
        page_q = dataclasses.replace(whole, after=q.after or q.after_id)
    items, more = await fetch_page(store, owner, page_q, limit)
    if backwards:
        items.reverse()
    # A page from the start of the set begins at index 0, and one from an end of the set
    # with nothing beyond it is the whole set.
    at_edge = not q.before if backwards else q.after is None
    count = len(items) if at_edge and not more else None
    index = 0 if (not more if backwards else q.after is None) else None
    if limit == 0:
        count = await store.count(owner, whole)
    return items, Page([i.key for i in items], index, count, complete=not more)


async def fetch_page(store: ArchiveStore, owner: str, q: ArchiveQuery,
                     limit: int) -> tuple[list[ArchiveItem], bool]:
    """Up to ``limit`` items of ``q`` in its direction, and whether more follow them: one
    more item is fetched to tell (XEP-0313 §4.3 ``complete``), never a count."""
    got = await store.find(owner, dataclasses.replace(q, limit=limit + 1))
    if len(got) > limit:
        return got[:limit], True
    if len(got) < limit or limit < MAX_ARCHIVE_PAGE:
        return got, False
    # limit + 1 was clamped to the store's page bound: look one item further.
    last = got[-1].key
    probe = (dataclasses.replace(q, limit=1, before=last) if q.reverse
             else dataclasses.replace(q, limit=1, after=last))
    return got, bool(await store.find(owner, probe))


async def expiry_run(module: ModuleApi, store: ArchiveStore, expires_after: float | None,
                     interval: float, what: str) -> float:
    """One run of an archive's expiry timer: delete what is older than ``expires_after``
    seconds (None: keep everything), log what went (``what``: "archived messages"), and
    return when to run again (sooner while a backlog remains)."""
    if expires_after is None:
        return interval
    try:
        deleted, done = await expire(store, module.now() - expires_after)
    except StorageError:
        module.log.exception("expiry of %s failed", what)
        return interval
    if deleted:
        module.log.info("expired %d %s%s", deleted, what, "" if done else "; more to do")
    return interval if done else CLEANUP_CONTINUE


async def expire(store: ArchiveStore, cutoff: float) -> tuple[int, bool]:
    """Delete items older than ``cutoff`` (POSIX time), in bounded batches; returns how
    many went and whether everything old is gone (False: call again soon). Raises
    StorageError."""
    batches = deleted = 0
    for owner in await store.users():
        while True:
            old = await store.find(owner, ArchiveQuery(end=cutoff, limit=CLEANUP_BATCH))
            if not old:
                break
            deleted += await store.delete(owner, ArchiveQuery(end=cutoff,
                                                              ids=[i.key for i in old]))
            batches += 1
            if batches >= CLEANUP_BATCHES:
                return deleted, False
            if len(old) < CLEANUP_BATCH:
                break
            await asyncio.sleep(0)  # let stanzas through between batches
    return deleted, True


class ArchiveWriter:
    """The writer task of one archive: appends in arrival order, ``batch`` items per store
    call (one transaction), from a queue of at most ``max_queue`` items. Archiving thus
    never holds up delivery, while memory stays bounded: when the queue is full the caller
    waits for room and then for its own write, as without a queue (RFC 6120 §13.12).

    ``flushed()`` returns once everything queued before the call is written (a query reads
    its writes; an acknowledgement covers stored items); ``drain()`` empties the queue
    (unload, shutdown). ``after_batch`` runs after each batch (room archives trim there).
    """

    def __init__(self, module: ModuleApi, store: ArchiveStore, what: str, *,
                 max_queue: int, batch: int,
                 after_batch: Callable[[list[ArchiveAppend]], Awaitable[None]] | None = None,
                 ) -> None:
        self.module = module
        self.store = store
        self.what = what  # for log lines: "message", "room message"
        self.batch = batch
        self.after_batch = after_batch
        self.queue: asyncio.Queue[ArchiveAppend] = asyncio.Queue(max_queue)
        self.queued = 0
        self.written = 0
        self.blocked = 0  # callers waiting for room in the queue
        self.waiters: deque[tuple[int, asyncio.Future[None]]] = deque()
        self.task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> bool:
        return self.written < self.queued

    def add(self, item: ArchiveAppend) -> Awaitable[None] | None:
        """Queue ``item``; None when it was queued at once, else an awaitable to wait on
        (the queue is full: room, then the write)."""
        if self.blocked or self.queue.full():
            return self._add_waiting(item)
        self.queue.put_nowait(item)
        self.queued += 1
        self._start()
        return None

    async def _add_waiting(self, item: ArchiveAppend) -> None:
        self.blocked += 1  # behind anyone already waiting, so arrival order holds
        try:
            await self.queue.put(item)
        finally:
            self.blocked -= 1
        self.queued += 1
        self._start()
        await self.flushed()

    def _start(self) -> None:
        """Run the writer task unless it runs already (it ends when the queue is empty)."""
        if self.task is None or self.task.done():
            self.task = self.module.spawn(self._write_loop())

    async def _write_loop(self) -> None:
        while not self.queue.empty():
            batch: list[ArchiveAppend] = []
            while not self.queue.empty() and len(batch) < self.batch:
                batch.append(self.queue.get_nowait())
            try:
                await self.store.append_many(batch)
                if self.after_batch is not None:
                    await self.after_batch(batch)
            except StorageError:
                self.module.log.exception("could not archive %d %s(s)", len(batch),
                                          self.what)
            except Exception:
                self.module.log.exception("archive writer failed on %d %s(s)", len(batch),
                                          self.what)
            finally:
                self.written += len(batch)
                while self.waiters and self.waiters[0][0] <= self.written:
                    _, fut = self.waiters.popleft()
                    if not fut.done():
                        fut.set_result(None)

    async def flushed(self) -> None:
        """Return once everything queued before this call is in the archive."""
        target = self.queued
        if self.written >= target:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append((target, fut))
        await fut

    async def drain(self) -> None:
        """Write everything queued (unload, shutdown)."""
        while self.written < self.queued or self.blocked or not self.queue.empty():
            if not self.queue.empty():
                self._start()
            await self.flushed()
            await asyncio.sleep(0)  # callers that were waiting for room queue now
