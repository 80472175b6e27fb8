"""A small raw XMPP client for SASL2 (XEP-0388), Bind2 (XEP-0386) and FAST (XEP-0484)
tests: slixmpp speaks none of them. Direct TLS (XEP-0368), our sans-I/O stream parser and
the client SCRAM mechanisms of tercet.protocol.sasl."""

from __future__ import annotations

import asyncio
import base64
import ssl
import uuid
from collections import deque

from tercet.core.certs import tls_server_end_point
from tercet.protocol.sasl import client_mechanism
from tercet.protocol.sasl.ht import ht_client_initial, ht_responder
from tercet.protocol.stanza import Element
from tercet.protocol.xmlstream import StanzaReceived, StreamReader

NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_SASL2 = "urn:xmpp:sasl:2"
NS_BIND2 = "urn:xmpp:bind:0"
NS_FAST = "urn:xmpp:fast:0"
HEADER = ("<?xml version='1.0'?><stream:stream to='localhost' version='1.0' "
          "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
TIMEOUT = 10


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode() if data else "="


class RawClient:
    """One direct-TLS client stream; ``features`` holds the first <stream:features/>."""

    def __init__(self) -> None:
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.parser = StreamReader(1 << 20)
        self.pending: deque[Element] = deque()
        self.features = Element("features")
        self.ua_id = str(uuid.uuid4())

    async def connect(self, port: int, source: str | None = None) -> RawClient:
        """Direct TLS to 127.0.0.1:``port``, from the loopback address ``source``."""
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.reader, self.writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, server_hostname="localhost",
            local_addr=(source, 0) if source else None)
        self.send(HEADER)
        self.features = await self.next()
        return self

    def send(self, xml: str) -> None:
        assert self.writer is not None
        self.writer.write(xml.encode())

    async def next(self) -> Element:
        """The next top-level element from the server (EOF raises ``EOFError``)."""
        assert self.reader is not None
        while not self.pending:
            data = await asyncio.wait_for(self.reader.read(65536), TIMEOUT)
            if not data:
                raise EOFError("the server closed the connection")
            for event in self.parser.feed(data):
                if isinstance(event, StanzaReceived):
                    self.pending.append(event.element)
        return self.pending.popleft()

    async def next_named(self, name: str) -> Element:
        while True:
            el = await self.next()
            if el.name == name:
                return el

    def channel_binding(self) -> tuple[str, bytes]:
        assert self.writer is not None
        sslobj = self.writer.get_extra_info("ssl_object")
        return "tls-server-end-point", tls_server_end_point(sslobj.getpeercert(True))

    def mechanisms(self) -> list[str]:
        auth = self.features.find("authentication", NS_SASL2)
        assert auth is not None, "no SASL2 feature"
        return [m.text for m in auth.find_all("mechanism", NS_SASL2)]

    def authenticate(self, mechanism: str, initial: bytes | None, inner: str = "") -> None:
        ir = f"<initial-response>{b64(initial)}</initial-response>" if initial is not None \
            else ""
        self.send(f"<authenticate xmlns='{NS_SASL2}' mechanism='{mechanism}'>{ir}"
                  f"<user-agent id='{self.ua_id}'><software>tests</software>"
                  f"<device>pytest</device></user-agent>{inner}</authenticate>")

    async def login(self, mechanism: str, username: str, password: str,
                    inner: str = "") -> Element:
        """A SASL2 SCRAM/PLAIN exchange: the <success/> or <failure/> element."""
        cb = self.channel_binding() if mechanism.endswith("-PLUS") else None
        mech = client_mechanism(mechanism, username, password, cb)
        self.authenticate(mechanism, mech.start(), inner)
        while True:
            el = await self.next()
            if el.name == "challenge":
                response = mech.step(base64.b64decode(el.text))
                self.send(f"<response xmlns='{NS_SASL2}'>{b64(response)}</response>")
                continue
            if el.name == "success":
                extra = el.child_text("additional-data", NS_SASL2)
                assert mech.verify(base64.b64decode(extra) if extra else None)
            return el

    async def plain_login(self, username: str, password: str) -> Element:
        """An RFC 6120 SASL PLAIN exchange: the <success/> or <failure/> element."""
        initial = b64(f"\0{username}\0{password}".encode())
        self.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{initial}</auth>")
        return await self.next()

    async def fast_login(self, mechanism: str, username: str, token: str,
                         inner: str = "") -> Element:
        """A one-round-trip FAST login (XEP-0484) with ``token``: <success/> or <failure/>."""
        cb = b"" if mechanism.endswith("-NONE") else self.channel_binding()[1]
        self.authenticate(mechanism, ht_client_initial(username, token.encode(), cb), inner)
        el = await self.next()
        if el.name == "success":
            extra = el.child_text("additional-data", NS_SASL2) or ""
            assert base64.b64decode(extra) == ht_responder(token.encode(), cb)
        return el

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except (ssl.SSLError, ConnectionError):
                pass
