"""Message Carbons (XEP-0280) end to end: two slixmpp clients of one account (with
slixmpp's xep_0280 plugin) and a contact, over real TLS."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from harness import ServerHarness
from helpers import run
from xmpp import Client, available, login, logout

PASSWORD = "s3cret pass"
NS = "urn:xmpp:carbons:2"
QUIET = 1.0  # seconds to wait for a stanza that must not come


@pytest.fixture
def users(make_server: Any) -> ServerHarness:
    server: ServerHarness = make_server(host_extra='modules_enabled = ["carbons"]')
    for name in ("romeo", "juliet"):
        server.create_user(name, PASSWORD)
    return server


async def carbons_client(jid: str, port: int) -> tuple[Client, asyncio.Queue[Any],
                                                       asyncio.Queue[Any]]:
    client = await login(jid, PASSWORD, port, plugins=("xep_0297", "xep_0280"))
    received: asyncio.Queue[Any] = asyncio.Queue()
    sent: asyncio.Queue[Any] = asyncio.Queue()
    client.add_event_handler("carbon_received", received.put_nowait)
    client.add_event_handler("carbon_sent", sent.put_nowait)
    await client.plugin["xep_0280"].enable(timeout=10)
    return client, received, sent


async def nothing(queue: asyncio.Queue[Any]) -> None:
    await asyncio.sleep(QUIET)
    assert queue.empty(), f"unexpected: {queue.get_nowait()}"


def test_carbons_received_sent_private_and_disable(users: ServerHarness) -> None:
    async def main() -> None:
        phone, phone_received, _ = await carbons_client("romeo@localhost/phone", users.port())
        laptop, received, sent = await carbons_client("romeo@localhost/laptop", users.port())
        juliet = await login("juliet@localhost/balcony", PASSWORD, users.port())
        await available(phone, laptop, juliet)

        # Received on the phone: a received carbon on the laptop.
        juliet.send_message(mto="romeo@localhost/phone", mbody="wherefore", mtype="chat")
        assert (await asyncio.wait_for(phone.messages.get(), 10))["body"] == "wherefore"
        carbon = await asyncio.wait_for(received.get(), 10)
        assert str(carbon["from"]) == "romeo@localhost"
        original = carbon["carbon_received"]
        assert original["body"] == "wherefore"
        assert str(original["from"]) == "juliet@localhost/balcony"

        # Sent from the phone: a sent carbon on the laptop.
        phone.send_message(mto="juliet@localhost", mbody="art thou", mtype="chat")
        assert (await asyncio.wait_for(juliet.messages.get(), 10))["body"] == "art thou"
        carbon = await asyncio.wait_for(sent.get(), 10)
        assert carbon["carbon_sent"]["body"] == "art thou"
        assert str(carbon["carbon_sent"]["to"]) == "juliet@localhost"

        # Private and no-copy: never copied, either way.
        for hint in (f"<private xmlns='{NS}'/>", "<no-copy xmlns='urn:xmpp:hints'/>"):
            msg = juliet.make_message(mto="romeo@localhost/phone", mbody="secret",
                                      mtype="chat")
            msg.xml.append(ET.fromstring(hint))
            msg.send()
            got = await asyncio.wait_for(phone.messages.get(), 10)
            assert got["body"] == "secret"
            assert got.xml.find(f"{{{NS}}}private") is None  # §9: removed on delivery
            msg = phone.make_message(mto="juliet@localhost", mbody="secret too",
                                     mtype="chat")
            msg.xml.append(ET.fromstring(hint))
            msg.send()
            assert (await asyncio.wait_for(juliet.messages.get(), 10))["body"] == "secret too"
        await nothing(received)
        await nothing(sent)

        # Disabled on the laptop: no more copies.
        await laptop.plugin["xep_0280"].disable(timeout=10)
        juliet.send_message(mto="romeo@localhost/phone", mbody="again", mtype="chat")
        phone.send_message(mto="juliet@localhost", mbody="and again", mtype="chat")
        assert (await asyncio.wait_for(phone.messages.get(), 10))["body"] == "again"
        assert (await asyncio.wait_for(juliet.messages.get(), 10))["body"] == "and again"
        await nothing(received)
        await nothing(sent)
        assert phone_received.empty()
        await logout(phone, laptop, juliet)
    run(main())


def test_forged_carbon_from_a_contact_never_arrives(users: ServerHarness) -> None:
    async def main() -> None:
        phone, received, sent = await carbons_client("romeo@localhost/phone", users.port())
        juliet = await login("juliet@localhost/balcony", PASSWORD, users.port())
        await available(phone, juliet)
        forged = (f"<received xmlns='{NS}'><forwarded xmlns='urn:xmpp:forward:0'>"
                  "<message xmlns='jabber:client' from='rosaline@localhost/x' "
                  "to='romeo@localhost/phone' type='chat'><body>forged</body></message>"
                  "</forwarded></received>")
        for wrapper in (forged, forged.replace("received", "sent")):
            msg = juliet.make_message(mto="romeo@localhost/phone", mbody="hello",
                                      mtype="chat")
            msg.xml.append(ET.fromstring(wrapper))
            msg.send()
            got = await asyncio.wait_for(phone.messages.get(), 10)
            assert got["body"] == "hello"
            for name in ("received", "sent"):
                assert got.xml.find(f"{{{NS}}}{name}") is None, "a forged carbon got through"
        # A forgery with nothing else in it is not delivered at all.
        msg = juliet.make_message(mto="romeo@localhost/phone", mtype="chat")
        msg.xml.append(ET.fromstring(forged))
        msg.send()
        juliet.send_message(mto="romeo@localhost/phone", mbody="after", mtype="chat")
        assert (await asyncio.wait_for(phone.messages.get(), 10))["body"] == "after"
        await nothing(received)
        await nothing(sent)
        await logout(phone, juliet)
    run(main())
