"""slixmpp clients for servers inside a test namespace.

Run these inside :meth:`netns.Netns.run`: the coroutine then executes in a thread that joined
the namespace, so the clients' sockets are opened there and reach the peers' 127.0.0.x
addresses. Clients connect to the address given (no DNS) and verify the server's certificate
against the test's private CA, for the JID's domain.

    async def main() -> None:
        alice = await login_to(peer, "alice", "secret")
        ...
    ns.run(main())
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any, Protocol

from xmpp import TIMEOUT, Client, close


class Peer(Protocol):
    """What :func:`login_to` needs of a peer server helper (``netns_prosody.Prosody``, ...)."""

    domain: str
    address: str
    c2s_port: int
    cafile: Path


class InteropClient(Client):
    """A :class:`xmpp.Client` that also records the errors bounced to it: slixmpp fires
    ``message_error``, not ``message``, for ``<message type='error'/>``."""

    def __init__(self, jid: str, password: str, **kw: Any) -> None:
        super().__init__(jid, password, **kw)
        self.bounces: asyncio.Queue[Any] = asyncio.Queue()
        self.add_event_handler("message_error", self.bounces.put_nowait)


async def login(jid: str, password: str, address: str, port: int = 5222, *,
                cafile: Path | None = None, **kw: Any) -> InteropClient:
    """Connect to ``address:port``, wait for session_start; PermissionError if auth fails.
    With ``cafile`` the server's certificate must chain to it and name the JID's domain;
    without, it is not checked."""
    client = InteropClient(jid, password, **kw)
    if cafile is not None:
        client.ssl_context = ssl.create_default_context(cafile=str(cafile))
    else:
        client.ssl_context = ssl._create_unverified_context()
    client.use_aiodns = False
    client.use_ipv6 = False
    # With an explicit address slixmpp tries direct TLS (XEP-0368) first, then STARTTLS;
    # peers listen for STARTTLS on their c2s port, so skip the attempt that must fail.
    client.enable_direct_tls = False
    client.connect(address, port)
    try:
        await asyncio.wait_for(client.started, TIMEOUT)
    except BaseException:
        await close(client)
        raise
    return client


async def login_to(peer: Peer, user: str, password: str, **kw: Any) -> InteropClient:
    """Log ``user@<peer's domain>`` in to ``peer``, verifying its certificate."""
    return await login(f"{user}@{peer.domain}", password, peer.address, peer.c2s_port,
                       cafile=peer.cafile, **kw)


async def _next(queue: asyncio.Queue[Any], what: str, timeout: float) -> Any:
    try:
        return await asyncio.wait_for(queue.get(), timeout)
    except TimeoutError:
        raise AssertionError(f"{what} in {timeout} s") from None


async def next_message(client: InteropClient, timeout: float = TIMEOUT) -> Any:
    """The next (non-error) message ``client`` receives; AssertionError after ``timeout``."""
    return await _next(client.messages, f"{client.boundjid} received no message", timeout)


async def next_bounce(client: InteropClient, timeout: float = TIMEOUT) -> Any:
    """The next ``<message type='error'/>`` ``client`` receives."""
    return await _next(client.bounces, f"{client.boundjid} received no error", timeout)
