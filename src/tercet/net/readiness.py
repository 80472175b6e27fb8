"""When TLS connections' sockets are readable: one epoll set of our own for all of them.

For each descriptor it watches for reading, the event loop keeps a poll handle (a Python
object and a C one), a callback handle with its context and bound method, and two dict
entries keyed by the descriptor: ~0.7 kB per connection, a fifth of an idle session's
Python objects, and allocated during every login in between the session's long-lived
objects (bench/README.md, "Fewer objects per idle session"). TLS connections
(net/tlslayer.py) are told by this set instead: the loop watches its one descriptor, and a
connection costs one entry of a dict. Each readiness of the set gives every ready
connection its turn, as the loop's own readers would, level-triggered: a connection that
left input unread (TLSLayer's MAX_READS) is ready again at the next pass.

Linux only (epoll): elsewhere, or when the kernel refuses a descriptor, ``add`` says no
and the connection uses a reader of the loop's. Writability stays with the loop (only a
full socket waits for it).
"""

from __future__ import annotations

import asyncio
import logging
import select
from typing import Protocol

log = logging.getLogger("tercet.net")

# Ready connections served per readiness of the set, at most (libuv asks epoll for as
# many): the set stays readable while more are ready, so the rest are served on the next
# loop iteration, after what else the loop has to run.
READY_EVENTS_MAX = 1024

_EPOLL = getattr(select, "epoll", None)
# Readable, or the peer closed or reset: each is news for the connection's read.
_EVENTS = (getattr(select, "EPOLLIN", 1) | getattr(select, "EPOLLRDHUP", 0x2000)
           | getattr(select, "EPOLLERR", 8) | getattr(select, "EPOLLHUP", 16))


class Reader(Protocol):
    """What the set tells (net/tlslayer.py's TLSLayer)."""

    def readable(self) -> None:
        """The socket is readable, or its peer closed or reset it."""


class ReadySet:
    """One epoll set telling TLS connections when to read (see the module docstring)."""

    def __init__(self) -> None:
        self._epoll: select.epoll | None = None
        self._conns: dict[int, Reader] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = _EPOLL is None

    def __len__(self) -> int:
        return len(self._conns)

    def add(self, fd: int, conn: Reader) -> bool:
        """Call ``conn.readable()`` whenever ``fd`` is readable; False if the set cannot
        watch it (no epoll, closed, or the kernel refused), and the caller must."""
        epoll = self._epoll
        if epoll is None:
            epoll = self._open()
            if epoll is None:
                return False
        try:
            epoll.register(fd, _EVENTS)
        except OSError as exc:  # ENOSPC past fs.epoll.max_user_watches, ENOMEM
            log.warning("watching a connection on the event loop instead: %s", exc)
            return False
        self._conns[fd] = conn
        return True

    def remove(self, fd: int) -> None:
        """Stop watching ``fd``: before its owner closes it, as its number is reused."""
        if self._conns.pop(fd, None) is not None and self._epoll is not None:
            try:
                self._epoll.unregister(fd)
            except OSError:
                pass  # the descriptor is already gone, and with it its entry in the set

    def close(self) -> None:
        """Stop watching (server shutdown); the loop stops watching the set."""
        self._closed = True
        epoll, self._epoll = self._epoll, None
        if epoll is None:
            return
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.remove_reader(epoll.fileno())
        epoll.close()

    def _open(self) -> select.epoll | None:
        if self._closed or _EPOLL is None:
            return None
        try:
            epoll: select.epoll = _EPOLL()
        except OSError as exc:  # EMFILE
            log.warning("TLS connections are watched by the event loop: %s", exc)
            self._closed = True
            return None
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(epoll.fileno(), self._ready)
        self._epoll = epoll
        return epoll

    def _ready(self) -> None:
        epoll = self._epoll
        if epoll is None:
            return
        conns = self._conns
        for fd, _events in epoll.poll(0, READY_EVENTS_MAX):
            conn = conns.get(fd)
            if conn is None:
                continue  # removed earlier in this pass
            try:
                conn.readable()
            except Exception:  # one connection's failure must not stop the others' turns
                log.exception("reading a TLS connection failed")
