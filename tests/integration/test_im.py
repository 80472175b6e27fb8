"""Instant messaging end to end (RFC 6121): slixmpp clients against a real server."""

from __future__ import annotations

import asyncio

import pytest
from harness import ServerHarness
from helpers import run, until
from xmpp import Client, available, login, logout

from tercet.storage.base import ArchiveQuery

PASSWORD = "s3cret pass"


@pytest.fixture
def users(server: ServerHarness) -> ServerHarness:
    for name in ("romeo", "juliet"):
        server.create_user(name, PASSWORD)
    return server


def test_roster_add_is_pushed(users: ServerHarness) -> None:
    async def main() -> None:
        romeo = await login("romeo@localhost/a", PASSWORD, users.port())
        other = await login("romeo@localhost/b", PASSWORD, users.port())
        for client in (romeo, other):
            await client.get_roster(timeout=10)
        pushes: asyncio.Queue[object] = asyncio.Queue()
        other.add_event_handler("roster_update", pushes.put_nowait)
        await romeo.update_roster("nurse@localhost", name="Nurse", groups=["Staff"],
                                  timeout=10)
        await asyncio.wait_for(pushes.get(), 10)  # the other resource hears of it
        item = other.client_roster["nurse@localhost"]
        assert (item["name"], item["groups"], item["subscription"]) == (
            "Nurse", ["Staff"], "none")
        await logout(romeo, other)
    run(main())


def test_subscription_handshake_ends_with_both_presences_visible(
        users: ServerHarness) -> None:
    async def main() -> None:
        # slixmpp approves requests and asks back by itself (auto_authorize/auto_subscribe),
        # so one subscribe from Romeo leads to a mutual subscription.
        romeo = await login("romeo@localhost/orchard", PASSWORD, users.port())
        juliet = await login("juliet@localhost/balcony", PASSWORD, users.port())
        for client in (romeo, juliet):
            await client.get_roster(timeout=10)
            client.send_presence(pstatus="here")
        romeo.send_presence_subscription(pto="juliet@localhost")

        def mutual(a: Client, b: str) -> bool:
            return b in a.client_roster and a.client_roster[b]["subscription"] == "both"
        await until(lambda: mutual(romeo, "juliet@localhost")
                    and mutual(juliet, "romeo@localhost"), "a mutual subscription")
        await until(lambda: "balcony" in romeo.client_roster["juliet@localhost"].resources
                    and "orchard" in juliet.client_roster["romeo@localhost"].resources,
                    "each to see the other's presence")
        # The server agrees, after a fresh fetch.
        await romeo.get_roster(timeout=10)
        assert romeo.client_roster["juliet@localhost"]["subscription"] == "both"
        # Juliet leaves without a word: Romeo is told she is unavailable.
        juliet.disconnect()
        await until(lambda: "balcony" not in romeo.client_roster["juliet@localhost"].resources,
                    "Juliet's unavailable presence")
        await logout(romeo, juliet)
    run(main())


def test_offline_message_is_delivered_with_a_delay_stamp(users: ServerHarness) -> None:
    async def main() -> None:
        romeo = await login("romeo@localhost/a", PASSWORD, users.port())
        romeo.send_message(mto="juliet@localhost", mbody="are you there?", mtype="chat")

        async def stored() -> int:  # on the server's loop
            offline = users.server.storage.open("localhost", "offline", "archive")
            return len(await offline.find("juliet", ArchiveQuery()))
        await until(lambda: users.acall(stored()), "the server to store it before she comes")
        assert romeo.messages.empty(), "kept for later, not bounced"
        juliet = await login("juliet@localhost/b", PASSWORD, users.port(),
                             plugins=("xep_0203",))
        assert juliet.messages.empty(), "nothing before initial presence"
        juliet.send_presence()
        msg = await asyncio.wait_for(juliet.messages.get(), 10)
        assert msg["body"] == "are you there?"
        assert str(msg["from"]) == "romeo@localhost/a"
        assert str(msg["delay"]["from"]) == "localhost"
        assert msg["delay"]["stamp"] is not None
        await logout(romeo, juliet)
    run(main())


def test_negative_priority_resource_gets_no_bare_jid_messages(users: ServerHarness) -> None:
    async def main() -> None:
        laptop = await login("juliet@localhost/laptop", PASSWORD, users.port())
        phone = await login("juliet@localhost/phone", PASSWORD, users.port())
        romeo = await login("romeo@localhost/a", PASSWORD, users.port())
        await available(laptop, ppriority=-1)
        await available(phone, ppriority=0)
        romeo.send_message(mto="juliet@localhost", mbody="to the bare JID", mtype="chat")
        msg = await asyncio.wait_for(phone.messages.get(), 10)
        assert msg["body"] == "to the bare JID"
        romeo.send_message(mto="juliet@localhost/laptop", mbody="to the laptop", mtype="chat")
        msg = await asyncio.wait_for(laptop.messages.get(), 10)
        assert msg["body"] == "to the laptop", "the bare JID message never reached it"
        await logout(laptop, phone, romeo)
    run(main())
