"""Invitations end to end (XEP-0401, XEP-0379, XEP-0445) against a real server on OS-picked
ports: `tercet invite` over the admin socket and on a stopped server, pre-authenticated
in-band registration on a real TLS stream (slixmpp has no XEP-0445, so a raw client
registers and slixmpp logs in), contact invitations giving a mutual subscription, and the
landing page with its registration form over HTTP."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import aiohttp
import pytest
from harness import ServerHarness
from helpers import run, until
from sasl2client import RawClient
from xmpp import login, logout

from tercet.protocol.invites import make_invite

TERCET = [sys.executable, "-m", "tercet"]
HTTP = """
http_ports = [0]
https_ports = []
http_interfaces = ["127.0.0.1"]
"""
MODULES = 'modules_enabled = ["invites", "invites_register", "invites_page"]'
NS_REGISTER = "jabber:iq:register"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


@pytest.fixture
def invites(make_server: Any) -> ServerHarness:
    server: ServerHarness = make_server(extra=HTTP, host_extra=MODULES)
    server.create_user("romeo", "romeo pass")
    return server


def tercet(server: ServerHarness, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TERCET, "-c", str(server.config_path), *args],
                          capture_output=True, text=True, timeout=60, check=False)


def create(server: ServerHarness, *args: str) -> dict[str, Any]:
    done = tercet(server, "invite", "create", "--json", *args)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def http_port(server: ServerHarness) -> int:
    assert server.server is not None
    return server.server.net.bound()["http"][0][1]


def condition(el: Any) -> str | None:
    error = el.find("error")
    if error is None:
        return None
    for child in error.children:
        if child.xmlns == NS_STANZAS and child.name != "text":
            return str(child.name)
    return None


async def iq(client: RawClient, xml: str) -> Any:
    client.send(xml)
    return await client.next_named("iq")


async def register(port: int, token: str | None, username: str,
                   password: str) -> tuple[Any, Any]:
    """Preauth with ``token`` (if any), then XEP-0077 registration: both replies."""
    client = await RawClient().connect(port)
    try:
        preauth = None
        if token is not None:
            preauth = await iq(client, "<iq type='set' id='pa1' to='localhost'>"
                                       f"<preauth xmlns='urn:xmpp:pars:0' token='{token}'/></iq>")
            if preauth.get("type") != "result":
                return preauth, None
        reply = await iq(client, f"<iq type='set' id='reg1'><query xmlns='{NS_REGISTER}'>"
                                 f"<username>{username}</username><password>{password}"
                                 "</password></query></iq>")
        return preauth, reply
    finally:
        await client.close()


def test_cli_create_list_revoke_over_the_admin_socket(invites: ServerHarness) -> None:
    made = create(invites, "--ttl", "2d", "--reusable", "3", "--role", "tercet:member",
                  "--group", "Family")
    token = made["token"]
    assert len(token) >= 26  # ≥ 128 bits in base32
    assert made["uri"] == f"xmpp:localhost?register;preauth={token}"
    assert made["landing_url"] == f"http://localhost:{http_port(invites)}/invite/{token}"
    assert made["uses_left"] == 3 and made["role"] == "tercet:member"
    assert made["groups"] == ["Family"] and made["expires"].endswith("Z")

    listed = json.loads(tercet(invites, "invite", "list", "--json").stdout)
    assert [i["token"] for i in listed] == [token]

    contact = create(invites, "--contact", "romeo@localhost")
    assert contact["uri"] == ("xmpp:romeo@localhost?roster;preauth="
                              f"{contact['token']};ibr=y")
    assert tercet(invites, "invite", "create", "--contact", "nobody@localhost").returncode == 1
    assert tercet(invites, "invite", "create", "--role", "wizard").returncode == 2

    done = tercet(invites, "invite", "revoke", token)
    assert done.returncode == 0, done.stderr
    assert tercet(invites, "invite", "revoke", token).returncode == 1
    listed = json.loads(tercet(invites, "invite", "list", "--json").stdout)
    assert [i["token"] for i in listed] == [contact["token"]]


def test_cli_works_on_the_store_of_a_stopped_server(invites: ServerHarness) -> None:
    invites.stop()
    made = create(invites, "--ttl", "30s")
    assert made["uri"].startswith("xmpp:localhost?register;preauth=")
    listed = json.loads(tercet(invites, "invite", "list", "--json").stdout)
    assert [i["token"] for i in listed] == [made["token"]]
    assert tercet(invites, "invite", "revoke", made["token"]).returncode == 0
    assert json.loads(tercet(invites, "invite", "list", "--json").stdout) == []
    assert tercet(invites, "invite", "create", "--ttl", "soon").returncode == 2
    assert tercet(invites, "invite", "create", "--contact", "nobody@localhost").returncode == 1
    contact = create(invites, "--contact", "romeo@localhost")
    assert contact["uri"].startswith("xmpp:romeo@localhost?roster;preauth=")


def test_preauth_registration_is_single_use(invites: ServerHarness) -> None:
    token = create(invites)["token"]

    async def main() -> None:
        client = await RawClient().connect(invites.port(direct_tls=True))
        features = [(c.name, c.xmlns) for c in client.features.children]
        assert ("register", "urn:xmpp:ibr-token:0") in features
        assert ("register", "urn:xmpp:invite") in features
        assert ("register", "http://jabber.org/features/iq-register") not in features
        # Closed registration without a token.
        refused = await iq(client, f"<iq type='get' id='g'><query xmlns='{NS_REGISTER}'/></iq>")
        assert condition(refused) == "service-unavailable"
        await client.close()

        bad, _ = await register(invites.port(direct_tls=True), "a" * 32, "eve", "pw")
        assert bad.get("type") == "error" and condition(bad) == "item-not-found"

        preauth, reply = await register(invites.port(direct_tls=True), token, "juliet",
                                        "juliet pass")
        assert preauth.get("type") == "result"
        assert reply.get("type") == "result", reply
        client2 = await login("juliet@localhost", "juliet pass", invites.port())
        await logout(client2)

        again, _ = await register(invites.port(direct_tls=True), token, "other", "pw")
        assert condition(again) == "item-not-found"
    run(main())
    assert json.loads(tercet(invites, "invite", "list", "--json").stdout) == []


def test_reserved_username_and_reusable_count(invites: ServerHarness) -> None:
    reserved = create(invites, "--username", "Tybalt")
    assert reserved["uri"] == f"xmpp:tybalt@localhost?register;preauth={reserved['token']}"
    shared = create(invites, "--reusable", "2")["token"]

    async def main() -> None:
        port = invites.port(direct_tls=True)
        _, wrong = await register(port, reserved["token"], "mercutio", "pw")
        assert condition(wrong) == "not-allowed"
        _, right = await register(port, reserved["token"], "tybalt", "pw")
        assert right.get("type") == "result"
        for name in ("benvolio", "balthasar"):
            _, ok = await register(port, shared, name, "pw")
            assert ok.get("type") == "result"
        third, _ = await register(port, shared, "abram", "pw")
        assert condition(third) == "item-not-found"
    run(main())


def test_contact_invite_gives_mutual_subscription(invites: ServerHarness) -> None:
    made = create(invites, "--contact", "romeo@localhost", "--group", "Friends")

    async def main() -> None:
        romeo = await login("romeo@localhost", "romeo pass", invites.port())
        await romeo.get_roster()
        _, reply = await register(invites.port(direct_tls=True), made["token"], "juliet",
                                  "juliet pass")
        assert reply.get("type") == "result"
        juliet = await login("juliet@localhost", "juliet pass", invites.port())
        await juliet.get_roster()
        assert juliet.client_roster["romeo@localhost"]["subscription"] == "both"
        assert juliet.client_roster["romeo@localhost"]["groups"] == ["Friends"]
        # Romeo, online, got a roster push for his new contact.
        await until(lambda: romeo.client_roster["juliet@localhost"]["subscription"] == "both",
                    "the roster push to romeo")
        assert romeo.client_roster["juliet@localhost"]["subscription"] == "both"
        await logout(juliet)
        await logout(romeo)
    run(main())


def page_url(server: ServerHarness, token: str) -> str:
    return f"http://127.0.0.1:{http_port(server)}/invite/{token}"


async def fetch(url: str, data: dict[str, str] | None = None) -> tuple[int, str, Any]:
    headers = {"Host": "localhost"}
    async with aiohttp.ClientSession() as http:
        method = http.post(url, data=data, headers=headers) if data is not None \
            else http.get(url, headers=headers)
        async with method as resp:
            return resp.status, await resp.text(), resp.headers


def test_landing_page_and_web_registration(invites: ServerHarness) -> None:
    made = create(invites, "--contact", "romeo@localhost")
    token = made["token"]

    async def main() -> None:
        status, body, headers = await fetch(page_url(invites, token))
        assert status == 200
        assert "romeo@localhost invites you to chat" in body
        assert f'href="xmpp:romeo@localhost?roster;preauth={token};ibr=y"' in body
        for name in ("Conversations", "Monal", "Siskin", "Dino", "Gajim", "Converse.js"):
            assert name in body
        assert headers["Referrer-Policy"] == "no-referrer"
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert not re.search(r"<(script|link|img)\b", body)  # nothing external

        form = {"token": token, "username": "juliet", "password": "juliet pass"}
        status, body, _ = await fetch(page_url(invites, token),
                                      {**form, "password2": "different"})
        assert status == 400 and "The two passwords differ." in body
        status, body, _ = await fetch(page_url(invites, token),
                                      {**form, "token": "x" * 32, "password2": "juliet pass"})
        assert status == 400
        status, body, _ = await fetch(page_url(invites, token),
                                      {**form, "username": "<b>bad", "password2": "p"})
        assert "<b>bad" not in body and "&lt;b&gt;bad" in body  # escaped on the way back
        status, body, _ = await fetch(page_url(invites, token),
                                      {**form, "password2": "juliet pass"})
        assert status == 200, body
        assert "juliet@localhost" in body

        juliet = await login("juliet@localhost", "juliet pass", invites.port())
        await juliet.get_roster()
        assert juliet.client_roster["romeo@localhost"]["subscription"] == "both"
        await logout(juliet)

        status, body, _ = await fetch(page_url(invites, token))
        assert status == 404 and "not valid" in body
    run(main())


def test_expired_and_unknown_tokens(invites: ServerHarness) -> None:
    assert invites.server is not None
    store = invites.server.storage.open("localhost", "invites", "map")
    old = make_invite("localhost", 1_000_000.0, ttl=60)

    async def put() -> None:
        await store.set(None, old.token, old.to_json())
    invites.call(put())

    async def main() -> None:
        status, body, _ = await fetch(page_url(invites, old.token))
        assert status == 410 and "expired" in body
        status, body, _ = await fetch(page_url(invites, old.token),
                                      {"token": old.token, "username": "x", "password": "p",
                                       "password2": "p"})
        assert status == 410
        status, _, _ = await fetch(page_url(invites, "b" * 32))
        assert status == 404
        status, _, _ = await fetch(page_url(invites, "<script>"))
        assert status == 404
        refused, _ = await register(invites.port(direct_tls=True), old.token, "late", "pw")
        assert condition(refused) == "item-not-found"
    run(main())
