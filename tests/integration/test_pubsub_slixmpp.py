"""Publish-Subscribe (XEP-0060) and PEP (XEP-0163) end to end with slixmpp's xep_0060,
xep_0163 and xep_0118 plugins, over real TLS; and ``tercet pubsub`` over the admin
socket."""

from __future__ import annotations

import asyncio
import json
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from click.testing import CliRunner, Result
from harness import ServerHarness
from helpers import run
from slixmpp.exceptions import IqError
from xmpp import Client, available, login, logout

from tercet.cli.adminclient import AdminClient
from tercet.cli.main import cli

PASSWORD = "s3cret pass"
SERVICE = "pubsub.localhost"
COMPONENT = f'\n[components."{SERVICE}"]\nmodule = "pubsub"\nexpose_publisher = true\n'
NS_TEST = "urn:example:news"


@pytest.fixture
def users(make_server: Any) -> ServerHarness:
    server: ServerHarness = make_server(host_extra=COMPONENT)
    for name in ("admin", "romeo", "juliet"):
        server.create_user(name, PASSWORD)
    return server


def entry(text: str) -> ET.Element:
    el = ET.Element(f"{{{NS_TEST}}}entry")
    el.text = text
    return el


def queue_of(client: Client, event: str) -> asyncio.Queue[Any]:
    queue: asyncio.Queue[Any] = asyncio.Queue()
    client.add_event_handler(event, queue.put_nowait)
    return queue


def test_component_create_publish_subscribe_retract_delete(users: ServerHarness) -> None:
    async def main() -> None:
        admin = await login("admin@localhost/a", PASSWORD, users.port(),
                            plugins=("xep_0060",))
        juliet = await login("juliet@localhost/j", PASSWORD, users.port(),
                             plugins=("xep_0060",))
        await available(admin, juliet)
        published = queue_of(juliet, "pubsub_publish")
        retracted = queue_of(juliet, "pubsub_retract")
        deleted = queue_of(juliet, "pubsub_delete")
        ps_admin, ps_juliet = admin.plugin["xep_0060"], juliet.plugin["xep_0060"]

        await ps_admin.create_node(SERVICE, "news", timeout=10)
        with pytest.raises(IqError) as refused:
            await ps_juliet.create_node(SERVICE, "mine", timeout=10)
        assert refused.value.condition == "forbidden"
        await ps_juliet.subscribe(SERVICE, "news", timeout=10)
        await ps_admin.publish(SERVICE, "news", id="first", payload=entry("hello"),
                               timeout=10)
        event = await asyncio.wait_for(published.get(), 10)
        item = event["pubsub_event"]["items"]["item"]
        assert item["id"] == "first"
        assert item.xml.get("publisher") == "admin@localhost"
        assert item["payload"].text == "hello"

        result = await ps_juliet.get_items(SERVICE, "news", timeout=10)
        assert [i["id"] for i in result["pubsub"]["items"]] == ["first"]
        await ps_admin.retract(SERVICE, "news", "first", notify=True, timeout=10)
        event = await asyncio.wait_for(retracted.get(), 10)
        assert event["pubsub_event"]["items"]["retract"]["id"] == "first"
        await ps_admin.delete_node(SERVICE, "news", timeout=10)
        event = await asyncio.wait_for(deleted.get(), 10)
        assert event["pubsub_event"]["delete"]["node"] == "news"
        with pytest.raises(IqError) as missing:
            await ps_juliet.get_items(SERVICE, "news", timeout=10)
        assert missing.value.condition == "item-not-found"
        await logout(admin, juliet)
    run(main())


async def befriend(romeo: Client, juliet: Client) -> None:
    """Mutual presence subscription through the clients (slixmpp approves requests and
    asks back by itself once it has its roster)."""
    for client in (romeo, juliet):
        await client.get_roster(timeout=10)
    romeo.send_presence_subscription(pto="juliet@localhost")
    for client, contact in ((romeo, "juliet@localhost"), (juliet, "romeo@localhost")):
        for _ in range(100):
            if client.client_roster[contact]["subscription"] == "both":
                break
            await asyncio.sleep(0.05)
        assert client.client_roster[contact]["subscription"] == "both"


def test_pep_tune_reaches_a_contact_with_notify(users: ServerHarness) -> None:
    async def main() -> None:
        plugins = ("xep_0030", "xep_0115", "xep_0060", "xep_0163", "xep_0118")
        romeo = await login("romeo@localhost/r", PASSWORD, users.port(), plugins=plugins)
        juliet = await login("juliet@localhost/j", PASSWORD, users.port(), plugins=plugins)
        tunes = queue_of(juliet, "user_tune_publish")
        await available(romeo, juliet)
        await befriend(romeo, juliet)
        # xep_0118 put tune+notify in Juliet's caps; the server asked her for the hash
        # before echoing her presence, and a round trip after the echo orders her answer
        # before Romeo's publish.
        await juliet.plugin["xep_0030"].get_info(jid="localhost", timeout=10)
        await romeo.plugin["xep_0118"].publish_tune(artist="The Spinners",
                                                    title="Beautiful Cedars", timeout=10)
        event = await asyncio.wait_for(tunes.get(), 10)
        assert str(event["from"]) == "romeo@localhost"
        assert event["pubsub_event"]["items"]["item"]["tune"]["title"] == "Beautiful Cedars"
        # The owner's PEP service answers item retrieval from a contact.
        result = await juliet.plugin["xep_0060"].get_items(
            "romeo@localhost", "http://jabber.org/protocol/tune", timeout=10)
        assert len(result["pubsub"]["items"]) == 1  # max_items 1 by default
        await logout(romeo, juliet)
    run(main())


def _admin(server: ServerHarness, cmd: str, **args: Any) -> Any:
    with AdminClient(str(server.admin_socket)) as client:
        return client.call(cmd, **args)


def _cli(server: ServerHarness, *args: str) -> Result:
    return CliRunner().invoke(cli, ["-c", str(server.config_path), "pubsub", *args])


def test_admin_commands_list_show_and_delete_nodes(users: ServerHarness) -> None:
    async def main() -> None:
        admin = await login("admin@localhost/a", PASSWORD, users.port(),
                            plugins=("xep_0060",))
        romeo = await login("romeo@localhost/r", PASSWORD, users.port(),
                            plugins=("xep_0060",))
        await admin.plugin["xep_0060"].create_node(SERVICE, "news", timeout=10)
        await admin.plugin["xep_0060"].publish(SERVICE, "news", id="first",
                                               payload=entry("hello"), timeout=10)
        # A PEP node of Romeo's, published through his own account.
        await romeo.plugin["xep_0060"].publish("romeo@localhost", "urn:example:pep",
                                               id="x", payload=entry("mine"), timeout=10)

        rows = await asyncio.to_thread(_admin, users, "pubsub.nodes")
        assert [(r["service"], r["node"], r["items"], r["owners"]) for r in rows] == [
            (SERVICE, "news", 1, ["admin@localhost"])]
        rows = await asyncio.to_thread(_admin, users, "pubsub.nodes",
                                       service="romeo@localhost")
        assert [r["node"] for r in rows] == ["urn:example:pep"]
        listed = await asyncio.to_thread(_cli, users, "nodes")
        assert listed.exit_code == 0 and "news" in listed.output, listed.output
        shown = await asyncio.to_thread(_cli, users, "items", SERVICE, "news", "--json")
        assert shown.exit_code == 0, shown.output
        [item] = json.loads(shown.output)
        assert item["id"] == "first" and "hello" in item["payload"]
        assert item["publisher"] == "admin@localhost"
        missing = await asyncio.to_thread(_cli, users, "items", SERVICE, "nope")
        assert missing.exit_code == 1 and "no node" in missing.output
        unknown = await asyncio.to_thread(_cli, users, "nodes", "elsewhere.example")
        assert unknown.exit_code == 1 and "no pubsub service" in unknown.output

        deleted = await asyncio.to_thread(_cli, users, "delete", SERVICE, "news")
        assert deleted.exit_code == 0, deleted.output
        with pytest.raises(IqError) as gone:
            await admin.plugin["xep_0060"].get_items(SERVICE, "news", timeout=10)
        assert gone.value.condition == "item-not-found"
        assert await asyncio.to_thread(_admin, users, "pubsub.nodes") == []
        await logout(admin, romeo)
    run(main())
