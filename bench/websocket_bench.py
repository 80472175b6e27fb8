#!/usr/bin/env python3
"""XMPP over WebSocket beside TCP c2s, on one Tercet (bench/README.md, "WebSocket").

Starts its own Tercet (a temporary config and data directory, loopback ports the OS
picked, `websocket` enabled, PLAIN allowed without TLS), creates the accounts, and for
each transport, on a freshly started server:

* ``messages``: ``--users`` sessions in pairs, each keeping ``--window`` chat messages in
  flight to its partner (closed loop: a message received is answered with one), for
  ``--duration`` seconds after a warm-up; deliveries/s and server CPU µs per delivery
  (from /proc, the server's own process).
* ``idle``: ``--idle`` authenticated, bound sessions; server RSS growth per session.

    python3 bench/websocket_bench.py --users 200 --duration 15 --idle 1000

The generator is Python in the same machine (raw asyncio streams for TCP, aiohttp for
WebSocket); read server CPU per delivery as the comparable figure.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from provision import create_accounts  # noqa: E402

from tercet.core.config import Config  # noqa: E402

CONFIG = """
c2s_ports = [{c2s}]
c2s_direct_tls_ports = []
c2s_interfaces = ["127.0.0.1"]
http_ports = [{http}]
https_ports = []
http_interfaces = ["127.0.0.1"]
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
c2s_max_unauthenticated_per_ip = 100000
scram_iterations = 4096
data_path = "{data}"
admin_socket = "{data}/admin.sock"
log = "warning"
modules_enabled = ["disco", "roster", "saslauth", "tls", "ping", "websocket"]

[virtualhosts."localhost"]
"""
FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
PLAIN = "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{}</auth>"
BIND = ("<iq xmlns='jabber:client' type='set' id='b'><bind "
        "xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>b</resource></bind></iq>")
HEADER = ("<?xml version='1.0'?><stream:stream to='localhost' version='1.0' "
          "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
CONNECT_CONCURRENCY = 50


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def plain(user: str) -> str:
    return PLAIN.format(base64.b64encode(f"\0{user}\0pass".encode()).decode())


def message(to: str) -> str:
    return f"<message xmlns='jabber:client' to='{to}/b' type='chat'><body>x</body></message>"


class Server:
    """A Tercet process of our own, stopped by its PID only."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.c2s, self.http = free_port(), free_port()
        self.config = directory / "tercet.toml"
        self.config.write_text(CONFIG.format(c2s=self.c2s, http=self.http, data=directory))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.dir / "stdout.log").open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "tercet", "-c", str(self.config),
                                      "start"], stdout=log, stderr=log, cwd=HERE.parent)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.http), 0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise SystemExit(f"tercet exited; see {self.dir / 'stdout.log'}") from None
                time.sleep(0.1)
        raise SystemExit("tercet did not open its HTTP port within 30 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cpu(self) -> float:
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_kb(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0


class TcpSession:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.received = 0
        self._tail = b""

    @classmethod
    async def login(cls, port: int, user: str) -> TcpSession:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        self = cls(reader, writer)
        writer.write(HEADER.encode())
        await reader.readuntil(b"</stream:features>")
        writer.write(plain(user).encode())
        await reader.readuntil(b"/>")
        writer.write(HEADER.encode())
        await reader.readuntil(b"</stream:features>")
        writer.write(BIND.encode())
        await reader.readuntil(b"</iq>")
        return self

    def send(self, text: str) -> None:
        self.writer.write(text.encode())

    async def count(self) -> int:
        """Read one chunk; the messages completed in it."""
        data = await self.reader.read(65536)
        if not data:
            raise EOFError
        # The tail is shorter than the tag, so no tag is counted twice.
        both = self._tail + data
        self._tail = both[-9:]
        return both.count(b"</message>")

    async def close(self) -> None:
        self.writer.write(b"</stream:stream>")
        self.writer.close()


class WsSession:
    def __init__(self, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse
                 ) -> None:
        self.http, self.ws = http, ws

    @classmethod
    async def login(cls, port: int, user: str) -> WsSession:
        http = aiohttp.ClientSession()
        ws = await http.ws_connect(f"ws://localhost:{port}/xmpp-websocket",
                                   protocols=("xmpp",))
        self = cls(http, ws)
        for step in (f"<open xmlns='{FRAMING}' to='localhost' version='1.0'/>", plain(user),
                     f"<open xmlns='{FRAMING}' to='localhost' version='1.0'/>", BIND):
            await ws.send_str(step)
            while True:
                text = (await ws.receive()).data
                if not isinstance(text, str) or not text.startswith("<open"):
                    break
        return self

    def send(self, text: str) -> None:
        asyncio.ensure_future(self.ws.send_str(text))

    async def count(self) -> int:
        msg = await self.ws.receive()
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise EOFError
        return 1 if msg.data.startswith("<message") else 0

    async def close(self) -> None:
        await self.ws.close()
        await self.http.close()


async def connect_all(transport: str, server: Server, names: list[str]) -> list[Any]:
    sem = asyncio.Semaphore(CONNECT_CONCURRENCY)
    login = TcpSession.login if transport == "tcp" else WsSession.login
    port = server.c2s if transport == "tcp" else server.http

    async def one(name: str) -> Any:
        async with sem:
            return await login(port, name)
    return list(await asyncio.gather(*(one(n) for n in names)))


async def messages(transport: str, server: Server, names: list[str], window: int,
                   duration: float, warmup: float) -> dict[str, float]:
    sessions = await connect_all(transport, server, names)
    counted = [0]
    measuring = [False]

    async def pump(session: Any, partner: str) -> None:
        for _ in range(window):
            session.send(message(partner))
        try:
            while True:
                got = await session.count()
                for _ in range(got):
                    session.send(message(partner))
                if measuring[0]:
                    counted[0] += got
        except (EOFError, ConnectionError, asyncio.CancelledError):
            return

    tasks = [asyncio.ensure_future(pump(s, f"{names[i ^ 1]}@localhost"))
             for i, s in enumerate(sessions)]
    await asyncio.sleep(warmup)
    cpu0, t0 = server.cpu(), time.monotonic()
    measuring[0] = True
    await asyncio.sleep(duration)
    measuring[0] = False
    cpu1, t1 = server.cpu(), time.monotonic()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
    rate = counted[0] / (t1 - t0)
    return {"deliveries_per_s": round(rate, 1),
            "server_cpu_pct": round(100 * (cpu1 - cpu0) / (t1 - t0), 1),
            "server_us_cpu_per_delivery": round(1e6 * (cpu1 - cpu0) / max(counted[0], 1), 1)}


async def idle(transport: str, server: Server, names: list[str]) -> dict[str, float]:
    await asyncio.sleep(1)
    before = server.rss_kb()
    sessions = await connect_all(transport, server, names)
    await asyncio.sleep(2)
    after = server.rss_kb()
    await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
    return {"sessions": len(sessions), "rss_before_mb": round(before / 1024, 1),
            "rss_after_mb": round(after / 1024, 1),
            "rss_kb_per_session": round((after - before) / len(sessions), 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=200, help="sessions in the messages run")
    ap.add_argument("--window", type=int, default=2)
    ap.add_argument("--duration", type=float, default=15.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--idle", type=int, default=1000, help="sessions in the idle run")
    args = ap.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="tercet-wsbench-") as tmp:
        server = Server(Path(tmp))
        names = [f"user{i}" for i in range(1, max(args.users, args.idle) + 1)]
        config = Config.load(server.config)
        asyncio.run(create_accounts(config, "localhost", names, "pass", 64))
        for transport in ("tcp", "ws"):
            for scenario in ("messages", "idle"):
                server.start()
                try:
                    if scenario == "messages":
                        out = asyncio.run(messages(transport, server, names[:args.users],
                                                   args.window, args.duration, args.warmup))
                    else:
                        out = asyncio.run(idle(transport, server, names[:args.idle]))
                finally:
                    server.stop()
                results[f"{transport}/{scenario}"] = out
                print(f"{transport:3} {scenario:8} {json.dumps(out)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
