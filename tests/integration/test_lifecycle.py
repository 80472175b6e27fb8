"""Roles and the account lifecycle against a real server, with slixmpp over real TLS and
the `tercet user` CLI: a role set by the CLI applies from the account's next login;
deletion with a grace period locks the account, keeps its data, can be undone, and is
purged once the period ends (the server's clock moved forward); a disabled account's
reason reaches the client; logins are recorded and `tercet user list` filters on them."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from click.testing import CliRunner, Result
from harness import ServerHarness
from helpers import run, until
from slixmpp import JID
from slixmpp.exceptions import PresenceError
from xmpp import TIMEOUT, login, logout

from tercet.auth.internal import LOGIN_FLUSH_DELAY
from tercet.cli.main import cli
from tercet.core import accounts

PASSWORD = "s3cret pass"
DAY = 86400.0
MUC = "conference.localhost"
ROLES = ('custom_roles = [{ name = "helpdesk", inherits = "tercet:member", '
         'allow = ["muc:create-room"] }]')
HOST = f"""user_deletion_grace_period = "7d"
modules_enabled = ["tombstones"]

[components."{MUC}"]
module = "muc"
restrict_room_creation = "admin"
"""


def tercet(server: ServerHarness, *args: str) -> Result:
    return CliRunner().invoke(cli, ["-c", str(server.config_path), *args])


async def cli_ok(server: ServerHarness, *args: str) -> str:
    result = await asyncio.to_thread(tercet, server, *args)
    assert result.exit_code == 0, result.output
    return result.output


async def refused(jid: str, port: int) -> str:
    """Log in, expecting failure: the SASL <failure/> as XML."""
    with pytest.raises(PermissionError) as info:
        client = await login(jid, PASSWORD, port, mech="PLAIN")
        await logout(client)
    return str(info.value)


async def may_create_room(jid: str, port: int, room: str) -> bool:
    client = await login(jid, PASSWORD, port, plugins=("xep_0030", "xep_0045"))
    try:
        await client.plugin["xep_0045"].join_muc_wait(JID(f"{room}@{MUC}"), "me",
                                                      maxstanzas=0, timeout=TIMEOUT)
    except PresenceError as err:
        assert err.condition == "not-allowed"
        return False
    finally:
        await logout(client)
    return True


def account(server: ServerHarness, username: str) -> Any:
    storage = server.server.storage  # type: ignore[union-attr]
    return server.call(storage.open("localhost", "accounts", "keyval").get(username))


def vcard(server: ServerHarness, username: str) -> Any:
    storage = server.server.storage  # type: ignore[union-attr]
    return server.call(storage.open("localhost", "vcard", "keyval").get(username))


@pytest.fixture
def srv(make_server: Any) -> ServerHarness:
    server: ServerHarness = make_server(extra=ROLES, host_extra=HOST)
    for user in ("romeo", "juliet"):
        server.create_user(user, PASSWORD)
    return server


def test_role_set_by_the_cli_applies_at_next_login(srv: ServerHarness) -> None:
    async def main() -> None:
        port = srv.port()
        assert not await may_create_room("romeo@localhost/a", port, "one")
        out = await cli_ok(srv, "user", "role", "set", "romeo@localhost", "helpdesk")
        assert "next login" in out
        assert (await cli_ok(srv, "user", "role", "show", "romeo@localhost")).strip() == \
            "helpdesk"
        assert await may_create_room("romeo@localhost/b", port, "two")
        assert not await may_create_room("juliet@localhost/a", port, "three")
        listed = json.loads(await cli_ok(srv, "user", "list", "--json", "--role",
                                         "helpdesk"))
        assert [row["jid"] for row in listed] == ["romeo@localhost"]
        admins = json.loads(await cli_ok(srv, "user", "list", "--json", "--role",
                                         "tercet:operator"))
        assert admins == []  # admin@localhost (the global admins) has no account here
        bad = await asyncio.to_thread(tercet, srv, "user", "role", "set",
                                      "romeo@localhost", "wizard")
        assert bad.exit_code != 0 and "unknown role" in bad.output
    run(main())


def test_grace_period_deletion_restore_and_purge(srv: ServerHarness) -> None:
    srv.call(srv.server.storage.open(  # type: ignore[union-attr]
        "localhost", "vcard", "keyval").set("romeo", {"fn": "Romeo"}))

    async def main() -> None:
        port = srv.port()
        client = await login("romeo@localhost/a", PASSWORD, port)
        out = await cli_ok(srv, "user", "del", "--yes", "romeo@localhost")
        assert "purged after 1w" in out
        await until(lambda: client.stream_errors, "the session to be closed")
        assert client.stream_errors == ["not-authorized"]
        failure = await refused("romeo@localhost", port)
        assert "account-disabled" in failure and "deleted" in failure
        assert account(srv, "romeo") is not None and vcard(srv, "romeo") == {"fn": "Romeo"}
        pending = json.loads(await cli_ok(srv, "user", "list", "--json", "--deleted"))
        assert [row["jid"] for row in pending] == ["romeo@localhost"]

        await cli_ok(srv, "user", "restore", "romeo@localhost")
        await logout(await login("romeo@localhost/b", PASSWORD, port))
        again = await asyncio.to_thread(tercet, srv, "user", "restore", "romeo@localhost")
        assert again.exit_code != 0 and "not deleted" in again.output

        await cli_ok(srv, "user", "del", "--yes", "romeo@localhost")
        server = srv.server
        assert server is not None
        start = time.time()
        server.clock = lambda: start + 6 * DAY
        assert await srv.acall(accounts.purge_expired(server, "localhost")) == 0
        server.clock = lambda: start + 8 * DAY
        assert await srv.acall(accounts.purge_expired(server, "localhost")) == 1
        assert account(srv, "romeo") is None and vcard(srv, "romeo") is None
        tombstones = server.storage.open("localhost", "tombstones", "map")
        assert await srv.acall(tombstones.get(None, "romeo")) == start + 8 * DAY
        assert "not-authorized" in await refused("romeo@localhost", port)
        gone = await asyncio.to_thread(tercet, srv, "user", "restore", "romeo@localhost")
        assert gone.exit_code != 0 and "does not exist" in gone.output
        # juliet, deleted --now, goes at once
        await cli_ok(srv, "user", "del", "--yes", "--now", "juliet@localhost")
        assert account(srv, "juliet") is None
    run(main())


def test_grace_period_deletion_with_the_server_stopped(make_server: Any) -> None:
    first: ServerHarness = make_server(host_extra=HOST, subdir="stopped")
    first.create_user("romeo", PASSWORD)
    first.stop()
    assert tercet(first, "user", "del", "--yes", "romeo@localhost").exit_code == 0
    second: ServerHarness = make_server(host_extra=HOST, subdir="stopped")

    async def main() -> None:
        assert "account-disabled" in await refused("romeo@localhost", second.port())
        await cli_ok(second, "user", "restore", "romeo@localhost")
        await logout(await login("romeo@localhost/a", PASSWORD, second.port()))
    run(main())


def test_disabled_with_a_reason_and_last_login(srv: ServerHarness) -> None:
    async def main() -> None:
        port = srv.port()
        before = time.time()
        await logout(await login("romeo@localhost/a", PASSWORD, port))
        # Last logins reach storage in batches, within LOGIN_FLUSH_DELAY of the login.
        for _ in range(int(10 * LOGIN_FLUSH_DELAY / 0.05)):
            rows = json.loads(await cli_ok(srv, "user", "list", "--json"))
            romeo = next(r for r in rows if r["jid"] == "romeo@localhost")
            if romeo["last_login"] is not None:
                break
            await asyncio.sleep(0.05)
        assert romeo["last_login"] >= before and romeo["last_address"] == "127.0.0.1"
        assert romeo["role"] == "tercet:registered" and romeo["stored_role"] is None
        inactive = json.loads(await cli_ok(srv, "user", "list", "--json",
                                           "--inactive-since", "1d"))
        assert [r["jid"] for r in inactive] == ["juliet@localhost"]  # never logged in
        since_date = json.loads(await cli_ok(srv, "user", "list", "--json",
                                             "--inactive-since", "2000-01-01"))
        assert [r["jid"] for r in since_date] == ["juliet@localhost"]

        client = await login("romeo@localhost/b", PASSWORD, port)
        await cli_ok(srv, "user", "disable", "romeo@localhost", "--reason",
                     "Spam reports: write to abuse@localhost")
        await until(lambda: client.stream_errors, "the session to be closed")
        failure = await refused("romeo@localhost", port)
        assert "account-disabled" in failure
        assert "Spam reports: write to abuse@localhost" in failure
        with pytest.raises(PermissionError) as scram:
            await login("romeo@localhost", PASSWORD, port, mech="SCRAM-SHA-256")
        assert "Spam reports" in str(scram.value)
        assert "Spam reports" not in await refused_wrong_password("romeo@localhost", port)
        disabled = json.loads(await cli_ok(srv, "user", "list", "--json", "--disabled"))
        assert [(r["jid"], r["disabled_reason"]) for r in disabled] == [
            ("romeo@localhost", "Spam reports: write to abuse@localhost")]
        await cli_ok(srv, "user", "enable", "romeo@localhost")
        assert json.loads(await cli_ok(srv, "user", "list", "--json", "--disabled")) == []
        await logout(await login("romeo@localhost/c", PASSWORD, port))
    run(main())


async def refused_wrong_password(jid: str, port: int) -> str:
    """The reason is for the account's owner: a wrong password learns nothing."""
    with pytest.raises(PermissionError) as info:
        await login(jid, "wrong " + PASSWORD, port, mech="PLAIN")
    assert "not-authorized" in str(info.value)
    return str(info.value)
