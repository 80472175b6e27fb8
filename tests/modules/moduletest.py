"""Module tests without sockets: XML in, XML out, through the real router and modules.

    async with ModuleTestServer(config_text) as srv:
        romeo = await srv.connect("romeo@localhost/orchard")
        await romeo.send("<iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>")
        reply = romeo.expect("iq")

Sessions are real C2SSession objects bound the way mod_bind binds them; their connection
records what the server writes instead of sending it.
"""

from __future__ import annotations

import inspect
import tempfile
from pathlib import Path
from typing import Any

from tercet.app import build_server
from tercet.core.config import Config
from tercet.core.session import C2SSession
from tercet.protocol.errors import StreamError
from tercet.protocol.stanza import NS_STANZAS, Element
from tercet.protocol.xmlstream import StanzaReceived, StreamReader, parse_fragment

BASE = """
c2s_ports = []
c2s_direct_tls_ports = []
storage = "memory"
log = "warning"
admin_socket = "{sock}"
{extra}

[virtualhosts."localhost"]
{host_extra}
"""

HEADER = (b"<stream:stream xmlns='jabber:client' "
          b"xmlns:stream='http://etherx.jabber.org/streams'>")


def condition(reply: Element) -> str | None:
    """The RFC 6120 condition of an error reply, or None when it is not an error."""
    error = reply.find("error")
    if error is None:
        return None
    return next((c.name for c in error.elements() if c.xmlns == NS_STANZAS), None)


class FakeConnection:
    """Collects what the server writes to one client."""

    def __init__(self) -> None:
        self.reader = StreamReader(max_stanza_size=16 * 1024 * 1024, content_ns=None)
        self.reader.feed(HEADER)
        self.stanzas: list[Element] = []
        self.closed_with: StreamError | None | bool = False

    @property
    def peer(self) -> str:
        return "127.0.0.1"

    @property
    def secure(self) -> bool:
        return True

    def write(self, data: bytes) -> None:
        for event in self.reader.feed(data):
            if isinstance(event, StanzaReceived):
                self.stanzas.append(event.element)

    def close_stream(self, error: StreamError | None = None) -> None:
        self.closed_with = error

    # Negotiation already happened: these sessions start out secure and bound.
    async def start_tls(self) -> None:
        raise AssertionError("module tests' sessions are already encrypted")

    def restart_stream(self) -> None:
        raise AssertionError("module tests' sessions are already past negotiation")

    def authenticated(self) -> None:
        pass


class TestClient:
    __test__ = False  # a helper, not a test class for pytest to collect
    def __init__(self, server: ModuleTestServer, session: C2SSession,
                 conn: FakeConnection) -> None:
        self.server = server
        self.session = session
        self.conn = conn

    @property
    def jid(self) -> str:
        assert self.session.full_jid is not None
        return self.session.full_jid

    @property
    def bare(self) -> str:
        assert self.session.bare_jid is not None
        return self.session.bare_jid

    async def send(self, xml: str | Element) -> Any:
        """Route a stanza as if this client sent it; waits for async handlers."""
        el = parse_fragment(xml) if isinstance(xml, str) else xml
        if el.get("from") is None:
            el.set("from", self.jid)
        result = self.server.server.router.route(self.session, el)
        if inspect.isawaitable(result):
            result = await result
        return result

    def received(self) -> list[Element]:
        """Everything received since the last call (and forget it)."""
        out, self.conn.stanzas = self.conn.stanzas, []
        return out

    def expect(self, name: str | None = None, **attrs: str) -> Element:
        """Pop the first received stanza (optionally checking its name and attributes)."""
        assert self.conn.stanzas, f"{self.jid} received nothing"
        el = self.conn.stanzas.pop(0)
        if name is not None:
            assert el.name == name, f"expected <{name}>, got {el}"
        for key, value in attrs.items():
            key = key.rstrip("_")
            assert el.get(key) == value, f"expected {key}={value!r} in {el}"
        return el

    def nothing(self) -> None:
        assert not self.conn.stanzas, f"unexpected: {self.conn.stanzas}"

    async def disconnect(self) -> None:
        self.session.close()
        self.server.server.session_closed(self.session)


class ModuleTestServer:
    """A started Server on memory storage with no listeners."""

    def __init__(self, extra: str = "", host_extra: str = "") -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="tercet-mt-")
        path = Path(self._tmp.name)
        text = BASE.format(extra=extra, host_extra=host_extra, sock=path / "admin.sock")
        (path / "tercet.toml").write_text(text)
        self.server = build_server(Config.load(path / "tercet.toml"))

    async def __aenter__(self) -> ModuleTestServer:
        await self.server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.server.stop()
        self._tmp.cleanup()

    async def create_user(self, username: str, password: str = "password",
                          host: str = "localhost") -> None:
        auth = self.server.hosts[host].auth
        assert auth is not None
        await auth.create_user(username, password)

    async def connect(self, jid: str, *, create: bool = True) -> TestClient:
        """A bound session for ``user@host/resource`` (the account is created if needed)."""
        user, _, rest = jid.partition("@")
        host_name, _, resource = rest.partition("/")
        host = self.server.hosts[host_name]
        if create and host.auth is not None and not await host.auth.user_exists(user):
            await host.auth.create_user(user, "password")
        conn = FakeConnection()
        session = C2SSession(host, conn)
        session.username = user
        session.authenticated = True
        session.resource = resource or "res"
        session.bare_jid = f"{user}@{host_name}"
        session.full_jid = f"{session.bare_jid}/{session.resource}"
        session.bound = True
        host.add_session(session)
        result = host.events.fire("resource-bind", session)
        if inspect.isawaitable(result):
            await result
        return TestClient(self, session, conn)
