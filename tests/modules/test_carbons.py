"""Message Carbons (XEP-0280), XML in and XML out on the module test server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from moduletest import ModuleTestServer, TestClient

from tercet.protocol.stanza import Element

NS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"
CONFIG = 'modules_enabled = ["carbons"]'


def run(body: Callable[[ModuleTestServer], Awaitable[None]]) -> None:
    async def main() -> None:
        async with ModuleTestServer(CONFIG) as srv:
            await body(srv)
    asyncio.run(asyncio.wait_for(main(), 30))


async def online(srv: ModuleTestServer, jid: str, *, carbons: bool = True,
                 priority: int = 0) -> TestClient:
    client = await srv.connect(jid)
    if carbons:
        await client.send(f"<iq type='set' id='on'><enable xmlns='{NS}'/></iq>")
        client.expect("iq", type="result", id="on")
    await client.send(f"<presence><priority>{priority}</priority></presence>")
    return client


def quiet(*clients: TestClient) -> None:
    for client in clients:
        client.received()


def forwarded(copy: Element, direction: str) -> Element:
    wrapper = copy.find(direction, NS)
    assert wrapper is not None, f"no <{direction}/> in {copy}"
    inner = wrapper.find("forwarded", NS_FORWARD)
    assert inner is not None
    original = inner.find("message", "jabber:client")
    assert original is not None
    return original


def chat(to: str, body: str | None = "hi", extra: str = "", type_: str = "chat") -> str:
    text = f"<body>{body}</body>" if body is not None else ""
    return f"<message type='{type_}' to='{to}' id='m1'>{text}{extra}</message>"


def test_feature_and_enable_disable() -> None:
    async def body(srv: ModuleTestServer) -> None:
        host = srv.server.hosts["localhost"]
        assert NS in host.features
        phone = await srv.connect("romeo@localhost/phone")
        for payload, state in (("enable", True), ("enable", True), ("disable", None),
                               ("disable", None)):  # twice is not an error (§10.1)
            await phone.send(f"<iq type='set' id='x'><{payload} xmlns='{NS}'/></iq>")
            phone.expect("iq", type="result", id="x")
            assert phone.session.data.get("carbons") is state
    run(body)


def test_received_copy_to_the_other_resources() -> None:
    async def body(srv: ModuleTestServer) -> None:
        phone = await online(srv, "romeo@localhost/phone")
        laptop = await online(srv, "romeo@localhost/laptop")
        off = await online(srv, "romeo@localhost/old", carbons=False)
        juliet = await online(srv, "juliet@localhost/balcony", carbons=False)
        quiet(phone, laptop, off, juliet)
        await juliet.send(chat("romeo@localhost/phone"))
        assert phone.expect("message").find("body") is not None
        copy = laptop.expect("message", type="chat", to="romeo@localhost/laptop")
        assert copy.get("from") == "romeo@localhost"
        original = forwarded(copy, "received")
        assert original.get("from") == "juliet@localhost/balcony"
        assert original.child_text("body") == "hi"
        off.nothing()
        phone.nothing()
        juliet.nothing()
    run(body)


def test_bare_jid_copy_goes_to_who_did_not_get_it() -> None:
    async def body(srv: ModuleTestServer) -> None:
        phone = await online(srv, "romeo@localhost/phone", priority=5)
        laptop = await online(srv, "romeo@localhost/laptop", priority=1)
        juliet = await online(srv, "juliet@localhost/balcony", carbons=False)
        quiet(phone, laptop, juliet)
        await juliet.send(chat("romeo@localhost"))
        phone.expect("message", to="romeo@localhost")  # the original, top priority
        phone.nothing()
        forwarded(laptop.expect("message", from_="romeo@localhost"), "received")
    run(body)


def test_sent_copy_to_the_other_resources() -> None:
    async def body(srv: ModuleTestServer) -> None:
        phone = await online(srv, "romeo@localhost/phone", carbons=False)
        laptop = await online(srv, "romeo@localhost/laptop")
        juliet = await online(srv, "juliet@localhost/balcony", carbons=False)
        quiet(phone, laptop, juliet)
        await phone.send(chat("juliet@localhost", "from the phone"))
        juliet.expect("message")
        copy = laptop.expect("message", from_="romeo@localhost", to="romeo@localhost/laptop")
        original = forwarded(copy, "sent")
        assert original.get("to") == "juliet@localhost"
        assert original.get("from") == "romeo@localhost/phone"
        phone.nothing()  # the sender itself gets no copy (§8)
    run(body)


def test_not_eligible_messages_are_not_copied() -> None:
    async def body(srv: ModuleTestServer) -> None:
        phone = await online(srv, "romeo@localhost/phone")
        laptop = await online(srv, "romeo@localhost/laptop")
        juliet = await online(srv, "juliet@localhost/balcony", carbons=False)
        quiet(phone, laptop, juliet)
        cases = [
            chat("romeo@localhost/phone", extra="<no-copy xmlns='urn:xmpp:hints'/>"),
            chat("romeo@localhost/phone", body=None, type_="normal"),
            chat("romeo@localhost/phone", type_="headline"),
            chat("romeo@localhost/phone",
                 extra="<x xmlns='http://jabber.org/protocol/muc#user'/>"),
        ]
        for xml in cases:
            await juliet.send(xml)
            phone.expect("message")
            laptop.nothing()
        await juliet.send(chat("romeo@localhost/phone", type_="normal"))  # with a body
        phone.expect("message")
        forwarded(laptop.expect("message", type="normal"), "received")
    run(body)


def test_private_is_not_copied_and_removed_on_delivery() -> None:
    async def body(srv: ModuleTestServer) -> None:
        phone = await online(srv, "romeo@localhost/phone")
        laptop = await online(srv, "romeo@localhost/laptop")
        juliet = await online(srv, "juliet@localhost/balcony")
        nurse = await online(srv, "juliet@localhost/nurse")
        quiet(phone, laptop, juliet, nurse)
        await juliet.send(chat("romeo@localhost/phone", extra=f"<private xmlns='{NS}'/>"))
        delivered = phone.expect("message")
        assert delivered.find("private", NS) is None  # §9: removed before delivery
        laptop.nothing()
        nurse.nothing()  # no sent copy either
    run(body)


def test_forged_carbons_are_stripped() -> None:
    async def body(srv: ModuleTestServer) -> None:
        phone = await online(srv, "romeo@localhost/phone")
        juliet = await online(srv, "juliet@localhost/balcony", carbons=False)
        quiet(phone, juliet)
        fake = ("<received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>"
                "<message xmlns='jabber:client' from='rosaline@localhost/x' "
                "to='romeo@localhost/phone' type='chat'><body>forged</body></message>"
                "</forwarded></received>")
        await juliet.send(chat("romeo@localhost/phone", body=None, extra=fake))
        phone.nothing()  # nothing but the forgery: dropped
        await juliet.send(chat("romeo@localhost", body="real", extra=fake.replace(
            "received", "sent")))
        got = phone.expect("message")
        assert got.child_text("body") == "real"
        assert got.find("sent", NS) is None and got.find("received", NS) is None
    run(body)


def test_disable_stops_copies() -> None:
    async def body(srv: ModuleTestServer) -> None:
        phone = await online(srv, "romeo@localhost/phone")
        laptop = await online(srv, "romeo@localhost/laptop")
        juliet = await online(srv, "juliet@localhost/balcony", carbons=False)
        quiet(phone, laptop, juliet)
        await laptop.send(f"<iq type='set' id='off'><disable xmlns='{NS}'/></iq>")
        laptop.expect("iq", type="result")
        await juliet.send(chat("romeo@localhost/phone"))
        phone.expect("message")
        await phone.send(chat("juliet@localhost"))
        laptop.nothing()
    run(body)


def test_messages_to_own_account_are_copied_once() -> None:
    async def body(srv: ModuleTestServer) -> None:
        phone = await online(srv, "romeo@localhost/phone")
        laptop = await online(srv, "romeo@localhost/laptop")
        desk = await online(srv, "romeo@localhost/desk")
        quiet(phone, laptop, desk)
        await phone.send(chat("romeo@localhost/laptop", "note to self"))
        laptop.expect("message")
        forwarded(desk.expect("message"), "received")
        desk.nothing()
        phone.nothing()
    run(body)


def test_received_carbon_carries_the_archive_stanza_id() -> None:
    """With mam (priority 1 on message/*) the original gets its stanza-id before carbons
    (-0.5) copies it: the received carbon carries the same id, by which clients dedupe
    against the archive (XEP-0313, XEP-0359). mam does not stamp outgoing messages, so a
    sent carbon carries none."""
    async def main() -> None:
        async with ModuleTestServer('modules_enabled = ["carbons", "mam"]') as srv:
            phone = await online(srv, "romeo@localhost/phone")
            laptop = await online(srv, "romeo@localhost/laptop", priority=-1)
            juliet = await online(srv, "juliet@localhost/balcony", carbons=False)
            quiet(phone, laptop, juliet)
            await juliet.send(chat("romeo@localhost"))
            original = phone.expect("message")
            copy = forwarded(laptop.expect("message"), "received")
            sid = "urn:xmpp:sid:0"
            ids = [(s.get("by"), s.get("id")) for s in original.find_all("stanza-id", sid)]
            assert len(ids) == 1 and ids[0][0] == "romeo@localhost"
            assert [(s.get("by"), s.get("id")) for s in copy.find_all("stanza-id", sid)] == ids
            await phone.send(chat("juliet@localhost/balcony"))
            sent = forwarded(laptop.expect("message"), "sent")
            assert sent.find("stanza-id", sid) is None
    asyncio.run(asyncio.wait_for(main(), 30))
