#!/usr/bin/env python3
"""Presence broadcast benchmark: users with online contacts log in and change status.

Server-agnostic, plain XMPP c2s over raw TCP (asyncio, uvloop when installed), no XMPP
library and no XML parser, in the manner of ../../shared/bench/xmppbench.py. Provision
first: accounts user<first>..user<first+N-1> / "pass" and rosters in which everyone has
``--contacts`` contacts with subscription "both" (bench/provision.py does both servers).

Phases, each bounded in time (``--phase-timeout``) and in count:

1. login: N sessions (``--concurrency`` in flight) do SASL, bind, roster get and send
   initial presence. The server probes each contact and broadcasts the new presence to
   those online (RFC 6121 §4.2), so this phase is presence-heavy too. Reported: logins/s,
   server CPU ms per login, presence stanzas delivered.
2. settle: wait until no presence has arrived for 1 s (at most ``--settle`` s).
3. status: every user changes status (``<show>`` + ``<status>`` carrying a marker),
   closed loop: at most ``--window`` changes of one user in flight, a change ending when
   the server echoes it back to the sender (RFC 6121 §4.4.2 says the broadcast includes
   the user's own available resources). ``--rate R`` switches to open loop (R changes/s
   in total). Reported: presence stanzas delivered to contacts per second over the
   measurement window (echoes excluded), latency per delivery, server CPU µs per
   delivered presence, server RSS before/after (the PID and all its descendants).

    python3 presence_bench.py --port 5522 --users 1000 --server-pid PID --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import os
import re
import socket
import ssl
import sys
import time
from dataclasses import dataclass, field
from typing import Any

MONO = time.monotonic_ns
CLK_TCK = os.sysconf("SC_CLK_TCK")
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
RE_FEATURES = re.compile(rb"<(?:stream:)?features\b[^>]*?(?:/>|>([\s\S]*?)</(?:stream:)?features>)")
RE_SASL = re.compile(rb"<(success|failure|challenge)\b[^>]*?(?:/>|>([\s\S]*?)</\1>)")
RE_STREAM_ERROR = re.compile(rb"<stream:error[\s\S]*?</stream:error>")
RE_TLS_ANSWER = re.compile(rb"<(proceed|failure)\b[^>]*xmpp-tls")
MARK = b"<status>@"
PRESENCE = b"<presence"
# An unfinished marker longer than this is garbage, not a marker cut by a read boundary.
MAX_MARKER = 256


_TLS_CONTEXT: ssl.SSLContext | None = None


def tls_context() -> ssl.SSLContext:
    """One client context per process (building one per session is slow). The bench
    servers use self-signed certificates on loopback: nothing to verify against."""
    global _TLS_CONTEXT
    if _TLS_CONTEXT is None:
        _TLS_CONTEXT = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        _TLS_CONTEXT.check_hostname = False
        _TLS_CONTEXT.verify_mode = ssl.CERT_NONE
    return _TLS_CONTEXT


def _unfinished(buf: bytes, marker_at: int) -> bytes:
    """What to keep for the next read: an unfinished marker (it holds no ``<presence``),
    or else the longest end of ``buf`` that may begin ``<presence`` or the marker (neither
    was counted, since a proper prefix cannot contain a whole match)."""
    if marker_at >= 0:
        return buf[marker_at:] if len(buf) - marker_at <= MAX_MARKER else b""
    for n in range(max(len(PRESENCE), len(MARK)) - 1, 0, -1):
        end = buf[-n:]
        if PRESENCE.startswith(end) or MARK.startswith(end):
            return end
    return b""


# -- server accounting from /proc (the PID and all its descendants) -----------------------

def _children() -> dict[int, int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    stat = f.read()
                parents[int(entry)] = int(stat[stat.rindex(b")") + 2:].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    return parents


def process_tree(pids: list[int]) -> list[int]:
    parents = _children()
    tree = {p for p in pids if p in parents}
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return sorted(tree)


def cpu_seconds(pids: list[int]) -> float:
    ticks = 0
    for pid in process_tree(pids):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
            fields = stat[stat.rindex(b")") + 2:].split()
            ticks += int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            pass
    return ticks / CLK_TCK


def rss_kb(pids: list[int]) -> int:
    total = 0
    for pid in process_tree(pids):
        try:
            with open(f"/proc/{pid}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        except (OSError, StopIteration, ValueError):
            pass
    return total


def busy_cores() -> tuple[int, int]:
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    return sum(values), values[3] + values[4]


class Meter:
    """Server CPU, generator CPU and everything else on the box over one phase."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.server0 = cpu_seconds(self.pids) if self.pids else 0.0
        self.gen0 = sum(os.times()[:2])
        self.sys0 = busy_cores()

    def stop(self) -> dict[str, float]:
        wall = max(time.monotonic() - self.t0, 1e-9)
        server = (cpu_seconds(self.pids) if self.pids else 0.0) - self.server0
        gen = sum(os.times()[:2]) - self.gen0
        total, idle = busy_cores()
        busy = 1 - (idle - self.sys0[1]) / max(1, total - self.sys0[0])
        ncpu = os.cpu_count() or 1
        return {"wall_s": round(wall, 3), "server_cpu_s": round(server, 3),
                "server_cpu_pct": round(100 * server / wall, 1),
                "gen_cpu_pct": round(100 * gen / wall, 1),
                "others_cpu_pct": round(100 * (busy * ncpu - (server + gen) / wall), 1)}


def wait_quiet(pids: list[int], limit: float, threshold: float = 15.0) -> float:
    """Wait (at most ``limit`` s) until other processes use < threshold % of a core."""
    deadline = time.monotonic() + limit
    while True:
        meter = Meter(pids)
        meter.start()
        time.sleep(1.0)
        others = meter.stop()["others_cpu_pct"]
        if others < threshold or time.monotonic() >= deadline:
            return others


# -- one client ------------------------------------------------------------------------------

@dataclass
class Stats:
    recording: bool = False
    delivered: int = 0          # marker presences from contacts, in the window
    echoes: int = 0             # a user's own status change coming back, in the window
    presences: int = 0          # every <presence seen (any phase)
    last_presence: float = 0.0  # monotonic time of the last one
    latency_us: list[int] = field(default_factory=list)


class Client(asyncio.Protocol):
    """One session. Login is matched with byte regexes; afterwards received bytes are only
    scanned for ``<presence`` and the ``<status>@<ns>@<sender>@`` marker."""

    def __init__(self, cfg: argparse.Namespace, index: int, stats: Stats) -> None:
        self.cfg = cfg
        self.index = index
        self.user = f"{cfg.user_prefix}{index}"
        self.stats = stats
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[None] | None = None
        self.scanning = False
        self.tail = b""
        self.sent = 0
        self.echoed = 0
        self.closed = False
        self.secure = False  # TLS is on (STARTTLS done, or a direct TLS connection)
        self.on_echo: Any = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection lost"))

    def data_received(self, data: bytes) -> None:
        if self.scanning:
            self.scan(data)
            return
        self.buf += data
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def scan(self, data: bytes) -> None:
        now = MONO()
        buf = self.tail + data
        stats = self.stats
        count = buf.count(PRESENCE)
        if count:
            stats.presences += count
            stats.last_presence = time.monotonic()
        pos = buf.find(MARK)
        while pos >= 0:
            start = pos + len(MARK)
            mid = buf.find(b"@", start)
            end = buf.find(b"@", mid + 1) if mid >= 0 else -1
            if end < 0:
                break
            try:
                sent_ns, sender = int(buf[start:mid]), int(buf[mid + 1:end])
            except ValueError:
                sent_ns, sender = now, -1
            if sender == self.index:
                self.echoed += 1
                if stats.recording:
                    stats.echoes += 1
                if self.on_echo is not None:
                    self.on_echo(self)
            elif stats.recording:
                stats.delivered += 1
                if len(stats.latency_us) < 2_000_000:  # bounded sample
                    stats.latency_us.append((now - sent_ns) // 1000)
            pos = buf.find(MARK, end + 1)
        self.tail = _unfinished(buf, pos)

    # login
    def send(self, data: str) -> None:
        assert self.transport is not None
        self.transport.write(data.encode())

    async def expect(self, rx: re.Pattern[bytes], what: str) -> re.Match[bytes]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.timeout
        while True:
            m = rx.search(self.buf)
            if m:
                match = rx.match(bytes(self.buf[m.start():m.end()]))
                del self.buf[:m.end()]
                assert match is not None
                return match
            if RE_STREAM_ERROR.search(self.buf):
                raise ConnectionError(f"stream error waiting for {what}: {bytes(self.buf[:200])!r}")
            if self.closed or loop.time() >= deadline:
                raise ConnectionError(f"no {what} ({'closed' if self.closed else 'timeout'})")
            self.waiter = loop.create_future()
            try:
                await asyncio.wait_for(self.waiter, deadline - loop.time())
            except TimeoutError:
                pass
            finally:
                self.waiter = None

    async def open_stream(self) -> bytes:
        self.send(f"<?xml version='1.0'?><stream:stream to='{self.cfg.domain}' "
                  "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
                  "version='1.0'>")
        features = (await self.expect(RE_FEATURES, "stream features")).group(1) or b""
        if getattr(self.cfg, "starttls", False) and not self.secure:
            return await self.starttls(features)
        return features

    async def starttls(self, features: bytes) -> bytes:
        """RFC 6120 §5.4: <starttls/>, <proceed/>, the handshake, a new stream."""
        if NS_TLS.encode() not in features:
            raise ConnectionError("the server does not offer STARTTLS")
        self.send(f"<starttls xmlns='{NS_TLS}'/>")
        if (await self.expect(RE_TLS_ANSWER, "STARTTLS answer")).group(1) != b"proceed":
            raise ConnectionError("STARTTLS refused")
        self.buf.clear()
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        transport = await loop.start_tls(self.transport, self, tls_context(),
                                         server_hostname=self.cfg.domain)
        assert transport is not None
        self.transport, self.secure = transport, True
        return await self.open_stream()

    async def authenticate(self) -> None:
        password = self.cfg.password
        if self.cfg.mech == "PLAIN":
            token = base64.b64encode(f"\0{self.user}\0{password}".encode()).decode()
            self.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{token}</auth>")
        else:
            await self.scram(password)
            return
        if (await self.expect(RE_SASL, "SASL result")).group(1) != b"success":
            raise ConnectionError(f"authentication failed for {self.user}")

    async def scram(self, password: str) -> None:
        nonce = base64.b64encode(os.urandom(18)).decode()
        first = f"n={self.user},r={nonce}"
        self.send(f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-1'>"
                  f"{base64.b64encode(('n,,' + first).encode()).decode()}</auth>")
        m = await self.expect(RE_SASL, "SCRAM challenge")
        server_first = base64.b64decode(m.group(2) or b"")
        parts = dict(p.split(b"=", 1) for p in server_first.split(b","))
        salted = hashlib.pbkdf2_hmac("sha1", password.encode(), base64.b64decode(parts[b"s"]),
                                     int(parts[b"i"]))
        client_key = hmac.new(salted, b"Client Key", hashlib.sha1).digest()
        without_proof = f"c=biws,r={parts[b'r'].decode()}"
        message = f"{first},{server_first.decode()},{without_proof}".encode()
        signature = hmac.new(hashlib.sha1(client_key).digest(), message, hashlib.sha1).digest()
        xored = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        proof = base64.b64encode(xored).decode()
        final = base64.b64encode(f"{without_proof},p={proof}".encode()).decode()
        self.send(f"<response xmlns='{NS_SASL}'>{final}</response>")
        if (await self.expect(RE_SASL, "SCRAM result")).group(1) != b"success":
            raise ConnectionError(f"authentication failed for {self.user}")

    async def login(self) -> None:
        await self.open_stream()
        await self.authenticate()
        self.buf.clear()
        features = await self.open_stream()
        self.send("<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                  f"<resource>{self.cfg.resource}</resource></bind></iq>")
        await self.expect(re.compile(rb"<iq\b[^>]*\bid=['\"]bind1['\"][\s\S]*?(?:/>|</iq>)"),
                          "bind result")
        if b"xmpp-session" in features and b"<optional" not in features:
            self.send("<iq type='set' id='sess1'>"
                      "<session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>")
            await self.expect(re.compile(rb"<iq\b[^>]*\bid=['\"]sess1['\"]"), "session result")
        self.send("<iq type='get' id='roster1'><query xmlns='jabber:iq:roster'/></iq>")
        await self.expect(re.compile(rb"<iq\b[^>]*\bid=['\"]roster1['\"][\s\S]*?(?:/>|</iq>)"),
                          "roster result")
        # From here on only count: contacts' presence starts arriving with our own.
        rest, self.buf = bytes(self.buf), bytearray()
        self.scanning = True
        self.scan(rest)
        self.send("<presence/>")

    def change_status(self, k: int) -> None:
        """Send k status changes (alternating away/xa), each carrying a marker."""
        if self.closed or self.transport is None:
            return
        now = MONO()
        parts = []
        for j in range(k):
            show = "away" if (self.sent + j) % 2 else "xa"
            parts.append(f"<presence><show>{show}</show><status>@{now}@{self.index}@ "
                         f"{self.cfg.pad}</status></presence>")
        self.sent += k
        self.transport.write("".join(parts).encode())

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(b"</stream:stream>")
            self.transport.close()


# -- phases ---------------------------------------------------------------------------------

async def login_all(cfg: argparse.Namespace, stats: Stats) -> tuple[list[Client], list[str],
                                                                     list[float]]:
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(cfg.concurrency)
    clients: list[Client] = []
    errors: list[str] = []
    login_ms: list[float] = []

    async def one(index: int) -> None:
        async with sem:
            client = Client(cfg, index, stats)
            t0 = MONO()
            try:
                await asyncio.wait_for(loop.create_connection(lambda: client, cfg.host,
                                                              cfg.port), cfg.timeout)
                await client.login()
                clients.append(client)
                login_ms.append((MONO() - t0) / 1e6)
            except (TimeoutError, OSError, ConnectionError) as exc:
                if len(errors) < 20:
                    errors.append(f"{client.user}: {exc}")
                if client.transport is not None:
                    client.transport.abort()

    await asyncio.wait_for(asyncio.gather(*(one(cfg.first + i) for i in range(cfg.users))),
                           cfg.phase_timeout)
    return clients, errors, login_ms


async def settle(stats: Stats, limit: float) -> float:
    """Wait until no presence arrived for 1 s, at most ``limit`` s; returns the wait."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        if time.monotonic() - stats.last_presence >= 1.0:
            break
        await asyncio.sleep(0.2)
    return time.monotonic() - t0


async def status_phase(cfg: argparse.Namespace, clients: list[Client], stats: Stats) -> float:
    """Run the status changes; returns the length of the measurement window (s)."""
    running = True
    if cfg.rate <= 0:
        def pump(client: Client) -> None:
            if running:
                missing = cfg.window - (client.sent - client.echoed)
                if missing > 0:
                    client.change_status(missing)
        for c in clients:
            c.on_echo = pump
        for c in clients:
            pump(c)
    loop = asyncio.get_running_loop()
    start = loop.time()
    measure_from, end = start + cfg.warmup, start + cfg.duration
    owed, cursor, last = 0.0, 0, start
    while loop.time() < end:
        now = loop.time()
        if not stats.recording and now >= measure_from:
            stats.recording = True
            window_start = now
        if cfg.rate > 0:
            owed += cfg.rate * (now - last)
            last = now
            k = int(owed)
            owed -= k
            for _ in range(k):
                client = clients[cursor]
                cursor = (cursor + 1) % len(clients)
                if client.sent - client.echoed < cfg.max_inflight:
                    client.change_status(1)
        await asyncio.sleep(0.01)
    stats.recording = False
    running = False
    return loop.time() - window_start


def percentile(values: list[int], p: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))] / 1000, 3)


async def run(cfg: argparse.Namespace) -> dict[str, Any]:
    pids = process_tree(cfg.server_pid) if cfg.server_pid else []
    result: dict[str, Any] = {"label": cfg.label, "scenario": "presence", "users": cfg.users,
                              "contacts": cfg.contacts, "target": f"{cfg.host}:{cfg.port}",
                              "starttls": cfg.starttls,
                              "mode": (f"open-loop {cfg.rate}/s" if cfg.rate > 0 else
                                       f"closed-loop window={cfg.window}/user"),
                              "server_pids": pids, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    stats = Stats()
    meter = Meter(cfg.server_pid)
    if cfg.quiet_wait:
        result["others_before_login"] = wait_quiet(cfg.server_pid, cfg.quiet_wait)
    rss0 = rss_kb(cfg.server_pid) if pids else None
    meter.start()
    clients, errors, login_ms = await login_all(cfg, stats)
    waited = await settle(stats, cfg.settle)
    cpu = meter.stop()
    ok = len(clients)
    result["login"] = {
        "ok": ok, "failed": cfg.users - ok, "errors": errors[:10],
        "seconds_incl_settle": cpu["wall_s"], "settle_s": round(waited, 3),
        "logins_per_s": round(ok / max(1e-9, cpu["wall_s"] - waited), 1),
        "login_ms_p50": percentile([int(x * 1000) for x in login_ms], 50),
        "login_ms_p99": percentile([int(x * 1000) for x in login_ms], 99),
        "presences_received": stats.presences, "cpu": cpu,
        "server_cpu_ms_per_login": round(1000 * cpu["server_cpu_s"] / max(1, ok), 3)}
    print(f"[{cfg.label}] login: {ok}/{cfg.users} ok, {result['login']['logins_per_s']}/s, "
          f"{stats.presences} presences received, cpu={cpu}", flush=True)
    for e in errors[:5]:
        print("   ", e, flush=True)
    if ok < 2:
        return result
    if cfg.quiet_wait:
        result["others_before_status"] = wait_quiet(cfg.server_pid, cfg.quiet_wait)
    rss1 = rss_kb(cfg.server_pid) if pids else None
    meter.start()
    window = await asyncio.wait_for(status_phase(cfg, clients, stats), cfg.phase_timeout)
    cpu = meter.stop()
    # The meter ran over warm-up too: scale server CPU to the window for the ratio.
    server_cpu_window = cpu["server_cpu_s"] * window / max(1e-9, cpu["wall_s"])
    result["status"] = {
        "window_s": round(window, 3), "changes_sent": sum(c.sent for c in clients),
        "delivered_to_contacts": stats.delivered, "echoes": stats.echoes,
        "delivered_per_s": round(stats.delivered / window, 1),
        "latency_ms": {"p50": percentile(stats.latency_us, 50),
                       "p90": percentile(stats.latency_us, 90),
                       "p99": percentile(stats.latency_us, 99)},
        "cpu": cpu,
        "server_cpu_us_per_delivery": round(1e6 * server_cpu_window / max(1, stats.delivered), 2),
    }
    await asyncio.sleep(cfg.drain)
    result["rss_kb"] = {"before_login": rss0, "after_login": rss1,
                        "after_status": rss_kb(cfg.server_pid) if pids else None}
    s = result["status"]
    print(f"  status: {s['delivered_per_s']} presences/s to contacts ({s['echoes']} echoes) "
          f"latency {s['latency_ms']} cpu={cpu} -> {s['server_cpu_us_per_delivery']} us/delivery",
          flush=True)
    for c in clients:
        c.close()
    await asyncio.sleep(0.5)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5222)
    ap.add_argument("--domain", default="localhost")
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--first", type=int, default=1)
    ap.add_argument("--user-prefix", default="user")
    ap.add_argument("--password", default="pass")
    ap.add_argument("--resource", default="bench")
    ap.add_argument("--mech", default="PLAIN", choices=["PLAIN", "SCRAM-SHA-1"])
    ap.add_argument("--starttls", action="store_true", help="negotiate STARTTLS at login")
    ap.add_argument("--contacts", type=int, default=50,
                    help="contacts per roster, as provisioned (recorded in the result)")
    ap.add_argument("--concurrency", type=int, default=100, help="logins in flight")
    ap.add_argument("--duration", type=float, default=15.0, help="status phase, incl. warm-up")
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--drain", type=float, default=1.0)
    ap.add_argument("--window", type=int, default=1, help="status changes in flight per user")
    ap.add_argument("--rate", type=float, default=0.0, help="open loop: status changes/s")
    ap.add_argument("--max-inflight", type=int, default=50, help="open-loop cap per user")
    ap.add_argument("--pad", type=int, default=32, help="padding bytes in each <status>")
    ap.add_argument("--settle", type=float, default=60.0)
    ap.add_argument("--timeout", type=float, default=60.0, help="per login step (s)")
    ap.add_argument("--phase-timeout", type=float, default=600.0)
    ap.add_argument("--server-pid", type=int, action="append", default=[])
    ap.add_argument("--quiet-wait", type=float, default=0.0)
    ap.add_argument("--no-uvloop", dest="uvloop", action="store_false")
    ap.add_argument("--label", default="")
    ap.add_argument("--json", default=None)
    cfg = ap.parse_args(argv)
    for info in socket.getaddrinfo(cfg.host, None):
        if not ipaddress.ip_address(info[4][0]).is_loopback:
            raise SystemExit(f"refusing non-loopback target {cfg.host}")
    cfg.pad = "x" * max(0, cfg.pad)
    cfg.duration = min(cfg.duration, 600.0)
    if cfg.uvloop:
        try:
            import uvloop
            uvloop.install()
        except ImportError:
            pass
    result = asyncio.run(run(cfg))
    if cfg.json:
        with open(cfg.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
