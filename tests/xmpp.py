"""slixmpp clients for integration tests (a real client library over real TLS)."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import slixmpp

TIMEOUT = 15


class Client(slixmpp.ClientXMPP):
    """A ClientXMPP that records what happened, for assertions."""

    def __init__(self, jid: str, password: str, **kw: Any) -> None:
        super().__init__(jid, password, **kw)
        self.started = asyncio.get_event_loop().create_future()
        self.messages: asyncio.Queue[Any] = asyncio.Queue()
        self.presences: asyncio.Queue[Any] = asyncio.Queue()
        self.stream_errors: list[str] = []
        self.add_event_handler("session_start", self._on_start)
        self.add_event_handler("failed_all_auth", self._on_failed)
        self.add_event_handler("failed_auth", self._on_failed_one)
        self.add_event_handler("message", self.messages.put_nowait)
        self.add_event_handler("presence", self.presences.put_nowait)
        self.add_event_handler("stream_error", lambda e: self.stream_errors.append(
            e["condition"]))
        self.auth_failure: Any = None

    def _on_start(self, _event: Any) -> None:
        if not self.started.done():
            self.started.set_result(True)

    def _on_failed_one(self, stanza: Any) -> None:
        self.auth_failure = stanza

    def _on_failed(self, _event: Any) -> None:
        if not self.started.done():
            self.started.set_exception(PermissionError(str(self.auth_failure)))


def make_client(jid: str, password: str, *, mech: str | None = None,
                tls12: bool = False, **kw: Any) -> Client:
    client = Client(jid, password, sasl_mech=mech, **kw)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    client.ssl_context = ctx
    client.use_aiodns = False
    client.use_ipv6 = False
    return client


async def login(jid: str, password: str, port: int, *, mech: str | None = None,
                direct_tls: bool = False, tls12: bool = False,
                plugins: tuple[str, ...] = (), **kw: Any) -> Client:
    """Connect and wait for session_start; raises PermissionError when auth fails."""
    client = make_client(jid, password, mech=mech, tls12=tls12, **kw)
    for plugin in plugins:
        client.register_plugin(plugin)
    if direct_tls:
        # A custom address carries no SRV service name; mark the empty one as direct TLS.
        client.tls_services = {""}
        client.enable_starttls = False
    client.connect("127.0.0.1", port)
    try:
        await asyncio.wait_for(client.started, TIMEOUT)
    except BaseException:
        client.disconnect()
        raise
    return client


async def logout(*clients: Client) -> None:
    for client in clients:
        client.disconnect()
    for client in clients:
        try:
            await asyncio.wait_for(client.disconnected, 5)
        except (asyncio.TimeoutError, AttributeError):
            pass
