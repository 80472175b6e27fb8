"""Bookmarks (XEP-0402) and their XEP-0411 conversion: private XML storage (XEP-0049 /
XEP-0048) and the legacy PEP node see what the 0402 node holds, both ways, without
loops; every error of a private XML set."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from moduletest import ModuleTestServer, TestClient, condition
from test_pep import online
from test_pubsub import EVENT, PUBSUB, events, iq, publish_options

from tercet.modules._pubsub import PepService
from tercet.protocol.stanza import Element

NATIVE = "urn:xmpp:bookmarks:1"
LEGACY = "storage:bookmarks"
PRIVATE = "jabber:iq:private"
INFO = "http://jabber.org/protocol/disco#info"
ROOM = "theplay@conference.shakespeare.lit"
ORCHARD = "orchard@conference.shakespeare.lit"


def with_server(extra: str = "") -> Callable[
        [Callable[[ModuleTestServer], Awaitable[None]]], Callable[[], None]]:
    def wrap(fn: Callable[[ModuleTestServer], Awaitable[None]]) -> Callable[[], None]:
        def test() -> None:
            async def main() -> None:
                async with ModuleTestServer(extra) as srv:
                    await fn(srv)
            asyncio.run(asyncio.wait_for(main(), 30))
        test.__name__ = fn.__name__
        test.__doc__ = fn.__doc__
        return test
    return wrap


def native_item(jid: str, name: str = "The Play", nick: str = "JC",
                autojoin: str = "true", extra: str = "") -> str:
    return (f"<item id='{jid}'><conference xmlns='{NATIVE}' name='{name}' "
            f"autojoin='{autojoin}'><nick>{nick}</nick>{extra}</conference></item>")


OPTIONS = publish_options(persist_items="true", max_items="max",
                          send_last_published_item="never", access_model="whitelist")


async def publish_native(client: TestClient, jid: str, **kw: str) -> Element:
    return await iq(client, f"<publish node='{NATIVE}'>{native_item(jid, **kw)}</publish>"
                    + OPTIONS, to=None)


async def private(client: TestClient, body: str, type_: str = "set") -> Element:
    await client.send(f"<iq type='{type_}' id='pv'><query xmlns='{PRIVATE}'>{body}</query>"
                      "</iq>")
    for i, stanza in enumerate(client.conn.stanzas):
        if stanza.name == "iq" and stanza.get("id") == "pv":
            return client.conn.stanzas.pop(i)
    raise AssertionError(f"no reply in {client.conn.stanzas}")


async def private_storage(client: TestClient) -> Element:
    reply = await private(client, f"<storage xmlns='{LEGACY}'/>", "get")
    assert reply.get("type") == "result", reply
    query = reply.find("query", PRIVATE)
    assert query is not None
    storage = query.find("storage", LEGACY)
    assert storage is not None, reply
    return storage


def conferences(storage: Element) -> dict[str, Element]:
    return {c.get("jid") or "": c for c in storage.find_all("conference", LEGACY)}


async def native_items(srv: ModuleTestServer, user: str = "juliet") -> dict[str, Element]:
    pep = srv.server.hosts["localhost"].providers["pep"][0]
    assert isinstance(pep, PepService)
    return dict(await pep.get_items(user, NATIVE))


async def legacy_node(srv: ModuleTestServer, user: str = "juliet") -> Element | None:
    pep = srv.server.hosts["localhost"].providers["pep"][0]
    assert isinstance(pep, PepService)
    items = await pep.get_items(user, LEGACY)
    return items[-1][1] if items else None


LEGACY_TWO = (f"<storage xmlns='{LEGACY}'>"
              f"<conference jid='{ROOM}' name='The Play' autojoin='1'><nick>JC</nick>"
              "<password>secret</password></conference>"
              f"<conference jid='{ORCHARD}' name='The Orchard'/></storage>")


@with_server()
async def test_account_advertises_compat(srv: ModuleTestServer) -> None:
    juliet = await srv.connect("juliet@localhost/balcony")
    await juliet.send(f"<iq type='get' id='d' to='juliet@localhost'><query xmlns='{INFO}'/>"
                      "</iq>")
    reply = juliet.expect("iq", type="result")
    query = reply.find("query", INFO)
    assert query is not None
    features = {f.get("var") for f in query.find_all("feature", INFO)}
    assert {f"{NATIVE}#compat", f"{NATIVE}#compat-pep"} <= features


@with_server()
async def test_private_set_becomes_native_items(srv: ModuleTestServer) -> None:
    """XEP-0411 §3: a private XML set publishes each room to the 0402 node, which 0402
    clients are notified of."""
    juliet = await srv.connect("juliet@localhost/old")
    modern = await srv.connect("juliet@localhost/modern")
    await online(modern, NATIVE)
    modern.received()
    reply = await private(juliet, LEGACY_TWO)
    assert reply.get("type") == "result", reply
    items = await native_items(srv)
    assert list(items) == [ROOM, ORCHARD]
    play = items[ROOM]
    assert play.get("autojoin") == "true" and play.get("name") == "The Play"
    assert play.child_text("nick") == "JC" and play.child_text("password") == "secret"
    assert items[ORCHARD].get("autojoin") == "false"
    published = [i.get("id") for e in events(modern) for i in e.find_all("items", EVENT)
                 for i in i.find_all("item", EVENT)]
    assert published == [ROOM, ORCHARD]
    # The node has XEP-0402's configuration.
    pep = srv.server.hosts["localhost"].providers["pep"][0]
    config = await pep.node_config("juliet", NATIVE)
    assert config["access_model"] == "whitelist" and config["persist_items"] is True
    # The private store keeps no copy: a get is answered from the node.
    store = srv.server.storage.open("localhost", "private", "map")
    assert await store.get("juliet", f"{LEGACY}:storage") is None
    assert set(conferences(await private_storage(juliet))) == {ROOM, ORCHARD}


@with_server()
async def test_private_set_retracts_removed_and_skips_unchanged(
        srv: ModuleTestServer) -> None:
    juliet = await srv.connect("juliet@localhost/old")
    modern = await srv.connect("juliet@localhost/modern")
    await online(modern, NATIVE)
    await private(juliet, LEGACY_TWO)
    modern.received()
    # Same rooms again, one changed and one dropped.
    reply = await private(juliet, f"<storage xmlns='{LEGACY}'><conference jid='{ROOM}' "
                          "name='The Play' autojoin='true'><nick>Juliet</nick>"
                          "<password>secret</password></conference></storage>")
    assert reply.get("type") == "result"
    seen = events(modern)
    kinds = [(c.name, c.get("id")) for e in seen for i in e.find_all("items", EVENT)
             for c in i.elements()]
    assert kinds == [("item", ROOM), ("retract", ORCHARD)]
    assert list(await native_items(srv)) == [ROOM]
    # Setting the very same list again changes nothing (idempotent).
    await private(juliet, f"<storage xmlns='{LEGACY}'><conference jid='{ROOM}' "
                  "name='The Play' autojoin='true'><nick>Juliet</nick>"
                  "<password>secret</password></conference></storage>")
    assert events(modern) == []
    # An empty storage element removes every bookmark.
    await private(juliet, f"<storage xmlns='{LEGACY}'/>")
    assert await native_items(srv) == {}
    assert conferences(await private_storage(juliet)) == {}


@with_server()
async def test_native_publish_and_retract_reach_private_and_legacy_node(
        srv: ModuleTestServer) -> None:
    juliet = await srv.connect("juliet@localhost/modern")
    reply = await publish_native(juliet, ROOM, extra="<extensions><x xmlns='urn:example'/>"
                                 "</extensions>")
    assert reply.get("type") == "result", reply
    await publish_native(juliet, ORCHARD, name="The Orchard", autojoin="false")
    found = conferences(await private_storage(juliet))
    assert list(found) == [ROOM, ORCHARD]
    assert found[ROOM].get("autojoin") == "true" and found[ROOM].child_text("nick") == "JC"
    # 0402 extensions become the legacy conference's extra children and come back.
    assert found[ROOM].find("x", "urn:example") is not None
    legacy = await legacy_node(srv)
    assert legacy is not None and set(conferences(legacy)) == {ROOM, ORCHARD}
    reply = await iq(juliet, f"<retract node='{NATIVE}' notify='1'><item id='{ROOM}'/>"
                     "</retract>", to=None)
    assert reply.get("type") == "result", reply
    assert list(conferences(await private_storage(juliet))) == [ORCHARD]
    legacy = await legacy_node(srv)
    assert legacy is not None and list(conferences(legacy)) == [ORCHARD]
    # Round trip: the extension survived the legacy view and back.
    await private(juliet, f"<storage xmlns='{LEGACY}'>"
                  + conferences(await private_storage(juliet))[ORCHARD].to_xml(None)
                  + f"<conference jid='{ROOM}'><x xmlns='urn:example'/></conference>"
                    "</storage>")
    items = await native_items(srv)
    holder = items[ROOM].find("extensions")
    assert holder is not None and holder.find("x", "urn:example") is not None


@with_server()
async def test_legacy_pep_publish_is_converted(srv: ModuleTestServer) -> None:
    """XEP-0048 over PEP: a client replacing the whole list in storage:bookmarks."""
    juliet = await srv.connect("juliet@localhost/old")
    body = (f"<publish node='{LEGACY}'><item id='current'>{LEGACY_TWO}</item></publish>"
            + publish_options(persist_items="true", access_model="whitelist"))
    reply = await iq(juliet, body, to=None)
    assert reply.get("type") == "result", reply
    assert list(await native_items(srv)) == [ROOM, ORCHARD]
    # The legacy node is not rewritten by the conversion it caused (same bookmarks).
    legacy = await legacy_node(srv)
    assert legacy is not None and conferences(legacy)[ROOM].get("autojoin") == "1"


@with_server()
async def test_private_set_errors(srv: ModuleTestServer) -> None:
    juliet = await srv.connect("juliet@localhost/old")
    # XEP-0048 §3.2: jid is required, and must be a room's bare JID.
    for bad in ("<conference name='x'/>", "<conference jid='room@muc/nick'/>",
                "<conference jid='@@'/>"):
        reply = await private(juliet, f"<storage xmlns='{LEGACY}'>{bad}</storage>")
        assert condition(reply) == "bad-request", reply
    assert await native_items(srv) == {}


@with_server('pep_max_items = 2\npep_max_payload_size = 300')
async def test_private_set_over_the_bounds(srv: ModuleTestServer) -> None:
    juliet = await srv.connect("juliet@localhost/old")
    rooms = "".join(f"<conference jid='r{i}@muc.localhost'/>" for i in range(3))
    reply = await private(juliet, f"<storage xmlns='{LEGACY}'>{rooms}</storage>")
    assert condition(reply) == "policy-violation", reply
    big = "x" * 400
    reply = await private(juliet, f"<storage xmlns='{LEGACY}'><conference "
                          f"jid='r@muc.localhost' name='{big}'/></storage>")
    assert condition(reply) == "not-acceptable", reply  # payload-too-big
    assert await native_items(srv) == {}


@with_server()
async def test_other_private_fragments_untouched(srv: ModuleTestServer) -> None:
    juliet = await srv.connect("juliet@localhost/old")
    reply = await private(juliet, "<prefs xmlns='urn:example:prefs'><a/></prefs>")
    assert reply.get("type") == "result"
    store = srv.server.storage.open("localhost", "private", "map")
    assert await store.get("juliet", "urn:example:prefs:prefs") is not None
    storage = await private_storage(juliet)
    assert conferences(storage) == {}  # none anywhere: echoed empty


@with_server()
async def test_legacy_private_data_is_migrated(srv: ModuleTestServer) -> None:
    """A list an older server kept in private storage moves to the 0402 node when the
    account's resource binds."""
    store = srv.server.storage.open("localhost", "private", "map")
    await srv.create_user("juliet")
    await store.set("juliet", f"{LEGACY}:storage", LEGACY_TWO)
    juliet = await srv.connect("juliet@localhost/modern")
    assert list(await native_items(srv)) == [ROOM, ORCHARD]
    assert await store.get("juliet", f"{LEGACY}:storage") is None
    assert set(conferences(await private_storage(juliet))) == {ROOM, ORCHARD}


@with_server()
async def test_pep_get_without_bookmarks(srv: ModuleTestServer) -> None:
    """empty_bookmarks: no legacy node is created for an account without bookmarks."""
    juliet = await srv.connect("juliet@localhost/old")
    await private_storage(juliet)
    reply = await iq(juliet, f"<items node='{LEGACY}'/>", type_="get", to=None, ns=PUBSUB)
    assert condition(reply) == "item-not-found", reply
