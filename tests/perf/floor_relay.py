"""The reference relay of the delivery smoke (test_delivery_smoke.py): the physical floor
of one delivery on this machine, in the same job.

It speaks just enough XMPP for a client to log in (canned stream features, any SASL PLAIN
accepted, a canned resource binding), then pairs account ``u<2k>`` with ``u<2k+1>`` and
copies raw bytes from one to the other without parsing them. Plaintext on purpose: what
it costs per delivery is the event loop and the socket calls, the part no server avoids.

Run as a script in its own process (so its CPU time can be read like the server's):
``python floor_relay.py`` listens on 127.0.0.1, an OS-picked port, and prints the port
on one line. It runs until SIGTERM (or stdin closes).
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import signal
import sys
from typing import cast

#: Bytes a client may send before its login is complete (a few hundred in practice).
LOGIN_BUFFER_LIMIT = 16 * 1024
#: Clients, so pairing state stays bounded.
MAX_CONNECTIONS = 1024

HEADER = (b"<?xml version='1.0'?><stream:stream from='localhost' id='floor' version='1.0' "
          b"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
AUTH_FEATURES = (b"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                 b"<mechanism>PLAIN</mechanism></mechanisms></stream:features>")
BIND_FEATURES = (b"<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
                 b"</stream:features>")
SUCCESS = b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"
AUTH_RE = re.compile(rb"<auth[^>]*>([A-Za-z0-9+/=]*)</auth>")
IQ_ID_RE = re.compile(rb"<iq[^>]*\sid=['\"]([^'\"]*)['\"]")
HEADER_RE = re.compile(rb"<stream:stream[^>]*>")


class Relay:
    """Logged-in connections by account name, waiting for (or joined to) their peer."""

    def __init__(self) -> None:
        self.online: dict[str, RelayConnection] = {}

    def peer_name(self, name: str) -> str:
        number = int(name.removeprefix("u"))
        return f"u{number ^ 1}"

    def joined(self, conn: RelayConnection) -> None:
        self.online[conn.name] = conn
        peer = self.online.get(self.peer_name(conn.name))
        if peer is not None:
            conn.peer, peer.peer = peer, conn
            conn.forward_pending()
            peer.forward_pending()

    def left(self, conn: RelayConnection) -> None:
        if self.online.get(conn.name) is conn:
            del self.online[conn.name]
        if conn.peer is not None:
            conn.peer.peer = None


class RelayConnection(asyncio.Protocol):
    """One client: four login steps on a small buffer, then raw forwarding to the peer."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.step = 0  # 0 header, 1 auth, 2 header again, 3 bind, 4 forwarding
        self.name = ""
        self.peer: RelayConnection | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are look-alikes of asyncio.Transport, not subclasses.
        self.transport = cast(asyncio.Transport, transport)
        if len(self.relay.online) >= MAX_CONNECTIONS:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.step == 4:
            self.forward(data)
            return
        self.buffer += data
        if len(self.buffer) > LOGIN_BUFFER_LIMIT:
            self.close()
            return
        while self.step < 4 and self.login_step():
            pass

    def login_step(self) -> bool:
        """Answer the next login step if its bytes are all here; False when waiting."""
        assert self.transport is not None
        if self.step in (0, 2):
            header = HEADER_RE.search(self.buffer)
            if header is None:
                return False
            self.transport.write(HEADER + (AUTH_FEATURES if self.step == 0 else BIND_FEATURES))
            consumed = header.end()
        elif self.step == 1:
            auth = AUTH_RE.search(self.buffer)
            if auth is None:
                return False
            # RFC 4616 §2: [authzid] NUL authcid NUL passwd; every password is accepted.
            self.name = base64.b64decode(auth.group(1)).split(b"\0")[1].decode()
            self.transport.write(SUCCESS)
            consumed = auth.end()
        else:
            end = self.buffer.find(b"</iq>")
            iq_id = IQ_ID_RE.search(self.buffer)
            if end < 0 or iq_id is None:
                return False
            jid = f"{self.name}@localhost/floor".encode()
            self.transport.write(b"<iq type='result' id='" + iq_id.group(1) + b"'><bind "
                                 b"xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>" + jid
                                 + b"</jid></bind></iq>")
            consumed = end + len(b"</iq>")
        self.buffer = self.buffer[consumed:]
        self.step += 1
        if self.step == 4:
            self.relay.joined(self)
        return True

    def forward_pending(self) -> None:
        if self.buffer:
            data, self.buffer = self.buffer, b""
            self.forward(data)

    def forward(self, data: bytes) -> None:
        if self.peer is None or self.peer.transport is None:
            # Not paired (yet, or any more): hold a bounded amount, else drop the client.
            self.buffer += data
            if len(self.buffer) > LOGIN_BUFFER_LIMIT:
                self.close()
            return
        self.peer.transport.write(data)

    # Backpressure: while the peer's socket is full, stop reading what would go to it.
    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.relay.left(self)


async def serve() -> None:
    loop = asyncio.get_running_loop()
    relay = Relay()
    server = await loop.create_server(lambda: RelayConnection(relay), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    # The test holds our stdin open: if it dies without stopping us, EOF stops us.
    stdin = sys.stdin.fileno()
    loop.add_reader(stdin, lambda: None if os.read(stdin, 64) else stop.set())
    await stop.wait()
    server.close()


def main() -> None:
    # The same event loop as the server's when it is installed (Tercet runs on uvloop),
    # so the floor and the server pay the same loop overhead.
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve())
    else:
        uvloop.run(serve())


if __name__ == "__main__":
    main()
