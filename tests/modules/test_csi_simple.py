"""Client State Indication (XEP-0352), XML in and XML out on the module test server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from moduletest import ModuleTestServer, TestClient

from tercet.core.streamevents import StreamElementEvent, StreamFeaturesEvent
from tercet.protocol.stanza import Element

NS = "urn:xmpp:csi:0"


def run(body: Callable[[ModuleTestServer], Awaitable[None]], config: str = "") -> None:
    async def main() -> None:
        async with ModuleTestServer(config, 'modules_enabled = ["csi_simple"]') as srv:
            await body(srv)
    asyncio.run(asyncio.wait_for(main(), 30))


def state(srv: ModuleTestServer, client: TestClient, name: str) -> None:
    result = srv.server.hosts["localhost"].events.fire(
        f"stream/{NS}:{name}", StreamElementEvent(client.session, Element(name, NS)))
    assert result is True


def presence(frm: str, show: str | None = None, type_: str | None = None) -> Element:
    el = Element("presence", attrs={"from": frm, "to": "romeo@localhost/phone"})
    if type_:
        el.set("type", type_)
    if show:
        el.text_tag("show", show)
    return el


def msg(frm: str, body: str | None = None, payload: Element | None = None) -> Element:
    el = Element("message", attrs={"from": frm, "to": "romeo@localhost/phone",
                                   "type": "chat"})
    if body is not None:
        el.text_tag("body", body)
    if payload is not None:
        el.append(payload)
    return el


def describe(stanzas: list[Element]) -> list[str]:
    out = []
    for s in stanzas:
        detail = s.child_text("body") or s.child_text("show") or s.get("type") or ""
        out.append(f"{s.name}:{s.get('from')}:{detail}")
    return out


def test_feature_offered_after_authentication() -> None:
    async def body(srv: ModuleTestServer) -> None:
        phone = await srv.connect("romeo@localhost/phone")
        features = Element("features", "http://etherx.jabber.org/streams")
        srv.server.hosts["localhost"].events.fire(
            "stream-features", StreamFeaturesEvent(phone.session, features))
        assert features.find("csi", NS) is not None
        phone.session.authenticated = False
        features = Element("features", "http://etherx.jabber.org/streams")
        srv.server.hosts["localhost"].events.fire(
            "stream-features", StreamFeaturesEvent(phone.session, features))
        assert features.find("csi", NS) is None
    run(body)


def test_inactive_holds_presence_and_chat_states_until_urgent() -> None:
    async def body(srv: ModuleTestServer) -> None:
        phone = await srv.connect("romeo@localhost/phone")
        state(srv, phone, "inactive")
        send = phone.session.send
        chatstate = Element("composing", "http://jabber.org/protocol/chatstates")
        send(presence("juliet@localhost/a", "away"))
        send(msg("juliet@localhost/a", payload=chatstate))
        send(presence("nurse@localhost/b", "dnd"))
        send(presence("juliet@localhost/a", "xa"))  # replaces her first one
        phone.nothing()
        send(msg("juliet@localhost/a", "hello"))  # urgent: flush, then it
        assert describe(phone.received()) == [
            "message:juliet@localhost/a:chat", "presence:nurse@localhost/b:dnd",
            "presence:juliet@localhost/a:xa", "message:juliet@localhost/a:hello"]
        send(presence("juliet@localhost/a", type_="unavailable"))
        phone.nothing()
        send(Element("iq", attrs={"type": "get", "id": "p", "from": "localhost"}))
        assert describe(phone.received()) == [
            "presence:juliet@localhost/a:unavailable", "iq:localhost:get"]
        send(presence("juliet@localhost/a", type_="subscribe"))  # a request: urgent
        assert describe(phone.received()) == ["presence:juliet@localhost/a:subscribe"]
    run(body)


def test_pubsub_events_held_unless_from_own_account() -> None:
    async def body(srv: ModuleTestServer) -> None:
        phone = await srv.connect("romeo@localhost/phone")
        state(srv, phone, "inactive")

        def event(frm: str) -> Element:
            el = Element("message", attrs={"from": frm, "to": "romeo@localhost/phone"})
            el.tag("event", "http://jabber.org/protocol/pubsub#event").tag("items")
            return el
        phone.session.send(event("juliet@localhost"))
        phone.nothing()
        phone.session.send(event("romeo@localhost"))
        assert describe(phone.received()) == [
            "message:juliet@localhost:", "message:romeo@localhost:"]
    run(body)


def test_active_flushes_and_stops_holding() -> None:
    async def body(srv: ModuleTestServer) -> None:
        phone = await srv.connect("romeo@localhost/phone")
        state(srv, phone, "inactive")
        state(srv, phone, "inactive")  # twice: one filter
        phone.session.send(presence("juliet@localhost/a", "away"))
        phone.nothing()
        state(srv, phone, "active")
        assert describe(phone.received()) == ["presence:juliet@localhost/a:away"]
        phone.session.send(presence("juliet@localhost/a", "chat"))
        assert describe(phone.received()) == ["presence:juliet@localhost/a:chat"]
        assert phone.session._filters is None  # noqa: SLF001 - the filter is gone
    run(body)


def test_full_buffer_is_flushed() -> None:
    async def body(srv: ModuleTestServer) -> None:
        phone = await srv.connect("romeo@localhost/phone")
        state(srv, phone, "inactive")
        for i in range(2):
            phone.session.send(presence(f"c{i}@localhost/a", "away"))
        phone.nothing()
        phone.session.send(presence("c2@localhost/a", "away"))
        assert len(phone.received()) == 3
        for _ in range(20):  # one contact flapping: replaced, never counted twice
            phone.session.send(presence("c9@localhost/a", "away"))
        assert phone.received() == []
        held = phone.session.data["csi_simple"]
        assert len(held.stanzas) < 6
        state(srv, phone, "active")
        assert describe(phone.received()) == ["presence:c9@localhost/a:away"]
    run(body, "csi_queue_size = 3")


def test_stream_management_sees_only_what_leaves() -> None:
    async def body(srv: ModuleTestServer) -> None:
        phone = await srv.connect("romeo@localhost/phone")
        counted: list[str] = []

        def count(stanza: Element) -> Element:
            counted.append(stanza.name)
            return stanza
        phone.session.add_send_filter(count, -100)
        state(srv, phone, "inactive")
        phone.session.send(presence("juliet@localhost/a", "away"))
        assert counted == []
        state(srv, phone, "active")
        assert counted == ["presence"]
    run(body)
