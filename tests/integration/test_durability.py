"""What the server acknowledged survives `kill -9`, with SQLite on its default settings
(WAL, synchronous=normal): an offline message, a roster change, a password change, a PEP
item and a persistent room's configuration and affiliations once a ping came back after
them, and archive entries once a stream management <a/> came back (the archive is written
in the background; the acknowledgement waits for it).

The server runs as operators run it (`tercet start` in its own process); the client is
a raw stream over direct TLS (SASL2 with Bind2 inline, so one round trip logs in)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from helpers import run
from procsite import TERCET, admin_socket, init_site, tercet, tls_port, wait_port
from sasl2client import NS_BIND2, RawClient

from tercet.protocol.stanza import Element

NS_SM = "urn:xmpp:sm:3"
NS_MAM = "urn:xmpp:mam:2"
HOST_MODULES = ('modules_enabled = ["sasl2", "bind2", "mam"]\n\n'
                '[components."conference.localhost"]\nmodule = "muc"\n')
ROOM = "room@conference.localhost"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_MUC_ADMIN = "http://jabber.org/protocol/muc#admin"
ROOM_CONFIG = ("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'>"
               "<value>http://jabber.org/protocol/muc#roomconfig</value></field>"
               "<field var='muc#roomconfig_persistentroom'><value>1</value></field></x>")


async def logged_in(port: int, user: str, password: str) -> RawClient:
    client = await RawClient().connect(port)
    answer = await client.login("SCRAM-SHA-256", user, password,
                                f"<bind xmlns='{NS_BIND2}'><tag>durability</tag></bind>")
    assert answer.name == "success", answer
    return client


async def iq(client: RawClient, xml: str, id_: str) -> None:
    client.send(xml)
    while True:
        el = await client.next()
        if el.name == "iq" and el.get("id") == id_:
            assert el.get("type") == "result", el
            return


async def reply(client: RawClient, id_: str) -> Element:
    while True:
        el = await client.next()
        if el.name == "iq" and el.get("id") == id_:
            assert el.get("type") == "result", el
            return el


def start(config: Path) -> subprocess.Popen[str]:
    log = (config.parent / "server.log").open("a")  # read when a test fails
    proc = subprocess.Popen([*TERCET, "-c", str(config), "start"], stdout=subprocess.DEVNULL,
                            stderr=log, text=True)
    log.close()
    wait_port(tls_port(config))
    return proc


def test_acknowledged_work_survives_kill_9(tmp_path: Path) -> None:
    config = init_site(tmp_path / "site", HOST_MODULES)
    for user in ("romeo", "juliet"):
        assert tercet(config, "user", "add", f"{user}@localhost", "--password",
                      "old secret").returncode == 0
    port = tls_port(config)
    proc = start(config)
    try:
        async def work() -> None:
            romeo = await logged_in(port, "romeo", "old secret")
            romeo.send(f"<enable xmlns='{NS_SM}'/>")
            assert (await romeo.next_named("enabled")).get("id") is None  # no resumption
            await iq(romeo, "<iq type='set' id='r1'><query xmlns='jabber:iq:roster'>"
                     "<item jid='juliet@localhost' name='Juliet'/></query></iq>", "r1")
            romeo.send("<message to='juliet@localhost' type='chat' id='m1'>"
                       "<body>kept through kill -9</body></message>")
            await iq(romeo, "<iq type='set' id='p1' to='localhost'>"
                     "<query xmlns='jabber:iq:register'><username>romeo</username>"
                     "<password>new secret</password></query></iq>", "p1")
            await iq(romeo, f"<iq type='set' id='pep'><pubsub xmlns='{NS_PUBSUB}'>"
                     "<publish node='urn:example:kept'><item id='current'>"
                     "<note xmlns='urn:example:kept'>a PEP item</note></item></publish>"
                     "</pubsub></iq>", "pep")
            romeo.send(f"<presence to='{ROOM}/romeo'>"
                       "<x xmlns='http://jabber.org/protocol/muc'/></presence>")
            await iq(romeo, f"<iq type='set' id='cfg' to='{ROOM}'><query xmlns="
                     f"'http://jabber.org/protocol/muc#owner'>{ROOM_CONFIG}</query></iq>", "cfg")
            await iq(romeo, f"<iq type='set' id='aff' to='{ROOM}'><query xmlns='{NS_MUC_ADMIN}'>"
                     "<item affiliation='member' jid='juliet@localhost'/></query></iq>", "aff")
            await iq(romeo, "<iq type='get' id='ping' to='localhost'>"
                     "<ping xmlns='urn:xmpp:ping'/></iq>", "ping")
            romeo.send(f"<r xmlns='{NS_SM}'/>")
            assert int((await romeo.next_named("a")).get("h") or 0) >= 7
        run(work())
    finally:
        proc.kill()  # SIGKILL: no shutdown, no flush, no stream close
        proc.wait(30)
    admin_socket(config).unlink(missing_ok=True)
    proc = start(config)
    try:
        async def check() -> None:
            juliet = await logged_in(port, "juliet", "old secret")
            juliet.send("<presence/>")
            msg = await juliet.next_named("message")
            assert msg.child_text("body") == "kept through kill -9"
            client = await RawClient().connect(port)
            assert (await client.login("SCRAM-SHA-256", "romeo", "old secret")).name \
                == "failure"
            romeo = await logged_in(port, "romeo", "new secret")
            romeo.send("<iq type='get' id='rg'><query xmlns='jabber:iq:roster'/></iq>")
            roster = await romeo.next_named("iq")
            items = [i.get("jid") for i in roster.find("query", "jabber:iq:roster")
                     .find_all("item")]  # type: ignore[union-attr]
            assert items == ["juliet@localhost"]
            romeo.send(f"<iq type='set' id='q'><query xmlns='{NS_MAM}' queryid='q'/></iq>")
            archived = await romeo.next_named("message")
            result = archived.find("result", NS_MAM)
            assert result is not None and "kept through kill -9" in str(result)
            romeo.send(f"<iq type='get' id='pg'><pubsub xmlns='{NS_PUBSUB}'>"
                       "<items node='urn:example:kept'/></pubsub></iq>")
            assert "a PEP item" in str(await reply(romeo, "pg"))
            romeo.send(f"<iq type='get' id='al' to='{ROOM}'><query xmlns='{NS_MUC_ADMIN}'>"
                       "<item affiliation='member'/></query></iq>")
            assert "juliet@localhost" in str(await reply(romeo, "al"))
        run(check())
    finally:
        proc.terminate()
        proc.wait(30)
