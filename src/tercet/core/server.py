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

from tercet import SOFTWARE_NAME, __version__
from tercet.core import admin_commands
from tercet.core import reload as config_reload
from tercet.core.certs import certificate_for_host
from tercet.core.config import ALWAYS_LOADED, Config, ConfigError
from tercet.core.events import EventBus
from tercet.core.host import Host
from tercet.core.http import HttpRoutes
from tercet.core.logging import setup_logging
from tercet.core.moduleapi import ModuleError
from tercet.core.modulemanager import ModuleManager
from tercet.core.network import Network, TLSProvider
from tercet.core.permissions import Permissions
from tercet.core.reload import ReloadReport
from tercet.core.router import Router
from tercet.core.session import C2SSession
from tercet.files import private_dir
from tercet.protocol.errors import StreamError
from tercet.protocol.jid import JID, InvalidJID
from tercet.storage.manager import StorageManager

log = logging.getLogger("tercet.server")

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
        profile = config.get("jid_profile")
        self.parse_jid: Callable[[str], JID] = (
            (lambda text: JID.parse(text, profile="precis")) if profile == "precis"
            else JID.parse)
        self.router = Router(self.hosts, self.events, self.parse_jid)
        self.storage = storage
        self.permissions = Permissions(self._role_of)
        self.tls = tls
        self._net: Network | None = None
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
        log.info("%s %s started with hosts %s", self.software_name, self.version,
                 ", ".join(self.hosts))

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

    # -- roles ----------------------------------------------------------------------------
    def is_admin(self, jid: str, host: str | None) -> bool:
        try:
            bare = str(self.parse_jid(jid).bare)
        except InvalidJID:
            return False
        admins = set(self.config.get("admins") or ())
        if host is not None:
            admins |= set(self.config.get("admins", host=host) or ())
        return bare in admins

    def _role_of(self, actor: str, host: str | None) -> str:
        if self.is_admin(actor, host):
            return "admin"
        try:
            jid = self.parse_jid(actor)
        except InvalidJID:
            return "guest"
        h = self.hosts.get(jid.domain)
        if jid.node and h is not None and h.kind == "local":
            return "user"
        return "guest"

    def fire_sync_or_log(self, bus: EventBus, name: str, event: Any) -> Any:
        result = bus.fire(name, event)
        if inspect.isawaitable(result):
            log.error("handler for %s must not be async", name)
            asyncio.ensure_future(result)
            return None
        return result
