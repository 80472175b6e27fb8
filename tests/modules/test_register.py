"""In-band registration (XEP-0077), password change, cancellation and tombstones, XML in and
XML out. Unauthenticated streams are real C2SSessions fed through the same event the c2s
layer fires (``unauthenticated-iq/<ns>:<name>``)."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from helpers import run
from moduletest import FakeConnection, ModuleTestServer

from tercet.core.session import C2SSession
from tercet.module import ModuleError, StreamElementEvent, StreamFeaturesEvent
from tercet.protocol.stanza import Element
from tercet.protocol.xmlstream import parse_fragment

NS = "jabber:iq:register"
NS_FEATURE = "http://jabber.org/features/iq-register"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
OPEN = "allow_registration = true\n"
WITH_TOMBSTONES = ('modules_enabled = ["register", "tombstones", "welcome", '
                   '"watchregistrations"]\n')


class Conn(FakeConnection):
    def __init__(self, ip: str, secure: bool) -> None:
        super().__init__()
        self._ip = ip
        self._secure = secure

    @property
    def peer(self) -> str:
        return self._ip

    @property
    def secure(self) -> bool:
        return self._secure


class Stranger:
    """An unauthenticated client stream from ``ip``."""

    def __init__(self, srv: ModuleTestServer, ip: str = "192.0.2.10",
                 secure: bool = True) -> None:
        self.host = srv.server.hosts["localhost"]
        self.conn = Conn(ip, secure)
        self.session = C2SSession(self.host, self.conn)

    async def send(self, xml: str) -> Any:
        el = parse_fragment(xml)
        payload = el.iq_payload()
        assert payload is not None
        result = self.host.events.fire(f"unauthenticated-iq/{payload.xmlns}:{payload.name}",
                                       StreamElementEvent(self.session, el))
        if inspect.isawaitable(result):
            result = await result
        return result

    def expect(self, **attrs: str) -> Element:
        assert self.conn.stanzas, "nothing received"
        el = self.conn.stanzas.pop(0)
        for key, value in attrs.items():
            assert el.get(key) == value, el
        return el

    async def register(self, username: str, password: str, id_: str = "r") -> Element:
        await self.send(f"<iq type='set' id='{id_}'><query xmlns='{NS}'>"
                        f"<username>{username}</username><password>{password}</password>"
                        "</query></iq>")
        return self.expect(id=id_)

    def features(self) -> Element:
        features = Element("features", "http://etherx.jabber.org/streams")
        self.host.events.fire("stream-features",
                              StreamFeaturesEvent(self.session, features))
        return features


def condition(stanza: Element) -> str:
    error = stanza.find("error")
    assert error is not None, stanza
    return next(c.name for c in error.elements() if c.xmlns == NS_STANZAS and c.name != "text")


def error_type(stanza: Element) -> str | None:
    error = stanza.find("error")
    return None if error is None else error.get("type")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def with_clock(srv: ModuleTestServer) -> Clock:
    clock = Clock()
    srv.server.clock = clock  # modules read module.now() -> server.clock() on each call
    return clock


# -- creation -------------------------------------------------------------------------------

def test_registration_is_off_by_default() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            s = Stranger(srv)
            assert s.features().find("register", NS_FEATURE) is None
            await s.send(f"<iq type='get' id='1'><query xmlns='{NS}'/></iq>")
            assert condition(s.expect(type="error")) == "service-unavailable"
            assert (await s.register("bob", "pw")).get("type") == "error"
            assert not await srv.server.hosts["localhost"].auth.user_exists("bob")
    run(main())


def test_feature_offered_only_before_auth_and_on_encrypted_streams() -> None:
    async def main() -> None:
        async with ModuleTestServer(extra=OPEN) as srv:
            s = Stranger(srv)
            assert s.features().find("register", NS_FEATURE) is not None
            s.session.authenticated = True
            assert s.features().find("register", NS_FEATURE) is None
            plain = Stranger(srv, secure=False)
            assert plain.features().find("register", NS_FEATURE) is None
            await plain.send(f"<iq type='get' id='1'><query xmlns='{NS}'/></iq>")
            assert condition(plain.expect(type="error")) == "policy-violation"
            assert (await plain.register("bob", "pw")).get("type") == "error"
    run(main())


def test_registration_form_and_account_creation() -> None:
    async def main() -> None:
        async with ModuleTestServer(extra=OPEN) as srv:
            s = Stranger(srv)
            await s.send(f"<iq type='get' id='1'><query xmlns='{NS}'/></iq>")
            query = s.expect(type="result", id="1").find("query", NS)
            assert query is not None
            assert query.find("username", NS) is not None
            assert query.find("password", NS) is not None
            assert query.child_text("instructions", NS)
            form = query.find("x", "jabber:x:data")
            assert form is not None
            assert {f.get("var") for f in form.find_all("field")} == {
                "FORM_TYPE", "username", "password"}
            assert (await s.register("Bob", "s3cret")).get("type") == "result"
            auth = srv.server.hosts["localhost"].auth
            assert await auth.user_exists("bob")  # nodeprep'd
            assert await auth.test_password("bob", "s3cret")
    run(main())


def test_registration_with_a_data_form() -> None:
    async def main() -> None:
        async with ModuleTestServer(extra=OPEN) as srv:
            s = Stranger(srv)
            await s.send(
                f"<iq type='set' id='f'><query xmlns='{NS}'><x xmlns='jabber:x:data' "
                "type='submit'><field var='FORM_TYPE'><value>jabber:iq:register</value>"
                "</field><field var='username'><value>carol</value></field>"
                "<field var='password'><value>pw</value></field></x></query></iq>")
            assert s.expect(id="f").get("type") == "result"
            assert await srv.server.hosts["localhost"].auth.test_password("carol", "pw")
    run(main())


@pytest.mark.parametrize("fields,expected", [
    ("<username>bob</username>", "not-acceptable"),  # no password
    ("<username>bob</username><password/>", "not-acceptable"),  # empty password
    ("<username/><password>pw</password>", "not-acceptable"),
    ("<username>bad user</username><password>pw</password>", "not-acceptable"),
    ("<username>a@b</username><password>pw</password>", "not-acceptable"),
    ("<username>bob</username><password>\ufff9bell</password>", "not-acceptable"),
    ("<remove/>", "registration-required"),
])
def test_registration_errors(fields: str, expected: str) -> None:
    async def main() -> None:
        async with ModuleTestServer(extra=OPEN) as srv:
            s = Stranger(srv)
            await s.send(f"<iq type='set' id='x'><query xmlns='{NS}'>{fields}</query></iq>")
            assert condition(s.expect(type="error", id="x")) == expected
            assert await srv.server.hosts["localhost"].auth.users() == []
    run(main())


def test_existing_username_is_a_conflict() -> None:
    async def main() -> None:
        async with ModuleTestServer(extra=OPEN) as srv:
            await srv.create_user("bob", "old")
            reply = await Stranger(srv).register("BOB", "new")
            assert condition(reply) == "conflict" and error_type(reply) == "cancel"
            assert await srv.server.hosts["localhost"].auth.test_password("bob", "old")
    run(main())


# -- limits -------------------------------------------------------------------------------

def test_one_registration_per_ip_per_period() -> None:
    async def main() -> None:
        async with ModuleTestServer(extra=OPEN + "min_seconds_between_registrations = 60\n"
                                    ) as srv:
            clock = with_clock(srv)
            assert (await Stranger(srv, "192.0.2.1").register("a1", "pw")).get(
                "type") == "result"
            refused = await Stranger(srv, "192.0.2.1").register("a2", "pw")
            assert condition(refused) == "policy-violation" and error_type(refused) == "wait"
            assert (await Stranger(srv, "192.0.2.2").register("b1", "pw")).get(
                "type") == "result"  # another IP
            clock.now += 61
            assert (await Stranger(srv, "192.0.2.1").register("a2", "pw")).get(
                "type") == "result"
    run(main())


def test_default_period_is_300_seconds() -> None:
    async def main() -> None:
        async with ModuleTestServer(extra=OPEN) as srv:
            clock = with_clock(srv)
            await Stranger(srv, "192.0.2.1").register("a1", "pw")
            clock.now += 299
            assert condition(await Stranger(srv, "192.0.2.1").register("a2", "pw")) == \
                "policy-violation"
            clock.now += 2
            assert (await Stranger(srv, "192.0.2.1").register("a2", "pw")).get(
                "type") == "result"
    run(main())


def test_failed_attempts_do_not_use_up_the_allowance() -> None:
    async def main() -> None:
        async with ModuleTestServer(extra=OPEN) as srv:
            await srv.create_user("taken", "pw")
            s = Stranger(srv, "192.0.2.1")
            assert condition(await s.register("taken", "pw", "1")) == "conflict"
            assert (await s.register("free", "pw", "2")).get("type") == "result"
    run(main())


def test_loopback_is_exempt_unless_the_allowlist_says_otherwise() -> None:
    async def main() -> None:
        async with ModuleTestServer(extra=OPEN) as srv:
            for name in ("l1", "l2", "l3"):
                assert (await Stranger(srv, "127.0.0.1").register(name, "pw")).get(
                    "type") == "result"
            assert (await Stranger(srv, "::1").register("l4", "pw")).get("type") == "result"
        async with ModuleTestServer(extra=OPEN + "registration_allowlist = []\n") as srv:
            assert (await Stranger(srv, "127.0.0.1").register("l1", "pw")).get(
                "type") == "result"
            assert condition(await Stranger(srv, "127.0.0.1").register("l2", "pw")) == \
                "policy-violation"
    run(main())


def test_allowlisted_networks_are_exempt() -> None:
    async def main() -> None:
        extra = OPEN + 'registration_allowlist = ["203.0.113.0/24", "2001:db8::/32"]\n'
        async with ModuleTestServer(extra=extra) as srv:
            for i, ip in enumerate(["203.0.113.5", "203.0.113.6", "203.0.113.5",
                                    "2001:db8::1", "2001:db8::1", "::ffff:203.0.113.9"]):
                assert (await Stranger(srv, ip).register(f"u{i}", "pw")).get(
                    "type") == "result", ip
    run(main())


def test_denylist_refuses_addresses_and_networks() -> None:
    async def main() -> None:
        extra = OPEN + 'registration_denylist = ["198.51.100.0/24", "2001:db8::7"]\n'
        async with ModuleTestServer(extra=extra) as srv:
            for ip in ("198.51.100.77", "2001:db8::7", "::ffff:198.51.100.1"):
                reply = await Stranger(srv, ip).register("mallory", "pw")
                assert condition(reply) == "forbidden" and error_type(reply) == "auth", ip
            assert (await Stranger(srv, "198.51.101.1").register("alice", "pw")).get(
                "type") == "result"
            assert await srv.server.hosts["localhost"].auth.users() == ["alice"]
    run(main())


def test_denylist_wins_over_the_loopback_exemption() -> None:
    async def main() -> None:
        async with ModuleTestServer(extra=OPEN + 'registration_denylist = ["127.0.0.1"]\n'
                                    ) as srv:
            assert condition(await Stranger(srv, "127.0.0.1").register("x", "pw")) == \
                "forbidden"
    run(main())


def test_allowlist_only() -> None:
    async def main() -> None:
        extra = OPEN + "allowlist_registration_only = true\n"
        async with ModuleTestServer(extra=extra) as srv:
            assert condition(await Stranger(srv, "192.0.2.1").register("x", "pw")) == \
                "forbidden"
            assert (await Stranger(srv, "127.0.0.1").register("y", "pw")).get(
                "type") == "result"
    run(main())


def test_a_bad_list_entry_stops_the_server_with_a_clear_error() -> None:
    """A module the configuration enables but cannot load keeps the server from starting,
    and the error names the module and the option."""
    async def main() -> None:
        srv = ModuleTestServer(extra=OPEN + 'registration_denylist = ["10.0.0.300"]\n')
        with pytest.raises(ModuleError) as failed:
            async with srv:
                pass
        entry = srv.server.modules.loaded[("register", "localhost")]
        await srv.__aexit__(None, None, None)  # stop what did start, remove the files
        assert entry.status == "failed"
        assert "registration_denylist" in (entry.error or "")
        assert "register on localhost" in str(failed.value)
    run(main())


# -- after registration: welcome and watchers ---------------------------------------------

def test_welcome_message_and_admin_notification() -> None:
    async def main() -> None:
        extra = (OPEN + WITH_TOMBSTONES + 'admins = ["admin@localhost"]\n'
                 'welcome_message = "Hi {username}, this is {host}."\n')
        async with ModuleTestServer(extra=extra) as srv:
            admin = await srv.connect("admin@localhost/desk")
            await admin.send("<presence/>")
            admin.received()
            stored: list[Element] = []

            def offline(event: Any) -> bool:
                stored.append(event.stanza)
                return True
            srv.server.hosts["localhost"].events.hook("message/offline", offline)
            assert (await Stranger(srv, "192.0.2.44").register("newbie", "pw")).get(
                "type") == "result"
            assert [(m.get("to"), m.get("from"), m.child_text("body")) for m in stored] == [
                ("newbie@localhost", "localhost", "Hi newbie, this is localhost.")]
            note = admin.expect("message", type="chat", from_="localhost")
            assert note.child_text("body") == \
                "User newbie just registered on localhost from 192.0.2.44"
    run(main())


def test_registration_watchers_replace_the_admins() -> None:
    async def main() -> None:
        extra = (OPEN + 'modules_enabled = ["register", "watchregistrations"]\n'
                 'admins = ["admin@localhost"]\nregistration_watchers = ["mod@localhost"]\n'
                 'registration_notification = "{username} joined"\n')
        async with ModuleTestServer(extra=extra) as srv:
            admin = await srv.connect("admin@localhost/desk")
            mod = await srv.connect("mod@localhost/desk")
            for c in (admin, mod):
                await c.send("<presence/>")
                c.received()
            await Stranger(srv).register("newbie", "pw")
            assert mod.expect("message").child_text("body") == "newbie joined"
            admin.nothing()
    run(main())


# -- logged in: info, password change, cancellation ---------------------------------------

def test_registration_info_and_password_change() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            romeo = await srv.connect("romeo@localhost/a")
            auth = srv.server.hosts["localhost"].auth
            await romeo.send(f"<iq type='get' id='i'><query xmlns='{NS}'/></iq>")
            query = romeo.expect("iq", type="result").find("query", NS)
            assert query is not None and query.find("registered", NS) is not None
            assert query.child_text("username", NS) == "romeo"

            await romeo.send(f"<iq type='set' id='p'><query xmlns='{NS}'><username>romeo"
                             "</username><password>n3w</password></query></iq>")
            romeo.expect("iq", type="result", id="p")
            assert await auth.test_password("romeo", "n3w")
            assert not await auth.test_password("romeo", "password")

            # COMPAT: addressed to the server
            await romeo.send(f"<iq type='set' id='h' to='localhost'><query xmlns='{NS}'>"
                             "<username>romeo</username><password>third</password></query>"
                             "</iq>")
            romeo.expect("iq", type="result", id="h")
            assert await auth.test_password("romeo", "third")
    run(main())


@pytest.mark.parametrize("fields,expected", [
    ("<username>juliet</username><password>x</password>", "bad-request"),
    ("<username>romeo</username>", "not-acceptable"),
    ("<username>romeo</username><password>\ufff9</password>", "not-acceptable"),
])
def test_password_change_errors(fields: str, expected: str) -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            await srv.create_user("juliet", "hers")
            romeo = await srv.connect("romeo@localhost/a")
            await romeo.send(f"<iq type='set' id='p'><query xmlns='{NS}'>{fields}</query></iq>")
            assert condition(romeo.expect("iq", type="error")) == expected
            auth = srv.server.hosts["localhost"].auth
            assert await auth.test_password("romeo", "password")
            assert await auth.test_password("juliet", "hers")
    run(main())


def test_cancel_deletes_everything_and_closes_every_session() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            storage = srv.server.storage
            a = await srv.connect("romeo@localhost/a")
            b = await srv.connect("romeo@localhost/b")
            juliet = await srv.connect("juliet@localhost/j")
            await storage.open("localhost", "vcard", "keyval").set("romeo", "<vCard/>")
            await storage.open("localhost", "private", "map").set("romeo", "k", "v")
            await storage.open("localhost", "private", "map").set("juliet", "k", "v")
            deleted: list[Any] = []
            srv.server.hosts["localhost"].events.hook("user-deleted", deleted.append)

            await a.send(f"<iq type='set' id='bye'><query xmlns='{NS}'><remove/></query></iq>")
            a.expect("iq", type="result", id="bye")
            for c in (a, b):
                assert c.conn.closed_with is not False
                assert c.conn.closed_with.condition == "not-authorized"  # type: ignore[union-attr]
            assert juliet.conn.closed_with is False
            assert srv.server.hosts["localhost"].user_sessions("romeo") == {}
            assert not await srv.server.hosts["localhost"].auth.user_exists("romeo")
            assert await storage.open("localhost", "vcard", "keyval").get("romeo") is None
            assert await storage.open("localhost", "private", "map").get_all("romeo") == {}
            assert await storage.open("localhost", "private", "map").get_all("juliet") == {
                "k": "v"}
            assert [(e.username, e.host) for e in deleted] == [("romeo", "localhost")]
    run(main())


# -- tombstones ---------------------------------------------------------------------------

async def cancel(srv: ModuleTestServer, jid: str) -> None:
    client = await srv.connect(jid)
    await client.send(f"<iq type='set' id='bye'><query xmlns='{NS}'><remove/></query></iq>")
    client.expect("iq", type="result", id="bye")


def test_a_deleted_name_cannot_be_registered_until_the_tombstone_expires() -> None:
    async def main() -> None:
        extra = OPEN + WITH_TOMBSTONES + "user_tombstone_expiry = 3600\n"
        async with ModuleTestServer(extra=extra) as srv:
            clock = with_clock(srv)
            await cancel(srv, "juliet@localhost/a")
            graveyard = srv.server.storage.open("localhost", "tombstones", "map")
            assert await graveyard.get(None, "juliet") == clock.now
            reply = await Stranger(srv, "127.0.0.1").register("Juliet", "pw")
            assert condition(reply) == "conflict"
            assert not await srv.server.hosts["localhost"].auth.user_exists("juliet")
            clock.now += 3601
            assert (await Stranger(srv, "127.0.0.1").register("juliet", "pw", "2")).get(
                "type") == "result"
            assert await graveyard.get(None, "juliet") is None  # expired ones are removed
    run(main())


def test_without_tombstones_a_name_can_be_reused() -> None:
    async def main() -> None:
        async with ModuleTestServer(extra=OPEN) as srv:
            await cancel(srv, "juliet@localhost/a")
            assert (await Stranger(srv, "127.0.0.1").register("juliet", "pw")).get(
                "type") == "result"
    run(main())


def test_default_tombstone_expiry_is_30_days() -> None:
    async def main() -> None:
        async with ModuleTestServer(extra=OPEN + WITH_TOMBSTONES) as srv:
            clock = with_clock(srv)
            await cancel(srv, "juliet@localhost/a")
            clock.now += 30 * 86400 - 10
            assert condition(await Stranger(srv, "127.0.0.1").register("juliet", "pw")) == \
                "conflict"
            clock.now += 20
            assert (await Stranger(srv, "127.0.0.1").register("juliet", "pw")).get(
                "type") == "result"
    run(main())


@pytest.mark.parametrize("ptype,follow_up", [
    ("probe", "unsubscribed"), (None, "unsubscribe"), ("unavailable", "unsubscribe")])
def test_presence_to_a_deleted_account_says_it_is_gone(ptype: str | None,
                                                       follow_up: str) -> None:
    async def main() -> None:
        async with ModuleTestServer(extra=WITH_TOMBSTONES) as srv:
            await cancel(srv, "juliet@localhost/a")
            romeo = await srv.connect("romeo@localhost/r")
            type_attr = f" type='{ptype}'" if ptype else ""
            await romeo.send(f"<presence{type_attr} to='juliet@localhost'/>")
            error = romeo.expect("presence", type="error", from_="juliet@localhost")
            assert condition(error) == "gone"
            romeo.expect("presence", type=follow_up, from_="juliet@localhost",
                         to="romeo@localhost/r")
    run(main())


def test_results_and_errors_on_an_unauthenticated_stream_are_not_answered() -> None:
    async def main() -> None:
        async with ModuleTestServer(extra=OPEN) as srv:
            s = Stranger(srv)
            for itype in ("result", "error"):
                assert await s.send(f"<iq type='{itype}' id='x'><query xmlns='{NS}'/></iq>")
            assert s.conn.stanzas == []
    run(main())


def test_an_account_recreated_by_the_admin_is_not_treated_as_gone() -> None:
    async def main() -> None:
        async with ModuleTestServer(extra=WITH_TOMBSTONES) as srv:
            await cancel(srv, "juliet@localhost/a")
            await srv.create_user("juliet", "again")  # as `tercet user add` does
            juliet = await srv.connect("juliet@localhost/b", create=False)
            await juliet.send("<presence/>")
            juliet.received()
            romeo = await srv.connect("romeo@localhost/r")
            await romeo.send("<presence to='juliet@localhost/b'/>")
            romeo.nothing()
            assert juliet.expect("presence", from_="romeo@localhost/r").get("type") is None
    run(main())
