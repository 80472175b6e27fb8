"""Issue 13, item 3: on the direct-TLS port a connection counts against the per-address
cap on unauthenticated connections from the moment TCP accepts it, so handshakes that
never finish cannot hold descriptors beyond the cap or lock another address out."""

from __future__ import annotations

import asyncio

from harness import ServerHarness
from helpers import run
from sasl2client import RawClient

CAP = 3


async def stalled(port: int, source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection that never sends its ClientHello."""
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def closed_by_server(reader: asyncio.StreamReader, within: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), within) == b""
    except (TimeoutError, ConnectionError):
        return False


def test_stalled_handshakes_count_against_the_cap_at_accept(make_server) -> None:  # noqa: ANN001
    server: ServerHarness = make_server(extra=f"c2s_max_unauthenticated_per_ip = {CAP}")
    port = server.port(direct_tls=True)

    async def main() -> None:
        held = [await stalled(port, "127.0.0.1") for _ in range(CAP)]
        # The next one from that address is closed at once, without a handshake ...
        reader, writer = await stalled(port, "127.0.0.1")
        assert await closed_by_server(reader, 5)
        writer.close()
        # ... while the stalled ones are still held (open until their handshake bound) ...
        for r, _ in held:
            assert not await closed_by_server(r, 0.2)
        # ... and another address still gets a whole TLS stream.
        other = await RawClient().connect(port, "127.0.0.2")
        assert other.features.name == "features"
        await other.close()
        # Closing the stalled connections gives their places back.
        for _, w in held:
            w.close()
        await asyncio.sleep(0.3)
        again = await RawClient().connect(port, "127.0.0.1")
        assert again.features.name == "features"
        await again.close()
    run(main())
