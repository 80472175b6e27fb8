"""Metrics for Prometheus (Prosody's mod_http_openmetrics): ``GET /metrics`` on the HTTP
server, in the OpenMetrics text format when the scraper's ``Accept:`` asks for it, else in
the Prometheus text format, from the prometheus-client library. docs/metrics.md.

Nothing here runs per stanza: the core counts stanzas in plain dicts (core/stats.py) and
the sessions are counted when a scrape comes; the module adds counters on events
(authentication, s2s, module failures), a histogram per storage operation, and a timer
that measures how late the event loop runs a scheduled callback. Every series lives in
a registry of this module's own (not prometheus-client's process-wide default), so two
servers in one process, or a reload, never share or collide.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterable
from typing import Any

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tercet.module import (
    ClientSession,
    ComponentSession,
    Invalid,
    LoadedModule,
    ModuleApi,
    Option,
    ServerSession,
    Session,
)
from tercet.modules._ratelimit import Network

GLOBAL = True
META = {"summary": "Metrics for Prometheus at /metrics (OpenMetrics)", "stage": "beta",
        "xeps": []}

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _valid_ips(value: list[str]) -> list[Invalid]:
    for item in value:
        try:
            ipaddress.ip_address(item)
        except ValueError:
            return [Invalid("IP addresses", repr(item),
                            'Use addresses such as "127.0.0.1"; a block goes in '
                            "openmetrics_allow_cidr.")]
    return []


def _valid_cidr(value: str) -> list[Invalid]:
    if value:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            return [Invalid("a CIDR block", repr(value), 'Write a block such as "10.0.0.0/8".')]
    return []


ALLOW_IPS = Option("openmetrics_allow_ips", list[str], ["127.0.0.1", "::1"],
                   "Addresses that may read /metrics (after trusted proxies).",
                   scope="global", validate=_valid_ips)
ALLOW_CIDR = Option("openmetrics_allow_cidr", str, "",
                    'A block of addresses that may read /metrics too ("10.0.0.0/8").',
                    scope="global", validate=_valid_cidr, example="10.0.0.0/8")

OPTIONS: list[Option[Any]] = [ALLOW_IPS, ALLOW_CIDR]

#: How often the event loop's lag is measured, in seconds.
LAG_INTERVAL = 1.0
#: Storage operations take from microseconds (memory) to a disk's fsync (SQLite commit).
STORAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                   0.25, 0.5, 1.0, 2.5)
#: A healthy loop runs a callback within a millisecond or two of its time.
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: Counting handlers run first and return None: a handler that answers the event (a
#: non-None result ends the chain) cannot hide it from the counts.
OBSERVER = 1000
#: Label values that come from names the server knows (mechanisms, s2s methods) are
#: bounded anyway; past this many distinct ones they are counted as "other".
MAX_LABEL_VALUES = 32


def session_type(session: Session) -> str | None:
    """The ``type`` label of a session, or None for those not counted (the hosts' own)."""
    if isinstance(session, ClientSession):
        return "c2s" if session.transport == "tcp" else session.transport
    if isinstance(session, ServerSession):
        return "s2s_in" if session.direction == "in" else "s2s_out"
    if isinstance(session, ComponentSession):
        return "component"
    return None


def authenticated_host(session: Session) -> str | None:
    """The host a session has authenticated for, or None while it negotiates."""
    if isinstance(session, ServerSession):
        done = session.remote_domains if session.direction == "in" else session.authenticated
        return session.local_domain if done else None
    if isinstance(session, (ClientSession, ComponentSession)) and session.authenticated:
        return session.host.name if session.host is not None else None
    return None


class ServerCollector(Collector):
    """Series read from the server's state at each scrape: sessions and stanza counts."""

    def __init__(self, module: ModuleApi) -> None:
        self.module = module

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        sessions, unauthenticated, hibernated, received, sent = self._families()
        module = self.module
        counts: dict[tuple[str, str], int] = {}
        for host in module.hosts:
            if module.host_kind(host) == "local":
                for always in ("c2s", "s2s_in", "s2s_out"):
                    counts[(always, host)] = 0
        negotiating: dict[str, int] = {}
        asleep: dict[str, int] = {}
        for session in module.live_sessions():
            kind = session_type(session)
            if kind is None or session.closed:
                continue
            name = authenticated_host(session)
            if name is None:
                negotiating[kind] = negotiating.get(kind, 0) + 1
                continue
            counts[(kind, name)] = counts.get((kind, name), 0) + 1
            if isinstance(session, ClientSession) and session.detached:
                asleep[name] = asleep.get(name, 0) + 1
        for (kind, host), n in sorted(counts.items()):
            sessions.add_metric([kind, host], n)
        for kind, n in sorted(negotiating.items()):
            unauthenticated.add_metric([kind], n)
        for host, n in sorted(asleep.items()):
            hibernated.add_metric([host], n)
        for stream, stanzas in module.server_stats.stanzas.items():
            for name, n in stanzas.received.items():
                received.add_metric([stream, name], n)
            for name, n in stanzas.sent.items():
                sent.add_metric([stream, name], n)
        return [sessions, unauthenticated, hibernated, received, sent]

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily,
                             CounterMetricFamily, CounterMetricFamily]:
        return (
            GaugeMetricFamily("tercet_sessions", "Authenticated sessions by type and host.",
                              labels=["type", "host"]),
            GaugeMetricFamily("tercet_unauthenticated_connections",
                              "Connections that have not authenticated yet, by type.",
                              labels=["type"]),
            GaugeMetricFamily("tercet_hibernated_sessions",
                              "Client sessions kept without a connection (XEP-0198).",
                              labels=["host"]),
            CounterMetricFamily("tercet_stanzas_received",
                                "Stanzas received, by stream type and stanza kind.",
                                labels=["stream", "kind"]),
            CounterMetricFamily("tercet_stanzas_sent",
                                "Stanzas sent, by stream type and stanza kind.",
                                labels=["stream", "kind"]),
        )


class Bounded:
    """A label value from a set that should stay small; "other" past the bound."""

    def __init__(self, limit: int = MAX_LABEL_VALUES) -> None:
        self.seen: set[str] = set()
        self.limit = limit

    def __call__(self, value: str | None) -> str:
        value = value or "unknown"
        if value not in self.seen:
            if len(self.seen) >= self.limit:
                return "other"
            self.seen.add(value)
        return value


class Metrics:
    """The module's registry and the series it updates on events."""

    def __init__(self, module: ModuleApi) -> None:
        self.module = module
        self.registry = registry = CollectorRegistry()
        info = Info("tercet", "Tercet build information.", registry=registry)
        info.info({"version": str(module.server_info["version"])})
        self.auth = Counter("tercet_authentications", "Client authentications (SASL) by "
                            "host, mechanism and result.", ["host", "mechanism", "result"],
                            registry=registry)
        self.s2s_auth = Counter("tercet_s2s_authentications", "Domain pairs authenticated "
                                "on server-to-server streams, by direction and method.",
                                ["direction", "method"], registry=registry)
        self.s2s_closed = Counter("tercet_s2s_connections_closed", "Server-to-server "
                                  "streams closed, by direction.", ["direction"],
                                  registry=registry)
        self.module_failures = Counter("tercet_module_load_failures", "Modules that failed "
                                       "to load, by module.", ["module"], registry=registry)
        self.storage = Histogram("tercet_storage_operation_duration_seconds", "Duration of "
                                 "store operations by driver, store kind and operation.",
                                 ["driver", "kind", "operation"], buckets=STORAGE_BUCKETS,
                                 registry=registry)
        self.lag = Histogram("tercet_event_loop_lag_seconds", "How late the event loop ran "
                             f"a callback scheduled every {LAG_INTERVAL:g} s.",
                             buckets=LAG_BUCKETS, registry=registry)
        self.last_lag = Gauge("tercet_event_loop_last_lag_seconds", "The latest "
                              "event-loop lag measured.", registry=registry)
        server = ServerCollector(module)
        registry.register(server)
        # Process (CPU, RSS, file descriptors) and Python runtime series, as standard.
        self.collectors: list[Collector] = [
            info, self.auth, self.s2s_auth, self.s2s_closed, self.module_failures,
            self.storage, self.lag, self.last_lag, server, ProcessCollector(registry=registry),
            PlatformCollector(registry=registry), GCCollector(registry=registry)]
        self._mechanism = Bounded()
        self._method = Bounded()
        # (driver, kind, operation) -> the histogram's child: labels() takes a lock.
        self._storage_children: dict[tuple[str, str, str], Histogram] = {}
        self._lag_due = 0.0

    # -- events ------------------------------------------------------------------------
    def auth_success(self, session: ClientSession) -> None:
        self._count_auth(session, "success")

    def auth_failure(self, session: ClientSession) -> None:
        self._count_auth(session, "failure")

    def _count_auth(self, session: ClientSession, result: str) -> None:
        host = session.host.name if session.host is not None else "unknown"
        self.auth.labels(host, self._mechanism(session.sasl_mechanism), result).inc()

    def s2s_authenticated(self, session: ServerSession) -> None:
        self.s2s_auth.labels(session.direction, self._method(session.auth_method)).inc()

    def s2s_closed_stream(self, session: ServerSession) -> None:
        self.s2s_closed.labels(session.direction).inc()

    def module_failed(self, entry: LoadedModule) -> None:
        self.module_failures.labels(entry.name).inc()

    def storage_operation(self, driver: str, kind: str, operation: str,
                          seconds: float) -> None:
        key = (driver, kind, operation)
        child = self._storage_children.get(key)
        if child is None:
            child = self._storage_children[key] = self.storage.labels(*key)
        child.observe(seconds)

    # -- event-loop lag ------------------------------------------------------------------
    def start_lag_timer(self) -> None:
        self._lag_due = asyncio.get_running_loop().time() + LAG_INTERVAL
        self.module.add_timer(LAG_INTERVAL, self.measure_lag)

    def measure_lag(self) -> float:
        """The timer's callback: how late it runs is the loop's lag; again in a while."""
        now = asyncio.get_running_loop().time()
        lag = max(0.0, now - self._lag_due)
        self.lag.observe(lag)
        self.last_lag.set(lag)
        self._lag_due = now + LAG_INTERVAL
        return LAG_INTERVAL

    def unregister_all(self) -> None:
        for collector in self.collectors:
            self.registry.unregister(collector)


class AllowList:
    """``openmetrics_allow_ips`` and ``openmetrics_allow_cidr``."""

    def __init__(self, ips: Iterable[str], cidr: str) -> None:
        self.ips = frozenset(ipaddress.ip_address(ip) for ip in ips)
        self.network: Network | None = ipaddress.ip_network(cidr, strict=False) if cidr \
            else None

    def allows(self, remote: str | None) -> bool:
        if not remote:
            return False
        try:
            address: Address = ipaddress.ip_address(remote)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address in self.ips:
            return True
        return self.network is not None and address.version == self.network.version \
            and address in self.network


def load(module: ModuleApi) -> None:
    module.depends("http")
    metrics = Metrics(module)
    allowed = AllowList(module.option(ALLOW_IPS), module.option(ALLOW_CIDR))
    module.hook_each_host("authentication-success", metrics.auth_success, OBSERVER)
    module.hook_each_host("authentication-failure", metrics.auth_failure, OBSERVER)
    module.hook_global("s2s-authenticated", metrics.s2s_authenticated, OBSERVER)
    module.hook_global("s2s-closed", metrics.s2s_closed_stream, OBSERVER)
    module.hook_global("module-failed", metrics.module_failed, OBSERVER)
    module.observe_storage(metrics.storage_operation)
    metrics.start_lag_timer()
    module.on_unload(metrics.unregister_all)

    async def scrape(request: web.Request) -> web.StreamResponse:
        if not allowed.allows(request.remote):
            return web.Response(status=403, text="Forbidden\n")
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encode(metrics.registry),
                            headers={"Content-Type": content_type})

    module.add_http_route("GET", "", scrape, base="/metrics")
