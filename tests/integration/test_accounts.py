"""The account lifecycle end to end: in-band registration, password change and cancellation
with slixmpp over real TLS, `tercet user disable/enable/del` as real CLI processes against a
running (and a stopped) server."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from typing import Any

import pytest
import slixmpp
from harness import ServerHarness
from helpers import receive, run, until
from xmpp import login, logout, make_client

from tercet.protocol.stanza import Element

PASSWORD = "s3cret pass"
TERCET = [sys.executable, "-m", "tercet"]
OPEN = "allow_registration = true"
TOMBSTONES = 'modules_enabled = ["tombstones"]'


def tercet(server: ServerHarness, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TERCET, "-c", str(server.config_path), *args],
                          capture_output=True, text=True, timeout=60, check=False)


async def refused(jid: str, password: str, port: int) -> str:
    """Log in, expecting failure; the SASL failure as text."""
    with pytest.raises(PermissionError) as info:
        client = await login(jid, password, port, mech="PLAIN")
        await logout(client)
    return str(info.value)


def user_data(server: ServerHarness, username: str) -> dict[str, Any]:
    """What the storage holds for ``username`` in the stores the test fills."""
    storage = server.server.storage  # type: ignore[union-attr]

    async def read() -> dict[str, Any]:
        return {
            "vcard": await storage.open("localhost", "vcard", "keyval").get(username),
            "roster": await storage.open("localhost", "roster", "keyval").get(username),
            "private": await storage.open("localhost", "private", "map").get_all(username),
            "offline": await storage.open("localhost", "offline", "archive").users(),
            "account": await storage.open("localhost", "accounts", "keyval").get(username),
        }
    data = server.call(read())
    data["offline"] = username in data["offline"]
    return data


def fill_stores(server: ServerHarness, username: str) -> None:
    """Roster and offline messages as their modules would keep them."""
    storage = server.server.storage  # type: ignore[union-attr]

    async def write() -> None:
        await storage.open("localhost", "roster", "keyval").set(
            username, {"juliet@localhost": {"subscription": "both", "groups": []}})
        message = Element("message", attrs={"to": f"{username}@localhost"})
        message.text_tag("body", "while you were out")
        await storage.open("localhost", "offline", "archive").append(
            username, message, when=1.0, with_jid="juliet@localhost")
    server.call(write())


def tombstone(server: ServerHarness, username: str) -> Any:
    store = server.server.storage.open("localhost", "tombstones", "map")  # type: ignore[union-attr]
    return server.call(store.get(None, username))


# -- in-band registration -----------------------------------------------------------------

async def register_in_band(jid: str, password: str, port: int) -> Any:
    """slixmpp's XEP-0077 flow: register on the fresh stream, then log in on it."""
    client = make_client(jid, password)
    for plugin in ("xep_0004", "xep_0066", "xep_0077"):
        client.register_plugin(plugin)
    outcome: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def on_register(_form: Any) -> None:
        iq = client.Iq()
        iq["type"] = "set"
        iq["register"]["username"] = client.boundjid.user
        iq["register"]["password"] = password
        try:
            await iq.send(timeout=10)
        except slixmpp.exceptions.IqError as exc:
            outcome.set_result(exc.condition)
            return
        outcome.set_result("registered")

    client.add_event_handler("register", on_register)
    client.connect("127.0.0.1", port)
    result = await asyncio.wait_for(outcome, 15)
    if result == "registered":
        await asyncio.wait_for(client.started, 15)
    return result, client


def test_register_in_band_then_log_in(make_server: Any) -> None:
    srv = make_server(extra=OPEN)

    async def main() -> None:
        result, client = await register_in_band("newbie@localhost/reg", PASSWORD, srv.port())
        assert result == "registered"
        assert str(client.boundjid) == "newbie@localhost/reg"
        await logout(client)
        again = await login("newbie@localhost/again", PASSWORD, srv.port(),
                            mech="SCRAM-SHA-256")
        await logout(again)
        result, client = await register_in_band("newbie@localhost", "other", srv.port())
        assert result == "conflict"
        await logout(client)
    run(main())


HEADER = ("<?xml version='1.0'?><stream:stream to='localhost' version='1.0' "
          "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")


def raw_exchange(port: int, payload: str, wait: float = 5, end: str | None = None) -> str:
    """Send a stream header and ``payload`` on a plain socket; what came back until the
    server closed the stream or ``end`` arrived (at most ``wait`` seconds)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall((HEADER + payload).encode())
        return receive(sock, end, wait)


def test_unauthenticated_iqs_reach_registration_only(make_server: Any) -> None:
    """The c2s layer hands pre-auth IQs to modules; registration off means an IQ error
    (XEP-0077 §3.1), any other pre-auth IQ still ends the stream."""
    srv = make_server(extra="c2s_require_encryption = false")
    # The second IQ is answered too: the first one's error left the stream open.
    out = raw_exchange(srv.port(), "<iq type='get' id='r1'><query xmlns='jabber:iq:register'/>"
                                   "</iq><iq type='get' id='r1b'>"
                                   "<query xmlns='jabber:iq:register'/></iq>", end='id="r1b"')
    assert "<register xmlns" not in out  # not advertised
    assert 'id="r1" type="error"' in out and "<service-unavailable" in out
    assert 'id="r1b" type="error"' in out
    assert "<not-authorized" not in out
    out = raw_exchange(srv.port(), "<iq type='get' id='v'><query xmlns='jabber:iq:version'/>"
                                   "</iq>")
    assert "<not-authorized" in out and out.rstrip().endswith("</stream:stream>")


def test_registration_on_a_plain_stream(make_server: Any) -> None:
    srv = make_server(extra=OPEN + "\nc2s_require_encryption = false", subdir="plainreg")
    out = raw_exchange(srv.port(), "<iq type='set' id='r2'><query xmlns='jabber:iq:register'>"
                                   "<username>plain</username><password>pw</password>"
                                   "</query></iq>", end='id="r2"')
    assert '<register xmlns="http://jabber.org/features/iq-register"/>' in out
    assert 'id="r2" type="result"' in out
    assert srv.call(srv.server.hosts["localhost"].auth.test_password("plain", "pw"))


# -- logged in: password change and cancellation ------------------------------------------

def test_change_password(server: ServerHarness) -> None:
    server.create_user("romeo", PASSWORD)

    async def main() -> None:
        client = await login("romeo@localhost/a", PASSWORD, server.port(),
                             plugins=("xep_0004", "xep_0066", "xep_0077"))
        await client.plugin["xep_0077"].change_password("n3w pass", timeout=10)
        await logout(client)
        assert "not-authorized" in await refused("romeo@localhost", PASSWORD, server.port())
        client = await login("romeo@localhost", "n3w pass", server.port(),
                             mech="SCRAM-SHA-1")
        await logout(client)
    run(main())


def test_cancel_registration_deletes_all_data(server: ServerHarness) -> None:
    server.create_user("romeo", PASSWORD)
    server.create_user("juliet", PASSWORD)
    fill_stores(server, "romeo")
    fill_stores(server, "juliet")

    async def main() -> None:
        client = await login("romeo@localhost/a", PASSWORD, server.port(),
                             plugins=("xep_0004", "xep_0066", "xep_0077", "xep_0054"))
        other = await login("romeo@localhost/b", PASSWORD, server.port())
        vcard = client.plugin["xep_0054"].stanza.VCardTemp()
        vcard["FN"] = "Romeo Montague"
        await client.plugin["xep_0054"].publish_vcard(vcard, timeout=10)
        before = user_data(server, "romeo")
        assert "Romeo Montague" in str(before["vcard"]) and before["roster"]
        assert before["offline"] and before["account"]

        await client.plugin["xep_0077"].cancel_registration(timeout=10)
        await until(lambda: other.stream_errors and client.stream_errors,
                    "both sessions to be closed")
        assert other.stream_errors == ["not-authorized"]
        assert client.stream_errors == ["not-authorized"]
        after = user_data(server, "romeo")
        assert after == {"vcard": None, "roster": None, "private": {}, "offline": False,
                         "account": None}
        assert user_data(server, "juliet")["roster"]  # nobody else's data
        assert "not-authorized" in await refused("romeo@localhost", PASSWORD, server.port())
    run(main())


# -- the CLI against a running server ------------------------------------------------------

def test_disabled_account_is_kicked_and_refused(server: ServerHarness) -> None:
    server.create_user("romeo", PASSWORD)

    async def main() -> None:
        client = await login("romeo@localhost/a", PASSWORD, server.port())
        out = await asyncio.to_thread(tercet, server, "user", "disable", "romeo@localhost")
        assert out.returncode == 0, out.stderr
        await until(lambda: client.stream_errors, "the session to be closed")
        assert client.stream_errors == ["not-authorized"]
        assert "account-disabled" in await refused("romeo@localhost", PASSWORD, server.port())
        with pytest.raises(PermissionError) as info:
            await login("romeo@localhost", PASSWORD, server.port(), mech="SCRAM-SHA-256")
        assert "account-disabled" in str(info.value)

        out = await asyncio.to_thread(tercet, server, "user", "enable", "romeo@localhost")
        assert out.returncode == 0, out.stderr
        client = await login("romeo@localhost/back", PASSWORD, server.port())
        await logout(client)
    run(main())


def test_user_del_through_the_running_server(make_server: Any) -> None:
    srv = make_server(host_extra=TOMBSTONES)
    srv.create_user("romeo", PASSWORD)
    srv.create_user("juliet", PASSWORD)
    fill_stores(srv, "romeo")

    async def main() -> None:
        client = await login("romeo@localhost/a", PASSWORD, srv.port())
        juliet = await login("juliet@localhost/j", PASSWORD, srv.port())
        out = await asyncio.to_thread(tercet, srv, "user", "del", "--yes", "romeo@localhost")
        assert out.returncode == 0, out.stderr
        assert "deleted romeo@localhost" in out.stdout
        await until(lambda: client.stream_errors, "the session to be closed")
        assert client.stream_errors == ["not-authorized"]
        assert user_data(srv, "romeo") == {"vcard": None, "roster": None, "private": {},
                                           "offline": False, "account": None}
        assert tombstone(srv, "romeo") is not None
        assert "not-authorized" in await refused("romeo@localhost", PASSWORD, srv.port())
        assert not juliet.stream_errors
        await logout(juliet)

        out = await asyncio.to_thread(tercet, srv, "user", "del", "--yes", "romeo@localhost")
        assert out.returncode == 1
        assert "does not exist" in out.stderr
    run(main())


def test_user_del_with_the_server_stopped(make_server: Any) -> None:
    srv = make_server(host_extra=TOMBSTONES, subdir="offline")
    srv.create_user("romeo", PASSWORD)
    fill_stores(srv, "romeo")
    config = srv.config_path
    srv.stop()
    out = subprocess.run([*TERCET, "-c", str(config), "user", "del", "--yes",
                          "romeo@localhost"], capture_output=True, text=True, timeout=60,
                         check=False)
    assert out.returncode == 0, out.stderr
    again = make_server(host_extra=TOMBSTONES, subdir="offline")
    assert user_data(again, "romeo") == {"vcard": None, "roster": None, "private": {},
                                         "offline": False, "account": None}
    assert tombstone(again, "romeo") is not None


def test_user_del_offline_writes_no_tombstone_without_the_module(make_server: Any) -> None:
    srv = make_server(subdir="plain")
    srv.create_user("romeo", PASSWORD)
    config = srv.config_path
    srv.stop()
    out = subprocess.run([*TERCET, "-c", str(config), "user", "del", "--yes",
                          "romeo@localhost"], capture_output=True, text=True, timeout=60,
                         check=False)
    assert out.returncode == 0, out.stderr
    again = make_server(subdir="plain")
    assert user_data(again, "romeo")["account"] is None
    assert tombstone(again, "romeo") is None
