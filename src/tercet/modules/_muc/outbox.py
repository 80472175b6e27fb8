"""Ordered sending for the MUC: what a room sends arrives in the order it was sent.

Delivery on the user's side may wait (an async observer of ``presence/full``), so routing
stanzas one after the other without waiting would let a later message overtake an earlier
presence (a join's subject before the self-presence of §7.2.3). Rooms put stanzas in one
FIFO; the handler that caused them flushes it before it returns (the sender's stream
waits meanwhile: backpressure), and a flush already running delivers for everyone.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from tercet.protocol.stanza import Element

log = logging.getLogger("tercet.mod.muc")


class Outbox:
    """A FIFO of stanzas routed in order by whoever flushes it."""

    __slots__ = ("_active", "_flusher", "_queue", "_send", "_spawn", "_waiters")

    def __init__(self, send: Callable[[Element], Awaitable[None]],
                 spawn: Callable[[Awaitable[None]], Any]) -> None:
        self._send = send
        self._spawn = spawn
        self._queue: deque[Element] = deque()
        self._active = False
        self._flusher: asyncio.Task[Any] | None = None
        self._waiters: list[asyncio.Future[None]] = []

    def __len__(self) -> int:
        return len(self._queue)

    def put(self, stanza: Element) -> None:
        self._queue.append(stanza)

    def flush_later(self) -> None:
        """For senders outside a stanza handler (admin commands, timers)."""
        if self._queue and not self._active:
            self._spawn(self.flush())

    async def flush(self) -> None:
        """Deliver everything queued, including what others queue meanwhile."""
        if self._active:
            if asyncio.current_task() is self._flusher:
                # A stanza being delivered came back to the MUC (an invitation to a room
                # JID): the flush under way delivers what that produced; waiting for it
                # here would wait for ourselves.
                return
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter
            return
        if not self._queue:
            return
        self._active = True
        self._flusher = asyncio.current_task()
        try:
            while self._queue:
                stanza = self._queue.popleft()
                try:
                    await self._send(stanza)
                except Exception:
                    log.exception("could not deliver a stanza from the MUC")
        finally:
            self._active = False
            self._flusher = None
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
            if self._queue:  # this flush was cancelled half-way: finish in a task
                self._spawn(self.flush())
