"""Message Archive Management end to end: slixmpp's xep_0313 over real TLS."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from harness import ServerHarness
from helpers import run
from slixmpp import JID
from slixmpp.exceptions import IqError
from xmpp import TIMEOUT, login, logout

from tercet.protocol.stanza import Element
from tercet.storage.base import ArchiveQuery

PASSWORD = "s3cret pass"
PLUGINS = ("xep_0030", "xep_0059", "xep_0297", "xep_0313", "xep_0359")
HOST = 'modules_enabled = ["mam"]'


@pytest.fixture
def mam(make_server: Any) -> ServerHarness:
    server: ServerHarness = make_server(host_extra=HOST)
    server.create_user("romeo", PASSWORD)
    server.create_user("juliet", PASSWORD)
    return server


def fill(server: ServerHarness, n: int) -> None:
    """n messages between romeo and juliet, straight into romeo's archive."""
    assert server.server is not None
    store = server.server.storage.open("localhost", "archive", "archive")

    async def go() -> None:
        for i in range(n):
            sender, to = (("romeo@localhost/a", "juliet@localhost") if i % 2
                          else ("juliet@localhost/b", "romeo@localhost"))
            msg = Element("message", attrs={"from": sender, "to": to, "type": "chat",
                                            "id": f"m{i}"}).text_tag("body", f"msg {i}")
            await store.append("romeo", msg, when=1_700_000_000 + i // 3,
                               with_jid="juliet@localhost")
    server.call(go(), timeout=120)


def body_of(result: Any) -> str:
    return str(result["mam_result"]["forwarded"]["stanza"]["body"])


def test_thousand_messages_paged_both_ways(mam: ServerHarness) -> None:
    fill(mam, 1000)

    async def main() -> None:
        romeo = await login("romeo@localhost/a", PASSWORD, mam.port(), plugins=PLUGINS)
        plugin = romeo.plugin["xep_0313"]
        forward: list[str] = []
        pages = 0
        async for page in plugin.retrieve(iterator=True, rsm={"max": 50}):
            results = page["mam"]["results"]
            assert len(results) == 50
            forward += [body_of(r) for r in results]
            pages += 1
        assert pages == 20
        assert forward == [f"msg {i}" for i in range(1000)]

        # Backwards: the last page (empty <before/>), then each page before the first.
        backward: list[str] = []
        iterator = plugin.retrieve(iterator=True, reverse=True, rsm={"max": 50})
        page = await iterator.__anext__()
        while True:
            results = page["mam"]["results"]
            fin = page["mam_fin"]
            assert len(results) == 50
            backward = [body_of(r) for r in results] + backward
            first = fin["rsm"]["first"]
            if fin["complete"] in (True, "true"):
                # Only the page that reaches the start knows its index without counting.
                assert fin["rsm"]["first_index"] == "0"
                break
            page = await plugin.retrieve(rsm={"max": 50, "before": first}, timeout=TIMEOUT)
        assert backward == forward
        assert len(set(backward)) == 1000

        # Filters: with (nobody), a time window, and an unknown id.
        empty = await plugin.retrieve(with_jid=JID("nobody@localhost"), timeout=TIMEOUT)
        assert len(empty["mam"]["results"]) == 0
        import datetime
        start = datetime.datetime.fromtimestamp(1_700_000_010, datetime.UTC)
        end = datetime.datetime.fromtimestamp(1_700_000_011, datetime.UTC)
        window = await plugin.retrieve(start=start, end=end, timeout=TIMEOUT)
        assert [body_of(r) for r in window["mam"]["results"]] == [
            f"msg {i}" for i in range(30, 36)]
        with pytest.raises(IqError) as err:
            await plugin.retrieve(rsm={"after": "no-such-id"}, timeout=TIMEOUT)
        assert err.value.iq["error"]["condition"] == "item-not-found"
        await logout(romeo)
    run(main(), 120)


def test_live_messages_archived_with_stanza_id_and_prefs_never(mam: ServerHarness) -> None:
    async def main() -> None:
        romeo = await login("romeo@localhost/a", PASSWORD, mam.port(), plugins=PLUGINS)
        juliet = await login("juliet@localhost/b", PASSWORD, mam.port(), plugins=PLUGINS)
        juliet.send_presence()
        romeo.send_presence()
        await asyncio.sleep(0.2)
        romeo.send_message(mto="juliet@localhost", mbody="wherefore", mtype="chat")
        while True:
            got = await asyncio.wait_for(juliet.messages.get(), TIMEOUT)
            if got["body"] == "wherefore":
                break
        sid = got.xml.find("{urn:xmpp:sid:0}stanza-id")
        assert sid is not None and sid.get("by") == "juliet@localhost"
        archived = await juliet.plugin["xep_0313"].retrieve(timeout=TIMEOUT)
        results = archived["mam"]["results"]
        assert [r["mam_result"]["id"] for r in results] == [sid.get("id")]
        sent = await romeo.plugin["xep_0313"].retrieve(timeout=TIMEOUT)
        assert [body_of(r) for r in sent["mam"]["results"]] == ["wherefore"]

        # prefs default='never': nothing more is archived for juliet.
        iq = juliet.make_iq_set()
        import xml.etree.ElementTree as ET
        iq.append(ET.fromstring("<prefs xmlns='urn:xmpp:mam:2' default='never'/>"))
        await iq.send(timeout=TIMEOUT)
        romeo.send_message(mto="juliet@localhost", mbody="not kept", mtype="chat")
        while True:
            got = await asyncio.wait_for(juliet.messages.get(), TIMEOUT)
            if got["body"] == "not kept":
                break
        assert got.xml.find("{urn:xmpp:sid:0}stanza-id") is None
        assert mam.server is not None
        store = mam.server.storage.open("localhost", "archive", "archive")
        assert await mam.acall(store.count("juliet", ArchiveQuery())) == 1
        await logout(romeo)
        await logout(juliet)
    run(main())
