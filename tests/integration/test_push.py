"""Push Notifications (XEP-0357, module cloud_notify) end to end over real TLS.

The "app server" is a slixmpp client logged in as another account's full JID: it records
the pubsub publish iqs the server sends it and answers them with a result or an error.
Romeo registers it with raw ``<enable/>``/``<disable/>`` iqs (this slixmpp has no
xep_0357 plugin); the hibernated session is a raw stream from test_smacks.
"""

from __future__ import annotations

import asyncio
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from harness import ServerHarness
from helpers import run, until
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath
from test_smacks import Clock, Raw, sweep
from xmpp import TIMEOUT, Client, available, login, logout

PASSWORD = "s3cret pass"
NS_PUSH = "urn:xmpp:push:0"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_DATA = "jabber:x:data"
APP = "app@localhost/push"


class AppServer:
    """Records publish iqs; answers ``error`` while ``failing``, else ``result``."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.published: asyncio.Queue[ET.Element] = asyncio.Queue()
        self.failing = False
        client.register_handler(Callback("push", MatchXPath(
            f"{{jabber:client}}iq/{{{NS_PUBSUB}}}pubsub"), self.on_publish))

    def on_publish(self, stanza: Any) -> None:
        self.published.put_nowait(stanza.xml)
        reply = stanza.reply(clear=True)
        if self.failing:
            reply["type"] = "error"
            reply["error"]["type"] = "cancel"
            reply["error"]["condition"] = "item-not-found"
        reply.send()

    async def next(self) -> ET.Element:
        return await asyncio.wait_for(self.published.get(), TIMEOUT)


def summary(xml: ET.Element) -> dict[str, str]:
    notification = xml.find(f"{{{NS_PUBSUB}}}pubsub/{{{NS_PUBSUB}}}publish/"
                            f"{{{NS_PUBSUB}}}item/{{{NS_PUSH}}}notification/{{{NS_DATA}}}x")
    assert notification is not None, ET.tostring(xml)
    return {f.get("var", ""): f.findtext(f"{{{NS_DATA}}}value", "")
            for f in notification.findall(f"{{{NS_DATA}}}field")}


async def push_iq(client: Client, payload: str) -> Any:
    iq = client.make_iq_set()
    iq.xml.append(ET.fromstring(payload))
    return await iq.send(timeout=TIMEOUT)


def enable(node: str, options: str = "") -> str:
    form = (f"<x xmlns='{NS_DATA}' type='submit'><field var='FORM_TYPE'><value>"
            f"http://jabber.org/protocol/pubsub#publish-options</value></field>"
            f"{options}</x>") if options else ""
    return f"<enable xmlns='{NS_PUSH}' jid='{APP}' node='{node}'>{form}</enable>"


def serve(make_server: Any, config: str = "") -> ServerHarness:
    srv: ServerHarness = make_server(host_extra="modules_enabled = ['cloud_notify', "
                                     "'smacks']\nsmacks_hibernation_time = 30\n" + config)
    for name in ("romeo", "juliet", "app"):
        srv.create_user(name, PASSWORD)
    return srv


@pytest.fixture
def users(make_server: Any) -> ServerHarness:
    return serve(make_server)


def test_offline_message_is_pushed_without_body_then_disabled(users: ServerHarness) -> None:
    async def main() -> None:
        port = users.port()
        app_client = await login(APP, PASSWORD, port)
        app = AppServer(app_client)
        romeo = await login("romeo@localhost/phone", PASSWORD, port, plugins=("xep_0030",))
        info = await romeo["xep_0030"].get_info(jid="romeo@localhost", timeout=TIMEOUT)
        assert NS_PUSH in info["disco_info"]["features"]
        secret = "<field var='secret'><value>s3</value></field>"
        await push_iq(romeo, enable("node1", secret))
        # Live: romeo's own client gets it, nothing is pushed.
        await available(romeo)
        juliet = await login("juliet@localhost/j", PASSWORD, port)
        juliet.send_message(mto="romeo@localhost", mbody="live", mtype="chat")
        got = await asyncio.wait_for(romeo.messages.get(), TIMEOUT)
        assert got["body"] == "live"
        await offline(users, romeo)
        juliet.send_message(mto="romeo@localhost", mbody="secret text", mtype="chat")
        first = await app.next()
        assert first.get("from") == "localhost"
        publish = first.find(f"{{{NS_PUBSUB}}}pubsub/{{{NS_PUBSUB}}}publish")
        assert publish is not None and publish.get("node") == "node1"
        fields = summary(first)
        assert fields["FORM_TYPE"] == "urn:xmpp:push:summary"
        assert fields["message-count"] == "1"  # "live" was received live: not counted
        # Defaults (Prosody's): no sender, the placeholder body marks it important.
        assert "last-message-sender" not in fields
        assert fields["last-message-body"] == "New Message!"
        assert b"secret text" not in ET.tostring(first)
        assert b"juliet" not in ET.tostring(first)
        options = first.find(f"{{{NS_PUBSUB}}}pubsub/{{{NS_PUBSUB}}}publish-options/"
                             f"{{{NS_DATA}}}x")
        assert options is not None and b"s3" in ET.tostring(options)
        juliet.send_message(mto="romeo@localhost", mbody="again", mtype="chat")
        assert summary(await app.next())["message-count"] == "2"
        # Disable from a new session: nothing more is published.
        romeo = await login("romeo@localhost/laptop", PASSWORD, port)
        await push_iq(romeo, f"<disable xmlns='{NS_PUSH}' jid='{APP}' node='node1'/>")
        await offline(users, romeo)
        juliet.send_message(mto="romeo@localhost", mbody="after", mtype="chat")
        juliet.send_presence(pto="romeo@localhost", ptype="subscribe")
        await until(lambda: users.call(_offline_count(users, "romeo")) >= 3, "stored")
        await settle(app_client)
        assert app.published.empty()
        await logout(juliet, app_client)
    run(main())


async def settle(client: Client) -> None:
    """Round trips to the server: a push published before them has reached ``client``."""
    for _ in range(3):
        iq = client.make_iq_get(ito="localhost")
        iq.xml.append(ET.fromstring("<ping xmlns='urn:xmpp:ping'/>"))
        await iq.send(timeout=TIMEOUT)


async def offline(srv: ServerHarness, client: Client) -> None:
    """Log ``client`` out and wait until the server has unbound its session."""
    await logout(client)
    assert srv.server is not None
    host = srv.server.hosts["localhost"]
    await until(lambda: not host.user_sessions(client.boundjid.user), "unbound")


async def _offline_count(srv: ServerHarness, user: str) -> int:
    from tercet.module import ArchiveQuery
    assert srv.server is not None
    store = srv.server.storage.open("localhost", "offline", "archive")
    return int(await store.count(user, ArchiveQuery()))


def test_body_option_and_errors_disable_registration(make_server: Any) -> None:
    srv = serve(make_server, "push_notification_with_body = true\npush_max_errors = 2\n"
                "push_error_backoff = 0\npush_notification_with_sender = true\n")

    async def main() -> None:
        port = srv.port()
        app_client = await login(APP, PASSWORD, port)
        app = AppServer(app_client)
        romeo = await login("romeo@localhost/phone", PASSWORD, port)
        await push_iq(romeo, enable("n"))
        await offline(srv, romeo)
        juliet = await login("juliet@localhost/j", PASSWORD, port)
        juliet.send_message(mto="romeo@localhost", mbody="hello body", mtype="chat")
        fields = summary(await app.next())
        assert fields["last-message-body"] == "hello body"
        assert fields["last-message-sender"] == "juliet@localhost/j"
        app.failing = True
        for i in range(2):  # push_max_errors error replies in a row
            juliet.send_message(mto="romeo@localhost", mbody=f"e{i}", mtype="chat")
            await app.next()
        assert srv.server is not None
        regs = srv.server.storage.open("localhost", "cloud_notify", "keyval")
        await until(lambda: srv.call(regs.get("romeo")) is None, "registration disabled")
        app.failing = False
        juliet.send_message(mto="romeo@localhost", mbody="gone", mtype="chat")
        juliet.send_presence(pto="romeo@localhost", ptype="subscribe")
        await until(lambda: srv.call(_offline_count(srv, "romeo")) >= 4, "stored")
        await settle(app_client)
        assert app.published.empty()
        await logout(juliet, app_client)
    run(main())


def test_hibernated_session_gets_a_push(users: ServerHarness) -> None:
    async def main() -> None:
        port = users.port()
        app_client = await login(APP, PASSWORD, port)
        app = AppServer(app_client)
        romeo = await Raw.login("romeo", port)
        await romeo.bind("phone")
        await romeo.enable()
        romeo.send(f"<iq type='set' id='p1'>{enable('hib')}</iq>")
        await romeo.expect("id=['\"]p1['\"]")
        romeo.send("<presence/>")
        await romeo.expect("</presence>|<presence[^>]*/>")
        romeo.kill()
        assert users.server is not None
        host = users.server.hosts["localhost"]
        await until(lambda: host.user_sessions("romeo")["phone"].detached, "hibernation")
        juliet = await login("juliet@localhost/j", PASSWORD, port)
        juliet.send_message(mto="romeo@localhost", mbody="wake up", mtype="chat")
        fields = summary(await app.next())
        assert fields["message-count"] == "1"
        assert fields["last-message-body"] == "New Message!"
        assert "phone" in host.user_sessions("romeo")  # still hibernated, not offline
        await logout(juliet, app_client)
    run(main())


def test_empty_important_body_sends_no_body(make_server: Any) -> None:
    srv = serve(make_server, 'push_notification_important_body = ""\n')

    async def main() -> None:
        port = srv.port()
        app_client = await login(APP, PASSWORD, port)
        app = AppServer(app_client)
        romeo = await login("romeo@localhost/phone", PASSWORD, port)
        await push_iq(romeo, enable("n"))
        await offline(srv, romeo)
        juliet = await login("juliet@localhost/j", PASSWORD, port)
        juliet.send_message(mto="romeo@localhost", mbody="hello", mtype="chat")
        fields = summary(await app.next())
        assert "last-message-body" not in fields and "last-message-sender" not in fields
        assert fields["message-count"] == "1"
        await logout(juliet, app_client)
    run(main())


async def hibernate_with_push(srv: ServerHarness, app_client: Client) -> None:
    """romeo enables push on a resumable session, then loses its connection."""
    romeo = await Raw.login("romeo", srv.port())
    await romeo.bind("phone")
    await romeo.enable()
    romeo.send(f"<iq type='set' id='p1'>{enable('hib')}</iq>")
    await romeo.expect("id=['\"]p1['\"]")
    romeo.send("<presence/>")
    await romeo.expect("</presence>|<presence[^>]*/>")
    romeo.kill()
    assert srv.server is not None
    host = srv.server.hosts["localhost"]
    await until(lambda: host.user_sessions("romeo")["phone"].detached, "hibernation")


def test_hibernation_kept_until_a_push_woke_the_device(make_server: Any) -> None:
    """push_max_hibernation_timeout (Prosody's rule): a hibernated session with push is
    kept past smacks_hibernation_time (30 s here) while nothing woke its device, and ends
    smacks_hibernation_time after the first notification."""
    srv = serve(make_server, "push_max_hibernation_timeout = 300\n")

    async def main() -> None:
        assert srv.server is not None
        clock = Clock()
        srv.server.clock = clock
        app_client = await login(APP, PASSWORD, srv.port())
        app = AppServer(app_client)
        await hibernate_with_push(srv, app_client)
        host = srv.server.hosts["localhost"]
        for offset in (31, 120, 200):  # no push yet: kept
            clock.offset = offset
            await sweep(srv)
            assert "phone" in host.user_sessions("romeo"), offset
        juliet = await login("juliet@localhost/j", PASSWORD, srv.port())
        juliet.send_message(mto="romeo@localhost", mbody="wake up", mtype="chat")
        await app.next()
        clock.offset = 225  # woken at ~200: 30 s to come back
        await sweep(srv)
        assert "phone" in host.user_sessions("romeo")
        clock.offset = 232
        await sweep(srv)
        assert "phone" not in host.user_sessions("romeo")
        await logout(juliet, app_client)
    run(main())


def test_hibernation_never_kept_past_the_maximum(make_server: Any) -> None:
    srv = serve(make_server, "push_max_hibernation_timeout = 100\n")

    async def main() -> None:
        assert srv.server is not None
        clock = Clock()
        srv.server.clock = clock
        app_client = await login(APP, PASSWORD, srv.port())
        await hibernate_with_push(srv, app_client)
        host = srv.server.hosts["localhost"]
        clock.offset = 95
        await sweep(srv)
        assert "phone" in host.user_sessions("romeo")
        clock.offset = 102
        await sweep(srv)
        assert "phone" not in host.user_sessions("romeo")
        await logout(app_client)
    run(main())
