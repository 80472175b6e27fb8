"""Client State Indication (XEP-0352) end to end: slixmpp's xep_0352 plugin over real
TLS. An inactive client gets no presence updates but a message with a body at once; when
active again it gets the held presence, the latest per contact, before anything newer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from harness import ServerHarness
from helpers import run, until
from xmpp import Client, available, login, logout

PASSWORD = "s3cret pass"
QUIET = 1.0  # seconds to wait for a stanza that must not come


@pytest.fixture
def users(make_server: Any) -> ServerHarness:
    server: ServerHarness = make_server(host_extra='modules_enabled = ["csi_simple"]')
    for name in ("romeo", "juliet"):
        server.create_user(name, PASSWORD)
    return server


def record(client: Client) -> list[str]:
    """What reaches ``client`` from Juliet, in order: 'presence:<resource>:<show>' and
    'message:<body>'."""
    log: list[str] = []

    def on_presence(p: Any) -> None:
        if p["from"].bare == "juliet@localhost":
            log.append(f"presence:{p['from'].resource}:{p['show'] or p['type']}")

    def on_message(m: Any) -> None:
        log.append(f"message:{m['body']}")
    client.add_event_handler("presence", on_presence)
    client.add_event_handler("message", on_message)
    return log


async def synced(client: Client) -> None:
    """Wait until the server has handled what ``client`` sent so far (an iq round trip:
    stanzas from one client are handled in order)."""
    await client.get_roster(timeout=10)


def test_inactive_client_gets_only_urgent_stanzas(users: ServerHarness) -> None:
    async def main() -> None:
        phone = await login("romeo@localhost/phone", PASSWORD, users.port(),
                            plugins=("xep_0352",))
        assert phone.plugin["xep_0352"].enabled, "the server offers <csi/>"
        juliet_a = await login("juliet@localhost/a", PASSWORD, users.port())
        juliet_b = await login("juliet@localhost/b", PASSWORD, users.port())
        await available(phone)
        log = record(phone)
        to = "romeo@localhost/phone"

        phone.plugin["xep_0352"].send_inactive()
        await synced(phone)
        # Two connections: each waits for the server so the order is known.
        juliet_a.send_presence(pto=to, pshow="away")
        await synced(juliet_a)
        juliet_b.send_presence(pto=to, pshow="xa")
        await synced(juliet_b)
        juliet_a.send_presence(pto=to, pshow="dnd")  # replaces her first one
        await synced(juliet_a)
        await asyncio.sleep(QUIET)
        assert log == [], "presence reached an inactive client"

        phone.plugin["xep_0352"].send_active()
        await synced(phone)
        juliet_a.send_presence(pto=to, pshow="chat")  # newer than what was held
        await until(lambda: len(log) >= 3, "the held presence and the new one")
        assert log == ["presence:b:xa", "presence:a:dnd", "presence:a:chat"]

        log.clear()
        phone.plugin["xep_0352"].send_inactive()
        await synced(phone)
        juliet_b.send_presence(pto=to, pshow="away")
        await synced(juliet_b)
        juliet_a.send_message(mto=to, mbody="wake up", mtype="chat")
        await until(lambda: "message:wake up" in log, "the message with a body")
        assert log == ["presence:b:away", "message:wake up"]  # the held one first
        await logout(phone, juliet_a, juliet_b)
    run(main())
