"""slixmpp clients for integration tests (a real client library over real TLS)."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import slixmpp

TIMEOUT = 15
# Upper bound on closing a stream; a close normally completes in milliseconds.
DISCONNECT_TIMEOUT = 5.0


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
        # Close the stream before the test's event loop goes away, so the server is not
        # left holding a half-open session until its own timeout.
        await close(client)
        raise
    return client


async def available(*clients: Client, **presence: Any) -> None:
    """Send each client's presence and wait until the server has processed it: RFC 6121
    §4.2.2 has the server broadcast it to the account's available resources, the sender
    included. Other presences received meanwhile are dropped from ``client.presences``."""
    for client in clients:
        client.send_presence(**presence)
    for client in clients:
        while True:
            stanza = await asyncio.wait_for(client.presences.get(), TIMEOUT)
            if stanza["from"] == client.boundjid and stanza["type"] != "unavailable":
                break


async def close(client: Client, timeout: float = DISCONNECT_TIMEOUT) -> None:
    """Close ``client``'s stream and return once its connection is gone.

    slixmpp resolves ``client.disconnected`` from ``connection_lost`` and then replaces it
    with a fresh future for the next connection, so the future must be taken *before* the
    connection can go: a future read after the close never resolves. ``disconnect(wait=)``
    sends ``</stream:stream>`` and normally completes when the server closes its side; if
    the server never answers, slixmpp aborts the transport after ``timeout`` (the safety
    net), which also resolves the future, and the test fails: that is a server bug.
    Already disconnected clients return at once.
    """
    loop = asyncio.get_running_loop()
    start = loop.time()
    gone = client.disconnected
    client.cancel_connection_attempt()  # login() may give up before the socket is up
    client.disconnect(wait=timeout)
    try:
        await asyncio.wait_for(gone, timeout + 1)
    except TimeoutError:
        raise AssertionError(f"{client.boundjid} did not disconnect") from None
    if loop.time() - start >= timeout:
        raise AssertionError(f"the server did not close {client.boundjid}'s stream; "
                             f"slixmpp aborted the connection after {timeout} s")


async def logout(*clients: Client) -> None:
    """Close every client's stream, side by side; see :func:`close`."""
    await asyncio.gather(*(close(client) for client in clients))
