"""The roster module (RFC 6121 §2, XEP-0237), XML in and XML out."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import idle, run
from moduletest import ModuleTestServer, TestClient

from tercet.protocol.stanza import NS_STANZAS, Element

NS = "jabber:iq:roster"


def condition(stanza: Element) -> str:
    error = stanza.find("error")
    assert error is not None, stanza
    return next(c.name for c in error.elements() if c.xmlns == NS_STANZAS and c.name != "text")


async def get(client: TestClient, ver: str | None = None) -> Element:
    attr = "" if ver is None else f" ver='{ver}'"
    await client.send(f"<iq type='get' id='g'><query xmlns='{NS}'{attr}/></iq>")
    return client.expect("iq", type="result", id="g")


async def set_item(client: TestClient, item_xml: str, id_: str = "s") -> Element:
    await client.send(f"<iq type='set' id='{id_}'><query xmlns='{NS}'>{item_xml}</query></iq>")
    return client.expect("iq", id=id_)


def items(query: Element | None) -> dict[str, dict[str, Any]]:
    assert query is not None
    out = {}
    for item in query.find_all("item", NS):
        out[item.get("jid")] = {**item.attrs,
                                "groups": [g.text for g in item.find_all("group", NS)]}
    return out


def push_of(stanza: Element) -> tuple[str, Element]:
    assert stanza.name == "iq" and stanza.get("type") == "set", stanza
    query = stanza.find("query", NS)
    assert query is not None
    item = query.find("item", NS)
    assert item is not None
    return query.get("ver") or "", item


def test_empty_roster_has_a_version() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            romeo = await srv.connect("romeo@localhost/a")
            assert not romeo.session.interested
            reply = await get(romeo)
            query = reply.find("query", NS)
            assert query is not None and query.get("ver") == "0"
            assert items(query) == {}
            assert romeo.session.interested
    run(main())


def test_set_answers_then_pushes_to_interested_resources_only() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            a = await srv.connect("romeo@localhost/a")
            b = await srv.connect("romeo@localhost/b")
            c = await srv.connect("romeo@localhost/c")
            await get(a)
            await get(c)
            reply = await set_item(b, "<item jid='nurse@localhost' name='Nurse'>"
                                      "<group>Servants</group></item>")
            assert reply.get("type") == "result"
            b.nothing()  # b never fetched the roster
            for client in (a, c):
                ver, item = push_of(client.expect())
                assert ver == "1"
                assert item.attrs == {"jid": "nurse@localhost", "subscription": "none",
                                      "name": "Nurse"}
                assert [g.text for g in item.find_all("group", NS)] == ["Servants"]
                client.nothing()
            assert items((await get(a)).find("query", NS)) == {"nurse@localhost": {
                "jid": "nurse@localhost", "subscription": "none", "name": "Nurse",
                "groups": ["Servants"]}}
    run(main())


def test_update_replaces_name_and_groups_but_never_the_subscription() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            romeo = await srv.connect("romeo@localhost/a")
            await set_item(romeo, "<item jid='nurse@localhost' name='N'><group>A</group>"
                                  "<group>B</group></item>")
            # RFC 6121 §2.1.2.5: a subscription value other than "remove" is ignored, and
            # so are ask and approved (only presence stanzas change them).
            reply = await set_item(romeo, "<item jid='nurse@localhost' subscription='both' "
                                          "ask='subscribe' approved='true'><group>C</group>"
                                          "</item>")
            assert reply.get("type") == "result"
            got = items((await get(romeo)).find("query", NS))["nurse@localhost"]
            assert got == {"jid": "nurse@localhost", "subscription": "none", "groups": ["C"]}
    run(main())


def test_roster_versioning() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            romeo = await srv.connect("romeo@localhost/a")
            await get(romeo)
            await set_item(romeo, "<item jid='nurse@localhost'/>")
            assert push_of(romeo.expect())[0] == "1"
            await set_item(romeo, "<item jid='tybalt@localhost'/>")
            assert push_of(romeo.expect())[0] == "2"
            # XEP-0237 §2.3: the current version gets an empty result...
            assert (await get(romeo, "2")).find("query", NS) is None
            # ...an old or unknown one the whole roster with the current version.
            for ver in ("1", "", "bogus"):
                query = (await get(romeo, ver)).find("query", NS)
                assert query is not None and query.get("ver") == "2"
                assert set(items(query)) == {"nurse@localhost", "tybalt@localhost"}
    run(main())


def test_remove_answers_pushes_and_unknown_item_is_item_not_found() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            romeo = await srv.connect("romeo@localhost/a")
            await get(romeo)
            await set_item(romeo, "<item jid='nurse@localhost'/>")
            romeo.received()
            reply = await set_item(romeo, "<item jid='nurse@localhost' subscription='remove'/>")
            assert reply.get("type") == "result"
            ver, item = push_of(romeo.expect())
            assert ver == "2"
            assert item.attrs == {"jid": "nurse@localhost", "subscription": "remove"}
            assert items((await get(romeo)).find("query", NS)) == {}
            reply = await set_item(romeo, "<item jid='nurse@localhost' subscription='remove'/>")
            assert condition(reply) == "item-not-found"  # RFC 6121 §2.5.3
    run(main())


LONG = "x" * 1024


@pytest.mark.parametrize("payload,expected", [
    # RFC 6121 §2.3.3
    ("<item jid='a@localhost'/><item jid='b@localhost'/>", "bad-request"),
    ("", "bad-request"),
    ("<item/>", "bad-request"),
    ("<item jid='@@bad'/>", "bad-request"),
    ("<item jid='a@localhost/res'/>", "bad-request"),
    ("<item jid='a@localhost'><group>G</group><group>G</group></item>", "bad-request"),
    ("<item jid='a@localhost'><group></group></item>", "not-acceptable"),
    (f"<item jid='a@localhost'><group>{LONG}</group></item>", "not-acceptable"),
    (f"<item jid='a@localhost' name='{LONG}'/>", "not-acceptable"),
    ("<item jid='a@localhost'>" + "".join(f"<group>g{i}</group>" for i in range(101))
     + "</item>", "not-acceptable"),
    ("<item jid='romeo@localhost'/>", "not-allowed"),  # as Prosody: not your own contact
])
def test_invalid_roster_sets(payload: str, expected: str) -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            romeo = await srv.connect("romeo@localhost/a")
            await get(romeo)
            reply = await set_item(romeo, payload)
            assert reply.get("type") == "error"
            assert condition(reply) == expected
            romeo.nothing()  # no push
            assert items((await get(romeo)).find("query", NS)) == {}
    run(main())


def test_limits_at_the_boundary_are_accepted() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            romeo = await srv.connect("romeo@localhost/a")
            name, group = "n" * 1023, "é" * 511  # 1022 bytes
            groups = "".join(f"<group>g{i}</group>" for i in range(99)) + f"<group>{group}</group>"
            reply = await set_item(romeo, f"<item jid='a@localhost' name='{name}'>{groups}</item>")
            assert reply.get("type") == "result"
            got = items((await get(romeo)).find("query", NS))["a@localhost"]
            assert got["name"] == name and len(got["groups"]) == 100
    run(main())


def test_roster_size_is_bounded() -> None:
    async def main() -> None:
        async with ModuleTestServer(host_extra="max_roster_size = 2") as srv:
            romeo = await srv.connect("romeo@localhost/a")
            for jid in ("a@localhost", "b@localhost"):
                assert (await set_item(romeo, f"<item jid='{jid}'/>")).get("type") == "result"
            reply = await set_item(romeo, "<item jid='c@localhost'/>")
            assert condition(reply) == "not-allowed"
            # Editing an existing item is still fine.
            reply = await set_item(romeo, "<item jid='a@localhost' name='A'/>")
            assert reply.get("type") == "result"
            # A subscription request that would need a new item is refused too.
            await romeo.send("<presence to='d@localhost' type='subscribe'/>")
            error = romeo.expect("presence", type="error")
            assert condition(error) == "not-allowed"
            assert set(items((await get(romeo)).find("query", NS))) == {"a@localhost",
                                                                        "b@localhost"}
    run(main())


def test_another_accounts_roster_is_forbidden() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            romeo = await srv.connect("romeo@localhost/a")
            await srv.connect("juliet@localhost/b")
            for kind in ("get", "set"):
                payload = "<item jid='x@localhost'/>" if kind == "set" else ""
                await romeo.send(f"<iq type='{kind}' id='x' to='juliet@localhost'>"
                                 f"<query xmlns='{NS}'>{payload}</query></iq>")
                assert condition(romeo.expect("iq", type="error", id="x")) == "forbidden"
    run(main())


def test_storage_layout_and_other_modules_api() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            romeo = await srv.connect("romeo@localhost/a")
            await set_item(romeo, "<item jid='nurse@localhost' name='N'><group>G</group></item>")
            store = srv.server.storage.open("localhost", "roster", "keyval")
            assert await store.get("romeo") == {
                "nurse@localhost": {"subscription": "none", "groups": ["G"], "name": "N"},
                "@meta": {"version": 1, "pending": {}}}
            # A record written by someone else (Prosody's set-as-table groups) is read as is.
            await store.set("romeo", {"tybalt@localhost": {
                "subscription": "from", "groups": {"Foes": True}}})
            service = srv.server.hosts["localhost"].providers["roster"][0]
            service.invalidate("romeo")  # written behind the roster cache
            got = items((await get(romeo)).find("query", NS))
            assert got == {"tybalt@localhost": {"jid": "tybalt@localhost",
                                                "subscription": "from", "groups": ["Foes"]}}
            assert await service.subscription("romeo", "tybalt@localhost") == "from"
            assert await service.subscription("romeo", "nobody@localhost") == "none"
    run(main())


def test_stream_features_advertise_roster_versioning_after_auth() -> None:
    from tercet.module import StreamFeaturesEvent

    async def main() -> None:
        async with ModuleTestServer() as srv:
            romeo = await srv.connect("romeo@localhost/a")
            host = srv.server.hosts["localhost"]
            for authenticated in (False, True):
                romeo.session.authenticated = authenticated
                features = Element("features", "http://etherx.jabber.org/streams")
                host.events.fire("stream-features", StreamFeaturesEvent(romeo.session,
                                                                        features))
                assert (features.find("ver", "urn:xmpp:features:rosterver") is not None) \
                    == authenticated
    run(main())


async def mutual(srv: ModuleTestServer, a: TestClient, b: TestClient) -> None:
    """Make a and b subscribed to each other through the protocol."""
    await a.send(f"<presence to='{b.bare}' type='subscribe'/>")
    await b.send(f"<presence to='{a.bare}' type='subscribed'/>")
    await b.send(f"<presence to='{a.bare}' type='subscribe'/>")
    await a.send(f"<presence to='{b.bare}' type='subscribed'/>")


def test_removing_a_contact_cancels_both_subscriptions() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            juliet = await srv.connect("juliet@localhost/balcony")
            romeo = await srv.connect("romeo@localhost/orchard")
            await juliet.send("<presence/>")
            await romeo.send("<presence/>")
            await mutual(srv, romeo, juliet)
            romeo.received()
            await get(romeo)
            removed: list[Any] = []
            srv.server.hosts["localhost"].events.hook("roster-item-removed", removed.append)
            romeo.received()
            juliet.received()
            await set_item(juliet, "<item jid='romeo@localhost' subscription='remove'/>")
            got = romeo.received()
            kinds = [(s.name, s.get("type"), s.get("from")) for s in got]
            # §2.5.2: Romeo stops seeing Juliet, and his roster follows (pushes to him).
            assert ("presence", "unavailable", juliet.jid) in kinds
            assert ("presence", "unsubscribed", "juliet@localhost") in kinds
            assert ("presence", "unsubscribe", "juliet@localhost") in kinds
            item = items((await get(romeo)).find("query", NS))["juliet@localhost"]
            assert item["subscription"] == "none"
            assert [(e.username, e.jid, e.item["subscription"]) for e in removed] == [
                ("juliet", "romeo@localhost", "both")]
            await idle()  # background presence work ends before the server
    run(main())
