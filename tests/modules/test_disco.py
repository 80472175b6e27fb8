"""Service discovery (XEP-0030), server caps (XEP-0115) and forms (XEP-0128): XML in, XML out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from helpers import run
from moduletest import ModuleTestServer, TestClient, condition

from tercet.core.session import C2SSession
from tercet.module import StreamFeaturesEvent
from tercet.modules.disco import CAPS_NODE, NS_CAPS, build_info, caps_ver, merge_forms
from tercet.protocol.stanza import Element
from tercet.protocol.xmlstream import parse_fragment

INFO = "http://jabber.org/protocol/disco#info"
ITEMS = "http://jabber.org/protocol/disco#items"
DATA = "jabber:x:data"


def with_server(extra: str = "", host_extra: str = "") -> Callable[..., Any]:
    """Run the decorated coroutine with a started ModuleTestServer."""
    def wrap(fn: Callable[[ModuleTestServer], Awaitable[None]]) -> Callable[[], None]:
        def test() -> None:
            async def main() -> None:
                async with ModuleTestServer(extra, host_extra) as srv:
                    await fn(srv)
            run(main())
        test.__name__ = fn.__name__
        test.__doc__ = fn.__doc__
        return test
    return wrap


async def query(client: TestClient, ns: str, to: str | None = None,
                node: str | None = None) -> Element:
    to_attr = f" to='{to}'" if to else ""
    node_attr = f" node='{node}'" if node else ""
    await client.send(f"<iq type='get' id='q'{to_attr}><query xmlns='{ns}'{node_attr}/></iq>")
    return client.expect("iq", id="q")


def features(reply: Element) -> list[str]:
    q = reply.find("query", INFO)
    assert q is not None, reply
    return [f.get("var") or "" for f in q.find_all("feature", INFO)]


def identities(reply: Element) -> list[tuple[str | None, str | None]]:
    q = reply.find("query", INFO)
    assert q is not None, reply
    return [(i.get("category"), i.get("type")) for i in q.find_all("identity", INFO)]


async def set_subscription(srv: ModuleTestServer, user: str, contact: str, sub: str) -> None:
    """Write a roster item the way the roster module stores it (keyval "roster")."""
    store = srv.server.storage.open("localhost", "roster", "keyval")
    roster = await store.get(user) or {}
    roster[contact] = {"subscription": sub}
    await store.set(user, roster)
    for service in srv.server.hosts["localhost"].providers.get("roster", []):
        service.invalidate(user)  # written behind the roster cache


def caps_feature(srv: ModuleTestServer) -> Element:
    """The <c/> that the server puts in a client's stream features."""
    host = srv.server.hosts["localhost"]
    features = Element("features", "http://etherx.jabber.org/streams")
    host.events.fire("stream-features", StreamFeaturesEvent(
        C2SSession(host, None), features))  # type: ignore[arg-type]
    found = features.find("c", NS_CAPS)
    assert found is not None, features
    return found


# -- the server ------------------------------------------------------------------------------

@with_server()
async def test_server_info_lists_identity_and_module_features(srv: ModuleTestServer) -> None:
    romeo = await srv.connect("romeo@localhost/a")
    reply = await query(romeo, INFO, "localhost")
    assert reply.get("type") == "result" and reply.get("from") == "localhost"
    assert identities(reply) == [("server", "im")]
    found = features(reply)
    for var in (INFO, ITEMS, "urn:xmpp:ping", "jabber:iq:version", "urn:xmpp:time",
                "jabber:iq:last", "vcard-temp", "jabber:iq:private"):
        assert var in found
    # lastactivity and uptime both add jabber:iq:last: listed once, sorted.
    assert found == sorted(set(found))


@with_server(extra='name = "Verona Chat"')
async def test_server_identity_name_option(srv: ModuleTestServer) -> None:
    romeo = await srv.connect("romeo@localhost/a")
    reply = await query(romeo, INFO, "localhost")
    ident = reply.find("query", INFO).find("identity")  # type: ignore[union-attr]
    assert ident is not None and ident.get("name") == "Verona Chat"


@with_server(host_extra='[components."conference.localhost"]\nmodule = "ping"')
async def test_server_items_list_components_under_the_domain(srv: ModuleTestServer) -> None:
    romeo = await srv.connect("romeo@localhost/a")
    reply = await query(romeo, ITEMS, "localhost")
    items = [i.get("jid") for i in reply.find("query", ITEMS).find_all("item")]  # type: ignore[union-attr]
    assert items == ["conference.localhost"]


@with_server()
async def test_unknown_host_node_is_item_not_found(srv: ModuleTestServer) -> None:
    romeo = await srv.connect("romeo@localhost/a")
    assert condition(await query(romeo, INFO, "localhost", "urn:nothing")) == "item-not-found"
    assert condition(await query(romeo, ITEMS, "localhost", "urn:nothing")) == "item-not-found"


@with_server()
async def test_host_node_handler_answers(srv: ModuleTestServer) -> None:
    def commands(event: Any) -> bool:
        reply = event.stanza.reply()
        reply.tag("query", INFO, {"node": "cmds"}).tag("identity", INFO,
                                                       {"category": "automation",
                                                        "type": "command-list"})
        event.origin.send(reply)
        return True
    srv.server.hosts["localhost"].events.hook("disco-info-node/cmds", commands)
    romeo = await srv.connect("romeo@localhost/a")
    reply = await query(romeo, INFO, "localhost", "cmds")
    assert identities(reply) == [("automation", "command-list")]


# -- entity capabilities ---------------------------------------------------------------------

def test_caps_ver_matches_xep_0115_simple_example() -> None:
    query = parse_fragment(
        f"<query xmlns='{INFO}'><identity category='client' name='Exodus 0.9.1' type='pc'/>"
        "<feature var='http://jabber.org/protocol/caps'/>"
        f"<feature var='{INFO}'/><feature var='{ITEMS}'/>"
        "<feature var='http://jabber.org/protocol/muc'/></query>")
    assert caps_ver(query) == "QgayPKawpkPSDYmwT/WM94uAlu0="


def test_caps_ver_matches_xep_0115_complex_example() -> None:
    query = parse_fragment(
        f"<query xmlns='{INFO}'>"
        "<identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>"
        "<identity xml:lang='el' category='client' name='\u03a8 0.11' type='pc'/>"
        "<feature var='http://jabber.org/protocol/caps'/>"
        f"<feature var='{INFO}'/><feature var='{ITEMS}'/>"
        "<feature var='http://jabber.org/protocol/muc'/>"
        f"<x xmlns='{DATA}' type='result'>"
        "<field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value>"
        "</field><field var='ip_version'><value>ipv4</value><value>ipv6</value></field>"
        "<field var='os'><value>Mac</value></field>"
        "<field var='os_version'><value>10.5.1</value></field>"
        "<field var='software'><value>Psi</value></field>"
        "<field var='software_version'><value>0.11</value></field></x></query>")
    assert caps_ver(query) == "q07IKJEyjvHSyhy//CH0CxmKi8w="


def test_caps_ver_ignores_forms_without_form_type() -> None:
    base = f"<query xmlns='{INFO}'><identity category='server' type='im'/>"
    plain = parse_fragment(base + "</query>")
    untyped = parse_fragment(base + f"<x xmlns='{DATA}' type='result'><field var='a'>"
                             "<value>b</value></field></x></query>")
    assert caps_ver(plain) == caps_ver(untyped)


def test_forms_of_one_form_type_are_merged() -> None:
    def form(*fields: str) -> Element:
        el = Element("x", DATA, {"type": "result"})
        el.tag("field", DATA, {"var": "FORM_TYPE", "type": "hidden"}).text_tag("value", "urn:t")
        for var in fields:
            el.tag("field", DATA, {"var": var}).text_tag("value", var)
        return el
    merged = merge_forms([form("a"), form("b")])
    assert len(merged) == 1
    assert [f.get("var") for f in merged[0].find_all("field")] == ["FORM_TYPE", "a", "b"]
    query = build_info([], ["f"], [form("a"), form("b")])
    assert len(list(query.find_all("x", DATA))) == 1


@with_server()
async def test_stream_features_carry_the_caps_of_the_disco_answer(srv: ModuleTestServer) -> None:
    caps = caps_feature(srv)
    assert caps.get("hash") == "sha-1" and caps.get("node") == CAPS_NODE
    romeo = await srv.connect("romeo@localhost/a")
    reply = await query(romeo, INFO, "localhost")
    assert caps.get("ver") == caps_ver(reply.find("query", INFO))  # type: ignore[arg-type]
    # The caps node answers the same, with the node attribute (XEP-0115 §6.2).
    node = f"{CAPS_NODE}#{caps.get('ver')}"
    by_node = await query(romeo, INFO, "localhost", node)
    assert by_node.find("query", INFO).get("node") == node  # type: ignore[union-attr]
    assert features(by_node) == features(reply)


@with_server()
async def test_caps_are_recomputed_when_modules_unload_and_load(srv: ModuleTestServer) -> None:
    before = caps_feature(srv).get("ver")
    await srv.server.modules.unload("version", "localhost")
    romeo = await srv.connect("romeo@localhost/a")
    assert "jabber:iq:version" not in features(await query(romeo, INFO, "localhost"))
    without = caps_feature(srv).get("ver")
    assert without != before
    await srv.server.modules.load("version", "localhost")
    assert "jabber:iq:version" in features(await query(romeo, INFO, "localhost"))
    assert caps_feature(srv).get("ver") == before


# -- accounts -----------------------------------------------------------------------------------

@with_server()
async def test_own_account_info(srv: ModuleTestServer) -> None:
    romeo = await srv.connect("romeo@localhost/a")
    reply = await query(romeo, INFO)
    assert reply.get("type") == "result" and reply.get("from") == "romeo@localhost"
    assert identities(reply) == [("account", "registered"), ("pubsub", "pep")]
    found = features(reply)
    assert found[:2] == [INFO, ITEMS]
    assert "jabber:iq:last" in found  # from lastactivity's account-feature
    assert len(found) == len(set(found))


@with_server(extra='admins = ["admin@localhost"]')
async def test_admin_account_identity(srv: ModuleTestServer) -> None:
    admin = await srv.connect("admin@localhost/a")
    assert identities(await query(admin, INFO, "admin@localhost")) == [
        ("account", "admin"), ("pubsub", "pep")]


@with_server()
async def test_account_features_from_providers_and_event(srv: ModuleTestServer) -> None:
    host = srv.server.hosts["localhost"]
    host.providers.setdefault("account-feature", []).append("urn:example:static")

    def dynamic(event: Any) -> None:
        if event.owner:
            event.add_feature("urn:example:owner-only")
    host.events.hook("account-disco-info", dynamic)
    romeo = await srv.connect("romeo@localhost/a")
    juliet = await srv.connect("juliet@localhost/b")
    await set_subscription(srv, "romeo", "juliet@localhost", "from")
    own = features(await query(romeo, INFO))
    assert "urn:example:static" in own and "urn:example:owner-only" in own
    theirs = features(await query(juliet, INFO, "romeo@localhost"))
    assert "urn:example:static" in theirs and "urn:example:owner-only" not in theirs


@with_server()
async def test_account_info_needs_a_presence_subscription(srv: ModuleTestServer) -> None:
    romeo = await srv.connect("romeo@localhost/a")
    juliet = await srv.connect("juliet@localhost/b")
    assert condition(await query(juliet, INFO, "romeo@localhost")) == "service-unavailable"
    await set_subscription(srv, "romeo", "juliet@localhost", "to")
    assert condition(await query(juliet, INFO, "romeo@localhost")) == "service-unavailable"
    for sub in ("from", "both"):
        await set_subscription(srv, "romeo", "juliet@localhost", sub)
        reply = await query(juliet, INFO, "romeo@localhost")
        assert identities(reply) == [("account", "registered"), ("pubsub", "pep")], reply
    # An account that does not exist looks like one that hides itself.
    assert condition(await query(romeo, INFO, "nobody@localhost")) == "service-unavailable"


@with_server()
async def test_account_items_list_no_resources(srv: ModuleTestServer) -> None:
    romeo = await srv.connect("romeo@localhost/a")
    await srv.connect("romeo@localhost/b")
    juliet = await srv.connect("juliet@localhost/c")
    reply = await query(romeo, ITEMS, "romeo@localhost")
    items = reply.find("query", ITEMS).find_all("item")  # type: ignore[union-attr]
    assert [i for i in items if i.get("node") is None] == []  # PEP nodes only, as Prosody
    assert condition(await query(juliet, ITEMS, "romeo@localhost")) == "service-unavailable"
    await set_subscription(srv, "romeo", "juliet@localhost", "both")
    reply = await query(juliet, ITEMS, "romeo@localhost")
    assert reply.get("type") == "result"
    assert list(reply.find("query", ITEMS).elements()) == []  # type: ignore[union-attr]


@with_server()
async def test_account_items_event_adds_items(srv: ModuleTestServer) -> None:
    def pep(event: Any) -> None:
        event.reply.tag("item", ITEMS, {"jid": f"{event.username}@localhost",
                                        "node": "urn:xmpp:avatar:data"})
    srv.server.hosts["localhost"].events.hook("account-disco-items", pep)
    romeo = await srv.connect("romeo@localhost/a")
    reply = await query(romeo, ITEMS)
    nodes = [i.get("node") for i in reply.find("query", ITEMS).find_all("item")]  # type: ignore[union-attr]
    assert "urn:xmpp:avatar:data" in nodes and None not in nodes


@with_server()
async def test_account_nodes(srv: ModuleTestServer) -> None:
    def known(event: Any) -> None:
        if event.node == "urn:known":
            event.exists = True
            event.add_feature("urn:known#feature")
    srv.server.hosts["localhost"].events.hook("account-disco-info-node", known)
    romeo = await srv.connect("romeo@localhost/a")
    assert condition(await query(romeo, INFO, None, "urn:unknown")) == "item-not-found"
    assert condition(await query(romeo, ITEMS, None, "urn:unknown")) == "item-not-found"
    reply = await query(romeo, INFO, None, "urn:known")
    assert reply.find("query", INFO).get("node") == "urn:known"  # type: ignore[union-attr]
    assert "urn:known#feature" in features(reply)
    assert identities(reply) == []


@with_server()
async def test_disco_to_a_full_jid_goes_to_the_client(srv: ModuleTestServer) -> None:
    romeo = await srv.connect("romeo@localhost/a")
    juliet = await srv.connect("juliet@localhost/b")
    await romeo.send(f"<iq type='get' id='f' to='juliet@localhost/b'><query xmlns='{INFO}'/></iq>")
    delivered = juliet.expect("iq", id="f", from_="romeo@localhost/a", type="get")
    assert delivered.find("query", INFO) is not None
    romeo.nothing()
