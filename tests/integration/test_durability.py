"""What the server acknowledged survives `kill -9`, with SQLite on its default settings
(WAL, synchronous=normal): an offline message, a roster change and a password change once
a ping came back after them, and archive entries once a stream management <a/> came back
(the archive is written in the background; the acknowledgement waits for it).

The server runs as operators run it (`tercet start` in its own process); the client is
a raw stream over direct TLS (SASL2 with Bind2 inline, so one round trip logs in)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from helpers import run
from procsite import TERCET, admin_socket, init_site, tercet, tls_port, wait_port
from sasl2client import NS_BIND2, RawClient

NS_SM = "urn:xmpp:sm:3"
NS_MAM = "urn:xmpp:mam:2"
HOST_MODULES = 'modules_enabled = ["sasl2", "bind2", "mam"]'


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


def start(config: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([*TERCET, "-c", str(config), "start"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
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
            await iq(romeo, "<iq type='get' id='ping' to='localhost'>"
                     "<ping xmlns='urn:xmpp:ping'/></iq>", "ping")
            romeo.send(f"<r xmlns='{NS_SM}'/>")
            assert int((await romeo.next_named("a")).get("h") or 0) >= 4
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
        run(check())
    finally:
        proc.terminate()
        proc.wait(30)
