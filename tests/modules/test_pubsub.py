"""The pubsub component (XEP-0060): XML in, XML out, one test per use case and its
errors (§6-§8). The helpers here serve test_pep.py too."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from moduletest import ModuleTestServer, TestClient, condition

from tercet.protocol.stanza import Element

PUBSUB = "http://jabber.org/protocol/pubsub"
OWNER = "http://jabber.org/protocol/pubsub#owner"
EVENT = "http://jabber.org/protocol/pubsub#event"
ERRORS = "http://jabber.org/protocol/pubsub#errors"
DATA = "jabber:x:data"
SERVICE = "pubsub.localhost"
COMPONENT = (f'\n[components."{SERVICE}"]\nmodule = "pubsub"\n'
             "expose_publisher = true\npubsub_max_items = 10\npubsub_max_payload_size = 300\n")
ADMINS = 'admins = ["admin@localhost"]'


def with_server(extra: str = ADMINS, host_extra: str = COMPONENT) -> Callable[..., Any]:
    """Run the decorated coroutine with a started ModuleTestServer."""
    def wrap(fn: Callable[[ModuleTestServer], Awaitable[None]]) -> Callable[[], None]:
        def test() -> None:
            async def main() -> None:
                async with ModuleTestServer(extra, host_extra) as srv:
                    await fn(srv)
            asyncio.run(asyncio.wait_for(main(), 30))
        test.__name__ = fn.__name__
        test.__doc__ = fn.__doc__
        return test
    return wrap


async def iq(client: TestClient, body: str, *, type_: str = "set", to: str | None = SERVICE,
             ns: str = PUBSUB) -> Element:
    """Send an iq with <pubsub xmlns=ns>body</pubsub>; return the reply to it."""
    to_attr = f" to='{to}'" if to else ""
    await client.send(f"<iq type='{type_}' id='ps'{to_attr}><pubsub xmlns='{ns}'>{body}"
                      "</pubsub></iq>")
    for i, stanza in enumerate(client.conn.stanzas):
        if stanza.name == "iq" and stanza.get("id") == "ps":
            return client.conn.stanzas.pop(i)
    raise AssertionError(f"no reply in {client.conn.stanzas}")


def app_error(reply: Element) -> str | None:
    """The pubsub#errors condition of an error reply."""
    error = reply.find("error")
    found = error.find_ns(ERRORS) if error is not None else None
    return None if found is None else found.name


def failed(reply: Element, cond: str, app: str | None = None) -> bool:
    assert reply.get("type") == "error", reply
    assert condition(reply) == cond, reply
    assert app_error(reply) == app, reply
    return True


def events(client: TestClient) -> list[Element]:
    """The pubsub#event payloads received (and forget everything received)."""
    out = []
    for stanza in client.received():
        event = stanza.find("event", EVENT) if stanza.name == "message" else None
        if event is not None:
            out.append(event)
    return out


def item(item_id: str | None = "i1", text: str = "hello") -> str:
    attr = f" id='{item_id}'" if item_id else ""
    return f"<item{attr}><entry xmlns='http://www.w3.org/2005/Atom'>{text}</entry></item>"


def form(form_type: str, **values: str) -> str:
    fields = "".join(f"<field var='pubsub#{k}'><value>{v}</value></field>"
                     for k, v in values.items())
    return (f"<x xmlns='{DATA}' type='submit'><field var='FORM_TYPE' type='hidden'>"
            f"<value>{form_type}</value></field>{fields}</x>")


def node_config(**values: str) -> str:
    return form("http://jabber.org/protocol/pubsub#node_config", **values)


def publish_options(**values: str) -> str:
    return ("<publish-options>"
            + form("http://jabber.org/protocol/pubsub#publish-options", **values)
            + "</publish-options>")


async def create(srv: ModuleTestServer, node: str = "n") -> None:
    admin = await srv.connect("admin@localhost/a")
    reply = await iq(admin, f"<create node='{node}'/>")
    assert reply.get("type") == "result", reply
    await admin.disconnect()


# -- §8.1 create ------------------------------------------------------------------------

@with_server()
async def test_create_conflict_forbidden_and_instant(srv: ModuleTestServer) -> None:
    admin = await srv.connect("admin@localhost/a")
    romeo = await srv.connect("romeo@localhost/r")
    reply = await iq(admin, "<create node='n'/>")
    assert reply.get("type") == "result"
    assert failed(await iq(admin, "<create node='n'/>"), "conflict")
    assert failed(await iq(romeo, "<create node='m'/>"), "forbidden")
    instant = await iq(admin, "<create/>")
    created = instant.find("pubsub", PUBSUB).find("create")  # type: ignore[union-attr]
    assert created is not None and created.get("node"), instant
    assert created.get("node") in srv.server.hosts[SERVICE].providers["pubsub"][0].nodes


@with_server()
async def test_create_and_configure(srv: ModuleTestServer) -> None:
    admin = await srv.connect("admin@localhost/a")
    reply = await iq(admin, "<create node='n'/><configure>"
                     + node_config(title="News", max_items="3") + "</configure>")
    assert reply.get("type") == "result"
    got = await iq(admin, "<configure node='n'/>", type_="get", ns=OWNER)
    values = form_values(got)
    assert values["pubsub#title"] == ["News"] and values["pubsub#max_items"] == ["3"]
    bad = await iq(admin, "<create node='m'/><configure>" + node_config(max_items="zero")
                   + "</configure>")
    assert failed(bad, "not-acceptable")
    assert failed(await iq(admin, "<create node='m'/><configure>"
                           + node_config(bogus="1") + "</configure>"), "not-acceptable")


def form_values(reply: Element) -> dict[str, list[str]]:
    pubsub = reply.find("pubsub", OWNER)
    assert pubsub is not None, reply
    holder = next(pubsub.elements())
    x = holder.find("x", DATA)
    assert x is not None
    return {f.get("var") or "": [v.text for v in f.find_all("value", DATA)]
            for f in x.find_all("field", DATA)}


# -- §7.1 publish ---------------------------------------------------------------------------

@with_server()
async def test_publish_errors(srv: ModuleTestServer) -> None:
    await create(srv)
    admin = await srv.connect("admin@localhost/a")
    romeo = await srv.connect("romeo@localhost/r")
    assert failed(await iq(admin, f"<publish node='nope'>{item()}</publish>"), "item-not-found")
    assert failed(await iq(admin, f"<publish>{item()}</publish>"),
                  "bad-request", "nodeid-required")
    assert failed(await iq(admin, "<publish node='n'/>"), "bad-request", "item-required")
    assert failed(await iq(admin, "<publish node='n'><item id='x'/></publish>"),
                  "bad-request", "item-required")
    two = "<item id='x'><a xmlns='urn:a'/><b xmlns='urn:b'/></item>"
    assert failed(await iq(admin, f"<publish node='n'>{two}</publish>"),
                  "bad-request", "invalid-payload")
    assert failed(await iq(romeo, f"<publish node='n'>{item()}</publish>"), "forbidden")
    big = item("big", "x" * 400)
    assert failed(await iq(admin, f"<publish node='n'>{big}</publish>"),
                  "not-acceptable", "payload-too-big")


@with_server()
async def test_publish_generates_ids_and_notifies_with_publisher(
        srv: ModuleTestServer) -> None:
    await create(srv)
    admin = await srv.connect("admin@localhost/a")
    juliet = await srv.connect("juliet@localhost/j")
    sub = await iq(juliet, f"<subscribe node='n' jid='{juliet.jid}'/>")
    subscription = sub.find("pubsub", PUBSUB).find("subscription")  # type: ignore[union-attr]
    assert subscription is not None and subscription.get("subscription") == "subscribed"
    reply = await iq(admin, f"<publish node='n'>{item(None)}</publish>")
    published = reply.find("pubsub", PUBSUB).find("publish").find("item")  # type: ignore[union-attr]
    assert published is not None and published.get("id")
    [event] = events(juliet)
    sent = event.find("items", EVENT).find("item", EVENT)  # type: ignore[union-attr]
    assert sent is not None and sent.get("id") == published.get("id")
    assert sent.get("publisher") == "admin@localhost"  # expose_publisher
    assert sent.find("entry", "http://www.w3.org/2005/Atom") is not None


@with_server()
async def test_publish_options_preconditions(srv: ModuleTestServer) -> None:
    """§7.1.5: options equal to the configuration pass, others fail."""
    await create(srv)
    admin = await srv.connect("admin@localhost/a")
    ok = await iq(admin, f"<publish node='n'>{item()}</publish>"
                  + publish_options(access_model="open"))
    assert ok.get("type") == "result"
    reply = await iq(admin, f"<publish node='n'>{item()}</publish>"
                     + publish_options(access_model="whitelist"))
    assert failed(reply, "conflict", "precondition-not-met")
    text = reply.find("error").find("text", "urn:ietf:params:xml:ns:xmpp-stanzas")  # type: ignore[union-attr]
    assert text is not None and text.text == "Field does not match: access_model"


@with_server()
async def test_publish_model_open_and_subscribers(srv: ModuleTestServer) -> None:
    await create(srv)
    admin = await srv.connect("admin@localhost/a")
    romeo = await srv.connect("romeo@localhost/r")
    await iq(admin, "<configure node='n'>" + node_config(publish_model="subscribers")
             + "</configure>", ns=OWNER)
    assert failed(await iq(romeo, f"<publish node='n'>{item()}</publish>"), "forbidden")
    await iq(romeo, f"<subscribe node='n' jid='{romeo.jid}'/>")
    assert (await iq(romeo, f"<publish node='n'>{item()}</publish>")).get("type") == "result"
    await iq(admin, "<configure node='n'>" + node_config(publish_model="open")
             + "</configure>", ns=OWNER)
    juliet = await srv.connect("juliet@localhost/j")
    assert (await iq(juliet, f"<publish node='n'>{item()}</publish>")).get("type") == "result"


# -- max_items ------------------------------------------------------------------------------

@with_server()
async def test_max_items_keeps_the_newest_and_max_means_the_bound(
        srv: ModuleTestServer) -> None:
    await create(srv)
    admin = await srv.connect("admin@localhost/a")
    await iq(admin, "<configure node='n'>" + node_config(max_items="2") + "</configure>",
             ns=OWNER)
    for i in range(3):
        await iq(admin, f"<publish node='n'>{item(f'i{i}')}</publish>")
    reply = await iq(admin, "<items node='n'/>", type_="get")
    ids = [i.get("id") for i in reply.find("pubsub", PUBSUB).find("items").elements()]  # type: ignore[union-attr]
    assert ids == ["i1", "i2"]
    await iq(admin, "<configure node='n'>" + node_config(max_items="max") + "</configure>",
             ns=OWNER)
    assert form_values(await iq(admin, "<configure node='n'/>", type_="get",
                                ns=OWNER))["pubsub#max_items"] == ["10"]
    too_many = await iq(admin, "<configure node='n'>" + node_config(max_items="11")
                        + "</configure>", ns=OWNER)
    assert failed(too_many, "not-acceptable")


# -- §6.5 items ------------------------------------------------------------------------------

@with_server()
async def test_items_all_newest_and_by_id(srv: ModuleTestServer) -> None:
    await create(srv)
    admin = await srv.connect("admin@localhost/a")
    for i in range(3):
        await iq(admin, f"<publish node='n'>{item(f'i{i}')}</publish>")

    async def ids(body: str) -> list[str | None]:
        reply = await iq(admin, body, type_="get")
        holder = reply.find("pubsub", PUBSUB).find("items")  # type: ignore[union-attr]
        return [i.get("id") for i in holder.elements()]  # type: ignore[union-attr]

    assert await ids("<items node='n'/>") == ["i0", "i1", "i2"]
    assert await ids("<items node='n' max_items='1'/>") == ["i2"]
    assert await ids("<items node='n'><item id='i0'/><item id='i2'/></items>") == ["i0", "i2"]
    assert failed(await iq(admin, "<items node='n'><item id='zz'/></items>", type_="get"),
                  "item-not-found")
    assert failed(await iq(admin, "<items node='zz'/>", type_="get"), "item-not-found")
    assert failed(await iq(admin, "<items/>", type_="get"), "bad-request", "nodeid-required")


@with_server()
async def test_whitelist_node_is_closed(srv: ModuleTestServer) -> None:
    await create(srv)
    admin = await srv.connect("admin@localhost/a")
    romeo = await srv.connect("romeo@localhost/r")
    await iq(admin, "<configure node='n'>" + node_config(access_model="whitelist")
             + "</configure>", ns=OWNER)
    assert failed(await iq(romeo, f"<subscribe node='n' jid='{romeo.jid}'/>"),
                  "not-allowed", "closed-node")
    assert failed(await iq(romeo, "<items node='n'/>", type_="get"),
                  "not-allowed", "closed-node")
    await iq(admin, "<affiliations node='n'><affiliation jid='romeo@localhost' "
             "affiliation='member'/></affiliations>", ns=OWNER)
    assert (await iq(romeo, "<items node='n'/>", type_="get")).get("type") == "result"


# -- §6.1 subscribe, §6.2 unsubscribe, §6.3 options ------------------------------------------------

@with_server()
async def test_subscribe_and_unsubscribe_errors(srv: ModuleTestServer) -> None:
    await create(srv)
    romeo = await srv.connect("romeo@localhost/r")
    juliet = await srv.connect("juliet@localhost/j")
    assert failed(await iq(juliet, f"<subscribe node='n' jid='{romeo.jid}'/>"),
                  "bad-request", "invalid-jid")
    assert failed(await iq(juliet, f"<subscribe node='x' jid='{juliet.jid}'/>"),
                  "item-not-found")
    assert failed(await iq(juliet, f"<subscribe jid='{juliet.jid}'/>"),
                  "bad-request", "nodeid-required")
    assert failed(await iq(juliet, f"<unsubscribe node='n' jid='{juliet.jid}'/>"),
                  "unexpected-request", "not-subscribed")
    await iq(juliet, f"<subscribe node='n' jid='{juliet.jid}'/>")
    assert failed(await iq(juliet, f"<unsubscribe node='n' jid='{juliet.jid}' subid='bad'/>"),
                  "not-acceptable", "invalid-subid")
    assert failed(await iq(romeo, f"<unsubscribe node='n' jid='{juliet.jid}'/>"), "forbidden")
    reply = await iq(juliet, f"<unsubscribe node='n' jid='{juliet.jid}'/>")
    sub = reply.find("pubsub", PUBSUB).find("subscription")  # type: ignore[union-attr]
    assert sub is not None and sub.get("subscription") == "none"


@with_server()
async def test_subscription_options(srv: ModuleTestServer) -> None:
    await create(srv)
    juliet = await srv.connect("juliet@localhost/j")
    assert failed(await iq(juliet, f"<options node='n' jid='{juliet.jid}'/>", type_="get"),
                  "unexpected-request", "not-subscribed")
    await iq(juliet, f"<subscribe node='n' jid='{juliet.jid}'/>")
    got = await iq(juliet, f"<options node='n' jid='{juliet.jid}'/>", type_="get")
    assert got.find("pubsub", PUBSUB).find("options").find("x", DATA) is not None  # type: ignore[union-attr]
    bad_form = (f"<options node='n' jid='{juliet.jid}'><x xmlns='{DATA}' type='submit'>"
                "<field var='FORM_TYPE'><value>urn:wrong</value></field></x></options>")
    assert failed(await iq(juliet, bad_form), "bad-request", "invalid-options")


@with_server()
async def test_last_item_on_subscribe(srv: ModuleTestServer) -> None:
    await create(srv)
    admin = await srv.connect("admin@localhost/a")
    juliet = await srv.connect("juliet@localhost/j")
    await iq(admin, f"<publish node='n'>{item('last')}</publish>")
    await iq(juliet, f"<subscribe node='n' jid='{juliet.jid}'/>")
    assert events(juliet) == []  # send_last_published_item = never by default
    await iq(juliet, f"<unsubscribe node='n' jid='{juliet.jid}'/>")
    await iq(admin, "<configure node='n'>" + node_config(send_last_published_item="on_sub")
             + "</configure>", ns=OWNER)
    await juliet.send(f"<iq type='set' id='s2' to='{SERVICE}'><pubsub xmlns='{PUBSUB}'>"
                      f"<subscribe node='n' jid='{juliet.jid}'/></pubsub></iq>")
    first, second = juliet.received()
    assert first.name == "iq" and second.name == "message"  # the result comes first
    assert second.find("event", EVENT).find("items").find("item").get("id") == "last"  # type: ignore[union-attr]


# -- §7.2 retract, §8.5 purge, §8.4 delete ---------------------------------------------------

@with_server()
async def test_retract(srv: ModuleTestServer) -> None:
    await create(srv)
    admin = await srv.connect("admin@localhost/a")
    romeo = await srv.connect("romeo@localhost/r")
    juliet = await srv.connect("juliet@localhost/j")
    await iq(juliet, f"<subscribe node='n' jid='{juliet.jid}'/>")
    await iq(admin, f"<publish node='n'>{item('a')}</publish>")
    events(juliet)
    assert failed(await iq(admin, "<retract node='n'><item id='zz'/></retract>"),
                  "item-not-found")
    assert failed(await iq(admin, "<retract node='n'/>"), "bad-request", "item-required")
    assert failed(await iq(admin, "<retract><item id='a'/></retract>"),
                  "bad-request", "nodeid-required")
    assert failed(await iq(romeo, "<retract node='n'><item id='a'/></retract>"), "forbidden")
    assert (await iq(admin, "<retract node='n' notify='true'><item id='a'/></retract>")
            ).get("type") == "result"
    [event] = events(juliet)
    assert event.find("items", EVENT).find("retract", EVENT).get("id") == "a"  # type: ignore[union-attr]


@with_server()
async def test_purge_and_delete_notify(srv: ModuleTestServer) -> None:
    await create(srv)
    admin = await srv.connect("admin@localhost/a")
    romeo = await srv.connect("romeo@localhost/r")
    juliet = await srv.connect("juliet@localhost/j")
    await iq(juliet, f"<subscribe node='n' jid='{juliet.jid}'/>")
    await iq(admin, f"<publish node='n'>{item('a')}</publish>")
    events(juliet)
    assert failed(await iq(romeo, "<purge node='n'/>", ns=OWNER), "forbidden")
    await iq(admin, "<purge node='n'/>", ns=OWNER)
    [purged] = events(juliet)
    assert purged.find("purge", EVENT) is not None
    assert (await iq(admin, "<items node='n'/>", type_="get")).find(
        "pubsub", PUBSUB).find("items").children == []  # type: ignore[union-attr]
    assert failed(await iq(romeo, "<delete node='n'/>", ns=OWNER), "forbidden")
    await iq(admin, "<delete node='n'><redirect uri='xmpp:x?;node=m'/></delete>", ns=OWNER)
    [deleted] = events(juliet)
    redirect = deleted.find("delete", EVENT).find("redirect", EVENT)  # type: ignore[union-attr]
    assert redirect is not None and redirect.get("uri") == "xmpp:x?;node=m"
    assert failed(await iq(admin, "<delete node='n'/>", ns=OWNER), "item-not-found")
    assert failed(await iq(admin, "<delete/>", ns=OWNER), "bad-request", "nodeid-required")


# -- §8.8 subscriptions, §8.9 affiliations -----------------------------------------------------

@with_server()
async def test_owner_manages_affiliations_and_subscriptions(srv: ModuleTestServer) -> None:
    await create(srv)
    admin = await srv.connect("admin@localhost/a")
    romeo = await srv.connect("romeo@localhost/r")
    assert failed(await iq(romeo, "<affiliations node='n'/>", type_="get", ns=OWNER),
                  "forbidden")
    await iq(admin, "<affiliations node='n'><affiliation jid='romeo@localhost' "
             "affiliation='publisher'/></affiliations>", ns=OWNER)
    got = await iq(admin, "<affiliations node='n'/>", type_="get", ns=OWNER)
    affs = {a.get("jid"): a.get("affiliation") for a in
            got.find("pubsub", OWNER).find("affiliations").elements()}  # type: ignore[union-attr]
    assert affs == {"admin@localhost": "owner", "romeo@localhost": "publisher"}
    assert (await iq(romeo, f"<publish node='n'>{item()}</publish>")).get("type") == "result"
    no_owner = ("<affiliations node='n'><affiliation jid='admin@localhost' "
                "affiliation='none'/></affiliations>")
    assert failed(await iq(admin, no_owner, ns=OWNER), "not-allowed")
    await iq(admin, "<subscriptions node='n'><subscription jid='juliet@localhost' "
             "subscription='subscribed'/></subscriptions>", ns=OWNER)
    subs = await iq(admin, "<subscriptions node='n'/>", type_="get", ns=OWNER)
    jids = [s.get("jid") for s in
            subs.find("pubsub", OWNER).find("subscriptions").elements()]  # type: ignore[union-attr]
    assert jids == ["juliet@localhost"]
    mine = await iq(romeo, "<affiliations/>", type_="get")
    assert [a.get("affiliation") for a in
            mine.find("pubsub", PUBSUB).find("affiliations").elements()] == ["publisher"]  # type: ignore[union-attr]


# -- §5 disco, unsupported -------------------------------------------------------------------

@with_server()
async def test_disco_of_service_nodes_and_items(srv: ModuleTestServer) -> None:
    await create(srv)
    admin = await srv.connect("admin@localhost/a")
    await iq(admin, "<configure node='n'>" + node_config(title="News") + "</configure>",
             ns=OWNER)
    await iq(admin, f"<publish node='n'>{item('a')}</publish>")
    info = "http://jabber.org/protocol/disco#info"
    items = "http://jabber.org/protocol/disco#items"

    async def disco(ns: str, node: str | None = None) -> Element:
        attr = f" node='{node}'" if node else ""
        await admin.send(f"<iq type='get' id='d' to='{SERVICE}'><query xmlns='{ns}'{attr}/>"
                         "</iq>")
        return admin.expect("iq", id="d")

    service = (await disco(info)).find("query", info)
    assert service is not None
    assert any(i.get("category") == "pubsub" and i.get("type") == "service"
               for i in service.find_all("identity", info))
    listed = (await disco(items)).find("query", items)
    assert [(i.get("node"), i.get("name")) for i in listed.elements()] == [("n", "News")]  # type: ignore[union-attr]
    node_info = (await disco(info, "n")).find("query", info)
    assert any(i.get("type") == "leaf" for i in node_info.find_all("identity", info))  # type: ignore[union-attr]
    node_items = (await disco(items, "n")).find("query", items)
    assert [i.get("name") for i in node_items.elements()] == ["a"]  # type: ignore[union-attr]
    assert (await disco(info, "zz")).get("type") == "error"


@with_server()
async def test_unsupported_request(srv: ModuleTestServer) -> None:
    admin = await srv.connect("admin@localhost/a")
    reply = await iq(admin, "<create node='n'/>", type_="get")
    assert failed(reply, "feature-not-implemented", "unsupported")
    unsupported = reply.find("error").find_ns("http://jabber.org/protocol/pubsub#errors")  # type: ignore[union-attr]
    assert unsupported is not None
    assert unsupported.get("feature") == "http://jabber.org/protocol/pubsub#create-nodes"


@with_server()
async def test_nodes_are_stored(srv: ModuleTestServer) -> None:
    await create(srv)
    admin = await srv.connect("admin@localhost/a")
    await iq(admin, f"<publish node='n'>{item('a')}</publish>")
    store = srv.server.storage.open(SERVICE, "pubsub", "keyval")
    record = await store.get("n")
    assert record["affiliations"] == {"admin@localhost": "owner"}
    assert [i[0] for i in record["items"]] == ["a"]
    await iq(admin, "<configure node='n'>" + node_config(persist_items="0") + "</configure>",
             ns=OWNER)
    assert (await store.get("n"))["items"] == []


@with_server()
async def test_owner_requests_errors(srv: ModuleTestServer) -> None:
    """§8.2.3, §8.5.3, §8.8.2.4, §8.9.2.4: non-owners, missing nodes, missing node ids."""
    await create(srv)
    admin = await srv.connect("admin@localhost/a")
    romeo = await srv.connect("romeo@localhost/r")
    for body, type_ in (("<configure node='n'/>", "get"),
                        ("<configure node='n'>" + node_config(title="x") + "</configure>",
                         "set"),
                        ("<subscriptions node='n'/>", "get"),
                        ("<subscriptions node='n'><subscription jid='x@localhost' "
                         "subscription='subscribed'/></subscriptions>", "set"),
                        ("<affiliations node='n'><affiliation jid='romeo@localhost' "
                         "affiliation='owner'/></affiliations>", "set")):
        assert failed(await iq(romeo, body, type_=type_, ns=OWNER), "forbidden"), body
        missing = body.replace("node='n'", "node='zz'")
        assert failed(await iq(admin, missing, type_=type_, ns=OWNER), "item-not-found")
    assert failed(await iq(admin, "<purge node='zz'/>", ns=OWNER), "item-not-found")
    assert failed(await iq(admin, "<configure/>", type_="get", ns=OWNER),
                  "bad-request", "nodeid-required")
    default = await iq(admin, "<default/>", type_="get", ns=OWNER)
    assert default.find("pubsub", OWNER).find("default").find("x", DATA) is not None  # type: ignore[union-attr]
    juliet = await srv.connect("juliet@localhost/j")
    await iq(juliet, f"<subscribe node='n' jid='{juliet.jid}'/>")
    assert failed(await iq(romeo, f"<options node='n' jid='{juliet.jid}'/>", type_="get"),
                  "forbidden")
    mine = await iq(juliet, "<subscriptions/>", type_="get")
    [sub] = mine.find("pubsub", PUBSUB).find("subscriptions").elements()  # type: ignore[union-attr]
    assert sub.get("node") == "n" and sub.get("jid") == juliet.jid and sub.get("subid")


@with_server(host_extra=COMPONENT.replace("pubsub_max_items = 10",
                                          "pubsub_max_nodes = 1\n"
                                          "pubsub_max_subscriptions = 1"))
async def test_service_bounds(srv: ModuleTestServer) -> None:
    await create(srv)
    admin = await srv.connect("admin@localhost/a")
    assert failed(await iq(admin, "<create node='m'/>"), "not-allowed", "max-nodes-exceeded")
    juliet = await srv.connect("juliet@localhost/j")
    romeo = await srv.connect("romeo@localhost/r")
    assert (await iq(juliet, f"<subscribe node='n' jid='{juliet.jid}'/>")).get("type") \
        == "result"
    assert failed(await iq(romeo, f"<subscribe node='n' jid='{romeo.jid}'/>"),
                  "not-allowed", "too-many-subscriptions")


@with_server()
async def test_notify_config_and_notification_type(srv: ModuleTestServer) -> None:
    await create(srv)
    admin = await srv.connect("admin@localhost/a")
    juliet = await srv.connect("juliet@localhost/j")
    await iq(juliet, f"<subscribe node='n' jid='{juliet.jid}'/>")
    await iq(admin, "<configure node='n'>" + node_config(notify_config="1") + "</configure>",
             ns=OWNER)
    [event] = events(juliet)
    assert event.find("configuration", EVENT).get("node") == "n"  # type: ignore[union-attr]
    await iq(admin, "<configure node='n'>" + node_config(
        notify_config="0", notification_type="normal", deliver_payloads="0")
        + "</configure>", ns=OWNER)
    assert events(juliet) == []
    await iq(admin, f"<publish node='n'>{item('a')}</publish>")
    [message] = juliet.received()
    assert message.get("type") == "normal"
    sent = message.find("event", EVENT).find("items").find("item")  # type: ignore[union-attr]
    assert sent is not None and sent.get("id") == "a" and not list(sent.elements())
