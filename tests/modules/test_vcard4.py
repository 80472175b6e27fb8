"""vCard4 (XEP-0292): the PEP node urn:xmpp:vcard4 and the iq shortcut on bare JIDs,
with its errors."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from moduletest import ModuleTestServer, TestClient, condition
from test_pep import befriend
from test_pubsub import iq, publish_options

from tercet.modules._pubsub import PepService
from tercet.protocol.stanza import Element

NS = "urn:ietf:params:xml:ns:vcard-4.0"
NODE = "urn:xmpp:vcard4"
INFO = "http://jabber.org/protocol/disco#info"
CARD = f"<vcard xmlns='{NS}'><fn><text>Juliet Capulet</text></fn></vcard>"


def with_server(extra: str = "") -> Callable[
        [Callable[[ModuleTestServer], Awaitable[None]]], Callable[[], None]]:
    def wrap(fn: Callable[[ModuleTestServer], Awaitable[None]]) -> Callable[[], None]:
        def test() -> None:
            async def main() -> None:
                async with ModuleTestServer(extra) as srv:
                    await fn(srv)
            asyncio.run(asyncio.wait_for(main(), 30))
        test.__name__ = fn.__name__
        return test
    return wrap


async def request(client: TestClient, type_: str, body: str, to: str | None = None) -> Element:
    to_attr = f" to='{to}'" if to else ""
    await client.send(f"<iq type='{type_}' id='v4'{to_attr}>{body}</iq>")
    for i, stanza in enumerate(client.conn.stanzas):
        if stanza.name == "iq" and stanza.get("id") == "v4":
            return client.conn.stanzas.pop(i)
    raise AssertionError(f"no reply in {client.conn.stanzas}")


def fn_of(reply: Element) -> str | None:
    card = reply.find("vcard", NS)
    fn = card.find("fn", NS) if card is not None else None
    return fn.child_text("text", NS) if fn is not None else None


@with_server()
async def test_set_then_get_by_owner_and_others(srv: ModuleTestServer) -> None:
    juliet = await srv.connect("juliet@localhost/balcony")
    reply = await request(juliet, "set", CARD)
    assert reply.get("type") == "result", reply
    pep = srv.server.hosts["localhost"].providers["pep"][0]
    assert isinstance(pep, PepService)
    items = await pep.get_items("juliet", NODE)
    assert [i for i, _ in items] == ["current"]
    config = await pep.node_config("juliet", NODE)
    assert config is not None and config["access_model"] == "open"
    assert fn_of(await request(juliet, "get", f"<vcard xmlns='{NS}'/>")) == "Juliet Capulet"
    romeo = await srv.connect("romeo@localhost/orchard")
    reply = await request(romeo, "get", f"<vcard xmlns='{NS}'/>", "juliet@localhost")
    assert reply.get("from") == "juliet@localhost" and fn_of(reply) == "Juliet Capulet"


@with_server()
async def test_pep_published_card_is_served(srv: ModuleTestServer) -> None:
    """A client that publishes with plain PEP (presence access) is read by contacts
    only."""
    juliet = await srv.connect("juliet@localhost/balcony")
    reply = await iq(juliet, f"<publish node='{NODE}'><item id='current'>{CARD}</item>"
                     "</publish>" + publish_options(access_model="presence"), to=None)
    assert reply.get("type") == "result", reply
    stranger = await srv.connect("tybalt@localhost/t")
    reply = await request(stranger, "get", f"<vcard xmlns='{NS}'/>", "juliet@localhost")
    assert condition(reply) == "item-not-found", reply
    await befriend(srv, "juliet", "romeo")
    romeo = await srv.connect("romeo@localhost/orchard")
    reply = await request(romeo, "get", f"<vcard xmlns='{NS}'/>", "juliet@localhost")
    assert fn_of(reply) == "Juliet Capulet", reply


@with_server()
async def test_errors(srv: ModuleTestServer) -> None:
    juliet = await srv.connect("juliet@localhost/balcony")
    # None published yet.
    reply = await request(juliet, "get", f"<vcard xmlns='{NS}'/>")
    assert condition(reply) == "item-not-found", reply
    # Nobody sets another account's vCard.
    await srv.create_user("romeo")
    reply = await request(juliet, "set", CARD, "romeo@localhost")
    assert condition(reply) == "forbidden", reply
    # RFC 6121 §8.5.1: no such account.
    reply = await request(juliet, "get", f"<vcard xmlns='{NS}'/>", "nobody@localhost")
    assert condition(reply) == "service-unavailable", reply


@with_server("pep_max_payload_size = 256")
async def test_too_big_and_empty(srv: ModuleTestServer) -> None:
    juliet = await srv.connect("juliet@localhost/balcony")
    big = f"<vcard xmlns='{NS}'><note><text>{'x' * 400}</text></note></vcard>"
    reply = await request(juliet, "set", big)
    assert condition(reply) == "not-acceptable", reply  # pubsub payload-too-big
    assert (await request(juliet, "set", CARD)).get("type") == "result"
    # An empty vcard removes the published one.
    assert (await request(juliet, "set", f"<vcard xmlns='{NS}'/>")).get("type") == "result"
    reply = await request(juliet, "get", f"<vcard xmlns='{NS}'/>")
    assert condition(reply) == "item-not-found", reply


@with_server()
async def test_disco_feature(srv: ModuleTestServer) -> None:
    juliet = await srv.connect("juliet@localhost/balcony")
    reply = await request(juliet, "get", f"<query xmlns='{INFO}'/>", "juliet@localhost")
    query = reply.find("query", INFO)
    assert query is not None
    assert NS in {f.get("var") for f in query.find_all("feature", INFO)}
