#!/usr/bin/env python3
"""HTTP File Upload (XEP-0363) throughput and server memory, Tercet beside Prosody 0.12
(bench/README.md, "File upload").

Starts each server of its own (temporary config and data directory, loopback ports the
OS picked, an ``upload.localhost`` component with a 64 MiB size limit), logs
``--uploads`` users in over plaintext c2s (SASL PLAIN), has each request one slot of
``--size`` MB and PUT it at the same time, the bodies generated on the fly (1 MiB
blocks), and reports:

* aggregate upload throughput (MB/s, from the first PUT to the last 201);
* the server's RSS before, at its peak (sampled every 50 ms) and after;
* the server's CPU seconds per uploaded GB.

    python3 bench/upload_bench.py                       # Tercet and Prosody
    python3 bench/upload_bench.py --servers tercet --uploads 10 --size 50

Prosody runs as the ``prosody`` user (as bench/../shared/bench/servers.sh does); it is
skipped when it is not installed. Only the PIDs started here are signalled.
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
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

HERE = Path(__file__).resolve().parent
MB = 1_000_000
BLOCK = 1024 * 1024
SIZE_LIMIT = 64 * 1024 * 1024

TERCET_CONFIG = """
c2s_ports = [{c2s}]
c2s_direct_tls_ports = []
c2s_interfaces = ["127.0.0.1"]
http_ports = [{http}]
https_ports = []
http_interfaces = ["127.0.0.1"]
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
scram_iterations = 4096
data_path = "{data}"
admin_socket = "{data}/admin.sock"
log = "warning"
modules_enabled = ["disco", "roster", "saslauth", "tls", "ping"]

[virtualhosts."localhost"]

[components."upload.localhost"]
module = "http_file_share"
http_file_share_size_limit = {limit}
http_file_share_daily_quota = {quota}
"""

PROSODY_CONFIG = """
admins = {{ }}
modules_enabled = {{ "disco"; "roster"; "saslauth"; "tls"; "ping"; }}
modules_disabled = {{ "s2s"; "limits"; "smacks"; }}
data_path = "{data}/data"
pidfile = "{data}/prosody.pid"
log = {{ warn = "{data}/prosody.log" }}
c2s_interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s} }}
s2s_ports = {{ }}
http_ports = {{ {http} }}
http_interfaces = {{ "127.0.0.1" }}
https_ports = {{ }}
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_plain"
storage = "internal"
VirtualHost "localhost"
Component "upload.localhost" "http_file_share"
    http_file_share_size_limit = {limit}
    http_file_share_daily_quota = {quota}
"""

HEADER = ("<?xml version='1.0'?><stream:stream to='localhost' version='1.0' "
          "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
BIND = ("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
        "<resource>up</resource></bind></iq>")
SLOT = ("<iq type='get' id='s' to='upload.localhost'><request "
        "xmlns='urn:xmpp:http:upload:0' filename='bench.bin' size='{size}' "
        "content-type='application/octet-stream'/></iq>")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def proc_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Prosody under setpriv is a child of the launcher)."""
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


class Server:
    """One server process of our own; signalled by its PID only."""

    name = ""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.c2s, self.http = free_port(), free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        log = (self.dir / "stdout.log").open("ab")
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=log, cwd=self.dir,
                                     start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                for port in (self.c2s, self.http):
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise SystemExit(f"{self.name} exited; see {self.dir}/stdout.log") \
                        from None
                time.sleep(0.1)
        raise SystemExit(f"{self.name} did not open its ports within 30 s")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
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

    def pids(self) -> list[int]:
        assert self.proc is not None
        return proc_tree(self.proc.pid)

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

    def cpu(self) -> float:
        total = 0.0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total


class Tercet(Server):
    name = "tercet"

    def setup(self, users: list[str], quota: int) -> None:
        config = self.dir / "tercet.toml"
        config.write_text(TERCET_CONFIG.format(c2s=self.c2s, http=self.http, data=self.dir,
                                               limit=SIZE_LIMIT, quota=quota))
        sys.path.insert(0, str(HERE))
        from provision import create_accounts  # noqa: PLC0415

        from tercet.core.config import Config  # noqa: PLC0415
        asyncio.run(create_accounts(Config.load(config), "localhost", users, "pass", 16))

    def command(self) -> list[str]:
        return [sys.executable, "-m", "tercet", "-c", str(self.dir / "tercet.toml"), "start"]


class Prosody(Server):
    name = "prosody"

    def setup(self, users: list[str], quota: int) -> None:
        config = self.dir / "prosody.cfg.lua"
        config.write_text(PROSODY_CONFIG.format(c2s=self.c2s, http=self.http, data=self.dir,
                                                limit=SIZE_LIMIT, quota=quota))
        (self.dir / "data").mkdir()
        shutil.chown(self.dir, "prosody", "prosody")
        shutil.chown(self.dir / "data", "prosody", "prosody")
        for user in users:
            subprocess.run([*self.as_prosody(), "prosodyctl", "--config", str(config),
                            "register", user, "localhost", "pass"], check=True,
                           capture_output=True, timeout=60)

    def as_prosody(self) -> list[str]:
        return ["setpriv", "--reuid=prosody", "--regid=prosody", "--init-groups", "env",
                "HOME=/var/lib/prosody"]

    def command(self) -> list[str]:
        return [*self.as_prosody(), "prosody", "-F", "--config",
                str(self.dir / "prosody.cfg.lua")]


async def request_slot(port: int, user: str, size: int) -> tuple[str, str]:
    """Log in (PLAIN), bind, ask for a slot: (put URL, Authorization header)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    token = base64.b64encode(f"\0{user}\0pass".encode()).decode()
    writer.write(HEADER.encode())
    await reader.readuntil(b"</stream:features>")
    writer.write(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
                 f"{token}</auth>".encode())
    await reader.readuntil(b"success")
    writer.write(HEADER.encode())
    await reader.readuntil(b"</stream:features>")
    writer.write(BIND.encode())
    await reader.readuntil(b"</iq>")
    writer.write(SLOT.format(size=size).encode())
    answer = (await reader.readuntil(b"</iq>")).decode()
    writer.write(b"</stream:stream>")
    writer.close()
    put = re.search(r"<put[^>]*url=['\"]([^'\"]+)['\"]", answer)
    header = re.search(r"<header[^>]*name=['\"]Authorization['\"][^>]*>([^<]+)<", answer)
    if put is None or header is None:
        raise SystemExit(f"no slot for {user}: {answer}")
    return put.group(1).replace("&amp;", "&"), header.group(1)


async def body(size: int) -> AsyncIterator[bytes]:
    block = os.urandom(BLOCK)
    sent = 0
    while sent < size:
        chunk = block[:min(BLOCK, size - sent)]
        sent += len(chunk)
        yield chunk


async def upload(http: aiohttp.ClientSession, port: int, url: str, auth: str,
                 size: int) -> int:
    # The slot names upload.localhost, which does not resolve here: send it to the
    # server's port with the component's Host header.
    host = url.split("/")[2]
    path = "/" + url.split("/", 3)[3]
    async with http.put(f"http://127.0.0.1:{port}{path}", data=body(size), headers={
            "Host": host, "Authorization": auth, "Content-Length": str(size),
            "Content-Type": "application/octet-stream"}) as resp:
        await resp.read()
        return resp.status


async def scenario(server: Server, users: list[str], size: int) -> dict[str, Any]:
    slots = [await request_slot(server.c2s, u, size) for u in users]
    await asyncio.sleep(1)
    rss_before = server.rss_kb()
    samples = [rss_before]
    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            samples.append(server.rss_kb())
            await asyncio.sleep(0.05)

    sampler = asyncio.ensure_future(sample())
    cpu0, t0 = server.cpu(), time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=900)) as http:
        statuses = await asyncio.gather(*(upload(http, server.http, url, auth, size)
                                          for url, auth in slots))
    t1, cpu1 = time.monotonic(), server.cpu()
    done.set()
    await sampler
    await asyncio.sleep(1)
    total = size * len(users)
    return {"uploads": len(users), "size_mb": size / MB,
            "statuses": sorted(set(statuses)),
            "seconds": round(t1 - t0, 2),
            "throughput_mb_s": round(total / MB / (t1 - t0), 1),
            "rss_before_mb": round(rss_before / 1024, 1),
            "rss_peak_mb": round(max(samples) / 1024, 1),
            "rss_growth_mb": round((max(samples) - rss_before) / 1024, 1),
            "rss_after_mb": round(server.rss_kb() / 1024, 1),
            "cpu_s_per_gb": round((cpu1 - cpu0) / (total / 1e9), 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--servers", nargs="+", default=["prosody", "tercet"],
                    choices=["prosody", "tercet"])
    ap.add_argument("--uploads", type=int, default=10, help="concurrent uploads")
    ap.add_argument("--size", type=float, default=50, help="MB per upload")
    args = ap.parse_args()
    size = int(args.size * MB)
    if size > SIZE_LIMIT:
        raise SystemExit(f"--size is above the configured limit ({SIZE_LIMIT} bytes)")
    users = [f"up{i}" for i in range(1, args.uploads + 1)]
    quota = 2 * size * args.uploads + SIZE_LIMIT
    kinds: dict[str, type[Tercet] | type[Prosody]] = {"tercet": Tercet, "prosody": Prosody}
    for name in args.servers:
        if name == "prosody" and shutil.which("prosody") is None:
            print("prosody: not installed, skipped", flush=True)
            continue
        with tempfile.TemporaryDirectory(prefix=f"upload-bench-{name}-") as tmp:
            os.chmod(tmp, 0o755)
            server = kinds[name](Path(tmp))
            server.setup(users, quota)
            server.start()
            try:
                out = asyncio.run(scenario(server, users, size))
            finally:
                server.stop()
            print(f"{name:8} {json.dumps(out)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
