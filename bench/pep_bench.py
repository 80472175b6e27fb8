#!/usr/bin/env python3
"""PEP notification fan-out benchmark: one publisher, N online contacts (XEP-0163).

Server-agnostic, plain XMPP c2s over raw TCP (asyncio, uvloop when installed), no XMPP
library and no XML parser, in the manner of presence_bench.py (whose login code it uses).
Provision first: accounts pepuser1..pepuser<N+1> / "pass" and a star roster, pepuser1
having the N others as contacts with subscription "both" and each of them pepuser1
(``bench/provision.py rosters --users 101 --prefix pepuser --star``, both servers).

1. login: the publisher (pepuser1) logs in and sends initial presence without caps; then
   the N contacts log in and send presence with XEP-0115 caps (sha-1) whose disco#info
   has ``<node>+notify`` for the benchmarked node. The server does not know the hash, so
   it asks a contact with disco#info (XEP-0115 §6.3) and has to verify the answer
   against the hash (§5.4); every contact answers such a query with the same features,
   and the hash is computed here as §5.1 says (checked against §5.2's example).
2. ready: single publishes, one at a time, until one reaches all N contacts (bounded by
   ``--ready-timeout``): every contact's interest is then known to the server.
3. publish: the publisher publishes to its node in a closed loop, at most ``--window``
   publishes in flight; a publish ends when its iq result and all N notifications have
   arrived (a publish still open after ``--publish-timeout`` s is counted as lost).
   Each item has the same id ("current": the node keeps one item on both servers, as a
   user tune or nickname does) and a payload carrying ``#pep#<seq>#``.

Reported over the measurement window (``--duration`` minus ``--warmup``): publishes/s,
notifications delivered/s, latency publish -> iq result and publish -> last notification
(p50/p90/p99), server CPU µs per publish and per notification (utime+stime from
/proc/<pid>/stat of ``--server-pid`` and all its descendants), server RSS.

    python3 pep_bench.py --port 5522 --contacts 100 --server-pid PID --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import ipaddress
import json
import re
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import presence_bench as pb  # noqa: E402  (login code and /proc accounting)

MONO = time.monotonic_ns
NODE = "urn:xmpp:tercet:bench:pep"
CAPS_NODE = "https://tercet.example/bench/pep"
NS_INFO = "http://jabber.org/protocol/disco#info"
IDENTITY = ("client", "bot", "", "pep bench")
FEATURES = ("http://jabber.org/protocol/caps", NS_INFO, NODE, NODE + "+notify")
MARK = b"#pep#"
IQ = b"<iq"
RE_ATTR = re.compile(rb"""([\w:]+)\s*=\s*(?:'([^']*)'|"([^"]*)")""")
RE_QUERY_NODE = re.compile(rb"""<query\b[^>]*?\bnode\s*=\s*(?:'([^']*)'|"([^"]*)")""")
# An unfinished iq longer than this is not waited for (the stream is broken anyway).
MAX_PENDING_IQ = 65536


def caps_ver(identities: list[tuple[str, str, str, str]], features: list[str]) -> str:
    """XEP-0115 §5.1 verification string, SHA-1 (no extended forms)."""
    s = "".join("/".join(i) + "<" for i in sorted(identities))
    s += "".join(f + "<" for f in sorted(features))
    return base64.b64encode(hashlib.sha1(s.encode()).digest()).decode()


# XEP-0115 §5.2's worked example, so a wrong hash cannot silently turn off notifications.
assert caps_ver([("client", "pc", "", "Exodus 0.9.1")],
                ["http://jabber.org/protocol/caps", NS_INFO,
                 "http://jabber.org/protocol/disco#items",
                 "http://jabber.org/protocol/muc"]) == "QgayPKawpkPSDYmwT/WM94uAlu0="
VER = caps_ver([IDENTITY], list(FEATURES))


def disco_answer(iq_id: str, to: str, node: str) -> str:
    feats = "".join(f"<feature var='{f}'/>" for f in FEATURES)
    node_attr = f" node='{node}'" if node else ""
    return (f"<iq type='result' id='{iq_id}' to='{to}'><query xmlns='{NS_INFO}'{node_attr}>"
            f"<identity category='{IDENTITY[0]}' type='{IDENTITY[1]}' name='{IDENTITY[3]}'/>"
            f"{feats}</query></iq>")


def _attrs(start_tag: bytes) -> dict[bytes, str]:
    return {m.group(1): (m.group(2) if m.group(2) is not None else m.group(3) or b"").decode()
            for m in RE_ATTR.finditer(start_tag)}


def _keep(buf: bytes) -> bytes:
    """The longest end of ``buf`` that may begin the marker or ``<iq`` (not yet seen)."""
    for n in range(max(len(MARK), len(IQ)) - 1, 0, -1):
        end = buf[-n:]
        if MARK.startswith(end) or IQ.startswith(end):
            return end
    return b""


# -- the run -------------------------------------------------------------------------------

@dataclass
class Pub:
    sent_ns: int
    remaining: int
    result_ns: int = 0
    last_ns: int = 0
    error: bool = False
    seen: set[int] = field(default_factory=set)


@dataclass
class Counters:
    completed: int = 0
    notifications: int = 0
    errors: int = 0
    lost_publishes: int = 0
    lost_notifications: int = 0
    stray: int = 0          # a notification of a publish no longer (or never) open
    duplicates: int = 0
    duplicated_to: set[int] = field(default_factory=set)   # contacts that got copies
    asked: set[int] = field(default_factory=set)           # contacts asked for disco#info
    to_publisher: int = 0
    disco_answered: int = 0
    last_us: list[int] = field(default_factory=list)
    result_us: list[int] = field(default_factory=list)


class Run:
    """Publishes in flight and what arrived for them."""

    def __init__(self, cfg: argparse.Namespace) -> None:
        self.cfg = cfg
        self.expected = 0
        self.pending: dict[int, Pub] = {}
        self.seq = 0
        self.window = 0          # closed loop: publishes kept in flight (0: stopped)
        self.recording = False
        self.c = Counters()
        self.publisher: Peer | None = None
        self.first_error = ""
        self.done_event: asyncio.Event | None = None

    def publish(self) -> int:
        assert self.publisher is not None
        self.seq += 1
        seq = self.seq
        self.pending[seq] = Pub(MONO(), self.expected)
        self.publisher.send(
            f"<iq type='set' id='p{seq}'><pubsub xmlns='http://jabber.org/protocol/pubsub'>"
            f"<publish node='{NODE}'><item id='current'><entry xmlns='{NODE}'>"
            f"#pep#{seq}#{self.cfg.pad}</entry></item></publish></pubsub></iq>")
        return seq

    def pump(self) -> None:
        while len(self.pending) < self.window and self.seq < self.cfg.max_publishes:
            self.publish()

    def notified(self, peer: Peer, seq: int, now: int) -> None:
        if peer is self.publisher:
            self.c.to_publisher += 1
            return
        pub = self.pending.get(seq)
        if pub is None:
            self.c.stray += 1
            return
        if peer.index in pub.seen:
            self.c.duplicates += 1
            self.c.duplicated_to.add(peer.index)
            return
        pub.seen.add(peer.index)
        pub.remaining -= 1
        pub.last_ns = now
        if self.recording:
            self.c.notifications += 1
        if pub.remaining <= 0 and pub.result_ns:
            self.complete(seq, pub)

    def result(self, seq: int, ok: bool, stanza: bytes, now: int) -> None:
        pub = self.pending.get(seq)
        if pub is None:
            return
        pub.result_ns = now
        if not ok:
            pub.error = True
            self.c.errors += 1
            self.first_error = self.first_error or stanza[:400].decode(errors="replace")
        if pub.remaining <= 0 or not ok:
            self.complete(seq, pub)

    def complete(self, seq: int, pub: Pub) -> None:
        del self.pending[seq]
        if self.recording and not pub.error:
            self.c.completed += 1
            if len(self.c.last_us) < 1_000_000:  # bounded sample
                self.c.last_us.append((max(pub.last_ns, pub.result_ns) - pub.sent_ns) // 1000)
                self.c.result_us.append((pub.result_ns - pub.sent_ns) // 1000)
        if self.done_event is not None:
            self.done_event.set()
        self.pump()

    def expire(self, timeout_s: float) -> None:
        """Drop publishes open for longer than ``timeout_s`` (lost notifications)."""
        limit = MONO() - int(timeout_s * 1e9)
        for seq, pub in list(self.pending.items()):
            if pub.sent_ns < limit:
                del self.pending[seq]
                if self.recording:
                    self.c.lost_publishes += 1
                    self.c.lost_notifications += max(0, pub.remaining)
        self.pump()


class Peer(pb.Client):
    """One session: presence_bench's login, then a byte scan for the ``#pep#<seq>#``
    marker and for ``<iq`` stanzas (disco#info queries to answer, publish results)."""

    def __init__(self, cfg: argparse.Namespace, index: int, run: Run) -> None:
        super().__init__(cfg, index, pb.Stats())
        self.run = run

    def scan(self, data: bytes) -> None:
        now = MONO()
        buf = self.tail + data
        keep_from = -1
        pos = buf.find(MARK)
        while pos >= 0:
            start = pos + len(MARK)
            end = buf.find(b"#", start)
            if end < 0:
                keep_from = pos if len(buf) - pos <= pb.MAX_MARKER else -1
                break
            try:
                self.run.notified(self, int(buf[start:end]), now)
            except ValueError:
                pass
            pos = buf.find(MARK, end + 1)
        i = buf.find(IQ)
        while i >= 0:
            head_end = buf.find(b">", i)
            if head_end < 0:
                stanza_end = -1
            elif buf[head_end - 1:head_end] == b"/":
                stanza_end = head_end + 1
            else:
                close = buf.find(b"</iq>", head_end)
                stanza_end = close + 5 if close >= 0 else -1
            if stanza_end < 0:
                # Unfinished: everything after it belongs to it, so no marker is counted
                # twice by keeping it.
                if len(buf) - i <= MAX_PENDING_IQ:
                    keep_from = i if keep_from < 0 else min(keep_from, i)
                break
            self.on_iq(buf[i:head_end + 1], buf[i:stanza_end], now)
            i = buf.find(IQ, stanza_end)
        self.tail = buf[keep_from:] if keep_from >= 0 else _keep(buf)

    def on_iq(self, head: bytes, stanza: bytes, now: int) -> None:
        attrs = _attrs(head)
        kind, iq_id = attrs.get(b"type", ""), attrs.get(b"id", "")
        if kind == "get" and NS_INFO.encode() in stanza:
            m = RE_QUERY_NODE.search(stanza)
            node = (m.group(1) or m.group(2) or b"").decode() if m else ""
            self.send(disco_answer(iq_id, attrs.get(b"from", ""), node))
            self.run.c.disco_answered += 1
            self.run.c.asked.add(self.index)
        elif kind == "get" or kind == "set":
            self.send(f"<iq type='error' id='{iq_id}' to='{attrs.get(b'from', '')}'>"
                      "<error type='cancel'><service-unavailable "
                      "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
        elif self is self.run.publisher and iq_id.startswith("p") and iq_id[1:].isdigit():
            self.run.result(int(iq_id[1:]), kind == "result", stanza, now)

    async def login_with(self, presence: str) -> None:
        """presence_bench's login (SASL, bind, roster get), then ``presence``."""
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
        rest, self.buf = bytes(self.buf), bytearray()
        self.scanning = True
        self.scan(rest)
        self.send(presence)


# -- phases ---------------------------------------------------------------------------------

async def connect(cfg: argparse.Namespace, run: Run, index: int, presence: str) -> Peer:
    loop = asyncio.get_running_loop()
    peer = Peer(cfg, index, run)
    await asyncio.wait_for(loop.create_connection(lambda: peer, cfg.host, cfg.port),
                           cfg.timeout)
    await peer.login_with(presence)
    return peer


async def login_all(cfg: argparse.Namespace, run: Run) -> tuple[Peer, list[Peer], list[str]]:
    publisher = await connect(cfg, run, cfg.first, "<presence/>")
    run.publisher = publisher
    await asyncio.sleep(0.5)
    caps = (f"<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' "
            f"node='{CAPS_NODE}' ver='{VER}'/></presence>")
    sem = asyncio.Semaphore(cfg.concurrency)
    contacts: list[Peer] = []
    errors: list[str] = []

    async def one(index: int) -> None:
        async with sem:
            try:
                contacts.append(await connect(cfg, run, index, caps))
            except (TimeoutError, OSError, ConnectionError) as exc:
                errors.append(f"{cfg.user_prefix}{index}: {exc}")

    await asyncio.wait_for(asyncio.gather(*(one(cfg.first + 1 + i)
                                            for i in range(cfg.contacts))), cfg.phase_timeout)
    return publisher, contacts, errors


async def until_ready(cfg: argparse.Namespace, run: Run) -> tuple[bool, int, float, int]:
    """Single publishes until one reaches every contact; (ready, tries, seconds, best)."""
    t0 = time.monotonic()
    tries, best = 0, 0
    run.done_event = asyncio.Event()
    while time.monotonic() - t0 < cfg.ready_timeout:
        tries += 1
        run.done_event.clear()
        seq = run.publish()
        try:
            await asyncio.wait_for(run.done_event.wait(), 1.0)
        except TimeoutError:
            pass
        pub = run.pending.pop(seq, None)
        if pub is None and not run.c.errors:
            return True, tries, time.monotonic() - t0, run.expected
        if pub is None:  # an error reply: the server refused the publish
            print(f"  publish refused: {run.first_error}", flush=True)
            return False, tries, time.monotonic() - t0, 0
        best = max(best, len(pub.seen))
        await asyncio.sleep(0.5)
    return False, tries, time.monotonic() - t0, best


async def publish_phase(cfg: argparse.Namespace, run: Run) -> float:
    """Closed loop for ``cfg.duration`` s; returns the measurement window (s)."""
    run.done_event = None
    loop = asyncio.get_running_loop()
    start = loop.time()
    measure_from, end = start + cfg.warmup, start + cfg.duration
    run.window = cfg.window
    run.pump()
    window_start = start
    while loop.time() < end:
        if not run.recording and loop.time() >= measure_from:
            run.recording = True
            window_start = loop.time()
        run.expire(cfg.publish_timeout)
        await asyncio.sleep(0.01)
    run.recording = False
    run.window = 0
    return loop.time() - window_start


def pct(values: list[int]) -> dict[str, float | None]:
    return {f"p{p}": pb.percentile(values, p) for p in (50, 90, 99)} | {
        "max": round(max(values) / 1000, 3) if values else None}


async def bench(cfg: argparse.Namespace) -> dict[str, Any]:
    pids = pb.process_tree(cfg.server_pid) if cfg.server_pid else []
    result: dict[str, Any] = {"label": cfg.label, "scenario": "pep", "contacts": cfg.contacts,
                              "target": f"{cfg.host}:{cfg.port}", "window": cfg.window,
                              "caps_ver": VER, "node": NODE, "server_pids": pids,
                              "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    run = Run(cfg)
    rss0 = pb.rss_kb(cfg.server_pid) if pids else None
    publisher, contacts, errors = await login_all(cfg, run)
    run.expected = len(contacts)
    result["login"] = {"ok": len(contacts), "errors": errors[:10]}
    print(f"[{cfg.label}] {len(contacts)}/{cfg.contacts} contacts online", flush=True)
    for e in errors[:5]:
        print("   ", e, flush=True)
    ready, tries, waited, best = await until_ready(cfg, run)
    result["ready"] = {"ready": ready, "tries": tries, "seconds": round(waited, 3),
                       "contacts_reached": best, "disco_answered": run.c.disco_answered}
    print(f"  ready={ready} after {tries} publish(es), {waited:.2f} s; "
          f"{run.c.disco_answered} disco#info queries answered", flush=True)
    if not ready or not contacts:
        return result
    run.pending.clear()
    run.c = Counters(disco_answered=run.c.disco_answered, asked=run.c.asked)
    if cfg.quiet_wait:
        result["others_before"] = pb.wait_quiet(cfg.server_pid, cfg.quiet_wait)
    rss1 = pb.rss_kb(cfg.server_pid) if pids else None
    meter = pb.Meter(cfg.server_pid)
    meter.start()
    window = await asyncio.wait_for(publish_phase(cfg, run), cfg.duration + 60)
    cpu = meter.stop()
    # The meter ran over warm-up too: scale server CPU to the window for the ratios.
    server_cpu = cpu["server_cpu_s"] * window / max(1e-9, cpu["wall_s"])
    c = run.c
    result["publish"] = {
        "window_s": round(window, 3), "publishes": c.completed,
        "publishes_per_s": round(c.completed / window, 1),
        "notifications": c.notifications,
        "notifications_per_s": round(c.notifications / window, 1),
        "errors": c.errors, "first_error": run.first_error,
        "lost_publishes": c.lost_publishes, "lost_notifications": c.lost_notifications,
        "stray": c.stray, "duplicates": c.duplicates, "to_publisher": c.to_publisher,
        "contacts_with_duplicates": len(c.duplicated_to),
        "of_them_asked_for_disco": len(c.duplicated_to & c.asked),
        "latency_last_ms": pct(c.last_us), "latency_result_ms": pct(c.result_us),
        "cpu": cpu,
        "server_cpu_us_per_publish": round(1e6 * server_cpu / max(1, c.completed), 1),
        "server_cpu_us_per_notification": round(1e6 * server_cpu / max(1, c.notifications),
                                                2),
    }
    await asyncio.sleep(cfg.drain)
    result["rss_kb"] = {"before_login": rss0, "after_login": rss1,
                        "after_run": pb.rss_kb(cfg.server_pid) if pids else None}
    p = result["publish"]
    print(f"  {p['publishes_per_s']} publishes/s, {p['notifications_per_s']} notifications/s, "
          f"last-notification latency {p['latency_last_ms']}, "
          f"{p['server_cpu_us_per_publish']} us server CPU/publish "
          f"({p['server_cpu_us_per_notification']} per notification), errors={c.errors} "
          f"lost={c.lost_publishes} stray={c.stray} cpu={cpu}", flush=True)
    for peer in [publisher, *contacts]:
        peer.close()
    await asyncio.sleep(0.5)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5222)
    ap.add_argument("--domain", default="localhost")
    ap.add_argument("--contacts", type=int, default=100)
    ap.add_argument("--first", type=int, default=1, help="the publisher's number")
    ap.add_argument("--user-prefix", default="pepuser")
    ap.add_argument("--password", default="pass")
    ap.add_argument("--resource", default="bench")
    ap.add_argument("--mech", default="SCRAM-SHA-1", choices=["PLAIN", "SCRAM-SHA-1"])
    ap.add_argument("--starttls", action="store_true", help="negotiate STARTTLS at login")
    ap.add_argument("--concurrency", type=int, default=20, help="logins in flight")
    ap.add_argument("--window", type=int, default=1, help="publishes in flight")
    ap.add_argument("--duration", type=float, default=15.0, help="publish phase, incl. warm-up")
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--max-publishes", type=int, default=1_000_000)
    ap.add_argument("--publish-timeout", type=float, default=5.0)
    ap.add_argument("--ready-timeout", type=float, default=30.0)
    ap.add_argument("--drain", type=float, default=1.0)
    ap.add_argument("--pad", type=int, default=32, help="padding bytes in each item")
    ap.add_argument("--timeout", type=float, default=60.0, help="per login step (s)")
    ap.add_argument("--phase-timeout", type=float, default=300.0)
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
    cfg.contacts = max(1, min(cfg.contacts, 10_000))
    if cfg.uvloop:
        try:
            import uvloop
            uvloop.install()
        except ImportError:
            pass
    result = asyncio.run(bench(cfg))
    if cfg.json:
        with open(cfg.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
