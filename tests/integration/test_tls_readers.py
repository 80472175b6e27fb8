"""TLS connections are told of input by the server's one epoll set (net/readiness.py), not
by event-loop readers of their own: over STARTTLS and direct TLS alike, from the handshake
to the close, which lets go of the descriptor. A server whose set cannot watch (closed
here) serves through the loop's readers as before. Real server, real slixmpp clients."""

from __future__ import annotations

import asyncio

from harness import ServerHarness
from helpers import run, until
from xmpp import Client, login, logout

PASSWORD = "readers pass"


async def _watched(server: ServerHarness) -> int:
    assert server.server is not None
    readers = server.server.net.readers

    async def count() -> int:
        return len(readers)

    return await server.acall(count())


async def _exchange(romeo: Client, juliet: Client) -> None:
    for n in range(3):
        romeo.send_message(mto=juliet.boundjid, mbody=f"hello {n}")
        got = await asyncio.wait_for(juliet.messages.get(), 10)
        assert got["body"] == f"hello {n}"
        juliet.send_message(mto=romeo.boundjid, mbody=f"back {n}")
        got = await asyncio.wait_for(romeo.messages.get(), 10)
        assert got["body"] == f"back {n}"


def test_tls_streams_are_watched_by_the_set_until_they_close(make_server) -> None:  # noqa: ANN001
    server: ServerHarness = make_server()
    server.create_user("romeo", PASSWORD)
    server.create_user("juliet", PASSWORD)

    async def main() -> None:
        romeo = await login("romeo@localhost", PASSWORD, server.port())  # STARTTLS
        juliet = await login("juliet@localhost", PASSWORD, server.port(direct_tls=True),
                             direct_tls=True)
        assert await _watched(server) == 2
        await _exchange(romeo, juliet)
        await logout(romeo, juliet)

        async def none_left() -> bool:
            return await _watched(server) == 0

        await until(none_left, "the closed streams' descriptors to leave the set")
    run(main())


def test_without_the_set_the_loop_watches_and_nothing_changes(make_server) -> None:  # noqa: ANN001
    server: ServerHarness = make_server()
    server.create_user("romeo", PASSWORD)
    server.create_user("juliet", PASSWORD)
    assert server.server is not None
    readers = server.server.net.readers

    async def close_set() -> None:
        readers.close()

    server.call(close_set())

    async def main() -> None:
        romeo = await login("romeo@localhost", PASSWORD, server.port())
        juliet = await login("juliet@localhost", PASSWORD, server.port(direct_tls=True),
                             direct_tls=True)
        assert await _watched(server) == 0
        await _exchange(romeo, juliet)
        await logout(romeo, juliet)
    run(main())
