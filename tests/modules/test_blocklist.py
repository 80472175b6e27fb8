"""Blocking Command (XEP-0191), XML in and XML out: the list, pushes, both directions."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import run
from moduletest import ModuleTestServer, TestClient

from tercet.core import accounts
from tercet.modules.blocklist import Blocklists, is_blocked
from tercet.protocol.jid import JID
from tercet.protocol.stanza import Element

NS = "urn:xmpp:blocking"
NS_ERRORS = "urn:xmpp:blocking:errors"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
SECOND_HOST = '\n[virtualhosts."example.net"]\n'


def items_xml(*jids: str) -> str:
    return "".join(f"<item jid='{j}'/>" for j in jids)


async def edit(client: TestClient, action: str, *jids: str, id_: str = "e") -> Element:
    await client.send(f"<iq type='set' id='{id_}'><{action} xmlns='{NS}'>{items_xml(*jids)}"
                      f"</{action}></iq>")
    return client.expect("iq", id=id_)


async def block(client: TestClient, *jids: str) -> None:
    reply = await edit(client, "block", *jids)
    assert reply.get("type") == "result", reply
    client.received()  # the push, if this resource asked for the list


async def blocklist(client: TestClient) -> list[str]:
    await client.send(f"<iq type='get' id='g'><blocklist xmlns='{NS}'/></iq>")
    reply = client.expect("iq", type="result", id="g")
    payload = reply.find("blocklist", NS)
    assert payload is not None
    return [item.get("jid") or "" for item in payload.find_all("item", NS)]


def condition(stanza: Element) -> str:
    error = stanza.find("error")
    assert error is not None, stanza
    return next(c.name for c in error.elements() if c.xmlns == NS_STANZAS and c.name != "text")


def message(to: str, body: str = "hi", mtype: str = "chat") -> str:
    return f"<message to='{to}' type='{mtype}'><body>{body}</body></message>"


# -- the list and its pushes ----------------------------------------------------------------

def test_block_unblock_and_pushes_to_interested_resources() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            a = await srv.connect("romeo@localhost/a")
            b = await srv.connect("romeo@localhost/b")  # never asks for the list
            assert await blocklist(a) == []
            reply = await edit(a, "block", "juliet@localhost", "Evil.Example")
            assert reply.get("type") == "result"
            push = a.expect("iq", type="set", to="romeo@localhost/a")
            pushed = push.find("block", NS)
            assert pushed is not None
            assert [i.get("jid") for i in pushed.find_all("item", NS)] == [
                "juliet@localhost", "evil.example"]  # echoed prepared
            b.nothing()
            assert await blocklist(a) == ["evil.example", "juliet@localhost"]
            store = srv.server.storage.open("localhost", "blocklist", "keyval")
            assert set((await store.get("romeo"))["items"]) == {"evil.example",
                                                                 "juliet@localhost"}

            assert (await edit(a, "unblock", "juliet@localhost")).get("type") == "result"
            push = a.expect("iq", type="set")
            assert [i.get("jid") for i in push.find("unblock", NS).find_all("item")] == [
                "juliet@localhost"]
            assert await blocklist(a) == ["evil.example"]

            assert (await edit(a, "unblock")).get("type") == "result"  # unblock all
            push = a.expect("iq", type="set")
            assert list(push.find("unblock", NS).elements()) == []
            assert await blocklist(a) == []
            assert await store.get("romeo") is None
            b.nothing()
    run(main())


@pytest.mark.parametrize("payload,expected", [
    (f"<block xmlns='{NS}'/>", "bad-request"),
    (f"<block xmlns='{NS}'><item jid='a@b@c'/></block>", "jid-malformed"),
    (f"<unblock xmlns='{NS}'><item jid=''/></unblock>", "jid-malformed"),
])
def test_bad_block_requests_change_nothing(payload: str, expected: str) -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            a = await srv.connect("romeo@localhost/a")
            await block(a, "juliet@localhost")
            await a.send(f"<iq type='set' id='x'>{payload}</iq>")
            assert condition(a.expect("iq", type="error", id="x")) == expected
            assert await blocklist(a) == ["juliet@localhost"]
    run(main())


def test_list_size_is_bounded() -> None:
    async def main() -> None:
        async with ModuleTestServer(extra="blocklist_max_items = 2") as srv:
            a = await srv.connect("romeo@localhost/a")
            await block(a, "one@localhost", "two@localhost")
            reply = await edit(a, "block", "three@localhost")
            assert condition(reply) == "resource-constraint"
            assert await blocklist(a) == ["one@localhost", "two@localhost"]
    run(main())


def test_the_feature_is_advertised() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            assert NS in srv.server.hosts["localhost"].features
    run(main())


# -- outbound: the user writes to someone they blocked -------------------------------------

def test_outbound_stanzas_are_refused_with_the_blocked_error() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            romeo = await srv.connect("romeo@localhost/a")
            juliet = await srv.connect("juliet@localhost/b")
            await juliet.send("<presence/>")
            juliet.received()
            await block(romeo, "juliet@localhost")

            await romeo.send(message("juliet@localhost", "hello?"))
            error = romeo.expect("message", type="error", from_="juliet@localhost")
            assert condition(error) == "not-acceptable"
            err = error.find("error")
            assert err is not None and err.get("type") == "cancel"
            assert err.find("blocked", NS_ERRORS) is not None
            text = err.find("text", NS_STANZAS)
            assert text is not None and text.text == "You have blocked this JID"
            assert "xml:lang" not in text.attrs

            await romeo.send("<iq type='get' id='v' to='juliet@localhost/b'>"
                             "<query xmlns='jabber:iq:version'/></iq>")
            assert condition(romeo.expect("iq", type="error", id="v")) == "not-acceptable"
            await romeo.send("<presence type='subscribe' to='juliet@localhost'/>")
            assert condition(romeo.expect("presence", type="error")) == "not-acceptable"
            juliet.nothing()
    run(main())


def test_outbound_presence_and_errors_are_dropped_silently() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            romeo = await srv.connect("romeo@localhost/a")
            juliet = await srv.connect("juliet@localhost/b")
            await block(romeo, "juliet@localhost")
            await romeo.send("<presence to='juliet@localhost/b'/>")
            await romeo.send("<presence type='probe' to='juliet@localhost'/>")
            await romeo.send("<message type='error' to='juliet@localhost/b'/>")
            await romeo.send("<iq type='result' id='r' to='juliet@localhost/b'/>")
            romeo.nothing()
            juliet.nothing()
            assert romeo.session.directed == set()  # the directed presence never left

            # unsubscribed still passes: one may cut a blocked contact off
            await romeo.send("<presence type='unsubscribed' to='juliet@localhost'/>")
            romeo.nothing()
    run(main())


def test_outbound_flows_again_after_unblock() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            romeo = await srv.connect("romeo@localhost/a")
            juliet = await srv.connect("juliet@localhost/b")
            await block(romeo, "juliet@localhost")
            assert (await edit(romeo, "unblock", "juliet@localhost")).get("type") == "result"
            await romeo.send(message("juliet@localhost/b", "hello!"))
            assert juliet.expect("message").child_text("body") == "hello!"
            romeo.nothing()
    run(main())


# -- inbound: someone the user blocked writes to them --------------------------------------

def test_inbound_stanzas_are_dropped_and_iqs_refused() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            romeo = await srv.connect("romeo@localhost/a")
            await romeo.send("<presence/>")
            romeo.received()
            juliet = await srv.connect("juliet@localhost/b")
            nurse = await srv.connect("nurse@localhost/c")
            await block(romeo, "juliet@localhost")

            await juliet.send(message("romeo@localhost"))
            await juliet.send(message("romeo@localhost/a", mtype="normal"))
            await juliet.send("<presence to='romeo@localhost/a'/>")
            await juliet.send("<presence type='subscribe' to='romeo@localhost'/>")
            juliet.nothing()  # dropped without a word (bounce_blocked_messages is off)
            await juliet.send("<iq type='get' id='v' to='romeo@localhost/a'>"
                              "<query xmlns='jabber:iq:version'/></iq>")
            error = juliet.expect("iq", type="error", id="v")
            assert condition(error) == "service-unavailable"
            assert error.find("error").find("blocked", NS_ERRORS) is None  # type: ignore[union-attr]
            romeo.nothing()

            await nurse.send(message("romeo@localhost", "not blocked"))
            assert romeo.expect("message").child_text("body") == "not blocked"
    run(main())


def test_bounce_blocked_messages_answers_chat_but_not_headlines() -> None:
    async def main() -> None:
        async with ModuleTestServer(extra="bounce_blocked_messages = true") as srv:
            romeo = await srv.connect("romeo@localhost/a")
            juliet = await srv.connect("juliet@localhost/b")
            await block(romeo, "juliet@localhost")
            await juliet.send(message("romeo@localhost"))
            error = juliet.expect("message", type="error", from_="romeo@localhost")
            assert condition(error) == "service-unavailable"
            # XEP-0191 §3.3: the contact must not learn it is blocked
            assert error.find("error").find("blocked", NS_ERRORS) is None  # type: ignore[union-attr]
            await juliet.send(message("romeo@localhost", mtype="headline"))
            juliet.nothing()
            romeo.nothing()
    run(main())


def test_domain_and_full_jid_items() -> None:
    async def main() -> None:
        async with ModuleTestServer(host_extra=SECOND_HOST) as srv:
            romeo = await srv.connect("romeo@localhost/a")
            mallory = await srv.connect("mallory@example.net/x")
            phone = await srv.connect("juliet@localhost/phone")
            laptop = await srv.connect("juliet@localhost/laptop")
            await block(romeo, "example.net", "juliet@localhost/phone")
            await mallory.send(message("romeo@localhost/a", "from a blocked domain"))
            await phone.send(message("romeo@localhost/a", "from a blocked resource"))
            romeo.nothing()
            await laptop.send(message("romeo@localhost/a", "from another resource"))
            assert romeo.expect("message").child_text("body") == "from another resource"
    run(main())


@pytest.mark.parametrize("items,jid,expected", [
    ({"juliet@localhost"}, "juliet@localhost", True),
    ({"juliet@localhost"}, "juliet@localhost/any", True),
    ({"juliet@localhost/a"}, "juliet@localhost/a", True),
    ({"juliet@localhost/a"}, "juliet@localhost/b", False),
    ({"juliet@localhost/a"}, "juliet@localhost", False),
    ({"localhost"}, "juliet@localhost/a", True),
    ({"localhost"}, "localhost", True),
    ({"localhost/r"}, "localhost/r", True),
    ({"localhost/r"}, "juliet@localhost/r", True),
    ({"juliet@localhost"}, "romeo@localhost", False),
    ({"juliet@localhost"}, "juliet@example.net", False),
])
def test_jid_matching(items: set[str], jid: str, expected: bool) -> None:
    assert is_blocked(dict.fromkeys(items, 0.0), JID.parse(jid)) is expected


# -- presence on block and unblock ---------------------------------------------------------

async def subscribe(srv: ModuleTestServer, user: str, contact: str, sub: str) -> None:
    """A roster item as the roster module stores it (see blocklist.contact_subscribed)."""
    store = srv.server.storage.open("localhost", "roster", "keyval")
    roster = await store.get(user) or {}
    roster[contact] = {"subscription": sub, "groups": []}
    await store.set(user, roster)
    for service in srv.server.hosts["localhost"].providers.get("roster", []):
        service.invalidate(user)  # written behind the roster cache


def test_blocking_sends_unavailable_to_contacts_that_see_our_presence() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            online = await srv.connect("romeo@localhost/online")
            await online.send("<presence/>")
            hidden = await srv.connect("romeo@localhost/hidden")  # never available
            juliet = await srv.connect("juliet@localhost/b")
            stranger = await srv.connect("stranger@localhost/c")
            watcher = await srv.connect("watcher@localhost/d")
            for contact in (juliet, stranger, watcher):
                await contact.send("<presence/>")
            await subscribe(srv, "romeo", "juliet@localhost", "both")
            await subscribe(srv, "romeo", "watcher@localhost", "to")  # sees nothing of us
            for c in (online, hidden, juliet, stranger, watcher):
                c.received()
            await block(online, "juliet@localhost", "stranger@localhost", "watcher@localhost")
            gone = juliet.expect("presence", type="unavailable", from_="romeo@localhost/online")
            assert gone.get("to") == "juliet@localhost"
            juliet.nothing()
            stranger.nothing()
            watcher.nothing()
            hidden.nothing()

            await block(online, "juliet@localhost")  # already blocked: no second notice
            juliet.nothing()
    run(main())


def test_unblocking_makes_the_contact_probe_us() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            romeo = await srv.connect("romeo@localhost/a")
            await subscribe(srv, "romeo", "juliet@localhost", "from")
            probes: list[Element] = []

            def seen(event: Any) -> None:
                if event.stanza.get("type") == "probe":
                    probes.append(event.stanza)
            srv.server.hosts["localhost"].events.hook("presence/bare", seen, 1000)
            await block(romeo, "juliet@localhost", "stranger@localhost")
            await edit(romeo, "unblock")
            assert [(p.get("from"), p.get("to")) for p in probes] == [
                ("juliet@localhost", "romeo@localhost")]
    run(main())


# -- cache and account deletion ------------------------------------------------------------

def test_the_cache_is_bounded_and_reads_through() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            store = srv.server.storage.open("localhost", "blocklist", "keyval")
            lists = Blocklists(store, 2)
            for user in ("a", "b", "c"):
                await store.set(user, {"items": {f"{user}@x": 1.0}})
                await lists.get(user)
            assert lists.cached("a") is None  # least recently used, evicted
            assert lists.cached("b") == {"b@x": 1.0}
            await store.set("a", {"items": {"new@x": 2.0}})
            assert await lists.get("a") == {"new@x": 2.0}  # reloaded from the store
    run(main())


def test_a_deleted_account_leaves_no_block_list_behind() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            romeo = await srv.connect("romeo@localhost/a")
            await block(romeo, "juliet@localhost")
            assert await accounts.delete_account(srv.server, "localhost", "romeo")
            store = srv.server.storage.open("localhost", "blocklist", "keyval")
            assert await store.get("romeo") is None
            romeo = await srv.connect("romeo@localhost/again")
            assert await blocklist(romeo) == []
            juliet = await srv.connect("juliet@localhost/b")
            await juliet.send(message("romeo@localhost/again", "fresh start"))
            assert romeo.expect("message").child_text("body") == "fresh start"
    run(main())


# -- with the roster and presence modules: real subscriptions -----------------------------

def test_block_and_unblock_with_a_real_subscription() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            romeo = await srv.connect("romeo@localhost/a")
            juliet = await srv.connect("juliet@localhost/b")
            for c in (romeo, juliet):
                await c.send("<presence/>")
            await juliet.send("<presence type='subscribe' to='romeo@localhost'/>")
            await romeo.send("<presence type='subscribed' to='juliet@localhost'/>")
            romeo.received()
            juliet.received()

            await block(romeo, "juliet@localhost")
            gone = juliet.expect("presence", type="unavailable", from_="romeo@localhost/a")
            assert gone.get("to") == "juliet@localhost"
            await romeo.send("<presence><show>away</show></presence>")  # a broadcast
            juliet.nothing()  # the blocked contact sees the user offline
            romeo.received()

            assert (await edit(romeo, "unblock", "juliet@localhost")).get("type") == "result"
            back = juliet.expect("presence", from_="romeo@localhost/a")
            assert back.get("type") is None and back.child_text("show") == "away"
    run(main())


def test_blocking_drops_an_unanswered_subscription_request() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            romeo = await srv.connect("romeo@localhost/a")
            juliet = await srv.connect("juliet@localhost/b")
            await juliet.send("<presence type='subscribe' to='romeo@localhost'/>")
            store = srv.server.storage.open("localhost", "roster", "keyval")
            assert "juliet@localhost" in (await store.get("romeo"))["@meta"]["pending"]
            await block(romeo, "juliet@localhost")
            assert (await store.get("romeo"))["@meta"]["pending"] == {}
            await romeo.disconnect()
            again = await srv.connect("romeo@localhost/later")
            await again.send("<presence/>")
            assert not [s for s in again.received() if s.get("type") == "subscribe"]
    run(main())
