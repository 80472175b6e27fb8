"""The presence module (RFC 6121 §3, §4 and the state tables of Appendix A)."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from helpers import idle, run
from moduletest import ModuleTestServer, TestClient

from tercet.protocol.stanza import NS_DELAY, NS_STANZAS, Element
from tercet.protocol.xmlstream import parse_fragment
from tercet.storage.base import ArchiveQuery

NS_ROSTER = "jabber:iq:roster"
REMOTE = "example.net"


def condition(stanza: Element) -> str:
    error = stanza.find("error")
    assert error is not None, stanza
    return next(c.name for c in error.elements() if c.xmlns == NS_STANZAS and c.name != "text")


def presences(client: TestClient) -> list[tuple[str | None, str | None]]:
    """(type, from) of the presence stanzas received since the last call."""
    return [(s.get("type"), s.get("from")) for s in client.received() if s.name == "presence"]


# -- Appendix A, written out as the RFC prints it ---------------------------------------------

S = ["None", "None + Pending Out", "None + Pending In", "None + Pending Out+In", "To",
     "To + Pending In", "From", "From + Pending Out", "Both"]

OUTBOUND_TABLE = {  # A.2: the user sends ... ; state before -> state after
    "subscribe": ["None + Pending Out", "None + Pending Out", "None + Pending Out+In",
                  "None + Pending Out+In", "To", "To + Pending In", "From + Pending Out",
                  "From + Pending Out", "Both"],
    "unsubscribe": ["None", "None", "None + Pending In", "None + Pending In", "None",
                    "None + Pending In", "From", "From", "From"],
    "subscribed": ["None", "None + Pending Out", "From", "From + Pending Out", "To", "Both",
                   "From", "From + Pending Out", "Both"],
    "unsubscribed": ["None", "None + Pending Out", "None", "None + Pending Out", "To", "To",
                     "None", "None + Pending Out", "To"],
}
INBOUND_TABLE = {  # A.3: the contact's stanza reaches the user's server
    "subscribe": ["None + Pending In", "None + Pending Out+In", "None + Pending In",
                  "None + Pending Out+In", "To + Pending In", "To + Pending In", "From",
                  "From + Pending Out", "Both"],
    "unsubscribe": ["None", "None + Pending Out", "None", "None + Pending Out", "To", "To",
                    "None", "None + Pending Out", "To"],
    "subscribed": ["None", "To", "None + Pending In", "To + Pending In", "To",
                   "To + Pending In", "From", "Both", "Both"],
    "unsubscribed": ["None", "None", "None + Pending In", "None + Pending In", "None",
                     "None + Pending In", "From", "From", "From"],
}


def parse_state(name: str) -> tuple[str, bool, bool]:
    sub, _, pending = name.partition(" + Pending ")
    return sub.lower(), "Out" in pending, "In" in pending.replace("Out", "")


def state_name(sub: str, ask: bool, pending_in: bool) -> str:
    extra = [n for n, on in (("Out", ask), ("In", pending_in)) if on]
    return sub.capitalize() + (" + Pending " + "+".join(extra) if extra else "")


async def write_state(srv: ModuleTestServer, user: str, contact: str, name: str) -> None:
    sub, ask, pending_in = parse_state(name)
    store = srv.server.storage.open("localhost", "roster", "keyval")
    record = await store.get(user) or {"@meta": {"version": 0, "pending": {}}}
    if sub != "none" or ask:
        record[contact] = {"subscription": sub, "groups": []}
        if ask:
            record[contact]["ask"] = "subscribe"
    if pending_in:
        record["@meta"]["pending"][contact] = (
            f"<presence xmlns='jabber:client' type='subscribe' from='{contact}'/>")
    await store.set(user, record)
    for service in srv.server.hosts["localhost"].providers.get("roster", []):
        service.invalidate(user)  # written behind the roster cache


async def read_state(srv: ModuleTestServer, user: str, contact: str) -> str:
    record = await srv.server.storage.open("localhost", "roster", "keyval").get(user)
    item = record.get(contact) or {"subscription": "none"}
    return state_name(item["subscription"], item.get("ask") == "subscribe",
                      contact in record["@meta"]["pending"])


def capture_remote(srv: ModuleTestServer) -> list[Element]:
    """Stanzas the server hands to s2s (route/remote), which does not exist here."""
    out: list[Element] = []

    def keep(event: Any) -> bool:
        out.append(event.stanza)
        return True
    srv.server.events.hook("route/remote", keep)
    return out


@pytest.mark.parametrize("ptype", sorted(OUTBOUND_TABLE))
def test_appendix_a2_outbound(ptype: str) -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            remote = capture_remote(srv)
            romeo = await srv.connect("romeo@localhost/a")
            for i, (before, after) in enumerate(zip(S, OUTBOUND_TABLE[ptype], strict=True)):
                contact = f"c{i}@{REMOTE}"
                await write_state(srv, "romeo", contact, before)
                remote.clear()
                await romeo.send(f"<presence to='{contact}/res' type='{ptype}'/>")
                assert await read_state(srv, "romeo", contact) == after, (before, ptype)
                sent = [s for s in remote if s.get("type") == ptype]
                routed = ptype in ("subscribe", "unsubscribe") or (
                    before != after if ptype == "unsubscribed"
                    else parse_state(after)[0] in ("from", "both"))
                assert len(sent) == int(routed), (before, ptype, remote)
                for stanza in sent:  # §3.1.2: stamped with bare JIDs
                    assert (stanza.get("from"), stanza.get("to")) == ("romeo@localhost",
                                                                      contact)
    run(main())


@pytest.mark.parametrize("ptype", sorted(INBOUND_TABLE))
def test_appendix_a3_inbound(ptype: str) -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            remote = capture_remote(srv)
            romeo = await srv.connect("romeo@localhost/a")
            await romeo.send("<presence/>")
            await romeo.send(f"<iq type='get' id='r'><query xmlns='{NS_ROSTER}'/></iq>")
            romeo.received()
            host = srv.server.hosts["localhost"]
            for i, (before, after) in enumerate(zip(S, INBOUND_TABLE[ptype], strict=True)):
                contact = f"c{i}@{REMOTE}"
                await write_state(srv, "romeo", contact, before)
                remote.clear()
                result = srv.server.router.route(host.origin, Element("presence", attrs={
                    "type": ptype, "from": f"{contact}/res", "to": "romeo@localhost"}))
                if inspect.isawaitable(result):
                    await result
                assert await read_state(srv, "romeo", contact) == after, (before, ptype)
                got = [s for s in romeo.received() if s.name == "presence"]
                if ptype == "subscribe":
                    subscribed = parse_state(before)[0] in ("from", "both")
                    # Delivered only when newly pending; auto-answered when subscribed.
                    delivered = not subscribed and not parse_state(before)[2]
                    answers = [s.get("type") for s in remote]
                    assert ("subscribed" in answers) == subscribed, (before, answers)
                else:
                    delivered = before != after
                assert [s.get("type") for s in got] == ([ptype] if delivered else []), before
                for stanza in got:
                    assert stanza.get("from") == contact  # the bare JID
    run(main())


# -- a whole handshake between two local accounts ---------------------------------------------

def test_subscription_handshake_between_local_accounts() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            romeo = await srv.connect("romeo@localhost/orchard")
            juliet = await srv.connect("juliet@localhost/balcony")
            for c in (romeo, juliet):
                await c.send("<presence><show>chat</show></presence>")
                await c.send(f"<iq type='get' id='r'><query xmlns='{NS_ROSTER}'/></iq>")
                c.received()
            await romeo.send("<presence to='juliet@localhost' type='subscribe'/>")
            got = romeo.received()
            push = got[0].find("query", NS_ROSTER).find("item", NS_ROSTER)
            assert push.attrs == {"jid": "juliet@localhost", "subscription": "none",
                                  "ask": "subscribe"}
            # The contact's server acknowledges without revealing presence.
            assert [(s.get("type"), s.get("from")) for s in got[1:]] == [
                ("unavailable", "juliet@localhost")]
            request = juliet.expect("presence", type="subscribe", from_="romeo@localhost")
            assert request.get("to") == "juliet@localhost"

            await juliet.send("<presence to='romeo@localhost' type='subscribed'/>")
            got = romeo.received()
            assert [(s.name, s.get("type")) for s in got][:2] == [("presence", "subscribed"),
                                                                  ("iq", "set")]
            shown = got[2]
            assert (shown.get("from"), shown.find("show").text) == (juliet.jid, "chat")
            assert shown.find("delay", NS_DELAY) is not None

            await juliet.send("<presence to='romeo@localhost' type='subscribe'/>")
            await romeo.send("<presence to='juliet@localhost' type='subscribed'/>")
            # Juliet's approval of Romeo made Romeo's server probe her: she sees him.
            assert (None, romeo.jid) in presences(juliet)
            assert (None, juliet.jid) in presences(romeo)
            for client, other in ((romeo, "juliet@localhost"), (juliet, "romeo@localhost")):
                await client.send(f"<iq type='get' id='r2'><query xmlns='{NS_ROSTER}'/></iq>")
                reply = client.expect("iq", id="r2")
                item = reply.find("query", NS_ROSTER).find("item", NS_ROSTER)
                assert item.attrs == {"jid": other, "subscription": "both"}

            # From now on availability flows both ways, including going offline.
            await juliet.send("<presence><show>away</show></presence>")
            assert (None, juliet.jid) in presences(romeo)
            await juliet.disconnect()
            await idle()  # the unbind handlers' presence, sent detached
            assert ("unavailable", juliet.jid) in presences(romeo)
    run(main())


# -- availability ------------------------------------------------------------------------------

async def subscribed_pair(srv: ModuleTestServer, user: str, contact: str, sub: str) -> None:
    """Write a consistent pair of roster items (user has ``sub`` for contact)."""
    mirror = {"none": "none", "to": "from", "from": "to", "both": "both"}[sub]
    store = srv.server.storage.open("localhost", "roster", "keyval")
    for owner, other, state in ((user, contact, sub), (contact, user, mirror)):
        record = await store.get(owner) or {}
        record[f"{other}@localhost"] = {"subscription": state, "groups": []}
        await store.set(owner, record)
        for service in srv.server.hosts["localhost"].providers.get("roster", []):
            service.invalidate(owner)  # written behind the roster cache


def test_initial_presence_broadcast_and_probes() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            romeo = await srv.connect("romeo@localhost/a")
            watcher = await srv.connect("watcher@localhost/w")   # sees Romeo (from)
            watched = await srv.connect("watched@localhost/w")   # Romeo sees it (to)
            nobody = await srv.connect("nobody@localhost/n")     # no subscription
            for c in (watcher, watched, nobody):
                await c.send("<presence/>")
                c.received()
            await subscribed_pair(srv, "romeo", "watcher", "from")
            await subscribed_pair(srv, "romeo", "watched", "to")
            await subscribed_pair(srv, "romeo", "nobody", "none")

            await romeo.send("<presence><status>here</status></presence>")
            assert presences(watcher) == [(None, romeo.jid)]
            watched.nothing()
            nobody.nothing()
            got = romeo.received()
            assert (got[0].get("from"), got[0].get("to")) == (romeo.jid, romeo.jid)
            # The probe to "watched" is answered with its last presence, delayed (§4.3.2).
            answers = [s for s in got[1:] if s.name == "presence"]
            assert [(s.get("from"), s.get("to")) for s in answers] == [(watched.jid, romeo.jid)]
            assert answers[0].find("delay", NS_DELAY).get("from") == "localhost"

            # A probe from someone not subscribed learns nothing: the answer is
            # "unsubscribed", which changes nothing in its roster and so is not shown.
            await nobody.send("<presence type='probe' to='romeo@localhost'/>")
            nobody.nothing()
            await watcher.send("<presence type='probe' to='romeo@localhost'/>")
            assert presences(watcher) == [(None, romeo.jid)]
    run(main())


def test_own_resources_see_each_other_and_unavailable_follows() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            a = await srv.connect("romeo@localhost/a")
            b = await srv.connect("romeo@localhost/b")
            await a.send("<presence/>")
            assert presences(a) == [(None, a.jid)]
            b.nothing()  # b is not available, so it gets nobody's presence
            await b.send("<presence><priority>-1</priority></presence>")
            assert presences(a) == [(None, b.jid)]
            assert sorted(presences(b), key=str) == sorted([(None, b.jid), (None, a.jid)],
                                                           key=str)
            await b.send("<presence type='unavailable'/>")
            assert presences(a) == [("unavailable", b.jid)]
            assert presences(b) == [("unavailable", b.jid)]
            await a.disconnect()
            await idle()  # the unbind handlers' presence, sent detached
            b.nothing()  # no longer available
    run(main())


def test_directed_presence_is_followed_by_unavailable() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            romeo = await srv.connect("romeo@localhost/a")
            juliet = await srv.connect("juliet@localhost/b")
            nurse = await srv.connect("nurse@localhost/c")
            for c in (juliet, nurse):
                await c.send("<presence/>")
                c.received()
            await romeo.send("<presence/>")
            await romeo.send("<presence to='juliet@localhost/b'/>")
            await romeo.send("<presence to='nurse@localhost/c'/>")
            await romeo.send("<presence to='nurse@localhost/c' type='unavailable'/>")
            assert presences(juliet) == [(None, romeo.jid)]
            assert presences(nurse) == [(None, romeo.jid), ("unavailable", romeo.jid)]
            assert romeo.session.directed == {"juliet@localhost/b"}
            await romeo.disconnect()
            await idle()  # the unbind handlers' presence, sent detached
            assert presences(juliet) == [("unavailable", romeo.jid)]
            nurse.nothing()
    run(main())


def test_directed_presence_without_being_available() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            romeo = await srv.connect("romeo@localhost/a")
            juliet = await srv.connect("juliet@localhost/b")
            await romeo.send("<presence to='juliet@localhost/b'/>")
            assert presences(juliet) == [(None, romeo.jid)]
            await romeo.disconnect()
            await idle()  # the unbind handlers' presence, sent detached
            assert presences(juliet) == [("unavailable", romeo.jid)]
    run(main())


def test_sessions_without_contacts_share_one_empty_contact_set() -> None:
    # Memory per idle session: no fresh empty frozenset for each.
    async def main() -> None:
        async with ModuleTestServer() as srv:
            romeo = await srv.connect("romeo@localhost/a")
            juliet = await srv.connect("juliet@localhost/b")
            for c in (romeo, juliet):
                await c.send("<presence/>")
            contacts = [c.session.data["presence.contacts"] for c in (romeo, juliet)]
            assert contacts[0] == frozenset() and contacts[0] is contacts[1]
    run(main())


def test_presence_to_an_account_without_available_resources() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            romeo = await srv.connect("romeo@localhost/a")
            juliet = await srv.connect("juliet@localhost/b")  # bound, not available
            await romeo.send("<presence to='juliet@localhost'/>")
            await romeo.send("<presence to='juliet@localhost' type='unavailable'/>")
            juliet.nothing()  # §8.5.2.2.2: dropped
            romeo.nothing()   # silently
    run(main())


def test_subscription_request_is_kept_whole_until_answered() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            romeo = await srv.connect("romeo@localhost/a")
            await srv.create_user("juliet")
            await romeo.send("<presence xmlns='jabber:client' to='juliet@localhost' "
                             "type='subscribe'><status>It is I</status>"
                             "<preauth xmlns='urn:xmpp:pars:0' token='T'/></presence>")
            for resource in ("one", "two"):  # every login until she answers
                juliet = await srv.connect(f"juliet@localhost/{resource}")
                await juliet.send("<presence/>")
                own, request = juliet.received()
                assert own.get("from") == juliet.jid
                assert (request.get("type"), request.get("from")) == ("subscribe",
                                                                      "romeo@localhost")
                assert request.child_text("status") == "It is I"
                assert request.find("preauth", "urn:xmpp:pars:0").get("token") == "T"
                await juliet.disconnect()
            juliet = await srv.connect("juliet@localhost/three")
            await juliet.send("<presence to='romeo@localhost' type='unsubscribed'/>")
            await juliet.send("<presence/>")
            assert [s.get("type") for s in juliet.received()] == [None]
            await idle()  # the unbind handlers' presence, sent detached
    run(main())


def test_pre_approval() -> None:
    from tercet.module import StreamFeaturesEvent

    async def main() -> None:
        async with ModuleTestServer() as srv:
            alice = await srv.connect("alice@localhost/a")
            bob = await srv.connect("bob@localhost/b")
            features = Element("features", "http://etherx.jabber.org/streams")
            srv.server.hosts["localhost"].events.fire(
                "stream-features", StreamFeaturesEvent(alice.session, features))
            assert features.find("sub", "urn:xmpp:features:pre-approval") is not None

            await alice.send(f"<iq type='get' id='r'><query xmlns='{NS_ROSTER}'/></iq>")
            alice.received()
            await alice.send("<presence to='bob@localhost' type='subscribed'/>")
            push = alice.expect("iq", type="set").find("query", NS_ROSTER).find("item")
            assert push.attrs == {"jid": "bob@localhost", "subscription": "none",
                                  "approved": "true"}  # RFC 6121 §2.1.2.1
            bob.nothing()  # not routed: nothing was asked yet
            await bob.send(f"<iq type='get' id='r'><query xmlns='{NS_ROSTER}'/></iq>")
            bob.received()
            await bob.send("<presence to='alice@localhost' type='subscribe'/>")
            assert ("subscribed", "alice@localhost") in presences(bob)
            item = alice.expect("iq", type="set").find("query", NS_ROSTER).find("item")
            assert item.attrs == {"jid": "bob@localhost", "subscription": "from"}
            alice.nothing()  # approved in advance: no request shown to her

            # A pre-approval can be withdrawn with unsubscribed (§3.4).
            await alice.send("<presence to='carol@localhost' type='subscribed'/>")
            await alice.send("<presence to='carol@localhost' type='unsubscribed'/>")
            alice.received()
            carol = await srv.connect("carol@localhost/c")
            await carol.send("<presence to='alice@localhost' type='subscribe'/>")
            assert ("subscribed", "alice@localhost") not in presences(carol)
    run(main())


def test_no_such_user() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            romeo = await srv.connect("romeo@localhost/a")
            await romeo.send("<presence/>")
            await romeo.send(f"<iq type='get' id='r'><query xmlns='{NS_ROSTER}'/></iq>")
            romeo.received()
            await romeo.send("<presence to='ghost@localhost' type='subscribe'/>")
            # §8.5.1: answered unsubscribed on behalf of the missing account, which
            # cancels the pending request (shown to interested resources, pushed).
            assert ("unsubscribed", "ghost@localhost") in presences(romeo)
            store = srv.server.storage.open("localhost", "roster", "keyval")
            assert (await store.get("romeo"))["ghost@localhost"] == {
                "subscription": "none", "groups": []}
    run(main())


def test_subscription_stanzas_to_self_and_without_to() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            romeo = await srv.connect("romeo@localhost/a")
            await romeo.send("<presence to='romeo@localhost' type='subscribe'/>")
            romeo.nothing()
            store = srv.server.storage.open("localhost", "roster", "keyval")
            assert await store.get("romeo") is None
            await romeo.send("<presence type='subscribe'/>")
            assert condition(romeo.expect("presence", type="error")) == "bad-request"
    run(main())


@pytest.mark.parametrize("text,expected", [
    ("5", 5), ("-1", -1), ("+7", 7), ("200", 127), ("-200", -128), ("5_0", 0), ("x", 0),
    ("", 0), (" 3 ", 3),
])
def test_priority(text: str, expected: int) -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            romeo = await srv.connect("romeo@localhost/a")
            await romeo.send(f"<presence><priority>{text}</priority></presence>")
            assert romeo.session.priority == expected
    run(main())


def test_negative_priority_gets_no_bare_jid_messages() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            laptop = await srv.connect("juliet@localhost/laptop")
            phone = await srv.connect("juliet@localhost/phone")
            romeo = await srv.connect("romeo@localhost/a")
            await laptop.send("<presence><priority>-1</priority></presence>")
            await phone.send("<presence><priority>0</priority></presence>")
            laptop.received()
            phone.received()
            await romeo.send("<message to='juliet@localhost' type='chat'><body>1</body></message>")
            assert [m.child_text("body") for m in phone.received()] == ["1"]
            laptop.nothing()  # RFC 6121 §8.5.2.1.1: never to negative priority
            await romeo.send("<message to='juliet@localhost/laptop'><body>2</body></message>")
            assert [m.child_text("body") for m in laptop.received()] == ["2"]
            await phone.disconnect()
            await idle()  # the unbind handlers' presence, sent detached
            laptop.received()
            # Only a negative resource left: the message is kept offline, not delivered.
            await romeo.send("<message to='juliet@localhost' type='chat'><body>3</body></message>")
            laptop.nothing()
            romeo.nothing()
            stored = await srv.server.storage.open("localhost", "offline", "archive").find(
                "juliet", ArchiveQuery())
            assert [i.value.child_text("body") for i in stored] == ["3"]
    run(main())


def test_pending_record_parses_back() -> None:
    """What the store keeps for a pending request is the stanza, namespaces included."""
    async def main() -> None:
        async with ModuleTestServer() as srv:
            romeo = await srv.connect("romeo@localhost/a")
            await srv.create_user("juliet")
            await romeo.send("<presence xmlns='jabber:client' to='juliet@localhost' "
                             "type='subscribe'><nick xmlns='http://jabber.org/protocol/nick'>R</nick></presence>")
            record = await srv.server.storage.open("localhost", "roster", "keyval").get("juliet")
            kept = parse_fragment(record["@meta"]["pending"]["romeo@localhost"])
            assert kept.xmlns == "jabber:client"
            assert kept.child_text("nick", "http://jabber.org/protocol/nick") == "R"
    run(main())


def test_the_server_itself_approves_and_answers_probes() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            romeo = await srv.connect("romeo@localhost/a")
            await romeo.send("<presence/>")
            await romeo.send(f"<iq type='get' id='r'><query xmlns='{NS_ROSTER}'/></iq>")
            romeo.received()
            await romeo.send("<presence to='localhost' type='subscribe'/>")
            got = presences(romeo)
            assert ("subscribed", "localhost") in got and (None, "localhost") in got
            record = await srv.server.storage.open("localhost", "roster", "keyval").get("romeo")
            assert record["localhost"]["subscription"] == "to"
            await romeo.send("<presence to='localhost' type='probe'/>")
            assert presences(romeo) == [(None, "localhost")]
    run(main())


def test_sessions_with_the_same_presence_keep_one_element() -> None:
    # Memory per idle session: the stored presence (RFC 6121 §4.2) is shared when alike,
    # kept without 'from', and what others receive from it still says who sent it.
    async def main() -> None:
        async with ModuleTestServer() as srv:
            romeo = await srv.connect("romeo@localhost/a")
            juliet = await srv.connect("juliet@localhost/b")
            nurse = await srv.connect("nurse@localhost/c")
            for c in (romeo, juliet):
                await c.send("<presence><show>away</show></presence>")
            await nurse.send("<presence><show>away</show><status>busy</status></presence>")
            kept = [c.session.presence for c in (romeo, juliet, nurse)]
            assert kept[0] is kept[1] and kept[2] is not kept[0]
            assert kept[0] is not None and kept[0].get("from") is None
            assert kept[2] is not None and kept[2].find("status").text == "busy"  # type: ignore[union-attr]
            # A second resource of romeo's is sent the first one's presence, stamped.
            second = await srv.connect("romeo@localhost/d")
            await second.send("<presence/>")
            got = [s for s in second.received() if s.name == "presence"]
            assert {s.get("from") for s in got} == {romeo.jid, second.jid}
            first = next(s for s in got if s.get("from") == romeo.jid)
            assert first.find("show").text == "away"  # type: ignore[union-attr]
            # The shared element was not changed by stamping a copy.
            assert kept[0].get("from") is None and kept[1] is juliet.session.presence
    run(main())
