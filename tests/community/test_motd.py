"""motd: a message from the host at each session's initial presence."""

from __future__ import annotations

from pathlib import Path

from community_helpers import load, messages, server_with
from helpers import run

PRESENCE = "<presence xmlns='jabber:client'/>"


def test_motd_sent_once_per_session_at_initial_presence(community_plugins: dict[str, Path]) -> None:
    extra = 'motd_text = """\n    Welcome to {host}!\n    Be nice.\n"""\nmotd_subject = "Hello"'

    async def main() -> None:
        async with server_with(community_plugins["motd"], extra) as srv:
            await load(srv, "motd")
            romeo = await srv.connect("romeo@localhost/a")
            romeo.nothing()  # binding alone sends nothing
            await romeo.send(PRESENCE)
            [motd] = messages(romeo)
            assert motd.get("from") == "localhost" and motd.get("to") == "romeo@localhost/a"
            assert motd.child_text("body") == "Welcome to localhost!\nBe nice."
            assert motd.child_text("subject") == "Hello"
            await romeo.send("<presence xmlns='jabber:client'><show>away</show></presence>")
            assert messages(romeo) == []  # a presence update is not a login
            other = await srv.connect("romeo@localhost/b")
            await other.send(PRESENCE)
            [again] = messages(other)
            assert again.get("to") == "romeo@localhost/b"
            assert messages(romeo) == []  # the other resource gets its own, not a copy
    run(main())


def test_empty_text_sends_nothing_and_unload_stops_it(community_plugins: dict[str, Path]) -> None:
    async def main() -> None:
        async with server_with(community_plugins["motd"],
                               host_extra='motd_text = "per-host text"') as srv:
            await load(srv, "motd")
            romeo = await srv.connect("romeo@localhost/a")
            await romeo.send(PRESENCE)
            [motd] = messages(romeo)
            assert motd.child_text("body") == "per-host text" and motd.find("subject") is None
            await srv.server.modules.unload("motd", "localhost")
            juliet = await srv.connect("juliet@localhost/a")
            await juliet.send(PRESENCE)
            assert messages(juliet) == []
        async with server_with(community_plugins["motd"]) as srv:  # motd_text unset
            await load(srv, "motd")
            romeo = await srv.connect("romeo@localhost/a")
            await romeo.send(PRESENCE)
            assert messages(romeo) == []
    run(main())
