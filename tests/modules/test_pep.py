"""PEP (XEP-0163): per-account services, +notify from verified caps, access models, the
``pep`` service other modules use, and account disco."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from moduletest import ModuleTestServer, TestClient, condition
from test_pubsub import EVENT, OWNER, PUBSUB, events, failed, iq, item, publish_options

from tercet.core import accounts
from tercet.modules._pubsub import PepItemEvent, PepService, PubsubError
from tercet.modules._pubsub.caps import caps_ver
from tercet.protocol.jid import JID
from tercet.protocol.stanza import Element
from tercet.protocol.xmlstream import parse_fragment

INFO = "http://jabber.org/protocol/disco#info"
ITEMS = "http://jabber.org/protocol/disco#items"
CAPS_NODE = "https://example.org/client"
TUNE = "http://jabber.org/protocol/tune"


def with_server(fn: Callable[[ModuleTestServer], Awaitable[None]]) -> Callable[[], None]:
    def test() -> None:
        async def main() -> None:
            async with ModuleTestServer() as srv:
                await fn(srv)
        asyncio.run(asyncio.wait_for(main(), 30))
    test.__name__ = fn.__name__
    return test


def answer(*notify: str, name: str = "client") -> Element:
    features = "".join(f"<feature var='{n}+notify'/>" for n in notify)
    return parse_fragment(f"<query xmlns='{INFO}'><identity category='client' type='pc' "
                          f"name='{name}'/><feature var='{INFO}'/>{features}</query>")


async def online(client: TestClient, *notify: str, reply: bool = True) -> str:
    """Send presence with caps for ``notify``; answer the server's disco query."""
    query = answer(*notify)
    ver = caps_ver(query)
    await client.send(f"<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' "
                      f"node='{CAPS_NODE}' ver='{ver}'/></presence>")
    if reply:
        await answer_disco(client, query, ver)
    return ver


async def answer_disco(client: TestClient, query: Element, ver: str) -> None:
    for stanza in list(client.conn.stanzas):
        if stanza.name == "iq" and stanza.get("id") == "disco":
            client.conn.stanzas.remove(stanza)
            assert stanza.find("query", INFO).get("node") == f"{CAPS_NODE}#{ver}"  # type: ignore[union-attr]
            result = query.copy()
            result.set("node", f"{CAPS_NODE}#{ver}")
            await client.send(Element("iq", attrs={"type": "result", "id": "disco",
                                                   "to": stanza.get("from") or ""},
                                      children=[result]))
    await settle()


async def settle() -> None:
    """Let the tasks an iq result started finish (results are not awaited by routing)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def befriend(srv: ModuleTestServer, a: str, b: str) -> None:
    """Mutual presence subscription, written the way the roster module stores it."""
    for user, contact in ((a, b), (b, a)):
        store = srv.server.storage.open("localhost", "roster", "keyval")
        roster = await store.get(user) or {}
        roster[f"{contact}@localhost"] = {"subscription": "both", "groups": ["friends"]}
        await store.set(user, roster)
        for service in srv.server.hosts["localhost"].providers.get("roster", []):
            service.invalidate(user)


def pep(srv: ModuleTestServer) -> PepService:
    [service] = srv.server.hosts["localhost"].providers["pep"]
    assert isinstance(service, PepService)
    return service


def tune(item_id: str = "current", title: str = "Cedars") -> str:
    return f"<item id='{item_id}'><tune xmlns='{TUNE}'><title>{title}</title></tune></item>"


# -- the caps hash ---------------------------------------------------------------------------

def test_caps_ver_matches_the_xep_example() -> None:
    """XEP-0115 §5.2's worked example."""
    query = parse_fragment(
        f"<query xmlns='{INFO}'><identity category='client' name='Exodus 0.9.1' type='pc'/>"
        "<feature var='http://jabber.org/protocol/caps'/>"
        f"<feature var='{INFO}'/><feature var='{ITEMS}'/>"
        "<feature var='http://jabber.org/protocol/muc'/></query>")
    assert caps_ver(query) == "QgayPKawpkPSDYmwT/WM94uAlu0="


def test_caps_ver_sorts_before_separating() -> None:
    """'tune' sorts before 'tune+notify' (§5.1 sorts the strings, then joins them);
    the hash slixmpp 1.17 sends for this answer."""
    query = parse_fragment(
        f"<query xmlns='{INFO}'><identity category='client' type='bot'/>"
        f"<feature var='{INFO}'/><feature var='jabber:x:data'/>"
        "<feature var='http://jabber.org/protocol/caps'/>"
        "<feature var='http://jabber.org/protocol/shim'/>"
        "<feature var='http://jabber.org/protocol/shim#SubID'/>"
        f"<feature var='{TUNE}+notify'/><feature var='{TUNE}'/></query>")
    assert caps_ver(query) == "C7e4y+fJKIBGH+engcQlunrmJJw="


# -- publish and notifications ------------------------------------------------------------------

@with_server
async def test_publish_autocreates_and_notifies_owner_with_notify(
        srv: ModuleTestServer) -> None:
    phone = await srv.connect("romeo@localhost/phone")
    laptop = await srv.connect("romeo@localhost/laptop")
    await online(phone, TUNE)
    await online(laptop)  # no +notify
    phone.received(), laptop.received()
    reply = await iq(phone, f"<publish node='{TUNE}'>{tune()}</publish>", to=None)
    published = reply.find("pubsub", PUBSUB).find("publish")  # type: ignore[union-attr]
    assert published is not None and published.get("node") == TUNE
    [event] = events(phone)
    sent = event.find("items", EVENT).find("item", EVENT)  # type: ignore[union-attr]
    assert sent is not None and sent.get("id") == "current" and sent.get("publisher") is None
    assert events(laptop) == []


@with_server
async def test_contacts_with_notify_get_notifications_as_access_allows(
        srv: ModuleTestServer) -> None:
    await befriend(srv, "romeo", "juliet")
    romeo = await srv.connect("romeo@localhost/r")
    juliet = await srv.connect("juliet@localhost/j")
    stranger = await srv.connect("tybalt@localhost/t")
    await online(juliet, TUNE)
    await online(stranger, TUNE)
    await online(romeo)
    for c in (romeo, juliet, stranger):
        c.received()
    await iq(romeo, f"<publish node='{TUNE}'>{tune()}</publish>", to=None)
    assert len(events(juliet)) == 1
    assert events(stranger) == []  # no subscription: presence access model
    await iq(romeo, f"<publish node='{TUNE}'>{tune()}</publish>"
             + publish_options(access_model="whitelist"), to=None)
    assert events(juliet) == []  # precondition failed: nothing published
    await iq(romeo, "<configure node='" + TUNE + "'>"
             "<x xmlns='jabber:x:data' type='submit'><field var='pubsub#access_model'>"
             "<value>whitelist</value></field></x></configure>", to=None, ns=OWNER)
    await iq(romeo, f"<publish node='{TUNE}'>{tune()}</publish>", to=None)
    assert events(juliet) == []  # whitelist: the owner only


@with_server
async def test_unverified_caps_answers_are_not_cached(srv: ModuleTestServer) -> None:
    romeo = await srv.connect("romeo@localhost/r")
    query = answer(TUNE)
    ver = caps_ver(query)
    await romeo.send(f"<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' "
                     f"node='{CAPS_NODE}' ver='{ver}'/></presence>")
    await answer_disco(romeo, answer(TUNE, "urn:other"), ver)  # does not hash to ver
    assert ver not in pep(srv).caps.features
    romeo.received()
    await iq(romeo, f"<publish node='{TUNE}'>{tune()}</publish>", to=None)
    assert events(romeo) == []
    # Another client with the hash gets asked again, and its right answer counts.
    other = await srv.connect("romeo@localhost/other")
    await online(other, TUNE)
    assert ver in pep(srv).caps.features


@with_server
async def test_last_item_when_interest_becomes_known(srv: ModuleTestServer) -> None:
    await befriend(srv, "romeo", "juliet")
    romeo = await srv.connect("romeo@localhost/r")
    await iq(romeo, f"<publish node='{TUNE}'>{tune()}</publish>", to=None)
    juliet = await srv.connect("juliet@localhost/j")
    await online(juliet, TUNE)
    received = events(juliet)
    assert [e.find("items", EVENT).get("node") for e in received] == [TUNE]  # type: ignore[union-attr]
    # A second resource with the now known hash: no query, the last item at once.
    second = await srv.connect("juliet@localhost/k")
    await online(second, TUNE, reply=False)
    await settle()
    stanzas = second.received()
    assert not any(s.name == "iq" for s in stanzas)
    assert any(s.find("event", EVENT) is not None for s in stanzas)
    # A status change with the same caps is not new interest: nothing is sent again.
    await online(second, TUNE, reply=False)
    await settle()
    assert events(second) == [] and events(juliet) == []


# -- access and errors ------------------------------------------------------------------------

@with_server
async def test_contacts_read_and_subscribe_as_the_access_model_allows(
        srv: ModuleTestServer) -> None:
    await befriend(srv, "romeo", "juliet")
    romeo = await srv.connect("romeo@localhost/r")
    juliet = await srv.connect("juliet@localhost/j")
    tybalt = await srv.connect("tybalt@localhost/t")
    await iq(romeo, f"<publish node='{TUNE}'>{tune()}</publish>", to=None)
    got = await iq(juliet, f"<items node='{TUNE}'/>", type_="get", to="romeo@localhost")
    assert got.get("type") == "result"
    assert failed(await iq(tybalt, f"<items node='{TUNE}'/>", type_="get",
                           to="romeo@localhost"),
                  "not-authorized", "presence-subscription-required")
    assert failed(await iq(juliet, f"<publish node='{TUNE}'>{tune()}</publish>",
                           to="romeo@localhost"), "forbidden")
    assert failed(await iq(juliet, "<create node='x'/>", to="romeo@localhost"), "forbidden")
    reply = await iq(juliet, f"<subscribe node='{TUNE}' jid='{juliet.jid}'/>",
                     to="romeo@localhost")
    assert reply.get("type") == "result"
    assert len(events(juliet)) == 1  # last item on subscribe (on_sub_and_presence)
    await iq(romeo, f"<publish node='{TUNE}'>{tune('current', 'Two')}</publish>", to=None)
    assert len(events(juliet)) == 1  # explicit subscription, no caps needed
    missing = await iq(romeo, "<items node='nope'/>", type_="get", to=None)
    assert failed(missing, "item-not-found")
    await romeo.send("<iq type='get' id='x' to='nobody@localhost'><pubsub "
                     f"xmlns='{PUBSUB}'><items node='a'/></pubsub></iq>")
    assert condition(romeo.expect("iq", id="x")) == "service-unavailable"


@with_server
async def test_private_storage_options_and_bounds(srv: ModuleTestServer) -> None:
    """XEP-0223: persist_items + whitelist accepted as options of a new node."""
    romeo = await srv.connect("romeo@localhost/r")
    opts = publish_options(persist_items="true", access_model="whitelist")
    node = "urn:xmpp:bookmarks:1"
    assert (await iq(romeo, f"<publish node='{node}'>{item('a')}</publish>{opts}",
                     to=None)).get("type") == "result"
    assert (await iq(romeo, f"<publish node='{node}'>{item('b')}</publish>{opts}",
                     to=None)).get("type") == "result"
    config = await pep(srv).node_config("romeo", node)
    assert config is not None and config["access_model"] == "whitelist"
    assert failed(await iq(romeo, f"<publish node='{node}'>{item('c')}</publish>"
                           + publish_options(access_model="open"), to=None),
                  "conflict", "precondition-not-met")
    big = item("big", "x" * 70_000)
    assert failed(await iq(romeo, f"<publish node='n2'>{big}</publish>", to=None),
                  "not-acceptable", "payload-too-big")


# -- disco and account deletion -------------------------------------------------------------

@with_server
async def test_account_disco_shows_pep(srv: ModuleTestServer) -> None:
    await befriend(srv, "romeo", "juliet")
    romeo = await srv.connect("romeo@localhost/r")
    juliet = await srv.connect("juliet@localhost/j")
    await iq(romeo, f"<publish node='{TUNE}'>{tune()}</publish>", to=None)
    await iq(romeo, f"<publish node='secret'>{item()}</publish>"
             + publish_options(access_model="whitelist"), to=None)
    await romeo.send(f"<iq type='get' id='i'><query xmlns='{INFO}'/></iq>")
    info = romeo.expect("iq", id="i").find("query", INFO)
    assert info is not None
    assert ("pubsub", "pep") in [(i.get("category"), i.get("type"))
                                 for i in info.find_all("identity", INFO)]
    assert PUBSUB in [f.get("var") for f in info.find_all("feature", INFO)]

    async def nodes(client: TestClient) -> list[str | None]:
        await client.send(f"<iq type='get' id='n' to='romeo@localhost'>"
                          f"<query xmlns='{ITEMS}'/></iq>")
        query = client.expect("iq", id="n").find("query", ITEMS)
        return [i.get("node") for i in query.elements() if i.get("node")]  # type: ignore[union-attr]

    assert await nodes(romeo) == [TUNE, "secret"]
    assert await nodes(juliet) == [TUNE]


@with_server
async def test_node_disco_and_resources_forgotten_on_unbind(srv: ModuleTestServer) -> None:
    await befriend(srv, "romeo", "juliet")
    romeo = await srv.connect("romeo@localhost/r")
    juliet = await srv.connect("juliet@localhost/j")
    await iq(romeo, f"<publish node='{TUNE}'>{tune()}</publish>", to=None)

    async def disco(ns: str, node: str) -> Element:
        await juliet.send(f"<iq type='get' id='d' to='romeo@localhost'>"
                          f"<query xmlns='{ns}' node='{node}'/></iq>")
        return juliet.expect("iq", id="d")

    info = (await disco(INFO, TUNE)).find("query", INFO)
    assert info is not None and info.get("node") == TUNE
    assert [(i.get("category"), i.get("type")) for i in info.find_all("identity", INFO)] \
        == [("pubsub", "leaf")]
    items = (await disco(ITEMS, TUNE)).find("query", ITEMS)
    assert [i.get("name") for i in items.elements()] == ["current"]  # type: ignore[union-attr]
    assert condition(await disco(INFO, "nope")) == "item-not-found"
    await online(juliet, TUNE)
    assert juliet.jid in pep(srv).caps.resources
    await juliet.disconnect()
    assert juliet.jid not in pep(srv).caps.resources


@with_server
async def test_account_deletion_removes_pep_data(srv: ModuleTestServer) -> None:
    romeo = await srv.connect("romeo@localhost/r")
    await iq(romeo, f"<publish node='{TUNE}'>{tune()}</publish>", to=None)
    store = srv.server.storage.open("localhost", "pep", "keyval")
    assert await store.get("romeo") is not None
    assert await accounts.delete_account(srv.server, "localhost", "romeo")
    assert await store.get("romeo") is None
    assert "romeo" not in pep(srv).services


# -- the service for other modules (docs/pep.md) -------------------------------------------------

@with_server
async def test_service_api_and_events(srv: ModuleTestServer) -> None:
    seen: list[tuple[str, PepItemEvent]] = []
    host = srv.server.hosts["localhost"]
    host.events.hook("pep-item-published", lambda e: seen.append(("published", e)))
    host.events.hook("pep-item-retracted", lambda e: seen.append(("retracted", e)))
    service = pep(srv)
    payload = parse_fragment("<storage xmlns='urn:example'>x</storage>")
    item_id = await service.publish("romeo", "urn:example", None, payload,
                                    {"access_model": "whitelist"},
                                    JID.parse("admin@localhost/console"))
    assert item_id
    assert await service.get_items("romeo", "urn:example") == [(item_id, payload)]
    assert await service.get_items("romeo", "absent") == []
    config: dict[str, Any] | None = await service.node_config("romeo", "urn:example")
    assert config is not None and config["access_model"] == "whitelist"
    try:
        await service.publish("romeo", "urn:example", "2", payload, {"access_model": "open"})
    except PubsubError as error:
        assert error.kind == "precondition-not-met"
    else:
        raise AssertionError("precondition not checked")
    await service.retract("romeo", "urn:example", item_id)
    await service.delete_node("romeo", "urn:example")
    assert await service.node_config("romeo", "urn:example") is None
    assert [(k, e.node, e.item_id, e.publisher) for k, e in seen] == [
        ("published", "urn:example", item_id, "admin@localhost"),
        ("retracted", "urn:example", item_id, "admin@localhost")]


@with_server
async def test_no_service_is_cached_for_an_account_without_nodes(srv: ModuleTestServer) -> None:
    # Memory per idle session: the bind-time avatar check and other read-only lookups
    # leave no service behind for an account without PEP nodes.
    service = pep(srv)
    await srv.connect("romeo@localhost/r")
    assert "romeo" not in service.services
    assert await service.node_config("romeo", TUNE) is None
    assert await service.get_items("romeo", TUNE) == []
    await service.delete_node("romeo", TUNE)
    assert "romeo" not in service.services
    # An account with nodes in storage: loaded and cached as before.
    await service.publish("romeo", TUNE, "current",
                          parse_fragment(f"<tune xmlns='{TUNE}'><title>Cedars</title></tune>"))
    service.forget("romeo")
    config = await service.node_config("romeo", TUNE)
    assert config is not None and "romeo" in service.services
    assert [i for i, _ in await service.get_items("romeo", TUNE)] == ["current"]


@with_server
async def test_roster_access_model_needs_an_allowed_group(srv: ModuleTestServer) -> None:
    await befriend(srv, "romeo", "juliet")  # juliet is in Romeo's group "friends"
    await befriend(srv, "romeo", "tybalt")
    romeo = await srv.connect("romeo@localhost/r")
    juliet = await srv.connect("juliet@localhost/j")
    tybalt = await srv.connect("tybalt@localhost/t")
    store = srv.server.storage.open("localhost", "roster", "keyval")
    roster = await store.get("romeo")
    roster["tybalt@localhost"]["groups"] = ["enemies"]
    await store.set("romeo", roster)
    for service in srv.server.hosts["localhost"].providers["roster"]:
        service.invalidate("romeo")
    await iq(romeo, f"<publish node='{TUNE}'>{tune()}</publish>"
             + publish_options(access_model="roster"), to=None)
    # A node created by publish-options is configured by them: change it to roster groups.
    await iq(romeo, f"<configure node='{TUNE}'><x xmlns='jabber:x:data' type='submit'>"
             "<field var='pubsub#roster_groups_allowed'><value>friends</value></field>"
             "</x></configure>", to=None, ns=OWNER)
    ok = await iq(juliet, f"<items node='{TUNE}'/>", type_="get", to="romeo@localhost")
    assert ok.get("type") == "result"
    assert failed(await iq(tybalt, f"<items node='{TUNE}'/>", type_="get",
                           to="romeo@localhost"), "not-authorized", "not-in-roster-group")


@with_server
async def test_last_items_reach_a_one_way_subscriber_coming_online(
        srv: ModuleTestServer) -> None:
    """Juliet receives Romeo's presence but not the other way round: Romeo's service never
    sees her presence, yet her resources get his last items when they come online."""
    store = srv.server.storage.open("localhost", "roster", "keyval")
    await store.set("romeo", {"juliet@localhost": {"subscription": "from"}})
    await store.set("juliet", {"romeo@localhost": {"subscription": "to"}})
    for service in srv.server.hosts["localhost"].providers["roster"]:
        service.invalidate("romeo")
        service.invalidate("juliet")
    romeo = await srv.connect("romeo@localhost/r")
    await iq(romeo, f"<publish node='{TUNE}'>{tune()}</publish>", to=None)
    juliet = await srv.connect("juliet@localhost/j")
    await online(juliet, TUNE)  # her own service asks; the answer brings Romeo's item
    assert [e.find("items", EVENT).get("node") for e in events(juliet)] == [TUNE]  # type: ignore[union-attr]
    later = await srv.connect("juliet@localhost/k")
    await online(later, TUNE, reply=False)  # a known hash: at once
    await settle()
    assert len(events(later)) == 1
    await iq(romeo, f"<publish node='{TUNE}'>{tune('current', 'Two')}</publish>", to=None)
    assert len(events(juliet)) == 1 and len(events(later)) == 1
