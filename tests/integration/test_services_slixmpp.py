"""Service discovery and the small services, end to end with slixmpp over real TLS."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import time
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from harness import ServerHarness
from helpers import run, until
from slixmpp import JID
from slixmpp.plugins.xep_0054.stanza import VCardTemp
from xmpp import TIMEOUT, Client, login, logout

from tercet.modules.disco import caps_ver
from tercet.protocol.xmlstream import parse_fragment

PASSWORD = "s3cret pass"
INFO = "http://jabber.org/protocol/disco#info"


@pytest.fixture
def users(server: ServerHarness) -> ServerHarness:
    server.create_user("romeo", PASSWORD)
    server.create_user("juliet", PASSWORD)
    return server


async def raw_iq(client: Client, iq_type: str, payload: str, to: str | None = None) -> Any:
    """Send an iq with an XML payload; returns the answer's XML (IqError on errors)."""
    iq = client.make_iq(ito=to, itype=iq_type)
    iq.append(ET.fromstring(payload))
    return (await iq.send(timeout=TIMEOUT)).xml


def test_server_caps_in_stream_features_verify(users: ServerHarness) -> None:
    """slixmpp fetches <node>#<ver> and checks the hash itself before accepting it."""
    async def main() -> None:
        client = await login("romeo@localhost/caps", PASSWORD, users.port(),
                             plugins=("xep_0030", "xep_0115"))
        assert "caps" in client.features
        caps = client.plugin["xep_0115"]
        await until(lambda: caps.get_verstring("localhost"), "slixmpp to verify the caps")
        ver = await caps.get_verstring("localhost")
        info = await client.plugin["xep_0030"].get_info(jid="localhost")
        query = parse_fragment(ET.tostring(info.xml.find(f"{{{INFO}}}query")))
        assert ver == caps_ver(query)
        assert "urn:xmpp:ping" in info["disco_info"]["features"]
        await logout(client)
    run(main())


def test_own_account_disco(users: ServerHarness) -> None:
    async def main() -> None:
        client = await login("romeo@localhost/a", PASSWORD, users.port(),
                             plugins=("xep_0030",))
        info = await client.plugin["xep_0030"].get_info(jid="romeo@localhost")
        assert ("account", "registered", None, None) in info["disco_info"]["identities"]
        assert ("pubsub", "pep", None, None) in info["disco_info"]["identities"]
        items = await client.plugin["xep_0030"].get_items(jid="romeo@localhost")
        # PEP nodes only (none published yet), not the resources, as in Prosody.
        assert [i for i in items["disco_items"]["items"] if i[1] is None] == []
        await logout(client)
    run(main())


def test_vcard_set_and_get(users: ServerHarness) -> None:
    async def main() -> None:
        romeo = await login("romeo@localhost/a", PASSWORD, users.port(), plugins=("xep_0054",))
        juliet = await login("juliet@localhost/b", PASSWORD, users.port(),
                             plugins=("xep_0054",))
        card = VCardTemp()
        card["FN"] = "Romeo Montague"
        card["NICKNAME"] = "romeo"
        await romeo.plugin["xep_0054"].publish_vcard(card)
        got = await juliet.plugin["xep_0054"].get_vcard(JID("romeo@localhost"))
        assert got["vcard_temp"]["FN"] == "Romeo Montague"
        assert got["vcard_temp"]["NICKNAME"] == ["romeo"]
        empty = await romeo.plugin["xep_0054"].get_vcard(JID("juliet@localhost"))
        assert empty["vcard_temp"]["FN"] == ""
        await logout(romeo, juliet)
    run(main())


def test_private_storage(users: ServerHarness) -> None:
    async def main() -> None:
        romeo = await login("romeo@localhost/a", PASSWORD, users.port())
        await raw_iq(romeo, "set", "<query xmlns='jabber:iq:private'><prefs xmlns='urn:x'>"
                                   "<nick>Romeo</nick></prefs></query>")
        answer = await raw_iq(romeo, "get", "<query xmlns='jabber:iq:private'>"
                                            "<prefs xmlns='urn:x'/></query>")
        assert answer.findtext("{jabber:iq:private}query/{urn:x}prefs/{urn:x}nick") == "Romeo"
        juliet = await login("juliet@localhost/b", PASSWORD, users.port())
        with pytest.raises(Exception) as info:
            await raw_iq(juliet, "get", "<query xmlns='jabber:iq:private'>"
                                        "<prefs xmlns='urn:x'/></query>", to="romeo@localhost")
        assert info.value.iq["error"]["condition"] == "forbidden"  # type: ignore[attr-defined]
        await logout(romeo, juliet)
    run(main())


def test_time_and_version(users: ServerHarness) -> None:
    async def main() -> None:
        client = await login("romeo@localhost/a", PASSWORD, users.port(),
                             plugins=("xep_0202", "xep_0092"))
        before = time.time()
        answer = await client.plugin["xep_0202"].get_entity_time("localhost")
        # Parsed here: slixmpp's get_utc appends a second "Z" to the XEP-0082 stamp.
        text = answer.xml.findtext("{urn:xmpp:time}time/{urn:xmpp:time}utc")
        utc = datetime.datetime.fromisoformat(text).timestamp()
        assert before - 1 <= utc <= time.time() + 1
        tzo = answer.xml.findtext("{urn:xmpp:time}time/{urn:xmpp:time}tzo")
        assert tzo == time.strftime("%z")[:3] + ":" + time.strftime("%z")[3:]
        version = await client.plugin["xep_0092"].get_version(JID("localhost"))
        assert version["software_version"]["name"] == "Tercet"
        assert version["software_version"]["version"]
        await logout(client)
    run(main())


def test_last_activity_and_uptime(users: ServerHarness) -> None:
    async def main() -> None:
        client = await login("romeo@localhost/a", PASSWORD, users.port(),
                             plugins=("xep_0012",))
        last = client.plugin["xep_0012"]
        client.send_presence(pstatus="here")
        client.send_presence(ptype="unavailable", pstatus="Gone fishing")
        answer = await last.get_last_activity(JID("romeo@localhost"))
        assert answer["last_activity"]["status"] == "Gone fishing"
        assert int(answer["last_activity"]["seconds"]) <= 5
        uptime = await last.get_last_activity(JID("localhost"))
        assert 0 <= int(uptime["last_activity"]["seconds"]) < 600
        await logout(client)
    run(main())


def test_external_services(make_server: Any) -> None:
    server = make_server(
        extra='external_service_secret = "s3cret"\nexternal_services = ['
              '{ type = "turn", transport = "udp", host = "turn.example", port = 3478, '
              'secret = true }, { type = "stun", host = "stun.example", port = 3478 }]',
        host_extra='modules_enabled = ["external_services"]')
    server.create_user("romeo", PASSWORD)

    async def main() -> None:
        client = await login("romeo@localhost/a", PASSWORD, server.port())
        answer = await raw_iq(client, "get", "<services xmlns='urn:xmpp:extdisco:2'/>",
                              to="localhost")
        found = answer.findall("{urn:xmpp:extdisco:2}services/{urn:xmpp:extdisco:2}service")
        assert [s.get("type") for s in found] == ["turn", "stun"]
        turn = found[0].attrib
        expiry = int(turn["username"])
        assert time.time() < expiry <= time.time() + 86400 + 5
        mac = hmac.new(b"s3cret", turn["username"].encode(), hashlib.sha1).digest()
        assert turn["password"] == base64.b64encode(mac).decode()
        creds = await raw_iq(client, "get", "<credentials xmlns='urn:xmpp:extdisco:2'>"
                                            "<service type='turn' host='turn.example'/>"
                                            "</credentials>", to="localhost")
        got = creds.findall("{urn:xmpp:extdisco:2}credentials/{urn:xmpp:extdisco:2}service")
        assert [s.get("host") for s in got] == ["turn.example"]
        await logout(client)
    run(main())
