"""ReadySet (net/readiness.py) on real sockets and a real epoll set: a watched socket's
owner reads when it is readable, and again while it leaves input unread; one readiness
serves a bounded number; a descriptor the kernel refuses, or a closed set, says no."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest
from helpers import run, until

from tercet.net import readiness
from tercet.net.readiness import ReadySet

pytestmark = pytest.mark.skipif(readiness._EPOLL is None, reason="epoll is Linux's")


class Conn:
    """Stands in for a TLS layer: reads what it is told to, unless ``lazy``."""

    def __init__(self, sock: socket.socket, *, lazy: bool = False) -> None:
        self.sock = sock
        self.lazy = lazy
        self.calls = 0
        self.got = b""
        self.closed = False

    def readable(self) -> None:
        self.calls += 1
        if self.lazy:
            return
        data = self.sock.recv(65536)
        if data:
            self.got += data
        else:
            self.closed = True


def test_owners_read_when_told_and_are_told_again_while_input_waits() -> None:
    async def main() -> None:
        ready = ReadySet()
        a, b = socket.socketpair()
        c, d = socket.socketpair()
        for s in (a, c):
            s.setblocking(False)
        reader, lazy = Conn(a), Conn(c, lazy=True)
        assert ready.add(a.fileno(), reader)
        assert ready.add(c.fileno(), lazy)
        assert len(ready) == 2
        await asyncio.sleep(0.05)
        assert reader.calls == lazy.calls == 0  # nothing to read: nobody told
        b.send(b"hello")
        d.send(b"unread")
        await until(lambda: reader.got == b"hello", "the reader was not told")
        # Level-triggered, as the loop's readers: input left unread keeps its owner told.
        await until(lambda: lazy.calls >= 3, "the lazy owner was told only once")
        calls = reader.calls
        await asyncio.sleep(0.05)
        assert reader.calls == calls  # read everything: not told again
        # The peer's end is news too.
        b.close()
        await until(lambda: reader.closed, "the end was not told")
        # No longer watched: told nothing more.
        ready.remove(a.fileno())
        ready.remove(c.fileno())
        ready.remove(c.fileno())  # twice is harmless
        assert len(ready) == 0
        lazy_calls = lazy.calls
        d.send(b"more")
        await asyncio.sleep(0.05)
        assert lazy.calls == lazy_calls
        ready.close()
        for s in (a, c, d):
            s.close()
    run(main())


def test_one_readiness_serves_a_bounded_number(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readiness, "READY_EVENTS_MAX", 2)

    async def main() -> None:
        ready = ReadySet()
        pairs = [socket.socketpair() for _ in range(5)]
        conns = [Conn(a) for a, _ in pairs]
        for (a, _), conn in zip(pairs, conns, strict=True):
            a.setblocking(False)
            assert ready.add(a.fileno(), conn)
        for _, b in pairs:
            b.send(b"x")
        ready._ready()  # one readiness, before the loop runs: two served
        assert sum(conn.calls for conn in conns) == 2
        # The set is still readable: the loop serves the rest on its next passes.
        await until(lambda: all(conn.got == b"x" for conn in conns), "not all were served")
        assert [conn.calls for conn in conns] == [1] * 5
        ready.close()
        for a, b in pairs:
            a.close()
            b.close()
    run(main())


def test_a_refused_descriptor_or_a_closed_set_leaves_the_watching_to_the_caller() -> None:
    async def main() -> None:
        ready = ReadySet()
        a, b = socket.socketpair()
        fd = os.dup(a.fileno())
        os.close(fd)
        assert not ready.add(fd, Conn(a))  # EBADF
        assert len(ready) == 0
        assert ready.add(a.fileno(), Conn(a))
        ready.remove(a.fileno())
        ready.close()
        assert not ready.add(a.fileno(), Conn(a))
        a.close()
        b.close()
    run(main())
