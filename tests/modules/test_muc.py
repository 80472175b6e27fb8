"""Multi-User Chat (XEP-0045): XML in and XML out through the router and the muc component.

One test per use case and per error path of the XEP; each section of the XEP is named in
the test's docstring.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from moduletest import ModuleTestServer, TestClient, condition

from tercet.protocol.stanza import Element

MUC = "http://jabber.org/protocol/muc"
USER = "http://jabber.org/protocol/muc#user"
ADMIN = "http://jabber.org/protocol/muc#admin"
OWNER = "http://jabber.org/protocol/muc#owner"
DATA = "jabber:x:data"
ROOM = "room@conference.localhost"
COMPONENT = '\n[components."conference.localhost"]\nmodule = "muc"\n'


def run(body: Callable[[ModuleTestServer], Awaitable[None]], *, component: str = "",
        extra: str = "") -> None:
    async def main() -> None:
        async with ModuleTestServer(extra, COMPONENT + component) as srv:
            await body(srv)
    asyncio.run(asyncio.wait_for(main(), 30))


# -- helpers -------------------------------------------------------------------------------
def codes(stanza: Element) -> list[str]:
    x = stanza.find("x", USER)
    return [] if x is None else [s.get("code") or "" for s in x.find_all("status", USER)]


def items(stanza: Element) -> list[Element]:
    x = stanza.find("x", USER)
    return [] if x is None else list(x.find_all("item", USER))


def item(stanza: Element) -> Element:
    found = items(stanza)
    assert found, f"no muc#user item in {stanza}"
    return found[0]


async def join(client: TestClient, nick: str, room: str = ROOM, *, password: str | None = None,
               history: str = "") -> list[Element]:
    pw = f"<password>{password}</password>" if password else ""
    await client.send(f"<presence to='{room}/{nick}'><x xmlns='{MUC}'>{pw}{history}</x>"
                      "</presence>")
    return client.received()


async def create(client: TestClient, nick: str = "romeo", room: str = ROOM,
                 **fields: str) -> list[Element]:
    """Create and configure a room (fields: muc#roomconfig_<name> values)."""
    got = await join(client, nick, room)
    await configure(client, room, **fields)
    return got


async def configure(client: TestClient, room: str = ROOM, **fields: str) -> Element:
    body = "".join(
        f"<field var='muc#roomconfig_{k}'>" + "".join(
            f"<value>{v}</value>" for v in (value.split("|") if value else [])) + "</field>"
        for k, value in fields.items())
    await client.send(f"<iq type='set' id='cfg' to='{room}'><query xmlns='{OWNER}'>"
                      f"<x xmlns='{DATA}' type='submit'><field var='FORM_TYPE'><value>"
                      "http://jabber.org/protocol/muc#roomconfig</value></field>"
                      f"{body}</x></query></iq>")
    got = client.received()
    result = next(s for s in got if s.name == "iq")
    assert result.get("type") == "result", result
    return result


async def admin_set(client: TestClient, item_xml: str, room: str = ROOM) -> list[Element]:
    await client.send(f"<iq type='set' id='adm' to='{room}'><query xmlns='{ADMIN}'>"
                      f"{item_xml}</query></iq>")
    return client.received()


def iq_of(got: list[Element]) -> Element:
    return next(s for s in got if s.name == "iq")


def presences(got: list[Element], frm: str | None = None) -> list[Element]:
    return [s for s in got if s.name == "presence" and (frm is None or s.get("from") == frm)]


def error_of(got: list[Element]) -> str | None:
    errors = [s for s in got if s.get("type") == "error"]
    assert errors, f"no error in {got}"
    return condition(errors[0])


# -- creating and entering (§7.2, §10.1) -------------------------------------------------------
def test_create_locked_then_instant() -> None:
    """§10.1.2: a new room is locked (201) until its owner submits a form."""
    async def body(srv: ModuleTestServer) -> None:
        romeo = await srv.connect("romeo@localhost/a")
        juliet = await srv.connect("juliet@localhost/b")
        got = await join(romeo, "romeo")
        own = presences(got, f"{ROOM}/romeo")[0]
        assert codes(own) == ["201", "110"]
        assert item(own).attrs == {"affiliation": "owner", "role": "moderator",
                                   "jid": romeo.jid}
        subject = [s for s in got if s.name == "message"][0]
        assert subject.find("subject") is not None and subject.get("from") == ROOM
        assert error_of(await join(juliet, "juliet")) == "item-not-found"  # §10.1.1
        await configure(romeo)
        got = await join(juliet, "juliet")
        assert [p.get("from") for p in presences(got)] == [f"{ROOM}/romeo", f"{ROOM}/juliet"]
        assert "jid" not in item(presences(got)[0]).attrs  # semi-anonymous
        seen = romeo.received()
        assert item(presences(seen)[0]).get("jid") == juliet.jid  # moderators see
    run(body)


def test_groupchat_and_history_with_delay() -> None:
    """§7.4 messages reach everyone; §7.2.14 history with an XEP-0203 delay."""
    async def body(srv: ModuleTestServer) -> None:
        romeo = await srv.connect("romeo@localhost/a")
        juliet = await srv.connect("juliet@localhost/b")
        await create(romeo)
        for i in range(3):
            await romeo.send(f"<message to='{ROOM}' type='groupchat' id='m{i}'>"
                             f"<body>hi {i}</body></message>")
        echoes = romeo.received()
        assert [m.get("id") for m in echoes] == ["m0", "m1", "m2"]
        assert echoes[0].get("from") == f"{ROOM}/romeo"
        got = await join(juliet, "juliet", history="<history maxstanzas='2'/>")
        history = [m for m in got if m.name == "message" and m.find("body") is not None]
        assert [m.find("body").text for m in history] == ["hi 1", "hi 2"]  # type: ignore
        delay = history[0].find("delay", "urn:xmpp:delay")
        assert delay is not None and delay.get("from") == ROOM and delay.get("stamp")
        assert got[-1].find("subject") is not None  # §7.2.15: subject comes last
        got = await join(await srv.connect("nurse@localhost/c"), "nurse",
                         history="<history maxchars='0'/>")
        assert not [m for m in got if m.name == "message" and m.find("body") is not None]
    run(body)


def test_nick_required_and_conflict() -> None:
    """§7.2.1 jid-malformed without a nick, §7.2.9 conflict."""
    async def body(srv: ModuleTestServer) -> None:
        romeo = await srv.connect("romeo@localhost/a")
        juliet = await srv.connect("juliet@localhost/b")
        await create(romeo)
        await juliet.send(f"<presence to='{ROOM}'><x xmlns='{MUC}'/></presence>")
        assert error_of(juliet.received()) == "jid-malformed"
        got = await join(juliet, "romeo")
        assert error_of(got) == "conflict"
        err = got[0].find("error")
        assert err is not None and err.get("by") == ROOM
    run(body)


def test_password_protected() -> None:
    """§7.2.6 not-authorized without the right password."""
    async def body(srv: ModuleTestServer) -> None:
        romeo = await srv.connect("romeo@localhost/a")
        juliet = await srv.connect("juliet@localhost/b")
        await create(romeo, roomsecret="secret")
        assert error_of(await join(juliet, "juliet")) == "not-authorized"
        assert error_of(await join(juliet, "juliet", password="wrong")) == "not-authorized"
        got = await join(juliet, "juliet", password="secret")
        assert codes(presences(got, f"{ROOM}/juliet")[0]) == ["110"]
    run(body)


def test_members_only() -> None:
    """§7.2.7 registration-required; §9.3 membership lets the user in."""
    async def body(srv: ModuleTestServer) -> None:
        romeo = await srv.connect("romeo@localhost/a")
        juliet = await srv.connect("juliet@localhost/b")
        await create(romeo, membersonly="1")
        assert error_of(await join(juliet, "juliet")) == "registration-required"
        got = await admin_set(romeo, f"<item affiliation='member' jid='{juliet.bare}'/>")
        assert iq_of(got).get("type") == "result"
        got = await join(juliet, "juliet")
        assert item(presences(got, f"{ROOM}/juliet")[0]).get("affiliation") == "member"
    run(body)


def test_banned_user_is_forbidden() -> None:
    """§9.1 ban with reason: the occupant is removed (301), then refused (§7.2.8)."""
    async def body(srv: ModuleTestServer) -> None:
        romeo = await srv.connect("romeo@localhost/a")
        tybalt = await srv.connect("tybalt@localhost/t")
        await create(romeo)
        await join(tybalt, "tybalt")
        romeo.received()
        got = await admin_set(romeo, f"<item affiliation='outcast' jid='{tybalt.bare}'>"
                                     "<reason>Hey calm down</reason></item>")
        gone = presences(got, f"{ROOM}/tybalt")[0]
        assert gone.get("type") == "unavailable" and codes(gone) == ["301"]
        assert item(gone).child_text("reason") == "Hey calm down"
        actor = item(gone).find("actor")
        assert actor is not None and actor.get("nick") == "romeo"
        self_view = tybalt.received()[0]
        assert codes(self_view) == ["301", "110"]
        assert error_of(await join(tybalt, "tybalt")) == "forbidden"
        await romeo.send(f"<iq type='get' id='l' to='{ROOM}'><query xmlns='{ADMIN}'>"
                         "<item affiliation='outcast'/></query></iq>")
        listed = romeo.expect("iq", type="result").find("query", ADMIN)
        assert listed is not None
        entry = listed.find("item", ADMIN)
        assert entry is not None and entry.get("jid") == tybalt.bare
        assert entry.child_text("reason") == "Hey calm down"
    run(body)


def test_max_users() -> None:
    """§7.2.10 service-unavailable when the room is full (owners may still enter)."""
    async def body(srv: ModuleTestServer) -> None:
        romeo = await srv.connect("romeo@localhost/a")
        await create(romeo, maxusers="2")
        await join(await srv.connect("juliet@localhost/b"), "juliet")
        assert error_of(await join(await srv.connect("nurse@localhost/c"), "nurse")) \
            == "service-unavailable"
    run(body, component="muc_max_occupants = 10\n")


def test_room_creation_restricted() -> None:
    """§10.1.1: not-allowed when the service restricts creation to admins."""
    async def body(srv: ModuleTestServer) -> None:
        romeo = await srv.connect("romeo@localhost/a")
        assert error_of(await join(romeo, "romeo")) == "not-allowed"
        admin = await srv.connect("admin@localhost/x")
        got = await join(admin, "admin")
        assert codes(presences(got)[0]) == ["201", "110"]
    run(body, component='restrict_room_creation = "admin"\n',
        extra='admins = ["admin@localhost"]')


def test_nickname_change_keeps_role() -> None:
    """§7.6: 303 with the new nick, then the new presence; the role is kept."""
    async def body(srv: ModuleTestServer) -> None:
        romeo = await srv.connect("romeo@localhost/a")
        juliet = await srv.connect("juliet@localhost/b")
        await create(romeo, moderatedroom="1")
        got = await join(juliet, "juliet")
        assert item(presences(got, f"{ROOM}/juliet")[0]).get("role") == "visitor"
        await configure(romeo, moderatedroom="0")
        romeo.received()
        assert codes(juliet.received()[0]) == ["104"]
        await juliet.send(f"<presence to='{ROOM}/juliet2'/>")
        got = juliet.received()
        assert codes(got[0]) == ["303", "110"] and item(got[0]).get("nick") == "juliet2"
        assert got[1].get("from") == f"{ROOM}/juliet2"
        assert item(got[1]).get("role") == "visitor"
        await romeo.send(f"<presence to='{ROOM}/juliet2'/>")
        assert error_of(romeo.received()) == "conflict"
    run(body)


def test_leave_with_status_and_temporary_room_goes() -> None:
    """§7.14: unavailable with the status text; the empty temporary room is gone."""
    async def body(srv: ModuleTestServer) -> None:
        romeo = await srv.connect("romeo@localhost/a")
        juliet = await srv.connect("juliet@localhost/b")
        await create(romeo)
        await join(juliet, "juliet")
        romeo.received()
        await juliet.send(f"<presence type='unavailable' to='{ROOM}'>"
                          "<status>Farewell</status></presence>")
        seen = romeo.received()[0]
        assert seen.get("type") == "unavailable" and seen.child_text("status") == "Farewell"
        assert item(seen).get("role") == "none"
        await romeo.send(f"<presence type='unavailable' to='{ROOM}/romeo'/>")
        romeo.received()
        juliet.received()
        got = await join(juliet, "juliet")
        assert "201" in codes(presences(got)[0])  # a new room
    run(body)


def test_session_end_leaves_room() -> None:
    """An occupant whose session ends leaves (the presence module sends unavailable to
    directed-presence recipients, RFC 6121 §4.6.3)."""
    async def body(srv: ModuleTestServer) -> None:
        romeo = await srv.connect("romeo@localhost/a")
        juliet = await srv.connect("juliet@localhost/b")
        await create(romeo)
        await join(juliet, "juliet")
        romeo.received()
        await juliet.disconnect()
        for _ in range(20):
            await asyncio.sleep(0.01)
            seen = romeo.received()
            if seen:
                break
        assert seen[0].get("type") == "unavailable"
        assert seen[0].get("from") == f"{ROOM}/juliet"
    run(body)


def test_error_presence_removes_with_333() -> None:
    """An error from an occupant (a bounce) removes it with status 333."""
    async def body(srv: ModuleTestServer) -> None:
        romeo = await srv.connect("romeo@localhost/a")
        juliet = await srv.connect("juliet@localhost/b")
        await create(romeo)
        await join(juliet, "juliet")
        romeo.received()
        await juliet.send(f"<presence type='error' to='{ROOM}'><error type='cancel'>"
                          "<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
                          "</error></presence>")
        seen = romeo.received()[0]
        assert codes(seen) == ["333"]
        assert seen.child_text("status") == "Kicked: service unavailable"
    run(body)


def test_multi_session_nick() -> None:
    """Two sessions of one user share a nick; one leaving keeps the occupant."""
    async def body(srv: ModuleTestServer) -> None:
        romeo = await srv.connect("romeo@localhost/a")
        j1 = await srv.connect("juliet@localhost/one")
        j2 = await srv.connect("juliet@localhost/two")
        await create(romeo)
        await join(j1, "juliet")
        romeo.received()
        await join(j2, "juliet")
        seen = presences(romeo.received())[0]
        assert sorted(i.get("jid") or "" for i in items(seen)) == sorted([j1.jid, j2.jid])
        await j1.send(f"<presence type='unavailable' to='{ROOM}/juliet'/>")
        seen = presences(romeo.received())[0]
        assert seen.get("type") is None and [i.get("jid") for i in items(seen)] == [j2.jid]
        # another user may not take the nick
        assert error_of(await join(await srv.connect("nurse@localhost/n"), "juliet")) \
            == "conflict"
    run(body)


def test_joiner_sees_current_presences() -> None:
    """§7.2.3: a joiner is sent each occupant's presence as it is now, after every kind of
    change (status, role, affiliation, sessions, nick), and as its own view allows:
    real JIDs to a moderator, none to a participant of a semi-anonymous room."""
    async def body(srv: ModuleTestServer) -> None:
        romeo = await srv.connect("romeo@localhost/a")
        juliet = await srv.connect("juliet@localhost/one")
        await create(romeo)
        await juliet.send(f"<presence to='{ROOM}/juliet'><x xmlns='{MUC}'/><show>away</show>"
                          "</presence>")
        count = 0

        async def newcomer(*, admin: bool = False, nick: str = "juliet") -> Element:
            """A new user joins; what it is shown of juliet (then it leaves)."""
            nonlocal count
            count += 1
            bare = f"guest{count}@localhost"
            if admin:
                await admin_set(romeo, f"<item jid='{bare}' affiliation='admin'/>")
            guest = await srv.connect(f"{bare}/g")
            shown = presences(await join(guest, f"guest{count}"), f"{ROOM}/{nick}")
            await guest.send(f"<presence type='unavailable' to='{ROOM}/guest{count}'/>")
            assert len(shown) == 1, shown
            return shown[0]

        seen = await newcomer()
        assert seen.child_text("show") == "away" and "jid" not in item(seen).attrs
        await juliet.send(f"<presence to='{ROOM}/juliet'><show>dnd</show></presence>")
        assert (await newcomer()).child_text("show") == "dnd"  # §7.7
        await admin_set(romeo, "<item nick='juliet' role='visitor'/>")
        assert item(await newcomer()).get("role") == "visitor"  # §8.4
        await admin_set(romeo, f"<item jid='{juliet.bare}' affiliation='member'/>")
        # §9.3: a new affiliation brings its default role
        assert item(await newcomer()).attrs == {"affiliation": "member", "role": "participant"}
        juliet2 = await srv.connect("juliet@localhost/two")
        await join(juliet2, "juliet")  # a second session shares the nick
        seen = await newcomer(admin=True)  # a moderator: both real JIDs
        assert sorted(i.get("jid") or "" for i in items(seen)) == sorted([juliet.jid,
                                                                         juliet2.jid])
        assert all("jid" not in i.attrs for i in items(await newcomer()))
        await juliet2.send(f"<presence type='unavailable' to='{ROOM}/juliet'/>")
        assert [i.get("jid") for i in items(await newcomer(admin=True))] == [juliet.jid]
        await juliet.send(f"<presence to='{ROOM}/jules'/>")  # §7.6
        seen = await newcomer(nick="jules")
        assert seen.child_text("show") is None
        assert item(seen).attrs == {"affiliation": "member", "role": "participant"}
    run(body)


# -- moderator use cases (§8) -------------------------------------------------------------------
def test_kick_and_voice() -> None:
    """§8.2 kick (307), §8.3/§8.4 voice grant and revoke, §8.5 voice list."""
    async def body(srv: ModuleTestServer) -> None:
        romeo = await srv.connect("romeo@localhost/a")
        juliet = await srv.connect("juliet@localhost/b")
        nurse = await srv.connect("nurse@localhost/c")
        await create(romeo)
        await join(juliet, "juliet")
        await join(nurse, "nurse")
        romeo.received()
        juliet.received()
        got = await admin_set(romeo, "<item nick='juliet' role='visitor'/>")
        assert item(presences(got)[0]).get("role") == "visitor"
        await juliet.send(f"<message to='{ROOM}' type='groupchat'><body>x</body></message>")
        assert error_of(juliet.received()) == "forbidden"  # no voice (§7.4)
        await romeo.send(f"<iq type='get' id='v' to='{ROOM}'><query xmlns='{ADMIN}'>"
                         "<item role='visitor'/></query></iq>")
        listed = romeo.expect("iq", type="result")
        assert [i.get("nick") for i in listed.find("query", ADMIN).find_all("item", ADMIN)] \
            == ["juliet"]  # type: ignore[union-attr]
        got = await admin_set(romeo, "<item nick='juliet' role='participant'/>")
        assert item(presences(got)[0]).get("role") == "participant"
        # a participant may not kick (§8.2)
        got = await admin_set(nurse, "<item nick='juliet' role='none'/>")
        assert condition(iq_of(got)) == "not-allowed"
        got = await admin_set(romeo, "<item nick='juliet' role='none'><reason>out</reason>"
                                     "</item>")
        gone = presences(got, f"{ROOM}/juliet")[0]
        assert gone.get("type") == "unavailable" and codes(gone) == ["307"]
        mine = juliet.received()[-1]
        assert codes(mine) == ["307", "110"]
        actor = item(mine).find("actor")
        assert actor is not None and actor.attrs == {"nick": "romeo"}  # no real JID
        # an owner cannot be kicked (§8.2 not-allowed)
        got = await admin_set(romeo, "<item nick='romeo' role='none'/>")
        assert condition(iq_of(got)) == "not-allowed"
    run(body)


def test_subject_rules() -> None:
    """§8.1: moderators change the subject; participants only with changesubject; a
    message with a subject and a body is a message (Prosody #667)."""
    async def body(srv: ModuleTestServer) -> None:
        romeo = await srv.connect("romeo@localhost/a")
        juliet = await srv.connect("juliet@localhost/b")
        await create(romeo)
        await join(juliet, "juliet")
        await juliet.send(f"<message to='{ROOM}' type='groupchat'><subject>x</subject>"
                          "</message>")
        assert error_of(juliet.received()) == "forbidden"
        await romeo.send(f"<message to='{ROOM}' type='groupchat'><subject>Topic</subject>"
                         "</message>")
        await romeo.send(f"<message to='{ROOM}' type='groupchat'><subject>No</subject>"
                         "<body>just a message</body></message>")
        romeo.received()
        got = await join(await srv.connect("nurse@localhost/n"), "nurse")
        assert got[-1].child_text("subject") == "Topic"
        assert got[-1].get("from") == f"{ROOM}/romeo"
        await configure(romeo, changesubject="1")
        await juliet.send(f"<message to='{ROOM}' type='groupchat'><subject>Mine</subject>"
                          "</message>")
        assert juliet.received()[-1].child_text("subject") == "Mine"
    run(body)


def test_private_messages() -> None:
    """§7.5: a private message reaches the occupant from the sender's occupant JID;
    allowpm=none forbids it; unknown nicks are item-not-found."""
    async def body(srv: ModuleTestServer) -> None:
        romeo = await srv.connect("romeo@localhost/a")
        juliet = await srv.connect("juliet@localhost/b")
        await create(romeo)
        await join(juliet, "juliet")
        romeo.received()
        await juliet.send(f"<message to='{ROOM}/romeo' type='chat'><body>psst</body>"
                          "</message>")
        got = romeo.received()[0]
        assert got.get("from") == f"{ROOM}/juliet" and got.child_text("body") == "psst"
        assert got.find("x", USER) is not None
        await juliet.send(f"<message to='{ROOM}/nobody' type='chat'><body>?</body></message>")
        assert error_of(juliet.received()) == "item-not-found"
        await juliet.send(f"<message to='{ROOM}/romeo' type='groupchat'><body>?</body>"
                          "</message>")
        assert error_of(juliet.received()) == "bad-request"
        await configure(romeo, allowpm="none")
        juliet.received()
        await juliet.send(f"<message to='{ROOM}/romeo' type='chat'><body>psst</body>"
                          "</message>")
        assert error_of(juliet.received()) == "forbidden"
        stranger = await srv.connect("nurse@localhost/n")
        await stranger.send(f"<message to='{ROOM}' type='groupchat'><body>x</body></message>")
        assert error_of(stranger.received()) == "not-acceptable"
    run(body)


# -- admin and owner use cases (§9, §10) --------------------------------------------------------
def test_affiliation_lists_and_permissions() -> None:
    """§9.5/§10.5: lists by affiliation; admins may not make owners (§10.3)."""
    async def body(srv: ModuleTestServer) -> None:
        romeo = await srv.connect("romeo@localhost/a")
        await create(romeo)
        got = await admin_set(romeo, "<item affiliation='admin' jid='mercutio@localhost'/>"
                                     "<item affiliation='member' jid='juliet@localhost' "
                                     "nick='jules'/>")
        assert iq_of(got).get("type") == "result"
        note = [s for s in got if s.name == "message"]
        assert [item(m).get("jid") for m in note] == ["mercutio@localhost",
                                                      "juliet@localhost"]
        await romeo.send(f"<iq type='get' id='l' to='{ROOM}'><query xmlns='{ADMIN}'>"
                         "<item affiliation='member'/></query></iq>")
        entry = romeo.expect("iq", type="result").find("query", ADMIN).find("item", ADMIN)  # type: ignore[union-attr]
        assert entry is not None and entry.attrs == {
            "affiliation": "member", "jid": "juliet@localhost", "nick": "jules"}
        mercutio = await srv.connect("mercutio@localhost/m")
        got = await admin_set(mercutio, "<item affiliation='owner' jid='nurse@localhost'/>")
        assert condition(iq_of(got)) == "not-allowed"
        await mercutio.send(f"<iq type='get' id='o' to='{ROOM}'><query xmlns='{ADMIN}'>"
                            "<item affiliation='owner'/></query></iq>")
        assert condition(mercutio.expect("iq", type="error")) == "forbidden"
        # the sole owner cannot step down (§10.6 conflict)
        got = await admin_set(romeo, f"<item affiliation='member' jid='{romeo.bare}'/>")
        assert condition(iq_of(got)) == "conflict"
        got = await admin_set(romeo, "<item affiliation='bogus' jid='x@localhost'/>")
        assert condition(iq_of(got)) == "bad-request"
    run(body)


def test_owner_config_form_and_disco() -> None:
    """§10.2 the muc#roomconfig form; §6.4 the room's disco#info features."""
    async def body(srv: ModuleTestServer) -> None:
        romeo = await srv.connect("romeo@localhost/a")
        await create(romeo)
        await romeo.send(f"<iq type='get' id='f' to='{ROOM}'><query xmlns='{OWNER}'/></iq>")
        form = romeo.expect("iq", type="result").find("query", OWNER).find("x", DATA)  # type: ignore[union-attr]
        assert form is not None
        vars_ = {f.get("var") for f in form.find_all("field", DATA)}
        for name in ("roomname", "roomdesc", "persistentroom", "publicroom", "membersonly",
                     "moderatedroom", "passwordprotectedroom", "roomsecret", "whois",
                     "maxusers", "allowinvites", "allowpm", "changesubject",
                     "historylength", "lang", "presencebroadcast", "getmemberlist"):
            assert f"muc#roomconfig_{name}" in vars_, name
        await configure(romeo, roomname="Garden", publicroom="0", persistentroom="1",
                        whois="anyone")
        romeo.received()
        await romeo.send(f"<iq type='get' id='d' to='{ROOM}'><query "
                         "xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        query = romeo.expect("iq", type="result").find(
            "query", "http://jabber.org/protocol/disco#info")
        assert query is not None
        features = {f.get("var") for f in query.elements() if f.name == "feature"}
        assert {"muc_hidden", "muc_persistent", "muc_open", "muc_unmoderated",
                "muc_unsecured", "muc_nonanonymous", MUC} <= features
        await romeo.send("<iq type='get' id='i' to='conference.localhost'><query "
                         "xmlns='http://jabber.org/protocol/disco#items'/></iq>")
        listed = romeo.expect("iq", type="result").find(
            "query", "http://jabber.org/protocol/disco#items")
        assert listed is not None and list(listed.elements()) == []  # hidden room
        await romeo.send("<iq type='get' id='h' to='conference.localhost'><query "
                         "xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        info = romeo.expect("iq", type="result").find(
            "query", "http://jabber.org/protocol/disco#info")
        assert info is not None
        ident = info.find("identity", "http://jabber.org/protocol/disco#info")
        assert ident is not None and ident.get("category") == "conference"
        juliet = await srv.connect("juliet@localhost/b")
        await juliet.send(f"<iq type='get' id='f' to='{ROOM}'><query xmlns='{OWNER}'/></iq>")
        assert condition(juliet.expect("iq", type="error")) == "forbidden"
    run(body)


def test_config_bad_value_is_not_acceptable() -> None:
    """§10.2: a value that does not fit its field is refused."""
    async def body(srv: ModuleTestServer) -> None:
        romeo = await srv.connect("romeo@localhost/a")
        await join(romeo, "romeo")
        await romeo.send(f"<iq type='set' id='c' to='{ROOM}'><query xmlns='{OWNER}'>"
                         f"<x xmlns='{DATA}' type='submit'><field var='muc#roomconfig_"
                         "membersonly'><value>maybe</value></field></x></query></iq>")
        assert condition(romeo.expect("iq", type="error")) == "not-acceptable"
    run(body)


def test_destroy_with_venue_and_reason() -> None:
    """§10.9: every occupant gets unavailable with <destroy/>; the room is gone."""
    async def body(srv: ModuleTestServer) -> None:
        romeo = await srv.connect("romeo@localhost/a")
        juliet = await srv.connect("juliet@localhost/b")
        await create(romeo)
        await join(juliet, "juliet")
        romeo.received()
        await romeo.send(f"<iq type='set' id='d' to='{ROOM}'><query xmlns='{OWNER}'>"
                         "<destroy jid='other@conference.localhost'><reason>bye</reason>"
                         "</destroy></query></iq>")
        got = juliet.received()[0]
        destroy = got.find("x", USER).find("destroy", USER)  # type: ignore[union-attr]
        assert destroy is not None and destroy.get("jid") == "other@conference.localhost"
        assert destroy.child_text("reason") == "bye"
        assert romeo.received()[-1].get("type") == "result"
        await juliet.send(f"<message to='{ROOM}' type='groupchat'><body>x</body></message>")
        assert error_of(juliet.received()) == "item-not-found"
    run(body)


def test_registration() -> None:
    """§7.10: members register a nick; others get registration-required; a reserved nick
    is refused to others (conflict) and discoverable (§7.10.1 x-roomuser-item)."""
    async def body(srv: ModuleTestServer) -> None:
        romeo = await srv.connect("romeo@localhost/a")
        juliet = await srv.connect("juliet@localhost/b")
        nurse = await srv.connect("nurse@localhost/n")
        await create(romeo)
        await admin_set(romeo, f"<item affiliation='member' jid='{juliet.bare}'/>")
        await juliet.send(f"<iq type='get' id='r' to='{ROOM}'><query "
                          "xmlns='jabber:iq:register'/></iq>")
        form = juliet.expect("iq", type="result")
        assert "muc#register_roomnick" in form.to_xml()
        await juliet.send(f"<iq type='set' id='r' to='{ROOM}'><query xmlns='jabber:iq:register'>"
                          f"<x xmlns='{DATA}' type='submit'><field var='FORM_TYPE'><value>"
                          "http://jabber.org/protocol/muc#register</value></field>"
                          "<field var='muc#register_roomnick'><value>jules</value></field>"
                          "</x></query></iq>")
        assert juliet.expect("iq").get("type") == "result"
        await juliet.send(f"<iq type='get' id='n' to='{ROOM}'><query xmlns='http://jabber.org/"
                          "protocol/disco#info' node='x-roomuser-item'/></iq>")
        ident = juliet.expect("iq", type="result").find(
            "query", "http://jabber.org/protocol/disco#info").find("identity")  # type: ignore[union-attr]
        assert ident is not None and ident.get("name") == "jules"
        assert error_of(await join(nurse, "jules")) == "conflict"
        await nurse.send(f"<iq type='get' id='r' to='{ROOM}'><query "
                         "xmlns='jabber:iq:register'/></iq>")
        assert condition(nurse.expect("iq", type="error")) == "registration-required"
    run(body)


def test_mediated_invitation_and_decline() -> None:
    """§7.8.2 invitations through the room, §7.8.2 decline."""
    async def body(srv: ModuleTestServer) -> None:
        romeo = await srv.connect("romeo@localhost/a")
        juliet = await srv.connect("juliet@localhost/b")
        await juliet.send("<presence/>")
        juliet.received()
        await create(romeo)
        await romeo.send(f"<message to='{ROOM}' id='inv'><x xmlns='{USER}'><invite "
                         f"to='{juliet.bare}'><reason>come</reason></invite></x></message>")
        got = [s for s in juliet.received() if s.name == "message"][0]
        invite = got.find("x", USER).find("invite", USER)  # type: ignore[union-attr]
        assert invite is not None and invite.get("from") == f"{ROOM}/romeo"
        assert invite.child_text("reason") == "come"
        assert got.find("x", "jabber:x:conference") is not None
        await juliet.send(f"<message to='{ROOM}'><x xmlns='{USER}'><decline "
                          f"to='{romeo.jid}'><reason>no</reason></decline></x></message>")
        got = [s for s in romeo.received() if s.name == "message"]
        assert got, "the decline did not arrive"
        decline = got[0].find("x", USER).find("decline", USER)  # type: ignore[union-attr]
        assert decline is not None and decline.get("from") == juliet.bare
    run(body)


def test_members_only_change_kicks_non_members() -> None:
    """§10.2 / §15.2 322: making a room members-only removes non-members."""
    async def body(srv: ModuleTestServer) -> None:
        romeo = await srv.connect("romeo@localhost/a")
        juliet = await srv.connect("juliet@localhost/b")
        await create(romeo)
        await join(juliet, "juliet")
        await configure(romeo, membersonly="1")
        got = presences(juliet.received())
        assert got and "322" in codes(got[-1])
    run(body)


def test_probe_and_self_ping() -> None:
    """Prosody #1535 presence probes; XEP-0410 self-ping answered by the room."""
    async def body(srv: ModuleTestServer) -> None:
        romeo = await srv.connect("romeo@localhost/a")
        juliet = await srv.connect("juliet@localhost/b")
        await create(romeo)
        await juliet.send(f"<presence type='probe' to='{ROOM}/romeo'/>")
        assert error_of(juliet.received()) == "not-acceptable"
        await romeo.send(f"<presence type='probe' to='{ROOM}/romeo'/>")
        assert item(romeo.received()[0]).get("role") == "moderator"
        await romeo.send(f"<iq type='get' id='p' to='{ROOM}/romeo'><ping xmlns='urn:xmpp:ping'/>"
                         "</iq>")
        assert romeo.expect("iq").get("type") == "result"
        await juliet.send(f"<iq type='get' id='p' to='{ROOM}/romeo'><ping xmlns='urn:xmpp:ping'/>"
                          "</iq>")
        assert condition(juliet.expect("iq")) == "not-acceptable"
    run(body)


def test_unhandled_room_iq_falls_through() -> None:
    """An IQ to a room the MUC does not handle is left for other modules (the router
    answers service-unavailable when nobody does)."""
    async def body(srv: ModuleTestServer) -> None:
        romeo = await srv.connect("romeo@localhost/a")
        await create(romeo)
        await romeo.send(f"<iq type='get' id='x' to='{ROOM}'><foo xmlns='urn:example'/></iq>")
        assert condition(romeo.expect("iq")) == "service-unavailable"
    run(body)


def test_server_admin_owns_every_room() -> None:
    """The admins option makes those JIDs owners of every room (Prosody behaviour)."""
    async def body(srv: ModuleTestServer) -> None:
        romeo = await srv.connect("romeo@localhost/a")
        await create(romeo)
        boss = await srv.connect("boss@localhost/x")
        await boss.send(f"<iq type='get' id='f' to='{ROOM}'><query xmlns='{OWNER}'/></iq>")
        assert boss.expect("iq").get("type") == "result"
        own = presences(await join(boss, "boss"), f"{ROOM}/boss")[0]
        assert item(own).attrs == {"affiliation": "owner", "role": "moderator",
                                   "jid": boss.jid}
        juliet = await srv.connect("juliet@localhost/b")  # §7.2.3: and so others see it
        seen = presences(await join(juliet, "juliet"), f"{ROOM}/boss")[0]
        assert item(seen).attrs == {"affiliation": "owner", "role": "moderator"}
    run(body, component='admins = ["boss@localhost"]\n')


def test_occupant_id() -> None:
    """XEP-0421: a stable id per user and room in presences and messages; a forged one
    from the client is replaced."""
    async def body(srv: ModuleTestServer) -> None:
        romeo = await srv.connect("romeo@localhost/a")
        romeo2 = await srv.connect("romeo@localhost/b")
        juliet = await srv.connect("juliet@localhost/c")
        ns = "urn:xmpp:occupant-id:0"
        got = await create(romeo)
        first = presences(got)[0].find("occupant-id", ns)
        assert first is not None and first.get("id")
        await join(juliet, "juliet")
        await juliet.send(f"<message to='{ROOM}' type='groupchat'><body>x</body>"
                          f"<occupant-id xmlns='{ns}' id='forged'/></message>")
        echo = juliet.received()[0]
        ids = [e.get("id") for e in echo.find_all("occupant-id", ns)]
        assert len(ids) == 1 and ids[0] not in ("forged", first.get("id"))
        got = await join(romeo2, "romeo")  # the same user: the same id
        mine = presences(got, f"{ROOM}/romeo")[-1].find("occupant-id", ns)
        assert mine is not None and mine.get("id") == first.get("id")
    run(body)


def test_shutdown_tells_occupants() -> None:
    """§15.2 status 332 when the service goes away."""
    async def body(srv: ModuleTestServer) -> None:
        romeo = await srv.connect("romeo@localhost/a")
        await create(romeo)
        romeo.received()
        await srv.server.modules.unload("muc", "conference.localhost")
        for _ in range(20):
            await asyncio.sleep(0.01)
            got = romeo.received()
            if got:
                break
        assert got[0].get("type") == "unavailable" and codes(got[0]) == ["332", "110"]
    run(body)


def test_occupant_iq_forwarded_and_answered() -> None:
    """IQs between occupants go through the room: the real JIDs stay hidden and only
    the addressed client's answer is passed back."""
    async def body(srv: ModuleTestServer) -> None:
        romeo = await srv.connect("romeo@localhost/a")
        juliet = await srv.connect("juliet@localhost/b")
        await create(romeo)
        await join(juliet, "juliet")
        romeo.received()
        await juliet.send(f"<iq type='get' id='v1' to='{ROOM}/romeo'>"
                          "<query xmlns='jabber:iq:version'/></iq>")
        asked = romeo.expect("iq", type="get")
        assert asked.get("from") == f"{ROOM}/juliet" and asked.get("id") != "v1"
        # someone else answering with the same id is ignored
        nurse = await srv.connect("nurse@localhost/n")
        await nurse.send(f"<iq type='result' id='{asked.get('id')}' to='{ROOM}/juliet'/>")
        juliet.nothing()
        await romeo.send(f"<iq type='result' id='{asked.get('id')}' to='{ROOM}/juliet'>"
                         "<query xmlns='jabber:iq:version'><name>x</name></query></iq>")
        answer = juliet.expect("iq", type="result", id="v1")
        assert answer.get("from") == f"{ROOM}/romeo"
    run(body)


def test_history_limits() -> None:
    """§7.2.14: maxchars, maxstanzas, seconds and since, each alone and combined."""
    from tercet.modules._muc.api import HistoryLimits
    from tercet.modules._muc.history import History, parse_limits

    history = History(5)
    for i in range(7):
        history.add(Element("message", attrs={"from": f"{ROOM}/a", "id": str(i)}),
                    1000.0 + i)
    ids = lambda found: [m.get("id") for m in found]  # noqa: E731
    assert ids(history.select(HistoryLimits(), ROOM, 2000)) == ["2", "3", "4", "5", "6"]
    assert ids(history.select(HistoryLimits(maxstanzas=2), ROOM, 2000)) == ["5", "6"]
    assert ids(history.select(HistoryLimits(seconds=2), ROOM, 1006.5)) == ["5", "6"]
    assert ids(history.select(HistoryLimits(since=1004.0), ROOM, 2000)) == ["4", "5", "6"]
    one = len(history.select(HistoryLimits(maxstanzas=1), ROOM, 2000)[0].to_xml())
    assert ids(history.select(HistoryLimits(maxchars=one * 2), ROOM, 2000)) == ["5", "6"]
    assert history.select(HistoryLimits(maxchars=0), ROOM, 2000) == []
    x = Element("x", MUC)
    x.tag("history", attrs={"maxstanzas": "3", "since": "1970-01-01T00:16:40Z",
                            "seconds": "bogus"})
    assert parse_limits(x) == HistoryLimits(maxstanzas=3, since=1000.0)
    history.resize(2)
    assert ids(history.select(HistoryLimits(), ROOM, 2000)) == ["5", "6"]


def test_registered_nicks_only() -> None:
    """§7.2.9: a room that enforces registered nicks answers not-acceptable."""
    async def body(srv: ModuleTestServer) -> None:
        romeo = await srv.connect("romeo@localhost/a")
        juliet = await srv.connect("juliet@localhost/b")
        await create(romeo)
        await admin_set(romeo, f"<item affiliation='member' jid='{juliet.bare}' nick='jules'/>")
        await romeo.send(f"<iq type='set' id='c' to='{ROOM}'><query xmlns='{OWNER}'>"
                         f"<x xmlns='{DATA}' type='submit'><field var='x-muc#roomconfig_"
                         "reservednick'><value>1</value></field></x></query></iq>")
        romeo.received()
        assert error_of(await join(juliet, "juliet")) == "not-acceptable"
        got = await join(juliet, "jules")
        assert codes(presences(got, f"{ROOM}/jules")[0]) == ["110"]
        await juliet.send(f"<presence to='{ROOM}/other'/>")
        assert error_of(juliet.received()) == "not-acceptable"
    run(body)


def test_voice_request_and_approval() -> None:
    """§7.13 a visitor asks for voice; §8.6 a moderator approves with the form."""
    async def body(srv: ModuleTestServer) -> None:
        romeo = await srv.connect("romeo@localhost/a")
        juliet = await srv.connect("juliet@localhost/b")
        request = "http://jabber.org/protocol/muc#request"
        await create(romeo, moderatedroom="1")
        await join(juliet, "juliet")
        romeo.received()
        await juliet.send(f"<message to='{ROOM}'><x xmlns='{DATA}' type='submit'>"
                          f"<field var='FORM_TYPE'><value>{request}</value></field>"
                          "<field var='muc#role'><value>participant</value></field>"
                          "</x></message>")
        asked = romeo.expect("message")
        form = asked.find("x", DATA)
        assert form is not None and request in form.to_xml() and juliet.jid in form.to_xml()
        await romeo.send(f"<message to='{ROOM}'><x xmlns='{DATA}' type='submit'>"
                         f"<field var='FORM_TYPE'><value>{request}</value></field>"
                         "<field var='muc#roomnick'><value>juliet</value></field>"
                         "<field var='muc#request_allow'><value>true</value></field>"
                         "</x></message>")
        granted = presences(juliet.received(), f"{ROOM}/juliet")[-1]
        assert item(granted).get("role") == "participant"
    run(body)


def test_invitation_to_a_room_jid_does_not_hang() -> None:
    """A stanza the MUC sends to its own domain is handled while the MUC is delivering."""
    async def body(srv: ModuleTestServer) -> None:
        romeo = await srv.connect("romeo@localhost/a")
        await create(romeo)
        await create(romeo, room="other@conference.localhost")
        romeo.received()
        await romeo.send(f"<message to='{ROOM}'><x xmlns='{USER}'><invite "
                         "to='other@conference.localhost'/></x></message>")
        await romeo.send(f"<message to='{ROOM}' type='groupchat'><body>after</body>"
                         "</message>")
        assert [m.child_text("body") for m in romeo.received()
                if m.get("type") == "groupchat"] == ["after"]
    run(body)


def test_options_are_checked_and_muc_needs_a_component() -> None:
    """restrict_room_creation takes false, "local" or "admin"; muc refuses a virtual
    host (it would take the users' messages)."""
    from tercet.core.config import ConfigError

    async def bad_option(srv: ModuleTestServer) -> None:
        raise AssertionError("a bad restrict_room_creation was accepted")

    try:
        run(bad_option, component='restrict_room_creation = "everyone"\n')
    except ConfigError as err:
        assert "restrict_room_creation" in str(err)

    async def on_host() -> None:
        async with ModuleTestServer("", 'modules_enabled = ["muc"]') as srv:
            del srv
    try:
        asyncio.run(on_host())
    except Exception as err:  # noqa: BLE001 - the server refuses to start
        assert "component" in str(err)
    else:
        raise AssertionError("muc loaded on a virtual host")

    async def local_only(srv: ModuleTestServer) -> None:
        romeo = await srv.connect("romeo@localhost/a")
        got = await join(romeo, "romeo")
        assert codes(presences(got)[0]) == ["201", "110"]  # a local user may create
    run(local_only, component='restrict_room_creation = "local"\n')


def test_hats() -> None:
    """XEP-0317: an admin puts a hat on a user (don) and takes it off (doff); the
    occupant's presence carries it; others may not; forged hats are removed."""
    async def body(srv: ModuleTestServer) -> None:
        romeo = await srv.connect("romeo@localhost/a")
        juliet = await srv.connect("juliet@localhost/b")
        ns, commands = "urn:xmpp:hats:0", "http://jabber.org/protocol/commands"
        await create(romeo)
        await juliet.send(f"<presence to='{ROOM}/juliet'><x xmlns='{MUC}'/>"
                          f"<hats xmlns='{ns}'><hat uri='urn:x:forged' title='Boss'/></hats>"
                          "</presence>")
        assert presences(juliet.received(), f"{ROOM}/juliet")[0].find("hats", ns) is None
        romeo.received()

        def command(node: str, account: str, hat: str) -> str:
            return (f"<iq type='set' id='h' to='{ROOM}'><command xmlns='{commands}' "
                    f"node='urn:xmpp:hats:commands:{node}' action='execute'>"
                    f"<x xmlns='{DATA}' type='submit'><field var='FORM_TYPE'><value>"
                    "urn:xmpp:hats:commands</value></field><field var='accountjid'><value>"
                    f"{account}</value></field><field var='hat'><value>{hat}</value>"
                    "</field><field var='title'><value>Teacher</value></field></x>"
                    "</command></iq>")
        await romeo.send(f"<iq type='set' id='f' to='{ROOM}'><command xmlns='{commands}' "
                         "node='urn:xmpp:hats:commands:don' action='execute'/></iq>")
        form = romeo.expect("iq", type="result").find("command", commands)
        assert form is not None and form.get("status") == "executing"
        await romeo.send(command("don", juliet.bare, "urn:x:teacher"))
        got = romeo.received()
        shown = presences(got, f"{ROOM}/juliet")[0].find("hats", ns)
        assert shown is not None
        assert [(h.get("uri"), h.get("title")) for h in shown.elements()] == [
            ("urn:x:teacher", "Teacher")]
        done = iq_of(got).find("command", commands)
        assert done is not None and done.get("status") == "completed"
        juliet.received()
        await juliet.send(command("don", juliet.bare, "urn:x:other"))
        assert condition(juliet.expect("iq", type="error")) == "forbidden"
        await romeo.send(command("doff", juliet.bare, "urn:x:teacher"))
        got = romeo.received()
        assert presences(got, f"{ROOM}/juliet")[0].find("hats", ns) is None
        await romeo.send(command("doff", juliet.bare, "urn:x:teacher"))
        assert condition(romeo.expect("iq", type="error")) == "item-not-found"
    run(body)


def test_cancel_creation_unique_name_and_owner_lists() -> None:
    """§10.1.3 cancelling the initial form destroys the room; §10.1.4 unique names;
    §10.2 roomowners/roomadmins fields; §6.5 room items to occupants only."""
    async def body(srv: ModuleTestServer) -> None:
        romeo = await srv.connect("romeo@localhost/a")
        await join(romeo, "romeo")
        await romeo.send(f"<iq type='set' id='c' to='{ROOM}'><query xmlns='{OWNER}'>"
                         f"<x xmlns='{DATA}' type='cancel'/></query></iq>")
        got = romeo.received()
        assert any(p.find("x", USER) is not None and p.find("x", USER).find(  # type: ignore[union-attr]
            "destroy", USER) is not None for p in presences(got))
        assert iq_of(got).get("type") == "result"
        await romeo.send("<iq type='get' id='u' to='conference.localhost'><unique "
                         "xmlns='http://jabber.org/protocol/muc#unique'/></iq>")
        unique = romeo.expect("iq", type="result").child_text(
            "unique", "http://jabber.org/protocol/muc#unique")
        assert unique
        await create(romeo, roomadmins="nurse@localhost",
                     roomowners=f"{romeo.bare}|friar@localhost")
        await romeo.send(f"<iq type='get' id='l' to='{ROOM}'><query xmlns='{ADMIN}'>"
                         "<item affiliation='owner'/></query></iq>")
        owners = romeo.expect("iq", type="result").find("query", ADMIN)
        assert sorted(i.get("jid") or "" for i in owners.find_all("item", ADMIN)) == [  # type: ignore[union-attr]
            "friar@localhost", romeo.bare]
        stranger = await srv.connect("nurse@localhost/n")
        await stranger.send(f"<iq type='get' id='i' to='{ROOM}'><query "
                            "xmlns='http://jabber.org/protocol/disco#items'/></iq>")
        items_ = stranger.expect("iq", type="result").find(
            "query", "http://jabber.org/protocol/disco#items")
        assert items_ is not None and list(items_.elements()) == []
        await romeo.send(f"<iq type='get' id='i' to='{ROOM}'><query "
                         "xmlns='http://jabber.org/protocol/disco#items'/></iq>")
        items_ = romeo.expect("iq", type="result").find(
            "query", "http://jabber.org/protocol/disco#items")
        assert items_ is not None and [i.get("jid") for i in items_.elements()] == [
            f"{ROOM}/romeo"]
    run(body)


def test_extension_events() -> None:
    """The api.py surface: broadcast (add a child, drop), history from another source,
    disco features, config fields (kept in extra; a refusal), observers, the service."""
    from tercet.modules._muc import api
    from tercet.protocol.dataforms import Field
    from tercet.protocol.errors import StanzaError

    async def body(srv: ModuleTestServer) -> None:
        bus = srv.server.hosts["conference.localhost"].events
        seen: list[str] = []

        def on_broadcast(event: api.BroadcastMessage) -> bool | None:
            if event.stanza.child_text("body") == "drop me":
                return True
            event.stanza.tag("stanza-id", "urn:xmpp:sid:0", {"by": str(event.room.jid),
                                                              "id": "x1"})
            return None

        async def on_history(event: api.HistoryRequest) -> bool:
            event.messages.append(Element("message", attrs={"from": f"{ROOM}/old",
                                                            "type": "groupchat"},
                                          children=[Element("body", children=["archived"])]))
            return True

        def on_config_submitted(event: api.ConfigSubmitted) -> None:
            value = event.form.get_text("x-test#flag")
            if value == "bad":
                event.error = StanzaError("not-acceptable", "no")
            elif value is not None:
                event.room.config.extra["x-test#flag"] = value

        bus.hook(api.EV_BROADCAST_MESSAGE, on_broadcast)
        bus.hook(api.EV_GET_HISTORY, on_history)
        bus.hook(api.EV_DISCO_INFO, lambda e: e.features.append("urn:x:test"))
        bus.hook(api.EV_CONFIG_FORM, lambda e: e.fields.append(Field("x-test#flag")))
        bus.hook(api.EV_CONFIG_SUBMITTED, on_config_submitted)
        for name in (api.EV_ROOM_CREATED, api.EV_ROOM_DESTROYED, api.EV_OCCUPANT_JOINED,
                     api.EV_OCCUPANT_LEFT):
            bus.hook(name, lambda e, name=name: seen.append(name))

        romeo = await srv.connect("romeo@localhost/a")
        got = await create(romeo)
        assert [m.child_text("body") for m in got if m.name == "message"
                and m.find("body") is not None] == ["archived"]
        await romeo.send(f"<message to='{ROOM}' type='groupchat'><body>keep</body></message>")
        await romeo.send(f"<message to='{ROOM}' type='groupchat'><body>drop me</body>"
                         "</message>")
        echoes = romeo.received()
        assert [m.child_text("body") for m in echoes] == ["keep"]
        assert echoes[0].find("stanza-id", "urn:xmpp:sid:0") is not None
        await romeo.send(f"<iq type='get' id='d' to='{ROOM}'><query "
                         "xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        assert "urn:x:test" in romeo.expect("iq", type="result").to_xml()
        await romeo.send(f"<iq type='get' id='f' to='{ROOM}'><query xmlns='{OWNER}'/></iq>")
        assert "x-test#flag" in romeo.expect("iq", type="result").to_xml()
        await configure(romeo, roomname="Named")
        service = srv.server.hosts["conference.localhost"].providers["muc"][0]
        room = service.get_room("room")
        assert room is not None and service.get_room(ROOM) is room
        await romeo.send(f"<iq type='set' id='c' to='{ROOM}'><query xmlns='{OWNER}'>"
                         f"<x xmlns='{DATA}' type='submit'><field var='x-test#flag'><value>"
                         "on</value></field></x></query></iq>")
        romeo.received()
        assert room.config.extra == {"x-test#flag": "on"}
        assert room.snapshot()["config"]["extra"] == {"x-test#flag": "on"}
        await romeo.send(f"<iq type='set' id='c' to='{ROOM}'><query xmlns='{OWNER}'>"
                         f"<x xmlns='{DATA}' type='submit'><field var='x-test#flag'><value>"
                         "bad</value></field><field var='muc#roomconfig_roomname'><value>"
                         "Changed</value></field></x></query></iq>")
        assert condition(romeo.expect("iq", type="error")) == "not-acceptable"
        assert room.config.name == "Named"  # nothing of a refused form applies
        occupant = room.occupant_by_real_jid(romeo.jid)
        assert occupant is not None and occupant.nick == "romeo"
        assert room.affiliation("romeo@localhost") == "owner"
        await romeo.send(f"<presence type='unavailable' to='{ROOM}/romeo'/>")
        await asyncio.sleep(0.01)
        assert seen == [api.EV_ROOM_CREATED, api.EV_OCCUPANT_JOINED, api.EV_OCCUPANT_LEFT,
                        api.EV_ROOM_DESTROYED]
    run(body)


def test_server_stop_empties_rooms_without_a_broadcast_per_departure() -> None:
    """At server-stopping the sessions that close leave without a presence to everyone
    still in the room: with N occupants that was N² stanzas during a stop."""
    async def body(srv: ModuleTestServer) -> None:
        romeo = await srv.connect("romeo@localhost/a")
        juliet = await srv.connect("juliet@localhost/b")
        await create(romeo)
        await join(juliet, "juliet")
        romeo.received()
        srv.server.events.fire("server-stopping", srv.server)
        await juliet.disconnect()
        await asyncio.sleep(0.2)  # test_session_end_leaves_room sees it well within this
        assert romeo.received() == []
    run(body)
