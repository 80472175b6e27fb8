"""Ad-hoc commands (XEP-0050) and service administration (XEP-0133) end to end: slixmpp's
xep_0050 and xep_0133 plugins over real TLS, as the admin and as a normal user."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from harness import ServerHarness
from helpers import run, until
from slixmpp.exceptions import IqError
from xmpp import Client, available, login, logout

from tercet.modules.admin_adhoc import SPECS

PASSWORD = "adhoc pass"
ADMIN = "http://jabber.org/protocol/admin"
PLUGINS = ("xep_0004", "xep_0030", "xep_0050", "xep_0133")
OK = "Operation finished successfully"


@pytest.fixture
def server(make_server: Any) -> ServerHarness:
    harness: ServerHarness = make_server(host_extra='modules_enabled = ["admin_adhoc"]')
    for name in ("admin", "romeo", "juliet"):
        harness.create_user(name, PASSWORD)
    return harness


async def client(jid: str, port: int) -> Client:
    return await login(jid, PASSWORD, port, plugins=PLUGINS)


async def command_nodes(who: Client) -> set[str]:
    items = await who.plugin["xep_0133"].get_commands()
    return {node for _jid, node, _name in items["disco_items"]["items"]}


async def execute(who: Client, suffix: str, values: dict[str, Any] | None = None) -> Any:
    """Execute a command; submit ``values`` to its form with "complete"."""
    node = f"{ADMIN}#{suffix}" if "#" not in suffix and suffix != "ping" else suffix
    adhoc = who.plugin["xep_0050"]
    reply = await adhoc.send_command("localhost", node)
    command = reply["command"]
    if command["status"] != "executing":
        return command
    form = who.plugin["xep_0004"].make_form(ftype="submit")
    form.add_field(var="FORM_TYPE", ftype="hidden", value=ADMIN)
    for var, value in (values or {}).items():
        form.add_field(var=var, value=value)
    reply = await adhoc.send_command("localhost", node, action="complete", payload=form,
                                     sessionid=command["sessionid"])
    return reply["command"]


def note(command: Any) -> tuple[str, str]:
    notes = command["notes"]
    assert notes, f"no note in {command}"
    return notes[0][0], notes[0][1]


def values(command: Any, var: str) -> Any:
    return command["form"].get_fields()[var].get_value(convert=False)


def test_commands_listed_by_permission_and_refused_to_users(server: ServerHarness) -> None:
    async def main() -> None:
        admin = await client("admin@localhost/console", server.port())
        romeo = await client("romeo@localhost/r", server.port())
        nodes = await command_nodes(admin)
        assert {f"{ADMIN}#{s}" for s in SPECS} | {"ping"} <= nodes
        assert await command_nodes(romeo) == {"ping"}
        assert note(await execute(romeo, "ping")) == ("info", "Pong")
        for suffix in SPECS:
            with pytest.raises(IqError) as refused:
                await execute(romeo, suffix)
            assert refused.value.iq["error"]["condition"] == "forbidden", suffix
        await logout(admin, romeo)
    run(main())


def test_account_commands_as_admin(server: ServerHarness) -> None:
    async def main() -> None:
        port = server.port()
        admin = await client("admin@localhost/console", port)
        done = await execute(admin, "add-user", {"accountjid": "newbie@localhost",
                                                 "password": "one", "password-verify": "one"})
        assert note(done) == ("info", OK) and done["status"] == "completed"
        assert note(await execute(admin, "add-user", {
            "accountjid": "other@localhost", "password": "a", "password-verify": "b"})) == \
            ("error", "Passwords do not match")
        assert note(await execute(admin, "change-user-password", {
            "accountjid": "newbie@localhost", "password": "two"}))[0] == "info"
        newbie = await login("newbie@localhost/x", "two", port)
        await logout(newbie)

        romeo = await client("romeo@localhost/r", port)
        assert note(await execute(admin, "disable-user",
                                  {"accountjids": ["romeo@localhost", "newbie@localhost"]})) \
            == ("info", OK)
        await until(lambda: romeo.stream_errors, "romeo's session to be closed")
        assert romeo.stream_errors == ["not-authorized"]
        with pytest.raises(PermissionError) as refused:
            await login("romeo@localhost/r", PASSWORD, port, mech="PLAIN")
        assert "account-disabled" in str(refused.value)
        assert note(await execute(admin, "reenable-user",
                                  {"accountjids": ["romeo@localhost"]})) == ("info", OK)
        romeo = await client("romeo@localhost/r", port)

        assert note(await execute(admin, "delete-user",
                                  {"accountjids": ["newbie@localhost"]})) == ("info", OK)
        with pytest.raises(PermissionError):
            await login("newbie@localhost/x", "two", port, mech="PLAIN")
        await logout(admin, romeo)
    run(main())


def test_sessions_statistics_roster_announce_motd(server: ServerHarness) -> None:
    async def main() -> None:
        port = server.port()
        admin = await client("admin@localhost/console", port)
        romeo = await client("romeo@localhost/r", port)
        juliet = await client("juliet@localhost/b", port)
        await romeo.plugin["xep_0030"].get_info(jid="localhost")  # a round trip
        romeo.update_roster("juliet@localhost", name="Juliet")
        await until(lambda: "juliet@localhost" in romeo.client_roster, "roster pushed")

        got = await execute(admin, "get-online-users-num")
        assert values(got, "onlineusersnum") == "3"
        got = await execute(admin, "get-registered-users-num")
        assert values(got, "registeredusersnum") == "3"
        got = await execute(admin, "get-online-users-list", {"max_items": "25"})
        assert sorted(values(got, "onlineuserjids")) == [
            "admin@localhost", "juliet@localhost", "romeo@localhost"]
        got = await execute(admin, "get-user-roster", {"accountjid": "romeo@localhost"})
        roster = got["form"].xml.find("{jabber:iq:roster}query")
        assert roster is not None
        assert [i.get("jid") for i in roster] == ["juliet@localhost"]

        await available(juliet)
        assert note(await execute(admin, "announce", {"announcement": "Hello"}))[0] == "info"
        while True:
            msg = await asyncio.wait_for(juliet.messages.get(), 10)
            if msg["type"] == "headline":
                break
        assert msg["body"] == "Hello" and str(msg["from"]) == "localhost"

        assert note(await execute(admin, "set-motd", {"motd": "Be kind"}))[0] == "info"
        form = (await admin.plugin["xep_0050"].send_command(
            "localhost", f"{ADMIN}#edit-motd"))["command"]
        assert values(form, "motd") == ["Be kind"]
        late = await client("juliet@localhost/late", port)
        late.send_presence()
        while True:
            msg = await asyncio.wait_for(late.messages.get(), 10)
            if msg["body"]:
                break
        assert msg["body"] == "Be kind"
        assert note(await execute(admin, "delete-motd")) == ("info", OK)

        gone = romeo.disconnected  # slixmpp replaces the future once it resolves
        assert note(await execute(admin, "end-user-session",
                                  {"accountjids": ["romeo@localhost"]})) == ("info", OK)
        await asyncio.wait_for(gone, 10)
        await logout(admin, juliet, late)
    run(main())


def test_plugin_flow_cancel_and_bad_actions(server: ServerHarness) -> None:
    async def main() -> None:
        admin = await client("admin@localhost/console", server.port())
        adhoc = admin.plugin["xep_0050"]
        # slixmpp's own workflow: the xep_0133 helper starts, the session continues.
        finished: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def on_form(iq: Any, session: dict[str, Any]) -> None:
            if iq["command"]["status"] == "completed":
                finished.set_result(iq["command"])
                return
            form = admin.plugin["xep_0004"].make_form(ftype="submit")
            form.add_field(var="max_items", value="none")
            session["payload"] = form
            session["next"] = on_form
            adhoc.complete_command(session)

        admin.plugin["xep_0133"].get_online_users_list(
            session={"next": on_form, "error": lambda iq, s: finished.set_exception(
                IqError(iq))})
        completed = await asyncio.wait_for(finished, 10)
        assert values(completed, "onlineuserjids") == ["admin@localhost"]

        # cancel (XEP-0050 §3.5), then the session is gone.
        started = (await adhoc.send_command("localhost", f"{ADMIN}#add-user"))["command"]
        sid = started["sessionid"]
        canceled = await adhoc.send_command("localhost", f"{ADMIN}#add-user", action="cancel",
                                            sessionid=sid)
        assert canceled["command"]["status"] == "canceled"
        with pytest.raises(IqError) as gone:
            await adhoc.send_command("localhost", f"{ADMIN}#add-user", action="complete",
                                     sessionid=sid)
        assert gone.value.iq["error"]["condition"] == "bad-request"
        # "prev" on the first stage is a bad action; unknown nodes are item-not-found.
        sid = (await adhoc.send_command("localhost", f"{ADMIN}#announce"))["command"][
            "sessionid"]
        with pytest.raises(IqError) as bad:
            await adhoc.send_command("localhost", f"{ADMIN}#announce", action="prev",
                                     sessionid=sid)
        assert bad.value.iq["error"]["condition"] == "bad-request"
        assert bad.value.iq.xml.find(
            ".//{http://jabber.org/protocol/commands}bad-action") is not None
        with pytest.raises(IqError) as unknown:
            await adhoc.send_command("localhost", f"{ADMIN}#restart")
        assert unknown.value.iq["error"]["condition"] == "item-not-found"
        await logout(admin)
    run(main())
