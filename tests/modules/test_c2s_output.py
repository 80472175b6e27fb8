"""Client output batching: what one loop iteration writes to a client leaves in one
transport write, in order, and the per-client output bound still holds.

Real server (modules, router) and real C2SConnection; only the socket is replaced by a
transport that records what it is given, since the property is the number of writes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from helpers import idle, run, until
from moduletest import ModuleTestServer

from tercet.core.network import DEFAULT_SEND_BUFFER_LIMIT, StreamLimits
from tercet.net.c2s import C2SConnection
from tercet.net.listeners import Listener
from tercet.protocol.xmlstream import StanzaReceived, StreamReader

HEADER = (b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0' "
          b"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")


class RecordingTransport:
    """Keeps every write; its own buffer is always empty (the peer reads at once)."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.protocol: Any = None  # the connection, told when the transport closes

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        # As an asyncio transport does: the protocol hears of it in the next loop iteration
        # (else the server's shutdown waits out its grace period for the connection).
        if not self.closed and self.protocol is not None:
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)
        self.closed = True

    def stanzas(self) -> list[Any]:
        reader = StreamReader(max_stanza_size=64 * 1024 * 1024, content_ns=None)
        reader.feed(HEADER)  # the server's own header went out before the test began
        events = reader.feed(b"".join(self.writes))
        return [e.element for e in events if isinstance(e, StanzaReceived)]


async def bound_client(srv: ModuleTestServer, user: str) -> tuple[C2SConnection,
                                                                   RecordingTransport]:
    """A C2SConnection whose stream is open and whose session is bound as user/r."""
    await srv.create_user(user)
    conn = C2SConnection(srv.server, Listener("c2s", False, StreamLimits()),
                         srv.server.net)  # type: ignore[arg-type]
    transport = RecordingTransport()
    transport.protocol = conn
    conn.connection_made(transport)  # type: ignore[arg-type]
    conn.data_received(HEADER)
    session = conn.session
    session.username, session.authenticated, session.resource = user, True, "r"
    session.bare_jid = f"{user}@localhost"
    session.full_jid = f"{session.bare_jid}/r"
    session.bound = True
    conn.authenticated()
    srv.server.hosts["localhost"].add_session(session)
    await idle()  # what binding started has been written
    transport.writes.clear()
    return conn, transport


async def warm_up(sender: C2SConnection, recipient: RecordingTransport) -> None:
    """One delivery first, so that what modules load on first use (block lists) is
    loaded and the next delivery completes within the loop iteration it starts in."""
    sender.data_received(b"<message to='juliet@localhost/r' id='warm'><body>w</body>"
                         b"</message>")
    await until(lambda: recipient.writes, "the warm-up delivery")
    recipient.writes.clear()


def test_one_write_per_loop_iteration_in_order() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            romeo, _ = await bound_client(srv, "romeo")
            _, juliet = await bound_client(srv, "juliet")
            await warm_up(romeo, juliet)
            romeo.data_received(b"".join(
                f"<message to='juliet@localhost/r' id='m{i}' type='chat'><body>{i}</body>"
                f"</message>".encode() for i in range(3)))
            assert juliet.writes == []  # nothing leaves before the iteration ends
            # Kept: the property is about loop iterations, so step the loop exactly (a
            # yield, not a wait): the flush is scheduled for the next iteration.
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            assert len(juliet.writes) == 1
            assert [s.get("id") for s in juliet.stanzas()] == ["m0", "m1", "m2"]
            assert all(s.get("from") == "romeo@localhost/r" for s in juliet.stanzas())
    run(main())


def test_closing_sends_what_was_queued_first() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            romeo, _ = await bound_client(srv, "romeo")
            juliet_conn, juliet = await bound_client(srv, "juliet")
            await warm_up(romeo, juliet)
            romeo.data_received(b"<message to='juliet@localhost/r' id='last'><body>x</body>"
                                b"</message>")
            assert juliet.writes == []  # queued, not sent yet
            juliet_conn.close_stream(None)
            data = b"".join(juliet.writes)
            assert data.index(b"id=\"last\"") < data.index(b"</stream:stream>")
            assert juliet.closed
    run(main())


def test_output_bound_closes_a_client_that_would_queue_too_much() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            romeo, _ = await bound_client(srv, "romeo")
            _, juliet = await bound_client(srv, "juliet")
            await warm_up(romeo, juliet)
            body = "x" * 200_000
            count = DEFAULT_SEND_BUFFER_LIMIT // len(body) + 2
            stanza = (f"<message to='juliet@localhost/r' type='chat'><body>{body}</body>"
                      "</message>").encode()
            for _ in range(count):  # all within one loop iteration
                romeo.data_received(stanza)
            data = b"".join(juliet.writes)
            assert juliet.closed
            assert b"<policy-violation" in data
            assert len(data) < DEFAULT_SEND_BUFFER_LIMIT  # the excess was never written
    run(main())
