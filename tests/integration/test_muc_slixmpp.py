"""Multi-User Chat end to end: slixmpp's xep_0045 over real TLS, a persistent room that
survives a restart (SQLite), live rooms kept across ``module reload``, and the
``tercet muc`` admin commands."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from click.testing import CliRunner, Result
from harness import ServerHarness
from helpers import run
from slixmpp import JID
from slixmpp.exceptions import IqError, PresenceError
from xmpp import TIMEOUT, Client, login, logout

from tercet.cli.adminclient import AdminClient
from tercet.cli.main import cli

PASSWORD = "s3cret pass"
PLUGINS = ("xep_0030", "xep_0004", "xep_0045")
MUC = "conference.localhost"
ROOM = JID(f"garden@{MUC}")
COMPONENT = f'\n[components."{MUC}"]\nmodule = "muc"\n'


@pytest.fixture
def muc(make_server: Any) -> ServerHarness:
    server: ServerHarness = make_server(host_extra=COMPONENT)
    for user in ("romeo", "juliet", "tybalt"):
        server.create_user(user, PASSWORD)
    return server


async def configure(client: Client, **fields: Any) -> None:
    form = client.plugin["xep_0004"].make_form(ftype="submit")
    form.add_field(var="FORM_TYPE", ftype="hidden",
                   value="http://jabber.org/protocol/muc#roomconfig")
    for name, value in fields.items():
        form.add_field(var=f"muc#roomconfig_{name}", value=value)
    await client.plugin["xep_0045"].set_room_config(ROOM, form, timeout=TIMEOUT)


async def said(client: Client, body: str) -> Any:
    while True:
        got = await asyncio.wait_for(client.messages.get(), TIMEOUT)
        if got["type"] == "groupchat" and got["body"] == body:
            return got


_ROOM_PRESENCES: dict[int, asyncio.Queue[Any]] = {}


def watch(*clients: Client) -> None:
    """Queue the room presences each client gets (slixmpp's groupchat_presence)."""
    for client in clients:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        _ROOM_PRESENCES[id(client)] = queue
        client.add_event_handler("groupchat_presence", queue.put_nowait)


async def presence_of(client: Client, nick: str, ptype: str | None = None) -> Any:
    queue = _ROOM_PRESENCES[id(client)]
    while True:
        got = await asyncio.wait_for(queue.get(), TIMEOUT)
        if got["from"] == JID(f"{ROOM}/{nick}") and (
                ptype is None or got["type"] == ptype):
            return got


def test_room_use_cases(muc: ServerHarness) -> None:
    """Create, configure, talk, history, kick, ban (§7, §8, §9, §10 through slixmpp)."""
    async def main() -> None:
        romeo = await login("romeo@localhost/a", PASSWORD, muc.port(), plugins=PLUGINS)
        juliet = await login("juliet@localhost/b", PASSWORD, muc.port(), plugins=PLUGINS)
        tybalt = await login("tybalt@localhost/c", PASSWORD, muc.port(), plugins=PLUGINS)
        watch(juliet, tybalt)
        plugin = romeo.plugin["xep_0045"]
        own_presence, _, _, _ = await plugin.join_muc_wait(ROOM, "Romeo", maxstanzas=0,
                                                            timeout=TIMEOUT)
        own = own_presence["muc"]
        assert own["affiliation"] == "owner" and own["role"] == "moderator"
        assert {201, 110} <= set(own["status_codes"])
        await configure(romeo, roomname="The Garden", persistentroom=True)
        romeo.send_message(mto=ROOM, mbody="before juliet", mtype="groupchat")
        await said(romeo, "before juliet")

        _, _, _, history = await juliet.plugin["xep_0045"].join_muc_wait(
            ROOM, "Juliet", timeout=TIMEOUT)
        assert [m["body"] for m in history] == ["before juliet"]
        assert history[0]["delay"]["from"] == ROOM
        juliet.send_message(mto=ROOM, mbody="hello", mtype="groupchat")
        assert (await said(romeo, "hello"))["from"] == JID(f"{ROOM}/Juliet")

        info = await romeo.plugin["xep_0030"].get_info(jid=ROOM, timeout=TIMEOUT)
        features = info["disco_info"]["features"]
        assert "muc_persistent" in features and "muc_semianonymous" in features

        await tybalt.plugin["xep_0045"].join_muc_wait(ROOM, "Tybalt", timeout=TIMEOUT)
        await plugin.set_role(ROOM, "Tybalt", "none", reason="behave", timeout=TIMEOUT)
        kicked = await presence_of(tybalt, "Tybalt", "unavailable")
        assert 307 in kicked["muc"]["status_codes"]
        await plugin.set_affiliation(ROOM, "outcast", jid=tybalt.boundjid.bare,
                                     reason="banned", timeout=TIMEOUT)
        assert await plugin.get_affiliation_list(ROOM, "outcast", timeout=TIMEOUT) \
            == [tybalt.boundjid.bare]
        with pytest.raises(PresenceError) as err:
            await tybalt.plugin["xep_0045"].join_muc_wait(ROOM, "Tybalt", timeout=TIMEOUT)
        assert err.value.condition == "forbidden"
        with pytest.raises(IqError) as iq_err:
            await juliet.plugin["xep_0045"].set_role(ROOM, "Romeo", "none",
                                                     timeout=TIMEOUT)
        assert iq_err.value.condition == "not-allowed"

        await plugin.destroy(ROOM, reason="closing", timeout=TIMEOUT)
        gone = await presence_of(juliet, "Juliet", "unavailable")
        assert gone.xml.find("{http://jabber.org/protocol/muc#user}x/"
                             "{http://jabber.org/protocol/muc#user}destroy") is not None
        await logout(romeo, juliet, tybalt)
    run(main(), 90)


def test_persistent_room_survives_a_restart(make_server: Any) -> None:
    first: ServerHarness = make_server(host_extra=COMPONENT, subdir="persist")
    first.create_user("romeo", PASSWORD)

    async def create() -> None:
        romeo = await login("romeo@localhost/a", PASSWORD, first.port(), plugins=PLUGINS)
        plugin = romeo.plugin["xep_0045"]
        await plugin.join_muc_wait(ROOM, "Romeo", maxstanzas=0, timeout=TIMEOUT)
        await configure(romeo, persistentroom=True, membersonly=True, roomname="Kept")
        await plugin.set_affiliation(ROOM, "member", jid="juliet@localhost",
                                     timeout=TIMEOUT)
        await plugin.set_affiliation(ROOM, "admin", jid="nurse@localhost",
                                     timeout=TIMEOUT)
        romeo.plugin["xep_0045"].set_subject(ROOM, "Kept subject")
        # the server handles a stream's stanzas in order: after this answer the subject
        # is set
        await romeo.plugin["xep_0030"].get_info(jid=ROOM, timeout=TIMEOUT)
        await logout(romeo)
    run(create(), 60)
    first.stop()

    second: ServerHarness = make_server(host_extra=COMPONENT, subdir="persist")

    async def check() -> None:
        romeo = await login("romeo@localhost/a", PASSWORD, second.port(), plugins=PLUGINS)
        plugin = romeo.plugin["xep_0045"]
        assert await plugin.get_affiliation_list(ROOM, "member", timeout=TIMEOUT) \
            == [JID("juliet@localhost")]
        assert await plugin.get_affiliation_list(ROOM, "admin", timeout=TIMEOUT) \
            == [JID("nurse@localhost")]
        own, subject, _, _ = await plugin.join_muc_wait(ROOM, "Romeo", maxstanzas=0,
                                                        timeout=TIMEOUT)
        assert 201 not in own["muc"]["status_codes"]
        assert subject["subject"] == "Kept subject"
        info = await romeo.plugin["xep_0030"].get_info(jid=ROOM, timeout=TIMEOUT)
        assert "muc_membersonly" in info["disco_info"]["features"]
        await logout(romeo)
    run(check(), 60)


def _admin(h: ServerHarness, cmd: str, **args: Any) -> Any:
    with AdminClient(str(h.admin_socket)) as client:
        return client.call(cmd, **args)


def _cli(h: ServerHarness, *args: str) -> Result:
    return CliRunner().invoke(cli, ["-c", str(h.config_path), "muc", *args])


def test_reload_keeps_rooms_and_admin_commands(muc: ServerHarness) -> None:
    """Live rooms survive ``module reload``; ``tercet muc list|show|destroy``."""
    async def main() -> None:
        romeo = await login("romeo@localhost/a", PASSWORD, muc.port(), plugins=PLUGINS)
        juliet = await login("juliet@localhost/b", PASSWORD, muc.port(), plugins=PLUGINS)
        watch(juliet)
        await romeo.plugin["xep_0045"].join_muc_wait(ROOM, "Romeo", timeout=TIMEOUT)
        await configure(romeo, roomname="Garden")
        await juliet.plugin["xep_0045"].join_muc_wait(ROOM, "Juliet", timeout=TIMEOUT)

        result = await asyncio.to_thread(_admin, muc, "module.reload", name="muc",
                                         host=MUC)
        assert result[0]["status"] == "loaded"
        romeo.send_message(mto=ROOM, mbody="still here", mtype="groupchat")
        await said(juliet, "still here")

        listed = await asyncio.to_thread(_cli, muc, "list", "--json")
        assert listed.exit_code == 0, listed.output
        rows = json.loads(listed.output)
        assert [(r["jid"], r["occupants"], r["name"]) for r in rows] == [
            (str(ROOM), 2, "Garden")]
        table = await asyncio.to_thread(_cli, muc, "list")
        assert str(ROOM) in table.output and "Garden" in table.output
        shown = await asyncio.to_thread(_cli, muc, "show", str(ROOM), "--json")
        detail = json.loads(shown.output)
        assert detail["affiliations"] == {"romeo@localhost": "owner"}
        assert sorted(o["nick"] for o in detail["occupants_list"]) == ["Juliet", "Romeo"]
        assert "password" not in detail["config"]
        missing = await asyncio.to_thread(_cli, muc, "show", f"nowhere@{MUC}")
        assert missing.exit_code == 1 and "no room" in missing.output

        destroyed = await asyncio.to_thread(_cli, muc, "destroy", str(ROOM),
                                            "--reason", "maintenance")
        assert destroyed.exit_code == 0, destroyed.output
        gone = await presence_of(juliet, "Juliet", "unavailable")
        reason = gone.xml.find("{http://jabber.org/protocol/muc#user}x/"
                               "{http://jabber.org/protocol/muc#user}destroy/"
                               "{http://jabber.org/protocol/muc#user}reason")
        assert reason is not None and reason.text == "maintenance"
        empty = await asyncio.to_thread(_cli, muc, "list")
        assert empty.output.strip() == "no rooms"
        await logout(romeo, juliet)
    run(main(), 90)
