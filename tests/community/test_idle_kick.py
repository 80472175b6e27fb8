"""idle_kick: sessions that sent no stanza for idle_kick_after seconds are closed."""

from __future__ import annotations

from pathlib import Path

from community_helpers import FakeClock, load, server_with
from helpers import run, until

OPTIONS = "idle_kick_after = 60\nidle_kick_interval = 0.01"
PING = ("<iq xmlns='jabber:client' type='get' id='p' to='localhost'>"
        "<ping xmlns='urn:xmpp:ping'/></iq>")


def closed_with(client: object) -> str | None:
    error = client.conn.closed_with  # type: ignore[attr-defined]
    return None if error is False else getattr(error, "condition", "closed")


def test_idle_sessions_are_closed_active_ones_kept(community_plugins: dict[str, Path]) -> None:
    async def main() -> None:
        async with server_with(community_plugins["idle_kick"], OPTIONS) as srv:
            clock = FakeClock()
            srv.server.clock = clock
            early = await srv.connect("early@localhost/a")  # bound before the module loads
            await load(srv, "idle_kick")
            romeo = await srv.connect("romeo@localhost/a")
            juliet = await srv.connect("juliet@localhost/a")
            await until(lambda: "idle_kick" in early.session.data)  # first sweep ran
            clock.advance(40)
            await romeo.send(PING)  # romeo is active at t=40
            clock.advance(25)  # t=65: juliet and early idle for 65 s, romeo for 25 s
            await until(lambda: closed_with(juliet) is not None)
            await until(lambda: closed_with(early) is not None)
            assert closed_with(juliet) == "connection-timeout"
            assert closed_with(early) == "connection-timeout"
            assert closed_with(romeo) is None
            assert set(srv.server.hosts["localhost"].sessions) == {"romeo"}
            clock.advance(40)  # t=105: romeo idle for 65 s
            await until(lambda: closed_with(romeo) is not None)
            assert srv.server.hosts["localhost"].sessions == {}
    run(main())


def test_unload_stops_the_timer(community_plugins: dict[str, Path]) -> None:
    async def main() -> None:
        async with server_with(community_plugins["idle_kick"], OPTIONS) as srv:
            clock = FakeClock()
            srv.server.clock = clock
            entry = await load(srv, "idle_kick")
            romeo = await srv.connect("romeo@localhost/a")
            await srv.server.modules.unload("idle_kick", "localhost")
            assert entry.api is not None and not entry.api._undo  # timer and hooks undone
            clock.advance(3600)
            await srv.connect("juliet@localhost/a")  # lets the loop run a while
            await romeo.send(PING)
            assert closed_with(romeo) is None
    run(main())
