#!/usr/bin/env python3
"""XMPP over WebSocket beside TCP c2s, Tercet beside Prosody 0.12 (bench/README.md,
"WebSocket beside TCP c2s").

Starts each server of its own (a temporary config and data directory, loopback ports the
OS picked, WebSocket enabled on HTTP and on HTTPS, PLAIN allowed without TLS) and, for each
transport (``tcp``, ``ws``, and ``wss``: WebSocket over HTTPS with the self-signed
certificates ``compare.py --setup`` made) and scenario, measures every server on a freshly
started process, one after the other:

* ``messages``: ``--users`` sessions in pairs, each keeping ``--window`` chat messages in
  flight to its partner (closed loop: a message received is answered with one), for
  ``--duration`` seconds after a warm-up; deliveries/s and server CPU µs per delivery
  (from /proc, the server's process tree), and the CPU that neither the server nor this
  generator used ("others", % of one core: a busy machine shows here).
* ``idle``: ``--idle`` authenticated, bound sessions; server RSS growth per session.

    python3 bench/websocket_bench.py --users 200 --duration 15 --idle 1000

Both servers load the same modules: Prosody's config is derived from
``../../shared/bench/configs/prosody.cfg.lua`` (plus ``websocket``, HTTP on loopback,
``consider_websocket_secure``, ``cross_domain_websocket``; no certificates, no MUC
component) and Tercet's list is ``tercet-bench.toml``'s plus ``websocket``. Prosody runs as
the ``prosody`` user (as ``servers.sh`` does) on copies of the accounts provisioned in
bench/README.md "Setup"; it is skipped when not installed. Only the PIDs started here are
signalled.

The generator is Python in the same machine (raw asyncio streams for TCP, aiohttp for
WebSocket); read server CPU per delivery as the comparable figure.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

import aiohttp

# The certificates compare.py --setup made (bench/README.md, "Setup over TLS"): each
# server serves HTTPS (the wss transport) with its own, as it does STARTTLS there.
TERCET_CERTS = Path("/tmp/benchdata/tercet/certs")
PROSODY_CERTS = Path("/tmp/benchdata/prosody/certs")

HERE = Path(__file__).resolve().parent
PROSODY_BASE = HERE.parent.parent / "shared" / "bench" / "configs" / "prosody.cfg.lua"
PROSODY_ACCOUNTS = Path("/tmp/benchdata/prosody/data/localhost/accounts")

TERCET_CONFIG = """
c2s_ports = [{c2s}]
c2s_direct_tls_ports = []
c2s_interfaces = ["127.0.0.1"]
http_ports = [{http}]
https_ports = [{https}]
http_interfaces = ["127.0.0.1"]
https_interfaces = ["127.0.0.1"]
certificates = "{certs}"
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
c2s_max_unauthenticated_per_ip = 100000
scram_iterations = 4096
data_path = "{data}"
admin_socket = "{data}/admin.sock"
log = "warning"
modules_enabled = {modules}

[virtualhosts."localhost"]
"""
# Added after Prosody's c2s_ports line; PLAIN without TLS is already allowed there.
PROSODY_HTTP = """http_ports = {{ {http} }}
http_interfaces = {{ "127.0.0.1" }}
https_ports = {{ {https} }}
https_interfaces = {{ "127.0.0.1" }}
https_ssl = {{ certificate = "{certs}/localhost.crt"; key = "{certs}/localhost.key"; }}
consider_websocket_secure = true
cross_domain_websocket = true"""
FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
PLAIN = "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{}</auth>"
BIND = ("<iq xmlns='jabber:client' type='set' id='b'><bind "
        "xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>b</resource></bind></iq>")
HEADER = ("<?xml version='1.0'?><stream:stream to='localhost' version='1.0' "
          "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
CONNECT_CONCURRENCY = 50
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def plain(user: str) -> str:
    return PLAIN.format(base64.b64encode(f"\0{user}\0pass".encode()).decode())


def message(to: str) -> str:
    return f"<message xmlns='jabber:client' to='{to}/b' type='chat'><body>x</body></message>"


def proc_tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    found, todo = [], [pid]
    while todo:
        cur = todo.pop()
        found.append(cur)
        try:
            kids = Path(f"/proc/{cur}/task/{cur}/children").read_text().split()
        except OSError:
            kids = []
        todo += [int(k) for k in kids]
    return found


def machine_ticks() -> tuple[int, int]:
    """(all ticks, idle ticks) of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return sum(ticks), ticks[3] + ticks[4]


def own_cpu() -> float:
    times = os.times()
    return times.user + times.system


class Server:
    """A server process of our own, stopped by its PID (and its descendants') only."""

    name = ""

    def __init__(self, directory: Path) -> None:
        self.dir = directory / self.name
        self.dir.mkdir()
        self.c2s, self.http, self.https = free_port(), free_port(), free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def setup(self, names: list[str]) -> None:
        raise NotImplementedError

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        log = (self.dir / "stdout.log").open("ab")
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=log, cwd=self.dir,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                for port in (self.c2s, self.http, self.https):
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise SystemExit(f"{self.name} exited; see {self.dir / 'stdout.log'}") \
                        from None
                time.sleep(0.1)
        self.stop()
        raise SystemExit(f"{self.name} did not open its ports within 30 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            for pid in reversed(proc_tree(self.proc.pid)):
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def pids(self) -> list[int]:
        assert self.proc is not None
        return proc_tree(self.proc.pid)

    def cpu(self) -> float:
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])
        return total / CLK_TCK

    def rss_kb(self) -> int:
        total = 0
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total


class Tercet(Server):
    name = "tercet"

    def setup(self, names: list[str]) -> None:
        with (HERE / "tercet-bench.toml").open("rb") as f:
            modules = [*tomllib.load(f)["modules_enabled"], "websocket"]
        config = self.dir / "tercet.toml"
        config.write_text(TERCET_CONFIG.format(c2s=self.c2s, http=self.http, https=self.https,
                                               data=self.dir, certs=TERCET_CERTS,
                                               modules=json.dumps(modules)))
        sys.path.insert(0, str(HERE))
        from provision import create_accounts  # noqa: PLC0415

        from tercet.core.config import Config  # noqa: PLC0415
        asyncio.run(create_accounts(Config.load(config), "localhost", names, "pass", 64))

    def command(self) -> list[str]:
        return [sys.executable, "-m", "tercet", "-c", str(self.dir / "tercet.toml"), "start"]


def prosody_config(base: str, directory: Path, c2s: int, http: int, https: int) -> str:
    """The shared Prosody bench config with our paths and ports, plus WebSocket (HTTP, and
    HTTPS with the bench's certificate)."""
    edits: list[tuple[str, str]] = [
        (r"^data_path = .*$", f'data_path = "{directory}/data"'),
        (r"^pidfile = .*$", f'pidfile = "{directory}/prosody.pid"'),
        (r"^log = .*$", f'log = {{ warn = "{directory}/prosody.log" }}'),
        (r"^c2s_ports = .*$", f"c2s_ports = {{ {c2s} }}\n"
         + PROSODY_HTTP.format(http=http, https=https, certs=PROSODY_CERTS)),
        (r"^modules_enabled = \{", 'modules_enabled = { "websocket";'),
        # c2s stays plaintext here (the tcp and ws transports); HTTPS has its own https_ssl.
        (r"^certificates = .*\n", ""),
        (r"^\s+ssl = .*\n", ""),
        # Tercet's side has no MUC component here; neither scenario uses one.
        (r"^Component .*(\n[ \t]+.*)*", ""),
    ]
    for pattern, replacement in edits:
        # The replacement is literal text, not a template.
        base, count = re.subn(pattern, replacement.replace("\\", "\\\\"), base,
                              count=1, flags=re.MULTILINE)
        if count != 1:
            raise SystemExit(f"{PROSODY_BASE}: no line matches {pattern!r}")
    return base


class Prosody(Server):
    name = "prosody"

    def setup(self, names: list[str]) -> None:
        config = self.dir / "prosody.cfg.lua"
        config.write_text(prosody_config(PROSODY_BASE.read_text(), self.dir, self.c2s,
                                         self.http, self.https))
        accounts = self.dir / "data" / "localhost" / "accounts"
        accounts.mkdir(parents=True)
        for name in names:
            source = PROSODY_ACCOUNTS / f"{name}.dat"
            if not source.exists():
                raise SystemExit(f"{source} missing: provision Prosody's accounts as "
                                 "bench/README.md 'Setup' says")
            shutil.copyfile(source, accounts / source.name)
        if os.geteuid() == 0:
            for path in (self.dir, *self.dir.rglob("*")):
                shutil.chown(path, "prosody", "prosody")

    def command(self) -> list[str]:
        command = ["prosody", "-F", "--config", str(self.dir / "prosody.cfg.lua")]
        if os.geteuid() != 0:
            return command
        # As root Prosody refuses to run (mod_posix); drop to its user as servers.sh does.
        return ["setpriv", "--reuid=prosody", "--regid=prosody", "--init-groups", "env",
                "HOME=/var/lib/prosody", *command]


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
    async def login(cls, port: int, user: str, secure: bool = False) -> WsSession:
        http = aiohttp.ClientSession()
        # wss: the self-signed bench certificate, not verified (loopback, our own).
        ws = await http.ws_connect(f"{'wss' if secure else 'ws'}://localhost:{port}"
                                   "/xmpp-websocket", protocols=("xmpp",), ssl=False)
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
    port = {"tcp": server.c2s, "ws": server.http, "wss": server.https}[transport]

    async def one(name: str) -> Any:
        async with sem:
            if transport == "tcp":
                return await TcpSession.login(port, name)
            return await WsSession.login(port, name, secure=transport == "wss")
    return list(await asyncio.gather(*(one(n) for n in names)))


class CpuWindow:
    """Server, generator and machine CPU over one measured window."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.t0, self.server0, self.own0 = time.monotonic(), server.cpu(), own_cpu()
        self.machine0 = machine_ticks()

    def stop(self, deliveries: int) -> dict[str, float]:
        wall = time.monotonic() - self.t0
        server, own = self.server.cpu() - self.server0, own_cpu() - self.own0
        total, idle_ticks = machine_ticks()
        busy = (os.cpu_count() or 1) * (1 - (idle_ticks - self.machine0[1])
                                        / max(total - self.machine0[0], 1))
        return {"deliveries_per_s": round(deliveries / wall, 1),
                "server_cpu_pct": round(100 * server / wall, 1),
                "server_us_cpu_per_delivery": round(1e6 * server / max(deliveries, 1), 1),
                "generator_cpu_pct": round(100 * own / wall, 1),
                "others_cpu_pct": round(100 * (busy - (server + own) / wall), 1)}


async def wait_quiet(server: Server, max_wait: float, threshold: float) -> float:
    """Wait (at most ``max_wait`` s) until processes other than the server and this one
    use less than ``threshold`` % of one core; the last figure seen."""
    deadline = time.monotonic() + max_wait
    while True:
        window = CpuWindow(server)
        await asyncio.sleep(1)
        others = window.stop(0)["others_cpu_pct"]
        if others < threshold or time.monotonic() >= deadline:
            return others


async def messages(transport: str, server: Server, names: list[str], args: Any
                   ) -> dict[str, float]:
    quiet = await wait_quiet(server, args.quiet_wait, args.quiet_threshold)
    sessions = await connect_all(transport, server, names)
    counted = [0]
    measuring = [False]

    async def pump(session: Any, partner: str) -> None:
        for _ in range(args.window):
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
    await asyncio.sleep(args.warmup)
    window = CpuWindow(server)
    measuring[0] = True
    await asyncio.sleep(args.duration)
    measuring[0] = False
    out = window.stop(counted[0])
    for task in tasks:
        task.cancel()
    await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
    return {**out, "others_cpu_pct_before": quiet}


async def idle(transport: str, server: Server, names: list[str], args: Any
               ) -> dict[str, float]:
    await wait_quiet(server, min(args.quiet_wait, 5), args.quiet_threshold)
    await asyncio.sleep(1)
    before = server.rss_kb()
    sessions = await connect_all(transport, server, names)
    await asyncio.sleep(2)
    after = server.rss_kb()
    await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
    return {"sessions": len(sessions), "rss_before_mb": round(before / 1024, 1),
            "rss_after_mb": round(after / 1024, 1),
            "rss_kb_per_session": round((after - before) / len(sessions), 1)}


def table(results: dict[str, dict[str, Any]]) -> str:
    rows = ["| server | transport | deliveries/s | server CPU % | server µs CPU/delivery "
            "| others CPU % | RSS kB per idle session |", "|---|---|---|---|---|---|---|"]
    for key, out in results.items():
        if not key.endswith("/messages"):
            continue
        name, transport, _ = key.split("/")
        rss = results.get(f"{name}/{transport}/idle", {}).get("rss_kb_per_session", "")
        label = {"tcp": "TCP c2s", "ws": "WebSocket", "wss": "WebSocket over TLS (wss)"}
        rows.append(f"| {name} | {label[transport]} "
                    f"| {out['deliveries_per_s']:,.0f} | {out['server_cpu_pct']:.0f} "
                    f"| {out['server_us_cpu_per_delivery']} | {out['others_cpu_pct']:.0f} "
                    f"| {rss} |")
    return "\n".join(rows)


def run(server: Server, transport: str, scenario: str, names: list[str],
        args: Any) -> dict[str, float]:
    server.start()
    try:
        if scenario == "messages":
            return asyncio.run(messages(transport, server, names[:args.users], args))
        return asyncio.run(idle(transport, server, names[:args.idle], args))
    finally:
        server.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--servers", nargs="+", default=["tercet", "prosody"],
                    choices=["tercet", "prosody"])
    ap.add_argument("--transports", nargs="+", default=["tcp", "ws"],
                    choices=["tcp", "ws", "wss"],
                    help="wss: WebSocket over HTTPS with the certificates of compare.py --setup")
    ap.add_argument("--users", type=int, default=200, help="sessions in the messages run")
    ap.add_argument("--window", type=int, default=2)
    ap.add_argument("--duration", type=float, default=15.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--idle", type=int, default=1000, help="sessions in the idle run")
    ap.add_argument("--quiet-wait", type=float, default=20.0,
                    help="at most this many seconds waiting for the machine to go idle")
    ap.add_argument("--quiet-threshold", type=float, default=15.0,
                    help="'idle': others use less than this %% of one core")
    ap.add_argument("--out", type=Path, help="also write the results here (JSON)")
    args = ap.parse_args()
    if args.users % 2 or not 2 <= args.users <= 5000 or not 1 <= args.idle <= 5000:
        raise SystemExit("--users: an even number from 2 to 5000; --idle: 1 to 5000")
    if not 1 <= args.duration <= 300 or not 0 <= args.warmup <= 60:
        raise SystemExit("--duration: 1 to 300 s; --warmup: 0 to 60 s")
    kinds: dict[str, type[Server]] = {"tercet": Tercet, "prosody": Prosody}
    if "prosody" in args.servers and shutil.which("prosody") is None:
        print("prosody: not installed, skipped", flush=True)
        args.servers.remove("prosody")
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="wsbench-") as tmp:
        os.chmod(tmp, 0o755)  # Prosody, as its own user, reads its config below it
        names = [f"user{i}" for i in range(1, max(args.users, args.idle) + 1)]
        servers = {name: kinds[name](Path(tmp)) for name in args.servers}
        for server in servers.values():
            server.setup(names)
        for transport in args.transports:
            for scenario in ("messages", "idle"):
                for name, server in servers.items():
                    out = run(server, transport, scenario, names, args)
                    results[f"{name}/{transport}/{scenario}"] = out
                    print(f"{name:8} {transport:3} {scenario:8} {json.dumps(out)}", flush=True)
    print(table(results))
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
