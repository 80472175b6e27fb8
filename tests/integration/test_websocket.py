"""XMPP over WebSocket (RFC 7395) against a real server: a WebSocket client logging in
with SCRAM and talking to a slixmpp client on TCP, stream management over WebSocket,
and every refusal and error path of the handshake and the framing."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import aiohttp
import pytest
from harness import ServerHarness
from helpers import run
from wsclient import NS_SASL, WSClient, open_xml
from xmpp import available, login, logout

from tercet.protocol.framing import NS_FRAMING
from tercet.protocol.xmlstream import NS_STREAM

PASSWORD = "s3cret"
NS_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams"
NS_SM = "urn:xmpp:sm:3"
HTTP = """
http_ports = [0]
https_ports = [0]
http_interfaces = ["127.0.0.1"]
https_interfaces = ["127.0.0.1"]
{more}
"""
PLAIN_OK = "c2s_require_encryption = false\nallow_unencrypted_plain_auth = true"
MODULES = 'modules_enabled = ["websocket", "smacks", "csi_simple", "carbons"]'


def start(make_server: Any, more: str = PLAIN_OK, host_extra: str = "",
          subdir: str = "srv") -> ServerHarness:
    server: ServerHarness = make_server(extra=HTTP.format(more=more),
                                        host_extra=MODULES + "\n" + host_extra, subdir=subdir)
    server.create_user("romeo", PASSWORD)
    server.create_user("juliet", PASSWORD)
    return server


def ws_url(server: ServerHarness, tls: bool = False, path: str = "/xmpp-websocket") -> str:
    assert server.server is not None
    port = server.server.net.bound()["http/tls" if tls else "http"][0][1]
    return f"{'wss' if tls else 'ws'}://localhost:{port}{path}"


def mechanisms(features: Any) -> list[str]:
    mechs = features.find("mechanisms", NS_SASL)
    return [] if mechs is None else [m.text for m in mechs.find_all("mechanism")]


async def stream_error(client: WSClient) -> str:
    """The condition of the stream error the server sends, after which RFC 7395 §3.6
    wants <close/> and the WebSocket closed."""
    error = await client.recv()
    assert (error.name, error.xmlns) == ("error", NS_STREAM), error
    condition = next(c.name for c in error.find_all() if c.xmlns == NS_STREAMS)
    closing = await client.recv()
    assert (closing.name, closing.xmlns) == ("close", NS_FRAMING)
    msg = await client.until_closed()
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    return condition


def test_scram_login_and_messages_with_a_tcp_client(make_server: Any) -> None:
    server = start(make_server)

    async def main() -> None:
        ws = await WSClient.connect(ws_url(server))
        jid = await ws.login("romeo", PASSWORD, "SCRAM-SHA-256", resource="web")
        assert jid == "romeo@localhost/web"
        juliet = await login("juliet@localhost/balcony", PASSWORD, server.port())
        await ws.send("<presence/>")
        await available(juliet)
        juliet.send_message(mto=jid, mbody="wherefore", mtype="chat")
        while (got := await ws.recv()).name != "message":
            pass
        assert got.xmlns == "jabber:client"  # every message declares its namespace
        assert got.attrs["from"] == "juliet@localhost/balcony"
        assert got.child_text("body") == "wherefore"
        await ws.send("<message to='juliet@localhost/balcony' type='chat'>"
                      "<body>art thou</body></message>")
        reply = await asyncio.wait_for(juliet.messages.get(), 10)
        assert reply["body"] == "art thou" and str(reply["from"]) == jid
        await ws.send(f"<close xmlns='{NS_FRAMING}'/>")
        closing = await ws.recv()
        assert (closing.name, closing.xmlns) == ("close", NS_FRAMING)
        await ws.close()
        await logout(juliet)
    run(main())


def test_plain_http_offers_plain_and_scram_when_allowed(make_server: Any) -> None:
    server = start(make_server)

    async def main() -> None:
        ws = await WSClient.connect(ws_url(server))
        features = await ws.open()
        assert {"PLAIN", "SCRAM-SHA-1"} <= set(mechanisms(features))
        assert features.find("starttls", "urn:ietf:params:xml:ns:xmpp-tls") is None
        await ws.authenticate("romeo", PASSWORD, "PLAIN")
        await ws.close()
    run(main())


def test_plain_http_without_encryption_offers_nothing(make_server: Any) -> None:
    """With c2s_require_encryption (the default) a plain WebSocket cannot authenticate,
    and STARTTLS is never offered on a WebSocket (RFC 7395 §3.8)."""
    server = start(make_server, more="")

    async def main() -> None:
        ws = await WSClient.connect(ws_url(server))
        features = await ws.open()
        assert mechanisms(features) == []
        assert features.find("starttls", "urn:ietf:params:xml:ns:xmpp-tls") is None
        await ws.close()
    run(main())


def test_wss_is_secure(make_server: Any) -> None:
    server = start(make_server, more="")
    ctx = ssl.create_default_context(cafile=str(server.directory / "certs" / "localhost.crt"))

    async def main() -> None:
        ws = await WSClient.connect(ws_url(server, tls=True), ssl=ctx)
        mechs = mechanisms(await ws.open())
        assert "SCRAM-SHA-1" in mechs
        assert "SCRAM-SHA-1-PLUS" in mechs  # tls-server-end-point of the wss connection
        await ws.authenticate("romeo", PASSWORD)
        await ws.close()
    run(main())


def test_secure_behind_a_proxy(make_server: Any) -> None:
    """X-Forwarded-Proto from a trusted proxy, or consider_websocket_secure."""
    server = start(make_server, more="")
    other = start(make_server, more="consider_websocket_secure = true", subdir="other")

    async def main() -> None:
        ws = await WSClient.connect(ws_url(server),
                                    headers={"X-Forwarded-Proto": "https"})
        assert "SCRAM-SHA-1" in mechanisms(await ws.open())
        await ws.close()
        ws = await WSClient.connect(ws_url(other))
        assert "SCRAM-SHA-1" in mechanisms(await ws.open())
        await ws.close()
    run(main())


def test_stream_management_resumes_on_a_new_websocket(make_server: Any) -> None:
    server = start(make_server)

    async def main() -> None:
        ws = await WSClient.connect(ws_url(server))
        await ws.login("romeo", PASSWORD)
        await ws.send(f"<enable xmlns='{NS_SM}' resume='true'/>")
        enabled = await ws.recv()
        assert enabled.name == "enabled" and enabled.attrs.get("resume") == "true"
        await ws.send("<iq type='get' id='r1'><ping xmlns='urn:xmpp:ping'/></iq>")
        assert (await ws.recv()).attrs.get("id") == "r1"
        await ws.ws.close()  # the connection drops without <close/>
        await ws.http.close()

        again = await WSClient.connect(ws_url(server))
        await again.open()
        await again.authenticate("romeo", PASSWORD)
        await again.open()
        await again.send(f"<resume xmlns='{NS_SM}' previd='{enabled.attrs['id']}' h='0'/>")
        resumed = await again.recv()
        assert resumed.name == "resumed", resumed
        # h='0': the reply the old WebSocket may have lost comes again (XEP-0198 §5).
        while (got := await again.recv()).name != "iq":
            pass
        assert got.attrs.get("id") == "r1"
        await again.send("<iq type='get' id='r2'><ping xmlns='urn:xmpp:ping'/></iq>")
        while (got := await again.recv()).name != "iq":
            pass
        assert got.attrs.get("id") == "r2"
        await again.close()
    run(main())


def test_shutdown_closes_websocket_streams(make_server: Any) -> None:
    server = start(make_server)

    async def main() -> None:
        ws = await WSClient.connect(ws_url(server))
        await ws.login("romeo", PASSWORD)
        stopping = asyncio.ensure_future(asyncio.to_thread(server.stop))
        assert await stream_error(ws) == "system-shutdown"
        await stopping
        await ws.close()
    run(main())


def test_handshake_without_the_xmpp_subprotocol(make_server: Any) -> None:
    server = start(make_server)

    async def main() -> None:
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                await http.ws_connect(ws_url(server))
            assert err.value.status == 400
            with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                await http.ws_connect(ws_url(server), protocols=("chat",))
            assert err.value.status == 400
            url = ws_url(server).replace("ws:", "http:")
            async with http.get(url) as resp:  # not an upgrade at all
                assert resp.status == 400
    run(main())


@pytest.mark.parametrize(("messages", "condition"), [
    ([open_xml(), "<presence/><presence/>"], "bad-format"),
    ([open_xml(), "<message><body>"], "bad-format"),
    (["<presence/>"], "bad-format"),  # the stream starts with <open/>
    ([open_xml(), "<presence></message>"], "not-well-formed"),
    ([open_xml("nowhere.example")], "host-unknown"),
    ([f"<open xmlns='{NS_FRAMING}' to='localhost'/>"], "unsupported-version"),
])
def test_framing_and_stream_errors_close(make_server: Any, messages: list[str],
                                         condition: str) -> None:
    server = start(make_server)

    async def main() -> None:
        ws = await WSClient.connect(ws_url(server))
        for i, message in enumerate(messages):
            await ws.send(message)
            if i == 0 and message == open_xml():
                await ws.recv()  # <open/>
                await ws.recv()  # features
        if messages[0] != open_xml():
            opened = await ws.recv()  # the server opens its side before the error
            assert (opened.name, opened.xmlns) == ("open", NS_FRAMING)
        assert await stream_error(ws) == condition
        await ws.close()
    run(main())


def test_only_the_endpoints_own_host(make_server: Any) -> None:
    """websocket is enabled on localhost only: other.test's users are not served there."""
    server = start(make_server, more=PLAIN_OK + '\n[virtualhosts."other.test"]')

    async def main() -> None:
        ws = await WSClient.connect(ws_url(server))
        await ws.send(open_xml("other.test"))
        await ws.recv()  # <open/>
        assert await stream_error(ws) == "host-unknown"
        await ws.close()
    run(main())


def test_oversized_messages(make_server: Any) -> None:
    server = start(make_server, more=PLAIN_OK + "\nc2s_stanza_size_limit = 10000")

    async def main() -> None:
        ws = await WSClient.connect(ws_url(server))
        await ws.open()
        await ws.send(f"<message><body>{'x' * 10000}</body></message>")
        assert await stream_error(ws) == "policy-violation"
        await ws.close()
        # Past twice the limit the WebSocket layer refuses the frame itself.
        ws = await WSClient.connect(ws_url(server))
        await ws.open()
        await ws.send(f"<message><body>{'x' * 25000}</body></message>")
        msg = await ws.until_closed()
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1009
        await ws.close()
    run(main())


def test_binary_frames_are_refused(make_server: Any) -> None:
    server = start(make_server)

    async def main() -> None:
        ws = await WSClient.connect(ws_url(server))
        await ws.open()
        await ws.ws.send_bytes(b"<presence/>")
        msg = await ws.until_closed()
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1003
        await ws.close()
    run(main())


def test_origin_checks(make_server: Any) -> None:
    default = start(make_server)
    listed = start(make_server, more=PLAIN_OK + '\ncross_domain_websocket = '
                   '["https://chat.example"]', subdir="listed")
    anyone = start(make_server, more=PLAIN_OK + "\ncross_domain_websocket = true",
                   subdir="anyone")

    async def status(server: ServerHarness, origin: str) -> int:
        try:
            ws = await WSClient.connect(ws_url(server), origin=origin)
        except aiohttp.WSServerHandshakeError as err:
            return err.status
        await ws.close()
        return 101

    async def main() -> None:
        same = ws_url(default).replace("ws:", "http:").rsplit("/", 1)[0]
        assert await status(default, same) == 101
        assert await status(default, "https://evil.example") == 403
        assert await status(listed, "https://chat.example") == 101
        assert await status(listed, "https://evil.example") == 403
        assert await status(anyone, "https://evil.example") == 101
    run(main())


def test_server_pings(make_server: Any) -> None:
    """WebSocket pings keep the connection alive; a client that never answers is
    disconnected (RFC 6455 §5.5.2)."""
    server = start(make_server, more=PLAIN_OK + "\nwebsocket_ping_interval = 1")

    async def main() -> None:
        ws = await WSClient.connect(ws_url(server), autoping=False)
        await ws.open()
        msg = await ws.ws.receive(timeout=10)
        assert msg.type == aiohttp.WSMsgType.PING
        # No pong: the server gives up on us.
        while msg.type == aiohttp.WSMsgType.PING:
            msg = await ws.ws.receive(timeout=10)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                            aiohttp.WSMsgType.ERROR)
        await ws.close()
    run(main())
