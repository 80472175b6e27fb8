"""The public module API: everything a module may do, and nothing else.

One ``ModuleApi`` exists per loaded module per host (``host == "*"`` for global modules).
Every registration is recorded in ``_undo`` and reverted on unload, so modules rarely need
an ``unload()`` of their own. Each public method says the version it was added in.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, TypeGuard, TypeVar, overload

from mypy_extensions import mypyc_attr

from tercet.core import accounts
from tercet.core.config import Option
from tercet.core.events import EventBus, Handler, HookHandle, is_awaitable
from tercet.core.host import Host, Identity
from tercet.core.http import AltConnection, HttpHandler, HttpRoute, HttpRoutes
from tercet.core.locks import KeyedLocks
from tercet.core.network import (
    ConnectSpec,
    FramedStream,
    ListenSpec,
    MessageLink,
    StreamLimits,
    TrafficPolicy,
)
from tercet.core.session import C2SSession, ServerSession, Session
from tercet.core.stats import ServerStats
from tercet.files import private_dir
from tercet.protocol.jid import JID
from tercet.protocol.stanza import Element

if TYPE_CHECKING:
    from tercet.auth import AuthProvider
    from tercet.core.router import StanzaEvent
    from tercet.core.server import Server
    from tercet.storage.base import ArchiveStore, KeyValStore, MapStore
    from tercet.storage.timed import StorageObserver

StoreKind = Literal["keyval", "map", "archive"]

T = TypeVar("T")


class ModuleError(Exception):
    """A module misused the API or could not load (shown to the operator, not to peers)."""


class Timer:
    """A handle for ``add_timer``; ``stop()`` cancels it."""

    def __init__(self) -> None:
        self.handle: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[Any] | None = None
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True
        if self.handle is not None:
            self.handle.cancel()
        if self.task is not None and not self.task.done():
            self.task.cancel()


@mypyc_attr(allow_interpreted_subclasses=True)
class ModuleApi:
    """What a module's ``load(module)`` receives (as :class:`LoadedModuleApi`)."""

    def __init__(self, server: Server, name: str, host: str) -> None:
        self._server = server
        self.name = name
        self.host = host  # "*" for a global module
        self.log = logging.getLogger(f"tercet.mod.{name}" + ("" if host == "*" else f".{host}"))
        self._undo: list[Callable[[], None]] = []
        self._stores: dict[tuple[str, str], KeyValStore | MapStore | ArchiveStore] = {}
        self.dependencies: list[str] = []
        self._tasks: set[asyncio.Task[Any]] | None = None
        self._locks: KeyedLocks | None = None
        #: Every option this module has read: `tercet reload` reloads the module when the
        #: configuration file changes one of them (so values read at load are applied).
        self.options_read: set[str] = set()

    # -- events (0.1) -----------------------------------------------------------------
    @property
    def _bus(self) -> EventBus:
        return self._server.events if self.host == "*" else self._host.events

    @property
    def _host(self) -> Host:
        return _host_of(self)

    def hook(self, name: str, handler: Handler, priority: float = 0) -> HookHandle:
        """Run ``handler(event)`` for event ``name`` on this module's host (0.1).

        Higher priorities run first; the first non-None result stops the chain. A handler
        may be a coroutine function: the session that caused the event pauses until it ends.
        """
        return self._record_hook(self._bus, name, handler, priority)

    def hook_global(self, name: str, handler: Handler, priority: float = 0) -> HookHandle:
        """Hook an event on the server-wide bus (route/remote, server-started, ...) (0.1)."""
        return self._record_hook(self._server.events, name, handler, priority)

    def hook_each_host(self, name: str, handler: Handler, priority: float = 0) -> None:
        """Hook ``name`` on the bus of every hosted domain, for a global module that
        observes them all (``authentication-failure`` for metrics) (1.2). The hosts are
        those of the configuration: every host exists before any module loads."""
        for host in self._server.hosts.values():
            self._record_hook(host.events, name, handler, priority)

    def _record_hook(self, bus: EventBus, name: str, handler: Handler,
                     priority: float) -> HookHandle:
        handle = bus.hook(name, handler, priority)
        self._undo.append(lambda: bus.unhook(handle))
        return handle

    def fire(self, name: str, event: Any) -> Any:
        """Fire an event on this module's host bus; may return an awaitable (0.1)."""
        return self._bus.fire(name, event)

    def fire_detached(self, name: str, event: Any) -> None:
        """Fire a notification nobody waits for; async handlers run as module tasks (0.1)."""
        result = self._bus.fire(name, event)
        if is_awaitable(result):
            self.spawn(result)

    async def fire_async(self, name: str, event: Any) -> Any:
        """Fire and await, for use inside async handlers (0.1)."""
        return await self._bus.fire_async(name, event)

    def fire_global(self, name: str, event: Any) -> Any:
        return self._server.events.fire(name, event)

    # -- service discovery (0.1) -------------------------------------------------------
    def add_feature(self, var: str) -> None:
        """Advertise a disco#info feature on this host (XEP-0030) (0.1)."""
        self._add_to(self._host.features, var)

    def add_identity(self, category: str, type_: str, name: str | None = None) -> None:
        """Advertise a disco#info identity on this host (0.1)."""
        self._add_to(self._host.identities, Identity(category, type_, name))

    def add_extension(self, form: Element) -> None:
        """Add an XEP-0128 data form to this host's disco#info (0.1)."""
        self._add_to(self._host.extensions, form)

    def add_item(self, jid: str, name: str | None = None, node: str | None = None) -> None:
        """Add a disco#items entry (e.g. a component) to this host (0.1)."""
        self._add_to(self._host.items, (jid, name, node))

    def _add_to(self, lst: list[Any], value: Any) -> None:
        lst.append(value)

        def undo() -> None:
            for i, v in enumerate(lst):
                if v is value:
                    del lst[i]
                    return
        self._undo.append(undo)

    def features(self) -> list[str]:
        return list(self._host.features)

    def identities(self) -> list[Identity]:
        return list(self._host.identities)

    def extensions(self) -> list[Element]:
        return list(self._host.extensions)

    def items(self) -> list[tuple[str, str | None, str | None]]:
        return list(self._host.items)

    # -- services between modules (0.1, typed lookups 1.0) ----------------------------------
    def provides(self, kind: str, obj: object) -> None:
        """Offer ``obj`` as the ``kind`` service ("auth", "roster", ...) on this host, or
        server-wide from a global module; withdrawn on unload (0.1)."""
        target = self._server.providers if self.host == "*" else self._host.providers
        self._add_to(target.setdefault(kind, []), obj)

    def providers(self, kind: str) -> list[Any]:
        """Every ``kind`` provider: this host's, then global ones (0.1)."""
        local = [] if self.host == "*" else self._host.providers.get(kind, [])
        return list(local) + list(self._server.providers.get(kind, []))

    def find(self, kind: str, cls: type[T]) -> T | None:
        """The first ``kind`` provider that is a ``cls``, or None when nobody offers one (1.0).

        For optional collaborations: "if a roster service exists, ask it"."""
        for obj in self.providers(kind):
            if isinstance(obj, cls):
                return obj
        return None

    def require(self, kind: str, cls: type[T]) -> T:
        """The ``kind`` service, typed as ``cls``; raises ModuleError when no loaded module
        provides it (1.0). Call it when the service is used, not in ``load()``, unless the
        provider is a dependency (``depends``), so load order does not matter."""
        found = self.find(kind, cls)
        if found is None:
            raise ModuleError(f"no module provides the {kind!r} service on {self.host} "
                              f"(wanted a {cls.__name__})")
        return found

    # -- configuration (0.1; declared options 1.0) -----------------------------------------
    #: The options this module declares in its OPTIONS list, by name (set when it loads).
    _declared_options: Mapping[str, Option[Any]] = MappingProxyType({})

    @overload
    def option(self, name: Option[T], *, host: str | None = None) -> T: ...
    @overload
    def option(self, name: str, *, host: str | None = None) -> Any: ...

    def option(self, name: str | Option[Any], *, host: str | None = None) -> Any:
        """The value of a declared option on this host: the host table's, else the global
        one, else the declared default (1.0; the per-call ``default``/``type``/``min``
        keywords of 0.1 are gone: declare the option in ``OPTIONS``).

        ``name`` is an option this module declares or any other declared option (core
        options, another module's); pass the :class:`Option` itself for a value typed by
        it. An undeclared name raises ModuleError; a bad value raises ConfigError naming
        the file, the key and the fix. ``host`` (1.0) reads another host's value, for
        global modules that act per host (s2s).
        """
        if host is None:
            host = None if self.host == "*" else self.host
        return self._server.config.option(self._declaration(name), host)

    @overload
    def global_option(self, name: Option[T]) -> T: ...
    @overload
    def global_option(self, name: str) -> Any: ...

    def global_option(self, name: str | Option[Any]) -> Any:
        """As :meth:`option`, from the global section only (1.0)."""
        return self._server.config.option(self._declaration(name), None)

    def _declaration(self, name: str | Option[Any]) -> Option[Any]:
        if isinstance(name, Option):
            self.options_read.add(name.name)
            return name
        self.options_read.add(name)  # a reload that changes it reloads this module
        found = self._declared_options.get(name) or self._server.config.schema.get(name)
        if found is None:
            raise ModuleError(
                f"module {self.name} reads option {name!r}, which no module declares: add "
                f'Option("{name}", <type>, <default>, "<one-line doc>") to OPTIONS in '
                f"module {self.name}")
        return found

    def _declare(self, options: Iterable[Option[Any]]) -> None:
        """Record the options the module's OPTIONS list declares (by the module manager)."""
        self._declared_options = MappingProxyType({o.name: o for o in options})

    @property
    def hosts(self) -> list[str]:
        """Every hosted domain (virtual hosts and components) (0.1)."""
        return list(self._server.hosts)

    def parse_jid(self, text: str) -> JID:
        """Parse a JID with the server's configured profile (jid_profile); raises
        InvalidJID (0.1)."""
        return self._server.parse_jid(text)

    def is_local_host(self, domain: str) -> bool:
        return domain in self._server.hosts

    def host_kind(self, domain: str) -> str | None:
        host = self._server.hosts.get(domain)
        return None if host is None else host.kind

    # -- storage (0.1) -------------------------------------------------------------------
    @overload
    def open_store(self, name: str | None = None,
                   kind: Literal["keyval"] = "keyval") -> KeyValStore: ...
    @overload
    def open_store(self, name: str | None, kind: Literal["map"]) -> MapStore: ...
    @overload
    def open_store(self, name: str | None, kind: Literal["archive"]) -> ArchiveStore: ...

    def open_store(self, name: str | None = None,
                   kind: StoreKind = "keyval") -> KeyValStore | MapStore | ArchiveStore:
        """Open this host's store ``name`` (default: the module name) (0.1; typed by
        ``kind`` since 1.0). ``kind`` is "keyval", "map" or "archive"; the interfaces are
        exported by tercet.module. Opening twice returns the same object."""
        store_name = name or self.name
        key = (store_name, kind)
        found = self._stores.get(key)
        if found is None:
            found = self._stores[key] = self._server.storage.open(self.host, store_name, kind)
        return found

    def open_keyval(self, name: str | None = None) -> KeyValStore:
        return self.open_store(name, "keyval")

    def open_map(self, name: str | None = None) -> MapStore:
        return self.open_store(name, "map")

    def open_archive(self, name: str | None = None) -> ArchiveStore:
        return self.open_store(name, "archive")

    def data_dir(self) -> Path:
        """This module's directory for files of its own under ``data_path``:
        ``<data_path>/<module name>/<host>`` (a global module: ``<data_path>/<module
        name>``), created private (0700) when missing (1.2). For data that is no store's,
        such as uploaded files."""
        path = self._server.config.data_path / self.name
        if self.host != "*":
            path = path / self.host
        return private_dir(path)

    async def delete_user_data(self, username: str) -> None:
        """Delete every piece of a user's data in every store of this host (0.1)."""
        await self._server.storage.delete_user(self.host, username)

    async def delete_account(self, username: str, *,
                             before_close: Callable[[], None] | None = None) -> bool:
        """Delete an account of this host the one way accounts are deleted (0.1): record,
        ``before_close()``, sessions closed, data purged, ``user-deleted`` fired.
        False if there is no such account. See tercet.core.accounts."""
        return await accounts.delete_account(self._server, self.host, username,
                                             before_close=before_close)

    async def purge_deleted_accounts(self, limit: int = accounts.PURGE_BATCH) -> int:
        """Purge up to ``limit`` accounts of this host whose deletion grace period
        (``user_deletion_grace_period``) has ended; returns how many (1.3)."""
        return await accounts.purge_expired(self._server, self.host, limit)

    # -- stanzas and sessions (0.1) ----------------------------------------------------
    async def send(self, stanza: Element) -> None:
        """Route a stanza from this host (the server speaks) and wait until every handler
        it reached has finished (1.0: always awaitable)."""
        result = self._server.router.route(_host_of(self).origin, stanza)
        if is_awaitable(result):
            await result

    async def route(self, origin: Session, stanza: Element) -> None:
        """Route a stanza as if ``origin`` had sent it (its ``pre-`` policy hooks run) and
        wait for the handlers (1.0: always awaitable)."""
        result = self._server.router.route(origin, stanza)
        if is_awaitable(result):
            await result

    def send_now(self, stanza: Element) -> Awaitable[None] | None:
        """Route a stanza from this host at once; an awaitable only while a handler it
        reached has not finished (await it before the next stanza to keep their order),
        else None (1.1). ``send`` without a coroutine per stanza, for modules that send
        many copies in a row (a room's broadcast)."""
        result = self._server.router.route(_host_of(self).origin, stanza)
        return result if is_awaitable(result) else None

    def send_detached(self, stanza: Element) -> None:
        """Fire-and-forget ``send`` for synchronous handlers: async handlers it reaches
        finish as tasks of this module (cancelled on unload) (1.0)."""
        result = self._server.router.route(_host_of(self).origin, stanza)
        if is_awaitable(result):
            self.spawn(result)

    def route_detached(self, origin: Session, stanza: Element) -> None:
        """Fire-and-forget ``route`` (1.0)."""
        result = self._server.router.route(origin, stanza)
        if is_awaitable(result):
            self.spawn(result)

    def deliver(self, event: StanzaEvent, name: str | None = None) -> Any:
        """Re-fire a stanza event under another name on the destination host (0.1)."""
        host = event.host or self._host
        return host.events.fire(name or f"{event.stanza.name}/{event.to_type}", event)

    def sessions(self, username: str, host: str | None = None) -> dict[str, C2SSession]:
        """The bound resources of a local user: resource -> session (0.1)."""
        h = self._server.hosts.get(host or self.host)
        return {} if h is None else h.user_sessions(username)

    def all_sessions(self, host: str | None = None) -> list[C2SSession]:
        h = self._server.hosts.get(host or self.host)
        return [] if h is None else list(h.all_sessions())

    def live_sessions(self) -> list[Session]:
        """Every session of the server (1.2): clients (negotiating, bound or hibernated),
        server-to-server streams both ways, external components. A snapshot, for reports
        (metrics): O(sessions), not for the stanza path."""
        found: list[Session] = list(self._server.net.sessions())
        for host in self._server.hosts.values():
            found.extend(s for s in host.all_sessions() if s.detached)
        return found

    @property
    def server_stats(self) -> ServerStats:
        """The counters the core keeps (stanzas by stream type and name), read by a
        metrics module (1.2); see tercet.core.stats."""
        return self._server.stats

    def observe_storage(self, observer: StorageObserver) -> None:
        """Tell ``observer(driver, kind, operation, seconds)`` of every store operation
        from now until this module unloads (1.2). One observer at a time: ModuleError
        when another module has one. It runs on the event loop per operation: keep it
        cheap (a histogram observation)."""
        storage = self._server.storage
        if storage.observer is not None:
            raise ModuleError("another module already observes storage operations")
        storage.observer = observer

        def stop() -> None:
            if storage.observer is observer:
                storage.observer = None
        self._undo.append(stop)

    def limit_traffic(self, policy: TrafficPolicy) -> None:
        """Have the network layer ask ``policy`` whether to accept each inbound connection
        and how fast each connection may send, until this module unloads (1.3). One
        policy at a time: ModuleError when another module has one. Connections open
        already keep the budget they were given."""
        server = self._server
        if server.traffic_policy is not None:
            raise ModuleError("another module already limits traffic")
        server.traffic_policy = policy

        def stop() -> None:
            if server.traffic_policy is policy:
                server.traffic_policy = None
        self._undo.append(stop)

    def close_session(self, session: Session, error: Any = None) -> None:
        """Close a session now (with a StreamError) and run its unbind events (0.1)."""
        session.close(error)
        self._server.session_closed(session)  # type: ignore[arg-type]

    @property
    def host_origin(self) -> Session:
        return self._host.origin

    def is_host_client(self, session: Session) -> TypeGuard[C2SSession]:
        """Whether ``session`` is a client session of this module's host (1.0).

        Narrows ``session`` to a ClientSession, for handlers that serve only this host's
        own users (a request addressed to the server rather than to the account)."""
        return (isinstance(session, C2SSession) and session.host is not None
                and session.host.name == self.host)

    # -- accounts and permissions (0.1) ----------------------------------------------------
    @property
    def auth(self) -> AuthProvider | None:
        """The ``auth`` service of this host: the provider an auth module offered (0.1)."""
        return self._host.auth

    async def account_exists(self, username: str | None) -> bool:
        """Whether ``username`` is an existing account of this host (1.0).

        The guard before the server answers on an account's behalf (RFC 6121 §8.5.1: for
        a bare JID without an account the answer is service-unavailable, which the router
        gives when a handler returns None)."""
        auth = self._host.auth if self.host != "*" else None
        return bool(username) and auth is not None and await auth.user_exists(username or "")

    def is_admin(self, jid: str) -> bool:
        """COMPAT (0.1): whether ``jid``'s role here is tercet:admin or above. Prefer
        ``may`` with a declared permission (1.3), which custom roles can grant or deny."""
        return self._server.is_admin(jid, None if self.host == "*" else self.host)

    def may(self, action: str, event: StanzaEvent | Session | str) -> bool:
        """Whether the actor may do ``action`` (":" prefix = this module's namespace) (0.1).

        The actor is the sender of a stanza event, a session, or a JID (1.3: sessions, and
        a client's role is the one its account had at login; docs/roles.md)."""
        return self._server.permissions.allows(self.role_of(event), self._qualify(action))

    def role_of(self, actor: StanzaEvent | Session | str) -> str:
        """The role of a stanza's sender, a session or a JID on this host (1.3)."""
        host = None if self.host == "*" else self.host
        session: Session | None = None
        if isinstance(actor, str):
            jid = actor
        elif isinstance(actor, C2SSession):
            session, jid = actor, actor.bare_jid or ""
            if actor.username and actor.host is not None and not jid:
                jid = f"{actor.username}@{actor.host.name}"
        elif isinstance(actor, Session):
            jid = ""  # a server or component stream: nobody's account
        else:
            session, jid = actor.origin, str(actor.from_ or "")
        stored = None
        if isinstance(session, C2SSession) and session.role is not None and \
                session.host is not None and session.username is not None and \
                jid.partition("/")[0] == f"{session.username}@{session.host.name}":
            stored = session.role
        return self._server.role_of(jid, host, stored)

    def default_permission(self, role: str, action: str) -> None:
        """Grant ``action`` to the built-in ``role`` and every role above it (0.1; 1.3:
        tercet:guest, tercet:registered, tercet:member, tercet:admin, tercet:operator;
        COMPAT: "guest", "user" and "admin" mean tercet:guest, tercet:registered and
        tercet:admin). Prefer declaring ``PERMISSIONS`` (docs/roles.md)."""
        action = self._qualify(action)
        self._server.permissions.grant(role, action)
        self._undo.append(lambda: self._server.permissions.revoke(role, action))

    async def account_login(self, session: C2SSession) -> str:
        """Tell the core that ``session`` authenticated (SASL modules call it before
        <success/>): it reads the account's role into ``session.role`` and records the
        login time and address (1.3). Returns the role."""
        return await accounts.logged_in(self._server, session)

    def _qualify(self, action: str) -> str:
        return f"{self.name}{action}" if action.startswith(":") else action

    # -- timers and tasks (0.1) ------------------------------------------------------------
    def add_timer(self, delay: float, callback: Callable[[], Any]) -> Timer:
        """Call ``callback`` after ``delay`` seconds; if it returns a number, repeat after
        that many seconds. Coroutine callbacks are awaited. Cancelled on unload (0.1)."""
        timer = Timer()
        loop = asyncio.get_running_loop()

        def fire() -> None:
            if timer.stopped:
                return
            try:
                result = callback()
            except Exception:
                self.log.exception("timer callback failed")
                return
            if inspect.isawaitable(result):
                timer.task = loop.create_task(self._await_timer(timer, result, fire))
            elif isinstance(result, (int, float)) and not isinstance(result, bool):
                timer.handle = loop.call_later(result, fire)

        timer.handle = loop.call_later(delay, fire)
        self._undo.append(timer.stop)
        return timer

    async def _await_timer(self, timer: Timer, pending: Awaitable[Any],
                           again: Callable[[], None]) -> None:
        try:
            result = await pending
        except Exception:
            self.log.exception("timer callback failed")
            return
        if isinstance(result, (int, float)) and not isinstance(result, bool) and not timer.stopped:
            timer.handle = asyncio.get_running_loop().call_later(result, again)

    def spawn(self, coro: Awaitable[T]) -> asyncio.Task[T]:
        """Run a background task owned by this module; cancelled on unload (0.1)."""
        task: asyncio.Task[T] = asyncio.ensure_future(coro)
        if self._tasks is None:
            tasks: set[asyncio.Task[Any]] = set()
            self._tasks = tasks
            def cancel_all() -> None:
                for t in list(tasks):
                    t.cancel()
            self._undo.append(cancel_all)
        # Finished tasks leave the set, so frequent spawning does not grow memory.
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        if self._tasks is not None:
            self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.log.error("background task failed", exc_info=task.exception())

    def lock(self, key: str) -> contextlib.AbstractAsyncContextManager[None]:
        """``async with module.lock(key):`` serialises this module's work on ``key`` (an
        account, a room) across awaits; the lock table holds only keys in use (1.0)."""
        if self._locks is None:
            self._locks = KeyedLocks()
        return self._locks.hold(key)

    def now(self) -> float:
        """Wall-clock seconds from the server's clock (injectable in tests) (0.1)."""
        return self._server.clock()

    # -- network (0.1) ------------------------------------------------------------------------
    async def listen(self, spec: ListenSpec) -> list[tuple[str, int]]:
        """Open the listeners ``spec`` describes, with its limits; closed on unload (1.0).

        Returns the bound addresses (port 0 asks the OS for a free port). Raises OSError
        when a port cannot be bound, which fails the module's load: the server does not
        run half-listening."""
        listening = await self._server.net.listen(spec)
        self._undo.append(listening.close)
        return list(listening.addresses)

    async def connect(self, spec: ConnectSpec) -> ServerSession:
        """Open an outbound stream (``spec.service`` "s2s") to a remote domain (1.1).

        Raises PeerUnreachable (with the stanza error condition) when the domain does not
        resolve or no connection is made within the spec's bounds. The session is not
        closed on unload: the caller owns it."""
        return await self._server.net.connect(spec)

    def open_framed_stream(self, link: MessageLink, limits: StreamLimits) -> FramedStream:
        """Run a client stream over a message-framed transport ``link`` (XMPP over
        WebSocket, RFC 7395): the same c2s machinery as a TCP connection, with ``limits``.
        The caller feeds it messages and tells it when the transport is gone. From a
        module on a host, the stream may open only to that host (1.2). The session's
        ``transport`` is this module's name ("websocket", "bosh"), as metrics count it."""
        return self._server.net.open_framed(link, limits,
                                            None if self.host == "*" else self.host,
                                            self.name)

    # -- HTTP (1.2) ---------------------------------------------------------------------------
    def add_http_route(self, method: str, path: str, handler: HttpHandler, *,
                       base: str | None = None, host_scoped: bool = True,
                       cors: bool = False) -> HttpRoute:
        """Serve ``method path`` with ``async def handler(request) -> response`` (aiohttp
        types) on the server's HTTP ports; removed on unload (1.2).

        ``path`` is relative to the module's base path: the operator's
        ``http_paths[<module name>]``, else ``base``, else ``"/<module name>"``. A route of
        a module loaded on a host answers only requests for that host (by ``Host:``),
        unless ``host_scoped`` is False; a global module's routes answer every host.
        ``cors`` lets browsers on other origins call it, per the http module's CORS
        options. Raises ValueError when the path is taken. The ``http`` module serves the
        routes: depend on it (``module.depends("http")``)."""
        route = HttpRoute(method.upper(), path, handler, self.name,
                          base if base is not None else f"/{self.name}",
                          self.host if host_scoped and self.host != "*" else None, cors)
        self._undo.append(self._server.http_routes.add(route))
        return route

    def http_url(self, route: HttpRoute, host: str | None = None) -> str:
        """The public URL of ``route`` for ``host`` (default: this module's host):
        ``http_external_url`` when set, else the HTTP server's own address (1.2)."""
        routes = self._server.http_routes
        target = host if host is not None else (None if self.host == "*" else self.host)
        if routes.url_for is None:
            raise ModuleError("the http module is not loaded")
        return routes.url_for(target, routes.resolve(route))

    @property
    def http_routes(self) -> HttpRoutes:
        """Every module's routes, for the module that serves HTTP (``http``) (1.2)."""
        return self._server.http_routes

    def alt_connections(self) -> list[AltConnection]:
        """The connection methods offered as ``altconnect`` services on this host and
        globally, for host-meta (XEP-0156) (1.2)."""
        return [p for p in self.providers("altconnect") if isinstance(p, AltConnection)]

    @property
    def tls_available(self) -> bool:
        """Whether a certificate is loaded, so TLS can be offered (0.1)."""
        return self._server.tls.available

    # -- module system (0.1) ------------------------------------------------------------------
    def depends(self, name: str) -> None:
        """Load module ``name`` on this host first; unloading it unloads this module (0.1)."""
        self.dependencies.append(name)
        self._server.modules.ensure_loaded(name, self.host, dependant=self.name)

    @property
    def server_info(self) -> dict[str, Any]:
        """Software name, version and start time (0.1)."""
        return {"name": self._server.software_name, "version": self._server.version,
                "started": self._server.started}

    def on_unload(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` when the module unloads (after its own unload()) (0.1)."""
        self._undo.append(fn)

    def _unload(self) -> None:
        while self._undo:
            undo = self._undo.pop()
            try:
                undo()
            except Exception:
                self.log.exception("error while undoing a registration")

    def __repr__(self) -> str:
        return f"<ModuleApi {self.name}@{self.host}>"


def _host_of(api: ModuleApi) -> Host:
    """``api._host``. A function, which compiled callers call directly: every module's
    ``module`` is an interpreted subclass (LoadedModuleApi), so a property or method read
    on it from compiled code goes through a Python-level lookup (with an argument tuple
    and a keyword dict for a method), which the delivery path paid per copy
    (bench/README.md, "The output batch, compiled")."""
    host = api._server.hosts.get(api.host)
    if host is None:
        # A global module (host "*") has no host to speak for or advertise on.
        raise ModuleError(f"module {api.name} is global: it has no host of its own "
                          "(use route/route_detached with an origin, or hook per host)")
    return host
