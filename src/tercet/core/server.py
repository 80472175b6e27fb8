"""The server object: owns config, hosts, buses, router, storage, modules and the network.

There are no process globals: everything is reached through a ``Server`` passed in at
construction. The server is built from its parts by the composition root (tercet.app),
which also runs it in the foreground; core knows the network only as the protocols of
tercet.core.network.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable
from typing import Any

from tercet import SOFTWARE_NAME, __version__, compiled
from tercet.core import admin_commands
from tercet.core import permissions as roles
from tercet.core import reload as config_reload
from tercet.core.certs import certificate_for_host
from tercet.core.config import ALWAYS_LOADED, Config, ConfigError
from tercet.core.events import EventBus
from tercet.core.host import Host
from tercet.core.http import HttpRoutes
from tercet.core.logging import setup_logging
from tercet.core.moduleapi import ModuleError
from tercet.core.modulemanager import ModuleManager
from tercet.core.network import Network, TLSProvider, TrafficPolicy
from tercet.core.permissions import Permissions
from tercet.core.reload import ReloadReport
from tercet.core.router import Router
from tercet.core.session import C2SSession
from tercet.core.stats import ServerStats
from tercet.files import private_dir
from tercet.protocol.errors import StreamError
from tercet.protocol.jid import JID, InvalidJID
from tercet.storage.manager import StorageManager

log = logging.getLogger("tercet.server")


def custom_roles(config: Config) -> list[roles.CustomRole]:
    """The usable custom roles of ``config`` (``tercet check`` reports the others)."""
    found, problems = roles.parse_custom_roles(config.get("custom_roles") or [])
    for problem in problems:
        log.warning("custom_roles: %s", problem)
    return found

# Protocol modules every virtual host needs, loaded even when modules_enabled leaves them
# out (operators can still name them in modules_disabled). Not the default-enabled list.
# The module providing the ``auth`` service per ``authentication`` value; anonymous hosts
# keep the account store too (SASL ANONYMOUS is offered by saslauth).
AUTH_MODULES = {"internal_hashed": "auth_internal_hashed", "anonymous": "auth_internal_hashed"}


class Server:
    """A running server. Built by tercet.app.build_server; ``net`` is attached there."""

    def __init__(self, config: Config, *, storage: StorageManager, tls: TLSProvider,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.software_name = SOFTWARE_NAME
        self.version = __version__
        self.started = clock()
        self.events = EventBus("*")
        self.hosts: dict[str, Host] = {}
        self.providers: dict[str, list[Any]] = {}
        # Every module's HTTP routes; the http module serves them (core/http.py).
        self.http_routes = HttpRoutes()
        # Stanza counters the connections and sessions keep, for metrics (core/stats.py).
        self.stats = ServerStats()
        profile = config.get("jid_profile")
        self.parse_jid: Callable[[str], JID] = (
            (lambda text: JID.parse(text, profile="precis")) if profile == "precis"
            else JID.parse)
        # The router keeps a cache of the JIDs it parsed (one entry per session's JID).
        self.router = Router(self.hosts, self.events, lambda text: JID.parse(
            text, profile=profile, cache=False))
        self.storage = storage
        self.permissions = Permissions(self.role_of, custom_roles(config))
        self._role_facts: dict[tuple[str, str | None], frozenset[str] | bool] = {}
        self.tls = tls
        self._net: Network | None = None
        # Connection admission and read budgets, set by the module that enforces them
        # (``ModuleApi.limit_traffic``; the ``limits`` module); None: no limits.
        self.traffic_policy: TrafficPolicy | None = None
        plugin_path = config.resolve_path("installer_plugin_path", None)
        self.modules = ModuleManager(self, plugin_path)
        self.stopping = asyncio.Event()
        # Tasks of detached async handlers (session teardown), kept so they are not lost.
        self._background: set[asyncio.Future[Any]] = set()

    @property
    def net(self) -> Network:
        if self._net is None:
            raise RuntimeError("no network attached (build the server with tercet.app)")
        return self._net

    def attach_network(self, net: Network) -> None:
        self._net = net

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        private_dir(self.config.data_path)
        await self.storage.ready()
        self._load_certificates()
        for name in self.config.hosts:
            self._add_host(name, "local")
        for name in self.config.components:
            self._add_host(name, "component")
        for name in list(self.hosts):
            await self._load_host_modules(name)
        admin_commands.register(self)
        self.events.fire("server-started", self)
        log.info("%s %s started with hosts %s (hot path %s)", self.software_name,
                 self.version, ", ".join(self.hosts),
                 "compiled" if compiled() else "interpreted")

    def _add_host(self, name: str, kind: str) -> Host:
        host = Host(name, kind)
        self.hosts[name] = host
        return host

    def module_names_for(self, host: str) -> list[str]:
        disabled = set(self.config.get("modules_disabled", host=host) or ())
        if host in self.config.components:
            # Components get their own module and their own modules_enabled only, not the
            # virtual hosts' list (as in Prosody).
            found = self.config._lookup("modules_enabled", host)  # TODO: public accessor
            own = list(found[0]) if found is not None and found[1][0] != "modules_enabled" \
                else []
            names = [self.config.components[host]] + own
        else:
            names = self.config.modules_for_host(host)
            auth = AUTH_MODULES.get(str(self.config.get("authentication", host=host)),
                                    "auth_internal_hashed")
            required = (auth, *ALWAYS_LOADED)
            names = [m for m in required if m not in names] + names
        return [n for i, n in enumerate(names) if n not in disabled and n not in names[:i]]

    async def _load_host_modules(self, host: str) -> None:
        failed = []
        for name in self.module_names_for(host):
            entry = await self.modules.load(name, host)
            if entry.status != "loaded":
                failed.append(f"{name} on {host}: {entry.error}")
        if failed:
            # The configuration asked for these modules: a server without them (no client
            # port, no TLS, a plugin missing) must not report itself running.
            raise ModuleError("modules failed to load: " + "; ".join(failed))

    def _load_certificates(self) -> None:
        for name in self.config.hosts:
            found = certificate_for_host(self.config, name)
            if found is None:
                log.warning("no certificate for %s: TLS is unavailable for it", name)
                continue
            try:
                self.tls.add_host(name, found[0], found[1])
            except (OSError, ValueError) as exc:
                # A certificate that is there but unusable is a configuration the server
                # cannot honour: refuse to start rather than run without TLS for the host.
                raise ConfigError(f"cannot use the certificate for {name} ({found[0]}, key "
                                  f"{found[1]}): {exc}. Fix the files (tercet check) or "
                                  "remove them.") from exc

    async def stop(self, reason: str = "system-shutdown") -> None:
        """Close every session with a stream error, unload modules, flush storage."""
        log.info("shutting down")
        self.events.fire("server-stopping", self)
        for host in self.hosts.values():
            for session in list(host.all_sessions()):
                session.close(StreamError(reason, remote=False))
        if self._net is not None:
            await self._net.close_all(StreamError(reason, remote=False))
        if self._background:
            await asyncio.wait(list(self._background), timeout=5)
        await self.modules.unload_all()
        await self.storage.close()
        self.stopping.set()

    async def reload(self) -> ReloadReport | None:
        """SIGHUP / ``tercet reload``: re-read the configuration file, reopen log files and
        apply what changed (tercet.core.reload); None when the file has errors (the
        running configuration stays)."""
        try:
            new = Config.load(self.config.path)
        except ConfigError as exc:
            log.error("configuration not reloaded: %s", exc)
            return None
        old = self.config
        kept = new.keep_running(old)
        self.config = new
        self._role_facts.clear()
        self.permissions.configure(custom_roles(new))
        settings = new.logging()
        setup_logging(settings.level, settings.file)
        report = await config_reload.apply(self, old, new)
        report.restart_needed[:0] = kept
        self.events.fire("config-reloaded", self)
        log.info("configuration reloaded from %s: %s", new.path, report.summary())
        return report

    # -- sessions -------------------------------------------------------------------------
    def session_closed(self, session: C2SSession, *, lost: bool = False) -> None:
        """A session ended; ``lost``: its connection went without a stream close, and a
        ``connection-lost`` handler returning True keeps it (XEP-0198 hibernation)."""
        host = session.host
        if host is None or session.data.get("core.closed"):
            return
        if lost and session.bound and self.fire_sync_or_log(
                host.events, "connection-lost", session):
            return
        session.data["core.closed"] = True
        if session.bound and host.remove_session(session):
            self._fire_detached(host.events, "resource-unbind", session)
        self._fire_detached(host.events, "session-closed", session)

    def _fire_detached(self, bus: EventBus, name: str, event: Any) -> None:
        """Fire an event nobody waits for; an async handler still runs to completion."""
        result = bus.fire(name, event)
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    # -- roles (docs/roles.md) ---------------------------------------------------------------
    def is_admin(self, jid: str, host: str | None) -> bool:
        """COMPAT (1.0): whether ``jid``'s role on ``host`` is tercet:admin or above."""
        return roles.builtin_rank(self.permissions.base(self.role_of(jid, host))) >= \
            roles.builtin_rank(roles.ADMIN)

    def role_of(self, actor: str, host: str | None, stored: str | None = None) -> str:
        """``actor``'s role on ``host`` (None: server-wide).

        Global ``admins`` are tercet:operator everywhere; a host's (or component's) own
        ``admins`` are tercet:admin there. An account has its stored role, as its latest
        login read it (``stored``: what a session read, for an account no login has
        cached), on its own host and on the components under that domain
        (conference.example.org for example.org; virtual hosts are never "under" one
        another); elsewhere only tercet:operator carries over and anything else is
        tercet:registered. Anonymous users, remote users and malformed actors are
        tercet:guest.
        """
        try:
            jid = self.parse_jid(actor)
        except InvalidJID:
            return roles.GUEST
        bare = str(jid.bare)
        if bare in self._admins(None):
            return roles.OPERATOR
        if host is not None and bare in self._admins(host):
            return roles.ADMIN
        home = self.hosts.get(jid.domain)
        if jid.node is None or home is None or home.kind != "local" or \
                self._anonymous(jid.domain):
            return roles.GUEST
        role = home.account_roles.get(jid.node) or stored or roles.DEFAULT_ROLE
        if bare in self._admins(jid.domain) and role != roles.OPERATOR:
            role = roles.ADMIN
        if host is None or host == jid.domain or role == roles.OPERATOR or \
                self._is_component_of(host, jid.domain):
            return role
        return roles.REGISTERED

    # role_of runs for every occupant a room presence goes to (MUC joins are O(N²)): the
    # configuration facts it needs are read once per configuration, not per call.
    def _admins(self, host: str | None) -> frozenset[str]:
        """The global ``admins`` (host None) or a host table's own."""
        key = ("admins", host)
        found = self._role_facts.get(key)
        if found is None:
            value = self.config.get("admins") if host is None else \
                self.config.get_host_only("admins", host)
            found = self._role_facts[key] = frozenset(value or ())
        assert isinstance(found, frozenset)
        return found

    def _anonymous(self, host: str) -> bool:
        key = ("anonymous", host)
        found = self._role_facts.get(key)
        if found is None:
            found = self._role_facts[key] = \
                self.config.get("authentication", host=host) == "anonymous"
        return bool(found)

    def _is_component_of(self, host: str, parent: str) -> bool:
        """Whether ``host`` is a component under ``parent`` (conference.example.org)."""
        found = self.hosts.get(host)
        return found is not None and found.kind == "component" and \
            host.endswith("." + parent)

    def fire_sync_or_log(self, bus: EventBus, name: str, event: Any) -> Any:
        result = bus.fire(name, event)
        if inspect.isawaitable(result):
            log.error("handler for %s must not be async", name)
            asyncio.ensure_future(result)
            return None
        return result
