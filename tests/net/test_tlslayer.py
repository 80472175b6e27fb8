"""The TLS layer (net/tlslayer.py) over real loopback sockets and real TLS, on asyncio's
loop and on uvloop (the server's default): data both ways across many records, STARTTLS
on an open connection, back-pressure, close_notify, and the handshake bound."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
import uvloop

from tercet.core.certs import generate_self_signed
from tercet.net.tls import TLSManager
from tercet.net.tlslayer import TLSLayer

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.fixture(params=sorted(LOOPS))
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    def runner(coro: Coroutine[Any, Any, Any]) -> Any:
        loop = LOOPS[request.param]()
        try:
            return loop.run_until_complete(asyncio.wait_for(coro, 20))
        finally:
            loop.close()
    return runner


@pytest.fixture(scope="module")
def server_ctx(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    directory = tmp_path_factory.mktemp("certs")
    cert, key = generate_self_signed("localhost", directory)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


def client_ctx() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Echo(asyncio.Protocol):
    """Echoes what it reads; records what happened to it."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.received = bytearray()
        self.lost = asyncio.get_running_loop().create_future()
        self.handshakes: list[BaseException | None] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.received += data
        self.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)

    def handshake_done(self, exc: BaseException | None) -> None:
        self.handshakes.append(exc)


async def serve(factory: Callable[[], asyncio.Protocol]) -> tuple[asyncio.Server, int]:
    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def direct_tls(ctx: ssl.SSLContext, apps: list[Any], timeout: float = 30.0,
               app_type: type[Echo] = Echo) -> Callable[[], asyncio.Protocol]:
    """A factory of TLS layers over ``app_type`` stream protocols, each added to ``apps``."""
    def factory() -> asyncio.Protocol:
        app = app_type()
        apps.append(app)
        return TLSLayer(app, ctx, server_side=True, handshake_timeout=timeout,
                        on_handshake=app.handshake_done)
    return factory


def plain(apps: list[Any], app_type: type[Echo]) -> Callable[[], asyncio.Protocol]:
    """A factory of ``app_type`` stream protocols on plain TCP (for STARTTLS), each
    added to ``apps``."""
    def factory() -> asyncio.Protocol:
        apps.append(app_type())
        return apps[-1]
    return factory


async def open_tls(port: int, limit: int = 2 ** 16) -> tuple[asyncio.StreamReader,
                                                               asyncio.StreamWriter]:
    """A TLS client; a small ``limit`` makes it stop reading early."""
    return await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx(),
                                         server_hostname="localhost", limit=limit)


def test_a_megabyte_crosses_both_ways_and_close_sends_close_notify(
        run: Callable[..., Any], server_ctx: ssl.SSLContext) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB: many records each way

    async def main() -> None:
        apps: list[Echo] = []
        server, port = await serve(direct_tls(server_ctx, apps))
        reader, writer = await open_tls(port)
        writer.write(payload)
        echoed = await reader.readexactly(len(payload))
        assert echoed == payload
        assert apps[0].handshakes == [None]
        assert apps[0].transport.get_extra_info("ssl_object").version() in (
            "TLSv1.2", "TLSv1.3")
        apps[0].transport.close()
        # A clean TLS close: EOF, not a "ragged" end the client's ssl would complain of.
        assert await reader.read() == b""
        assert await apps[0].lost is None
        writer.close()
        server.close()
    run(main())


def test_starttls_upgrades_an_open_connection(
        run: Callable[..., Any], server_ctx: ssl.SSLContext) -> None:
    class Upgrading(Echo):
        layer: TLSLayer | None = None

        def data_received(self, data: bytes) -> None:
            if self.layer is None and data == b"STARTTLS\n":
                self.transport.write(b"PROCEED\n")
                self.layer = TLSLayer.upgrade(self.transport, self, server_ctx,
                                              server_side=True)
                return
            super().data_received(data)

    async def main() -> None:
        apps: list[Upgrading] = []
        server, port = await serve(plain(apps, Upgrading))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"STARTTLS\n")
        assert await reader.readline() == b"PROCEED\n"
        await writer.start_tls(client_ctx(), server_hostname="localhost")
        app = apps[0]
        assert app.layer is not None
        await app.layer.handshake
        app.transport = app.layer
        writer.write(b"over tls")
        assert await reader.readexactly(8) == b"over tls"
        assert bytes(app.received) == b"over tls"
        writer.close()
        server.close()
    run(main())


def test_paused_reading_holds_data_until_resumed(
        run: Callable[..., Any], server_ctx: ssl.SSLContext) -> None:
    class Pausing(Echo):
        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self.transport.pause_reading()

    async def main() -> None:
        apps: list[Echo] = []
        server, port = await serve(direct_tls(server_ctx, apps, app_type=Pausing))
        reader, writer = await open_tls(port)
        writer.write(b"first")
        assert await reader.readexactly(5) == b"first"
        writer.write(b"second")
        await writer.drain()
        await asyncio.sleep(0.3)
        assert bytes(apps[0].received) == b"first"  # paused: nothing more delivered
        apps[0].transport.resume_reading()
        assert await reader.readexactly(6) == b"second"
        assert bytes(apps[0].received) == b"firstsecond"
        writer.close()
        server.close()
    run(main())


def test_a_stalled_handshake_is_cut_off_at_its_bound(
        run: Callable[..., Any], server_ctx: ssl.SSLContext) -> None:
    async def main() -> None:
        apps: list[Echo] = []
        server, port = await serve(direct_tls(server_ctx, apps, timeout=0.3))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        # The stream protocol saw the connection at once, before any handshake ...
        await asyncio.sleep(0.05)
        assert len(apps) == 1 and apps[0].transport is not None and apps[0].handshakes == []
        # ... and the layer drops it when the bound passes without a ClientHello.
        assert await asyncio.wait_for(reader.read(), 5) == b""
        assert len(apps[0].handshakes) == 1
        assert isinstance(apps[0].handshakes[0], TimeoutError)
        await apps[0].lost
        writer.close()
        server.close()
    run(main())


def test_garbage_instead_of_a_client_hello_fails_the_handshake(
        run: Callable[..., Any], server_ctx: ssl.SSLContext) -> None:
    async def main() -> None:
        apps: list[Echo] = []
        server, port = await serve(direct_tls(server_ctx, apps))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"<?xml version='1.0'?><stream:stream to='localhost'>")
        data = await asyncio.wait_for(reader.read(), 5)
        assert b"<" not in data  # at most a TLS alert, never our stream
        assert isinstance(apps[0].handshakes[0], ssl.SSLError)
        writer.close()
        server.close()
    run(main())


def test_writes_before_the_handshake_ends_are_sent_after_it(
        run: Callable[..., Any], server_ctx: ssl.SSLContext) -> None:
    class Greeting(Echo):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            transport.write(b"hello")  # type: ignore[attr-defined]

    async def main() -> None:
        apps: list[Echo] = []
        server, port = await serve(direct_tls(server_ctx, apps, app_type=Greeting))
        reader, writer = await open_tls(port)
        assert await reader.readexactly(5) == b"hello"
        writer.close()
        server.close()
    run(main())


def test_output_the_socket_cannot_take_waits_and_arrives_in_order(
        run: Callable[..., Any], server_ctx: ssl.SSLContext) -> None:
    """A peer that does not read: OpenSSL's send stops part-way, the rest waits in the
    layer (counted by get_write_buffer_size) and leaves, in order, once the peer reads."""
    chunk = bytes(range(256)) * 4096  # 1 MiB

    class Writer(Echo):
        def data_received(self, data: bytes) -> None:
            for _ in range(64):  # 64 MiB: more than both sockets' buffers hold
                self.transport.write(chunk)

    async def main() -> None:
        apps: list[Echo] = []
        server, port = await serve(direct_tls(server_ctx, apps, app_type=Writer))
        reader, writer = await open_tls(port, limit=1024)
        writer.write(b"go")
        await asyncio.sleep(0.3)  # the client reads nothing meanwhile
        waiting = apps[0].transport.get_write_buffer_size()
        assert waiting > 0
        received = await reader.readexactly(64 * len(chunk))
        assert received == chunk * 64
        assert apps[0].transport.get_write_buffer_size() == 0
        writer.close()
        server.close()
    run(main())


def test_close_sends_what_waits_before_close_notify(
        run: Callable[..., Any], server_ctx: ssl.SSLContext) -> None:
    payload = b"x" * (64 << 20)  # more than both sockets' buffers hold

    class Closer(Echo):
        def data_received(self, data: bytes) -> None:
            self.transport.write(payload)
            self.transport.close()

    def blocking_client(port: int, started: threading.Event) -> tuple[int, bool]:
        # A plain blocking client: uvloop's own TLS client loses the last records when
        # close_notify comes while its reader is paused, which is not what is tested.
        with client_ctx().wrap_socket(socket.create_connection(("127.0.0.1", port)),
                                      server_hostname="localhost") as sock:
            sock.sendall(b"go")
            started.wait(5)  # the client reads nothing until the server has closed
            total = 0
            while chunk := sock.recv(1 << 20):
                total += len(chunk)
            return total, True  # recv returned b"": close_notify, not a ragged end

    async def main() -> None:
        apps: list[Echo] = []
        server, port = await serve(direct_tls(server_ctx, apps, app_type=Closer))
        started = threading.Event()
        client = asyncio.ensure_future(asyncio.to_thread(blocking_client, port, started))
        for _ in range(100):
            await asyncio.sleep(0.05)
            if apps and apps[0].transport.is_closing():
                break
        assert apps[0].transport.is_closing()
        assert not apps[0].lost.done()  # still sending
        started.set()
        assert await client == (len(payload), True)
        assert await apps[0].lost is None
        server.close()
    run(main())


def test_a_close_that_cannot_send_is_cut_off_at_its_bound(
        run: Callable[..., Any], server_ctx: ssl.SSLContext,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from tercet.net import tlslayer
    monkeypatch.setattr(tlslayer, "CLOSE_TIMEOUT", 0.3)

    class Closer(Echo):
        def data_received(self, data: bytes) -> None:
            self.transport.write(b"x" * (64 << 20))
            self.transport.close()

    async def main() -> None:
        apps: list[Echo] = []
        server, port = await serve(direct_tls(server_ctx, apps, app_type=Closer))
        reader, writer = await open_tls(port, limit=1024)
        writer.write(b"go")
        # The client never reads: the layer gives up after its bound.
        assert await asyncio.wait_for(apps[0].lost, 5) is None
        writer.close()
        server.close()
    run(main())


def test_an_end_without_close_notify_is_an_end_of_input(
        run: Callable[..., Any], server_ctx: ssl.SSLContext) -> None:
    class Ends(Echo):
        eofs = 0

        def eof_received(self) -> bool | None:
            self.eofs += 1
            return None  # close

    async def main() -> None:
        apps: list[Ends] = []
        server, port = await serve(direct_tls(server_ctx, apps, app_type=Ends))
        reader, writer = await open_tls(port)
        writer.write(b"bye")
        assert await reader.readexactly(3) == b"bye"
        # TCP's end under TLS, with no close_notify (a client that crashed).
        writer.transport.abort()
        assert await asyncio.wait_for(apps[0].lost, 5) is None
        assert apps[0].eofs == 1
        assert bytes(apps[0].received) == b"bye"
        writer.close()
        server.close()
    run(main())


def test_a_close_during_the_handshake_ends_it_with_an_error(
        run: Callable[..., Any], server_ctx: ssl.SSLContext) -> None:
    async def main() -> None:
        apps: list[Echo] = []
        layers: list[TLSLayer] = []

        def factory() -> asyncio.Protocol:
            app = Echo()
            apps.append(app)
            layers.append(TLSLayer(app, server_ctx, server_side=True,
                                   on_handshake=app.handshake_done))
            return layers[-1]
        server, port = await serve(factory)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.sleep(0.05)
        apps[0].transport.close()  # e.g. the per-address cap, before any ClientHello
        with pytest.raises(ConnectionResetError):
            await layers[0].handshake
        assert len(apps[0].handshakes) == 1
        assert isinstance(apps[0].handshakes[0], ConnectionResetError)
        assert await apps[0].lost is None
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        server.close()
    run(main())


def test_starttls_with_output_still_queued_fails_and_ends_the_connection_once(
        run: Callable[..., Any], server_ctx: ssl.SSLContext) -> None:
    """The <proceed/> must have left before TLS takes the socket: with the peer not
    reading and the transport's buffer full, the upgrade fails, and the stream protocol
    hears of the end once."""
    class Stuck(Echo):
        layer: TLSLayer | None = None
        losses = 0

        def data_received(self, data: bytes) -> None:
            self.transport.write(b"x" * (64 << 20))  # more than the sockets hold
            self.layer = TLSLayer.upgrade(self.transport, self, server_ctx,
                                          server_side=True)

        def connection_lost(self, exc: Exception | None) -> None:
            self.losses += 1
            super().connection_lost(exc)

    async def main() -> None:
        apps: list[Stuck] = []
        server, port = await serve(plain(apps, Stuck))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"STARTTLS\n")
        for _ in range(100):  # bounded: 5 s
            if apps and apps[0].lost.done():
                break
            await asyncio.sleep(0.05)
        assert apps[0].lost.done()
        layer = apps[0].layer
        assert layer is not None
        with pytest.raises(ConnectionError):
            await layer.handshake
        await asyncio.sleep(0.1)  # a second connection_lost would have come by now
        assert apps[0].losses == 1
        writer.close()
        server.close()
    run(main())


def test_sessions_of_one_certificate_share_their_tls_info_on_tls_1_3(
        run: Callable[..., Any], tmp_path: Path) -> None:
    """session.tls_info (TLSManager.session_info): one dict for every TLS 1.3 session of a
    certificate, version and cipher; TLS 1.2 sessions get their own, with tls-unique."""
    manager = TLSManager()
    manager.add_host("localhost", *generate_self_signed("localhost", tmp_path))

    async def connect(port: int, tls12: bool) -> None:
        ctx = client_ctx()
        if tls12:
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                                  server_hostname="localhost")
        writer.write(b"hi")
        await writer.drain()

    async def main() -> list[dict[str, Any]]:
        apps: list[Echo] = []
        server, port = await serve(direct_tls(manager.server_context(), apps))
        for tls12 in (False, False, True):
            await connect(port, tls12)
        for _ in range(100):  # bounded: 5 s
            if len(apps) == 3 and all(len(app.handshakes) == 1 for app in apps):
                break
            await asyncio.sleep(0.05)
        server.close()
        return [manager.session_info(app.transport.get_extra_info("ssl_object"))
                for app in apps]

    first, second, old = run(main())
    assert first is second
    assert first["version"] == "TLSv1.3"
    assert set(first["channel_bindings"]) == {"tls-server-end-point"}
    assert old is not first and old["version"] == "TLSv1.2"
    assert set(old["channel_bindings"]) == {"tls-server-end-point", "tls-unique"}
