"""Abuse and load controls (as Prosody's ``mod_limits``): how fast each connection may
send, and how often one address may connect.

* **Read rates** per stream type (``c2s``, ``s2sin``, ``s2sout``, ``component``; ``s2s``
  sets both server directions): a token bucket per connection, ``rate`` bytes per second
  with ``burst`` seconds' worth saved up. A connection that spends its budget has its
  reading paused until the bucket is back at zero; the kernel's socket buffer and TCP flow
  control then slow the sender down, so nothing is buffered here and nothing loops.
  ``unlimited_jids`` lift the limit once those accounts authenticate.
* **Connection rates** per IP address: a token bucket per address,
  ``limits_connection_rate`` connections per minute with ``limits_connection_burst`` at
  once; the next connection is closed with ``policy-violation`` before any negotiation.

RFC 6120 §13.12 lets a server limit what a peer may use, to counter denial of service.
Each decision is logged (at most one line per address or session per
``limits_log_interval``, with the count of lines held back). Login throttles are
``saslauth``'s and registration throttles ``register``'s. See docs/limits.md.
"""

from __future__ import annotations

import ipaddress
import time
from typing import Any

from tercet.module import (
    ClientSession,
    Invalid,
    ModuleApi,
    ModuleError,
    Option,
    ReadLimiter,
    Session,
)
from tercet.modules._ratelimit import (
    Buckets,
    LogLimiter,
    Network,
    TokenBucket,
    ip_in,
    parse_burst,
    parse_rate,
)

META = {"summary": "Read-rate and connection-rate limits", "stage": "stable", "xeps": []}
GLOBAL = True

#: Prosody's defaults: clients 10 kB/s, incoming server links 30 kB/s, 2 s of burst.
DEFAULT_LIMITS: dict[str, dict[str, Any]] = {
    "c2s": {"rate": "10kb/s", "burst": "2s"},
    "s2sin": {"rate": "30kb/s", "burst": "2s"},
}
KINDS = ("c2s", "s2sin", "s2sout", "component")
#: Keys of the ``limits`` table: the stream types, and ``s2s`` for both server directions.
TABLE_KEYS = (*KINDS, "s2s")
DEFAULT_BURST = 2.0


def check_limits(value: Any) -> list[Invalid]:
    """The ``limits`` table: stream type -> {rate, burst}; "unlimited" lifts a default."""
    if not isinstance(value, dict):
        return [Invalid("a table of stream types", repr(value))]
    for kind, entry in value.items():
        if kind not in TABLE_KEYS:
            return [Invalid(f"one of {', '.join(TABLE_KEYS)}", kind,
                            "Name a stream type as Prosody does: c2s, s2sin, s2sout, "
                            "component (s2s: both server directions).")]
        if not isinstance(entry, dict) or set(entry) - {"rate", "burst"}:
            return [Invalid("a table with rate and burst", repr(entry),
                            f'Write limits.{kind} = {{ rate = "10kb/s", burst = "2s" }}.')]
        try:
            if entry.get("rate") != "unlimited":
                parse_rate(entry.get("rate"))
            parse_burst(entry.get("burst", DEFAULT_BURST))
        except ValueError as exc:
            return [Invalid("a rate like \"10kb/s\" and a burst like \"2s\"", repr(entry),
                            str(exc))]
    return []


def check_networks(value: Any) -> list[Invalid]:
    for entry in value if isinstance(value, list) else []:
        try:
            ipaddress.ip_network(str(entry), strict=False)
        except ValueError:
            return [Invalid("IP addresses or CIDR networks", repr(entry),
                            'Write e.g. "192.0.2.7" or "2001:db8::/32".')]
    return []


LIMITS = Option("limits", dict[str, dict[str, Any]], DEFAULT_LIMITS,
                "Read rate per stream type: { c2s = { rate = \"10kb/s\", burst = \"2s\" } } "
                "(kb = 1000 bytes); merged over the defaults.",
                scope="global", validate=check_limits, cite="RFC 6120 §13.12")
UNLIMITED = Option("unlimited_jids", list[str], [],
                   "Accounts whose client connections have no read limit once they log in.",
                   scope="global")
CONN_RATE = Option("limits_connection_rate", int, 100,
                   "Connections one IP address may open per minute (0: no limit).",
                   min=0, max=1_000_000, scope="global", cite="RFC 6120 §13.12")
CONN_BURST = Option("limits_connection_burst", int, 50,
                    "Connections one IP address may open at once before the rate applies.",
                    min=1, max=1_000_000, scope="global")
CONN_EXEMPT = Option("limits_connection_exempt", list[str], [],
                     "IP addresses or networks without a connection rate limit.",
                     scope="global", validate=check_networks)
TRACKED = Option("limits_tracked_addresses", int, 100_000,
                 "IP addresses whose connection budget is remembered (least recent "
                 "forgotten first).", min=100, max=10_000_000, scope="global")
LOG_INTERVAL = Option("limits_log_interval", float, 60.0,
                      "Seconds between two log lines about one address or session.",
                      min=0, max=86400, scope="global")
OPTIONS: list[Option[Any]] = [LIMITS, UNLIMITED, CONN_RATE, CONN_BURST, CONN_EXEMPT,
                              TRACKED, LOG_INTERVAL]


def read_rates(table: dict[str, dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """Stream type -> (bytes per second, burst seconds), the table merged over the
    defaults; "unlimited" removes a type."""
    merged: dict[str, dict[str, Any]] = dict(DEFAULT_LIMITS)
    for key, entry in table.items():
        for kind in ("s2sin", "s2sout") if key == "s2s" else (key,):
            merged[kind] = entry
    return {kind: (parse_rate(entry["rate"]), parse_burst(entry.get("burst", DEFAULT_BURST)))
            for kind, entry in merged.items() if entry.get("rate") != "unlimited"}


class Budget:
    """One connection's read budget (the network layer's ``ReadLimiter``)."""

    __slots__ = ("bucket", "kind", "policy", "session", "unlimited")

    def __init__(self, policy: Limits, kind: str, session: Session,
                 bucket: TokenBucket) -> None:
        self.policy = policy
        self.kind = kind
        self.session = session
        self.bucket = bucket
        self.unlimited = False

    def consume(self, size: int) -> int:
        if self.unlimited:
            return size
        allowed = self.bucket.take_up_to(size)
        if allowed < size:
            self.policy.report_throttle(self, size - allowed)
        return allowed

    def wait(self, size: int) -> float:
        return 0.0 if self.unlimited else self.bucket.wait_for(size)


class Limits:
    """The server's traffic policy (``module.limit_traffic``)."""

    def __init__(self, module: ModuleApi, clock: Any = time.monotonic) -> None:
        self.module = module
        self.clock = clock
        try:
            self.rates = read_rates(module.option(LIMITS))
        except (ValueError, KeyError) as exc:  # the validator reports it at check time
            raise ModuleError(f"limits: {exc}") from None
        self.unlimited = {j.lower() for j in module.option(UNLIMITED)}
        per_minute = module.option(CONN_RATE)
        self.connections = Buckets(per_minute / 60.0, module.option(CONN_BURST),
                                   module.option(TRACKED), clock) if per_minute else None
        self.exempt: list[Network] = [ipaddress.ip_network(str(n), strict=False)
                                      for n in module.option(CONN_EXEMPT)]
        self.logs = LogLimiter(module.option(LOG_INTERVAL), clock)

    # -- TrafficPolicy --------------------------------------------------------------------
    def admit(self, ip: str, kind: str) -> bool:
        if self.connections is None or self.is_exempt(ip):
            return True
        if self.connections.try_take(ip):
            return True
        held_back = self.logs.allow(f"ip {ip}")
        if held_back is not None:
            self.module.log.warning(
                "refusing a %s connection from %s: over %d connections per minute "
                "(burst %d)%s", kind, ip, round(self.connections.rate * 60),
                self.connections.capacity, more(held_back))
        return False

    def read_limiter(self, kind: str, session: Session) -> ReadLimiter | None:
        rate = self.rates.get(kind)
        if rate is None:
            return None
        bytes_per_second, burst = rate
        # At least one byte of capacity, so a zero burst still lets the stream through.
        capacity = max(bytes_per_second * burst, 1.0)
        budget = Budget(self, kind, session,
                        TokenBucket(bytes_per_second, capacity, self.clock))
        session.data[self.module.name] = budget
        return budget

    # -- helpers --------------------------------------------------------------------------
    def is_exempt(self, ip: str) -> bool:
        return ip_in(ip, self.exempt)

    def report_throttle(self, budget: Budget, held: int) -> None:
        session = budget.session
        held_back = self.logs.allow(f"session {session.id}")
        if held_back is None:
            return
        peer = getattr(session, "peer", "?")
        self.module.log.info(
            "throttling %s session %s from %s: over %.0f bytes/s (burst %.0f bytes); "
            "%d bytes wait, reading paused%s", budget.kind, session.id, peer,
            budget.bucket.rate, budget.bucket.capacity, held, more(held_back))

    def on_authenticated(self, session: ClientSession) -> None:
        """``unlimited_jids``: the account's connection reads without a budget."""
        budget = session.data.get(self.module.name)
        if not isinstance(budget, Budget) or session.username is None or session.host is None:
            return
        if f"{session.username}@{session.host.name}".lower() in self.unlimited:
            budget.unlimited = True
            self.module.log.debug("no read limit for %s (unlimited_jids)", session.username)


def more(held_back: int) -> str:
    return f" ({held_back} more since the last report)" if held_back else ""


def load(module: ModuleApi) -> None:
    limits = Limits(module)
    module.limit_traffic(limits)
    module.hook_each_host("authentication-success", limits.on_authenticated)
    for kind, (rate, burst) in sorted(limits.rates.items()):
        module.log.debug("%s read limit: %.0f bytes/s, burst %.1f s", kind, rate, burst)

