"""Message Archive Management (XEP-0313) and stanza IDs (XEP-0359), XML in and XML out."""

from __future__ import annotations

from helpers import idle, run
from moduletest import ModuleTestServer, TestClient

from tercet.core.streamevents import StreamElementEvent
from tercet.modules._mamlib import NS_MAM, NS_RSM, NS_SID, expiry_seconds
from tercet.protocol.stanza import Element
from tercet.storage.base import ArchiveQuery

CONFIG = "archive_cleanup_interval = 0.05"
HOST = 'modules_enabled = ["mam"]'


def archive(srv: ModuleTestServer):  # type: ignore[no-untyped-def]
    return srv.server.storage.open("localhost", "archive", "archive")


async def chat(sender: TestClient, to: str, body: str, extra: str = "") -> None:
    await sender.send(f"<message xmlns='jabber:client' to='{to}' type='chat'>"
                      f"<body>{body}</body>{extra}</message>")


def rsm_of(iq: Element) -> Element | None:
    fin = iq.find("fin", NS_MAM)
    return None if fin is None else fin.find("set", NS_RSM)


async def query(client: TestClient, rsm: str = "", form: str = "",
                extra: str = "") -> tuple[list[Element], Element]:
    x = (f"<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>"
         f"<value>{NS_MAM}</value></field>{form}</x>") if form else ""
    await client.send(f"<iq xmlns='jabber:client' type='set' id='q'><query xmlns='{NS_MAM}' "
                      f"queryid='f'>{x}{extra}<set xmlns='{NS_RSM}'>{rsm}</set></query></iq>")
    got = client.received()
    assert got and got[-1].name == "iq", got
    return got[:-1], got[-1]


def bodies(results: list[Element]) -> list[str]:
    out = []
    for msg in results:
        res = msg.find("result", NS_MAM)
        assert res is not None and res.get("queryid") == "f"
        fwd = next(res.elements())
        inner = fwd.find("message", "jabber:client")
        assert inner is not None
        out.append(inner.child_text("body") or "")
    return out


def test_live_messages_archived_with_stanza_id_and_forged_ids_removed() -> None:
    async def main() -> None:
        async with ModuleTestServer(CONFIG, HOST) as srv:
            romeo = await srv.connect("romeo@localhost/a")
            juliet = await srv.connect("juliet@localhost/b")
            await juliet.send("<presence xmlns='jabber:client'/>")
            juliet.received()
            await chat(romeo, "juliet@localhost", "hi",
                       f"<stanza-id xmlns='{NS_SID}' by='juliet@localhost' id='forged'/>"
                       f"<stanza-id xmlns='{NS_SID}' by='other@x' id='kept'/>"
                       "<origin-id xmlns='urn:xmpp:sid:0' id='o1'/>")
            got = juliet.expect("message")
            ids = [(s.get("by"), s.get("id")) for s in got.find_all("stanza-id", NS_SID)]
            await idle()  # the archive writer runs in the background
            theirs = [i for i in await archive(srv).find("juliet", ArchiveQuery())]
            assert ids == [("other@x", "kept"), ("juliet@localhost", theirs[0].key)]
            assert got.find("origin-id", NS_SID) is not None
            mine = await archive(srv).find("romeo", ArchiveQuery())
            assert [i.with_jid for i in mine] == ["juliet@localhost"]
            # Not archived: no body, no-store hint, groupchat, error.
            await romeo.send("<message xmlns='jabber:client' to='juliet@localhost' "
                             "type='chat'><active xmlns='http://jabber.org/protocol/"
                             "chatstates'/></message>")
            await chat(romeo, "juliet@localhost", "x", "<no-store xmlns='urn:xmpp:hints'/>")
            juliet.received()
            assert await archive(srv).count("juliet", ArchiveQuery()) == 1
            assert await archive(srv).count("romeo", ArchiveQuery()) == 1
    run(main())


def test_offline_messages_archived_and_delivered() -> None:
    async def main() -> None:
        async with ModuleTestServer(CONFIG, HOST) as srv:
            romeo = await srv.connect("romeo@localhost/a")
            await srv.create_user("juliet")
            await chat(romeo, "juliet@localhost", "while away")
            await idle()  # the archive writer runs in the background
            assert await archive(srv).count("juliet", ArchiveQuery()) == 1
            juliet = await srv.connect("juliet@localhost/b")
            await juliet.send("<presence xmlns='jabber:client'/>")
            msgs = [m for m in juliet.received() if m.name == "message"]
            assert [m.child_text("body") for m in msgs] == ["while away"]
            assert msgs[0].find("stanza-id", NS_SID) is not None
    run(main())


def test_unacked_message_routed_again_by_smacks_is_archived_once() -> None:
    """A stream management session ends with a message it never got acknowledged: smacks
    routes it again to the bare JID (offline storage takes it) with the stanza-id it got;
    the archive keeps one item, and offline delivery carries the same id."""
    async def main() -> None:
        async with ModuleTestServer(CONFIG, HOST) as srv:
            romeo = await srv.connect("romeo@localhost/a")
            juliet = await srv.connect("juliet@localhost/phone")
            enable = Element("enable", "urn:xmpp:sm:3")
            srv.server.hosts["localhost"].events.fire(
                "stream/urn:xmpp:sm:3:enable", StreamElementEvent(juliet.session, enable))
            await juliet.send("<presence xmlns='jabber:client'/>")
            await chat(romeo, "juliet@localhost", "never acked")
            await idle()  # the archive writer runs in the background
            [item] = await archive(srv).find("juliet", ArchiveQuery())
            await juliet.disconnect()  # no <a/>: the message goes back to juliet@localhost
            offline = srv.server.storage.open("localhost", "offline", "archive")
            await idle()  # unbind and the re-routing run detached
            [stored] = await offline.find("juliet", ArchiveQuery())
            assert await archive(srv).count("juliet", ArchiveQuery()) == 1
            ids = [(s.get("by"), s.get("id")) for s in stored.value.find_all("stanza-id", NS_SID)]
            assert ids == [("juliet@localhost", item.key)]
    run(main())


def test_stanza_id_of_the_user_from_a_client_is_not_trusted() -> None:
    """Only the server's own re-routing is trusted: a client's message with the user's
    stanza-id is archived, its forged id replaced (XEP-0359 §4)."""
    async def main() -> None:
        async with ModuleTestServer(CONFIG, HOST) as srv:
            romeo = await srv.connect("romeo@localhost/a")
            await srv.connect("juliet@localhost/b")
            await chat(romeo, "juliet@localhost", "hi",
                       f"<stanza-id xmlns='{NS_SID}' by='juliet@localhost' id='forged'/>")
            await idle()  # the archive writer runs in the background
            [item] = await archive(srv).find("juliet", ArchiveQuery())
            assert item.key != "forged"
    run(main())


def test_paging_forwards_backwards_flip_and_errors() -> None:
    async def main() -> None:
        async with ModuleTestServer(CONFIG, HOST) as srv:
            romeo = await srv.connect("romeo@localhost/a")
            for n in range(120):
                await archive(srv).append("romeo", Element("message", attrs={
                    "to": "juliet@localhost", "type": "chat"}).text_tag("body", str(n)),
                    when=1_700_000_000 + n, with_jid="juliet@localhost")
            seen: list[str] = []
            after = ""
            while True:
                results, iq = await query(romeo, f"<max>50</max>{after}")
                fin = iq.find("fin", NS_MAM)
                assert fin is not None
                seen += bodies(results)
                rsm = fin.find("set", NS_RSM)
                # No count on a page that is not the whole set (counting is not free).
                assert rsm is not None and rsm.child_text("count", NS_RSM) is None
                first = rsm.find("first", NS_RSM)
                assert first is not None
                assert first.get("index") == ("0" if not after else None)
                if fin.get("complete") == "true":
                    break
                after = f"<after>{rsm.child_text('last', NS_RSM)}</after>"
            assert seen == [str(n) for n in range(120)]
            back: list[str] = []
            before = "<before/>"
            while True:
                results, iq = await query(romeo, f"<max>50</max>{before}")
                fin = iq.find("fin", NS_MAM)
                assert fin is not None
                rsm = fin.find("set", NS_RSM)
                assert rsm is not None
                page = bodies(results)
                first = rsm.find("first", NS_RSM)
                assert first is not None
                back = page + back
                if fin.get("complete") == "true":
                    # The page that reaches the start knows its index without counting.
                    assert first.get("index") == "0" == page[0]
                    break
                assert first.get("index") is None
                before = f"<before>{first.text}</before>"
            assert back == seen
            # XEP-0059 §2.7: <max>0</max> asks for the count alone.
            results, iq = await query(romeo, "<max>0</max>")
            rsm = rsm_of(iq)
            assert results == [] and rsm is not None
            assert rsm.child_text("count", NS_RSM) == "120" and rsm.find("first", NS_RSM) is None
            results, iq = await query(romeo, "<max>0</max>", form=(
                "<field var='start'><value>2023-11-14T22:14:00Z</value></field>"))
            rsm = rsm_of(iq)
            assert rsm is not None and rsm.child_text("count", NS_RSM) == "80"
            # A page that is the whole set has its count for free.
            results, iq = await query(romeo, "<max>50</max>", form=(
                "<field var='start'><value>2023-11-14T22:15:00Z</value></field>"))
            rsm = rsm_of(iq)
            assert bodies(results) == [str(n) for n in range(100, 120)] and rsm is not None
            assert rsm.child_text("count", NS_RSM) == "20"
            results, _ = await query(romeo, "<max>3</max>", extra="<flip-page/>")
            assert bodies(results) == ["2", "1", "0"]
            results, iq = await query(romeo, "<after>nope</after>")
            assert iq.get("type") == "error" and iq.find("error") is not None
            # with / start / end / ids filters
            results, _ = await query(romeo, "<max>5</max>", form=(
                "<field var='start'><value>2023-11-14T22:14:00Z</value></field>"))
            assert bodies(results) == [str(n) for n in range(40, 45)]
            results, iq = await query(romeo, "", form=(
                "<field var='with'><value>nobody@localhost</value></field>"))
            assert results == [] and iq.get("type") == "result"
    run(main())


def test_prefs_never_and_metadata_and_expiry() -> None:
    async def main() -> None:
        clock = [1_700_000_000.0]
        async with ModuleTestServer(CONFIG, HOST) as srv:
            srv.server.clock = lambda: clock[0]
            romeo = await srv.connect("romeo@localhost/a")
            await srv.connect("juliet@localhost/b")
            await romeo.send(f"<iq xmlns='jabber:client' type='set' id='p'><prefs xmlns="
                             f"'{NS_MAM}' default='always'><always/><never><jid>JULIET@"
                             "localhost</jid></never></prefs></iq>")
            prefs = romeo.expect("iq", type="result").find("prefs", NS_MAM)
            assert prefs is not None and "juliet@localhost" in prefs.to_xml()
            await chat(romeo, "juliet@localhost", "secret")
            await chat(romeo, "nurse@localhost", "kept")
            await idle()  # the archive writer runs in the background
            romeo.received()  # the error bounce from nurse@localhost (no such account)
            assert await archive(srv).count("romeo", ArchiveQuery()) == 1
            await romeo.send(f"<iq xmlns='jabber:client' type='get' id='m'>"
                             f"<metadata xmlns='{NS_MAM}'/></iq>")
            meta = romeo.expect("iq", type="result").find("metadata", NS_MAM)
            assert meta is not None and meta.find("start", NS_MAM) is not None
            clock[0] += 8 * 86400  # older than the default 1w
            for _ in range(200):
                if await archive(srv).count("romeo", ArchiveQuery()) == 0:
                    break
                import asyncio
                await asyncio.sleep(0.02)
            assert await archive(srv).count("romeo", ArchiveQuery()) == 0
    run(main())


def test_account_deletion_purges_archive() -> None:
    async def main() -> None:
        async with ModuleTestServer(CONFIG, HOST) as srv:
            romeo = await srv.connect("romeo@localhost/a")
            await chat(romeo, "nurse@localhost", "x")
            await idle()  # the archive writer runs in the background
            assert await archive(srv).count("romeo", ArchiveQuery()) == 1
            from tercet.core import accounts
            await accounts.delete_account(srv.server, "localhost", "romeo")
            assert await archive(srv).count("romeo", ArchiveQuery()) == 0
    run(main())


def test_expiry_syntax() -> None:
    assert expiry_seconds("1w") == 7 * 86400
    assert expiry_seconds("2d") == 2 * 86400
    assert expiry_seconds("never") is None
    assert expiry_seconds(3600) == 3600


def test_full_archive_is_logged_once_per_user(caplog) -> None:  # noqa: ANN001
    async def main() -> None:
        async with ModuleTestServer(CONFIG, HOST + "\narchive_item_limit = 2") as srv:
            romeo = await srv.connect("romeo@localhost/a")
            for i in range(5):
                await chat(romeo, "juliet@localhost", f"m{i}")
            await idle()
            assert await archive(srv).count("romeo", ArchiveQuery()) == 2
            warnings = [r for r in caplog.records
                        if "archive of romeo is full" in r.getMessage()]
            assert len(warnings) == 1 and warnings[0].levelname == "WARNING"
    run(main())


def test_query_right_after_messages_sees_them_all() -> None:
    """Read your writes: the archive writer runs in the background, but a query sent at
    once (no waiting for background tasks) sees every message archived before it, in
    order, with the stanza-ids the recipient got."""
    async def main() -> None:
        async with ModuleTestServer(CONFIG, HOST) as srv:
            romeo = await srv.connect("romeo@localhost/a")
            juliet = await srv.connect("juliet@localhost/b")
            await juliet.send("<presence xmlns='jabber:client'/>")
            juliet.received()
            for n in range(30):
                await chat(romeo, "juliet@localhost", f"m{n}")
            got = [m for m in juliet.received() if m.name == "message"]
            sids = [m.find("stanza-id", NS_SID) for m in got]
            results, iq = await query(juliet, "<max>50</max>")
            assert iq.get("type") == "result"
            assert bodies(results) == [f"m{n}" for n in range(30)]
            keys = [r.find("result", NS_MAM).get("id") for r in results]  # type: ignore[union-attr]
            assert keys == [s.get("id") for s in sids if s is not None]
            mine, _ = await query(romeo, "<max>50</max>")
            assert bodies(mine) == [f"m{n}" for n in range(30)]
    run(main())


def test_unloading_the_module_writes_what_is_queued() -> None:
    async def main() -> None:
        async with ModuleTestServer(CONFIG, HOST) as srv:
            romeo = await srv.connect("romeo@localhost/a")
            await srv.connect("juliet@localhost/b")
            for n in range(20):
                await chat(romeo, "juliet@localhost", f"m{n}")
            await srv.server.modules.unload("mam", "localhost")
            assert await archive(srv).count("romeo", ArchiveQuery()) == 20
            assert await archive(srv).count("juliet", ArchiveQuery()) == 20
    run(main())


def test_full_size_page_looks_one_item_further() -> None:
    """With pages as large as the store allows, ``complete`` still comes from one more
    item looked up, not from a count (XEP-0313 §4.3)."""
    async def main() -> None:
        host = HOST + "\nmax_archive_query_results = 1000"
        async with ModuleTestServer(CONFIG, host) as srv:
            romeo = await srv.connect("romeo@localhost/a")
            for n in range(1001):
                await archive(srv).append("romeo", Element("message", attrs={
                    "to": "juliet@localhost", "type": "chat"}).text_tag("body", str(n)),
                    when=1_700_000_000 + n, with_jid="juliet@localhost")
            results, iq = await query(romeo, "<max>1000</max>")
            fin = iq.find("fin", NS_MAM)
            assert len(results) == 1000 and fin is not None and fin.get("complete") == "false"
            results, iq = await query(romeo, "<max>1000</max><before/>")
            fin = iq.find("fin", NS_MAM)
            assert bodies(results) == [str(n) for n in range(1, 1001)]
            assert fin is not None and fin.get("complete") == "false"
            await archive(srv).delete("romeo", ArchiveQuery(end=1_700_000_000))
            results, iq = await query(romeo, "<max>1000</max>")
            fin, rsm = iq.find("fin", NS_MAM), rsm_of(iq)
            assert len(results) == 1000 and fin is not None and fin.get("complete") == "true"
            assert rsm is not None and rsm.child_text("count", NS_RSM) == "1000"
    run(main())
