"""Ad-hoc commands (XEP-0050) and service administration (XEP-0133), XML in and XML out."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from moduletest import ModuleTestServer, TestClient, condition

from tercet.modules.adhoc import NS_COMMANDS
from tercet.protocol.stanza import Element

ADMIN = "http://jabber.org/protocol/admin"
CONFIG = 'admins = ["admin@localhost"]'
HOST = 'modules_enabled = ["admin_adhoc", "roster"]'
ITEMS = "http://jabber.org/protocol/disco#items"
INFO = "http://jabber.org/protocol/disco#info"
DATA = "jabber:x:data"


def run(body: Callable[[ModuleTestServer], Awaitable[None]]) -> None:
    async def main() -> None:
        async with ModuleTestServer(CONFIG, HOST) as srv:
            await body(srv)
    asyncio.run(asyncio.wait_for(main(), 30))


def fields_xml(values: dict[str, list[str] | str]) -> str:
    out = [f"<field var='FORM_TYPE'><value>{ADMIN}</value></field>"]
    for var, value in values.items():
        vals = value if isinstance(value, list) else [value]
        out.append(f"<field var='{var}'>" + "".join(f"<value>{v}</value>" for v in vals)
                   + "</field>")
    return f"<x xmlns='{DATA}' type='submit'>{''.join(out)}</x>"


async def command(client: TestClient, node: str, action: str | None = None,
                  sid: str | None = None, form: str = "") -> Element:
    attrs = f"node='{node}'"
    if action is not None:
        attrs += f" action='{action}'"
    if sid is not None:
        attrs += f" sessionid='{sid}'"
    await client.send(f"<iq type='set' to='localhost' id='c'>"
                      f"<command xmlns='{NS_COMMANDS}' {attrs}>{form}</command></iq>")
    replies = [s for s in client.conn.stanzas if s.name == "iq" and s.get("id") == "c"]
    assert len(replies) == 1, client.conn.stanzas
    client.conn.stanzas.remove(replies[0])
    return replies[0]


def cmd(reply: Element) -> Element:
    found = reply.find("command", NS_COMMANDS)
    assert found is not None, f"no command in {reply}"
    return found


def notes(reply: Element) -> list[tuple[str | None, str]]:
    return [(n.get("type"), n.text) for n in cmd(reply).find_all("note", NS_COMMANDS)]


def field_values(reply: Element, var: str) -> list[str]:
    form = cmd(reply).find("x", DATA)
    assert form is not None
    for f in form.find_all("field", DATA):
        if f.get("var") == var:
            return [v.text for v in f.find_all("value", DATA)]
    raise AssertionError(f"no field {var} in {form}")


async def run_form(client: TestClient, suffix: str,
                   values: dict[str, list[str] | str]) -> Element:
    """Execute, check the form came, submit it with complete."""
    first = cmd(await command(client, f"{ADMIN}#{suffix}"))
    assert first.get("status") == "executing"
    assert first.find("x", DATA) is not None
    return await command(client, f"{ADMIN}#{suffix}", "complete", first.get("sessionid"),
                         fields_xml(values))


async def list_nodes(client: TestClient) -> set[str]:
    await client.send(f"<iq type='get' to='localhost' id='l'>"
                      f"<query xmlns='{ITEMS}' node='{NS_COMMANDS}'/></iq>")
    reply = client.expect("iq", id="l", type="result")
    query = reply.find("query", ITEMS)
    assert query is not None
    return {i.get("node") or "" for i in query.find_all("item", ITEMS)}


def test_list_is_filtered_by_permission() -> None:
    async def body(srv: ModuleTestServer) -> None:
        admin = await srv.connect("admin@localhost/a")
        user = await srv.connect("user@localhost/u")
        admin_nodes = await list_nodes(admin)
        assert {f"{ADMIN}#add-user", f"{ADMIN}#announce", "ping"} <= admin_nodes
        assert await list_nodes(user) == {"ping"}
        # disco#info on a command node: admins see it, users are refused.
        for client, ok in ((admin, True), (user, False)):
            await client.send(f"<iq type='get' to='localhost' id='i'><query xmlns='{INFO}' "
                              f"node='{ADMIN}#add-user'/></iq>")
            reply = client.expect("iq", id="i")
            assert (reply.get("type") == "result") is ok
            if not ok:
                assert condition(reply) == "forbidden"
        assert NS_COMMANDS in srv.server.hosts["localhost"].features
    run(body)


def test_every_admin_command_is_forbidden_to_users() -> None:
    async def body(srv: ModuleTestServer) -> None:
        user = await srv.connect("user@localhost/u")
        from tercet.modules.admin_adhoc import SPECS
        for suffix in SPECS:
            reply = await command(user, f"{ADMIN}#{suffix}")
            assert reply.get("type") == "error" and condition(reply) == "forbidden", suffix
        ping = cmd(await command(user, "ping"))
        assert ping.get("status") == "completed"
    run(body)


def test_account_commands() -> None:
    async def body(srv: ModuleTestServer) -> None:
        admin = await srv.connect("admin@localhost/a")
        auth = srv.server.hosts["localhost"].auth
        assert auth is not None
        ok = [("info", "Operation finished successfully")]
        reply = await run_form(admin, "add-user", {"accountjid": "new@localhost",
                                                   "password": "pw1", "password-verify": "pw1"})
        assert notes(reply) == ok and cmd(reply).get("status") == "completed"
        assert await auth.test_password("new", "pw1")
        for values, text in (
                ({"accountjid": "x@localhost", "password": "a", "password-verify": "b"},
                 "Passwords do not match"),
                ({"accountjid": "x@elsewhere", "password": "a", "password-verify": "a"},
                 "Cannot create remote user"),
                ({"accountjid": "x@y@z", "password": "a", "password-verify": "a"},
                 "Please provide a valid JID"),
                ({"accountjid": "new@localhost", "password": "a", "password-verify": "a"},
                 "User already exists")):
            reply = await run_form(admin, "add-user", values)
            assert notes(reply) == [("error", text)]
        reply = await run_form(admin, "change-user-password",
                               {"accountjid": "new@localhost", "password": "pw2"})
        assert notes(reply) == ok and await auth.test_password("new", "pw2")

        victim = await srv.connect("new@localhost/r", create=False)
        other = await srv.connect("other@localhost/r")
        reply = await run_form(admin, "disable-user",
                               {"accountjids": ["new@localhost", "other@localhost"]})
        assert notes(reply) == ok
        assert await auth.is_disabled("new") and await auth.is_disabled("other")
        assert victim.session.closed and other.session.closed
        reply = await run_form(admin, "reenable-user", {"accountjids": ["new@localhost"]})
        assert notes(reply) == ok and not await auth.is_disabled("new")
        reply = await run_form(admin, "reenable-user", {"accountjids": ["ghost@localhost"]})
        assert notes(reply)[0][0] == "error" and "ghost@localhost" in notes(reply)[0][1]

        reply = await run_form(admin, "delete-user",
                               {"accountjids": ["new@localhost", "other@localhost"]})
        assert notes(reply) == ok
        assert not await auth.user_exists("new") and not await auth.user_exists("other")
    run(body)


def test_sessions_and_statistics() -> None:
    async def body(srv: ModuleTestServer) -> None:
        admin = await srv.connect("admin@localhost/a")
        phone = await srv.connect("romeo@localhost/phone")
        laptop = await srv.connect("romeo@localhost/laptop")
        reply = await command(admin, f"{ADMIN}#get-online-users-num")
        assert field_values(reply, "onlineusersnum") == ["2"]
        reply = await command(admin, f"{ADMIN}#get-registered-users-num")
        assert field_values(reply, "registeredusersnum") == ["2"]
        reply = await run_form(admin, "get-online-users-list", {"max_items": "25"})
        assert field_values(reply, "onlineuserjids") == ["admin@localhost", "romeo@localhost"]
        reply = await run_form(admin, "end-user-session",
                               {"accountjids": ["romeo@localhost/phone"]})
        assert phone.session.closed and not laptop.session.closed
        reply = await run_form(admin, "end-user-session", {"accountjids": ["romeo@localhost"]})
        assert laptop.session.closed
    run(body)


def test_roster_announce_and_motd() -> None:
    async def body(srv: ModuleTestServer) -> None:
        admin = await srv.connect("admin@localhost/a")
        romeo = await srv.connect("romeo@localhost/r")
        await romeo.send("<iq type='set' id='r'><query xmlns='jabber:iq:roster'>"
                         "<item jid='juliet@localhost' name='J'><group>Caps</group></item>"
                         "</query></iq>")
        romeo.received()
        reply = await run_form(admin, "get-user-roster", {"accountjid": "romeo@localhost"})
        form = cmd(reply).find("x", DATA)
        assert form is not None
        query = form.find("query", "jabber:iq:roster")
        assert query is not None
        item = query.find("item", "jabber:iq:roster")
        assert item is not None and item.get("jid") == "juliet@localhost"
        assert item.child_text("group") == "Caps"

        reply = await run_form(admin, "announce", {"announcement": ["Hello", "all"]})
        got = romeo.expect("message", type="headline")
        assert got.child_text("body") == "Hello\nall"
        admin.received()

        await run_form(admin, "set-motd", {"motd": ["Be nice"]})
        reply = await command(admin, f"{ADMIN}#edit-motd")
        assert field_values(reply, "motd") == ["Be nice"]
        juliet = await srv.connect("juliet@localhost/b")
        await juliet.send("<presence/>")
        motd = [m for m in juliet.received() if m.name == "message"]
        assert [m.child_text("body") for m in motd] == ["Be nice"]
        reply = await command(admin, f"{ADMIN}#delete-motd")
        assert notes(reply) == [("info", "Operation finished successfully")]
        nurse = await srv.connect("nurse@localhost/b")
        await nurse.send("<presence/>")
        assert not [m for m in nurse.received() if m.name == "message"]
    run(body)


async def two_stage(request: object) -> object:
    """A command of three stages for the flow tests (registered by the test)."""
    from tercet.modules._adhoc import CommandRequest, CommandResult
    from tercet.protocol.dataforms import Field, build_form
    assert isinstance(request, CommandRequest)
    stage = request.stage
    if stage > 0 and request.form is not None:
        request.data.setdefault("answers", []).append(request.form.get_text("a"))
    if stage < 2:
        return CommandResult.ask(build_form([Field("a", label=f"stage {stage}")]),
                                 actions=("next", "prev", "complete") if stage else ("next",))
    return CommandResult.done(",".join(request.data["answers"]))


def test_multi_stage_prev_cancel_and_expiry() -> None:
    async def body(srv: ModuleTestServer) -> None:
        from tercet.modules._adhoc import Command, register_command
        api = srv.server.modules.loaded[("adhoc", "localhost")].api
        assert api is not None
        register_command(api, Command("flow", "Flow", two_stage, ":ping"))  # type: ignore[arg-type]
        now = [1_700_000_000.0]
        srv.server.clock = lambda: now[0]
        user = await srv.connect("user@localhost/u")
        other = await srv.connect("other@localhost/u")
        first = cmd(await command(user, "flow"))
        sid = first.get("sessionid")
        actions = first.find("actions", NS_COMMANDS)
        assert actions is not None and actions.get("execute") == "next"
        # "prev" is not allowed at the first stage; "complete" is not offered yet.
        for bad in ("prev", "complete"):
            reply = await command(user, "flow", bad, sid)
            assert condition(reply) == "bad-request"
            assert reply.find("error") is not None
        answer = "<x xmlns='jabber:x:data' type='submit'><field var='a'><value>{}</value>" \
                 "</field></x>"
        second = cmd(await command(user, "flow", "next", sid, answer.format("one")))
        assert second.get("status") == "executing"
        # Another requester cannot use the session.
        assert condition(await command(other, "flow", "next", sid)) == "bad-request"
        # prev: back to stage 0 with its data; then forward again with another answer.
        back = cmd(await command(user, "flow", "prev", sid))
        assert back.get("status") == "executing"
        assert cmd(await command(user, "flow", "execute", sid, answer.format("uno")))
        done = cmd(await command(user, "flow", "complete", sid, answer.format("two")))
        assert done.get("status") == "completed"
        assert [n.text for n in done.find_all("note", NS_COMMANDS)] == ["uno,two"]
        assert condition(await command(user, "flow", "next", sid)) == "bad-request"

        # cancel ends the session.
        sid = cmd(await command(user, "flow")).get("sessionid")
        assert cmd(await command(user, "flow", "cancel", sid)).get("status") == "canceled"
        assert condition(await command(user, "flow", "next", sid)) == "bad-request"

        # Expiry on the server's clock.
        sid = cmd(await command(user, "flow")).get("sessionid")
        now[0] += 601
        reply = await command(user, "flow", "next", sid, answer.format("late"))
        assert condition(reply) == "not-allowed"
        error = reply.find("error")
        assert error is not None and error.find("session-expired", NS_COMMANDS) is not None

        # Unknown node, malformed action.
        assert condition(await command(user, "nope")) == "item-not-found"
        reply = await command(user, "flow", "jump")
        assert condition(reply) == "bad-request"
    run(body)


def test_sessions_are_bounded_per_requester() -> None:
    async def body(srv: ModuleTestServer) -> None:
        admin = await srv.connect("admin@localhost/a")
        sids = [cmd(await command(admin, f"{ADMIN}#announce")).get("sessionid")
                for _ in range(6)]
        # The default bound is 5: the first session is gone, the last still works.
        reply = await command(admin, f"{ADMIN}#announce", "complete", sids[0],
                              fields_xml({"announcement": "x"}))
        assert condition(reply) == "bad-request"
        reply = await command(admin, f"{ADMIN}#announce", "complete", sids[-1],
                              fields_xml({"announcement": "x"}))
        assert cmd(reply).get("status") == "completed"
    run(body)
