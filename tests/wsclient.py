"""A small XMPP-over-WebSocket client (RFC 7395) for tests, on aiohttp's client.

It speaks the framing and SASL itself (SCRAM and PLAIN from tercet.protocol.sasl, the
client side tested against the server side in tests/protocol/test_sasl.py), so tests can
drive every step and every error path of a WebSocket stream.
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

import aiohttp

from tercet.protocol.framing import NS_FRAMING
from tercet.protocol.sasl import client_mechanism
from tercet.protocol.stanza import Element
from tercet.protocol.xmlstream import NS_STREAM, parse_fragment

NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
TIMEOUT = 10


def open_xml(to: str = "localhost") -> str:
    return f"<open xmlns='{NS_FRAMING}' to='{to}' version='1.0'/>"


class WSClient:
    """One WebSocket; ``recv()`` parses each text message as one element."""

    def __init__(self, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse
                 ) -> None:
        self.http = http
        self.ws = ws
        self.raw: list[str] = []  # every text message received, as sent

    @classmethod
    async def connect(cls, url: str, **kw: Any) -> WSClient:
        http = aiohttp.ClientSession()
        try:
            ws = await http.ws_connect(url, protocols=("xmpp",), **kw)
        except BaseException:
            await http.close()
            raise
        return cls(http, ws)

    async def send(self, xml: str) -> None:
        await self.ws.send_str(xml)

    async def recv_text(self) -> str:
        msg = await self.ws.receive(timeout=TIMEOUT)
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise EOFError(f"websocket {msg.type.name}: {msg.data!r}")
        self.raw.append(msg.data)
        return str(msg.data)

    async def recv(self) -> Element:
        return parse_fragment(await self.recv_text())

    async def until_closed(self) -> aiohttp.WSMessage:
        """Read to the WebSocket close, returning the close message."""
        while True:
            msg = await self.ws.receive(timeout=TIMEOUT)
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.raw.append(msg.data)
                continue
            return msg

    async def open(self, to: str = "localhost") -> Element:
        """Send <open/>; return the stream features after the server's <open/>."""
        await self.send(open_xml(to))
        opened = await self.recv()
        assert (opened.name, opened.xmlns) == ("open", NS_FRAMING), opened
        features = await self.recv()
        assert (features.name, features.xmlns) == ("features", NS_STREAM), features
        return features

    async def authenticate(self, user: str, password: str, mech: str = "SCRAM-SHA-1") -> None:
        client = client_mechanism(mech, user, password)
        initial = base64.b64encode(client.start()).decode() or "="
        await self.send(f"<auth xmlns='{NS_SASL}' mechanism='{mech}'>{initial}</auth>")
        while True:
            reply = await self.recv()
            data = base64.b64decode(reply.text or "")
            if reply.name == "challenge":
                response = base64.b64encode(client.step(data)).decode()
                await self.send(f"<response xmlns='{NS_SASL}'>{response}</response>")
            elif reply.name == "success":
                assert client.verify(data or None)
                return
            else:
                raise AssertionError(f"SASL failed: {reply}")

    async def login(self, user: str, password: str, mech: str = "SCRAM-SHA-1",
                    resource: str = "ws") -> str:
        """Open, authenticate, restart, bind; returns the full JID."""
        await self.open()
        await self.authenticate(user, password, mech)
        features = await self.open()
        assert features.find("bind", NS_BIND) is not None
        iq_id = secrets.token_hex(4)
        await self.send(f"<iq xmlns='jabber:client' type='set' id='{iq_id}'>"
                        f"<bind xmlns='{NS_BIND}'><resource>{resource}</resource></bind></iq>")
        reply = await self.recv()
        assert reply.attrs.get("type") == "result", reply
        bind = reply.find("bind", NS_BIND)
        assert bind is not None
        jid = bind.find("jid", NS_BIND)
        assert jid is not None
        return jid.text

    async def close(self) -> None:
        await self.ws.close()
        await self.http.close()
