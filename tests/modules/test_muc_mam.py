"""MUC archives (XEP-0313 on XEP-0045 rooms, XEP-0359, XEP-0425), XML in and XML out,
through the real ``muc`` component with ``muc_mam`` in its own table."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from helpers import idle, run
from moduletest import ModuleTestServer, TestClient, condition

from tercet.modules._mamlib import NS_MAM, NS_MAM_EXTENDED, NS_RSM, NS_SID
from tercet.modules._muc.api import NS_MUC, NS_MUC_OWNER, NS_MUC_USER
from tercet.modules._mucarchive import NS_MODERATE, NS_RETRACT
from tercet.protocol.stanza import NS_DELAY, Element
from tercet.storage.base import ArchiveQuery

MUC = "conference.localhost"
ROOM = f"room@{MUC}"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_FORWARD = "urn:xmpp:forward:0"


def component(extra: str = "") -> str:
    return (f'\n[components."{MUC}"]\nmodule = "muc"\nmodules_enabled = ["muc_mam"]\n'
            f"muc_log_cleanup_interval = 0.05\n{extra}")


def scenario(body: Callable[[ModuleTestServer], Awaitable[None]], extra: str = "",
             global_extra: str = "") -> None:
    async def main() -> None:
        async with ModuleTestServer(global_extra, component(extra)) as srv:
            await body(srv)
    run(main(), 120)


def store(srv: ModuleTestServer):  # type: ignore[no-untyped-def]
    return srv.server.storage.open(MUC, "muc_log", "archive")


async def join(client: TestClient, nick: str, room: str = ROOM,
               history: str = "<history maxstanzas='0'/>") -> list[Element]:
    await client.send(f"<presence to='{room}/{nick}'><x xmlns='{NS_MUC}'>{history}</x>"
                      "</presence>")
    await idle()
    return client.received()


async def configure(owner: TestClient, room: str = ROOM, **fields: str) -> Element:
    """Submit the owner's configuration form with ``fields`` (var suffix -> value)."""
    values = "".join(f"<field var='muc#roomconfig_{k}'><value>{v}</value></field>"
                     for k, v in fields.items())
    await owner.send(f"<iq type='set' id='cfg' to='{room}'><query xmlns='{NS_MUC_OWNER}'>"
                     "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'>"
                     "<value>http://jabber.org/protocol/muc#roomconfig</value></field>"
                     f"{values}</x></query></iq>")
    await idle()
    got = owner.received()
    iqs = [s for s in got if s.name == "iq" and s.get("id") == "cfg"]
    assert iqs, got
    return iqs[0]


async def make_room(srv: ModuleTestServer, room: str = ROOM, **fields: str) -> TestClient:
    owner = await srv.connect("owner@localhost/o")
    await join(owner, "Owner", room)
    reply = await configure(owner, room, **fields)
    assert reply.get("type") == "result", reply
    return owner


async def say(client: TestClient, body: str, extra: str = "",
              room: str = ROOM) -> None:
    await client.send(f"<message to='{room}' type='groupchat' id='{body}'>"
                      f"<body>{body}</body>{extra}</message>")


async def query(client: TestClient, form: str = "", rsm: str = "", extra: str = "",
                to: str = ROOM, iq_id: str = "q") -> tuple[list[Element], Element]:
    x = (f"<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>"
         f"<value>{NS_MAM}</value></field>{form}</x>") if form else ""
    await client.send(f"<iq type='set' id='{iq_id}' to='{to}'><query xmlns='{NS_MAM}' "
                      f"queryid='f'>{x}{extra}<set xmlns='{NS_RSM}'>{rsm}</set></query>"
                      "</iq>")
    await idle()
    got = [s for s in client.received() if s.name == "iq" or s.find("result", NS_MAM)]
    assert got and got[-1].name == "iq", got
    return got[:-1], got[-1]


def forwarded(result: Element) -> Element:
    res = result.find("result", NS_MAM)
    assert res is not None and res.get("queryid") == "f", result
    fwd = res.find("forwarded", NS_FORWARD)
    assert fwd is not None and fwd.find("delay", NS_DELAY) is not None
    inner = fwd.find("message", "jabber:client")
    assert inner is not None
    return inner


def bodies(results: list[Element]) -> list[str]:
    return [forwarded(r).child_text("body") or "" for r in results]


def ids(results: list[Element]) -> list[str]:
    out = []
    for r in results:
        res = r.find("result", NS_MAM)
        assert res is not None
        out.append(res.get("id") or "")
    return out


def fin_of(iq: Element) -> Element:
    assert iq.get("type") == "result", iq
    fin = iq.find("fin", NS_MAM)
    assert fin is not None, iq
    return fin


def rsm_text(iq: Element, name: str) -> str | None:
    rsm = fin_of(iq).find("set", NS_RSM)
    assert rsm is not None
    return rsm.child_text(name, NS_RSM)


def groupchat(got: list[Element], body: str) -> Element:
    for s in got:
        if s.name == "message" and s.child_text("body") == body:
            return s
    raise AssertionError(f"no groupchat {body!r} in {got}")


def real_jids(msg: Element) -> list[str]:
    x = msg.find("x", NS_MUC_USER)
    return [] if x is None else [i.get("jid") or "" for i in x.find_all("item", NS_MUC_USER)]


# -- archiving --------------------------------------------------------------------------------

def test_messages_archived_with_stanza_id_forged_ids_removed_and_hints() -> None:
    async def body(srv: ModuleTestServer) -> None:
        owner = await make_room(srv)
        juliet = await srv.connect("juliet@localhost/j")
        await join(juliet, "Juliet")
        owner.received()
        await say(owner, "hello", f"<stanza-id xmlns='{NS_SID}' by='{ROOM}' id='forged'/>"
                                  f"<stanza-id xmlns='{NS_SID}' by='other@x' id='kept'/>")
        await idle()
        got = groupchat(juliet.received(), "hello")
        sids = [(s.get("by"), s.get("id")) for s in got.find_all("stanza-id", NS_SID)]
        kept = await store(srv).find("room", ArchiveQuery())
        assert len(kept) == 1
        assert sids == [("other@x", "kept"), (ROOM, kept[0].key)]
        assert kept[0].with_jid == f"{ROOM}/Owner"
        assert kept[0].value.get("from") == f"{ROOM}/Owner"
        assert kept[0].value.get("to") is None
        assert real_jids(kept[0].value) == ["owner@localhost"]
        # the sender's own copy carries the same stanza-id
        echo = groupchat(owner.received(), "hello")
        assert [s.get("id") for s in echo.find_all("stanza-id", NS_SID)
                if s.get("by") == ROOM] == [kept[0].key]
        # Not archived: no-store / no-permanent-store hints, a subject, a chat state.
        await say(owner, "secret", "<no-store xmlns='urn:xmpp:hints'/>")
        await say(owner, "secret2", "<no-permanent-store xmlns='urn:xmpp:hints'/>")
        await owner.send(f"<message to='{ROOM}' type='groupchat'><subject>s</subject>"
                         "</message>")
        await owner.send(f"<message to='{ROOM}' type='groupchat'><active xmlns='http://"
                         "jabber.org/protocol/chatstates'/></message>")
        await idle()
        got = juliet.received()
        assert groupchat(got, "secret").find("stanza-id", NS_SID) is None
        assert await store(srv).count("room", ArchiveQuery()) == 1
    scenario(body)


def test_disco_and_config_field_switch_archiving() -> None:
    async def body(srv: ModuleTestServer) -> None:
        owner = await make_room(srv)
        await owner.send(f"<iq type='get' id='d' to='{ROOM}'><query xmlns='{NS_DISCO_INFO}'/>"
                         "</iq>")
        await idle()
        info = owner.expect("iq", type="result")
        query = info.find("query", NS_DISCO_INFO)
        assert query is not None
        features = {f.get("var") for f in query.find_all("feature", NS_DISCO_INFO)}
        assert {NS_MAM, NS_MAM_EXTENDED, NS_MODERATE} <= features
        # The owner's form offers the field, on by default (muc_log_by_default).
        await owner.send(f"<iq type='get' id='f' to='{ROOM}'><query xmlns='{NS_MUC_OWNER}'/>"
                         "</iq>")
        await idle()
        form = owner.expect("iq", type="result")
        fields = {f.get("var"): f for f in form.find_all("query", NS_MUC_OWNER)
                  .__next__().find("x", "jabber:x:data").find_all("field", "jabber:x:data")}
        assert fields["muc#roomconfig_enablearchiving"].child_text(
            "value", "jabber:x:data") in ("1", "true")
        # Off: nothing archived, no stanza-id, no feature; status 171 announced.
        reply = await configure(owner, enablearchiving="0")
        assert reply.get("type") == "result"
        await say(owner, "unlogged")
        await idle()
        got = groupchat(owner.received(), "unlogged")
        assert got.find("stanza-id", NS_SID) is None
        assert await store(srv).count("room", ArchiveQuery()) == 0
        await owner.send(f"<iq type='get' id='d2' to='{ROOM}'><query xmlns='"
                         f"{NS_DISCO_INFO}'/></iq>")
        await idle()
        info = owner.expect("iq", type="result")
        features = {f.get("var") for f in info.find("query", NS_DISCO_INFO)
                    .find_all("feature", NS_DISCO_INFO)}  # type: ignore[union-attr]
        assert NS_MAM not in features
        # A bad boolean is refused.
        reply = await configure(owner, enablearchiving="maybe")
        assert reply.get("type") == "error"
        assert condition(reply) in ("not-acceptable", "bad-request")
        # Back on.
        await configure(owner, enablearchiving="1")
        await say(owner, "logged")
        await idle()
        assert await store(srv).count("room", ArchiveQuery()) == 1
    scenario(body)


def test_log_by_default_false_and_log_all_rooms() -> None:
    async def off(srv: ModuleTestServer) -> None:
        owner = await make_room(srv)
        await say(owner, "x")
        await idle()
        assert await store(srv).count("room", ArchiveQuery()) == 0
        await configure(owner, enablearchiving="1")
        await say(owner, "y")
        await idle()
        assert await store(srv).count("room", ArchiveQuery()) == 1
    scenario(off, "muc_log_by_default = false")

    async def forced(srv: ModuleTestServer) -> None:
        owner = await make_room(srv)
        await owner.send(f"<iq type='get' id='f' to='{ROOM}'><query xmlns='{NS_MUC_OWNER}'/>"
                         "</iq>")
        await idle()
        assert "enablearchiving" not in owner.expect("iq", type="result").to_xml()
        await configure(owner, enablearchiving="0")  # not a field here: ignored
        await say(owner, "z")
        await idle()
        assert await store(srv).count("room", ArchiveQuery()) == 1
    scenario(forced, "muc_log_all_rooms = true\nmuc_log_by_default = false")


# -- queries and access ------------------------------------------------------------------------

def test_query_results_forwarded_with_fin_and_metadata() -> None:
    async def body(srv: ModuleTestServer) -> None:
        owner = await make_room(srv)
        for i in range(3):
            await say(owner, f"m{i}")
        await idle()
        owner.received()
        results, iq = await query(owner)
        assert bodies(results) == ["m0", "m1", "m2"]
        assert all(r.get("from") == ROOM for r in results)
        inner = forwarded(results[0])
        assert inner.get("from") == f"{ROOM}/Owner" and inner.get("type") == "groupchat"
        assert fin_of(iq).get("complete") == "true"
        assert rsm_text(iq, "count") == "3"
        # the ids are the stanza-ids of the broadcast
        stored = [i.key for i in await store(srv).find("room", ArchiveQuery())]
        assert ids(results) == stored
        # ids filter (#extended), flip-page, metadata
        results, _ = await query(owner, form=f"<field var='ids'><value>{stored[1]}</value>"
                                             "</field>")
        assert bodies(results) == ["m1"]
        results, _ = await query(owner, extra=f"<flip-page xmlns='{NS_MAM}'/>")
        assert bodies(results) == ["m2", "m1", "m0"]
        await owner.send(f"<iq type='get' id='meta' to='{ROOM}'><metadata xmlns='{NS_MAM}'/>"
                         "</iq>")
        await idle()
        meta = owner.expect("iq", type="result").find("metadata", NS_MAM)
        assert meta is not None
        assert meta.find("start", NS_MAM).get("id") == stored[0]  # type: ignore[union-attr]
        assert meta.find("end", NS_MAM).get("id") == stored[2]  # type: ignore[union-attr]
        # the query form
        await owner.send(f"<iq type='get' id='form' to='{ROOM}'><query xmlns='{NS_MAM}'/>"
                         "</iq>")
        await idle()
        assert "after-id" in owner.expect("iq", type="result").to_xml()
    scenario(body)


def test_with_filters_by_occupant() -> None:
    async def body(srv: ModuleTestServer) -> None:
        owner = await make_room(srv)
        juliet = await srv.connect("juliet@localhost/j")
        await join(juliet, "Juliet")
        await say(owner, "from owner")
        await say(juliet, "from juliet")
        await idle()
        results, _ = await query(juliet, form=f"<field var='with'><value>{ROOM}/Juliet"
                                              "</value></field>")
        assert bodies(results) == ["from juliet"]
        results, _ = await query(juliet, form=f"<field var='with'><value>{ROOM}</value>"
                                              "</field>")
        assert bodies(results) == ["from owner", "from juliet"]
        results, _ = await query(juliet, form="<field var='with'><value>juliet@localhost"
                                              "</value></field>")
        assert results == []
    scenario(body)


def test_semi_anonymous_hides_real_jids_from_non_moderators() -> None:
    async def body(srv: ModuleTestServer) -> None:
        owner = await make_room(srv)  # whois=moderators is the default
        juliet = await srv.connect("juliet@localhost/j")
        await join(juliet, "Juliet")
        await say(owner, "who am i")
        await idle()
        results, _ = await query(juliet)
        assert real_jids(forwarded(results[0])) == []
        results, _ = await query(owner)
        assert real_jids(forwarded(results[0])) == ["owner@localhost"]
        # non-anonymous: everyone sees them
        await configure(owner, whois="anyone")
        juliet.received()
        results, _ = await query(juliet)
        assert real_jids(forwarded(results[0])) == ["owner@localhost"]
        # a sender cannot put a real JID of its own choosing in
        await configure(owner, whois="moderators")
        await say(juliet, "fake", f"<x xmlns='{NS_MUC_USER}'><item jid='owner@localhost'/>"
                                  "</x>")
        await idle()
        results, _ = await query(owner)
        assert real_jids(forwarded(results[-1])) == ["juliet@localhost"]
        results, _ = await query(juliet)
        assert real_jids(forwarded(results[-1])) == []
    scenario(body)


def test_access_rules_and_error_paths() -> None:
    async def body(srv: ModuleTestServer) -> None:
        owner = await make_room(srv, membersonly="1")
        await say(owner, "members only")
        await idle()
        stranger = await srv.connect("stranger@localhost/s")
        # not a member of a members-only room: forbidden
        _, iq = await query(stranger)
        assert iq.get("type") == "error" and condition(iq) == "forbidden"
        # unknown room: item-not-found
        _, iq = await query(owner, to=f"nosuchroom@{MUC}")
        assert iq.get("type") == "error" and condition(iq) == "item-not-found"
        # bad form: bad-request; unknown after-id / before-id: item-not-found
        _, iq = await query(owner, form="<field var='bogus'><value>1</value></field>")
        assert condition(iq) == "bad-request"
        _, iq = await query(owner, form="<field var='start'><value>yesterday</value>"
                                        "</field>")
        assert condition(iq) == "bad-request"
        _, iq = await query(owner, rsm="<after>no-such-id</after>")
        assert condition(iq) == "item-not-found"
        _, iq = await query(owner, form="<field var='after-id'><value>nope</value>"
                                        "</field>")
        assert condition(iq) == "item-not-found"
        _, iq = await query(owner, form="<field var='with'><value>@@bad</value></field>")
        assert condition(iq) == "jid-malformed"
        # metadata and the form follow the same rules
        await stranger.send(f"<iq type='get' id='m' to='{ROOM}'><metadata xmlns='{NS_MAM}'/>"
                            "</iq>")
        await idle()
        assert condition(stranger.expect("iq", type="error")) == "forbidden"
        # once a member, allowed without being present
        await owner.send(f"<iq type='set' id='aff' to='{ROOM}'><query xmlns='http://jabber"
                         ".org/protocol/muc#admin'><item affiliation='member' jid='stranger@"
                         "localhost'/></query></iq>")
        await idle()
        results, iq = await query(stranger)
        assert bodies(results) == ["members only"]
        # an outcast never
        await owner.send(f"<iq type='set' id='ban' to='{ROOM}'><query xmlns='http://jabber"
                         ".org/protocol/muc#admin'><item affiliation='outcast' jid='stranger@"
                         "localhost'/></query></iq>")
        await idle()
        _, iq = await query(stranger)
        assert condition(iq) == "forbidden"
    scenario(body)


def test_open_room_needs_presence_or_affiliation() -> None:
    async def body(srv: ModuleTestServer) -> None:
        owner = await make_room(srv)
        await say(owner, "open")
        await idle()
        visitor = await srv.connect("visitor@localhost/v")
        _, iq = await query(visitor)
        assert condition(iq) == "forbidden"
        await join(visitor, "Visitor")
        results, _ = await query(visitor)
        assert bodies(results) == ["open"]
    scenario(body)


def test_paging_300_messages_both_ways() -> None:
    async def body(srv: ModuleTestServer) -> None:
        owner = await make_room(srv)
        for i in range(300):
            await say(owner, f"n{i}")
        await idle()
        owner.received()
        expected = [f"n{i}" for i in range(300)]
        forward: list[str] = []
        after: str | None = None
        pages = 0
        while True:
            rsm = "<max>40</max>" + (f"<after>{after}</after>" if after else "")
            results, iq = await query(owner, rsm=rsm)
            forward += bodies(results)
            pages += 1
            after = rsm_text(iq, "last")
            if fin_of(iq).get("complete") == "true":
                break
        assert forward == expected and pages == 12  # pages of 25: the option caps 40
        backward: list[str] = []
        before = ""
        while True:
            results, iq = await query(owner, rsm=f"<max>40</max><before>{before}</before>")
            backward = bodies(results) + backward
            before = rsm_text(iq, "first") or ""
            if fin_of(iq).get("complete") == "true":
                break
        assert backward == expected
        # the page bound: max_archive_query_results
        results, iq = await query(owner, rsm="<max>1000</max>")
        assert len(results) == 25 and fin_of(iq).get("complete") == "false"
        # count alone
        results, iq = await query(owner, rsm="<max>0</max>")
        assert results == [] and rsm_text(iq, "count") == "300"
    scenario(body, global_extra="max_archive_query_results = 25")


# -- history, destruction, bounds ---------------------------------------------------------------

def test_join_history_from_archive() -> None:
    async def body(srv: ModuleTestServer) -> None:
        owner = await make_room(srv, historylength="5")
        for i in range(8):
            await say(owner, f"h{i}")
        await idle()
        stored = [i.key for i in await store(srv).find("room", ArchiveQuery())]
        juliet = await srv.connect("juliet@localhost/j")
        got = await join(juliet, "Juliet", history="<history maxstanzas='3'/>")
        history = [s for s in got if s.name == "message" and s.child_text("body")]
        assert [h.child_text("body") for h in history] == ["h5", "h6", "h7"]
        for h, key in zip(history, stored[5:], strict=True):
            assert h.find("delay", NS_DELAY) is not None
            assert [s.get("id") for s in h.find_all("stanza-id", NS_SID)] == [key]
            assert real_jids(h) == []
        romeo = await srv.connect("romeo@localhost/r")
        got = await join(romeo, "Romeo", history="")
        assert [s.child_text("body") for s in got
                if s.name == "message" and s.child_text("body")] == [
            f"h{i}" for i in range(3, 8)]  # capped at the room's history length
        # served from the archive, not the room's memory: an item only the archive has
        ghost = Element("message", attrs={"from": f"{ROOM}/Ghost", "type": "groupchat"})
        ghost.text_tag("body", "only archived")
        await store(srv).append("room", ghost, when=srv.server.clock(),
                                with_jid=f"{ROOM}/Ghost")
        tybalt = await srv.connect("tybalt@localhost/t")
        got = await join(tybalt, "Tybalt", history="<history maxstanzas='1'/>")
        assert [s.child_text("body") for s in got if s.name == "message"
                and s.child_text("body")] == ["only archived"]
        # non-anonymous: join history shows who said what
        await configure(owner, whois="anyone")
        paris = await srv.connect("paris@localhost/p")
        got = await join(paris, "Paris", history="<history maxstanzas='2'/>")
        history = [s for s in got if s.name == "message" and s.child_text("body")]
        assert [real_jids(h) for h in history] == [["owner@localhost"], []]
    scenario(body)


def test_destroying_a_room_deletes_its_archive() -> None:
    async def body(srv: ModuleTestServer) -> None:
        owner = await make_room(srv, persistentroom="1")
        await say(owner, "bye")
        await idle()
        assert await store(srv).count("room", ArchiveQuery()) == 1
        await owner.send(f"<iq type='set' id='x' to='{ROOM}'><query xmlns='{NS_MUC_OWNER}'>"
                         "<destroy/></query></iq>")
        await idle()
        assert await store(srv).count("room", ArchiveQuery()) == 0
    scenario(body)


def test_max_items_trims_oldest_and_expiry() -> None:
    async def trimmed(srv: ModuleTestServer) -> None:
        owner = await make_room(srv)
        for i in range(7):
            await say(owner, f"t{i}")
        await idle()
        results, _ = await query(owner)
        assert bodies(results) == ["t2", "t3", "t4", "t5", "t6"]
    scenario(trimmed, "muc_log_max_items = 5")

    async def expired(srv: ModuleTestServer) -> None:
        owner = await make_room(srv)
        await say(owner, "old")
        await idle()
        st = store(srv)
        old = (await st.find("room", ArchiveQuery()))[0]
        # the same item, two days older
        await st.append("room", old.value, when=old.when - 2 * 86400,
                        with_jid=old.with_jid, key=old.key)
        await say(owner, "new")
        for _ in range(500):  # the expiry job runs every 0.05 s here
            if not await st.find("room", ArchiveQuery(ids=[old.key])):
                break
            await asyncio.sleep(0.02)
        results, _ = await query(owner)
        assert bodies(results) == ["new"]
    scenario(expired, 'muc_log_expires_after = "1d"')


# -- moderation (XEP-0425) --------------------------------------------------------------------

def test_moderator_retracts_a_message() -> None:
    async def body(srv: ModuleTestServer) -> None:
        owner = await make_room(srv)
        juliet = await srv.connect("juliet@localhost/j")
        await join(juliet, "Juliet")
        await say(juliet, "rude")
        await idle()
        sid = [s for s in groupchat(juliet.received(), "rude").find_all("stanza-id", NS_SID)
               if s.get("by") == ROOM][0].get("id")
        owner.received()
        # not a moderator: forbidden
        moderate = (f"<iq type='set' id='mod' to='{ROOM}'><moderate id='{{}}' xmlns='"
                    f"{NS_MODERATE}'><retract xmlns='{NS_RETRACT}'/><reason>spam</reason>"
                    "</moderate></iq>")
        await juliet.send(moderate.format(sid))
        await idle()
        assert condition(juliet.expect("iq", type="error")) == "forbidden"
        await owner.send(moderate.format("no-such-id"))
        await idle()
        assert condition(owner.expect("iq", type="error")) == "item-not-found"
        await owner.send(moderate.format(sid))
        await idle()
        got = owner.received()
        assert any(s.name == "iq" and s.get("type") == "result" for s in got)
        notice = [s for s in juliet.received() if s.find("retract", NS_RETRACT)][0]
        retract = notice.find("retract", NS_RETRACT)
        assert retract is not None and retract.get("id") == sid
        assert retract.find("moderated", NS_MODERATE).get("by") == f"{ROOM}/Owner"  # type: ignore[union-attr]
        assert retract.child_text("reason", NS_RETRACT) == "spam"
        results, _ = await query(owner)
        first = forwarded(results[0])
        assert first.find("body") is None
        assert first.find("retracted", NS_RETRACT) is not None
        assert ids(results)[0] == sid
        # the notice is archived too, for clients that sync later
        assert forwarded(results[1]).find("retract", NS_RETRACT) is not None
    scenario(body)


# -- the pure helpers ----------------------------------------------------------------------------

def test_what_is_historic_and_the_history_window() -> None:
    from tercet.modules._muc.api import HistoryLimits
    from tercet.modules._mucarchive import historic, history_window
    from tercet.protocol.xmlstream import parse_fragment

    def msg(inner: str) -> Element:
        return parse_fragment(f"<message xmlns='jabber:client' type='groupchat'>{inner}"
                              "</message>")
    assert historic(msg("<body>x</body>"))
    assert not historic(msg("<body>x</body><no-store xmlns='urn:xmpp:hints'/>"))
    assert not historic(msg("<body>x</body><no-permanent-store xmlns='urn:xmpp:hints'/>"))
    assert historic(msg("<subject>s</subject><store xmlns='urn:xmpp:hints'/>"))
    assert not historic(msg("<subject>s</subject>"))
    assert historic(msg("<displayed xmlns='urn:xmpp:chat-markers:0' id='1'/>"))
    assert history_window(HistoryLimits(), 20, 1000.0) == (20, None)
    assert history_window(HistoryLimits(maxstanzas=50), 20, 1000.0) == (20, None)
    assert history_window(HistoryLimits(maxstanzas=0), 20, 1000.0) is None
    assert history_window(HistoryLimits(maxchars=0), 20, 1000.0) is None
    assert history_window(HistoryLimits(), 0, 1000.0) is None
    assert history_window(HistoryLimits(seconds=10, since=995.0), 20, 1000.0) == (20, 995.0)
    assert history_window(HistoryLimits(seconds=10, since=900.0), 20, 1000.0) == (20, 990.0)


def test_moderation_legacy_form_and_bad_requests() -> None:
    from tercet.modules._mucarchive import NS_FASTEN, NS_MODERATE_0, NS_RETRACT_0

    async def body(srv: ModuleTestServer) -> None:
        owner = await make_room(srv)
        await say(owner, "oops")
        await idle()
        sid = (await store(srv).find("room", ArchiveQuery()))[0].key
        owner.received()
        # XEP-0425 0.2: <apply-to/> around <moderate xmlns='…:0'/>
        await owner.send(f"<iq type='set' id='m0' to='{ROOM}'><apply-to id='{sid}' xmlns='"
                         f"{NS_FASTEN}'><moderate xmlns='{NS_MODERATE_0}'><retract xmlns='"
                         f"{NS_RETRACT_0}'/><reason>typo</reason></moderate></apply-to>"
                         "</iq>")
        await idle()
        got = owner.received()
        assert [s.get("type") for s in got if s.name == "iq"] == ["result"]
        notice = [s for s in got if s.name == "message"][0]
        apply_to = notice.find("apply-to", NS_FASTEN)
        assert apply_to is not None and apply_to.get("id") == sid
        moderated = apply_to.find("moderated", NS_MODERATE_0)
        assert moderated is not None and moderated.get("by") == f"{ROOM}/Owner"
        assert moderated.find("retract", NS_RETRACT_0) is not None
        assert notice.find("retract", NS_RETRACT) is not None  # and the 1 form
        tomb = (await store(srv).find("room", ArchiveQuery(ids=[sid])))[0].value
        assert tomb.find("body") is None
        assert tomb.find("moderated", NS_MODERATE_0) is not None
        assert tomb.find("retracted", NS_RETRACT) is not None
        # no <retract/>, no id: bad-request; unknown room: item-not-found
        await owner.send(f"<iq type='set' id='b1' to='{ROOM}'><moderate id='{sid}' xmlns='"
                         f"{NS_MODERATE}'/></iq>")
        await owner.send(f"<iq type='set' id='b2' to='{ROOM}'><moderate xmlns='"
                         f"{NS_MODERATE}'><retract xmlns='{NS_RETRACT}'/></moderate></iq>")
        await owner.send(f"<iq type='set' id='b3' to='nope@{MUC}'><moderate id='{sid}' "
                         f"xmlns='{NS_MODERATE}'><retract xmlns='{NS_RETRACT}'/></moderate>"
                         "</iq>")
        await idle()
        errors = [condition(s) for s in owner.received() if s.name == "iq"]
        assert errors == ["bad-request", "bad-request", "item-not-found"]
    scenario(body)
