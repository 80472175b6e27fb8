"""The small services: version, time, ping, uptime, last activity, vcard-temp, private
storage, contact addresses and external services. XML in, XML out."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from helpers import idle, run
from moduletest import ModuleTestServer, TestClient, condition

from tercet.core.config import Config, ConfigError
from tercet.core.session import Session
from tercet.protocol.stanza import NS_STANZAS, Element
from tercet.protocol.xmlstream import parse_fragment

INFO = "http://jabber.org/protocol/disco#info"
DATA = "jabber:x:data"
LAST = "jabber:iq:last"
PRIVATE = "jabber:iq:private"
EXTDISCO = "urn:xmpp:extdisco:2"
T0 = 1_700_000_000.0


class Clock:
    """A settable clock for the server (module.now())."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def with_server(extra: str = "", host_extra: str = "",
                clock: bool = False) -> Callable[..., Any]:
    """Run the decorated coroutine with a started ModuleTestServer (and its Clock)."""
    def wrap(fn: Callable[..., Awaitable[None]]) -> Callable[[], None]:
        def test() -> None:
            async def main() -> None:
                srv = ModuleTestServer(extra, host_extra)
                fake = Clock()
                if clock:
                    srv.server.clock = fake
                    srv.server.started = fake.now
                async with srv:
                    await (fn(srv, fake) if clock else fn(srv))
            run(main())
        test.__name__ = fn.__name__
        return test
    return wrap


async def ask(client: TestClient, xml: str) -> Element:
    """Send an iq (its id must be 'q') and return the answer (earlier stanzas dropped)."""
    client.received()
    await client.send(xml)
    return client.expect("iq", id="q")


async def set_subscription(srv: ModuleTestServer, user: str, contact: str, sub: str) -> None:
    """Write a roster item the way the roster module stores it (keyval "roster")."""
    store = srv.server.storage.open("localhost", "roster", "keyval")
    roster = await store.get(user) or {}
    roster[contact] = {"subscription": sub}
    await store.set(user, roster)
    for service in srv.server.hosts["localhost"].providers.get("roster", []):
        service.invalidate(user)  # written behind the roster cache


# -- software version ------------------------------------------------------------------------

VERSION_Q = "<iq type='get' id='q' to='localhost'><query xmlns='jabber:iq:version'/></iq>"


@with_server()
async def test_version_names_the_software_and_os(srv: ModuleTestServer) -> None:
    romeo = await srv.connect("romeo@localhost/a")
    q = (await ask(romeo, VERSION_Q)).find("query", "jabber:iq:version")
    assert q is not None
    assert q.child_text("name") == "Tercet" and q.child_text("version") == srv.server.version
    assert q.child_text("os") == os.uname().sysname  # the OS, not its release


@with_server(extra="hide_os_type = true")
async def test_version_hides_the_os(srv: ModuleTestServer) -> None:
    romeo = await srv.connect("romeo@localhost/a")
    q = (await ask(romeo, VERSION_Q)).find("query", "jabber:iq:version")
    assert q is not None and q.find("os") is None
    assert [c.name for c in q.elements()] == ["name", "version"]


# -- entity time --------------------------------------------------------------------------------

@contextmanager
def timezone(name: str) -> Iterator[None]:
    old = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


@pytest.mark.parametrize("zone, when, tzo", [
    ("UTC", T0, "+00:00"),
    ("Asia/Kolkata", T0, "+05:30"),
    ("America/St_Johns", 1_690_000_000.0, "-02:30"),   # July: daylight saving time
    ("America/St_Johns", T0, "-03:30"),                 # November: standard time
])
def test_time_reports_utc_and_the_local_offset(zone: str, when: float, tzo: str) -> None:
    @with_server(clock=True)
    async def check(srv: ModuleTestServer, clock: Clock) -> None:
        clock.now = when + 0.25
        romeo = await srv.connect("romeo@localhost/a")
        reply = await ask(romeo, "<iq type='get' id='q' to='localhost'>"
                                 "<time xmlns='urn:xmpp:time'/></iq>")
        t = reply.find("time", "urn:xmpp:time")
        assert t is not None
        assert t.child_text("tzo") == tzo
        expected = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when)) + ".250Z"
        assert t.child_text("utc") == expected
    with timezone(zone):
        check()


@with_server()
async def test_time_of_accounts(srv: ModuleTestServer) -> None:
    romeo = await srv.connect("romeo@localhost/a")
    await srv.create_user("juliet")
    reply = await ask(romeo, "<iq type='get' id='q' to='juliet@localhost'>"
                             "<time xmlns='urn:xmpp:time'/></iq>")
    assert reply.get("type") == "result" and reply.find("time", "urn:xmpp:time") is not None
    reply = await ask(romeo, "<iq type='get' id='q' to='nobody@localhost'>"
                             "<time xmlns='urn:xmpp:time'/></iq>")
    assert condition(reply) == "service-unavailable"


# -- ping -----------------------------------------------------------------------------------------

@with_server()
async def test_ping_the_server_oneself_and_accounts(srv: ModuleTestServer) -> None:
    romeo = await srv.connect("romeo@localhost/a")
    await srv.create_user("juliet")
    for to in ("localhost", "romeo@localhost", "juliet@localhost"):
        reply = await ask(romeo, f"<iq type='get' id='q' to='{to}'>"
                                 "<ping xmlns='urn:xmpp:ping'/></iq>")
        assert reply.get("type") == "result" and reply.get("from") == to
        assert list(reply.elements()) == []
    reply = await ask(romeo, "<iq type='get' id='q'><ping xmlns='urn:xmpp:ping'/></iq>")
    assert reply.get("type") == "result"
    reply = await ask(romeo, "<iq type='get' id='q' to='nobody@localhost'>"
                             "<ping xmlns='urn:xmpp:ping'/></iq>")
    assert condition(reply) == "service-unavailable"


# -- uptime -----------------------------------------------------------------------------------

@with_server(clock=True)
async def test_uptime(srv: ModuleTestServer, clock: Clock) -> None:
    romeo = await srv.connect("romeo@localhost/a")
    clock.now = T0 + 234.9
    reply = await ask(romeo, f"<iq type='get' id='q' to='localhost'><query xmlns='{LAST}'/></iq>")
    q = reply.find("query", LAST)
    assert q is not None and q.get("seconds") == "234" and q.text == ""


# -- last activity ---------------------------------------------------------------------------

LAST_Q = "<iq type='get' id='q'{to}><query xmlns='jabber:iq:last'/></iq>"


def last(reply: Element) -> tuple[str | None, str]:
    q = reply.find("query", LAST)
    assert q is not None, reply
    return q.get("seconds"), q.text


@with_server(clock=True)
async def test_last_activity_after_unavailable_presence(srv: ModuleTestServer,
                                                        clock: Clock) -> None:
    romeo = await srv.connect("romeo@localhost/a")
    await romeo.send("<presence><status>Hello</status></presence>")
    assert last(await ask(romeo, LAST_Q.format(to=""))) == ("0", "")  # online
    clock.now = T0 + 10
    await romeo.send("<presence type='unavailable'><status>Goodbye</status></presence>")
    clock.now = T0 + 75.5
    assert last(await ask(romeo, LAST_Q.format(to=""))) == ("65", "Goodbye")
    assert last(await ask(romeo, LAST_Q.format(to=" to='romeo@localhost'"))) == ("65", "Goodbye")
    await idle()  # the background write has finished
    store = srv.server.storage.open("localhost", "lastactivity", "keyval")
    assert await store.get("romeo") == {"time": T0 + 10, "status": "Goodbye"}


@with_server(clock=True)
async def test_last_activity_store_keeps_the_newest_record(srv: ModuleTestServer,
                                                          clock: Clock) -> None:
    romeo = await srv.connect("romeo@localhost/a")
    for n in range(50):
        clock.now = T0 + n
        await romeo.send(f"<presence type='unavailable'><status>{n}</status></presence>")
    await idle()  # the background writer has stored the newest record
    store = srv.server.storage.open("localhost", "lastactivity", "keyval")
    assert await store.get("romeo") == {"time": T0 + 49, "status": "49"}


@with_server(clock=True)
async def test_last_activity_after_disconnecting(srv: ModuleTestServer, clock: Clock) -> None:
    romeo = await srv.connect("romeo@localhost/a")
    juliet = await srv.connect("juliet@localhost/b")
    await set_subscription(srv, "romeo", "juliet@localhost", "both")
    await romeo.send("<presence/>")
    clock.now = T0 + 100
    await romeo.disconnect()
    clock.now = T0 + 130
    assert last(await ask(juliet, LAST_Q.format(to=" to='romeo@localhost'"))) == ("30", "")


@with_server(clock=True)
async def test_last_activity_of_a_session_that_never_was_available(
        srv: ModuleTestServer, clock: Clock) -> None:
    romeo = await srv.connect("romeo@localhost/a")
    juliet = await srv.connect("juliet@localhost/b")
    await set_subscription(srv, "romeo", "juliet@localhost", "from")
    await romeo.disconnect()  # no presence sent: nothing to record
    assert last(await ask(juliet, LAST_Q.format(to=" to='romeo@localhost'"))) == ("0", "")


@with_server(clock=True)
async def test_last_activity_needs_a_subscription(srv: ModuleTestServer, clock: Clock) -> None:
    romeo = await srv.connect("romeo@localhost/a")
    juliet = await srv.connect("juliet@localhost/b")
    await romeo.send("<presence type='unavailable'><status>bye</status></presence>")
    query = LAST_Q.format(to=" to='romeo@localhost'")
    assert condition(await ask(juliet, query)) == "forbidden"
    await set_subscription(srv, "romeo", "juliet@localhost", "to")
    assert condition(await ask(juliet, query)) == "forbidden"
    await set_subscription(srv, "romeo", "juliet@localhost", "from")
    assert last(await ask(juliet, query)) == ("0", "bye")
    assert condition(await ask(juliet, LAST_Q.format(to=" to='nobody@localhost'"))) == \
        "forbidden"


@with_server(clock=True)
async def test_last_activity_is_zero_while_another_resource_is_available(
        srv: ModuleTestServer, clock: Clock) -> None:
    a = await srv.connect("romeo@localhost/a")
    b = await srv.connect("romeo@localhost/b")
    await b.send("<presence/>")
    await a.send("<presence type='unavailable'><status>away</status></presence>")
    clock.now = T0 + 50
    assert last(await ask(a, LAST_Q.format(to=""))) == ("0", "")


# -- vcard-temp --------------------------------------------------------------------------------

CARD = "<vCard xmlns='vcard-temp'><FN>Romeo Montague</FN><N><FAMILY>Montague</FAMILY>" \
       "<GIVEN>Romeo</GIVEN></N></vCard>"
GET_CARD = "<iq type='get' id='q'{to}><vCard xmlns='vcard-temp'/></iq>"


@with_server()
async def test_vcard_set_and_get(srv: ModuleTestServer) -> None:
    romeo = await srv.connect("romeo@localhost/a")
    juliet = await srv.connect("juliet@localhost/b")
    empty = await ask(juliet, GET_CARD.format(to=" to='romeo@localhost'"))
    assert empty.get("type") == "result"
    assert empty.find("vCard", "vcard-temp") == Element("vCard", "vcard-temp")
    reply = await ask(romeo, f"<iq type='set' id='q'>{CARD}</iq>")
    assert reply.get("type") == "result" and list(reply.elements()) == []
    expected = parse_fragment(CARD)
    own = await ask(romeo, GET_CARD.format(to=""))
    assert own.find("vCard", "vcard-temp") == expected
    theirs = await ask(juliet, GET_CARD.format(to=" to='romeo@localhost'"))
    assert theirs.get("from") == "romeo@localhost"
    assert theirs.find("vCard", "vcard-temp") == expected


@with_server()
async def test_vcard_errors(srv: ModuleTestServer) -> None:
    romeo = await srv.connect("romeo@localhost/a")
    await srv.create_user("juliet")
    reply = await ask(romeo, f"<iq type='set' id='q' to='juliet@localhost'>{CARD}</iq>")
    assert condition(reply) == "forbidden"
    reply = await ask(romeo, f"<iq type='set' id='q' to='localhost'>{CARD}</iq>")
    assert condition(reply) == "forbidden"
    reply = await ask(romeo, GET_CARD.format(to=" to='nobody@localhost'"))
    assert condition(reply) == "service-unavailable"
    reply = await ask(romeo, GET_CARD.format(to=" to='localhost'"))
    assert reply.find("vCard", "vcard-temp") == Element("vCard", "vcard-temp")


@with_server(extra="vcard_max_size = 2048")
async def test_vcard_size_limit(srv: ModuleTestServer) -> None:
    romeo = await srv.connect("romeo@localhost/a")
    big = "<vCard xmlns='vcard-temp'><DESC>" + "x" * 2100 + "</DESC></vCard>"
    reply = await ask(romeo, f"<iq type='set' id='q'>{big}</iq>")
    assert condition(reply) == "not-acceptable"
    assert reply.find("error").find("text", NS_STANZAS) is not None  # type: ignore[union-attr]
    fits = "<vCard xmlns='vcard-temp'><DESC>" + "x" * 1900 + "</DESC></vCard>"
    assert (await ask(romeo, f"<iq type='set' id='q'>{fits}</iq>")).get("type") == "result"


@with_server()
async def test_vcard_empty_set_deletes_and_updates_are_announced(srv: ModuleTestServer) -> None:
    updates: list[tuple[str, Element | None]] = []
    srv.server.hosts["localhost"].events.hook(
        "vcard-updated", lambda e: updates.append((e.username, e.vcard)))
    romeo = await srv.connect("romeo@localhost/a")
    await ask(romeo, f"<iq type='set' id='q'>{CARD}</iq>")
    store = srv.server.storage.open("localhost", "vcard", "keyval")
    assert parse_fragment(await store.get("romeo")) == parse_fragment(CARD)
    await ask(romeo, "<iq type='set' id='q'><vCard xmlns='vcard-temp'/></iq>")
    assert await store.get("romeo") is None
    own = await ask(romeo, GET_CARD.format(to=""))
    assert own.find("vCard", "vcard-temp") == Element("vCard", "vcard-temp")
    assert [u[0] for u in updates] == ["romeo", "romeo"]
    assert updates[0][1] == parse_fragment(CARD) and updates[1][1] is None


# -- private XML storage -------------------------------------------------------------------------

def private(iq_type: str, inner: str, to: str = "") -> str:
    to_attr = f" to='{to}'" if to else ""
    return f"<iq type='{iq_type}' id='q'{to_attr}><query xmlns='{PRIVATE}'>{inner}</query></iq>"


PREFS = "<exodus xmlns='exodus:prefs'><defaultnick>Hamlet</defaultnick></exodus>"


@with_server()
async def test_private_set_get_and_delete(srv: ModuleTestServer) -> None:
    romeo = await srv.connect("romeo@localhost/a")
    missing = await ask(romeo, private("get", "<exodus xmlns='exodus:prefs'/>"))
    q = missing.find("query", PRIVATE)
    assert q is not None and list(q.elements()) == [Element("exodus", "exodus:prefs")]
    assert (await ask(romeo, private("set", PREFS))).get("type") == "result"
    got = (await ask(romeo, private("get", "<exodus xmlns='exodus:prefs'/>"))).find(
        "query", PRIVATE)
    assert got is not None and list(got.elements()) == [parse_fragment(PREFS)]
    # Another name in the same namespace is another fragment.
    other = (await ask(romeo, private("get", "<other xmlns='exodus:prefs'/>"))).find(
        "query", PRIVATE)
    assert list(other.elements()) == [Element("other", "exodus:prefs")]  # type: ignore[union-attr]
    await ask(romeo, private("set", "<exodus xmlns='exodus:prefs'/>"))
    store = srv.server.storage.open("localhost", "private", "map")
    assert await store.get_all("romeo") == {}


@with_server()
async def test_private_set_of_several_fragments(srv: ModuleTestServer) -> None:
    romeo = await srv.connect("romeo@localhost/a")
    two = "<a xmlns='urn:x'><v>1</v></a><b xmlns='urn:x'><v>2</v></b>"
    assert (await ask(romeo, private("set", two))).get("type") == "result"
    got = (await ask(romeo, private("get", "<b xmlns='urn:x'/>"))).find("query", PRIVATE)
    assert got is not None and next(got.elements()).child_text("v") == "2"


@pytest.mark.parametrize("ns", ["jabber:client", "jabber:server", PRIVATE])
def test_private_reserved_namespaces(ns: str) -> None:
    @with_server()
    async def check(srv: ModuleTestServer) -> None:
        romeo = await srv.connect("romeo@localhost/a")
        for iq_type in ("get", "set"):
            reply = await ask(romeo, private(iq_type, f"<x xmlns='{ns}'><y/></x>"))
            assert condition(reply) == "not-acceptable"
    check()


@with_server()
async def test_private_bad_requests(srv: ModuleTestServer) -> None:
    romeo = await srv.connect("romeo@localhost/a")
    await srv.create_user("juliet")
    assert condition(await ask(romeo, private("get", ""))) == "not-acceptable"
    assert condition(await ask(romeo, private("set", ""))) == "not-acceptable"
    two = "<a xmlns='urn:x'/><b xmlns='urn:y'/>"
    assert condition(await ask(romeo, private("get", two))) == "not-acceptable"
    for iq_type, inner in (("get", "<a xmlns='urn:x'/>"), ("set", PREFS)):
        reply = await ask(romeo, private(iq_type, inner, to="juliet@localhost"))
        assert condition(reply) == "forbidden"
    store = srv.server.storage.open("localhost", "private", "map")
    assert await store.get_all("juliet") == {}


@with_server(extra="private_max_items = 2")
async def test_private_quota(srv: ModuleTestServer) -> None:
    romeo = await srv.connect("romeo@localhost/a")
    for ns in ("urn:a", "urn:b"):
        assert (await ask(romeo, private("set", f"<x xmlns='{ns}'><v/></x>"))).get(
            "type") == "result"
    reply = await ask(romeo, private("set", "<x xmlns='urn:c'><v/></x>"))
    assert condition(reply) == "policy-violation"
    # Replacing an existing fragment is fine; deleting makes room.
    assert (await ask(romeo, private("set", "<x xmlns='urn:a'><w/></x>"))).get(
        "type") == "result"
    await ask(romeo, private("set", "<x xmlns='urn:b'/>"))
    assert (await ask(romeo, private("set", "<x xmlns='urn:c'><v/></x>"))).get(
        "type") == "result"


# -- contact addresses (XEP-0157) --------------------------------------------------------------

def serverinfo(reply: Element) -> dict[str, list[str]]:
    """The serverinfo form of a disco#info answer as var -> values."""
    forms = [x for x in reply.find("query", INFO).find_all("x", DATA)  # type: ignore[union-attr]
             if any(f.get("var") == "FORM_TYPE" and f.child_text("value") ==
                    "http://jabber.org/network/serverinfo" for f in x.find_all("field"))]
    assert len(forms) <= 1
    if not forms:
        return {}
    return {f.get("var") or "": [v.text for v in f.find_all("value")]
            for f in forms[0].find_all("field") if f.get("var") != "FORM_TYPE"}


DISCO_Q = f"<iq type='get' id='q' to='localhost'><query xmlns='{INFO}'/></iq>"


@with_server(extra='contact_info = { support = ["https://localhost/help", '
                   '"xmpp:support@localhost"], abuse = ["mailto:abuse@localhost"] }')
async def test_contact_info_form(srv: ModuleTestServer) -> None:
    romeo = await srv.connect("romeo@localhost/a")
    reply = await ask(romeo, DISCO_Q)
    assert serverinfo(reply) == {
        "abuse-addresses": ["mailto:abuse@localhost"],
        "support-addresses": ["https://localhost/help", "xmpp:support@localhost"],
    }
    form = next(reply.find("query", INFO).find_all("x", DATA))  # type: ignore[union-attr]
    assert form.get("type") == "result"
    assert [(f.get("var"), f.get("type")) for f in form.find_all("field")] == [
        ("FORM_TYPE", "hidden"), ("abuse-addresses", "list-multi"),
        ("support-addresses", "list-multi")]


@with_server(extra='admins = ["admin@localhost", "boss@localhost"]')
async def test_contact_info_defaults_to_the_admins(srv: ModuleTestServer) -> None:
    romeo = await srv.connect("romeo@localhost/a")
    assert serverinfo(await ask(romeo, DISCO_Q)) == {
        "admin-addresses": ["xmpp:admin@localhost", "xmpp:boss@localhost"]}


@with_server(extra='admins = ["admin@localhost"]\ncontact_info = {}')
async def test_contact_info_can_be_empty(srv: ModuleTestServer) -> None:
    romeo = await srv.connect("romeo@localhost/a")
    assert serverinfo(await ask(romeo, DISCO_Q)) == {}


@with_server(extra='contact_info = { admin = ["xmpp:admin@localhost"] }')
async def test_serverinfo_fields_of_other_modules_join_the_same_form(
        srv: ModuleTestServer) -> None:
    form = Element("x", DATA, {"type": "result"})
    form.tag("field", DATA, {"var": "FORM_TYPE", "type": "hidden"}).text_tag(
        "value", "http://jabber.org/network/serverinfo")
    form.tag("field", DATA, {"var": "info-addresses", "type": "list-multi"}).text_tag(
        "value", "https://localhost/about")
    srv.server.hosts["localhost"].extensions.append(form)
    await srv.server.modules.reload("disco", "localhost")  # drop the cached answer
    romeo = await srv.connect("romeo@localhost/a")
    assert serverinfo(await ask(romeo, DISCO_Q)) == {
        "admin-addresses": ["xmpp:admin@localhost"],
        "info-addresses": ["https://localhost/about"]}


# -- external services (XEP-0215) ------------------------------------------------------------------

EXT_CONFIG = """
modules_enabled = ["external_services"]
external_service_host = "default.example"
external_service_port = 9876
external_service_secret = "s3cret"
external_service_ttl = 600
external_services = [
    { type = "stun", transport = "udp" },
    { type = "turn", transport = "udp", secret = true, username = "alice" },
    { type = "turn", transport = "tcp", port = 443, secret = "other", ttl = 60 },
    { type = "ftp", transport = "tcp", port = 2121, username = "john", password = "pw" },
    { type = "ftp", host = "ftp.example.com", port = 21, name = "Files", expires = 1800000000 },
]
"""


def services(reply: Element, name: str = "services", ns: str = EXTDISCO) -> list[dict[str, str]]:
    wrapper = reply.find(name, ns)
    assert wrapper is not None, reply
    return [dict(s.attrs) for s in wrapper.find_all("service", ns)]


def turn_password(secret: str, username: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), username.encode(),
                                     hashlib.sha1).digest()).decode()


@with_server(extra=EXT_CONFIG, clock=True)
async def test_external_services_list(srv: ModuleTestServer, clock: Clock) -> None:
    romeo = await srv.connect("romeo@localhost/a")
    found = services(await ask(romeo, "<iq type='get' id='q' to='localhost'>"
                                      f"<services xmlns='{EXTDISCO}'/></iq>"))
    expiry = int(T0) + 600
    assert found == [
        {"type": "stun", "host": "default.example", "transport": "udp", "port": "9876"},
        {"type": "turn", "host": "default.example", "transport": "udp", "port": "9876",
         "username": f"{expiry}:alice",
         "password": turn_password("s3cret", f"{expiry}:alice"), "restricted": "1"},
        {"type": "turn", "host": "default.example", "transport": "tcp", "port": "443",
         "username": str(int(T0) + 60), "password": turn_password("other", str(int(T0) + 60)),
         "expires": "2023-11-14T22:14:20Z", "restricted": "1"},
        {"type": "ftp", "host": "default.example", "transport": "tcp", "port": "2121",
         "username": "john", "password": "pw", "restricted": "1"},
        {"type": "ftp", "host": "ftp.example.com", "port": "21", "name": "Files",
         "expires": "2027-01-15T08:00:00Z"},
    ]


@with_server(extra=EXT_CONFIG)
async def test_external_services_of_one_type_and_old_namespace(srv: ModuleTestServer) -> None:
    romeo = await srv.connect("romeo@localhost/a")
    found = services(await ask(romeo, "<iq type='get' id='q' to='localhost'>"
                                      f"<services xmlns='{EXTDISCO}' type='ftp'/></iq>"))
    assert [s["port"] for s in found] == ["2121", "21"]
    old = "urn:xmpp:extdisco:1"
    found = services(await ask(romeo, "<iq type='get' id='q' to='localhost'>"
                                      f"<services xmlns='{old}' type='stun'/></iq>"), ns=old)
    assert [s["type"] for s in found] == ["stun"]
    assert services(await ask(romeo, "<iq type='get' id='q' to='localhost'>"
                                     f"<services xmlns='{EXTDISCO}' type='x'/></iq>")) == []


@with_server(extra=EXT_CONFIG)
async def test_external_service_credentials(srv: ModuleTestServer) -> None:
    romeo = await srv.connect("romeo@localhost/a")

    def creds(inner: str) -> str:
        return (f"<iq type='get' id='q' to='localhost'><credentials xmlns='{EXTDISCO}'>"
                f"{inner}</credentials></iq>")
    found = services(await ask(romeo, creds("<service type='turn' host='default.example'/>")),
                     "credentials")
    assert [s["transport"] for s in found] == ["udp", "tcp"]
    found = services(await ask(romeo, creds(
        "<service type='turn' host='default.example' port='443'/>")), "credentials")
    assert [s["port"] for s in found] == ["443"]
    # Unrestricted services have no credentials to give.
    assert services(await ask(romeo, creds("<service type='stun' host='default.example'/>")),
                    "credentials") == []
    reply = await ask(romeo, creds("<service host='default.example'/>"))
    assert condition(reply) == "bad-request"


class RemoteOrigin(Session):
    """A stanza source that is not a local client (as s2s would be)."""

    kind = "s2sin"
    __slots__ = ("sent",)

    def __init__(self) -> None:
        super().__init__(None)
        self.sent: list[Element] = []

    def send(self, stanza: Element) -> None:
        self.sent.append(stanza)


@with_server(extra=EXT_CONFIG)
async def test_external_services_only_for_local_clients(srv: ModuleTestServer) -> None:
    origin = RemoteOrigin()
    credentials = (f"<credentials xmlns='{EXTDISCO}'><service type='turn' "
                   "host='default.example'/></credentials>")
    for payload in (f"<services xmlns='{EXTDISCO}'/>", credentials):
        stanza = parse_fragment(f"<iq xmlns='jabber:client' type='get' id='q' "
                                f"to='localhost' from='someone@remote.example/x'>{payload}</iq>")
        srv.server.router.route(origin, stanza)
        assert condition(origin.sent.pop()) == "forbidden"


def test_external_services_config_is_checked() -> None:
    import tercet.modules.external_services  # noqa: F401  (declares the options)

    base = '[virtualhosts."localhost"]\n'
    Config.from_text('external_services = [{ type = "stun", port = 3478 }]\n' + base)
    for bad in ('[{ transport = "udp" }]', '[{ type = "turn", secret = 1 }]',
                '[{ type = "turn", colour = "red" }]', '[{ type = "turn", port = true }]'):
        with pytest.raises(ConfigError) as info:
            Config.from_text(f"external_services = {bad}\n" + base)
        assert "external_services" in str(info.value)


def test_check_knows_the_options_of_enabled_modules(tmp_path: Any) -> None:
    from tercet.cli.main import collect_problems

    (tmp_path / "tercet.toml").write_text(
        'modules_enabled = ["disco", "vcard", "private", "external_services"]\n'
        'name = "Verona"\nvcard_max_size = 100000\nprivate_max_items = 10\n'
        'external_service_host = "turn.example"\nexternal_service_port = 3478\n'
        'external_service_secret = "x"\nexternal_service_ttl = 3600\n'
        'external_services = [{ type = "turn", secret = true }]\n'
        '[virtualhosts."localhost"]\n')
    problems = collect_problems(Config.load(tmp_path / "tercet.toml"))
    assert [p for p in problems if "unknown option" in p.message] == []
