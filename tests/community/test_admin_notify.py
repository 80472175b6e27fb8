"""admin_notify: admins hear about server start/stop and module failures."""

from __future__ import annotations

from pathlib import Path

import pytest
from community_helpers import load, messages, server_with
from helpers import run, until
from moduletest import TestClient as Client

from tercet import __version__
from tercet.core.config import ConfigError

ADMINS = 'admins = ["admin@localhost"]'
PRESENCE = "<presence xmlns='jabber:client'/>"


async def online_admin(srv: object) -> Client:
    admin: Client = await srv.connect("admin@localhost/desk")  # type: ignore[attr-defined]
    await admin.send(PRESENCE)  # messages to a bare JID go to available resources
    admin.received()
    return admin


def bodies(client: Client) -> list[str]:
    return [m.child_text("body") or "" for m in messages(client)]


def test_module_failure_and_server_start_are_reported(community_plugins: dict[str, Path]) -> None:
    async def main() -> None:
        async with server_with(community_plugins["admin_notify"], ADMINS) as srv:
            await load(srv, "admin_notify")
            admin = await online_admin(srv)
            romeo = await srv.connect("romeo@localhost/a")
            await romeo.send(PRESENCE)
            romeo.received()
            failed = await srv.server.modules.load("no_such_module", "localhost")
            assert failed.status == "failed"
            got: list[str] = []
            await until(lambda: bool(got.extend(bodies(admin)) or got))
            [notice] = got
            assert notice.startswith("[localhost] module no_such_module failed to load")
            assert "not found" not in notice  # the error text stays in the log
            srv.server.events.fire("server-started", srv.server)
            await until(lambda: bool(got.extend(bodies(admin)) or len(got) == 2))
            assert got[1] == f"[localhost] Tercet {__version__} has started"
            # Loads are not reported by default, and only admins are told anything.
            await srv.server.modules.unload("ping", "localhost")
            await srv.server.modules.load("ping", "localhost")
            await srv.connect("juliet@localhost/a")
            assert messages(admin) == [] and messages(romeo) == []
    run(main())


def test_shutdown_notice_reaches_online_admins_first(community_plugins: dict[str, Path]) -> None:
    async def main() -> None:
        srv = server_with(community_plugins["admin_notify"], ADMINS)
        await srv.__aenter__()
        try:
            await load(srv, "admin_notify")
            admin = await online_admin(srv)
        finally:
            await srv.server.stop()
            srv._tmp.cleanup()
        assert "[localhost] Tercet is shutting down" in bodies(admin)
        assert admin.conn.closed_with.condition == "system-shutdown"  # type: ignore[union-attr]
    run(main())


def test_chosen_events_only(community_plugins: dict[str, Path]) -> None:
    options = ADMINS + '\nadmin_notify_events = ["module-loaded", "module-unloaded"]'

    async def main() -> None:
        async with server_with(community_plugins["admin_notify"], options) as srv:
            await load(srv, "admin_notify")
            admin = await online_admin(srv)
            await srv.server.modules.load("no_such_module", "localhost")
            await srv.server.modules.unload("ping", "localhost")
            await srv.server.modules.load("ping", "localhost")
            got: list[str] = []
            await until(lambda: bool(got.extend(bodies(admin)) or len(got) >= 2))
            assert got == ["[localhost] module ping unloaded on localhost",
                           "[localhost] module ping loaded on localhost"]
    run(main())


def test_unknown_event_name_is_a_config_error(community_plugins: dict[str, Path]) -> None:
    # The plugin declares the option (OPTIONS), so the file is checked when it is loaded.
    with pytest.raises(ConfigError, match='admin_notify_events: expected one of "started"'):
        server_with(community_plugins["admin_notify"],
                    'admin_notify_events = ["started", "rebooted"]')


def test_offline_admin_gets_the_notice_at_login(community_plugins: dict[str, Path]) -> None:
    async def main() -> None:
        async with server_with(community_plugins["admin_notify"], ADMINS) as srv:
            await srv.create_user("admin")
            await load(srv, "admin_notify")
            await srv.server.modules.load("no_such_module", "localhost")
            admin = await srv.connect("admin@localhost/desk")
            await admin.send(PRESENCE)  # the offline module delivers stored messages here
            got: list[str] = []
            await until(lambda: bool(got.extend(bodies(admin)) or got))
            assert got == [("[localhost] module no_such_module failed to load on localhost "
                            "(see the server log or `tercet module list`)")]
    run(main())
