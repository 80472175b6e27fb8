#!/usr/bin/env python3
"""Soak: hold an XMPP server at a steady, churning load for a long time and watch it age.

Server-agnostic c2s over raw TCP (asyncio, uvloop when installed; expat for the XML), no
XMPP library. STARTTLS by default (``--plaintext`` to skip it), SCRAM-SHA-1 or PLAIN.
Provision first: accounts <prefix><first>..<prefix><first+users-1> with one password
(bench/provision.py for Tercet; the shared generator's ``register`` scenario for Prosody)
and, for presence to fan out, rosters (``provision.py rosters``). bench/README.md, "Soak".

Load, all of it running at once and each part bounded in count and time:

* ``--online`` sessions stay logged in (SASL, bind, roster get, initial presence); a
  session that ends is replaced by a login of a random account that is offline, at most
  ``--login-concurrency`` logins in flight.
* churn: ``--churn`` sessions end per second; a share ``--abrupt`` of them by a TCP reset
  with no ``</stream:stream>`` (SO_LINGER 0), the others with unavailable presence and a
  stream close.
* messages: ``--rate`` 1:1 chat messages per second in total (open loop), from a random
  online session to a random online account, or with probability ``--offline-share`` to
  an offline one (stored offline, delivered at its next login). A sender whose socket
  buffer is full skips its turn (counted) instead of queueing without bound.
* presence: ``--presence-rate`` status changes per second, broadcast to online contacts.
* loop lag, from outside: one more session (the first account, never churned) pings the
  server's domain (XEP-0199) every ``--ping-every`` s, one ping in flight: its round
  trip is the server's event-loop lag plus the ping's processing, plus this generator's
  own loop lag, which is measured too (a 100 ms timer) so the two can be told apart.
  With ``--metrics-url`` (Tercet's http_openmetrics ``/metrics``) the server's own
  ``tercet_event_loop_lag_seconds`` histogram is read every interval as well.

Every ``--interval`` s one JSON line goes to ``--out``: server RSS (the PID and its
descendants, /proc), open descriptors (/proc/PID/fd), server/generator/other CPU %,
sessions, logins and their latency, logouts, messages sent/delivered/stored/bounced,
delivery latency p50/p99/max, ping round trip, loop lags, errors. At the end, after every
session is closed, the descriptors must come back to the idle baseline; then the report
(the last line, and stdout) fits a line to RSS and to descriptors over the first and the
second half of the samples after ``--warmup`` and flags growth (the ``--max-*`` and
``--fd-slack`` options; bench/README.md, "How growth is flagged"); exit status 1 when
anything is flagged, 2 when the load could not start.

    python3 bench/soak.py --port 5532 --server-pid PID \
        --metrics-url http://127.0.0.1:5290/metrics                     # one hour
    python3 bench/soak.py --port 5532 --server-pid PID --duration 300 --interval 5
    python3 bench/soak.py --table bench/results/soak-<time>.jsonl      # markdown summary
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import random
import re
import socket
import ssl
import struct
import sys
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, cast
from xml.parsers import expat

HERE = Path(__file__).resolve().parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
STREAM_HEADER = ("<?xml version='1.0'?><stream:stream to='{domain}' xmlns='jabber:client' "
                 "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")

#: One received top-level element holds at most this many descendants and this much
#: text; more is dropped (the server is trusted, but the generator stays bounded).
MAX_CHILDREN = 256
MAX_TEXT = 65536
#: Elements queued while a session logs in (before that only answers are expected).
MAX_INBOX = 64
#: A sender skips its turn while this much is waiting in its socket buffer.
MAX_WRITE_BUFFER = 64 * 1024
#: Latencies kept per interval (a reservoir beyond that: percentiles stay unbiased).
MAX_LATENCIES = 200_000
#: Error texts kept per interval and in total (the counts are exact).
MAX_ERROR_TEXTS = 10
MAX_SAMPLES = 100_000
#: The generator's own lag timer.
LAG_TICK = 0.1
#: Load loops tick this often; per tick at most a tenth of a second's quota is sent, so
#: a stalled generator does not make up for it with a burst.
PUMP_TICK = 0.01
#: A graceful logout waits this long for the server to close the stream (RFC 6120 §4.4).
CLOSE_WAIT = 5.0
#: Sessions closing gracefully at once; past it a churned session is reset instead.
MAX_CLOSING = 200


# -- the server from /proc (its PID and every descendant) ------------------------------

def process_tree(root: int) -> list[int]:
    """``root`` and its descendants (a launcher's children are the server's too)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    stat = f.read()
                parents[int(entry)] = int(stat[stat.rindex(b")") + 2:].split()[1])
            except (OSError, ValueError, IndexError):
                pass  # the process ended while we looked
    tree = {root} if root in parents else set()
    for _ in range(64):  # process trees are shallow; bounded anyway
        more = {pid for pid, parent in parents.items() if parent in tree} - tree
        if not more:
            break
        tree |= more
    return sorted(tree)


def server_usage(root: int) -> dict[str, float]:
    """RSS (kB), open descriptors and CPU seconds of the server's process tree."""
    rss = fds = 0
    ticks = 0
    for pid in process_tree(root):
        try:
            with open(f"/proc/{pid}/status") as f:
                rss += next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
            with open(f"/proc/{pid}/stat", "rb") as fb:
                stat = fb.read()
            fields = stat[stat.rindex(b")") + 2:].split()
            ticks += int(fields[11]) + int(fields[12])
            fds += len(os.listdir(f"/proc/{pid}/fd"))
        except (OSError, ValueError, IndexError):
            pass
    return {"rss_kb": rss, "fds": fds, "cpu_s": ticks / CLK_TCK}


def machine_cpu() -> tuple[int, int]:
    """(all, idle) jiffies of the machine, for how busy everything else was."""
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    return sum(values), values[3] + values[4]


# -- XML: expat, one small tree per top-level element ------------------------------------

@dataclass(slots=True)
class El:
    name: str
    attrs: dict[str, str]
    children: list[El] = field(default_factory=list)
    text: str = ""

    def child(self, name: str) -> El | None:
        return next((c for c in self.children if c.name == name), None)


class StanzaReader:
    """Feeds bytes to expat and hands over each element at depth 1 of the stream.

    Namespace processing is off (names keep their prefix, ``stream:features``): the
    server's streams use the usual prefixes and nothing here depends on the rest."""

    def __init__(self, on_element: Callable[[El], None], on_close: Callable[[], None]) -> None:
        self.on_element = on_element
        self.on_close = on_close
        self.stack: list[El] = []
        self.depth = 0
        self.size = 0
        self.parser = expat.ParserCreate()
        self.parser.buffer_text = True
        self.parser.StartElementHandler = self._start
        self.parser.EndElementHandler = self._end
        self.parser.CharacterDataHandler = self._text

    def feed(self, data: bytes) -> None:
        self.parser.Parse(data, False)

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        self.depth += 1
        if self.depth == 1:
            return  # the stream header
        el = El(name, attrs)
        if self.stack:
            self.size += 1
            if self.size <= MAX_CHILDREN:
                self.stack[-1].children.append(el)
        else:
            self.size = 0
        self.stack.append(el)

    def _end(self, name: str) -> None:
        self.depth -= 1
        if self.depth == 0:
            self.on_close()
            return
        el = self.stack.pop()
        if not self.stack:
            self.on_element(el)

    def _text(self, data: str) -> None:
        if self.stack and len(self.stack[-1].text) < MAX_TEXT:
            self.stack[-1].text += data


# -- one session ---------------------------------------------------------------------------

class LoginError(Exception):
    """A login that did not complete; the text says at which step."""


class Session(asyncio.Protocol):
    """One client stream. While logging in, top-level elements queue in ``inbox`` for the
    login steps; once online they go to ``on_stanza``."""

    def __init__(self, cfg: argparse.Namespace, index: int, resource: str,
                 on_stanza: Callable[[Session, El], None]) -> None:
        self.cfg = cfg
        self.index = index
        self.user = f"{cfg.user_prefix}{index}"
        self.jid = f"{self.user}@{cfg.domain}"
        self.resource = resource
        self.on_stanza = on_stanza
        self.transport: asyncio.Transport | None = None
        self.reader = StanzaReader(self._element, self._stream_closed)
        self.inbox: deque[El] = deque(maxlen=MAX_INBOX)
        self.waiter: asyncio.Future[None] | None = None
        self.online = False
        self.closing = False
        self.closed = asyncio.get_running_loop().create_future()
        self.slot = -1  # index in the controller's list of online sessions
        self.problem: str | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            self.reader.feed(data)
        except expat.ExpatError as exc:
            self._fail(f"XML from the server: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closing and self.problem is None:
            self.problem = f"connection lost ({exc or 'closed by the server'})"
        self._wake()
        if not self.closed.done():
            self.closed.set_result(None)

    def _element(self, el: El) -> None:
        if el.name == "stream:error" and not self.closing:
            names = [c.name for c in el.children]
            self.problem = f"stream error {names}"
        if self.online:
            self.on_stanza(self, el)
        else:
            self.inbox.append(el)
            self._wake()

    def _stream_closed(self) -> None:
        if not self.closing and self.problem is None:
            self.problem = "the server closed the stream"
        if self.transport is not None:
            self.transport.close()

    def _fail(self, why: str) -> None:
        self.problem = self.problem or why
        if self.transport is not None:
            self.transport.abort()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    # sending
    def send(self, data: str | bytes) -> bool:
        """Write unless closing or the socket buffer is full; False when skipped."""
        t = self.transport
        if t is None or self.closing or t.is_closing() \
                or t.get_write_buffer_size() > MAX_WRITE_BUFFER:
            return False
        t.write(data.encode() if isinstance(data, str) else data)
        return True

    async def expect(self, accept: Callable[[El], bool], what: str) -> El:
        """The next queued element ``accept`` takes; others are dropped (login only)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.timeout
        while True:
            while self.inbox:
                el = self.inbox.popleft()
                if el.name == "stream:error":
                    raise LoginError(f"{what}: {self.problem}")
                if accept(el):
                    return el
            if self.problem is not None:
                raise LoginError(f"{what}: {self.problem}")
            if loop.time() >= deadline:
                raise LoginError(f"{what}: timed out")
            self.waiter = loop.create_future()
            try:
                await asyncio.wait_for(self.waiter, deadline - loop.time())
            except TimeoutError:
                pass
            finally:
                self.waiter = None

    # login (RFC 6120 §5 STARTTLS, §6 SASL, §7 bind; RFC 6121 §2.2 roster get)
    async def open_stream(self) -> El:
        self.reader = StanzaReader(self._element, self._stream_closed)
        self.inbox.clear()
        self.send(STREAM_HEADER.format(domain=self.cfg.domain))
        return await self.expect(lambda el: el.name == "stream:features", "stream features")

    async def starttls(self, features: El) -> El:
        if features.child("starttls") is None:
            raise LoginError("the server offers no STARTTLS (use --plaintext?)")
        self.send(f"<starttls xmlns='{NS_TLS}'/>")
        answer = await self.expect(lambda el: el.name in ("proceed", "failure"), "STARTTLS")
        if answer.name != "proceed":
            raise LoginError("STARTTLS refused")
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        tls = await asyncio.wait_for(
            loop.start_tls(self.transport, self, client_context(),
                           server_hostname=self.cfg.domain), self.cfg.timeout)
        if tls is None:
            raise LoginError("TLS handshake: connection closed")
        self.transport = tls
        return await self.open_stream()

    async def authenticate(self) -> None:
        if self.cfg.mech == "PLAIN":
            token = base64.b64encode(f"\0{self.user}\0{self.cfg.password}".encode()).decode()
            self.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{token}</auth>")
        else:
            await scram_sha1(self, self.cfg.password)
            return
        result = await self.expect(lambda el: el.name in ("success", "failure"), "SASL")
        if result.name != "success":
            raise LoginError(f"authentication failed for {self.user}")

    async def login(self) -> None:
        features = await self.open_stream()
        if not self.cfg.plaintext:
            features = await self.starttls(features)
        await self.authenticate()
        features = await self.open_stream()
        self.send("<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                  f"<resource>{self.resource}</resource></bind></iq>")
        await self.expect_result("bind")
        session = features.child("session")
        if session is not None and session.child("optional") is None:
            self.send("<iq type='set' id='sess'>"
                      "<session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>")
            await self.expect_result("sess")
        self.send("<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq>")
        await self.expect_result("roster")
        self.online = True
        for el in list(self.inbox):  # whatever came with the roster (a push) is a stanza
            self.on_stanza(self, el)
        self.inbox.clear()
        self.send("<presence/>")

    async def expect_result(self, id_: str) -> None:
        el = await self.expect(lambda el: el.name == "iq" and el.attrs.get("id") == id_, id_)
        if el.attrs.get("type") != "result":
            raise LoginError(f"{id_}: type {el.attrs.get('type')}")

    # ending
    async def logout(self) -> None:
        """Unavailable presence and a stream close; wait (bounded) for the server's."""
        if self.transport is None or self.closed.done():
            return
        self.closing = True
        if not self.transport.is_closing():  # written even past MAX_WRITE_BUFFER: the end
            self.transport.write(b"<presence type='unavailable'/></stream:stream>")
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), CLOSE_WAIT)
        except TimeoutError:
            self.transport.abort()

    def reset(self) -> None:
        """Gone without a word: SO_LINGER 0 makes close() send a TCP RST."""
        self.closing = True
        if self.transport is None:
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        self.transport.abort()


_CLIENT_CONTEXT: ssl.SSLContext | None = None


def client_context() -> ssl.SSLContext:
    """Loopback to a bench server with a self-signed certificate: no verification."""
    global _CLIENT_CONTEXT
    if _CLIENT_CONTEXT is None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        _CLIENT_CONTEXT = ctx
    return _CLIENT_CONTEXT


async def scram_sha1(session: Session, password: str) -> None:
    """SCRAM-SHA-1 (RFC 5802), checking the server's signature too."""
    nonce = base64.b64encode(os.urandom(18)).decode()
    first_bare = f"n={session.user},r={nonce}"
    session.send(f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-1'>"
                 f"{base64.b64encode(('n,,' + first_bare).encode()).decode()}</auth>")
    challenge = await session.expect(lambda el: el.name in ("challenge", "failure"), "SCRAM")
    if challenge.name != "challenge":
        raise LoginError(f"authentication failed for {session.user}")
    server_first = base64.b64decode(challenge.text)
    parts = dict(p.split(b"=", 1) for p in server_first.split(b","))
    if not parts[b"r"].startswith(nonce.encode()):
        raise LoginError("SCRAM: the server's nonce does not extend ours")
    salted = hashlib.pbkdf2_hmac("sha1", password.encode(), base64.b64decode(parts[b"s"]),
                                 int(parts[b"i"]))
    client_key = hmac.digest(salted, b"Client Key", "sha1")
    without_proof = f"c=biws,r={parts[b'r'].decode()}"
    auth_message = f"{first_bare},{server_first.decode()},{without_proof}".encode()
    signature = hmac.digest(hashlib.sha1(client_key).digest(), auth_message, "sha1")
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    final = f"{without_proof},p={base64.b64encode(proof).decode()}"
    session.send(f"<response xmlns='{NS_SASL}'>{base64.b64encode(final.encode()).decode()}"
                 "</response>")
    result = await session.expect(lambda el: el.name in ("success", "failure"), "SCRAM")
    if result.name != "success":
        raise LoginError(f"authentication failed for {session.user}")
    server_key = hmac.digest(salted, b"Server Key", "sha1")
    expected = base64.b64encode(hmac.digest(server_key, auth_message, "sha1"))
    if base64.b64decode(result.text) != b"v=" + expected:
        raise LoginError("SCRAM: wrong server signature")


# -- numbers ------------------------------------------------------------------------------

class Reservoir:
    """At most ``MAX_LATENCIES`` values, a uniform sample of everything added."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.seen = 0

    def add(self, value: float) -> None:
        self.seen += 1
        if len(self.values) < MAX_LATENCIES:
            self.values.append(value)
        else:
            slot = random.randrange(self.seen)
            if slot < MAX_LATENCIES:
                self.values[slot] = value

    def summary(self) -> dict[str, float | None]:
        values = sorted(self.values)
        return {"p50": percentile(values, 0.50), "p99": percentile(values, 0.99),
                "max": round(values[-1], 2) if values else None}


def percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def slope_per_hour(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, in value per hour."""
    if len(points) < 3:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return None
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return round(cov / var * 3600, 2)


def median(values: Iterable[float | None]) -> float | None:
    present = sorted(v for v in values if v is not None)
    return present[len(present) // 2] if present else None


@dataclass
class Interval:
    """What happened since the last sample; replaced at each sample."""

    logins: int = 0
    login_ms: Reservoir = field(default_factory=Reservoir)
    logouts: int = 0
    resets: int = 0
    sent: int = 0
    sent_offline: int = 0
    skipped: int = 0
    behind: int = 0
    delivered: int = 0
    stored_delivered: int = 0
    bounced: int = 0
    presence_sent: int = 0
    presence_received: int = 0
    latency_ms: Reservoir = field(default_factory=Reservoir)
    ping_ms: Reservoir = field(default_factory=Reservoir)
    ping_timeouts: int = 0
    gen_lag_ms: Reservoir = field(default_factory=Reservoir)
    errors: int = 0
    error_texts: list[str] = field(default_factory=list)

    def error(self, text: str) -> None:
        self.errors += 1
        if len(self.error_texts) < MAX_ERROR_TEXTS:
            self.error_texts.append(text)


# -- the server's own loop lag (Tercet's http_openmetrics) --------------------------------

RE_LAG = re.compile(r'^tercet_event_loop_lag_seconds_(bucket|sum|count)(?:\{le="([^"]+)"\})?'
                    r"\s+(\S+)", re.M)


def read_lag_histogram(url: str) -> dict[str, float]:
    """Cumulative counts by bucket bound, plus "sum" and "count" (blocking; a thread)."""
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 (a loopback URL)
        text = resp.read(4 << 20).decode()
    found: dict[str, float] = {}
    for kind, le, value in RE_LAG.findall(text):
        found[le if kind == "bucket" else kind] = float(value)
    if "count" not in found:
        raise ValueError("no tercet_event_loop_lag_seconds at this URL")
    return found


def lag_between(before: dict[str, float], after: dict[str, float]) -> dict[str, float | None]:
    """Mean and p99 (the upper bound of the bucket holding it) over one interval, ms."""
    count = after["count"] - before.get("count", 0.0)
    if count <= 0:
        return {"server_lag_mean_ms": None, "server_lag_p99_le_ms": None}
    mean = (after["sum"] - before.get("sum", 0.0)) / count * 1000
    p99: float | None = None
    for bound in sorted((k for k in after if k not in ("sum", "count")), key=float):
        if after[bound] - before.get(bound, 0.0) >= 0.99 * count:
            p99 = float(bound) * 1000
            break
    return {"server_lag_mean_ms": round(mean, 2), "server_lag_p99_le_ms": p99}


# -- the load ------------------------------------------------------------------------------

class Soak:
    """The population, the load loops and the interval counters."""

    def __init__(self, cfg: argparse.Namespace) -> None:
        self.cfg = cfg
        self.loop = asyncio.get_running_loop()
        # The first account is the prober's; the others are churned.
        self.idle = list(range(cfg.first + 1, cfg.first + cfg.users))
        self.online: list[Session] = []
        self.logging_in = 0
        self.closing = 0
        self.running = True
        self.interval = Interval()
        self.prober: Session | None = None
        self.ping: tuple[str, int, asyncio.Future[None]] | None = None
        self.resources = 0
        self.tasks: set[asyncio.Task[Any]] = set()
        self.pad = "x" * max(0, cfg.size - 30)

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    # the population
    def take_idle(self) -> int:
        i = random.randrange(len(self.idle))
        self.idle[i], self.idle[-1] = self.idle[-1], self.idle[i]
        return self.idle.pop()

    def add_online(self, session: Session) -> None:
        session.slot = len(self.online)
        self.online.append(session)

    def remove_online(self, session: Session) -> None:
        last = self.online.pop()
        if last is not session:
            self.online[session.slot] = last
            last.slot = session.slot
        session.slot = -1

    def connections(self) -> int:
        """Connections this generator has open or opening (the server holds one each)."""
        prober = self.prober is not None and not self.prober.closed.done()
        return len(self.online) + self.logging_in + self.closing + int(prober)

    # logins and logouts
    async def connect(self, index: int) -> Session:
        self.resources += 1
        session = Session(self.cfg, index, f"soak{self.resources}", self.received)
        t0 = time.monotonic()
        try:
            await asyncio.wait_for(self.loop.create_connection(
                lambda: session, self.cfg.host, self.cfg.port), self.cfg.timeout)
            await session.login()
        except (LoginError, OSError, TimeoutError) as exc:
            session.reset()
            raise LoginError(f"login {session.user}: {exc or type(exc).__name__}") from exc
        self.interval.logins += 1
        self.interval.login_ms.add((time.monotonic() - t0) * 1000)
        return session

    async def login(self, index: int) -> None:
        try:
            session = await self.connect(index)
        except LoginError as exc:
            self.interval.error(str(exc))
            self.idle.append(index)
            return
        finally:
            self.logging_in -= 1
        if not self.running:
            await session.logout()
            self.idle.append(index)
            return
        self.add_online(session)
        session.closed.add_done_callback(lambda _: self.lost(session))

    def lost(self, session: Session) -> None:
        """A session ended that the churn did not end: the server closed it."""
        if session.slot < 0:
            return
        self.remove_online(session)
        self.idle.append(session.index)
        self.interval.error(f"{session.user}: {session.problem}")

    def churn_one(self) -> None:
        if not self.online:
            return
        session = self.online[random.randrange(len(self.online))]
        self.remove_online(session)
        if self.closing >= MAX_CLOSING or random.random() < self.cfg.abrupt:
            session.reset()
            self.interval.resets += 1
            self.idle.append(session.index)
        else:
            self.closing += 1
            self.spawn(self.logout(session))

    async def logout(self, session: Session) -> None:
        try:
            await session.logout()
        finally:
            self.closing -= 1
            self.idle.append(session.index)
            self.interval.logouts += 1

    async def maintain(self) -> None:
        """Keep ``--online`` sessions, at most ``--login-concurrency`` logins in flight."""
        cfg = self.cfg
        while True:
            while (self.idle and len(self.online) + self.logging_in < cfg.online
                   and self.logging_in < cfg.login_concurrency):
                self.logging_in += 1
                self.spawn(self.login(self.take_idle()))
            await asyncio.sleep(0.05)

    # traffic
    def send_message(self) -> None:
        online = self.online
        if len(online) < 2:
            self.interval.skipped += 1
            return
        sender = online[random.randrange(len(online))]
        if self.idle and random.random() < self.cfg.offline_share:
            kind, to = "o", f"{self.cfg.user_prefix}{random.choice(self.idle)}@{self.cfg.domain}"
        else:
            recipient = online[random.randrange(len(online))]
            if recipient is sender:
                recipient = online[(sender.slot + 1) % len(online)]
            kind, to = "d", recipient.jid
        stanza = (f"<message to='{to}' type='chat'><body>@{kind}{time.monotonic_ns()}@ "
                  f"{self.pad}</body></message>")
        if sender.send(stanza):
            self.interval.sent += 1
            self.interval.sent_offline += kind == "o"
        else:
            self.interval.skipped += 1

    def change_presence(self) -> None:
        if not self.online:
            return
        session = self.online[random.randrange(len(self.online))]
        show = random.choice(("", "away", "xa", "dnd", "chat"))
        body = f"<show>{show}</show>" if show else ""
        if session.send(f"<presence>{body}<status>soak {time.time():.0f}</status></presence>"):
            self.interval.presence_sent += 1

    async def ticker(self, rate: float, action: Callable[[], None]) -> None:
        """``action`` ``rate`` times a second, open loop; a late tick does not burst."""
        if rate <= 0:
            return
        start = self.loop.time()
        done = 0
        cap = max(1, int(rate * 0.1))
        while True:
            await asyncio.sleep(PUMP_TICK)
            due = int((self.loop.time() - start) * rate) - done
            for _ in range(min(due, cap)):
                action()
            if due > cap:
                self.interval.behind += due - cap
            done += due

    def received(self, session: Session, el: El) -> None:
        iv = self.interval
        if el.name == "message":
            if el.attrs.get("type") == "error":
                iv.bounced += 1
                return
            body = el.child("body")
            if body is None or len(body.text) < 3 or body.text[0] != "@":
                return
            if body.text[1] == "o" or el.child("delay") is not None:
                iv.stored_delivered += 1  # XEP-0203 delay: it waited in offline storage
                return
            try:
                sent = int(body.text[2:body.text.index("@", 2)])
            except ValueError:
                return
            iv.delivered += 1
            iv.latency_ms.add((time.monotonic_ns() - sent) / 1e6)
        elif el.name == "presence":
            iv.presence_received += 1
        elif el.name == "iq":
            self.iq(session, el)

    def iq(self, session: Session, el: El) -> None:
        kind, id_ = el.attrs.get("type"), el.attrs.get("id", "")
        to = f" to={quote(el.attrs['from'])}" if "from" in el.attrs else ""
        if kind == "set":  # a roster push: acknowledge it (RFC 6121 §2.1.6)
            session.send(f"<iq type='result' id={quote(id_)}{to}/>")
        elif kind == "get":
            session.send(f"<iq type='error' id={quote(id_)}{to}><error type='cancel'>"
                         "<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
                         "</error></iq>")
        elif self.ping is not None and session is self.prober and id_ == self.ping[0]:
            _, sent, waiter = self.ping
            if kind == "result":
                self.interval.ping_ms.add((time.monotonic_ns() - sent) / 1e6)
            else:
                self.interval.error(f"ping answered with type {kind}")
            if not waiter.done():
                waiter.set_result(None)

    async def pinger(self) -> None:
        """One ping (XEP-0199) to the server's domain in flight, every ``--ping-every`` s."""
        cfg = self.cfg
        for n in range(1, 1 << 62):
            await asyncio.sleep(cfg.ping_every)
            if self.prober is None or self.prober.closed.done():
                await self.start_prober()
                continue
            waiter = self.loop.create_future()
            self.ping = (f"ping{n}", time.monotonic_ns(), waiter)
            self.prober.send(f"<iq type='get' id='ping{n}' to='{cfg.domain}'>"
                             "<ping xmlns='urn:xmpp:ping'/></iq>")
            try:
                await asyncio.wait_for(waiter, cfg.ping_timeout)
            except TimeoutError:
                self.interval.ping_timeouts += 1
                self.interval.error(f"ping: no answer within {cfg.ping_timeout:g} s")

    async def start_prober(self) -> None:
        if self.prober is not None:
            self.interval.error(f"prober: {self.prober.problem}")
        self.prober = None
        try:
            self.prober = await self.connect(self.cfg.first)
        except LoginError as exc:
            self.interval.error(f"prober {exc}")

    async def lag_meter(self) -> None:
        """How late this generator's own loop runs a 100 ms timer."""
        while True:
            t0 = self.loop.time()
            await asyncio.sleep(LAG_TICK)
            self.interval.gen_lag_ms.add(max(0.0, self.loop.time() - t0 - LAG_TICK) * 1000)

    def start_load(self) -> list[asyncio.Task[Any]]:
        cfg = self.cfg
        return [self.spawn(self.maintain()), self.spawn(self.lag_meter()),
                self.spawn(self.ticker(cfg.rate, self.send_message)),
                self.spawn(self.ticker(cfg.presence_rate, self.change_presence)),
                self.spawn(self.ticker(cfg.churn, self.churn_one)),
                self.spawn(self.pinger())]

    async def close_all(self, load: list[asyncio.Task[Any]]) -> None:
        """Stop the load, let logins and logouts in flight finish, then end every session
        with a stream close (each step bounded in time)."""
        self.running = False
        for task in load:
            task.cancel()
        await asyncio.gather(*load, return_exceptions=True)
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=self.cfg.timeout + CLOSE_WAIT)
        sessions = list(self.online) + ([self.prober] if self.prober is not None else [])
        for session in list(self.online):
            self.remove_online(session)
        await asyncio.gather(*(s.logout() for s in sessions))
        for task in list(self.tasks):  # only what outlived its own bound
            task.cancel()


def quote(value: str) -> str:
    """An XML attribute value in single quotes."""
    return "'" + value.replace("&", "&amp;").replace("<", "&lt;").replace("'", "&apos;") + "'"


# -- samples --------------------------------------------------------------------------------

class Sampler:
    """Takes one sample (server /proc, the interval's counters, the server's loop lag) and
    writes it as a JSON line."""

    def __init__(self, cfg: argparse.Namespace, soak: Soak, out: TextIO) -> None:
        self.cfg = cfg
        self.soak = soak
        self.out = out
        self.samples: list[dict[str, Any]] = []
        self.usage = server_usage(cfg.server_pid)
        self.wall = time.monotonic()
        self.gen = sum(os.times()[:2])
        self.machine = machine_cpu()
        self.histogram: dict[str, float] | None = None

    async def read_histogram(self) -> dict[str, float] | None:
        if not self.cfg.metrics_url:
            return None
        try:
            return await asyncio.to_thread(read_lag_histogram, self.cfg.metrics_url)
        except (OSError, ValueError) as exc:
            self.soak.interval.error(f"metrics: {exc}")
            return None

    def cpu(self, usage: dict[str, float]) -> dict[str, float]:
        """Server, generator and everything else, in % of one core since the last sample."""
        wall = max(time.monotonic() - self.wall, 1e-9)
        gen = sum(os.times()[:2])
        machine = machine_cpu()
        total, idle = machine[0] - self.machine[0], machine[1] - self.machine[1]
        busy = (1 - idle / total) * (os.cpu_count() or 1) if total > 0 else 0.0
        server = (usage["cpu_s"] - self.usage["cpu_s"]) / wall
        mine = (gen - self.gen) / wall
        self.wall, self.gen, self.machine = time.monotonic(), gen, machine
        return {"server_cpu_pct": round(100 * server, 1), "gen_cpu_pct": round(100 * mine, 1),
                "others_cpu_pct": round(max(0.0, 100 * (busy - server - mine)), 1)}

    async def take(self, phase: str, t: float) -> dict[str, Any]:
        histogram = await self.read_histogram()
        usage = server_usage(self.cfg.server_pid)
        wall = max(time.monotonic() - self.wall, 1e-9)
        iv, self.soak.interval = self.soak.interval, Interval()
        connections = self.soak.connections()
        record: dict[str, Any] = {
            "type": "sample", "phase": phase, "t": round(t, 1), "time": round(time.time(), 1),
            "rss_kb": usage["rss_kb"], "fds": usage["fds"], "connections": connections,
            "fd_excess": usage["fds"] - connections, "sessions": len(self.soak.online),
            **self.cpu(usage), "msgs_per_s": round(iv.sent / wall, 1)}
        self.usage = usage
        for name, value in vars(iv).items():
            if isinstance(value, Reservoir):
                record[name] = value.summary()
            elif name != "error_texts":
                record[name] = value
        record["error_texts"] = iv.error_texts
        record.update(server_lag(self.histogram, histogram))
        self.histogram = histogram or self.histogram
        if len(self.samples) < MAX_SAMPLES:
            self.samples.append(record)
        self.out.write(json.dumps(record) + "\n")
        self.out.flush()
        print(progress_line(record), file=sys.stderr, flush=True)
        return record


def server_lag(before: dict[str, float] | None,
               after: dict[str, float] | None) -> dict[str, float | None]:
    if before is None or after is None:
        return {"server_lag_mean_ms": None, "server_lag_p99_le_ms": None}
    return lag_between(before, after)


def progress_line(r: dict[str, Any]) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"
    return (f"{r['phase']:>8} t={r['t']:>7.1f}s  RSS {r['rss_kb'] / 1024:7.1f} MB  "
            f"fds {r['fds']:>5} ({r['fd_excess']:+d})  sessions {r['sessions']:>5}  "
            f"msg/s {r['msgs_per_s']:>7.1f}  p99 {ms(r['latency_ms']['p99'])} ms  "
            f"ping p99 {ms(r['ping_ms']['p99'])} ms  server lag "
            f"{ms(r['server_lag_mean_ms'])} ms  errors {r['errors']}")


# -- the report -------------------------------------------------------------------------------

COUNTS = ("logins", "logouts", "resets", "sent", "sent_offline", "skipped", "behind",
          "delivered", "stored_delivered", "bounced", "presence_sent", "presence_received",
          "ping_timeouts", "errors")
#: Latency is flagged only when it also grew by this much (ms): p99s of a few ms jitter.
LATENCY_FLOOR_MS = 10.0
#: Other processes above this (% of one core, median of a half) make latency suspect.
BUSY_PCT = 50.0
#: Slopes need at least this many samples after the warm-up (three in each half).
MIN_SAMPLES = 6


def halves(samples: list[dict[str, Any]], warmup: float) -> tuple[list[dict[str, Any]],
                                                                   list[dict[str, Any]]]:
    """The load samples after the warm-up, split at the middle of their time span."""
    warm = [s for s in samples if s["phase"] == "load" and s["t"] > warmup]
    if not warm:
        return [], []
    mid = (warmup + warm[-1]["t"]) / 2
    return [s for s in warm if s["t"] <= mid], [s for s in warm if s["t"] > mid]


def trend(parts: tuple[list[dict[str, Any]], ...], key: str,
          scale: float = 1.0) -> list[float | None]:
    return [slope_per_hour([(s["t"], s[key] * scale) for s in part]) for part in parts]


def typical_p99(parts: tuple[list[dict[str, Any]], ...], key: str) -> list[float | None]:
    """The median over a half of the interval p99s (one bad interval does not decide)."""
    return [median(s[key]["p99"] for s in part) for part in parts]


def grew(before: float | None, after: float | None, factor: float) -> bool:
    return before is not None and after is not None and after > factor * before \
        and after > before + LATENCY_FLOOR_MS


def make_report(cfg: dict[str, Any], samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Slopes, totals and what is flagged, from the samples alone."""
    parts = halves(samples, cfg["warmup"])
    load = [s for s in samples if s["phase"] == "load"]
    base = next(s for s in samples if s["phase"] == "baseline")
    after = next((s for s in samples if s["phase"] == "after"), None)
    report: dict[str, Any] = {
        "type": "report", "samples": len(load), "after_warmup": sum(map(len, parts)),
        "rss_mb": {"baseline": round(base["rss_kb"] / 1024, 1),
                   "end_of_warmup": round(parts[0][0]["rss_kb"] / 1024, 1) if parts[0] else None,
                   "end": round(load[-1]["rss_kb"] / 1024, 1) if load else None,
                   "max": round(max((s["rss_kb"] for s in load), default=0) / 1024, 1)},
        "rss_slope_mb_per_h": trend(parts, "rss_kb", 1 / 1024),
        "fds_slope_per_h": trend(parts, "fds"),
        "fd_excess_slope_per_h": trend(parts, "fd_excess"),
        "fds": {"baseline": base["fds"], "after_close": after["fds"] if after else None,
                "max": max((s["fds"] for s in load), default=0)},
        "latency_p99_ms": typical_p99(parts, "latency_ms"),
        "ping_p99_ms": typical_p99(parts, "ping_ms"),
        "server_lag_mean_ms": [median(s["server_lag_mean_ms"] for s in part) for part in parts],
        "others_cpu_pct": [median(s["others_cpu_pct"] for s in part) for part in parts],
        "totals": {k: sum(s[k] for s in samples) for k in COUNTS},
        "msgs_per_s": round(sum(s["sent"] for s in load) / max(1e-9, cfg["duration"]), 1),
        "error_texts": [t for s in samples for t in s["error_texts"]][:MAX_ERROR_TEXTS]}
    report["flags"] = flags(cfg, report, after)
    report["warnings"] = warnings(cfg, report, load)
    return report


def flags(cfg: dict[str, Any], r: dict[str, Any], after: dict[str, Any] | None) -> list[str]:
    """Growth and failures: each one makes the exit status 1."""
    found = []
    if r["after_warmup"] < MIN_SAMPLES:
        found.append(f"only {r['after_warmup']} samples after the warm-up (need "
                     f"{MIN_SAMPLES}): lengthen --duration or shorten --interval/--warmup")
    rss = r["rss_slope_mb_per_h"][1]
    if rss is not None and rss > cfg["max_rss_slope"]:
        found.append(f"RSS grows {rss:.1f} MB/h over the second half "
                     f"(limit {cfg['max_rss_slope']:g})")
    excess = r["fd_excess_slope_per_h"][1]
    if excess is not None and excess > cfg["max_fd_slope"]:
        found.append(f"descriptors beyond the open connections grow {excess:.1f}/h over "
                     f"the second half (limit {cfg['max_fd_slope']:g})")
    if after is None or after["fds"] > r["fds"]["baseline"] + cfg["fd_slack"]:
        found.append(f"descriptors did not come back to the baseline after every session "
                     f"closed: {r['fds']['baseline']} -> {r['fds']['after_close']} "
                     f"(slack {cfg['fd_slack']})")
    for key, what in (("latency_p99_ms", "message latency p99"), ("ping_p99_ms", "ping p99"),
                      ("server_lag_mean_ms", "server loop lag")):
        first, second = r[key]
        if grew(first, second, cfg["max_latency_growth"]):
            found.append(f"{what} grew from {first} to {second} ms between the halves")
    if r["totals"]["errors"] > cfg["max_errors"]:
        found.append(f"{r['totals']['errors']} errors (limit {cfg['max_errors']})")
    if r["totals"]["delivered"] == 0:
        found.append("no message was delivered")
    return found


def warnings(cfg: dict[str, Any], r: dict[str, Any], load: list[dict[str, Any]]) -> list[str]:
    """What makes the run weaker without being the server's fault."""
    found = []
    if cfg["rate"] > 0 and r["msgs_per_s"] < 0.9 * cfg["rate"]:
        found.append(f"messages sent at {r['msgs_per_s']}/s, below 90 % of --rate "
                     f"{cfg['rate']:g} (skipped {r['totals']['skipped']}, generator behind "
                     f"{r['totals']['behind']})")
    busy = [v for v in r["others_cpu_pct"] if v is not None]
    if busy and max(busy) > BUSY_PCT:
        found.append(f"other processes used {max(busy):g} % of a core (median of a half): "
                     "latency and lag figures and their growth may be theirs")
    gen_lag = median(s["gen_lag_ms"]["p99"] for s in load)
    if gen_lag is not None and gen_lag > 50:
        found.append(f"the generator's own loop lag p99 is {gen_lag} ms (median of "
                     "intervals): latencies and ping include it")
    return found


# -- running ---------------------------------------------------------------------------------

async def ramp(soak: Soak) -> None:
    """Wait (at most ``--ramp-timeout`` s) for ``--online`` sessions."""
    deadline = soak.loop.time() + soak.cfg.ramp_timeout
    while len(soak.online) < soak.cfg.online and soak.loop.time() < deadline:
        await asyncio.sleep(0.1)


async def settle(cfg: argparse.Namespace, baseline: int) -> None:
    """Give the server up to ``--settle`` s to close what the sessions held."""
    deadline = time.monotonic() + cfg.settle
    while time.monotonic() < deadline:
        if server_usage(cfg.server_pid)["fds"] <= baseline + cfg.fd_slack:
            return
        await asyncio.sleep(0.5)


async def soak_main(cfg: argparse.Namespace, out: TextIO) -> int:
    soak = Soak(cfg)
    sampler = Sampler(cfg, soak, out)
    settings = {k: v for k, v in vars(cfg).items() if k not in ("password",)}
    out.write(json.dumps({"type": "config", **settings}) + "\n")
    baseline = await sampler.take("baseline", 0.0)
    t0 = soak.loop.time()
    await soak.start_prober()
    if soak.prober is None:
        print(f"soak: cannot log in: {soak.interval.error_texts}", file=sys.stderr)
        return 2
    keep = [soak.spawn(soak.maintain()), soak.spawn(soak.lag_meter())]
    await ramp(soak)
    await sampler.take("ramp", soak.loop.time() - t0)
    if not soak.online:
        await soak.close_all(keep)
        print("soak: no session logged in during the ramp", file=sys.stderr)
        return 2
    load = keep + soak.start_load()
    start = soak.loop.time()
    steps = max(1, round(cfg.duration / cfg.interval))
    for k in range(1, steps + 1):
        await asyncio.sleep(max(0.0, start + min(cfg.duration, k * cfg.interval)
                                - soak.loop.time()))
        await sampler.take("load", soak.loop.time() - start)
    await soak.close_all(load)
    await settle(cfg, baseline["fds"])
    await sampler.take("after", soak.loop.time() - start)
    report = make_report(settings, sampler.samples)
    out.write(json.dumps(report) + "\n")
    print(json.dumps(report, indent=1))
    for line in report["flags"]:
        print(f"FLAGGED: {line}", file=sys.stderr)
    for line in report["warnings"]:
        print(f"warning: {line}", file=sys.stderr)
    return 1 if report["flags"] else 0


# -- the markdown summary of a finished run -------------------------------------------------

def print_table(path: Path, rows: int = 13) -> None:
    """About ``rows`` load samples evenly spread, then the report's main figures."""
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    load = [r for r in lines if r.get("type") == "sample" and r["phase"] == "load"]
    report = next((r for r in lines if r.get("type") == "report"), None)
    step = max(1, len(load) // rows)
    print("| t (m:ss) | RSS MB | fds (beyond connections) | sessions | msgs/s | latency p50 / "
          "p99 ms | ping p99 ms | server lag mean ms | server CPU % | others CPU % | errors |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    def show(value: Any) -> str:
        return "-" if value is None else str(value)
    for r in load[step - 1::step]:
        lat, ping, t = r["latency_ms"], r["ping_ms"], int(r["t"])
        print(f"| {t // 60}:{t % 60:02d} | {r['rss_kb'] / 1024:.1f} | {r['fds']} "
              f"({r['fd_excess']}) | {r['sessions']} | {r['msgs_per_s']:.0f} | "
              f"{show(lat['p50'])} / {show(lat['p99'])} | {show(ping['p99'])} | "
              f"{show(r['server_lag_mean_ms'])} | {r['server_cpu_pct']} | "
              f"{r['others_cpu_pct']} | {r['errors']} |")
    if report is None:
        print("\n(no report: the run did not finish)")
        return
    first, second = report["rss_slope_mb_per_h"]
    print(f"\nRSS slope after warm-up, first / second half: {first} / {second} MB/h; "
          f"descriptors beyond connections: {' / '.join(map(str, report['fd_excess_slope_per_h']))}"
          f"/h; descriptors {report['fds']['baseline']} idle before, "
          f"{report['fds']['after_close']} after every session closed.")
    print(f"Totals: {json.dumps(report['totals'])}")
    print(f"Flags: {report['flags'] or 'none'}; warnings: {report['warnings'] or 'none'}")


# -- command line ----------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add = ap.add_argument
    add("--table", type=Path, default=None, help="print the summary of a finished run's JSONL")
    add("--host", default="127.0.0.1", help="a loopback address")
    add("--port", type=int, default=5222)
    add("--domain", default="localhost")
    add("--server-pid", type=int, default=0, help="the server's PID (RSS, descriptors, CPU)")
    add("--users", type=int, default=2000, help="accounts <prefix><first>.. (population)")
    add("--first", type=int, default=1)
    add("--user-prefix", default="soak")
    add("--password", default="pass")
    add("--mech", choices=["SCRAM-SHA-1", "PLAIN"], default="SCRAM-SHA-1")
    add("--plaintext", action="store_true", help="no STARTTLS")
    add("--online", type=int, default=1000, help="sessions kept online")
    add("--login-concurrency", type=int, default=20)
    add("--rate", type=float, default=2000, help="1:1 messages per second in total")
    add("--size", type=int, default=100, help="body bytes per message (about)")
    add("--offline-share", type=float, default=0.02, help="messages to offline accounts")
    add("--presence-rate", type=float, default=50, help="status changes per second")
    add("--churn", type=float, default=10, help="sessions ended (and replaced) per second")
    add("--abrupt", type=float, default=0.25, help="share of churned sessions reset")
    add("--ping-every", type=float, default=1.0)
    add("--ping-timeout", type=float, default=5.0)
    add("--metrics-url", default="", help="Tercet's http_openmetrics /metrics (loop lag)")
    add("--duration", type=float, default=3600, help="seconds of load after the ramp")
    add("--interval", type=float, default=10, help="seconds between samples")
    add("--warmup", type=float, default=None, help="seconds left out of the slopes "
        "(default: a fifth of --duration, at most 300)")
    add("--ramp-timeout", type=float, default=300)
    add("--timeout", type=float, default=30, help="seconds per login step")
    add("--settle", type=float, default=30, help="seconds for descriptors to come back")
    add("--max-rss-slope", type=float, default=20, help="MB/h, second half after warm-up")
    add("--max-fd-slope", type=float, default=50, help="descriptors/h beyond connections")
    add("--fd-slack", type=int, default=5, help="descriptors above the baseline at the end")
    add("--max-latency-growth", type=float, default=2.0, help="second-half p99 / first-half")
    add("--max-errors", type=int, default=0)
    add("--out", type=Path, default=None, help="JSONL (default bench/results/soak-<time>.jsonl)")
    add("--no-uvloop", dest="uvloop", action="store_false")
    cfg = ap.parse_args(argv)
    if cfg.table is None:
        check_args(ap, cfg)
    return cfg


def check_args(ap: argparse.ArgumentParser, cfg: argparse.Namespace) -> None:
    import ipaddress
    try:
        loopback = ipaddress.ip_address(cfg.host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        ap.error("--host must be a loopback address: this load is not for other machines")
    if not cfg.server_pid or not os.path.isdir(f"/proc/{cfg.server_pid}"):
        ap.error("--server-pid must name the running server's process")
    if cfg.users < cfg.online + 2:
        ap.error("--users must exceed --online by 2 (the prober, and an account to churn to)")
    if cfg.interval <= 0 or cfg.duration < cfg.interval:
        ap.error("--interval must be positive and at most --duration")
    if cfg.warmup is None:
        cfg.warmup = min(300.0, cfg.duration / 5)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    if cfg.table is not None:
        print_table(cfg.table)
        return 0
    if cfg.uvloop:
        try:
            import uvloop
            uvloop.install()
        except ImportError:
            pass
    out_path = cfg.out or HERE / "results" / f"soak-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    cfg.out = str(out_path)
    print(f"soak: samples to {out_path}", file=sys.stderr)
    with out_path.open("w") as out:
        return asyncio.run(soak_main(cfg, out))


if __name__ == "__main__":
    sys.exit(main())
