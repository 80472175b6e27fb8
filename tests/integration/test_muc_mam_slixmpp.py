"""MUC archives end to end: slixmpp's xep_0045 and xep_0313 over real TLS, and the archive
surviving a restart (SQLite)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from harness import ServerHarness
from helpers import run
from slixmpp import JID
from slixmpp.exceptions import IqError
from xmpp import TIMEOUT, Client, login, logout

PASSWORD = "s3cret pass"
PLUGINS = ("xep_0030", "xep_0004", "xep_0045", "xep_0059", "xep_0297", "xep_0313",
           "xep_0359")
MUC = "conference.localhost"
ROOM = JID(f"garden@{MUC}")
COMPONENT = (f'\n[components."{MUC}"]\nmodule = "muc"\nmodules_enabled = ["muc_mam"]\n')


@pytest.fixture
def muc(make_server: Any) -> ServerHarness:
    server: ServerHarness = make_server(host_extra=COMPONENT)
    for user in ("romeo", "juliet", "tybalt"):
        server.create_user(user, PASSWORD)
    return server


def body_of(result: Any) -> str:
    return str(result["mam_result"]["forwarded"]["stanza"]["body"])


async def enter(client: Client, nick: str, *, owner: bool = False,
                members_only: bool = False) -> None:
    """Join ROOM; the owner of a new room accepts the default configuration (§10.1.2)."""
    muc_plugin = client.plugin["xep_0045"]
    await muc_plugin.join_muc_wait(ROOM, nick, maxstanzas=0, timeout=TIMEOUT)
    if owner:
        form = client.plugin["xep_0004"].make_form(ftype="submit")
        form.add_field(var="FORM_TYPE", ftype="hidden",
                       value="http://jabber.org/protocol/muc#roomconfig")
        form.add_field(var="muc#roomconfig_membersonly", ftype="boolean",
                       value=members_only)
        form.add_field(var="muc#roomconfig_persistentroom", ftype="boolean", value=True)
        await muc_plugin.set_room_config(ROOM, form, timeout=TIMEOUT)


async def said(client: Client, body: str) -> Any:
    """Wait for the room's echo of ``body`` to ``client``."""
    while True:
        got = await asyncio.wait_for(client.messages.get(), TIMEOUT)
        if got["type"] == "groupchat" and got["body"] == body:
            return got


def test_room_archive_paged_with_stanza_ids(muc: ServerHarness) -> None:
    async def main() -> None:
        romeo = await login("romeo@localhost/a", PASSWORD, muc.port(), plugins=PLUGINS)
        juliet = await login("juliet@localhost/b", PASSWORD, muc.port(), plugins=PLUGINS)
        await enter(romeo, "Romeo", owner=True)
        await enter(juliet, "Juliet")
        for i in range(120):
            sender = romeo if i % 2 else juliet
            sender.send_message(mto=ROOM, mbody=f"line {i}", mtype="groupchat")
            got = await said(sender, f"line {i}")
        sid = got.xml.find("{urn:xmpp:sid:0}stanza-id")
        assert sid is not None and sid.get("by") == str(ROOM)

        plugin = juliet.plugin["xep_0313"]
        forward: list[str] = []
        async for page in plugin.retrieve(jid=ROOM, iterator=True, rsm={"max": 25}):
            forward += [body_of(r) for r in page["mam"]["results"]]
        assert forward == [f"line {i}" for i in range(120)]
        # the last page (an empty RSM <before/>)
        last = await plugin.retrieve(jid=ROOM, iterator=True, reverse=True,
                                     rsm={"max": 1}).__anext__()
        assert [body_of(r) for r in last["mam"]["results"]] == ["line 119"]
        assert [r["mam_result"]["id"] for r in last["mam"]["results"]] == [sid.get("id")]
        inner = last["mam"]["results"][0]["mam_result"]["forwarded"]["stanza"]
        assert inner["from"] == JID(f"{ROOM}/Romeo")
        # semi-anonymous: juliet does not see romeo's real JID
        assert inner.xml.find("{http://jabber.org/protocol/muc#user}x") is None

        only_romeo = await plugin.retrieve(jid=ROOM, with_jid=JID(f"{ROOM}/Romeo"),
                                           rsm={"max": 30}, timeout=TIMEOUT)
        assert [body_of(r) for r in only_romeo["mam"]["results"]] == [
            f"line {i}" for i in range(1, 60, 2)]

        # someone who is neither in the room nor affiliated: forbidden
        tybalt = await login("tybalt@localhost/c", PASSWORD, muc.port(), plugins=PLUGINS)
        with pytest.raises(IqError) as err:
            await tybalt.plugin["xep_0313"].retrieve(jid=ROOM, timeout=TIMEOUT)
        assert err.value.iq["error"]["condition"] == "forbidden"
        with pytest.raises(IqError) as err:
            await plugin.retrieve(jid=ROOM, rsm={"after": "no-such-id"}, timeout=TIMEOUT)
        assert err.value.iq["error"]["condition"] == "item-not-found"
        await logout(romeo, juliet, tybalt)
    run(main(), 120)


def test_archive_survives_a_restart(make_server: Any) -> None:
    first: ServerHarness = make_server(host_extra=COMPONENT, subdir="persist")
    first.create_user("romeo", PASSWORD)

    async def write() -> None:
        romeo = await login("romeo@localhost/a", PASSWORD, first.port(), plugins=PLUGINS)
        await enter(romeo, "Romeo", owner=True)
        for body in ("before", "the", "restart"):
            romeo.send_message(mto=ROOM, mbody=body, mtype="groupchat")
            await said(romeo, body)
        await logout(romeo)
    run(write(), 60)
    first.stop()

    second: ServerHarness = make_server(host_extra=COMPONENT, subdir="persist")

    async def read() -> None:
        romeo = await login("romeo@localhost/a", PASSWORD, second.port(), plugins=PLUGINS)
        # the owner may read without joining (an affiliation is enough)
        got = await romeo.plugin["xep_0313"].retrieve(jid=ROOM, timeout=TIMEOUT)
        assert [body_of(r) for r in got["mam"]["results"]] == ["before", "the", "restart"]
        ids = [r["mam_result"]["id"] for r in got["mam"]["results"]]
        # join history comes from the archive: the room's memory did not survive
        _, _, _, history = await romeo.plugin["xep_0045"].join_muc_wait(
            ROOM, "Romeo", maxstanzas=2, timeout=TIMEOUT)
        assert [str(m["body"]) for m in history] == ["the", "restart"]
        assert [m.xml.find("{urn:xmpp:sid:0}stanza-id").get("id")  # type: ignore[union-attr]
                for m in history] == ids[1:]
        await logout(romeo)
    run(read(), 60)


def test_moderator_retracts_with_xep_0425(muc: ServerHarness) -> None:
    plugins = (*PLUGINS, "xep_0421", "xep_0424", "xep_0425")

    async def main() -> None:
        romeo = await login("romeo@localhost/a", PASSWORD, muc.port(), plugins=plugins)
        tybalt = await login("tybalt@localhost/c", PASSWORD, muc.port(), plugins=plugins)
        await enter(romeo, "Romeo", owner=True)
        await enter(tybalt, "Tybalt")
        moderated: asyncio.Queue[Any] = asyncio.Queue()
        tybalt.add_event_handler("moderated_message", moderated.put_nowait)
        tybalt.send_message(mto=ROOM, mbody="insult", mtype="groupchat")
        got = await said(tybalt, "insult")
        sid = got.xml.find("{urn:xmpp:sid:0}stanza-id").get("id")
        # a participant may not; the moderator may
        with pytest.raises(IqError) as err:
            await tybalt.plugin["xep_0425"].moderate(ROOM, sid, "no", timeout=TIMEOUT)
        assert err.value.iq["error"]["condition"] == "forbidden"
        await romeo.plugin["xep_0425"].moderate(ROOM, sid, "rude", timeout=TIMEOUT)
        notice = await asyncio.wait_for(moderated.get(), TIMEOUT)
        assert notice["retract"]["id"] == sid
        assert notice["retract"]["moderated"]["by"] == JID(f"{ROOM}/Romeo")
        archived = await tybalt.plugin["xep_0313"].retrieve(jid=ROOM, timeout=TIMEOUT)
        first = archived["mam"]["results"][0]["mam_result"]["forwarded"]["stanza"]
        assert first["body"] == ""
        assert first.xml.find("{urn:xmpp:message-retract:1}retracted") is not None
        await logout(romeo, tybalt)
    run(main(), 60)
