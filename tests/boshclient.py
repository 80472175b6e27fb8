"""A small BOSH client (XEP-0124, XEP-0206) for tests, on aiohttp's client.

It writes every ``<body/>`` itself and does SASL with tercet.protocol.sasl's client
mechanisms (as tests/wsclient.py does), so tests can drive each request, repeat one, or
send a broken one, and read every attribute of the answers.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections import deque
from dataclasses import dataclass
from typing import Any

import aiohttp

from tercet.protocol.bosh import NS_HTTPBIND, NS_XBOSH
from tercet.protocol.sasl import client_mechanism
from tercet.protocol.stanza import Element, escape_attr
from tercet.protocol.xmlstream import NS_STREAM, parse_fragment

NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
TIMEOUT = aiohttp.ClientTimeout(total=30)


@dataclass
class Answer:
    """One HTTP response: status, Content-Type, raw bytes and the parsed body."""

    status: int
    content_type: str
    raw: bytes
    headers: Any

    @property
    def body(self) -> Element:
        return parse_fragment(self.raw)

    @property
    def payloads(self) -> list[Element]:
        return list(self.body.elements())


def body_xml(payloads: str = "", **attrs: str) -> str:
    """A request body; attribute names with ``xmpp_`` mean the urn:xmpp:xbosh ones."""
    parts = [f"<body xmlns='{NS_HTTPBIND}' xmlns:xmpp='{NS_XBOSH}'"]
    for key, value in attrs.items():
        parts.append(f" {_attr_name(key)}='{escape_attr(value)}'")
    return "".join(parts) + (f">{payloads}</body>" if payloads else "/>")


def _attr_name(key: str) -> str:
    if key.startswith("xmpp_"):
        return "xmpp:" + key[len("xmpp_"):]
    return "xml:lang" if key == "xml_lang" else key


class BoshClient:
    """One BOSH session; ``send`` is one request with the next rid."""

    def __init__(self, url: str, http: aiohttp.ClientSession, ssl: Any = None) -> None:
        self.url = url
        self.http = http
        self.ssl = ssl
        self.rid = secrets.randbelow(2 ** 40) + 2 ** 20  # §14.1: large and random
        self.sid: str | None = None
        self.inbox: deque[Element] = deque()
        self.created: Element | None = None
        self.outstanding: asyncio.Future[Answer] | None = None  # the held request

    @classmethod
    def new(cls, url: str, ssl: Any = None) -> BoshClient:
        return cls(url, aiohttp.ClientSession(timeout=TIMEOUT), ssl)

    async def close(self) -> None:
        if self.outstanding is not None:
            self.outstanding.cancel()
        await self.http.close()

    async def post(self, data: str | bytes, headers: dict[str, str] | None = None) -> Answer:
        raw = data.encode() if isinstance(data, str) else data
        hdrs = {"Content-Type": "text/xml; charset=utf-8", **(headers or {})}
        async with self.http.post(self.url, data=raw, headers=hdrs, ssl=self.ssl) as resp:
            return Answer(resp.status, resp.headers.get("Content-Type", ""),
                          await resp.read(), resp.headers)

    def next_body(self, payloads: str = "", at_rid: int | None = None,
                  attrs: dict[str, str] | None = None) -> str:
        """A request with the next rid (or ``at_rid``) and this session's sid."""
        attrs = dict(attrs or {})
        rid = at_rid
        if rid is None:
            self.rid += 1
            rid = self.rid
        if self.sid is not None and "sid" not in attrs:
            attrs["sid"] = self.sid
        return body_xml(payloads, rid=str(rid), **attrs)

    async def exchange(self, payloads: str = "", **attrs: str) -> Answer:
        """One request with the next rid, awaited; its payloads go to the inbox."""
        answer = await self.post(self.next_body(payloads, attrs=attrs))
        self._take(answer)
        return answer

    def _take(self, answer: Answer) -> None:
        if answer.status == 200 and answer.raw:
            self.inbox.extend(answer.payloads)

    async def send(self, payloads: str = "", **attrs: str) -> None:
        """Send as a browser client does: the new request takes over the long poll, so
        the one held before it comes back (XEP-0124 §4), into the inbox."""
        before = self.outstanding
        self.outstanding = asyncio.ensure_future(self.post(self.next_body(payloads, attrs=attrs)))
        if before is not None:
            self._take(await before)

    async def create(self, to: str = "localhost", **attrs: str) -> Answer:
        """The session creation request (XEP-0124 §7.1, XEP-0206 §3)."""
        params = {"to": to, "wait": "30", "hold": "1", "ver": "1.6", "xml_lang": "en",
                  "xmpp_version": "1.0", **attrs}
        answer = await self.exchange(**params)
        body = answer.body
        self.created = body
        self.sid = body.attrs.get("sid")
        return answer

    async def recv(self) -> Element:
        """The next payload, long-polling with empty requests until there is one."""
        while not self.inbox:
            if self.outstanding is None:
                self.outstanding = asyncio.ensure_future(self.post(self.next_body()))
            answer = await self.outstanding
            self.outstanding = None
            self._take(answer)
            if answer.body.attrs.get("type") == "terminate":
                raise EOFError(f"terminated: {answer.raw!r}")
        return self.inbox.popleft()

    async def recv_named(self, name: str) -> Element:
        while (got := await self.recv()).name != name:
            pass
        return got

    async def features(self) -> Element:
        got = await self.recv()
        assert (got.name, got.xmlns) == ("features", NS_STREAM), got
        return got

    async def authenticate(self, user: str, password: str, mech: str = "SCRAM-SHA-1") -> None:
        client = client_mechanism(mech, user, password)
        initial = base64.b64encode(client.start()).decode() or "="
        self.inbox.clear()
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

    async def restart(self, to: str | None = "localhost") -> Element:
        """XEP-0206 §5: the restart request after SASL success; returns the features."""
        attrs = {"xml_lang": "en", "xmpp_restart": "true"}
        if to is not None:
            attrs["to"] = to
        await self.send(**attrs)
        return await self.features()

    async def bind(self, resource: str) -> str:
        iq_id = secrets.token_hex(4)
        await self.send(f"<iq xmlns='jabber:client' type='set' id='{iq_id}'><bind "
                        f"xmlns='{NS_BIND}'><resource>{resource}</resource></bind></iq>")
        reply = await self.recv_named("iq")
        assert reply.attrs.get("type") == "result", reply
        bind = reply.find("bind", NS_BIND)
        assert bind is not None
        jid = bind.find("jid", NS_BIND)
        assert jid is not None
        return jid.text

    async def login(self, user: str, password: str, mech: str = "SCRAM-SHA-1",
                    resource: str = "bosh", **attrs: str) -> str:
        """Create, authenticate, restart, bind; returns the full JID."""
        answer = await self.create(**attrs)
        if not any(p.name == "features" for p in answer.payloads):
            await self.features()
        self.inbox.clear()
        await self.authenticate(user, password, mech)
        features = await self.restart()
        assert features.find("bind", NS_BIND) is not None
        return await self.bind(resource)
