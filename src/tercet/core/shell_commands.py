"""The admin commands behind ``tercet shell`` that the core answers: the server, its
configuration, client sessions, hosts, accounts, announcements and statistics.

Each is an ordinary ``admin/<cmd>`` command, so scripts and other tools use them the same
way the shell does (docs/shell.md lists them with their arguments and results). Live
watching (``watch.log``, ``watch.stanzas``) is in tercet.core.watch.

The account commands (``user.*``) are registered with a low priority: a fuller
implementation hooked at the default priority (the account lifecycle) answers instead.
"""

from __future__ import annotations

import asyncio
import os
import platform
import resource
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tercet.auth import AuthProvider
from tercet.auth.errors import UserExists, UserNotFound
from tercet.auth.internal import InternalHashedProvider
from tercet.core import watch
from tercet.core.admin import AdminCommandError, AdminRequest, SessionReport
from tercet.core.events import HookHandle, is_awaitable
from tercet.core.host import Host
from tercet.core.session import C2SSession, Session
from tercet.core.streamevents import StreamFeaturesEvent
from tercet.protocol.errors import StreamError
from tercet.protocol.jid import JID, InvalidJID
from tercet.protocol.stanza import message

if TYPE_CHECKING:
    from tercet.core.server import Server

#: Priority of the fallback account commands: below any module's or the lifecycle's own.
FALLBACK_PRIORITY = -10
#: Fired on the global bus by ``server.shutdown``; whoever runs the server (tercet start)
#: answers it by stopping. Nobody answers in an embedded server (tests): the command says so.
SHUTDOWN_EVENT = "server-shutdown-requested"
#: Fired on a host's bus per client session by ``c2s.list``/``c2s.show``: modules add what
#: the session uses (stream management, carbons, CSI state, push) to the report.
SESSION_REPORT_EVENT = "session-report"
#: XEP-0115 §4: entity capabilities in presence name the client's software in ``node``.
NS_CAPS = "http://jabber.org/protocol/caps"
#: Announcement message types (RFC 6121 §5.2.2): headline is not stored offline or archived.
ANNOUNCE_TYPES = ("headline", "normal", "chat")
#: Watching the stanzas of an account needs the account's host to stay.
STREAM_OBSERVER_PRIORITY = 1_000_000
#: Option names whose values ``config.get`` never shows.
SECRET_WORDS = ("password", "secret", "token")


def register(server: Server) -> None:
    """Hook every command on the server's global bus."""
    commands = ShellCommands(server)
    watches = watch.Watches(server)
    table: dict[str, Callable[[AdminRequest], Any]] = {
        "server.version": commands.version,
        "server.uptime": commands.uptime,
        "server.memory": commands.memory,
        "server.shutdown": commands.shutdown,
        "module.info": commands.module_info,
        "config.reload": commands.config_reload,
        "config.get": commands.config_get,
        "c2s.list": commands.c2s_list,
        "c2s.show": commands.c2s_show,
        "c2s.close": commands.c2s_close,
        "host.list": commands.host_list,
        "host.activate": commands.host_activate,
        "host.deactivate": commands.host_deactivate,
        "announce": commands.announce,
        "stats": commands.stats,
        "shell.complete": commands.complete,
        "watch.log": watches.log,
        "watch.stanzas": watches.stanzas,
        "watch.stop": watches.stop,
    }
    for name, handler in table.items():
        server.events.hook(f"admin/{name}", handler)
    fallbacks: dict[str, Callable[[AdminRequest], Any]] = {
        "user.create": commands.user_create,
        "user.password": commands.user_password,
        "user.disable": commands.user_disable,
        "user.enable": commands.user_enable,
        "user.list": commands.user_list,
        "user.show": commands.user_show,
        "user.roles": commands.user_roles,
        "role.list": commands.role_list,
        "role.show": commands.role_show,
    }
    for name, handler in fallbacks.items():
        server.events.hook(f"admin/{name}", handler, FALLBACK_PRIORITY)


def rss_bytes() -> int | None:
    """The resident set size of this process now (Linux /proc), else None."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    """The largest resident set size so far (getrusage; kilobytes on Linux, bytes on
    macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _arg(req: AdminRequest, name: str) -> str:
    value = str(req.arg(name) or "").strip()
    if not value:
        raise AdminCommandError(f"missing argument {name!r}")
    return value


def client_software(session: C2SSession) -> str | None:
    """What the client is, best effort: the ``node`` of its XEP-0115 capabilities in its
    last available presence (a URI naming the software, XEP-0115 §4)."""
    if session.presence is None:
        return None
    caps = session.presence.find("c", NS_CAPS)
    return caps.get("node") if caps is not None else None


class ShellCommands:
    """The command handlers; ``inactive`` holds the hosts deactivated at runtime."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.inactive: dict[str, HookHandle] = {}

    # -- server -------------------------------------------------------------------------
    def version(self, _req: AdminRequest) -> dict[str, Any]:
        """``server.version``: the software, its version, Python and the platform."""
        return {"software": self.server.software_name, "version": self.server.version,
                "python": platform.python_version(), "platform": platform.platform()}

    def uptime(self, _req: AdminRequest) -> dict[str, Any]:
        """``server.uptime``: when the server started (Unix time) and seconds since."""
        return {"started": self.server.started,
                "uptime": round(self.server.clock() - self.server.started, 1)}

    def memory(self, _req: AdminRequest) -> dict[str, Any]:
        """``server.memory``: resident set size now and at its peak, in bytes."""
        return {"rss": rss_bytes(), "peak_rss": peak_rss_bytes()}

    def shutdown(self, req: AdminRequest) -> dict[str, Any]:
        """``server.shutdown``: stop the server (sessions get ``system-shutdown``)."""
        if not self.server.events.has_handlers(SHUTDOWN_EVENT):
            raise AdminCommandError("this server is embedded (not run by `tercet start`): "
                                    "it cannot be stopped from here")
        reason = str(req.arg("reason") or "")
        # After this reply is written: the stop closes the admin socket.
        asyncio.get_running_loop().call_soon(self.server.events.fire, SHUTDOWN_EVENT, reason)
        return {"stopping": True}

    def module_info(self, req: AdminRequest) -> dict[str, Any]:
        """``module.info``: where a module comes from, what it is, where it is loaded."""
        name = _arg(req, "name")
        source = self.server.modules.find(name)
        rows = [r for r in self.server.modules.describe() if r["name"] == name]
        if source is None and not rows:
            raise AdminCommandError(f"module {name!r} not found")
        first = rows[0] if rows else {}
        return {"name": name, "origin": source.origin if source is not None else None,
                "version": source.version if source is not None else None,
                "summary": first.get("summary"), "xeps": first.get("xeps", []),
                "loaded": {r["host"]: r["status"] for r in rows},
                "errors": {r["host"]: r["error"] for r in rows if r["error"]}}

    # -- config -------------------------------------------------------------------------
    async def config_reload(self, _req: AdminRequest) -> dict[str, list[str]]:
        """``config.reload``: the same as ``server.reload``."""
        report = await self.server.reload()
        if report is None:
            raise AdminCommandError("the configuration file has errors (the server log and "
                                    "`tercet check` say which); nothing was changed")
        return report.to_dict()

    def config_get(self, req: AdminRequest) -> dict[str, Any]:
        """``config.get``: the value of ``option`` in force (for ``host`` if given)."""
        option = _arg(req, "option")
        host = req.arg("host") or None
        if host is not None and host not in self.server.hosts:
            raise AdminCommandError(f"no such host {host!r}")
        config = self.server.config
        if option not in config.schema and config.get(option, host, default=KeyError) \
                is KeyError:
            raise AdminCommandError(f"unknown option {option!r}")
        value = config.get(option, host)
        if any(word in option for word in SECRET_WORDS) and value:
            value = "(hidden)"
        return {"option": option, "host": host, "value": value}

    # -- c2s ----------------------------------------------------------------------------
    def _report(self, session: C2SSession) -> dict[str, Any]:
        report = SessionReport(session)
        if session.host is not None:
            self.server.fire_sync_or_log(session.host.events, SESSION_REPORT_EVENT, report)
        tls = session.tls_info if session.secure else {}
        return {
            "jid": session.full_jid, "id": session.id,
            "host": session.host.name if session.host is not None else None,
            "peer": session.peer, "transport": session.transport,
            "secure": session.secure, "tls_version": tls.get("version"),
            "tls_cipher": tls.get("cipher"), "client": client_software(session),
            "available": session.available, "priority": session.priority,
            "hibernated": session.detached, "stanzas_in": session.stanzas_in,
            "features": report.features,
        }

    def _local_host(self, name: str) -> Host:
        host = self.server.hosts.get(name)
        if host is None or host.kind != "local":
            raise AdminCommandError(f"no such virtual host {name!r}")
        return host

    def c2s_list(self, req: AdminRequest) -> list[dict[str, Any]]:
        """``c2s.list``: every bound client session (of ``host`` if given)."""
        name = req.arg("host") or None
        hosts = [self._local_host(name)] if name else [
            h for h in self.server.hosts.values() if h.kind == "local"]
        rows = [self._report(s) for h in hosts for s in h.all_sessions()]
        return sorted(rows, key=lambda r: str(r["jid"]))

    def _matching(self, req: AdminRequest) -> list[C2SSession]:
        text = _arg(req, "jid")
        try:
            jid = self.server.parse_jid(text)
        except InvalidJID:
            raise AdminCommandError(f"{text!r} is not a valid JID") from None
        if jid.node is None:
            raise AdminCommandError("name an account (user@host) or one of its resources")
        sessions = self._local_host(jid.domain).user_sessions(jid.node)
        if jid.resource is not None:
            found = sessions.get(jid.resource)
            return [] if found is None else [found]
        return list(sessions.values())

    def c2s_show(self, req: AdminRequest) -> list[dict[str, Any]]:
        """``c2s.show``: the sessions of an account (bare JID) or one resource."""
        return [self._report(s) for s in self._matching(req)]

    def c2s_close(self, req: AdminRequest) -> dict[str, Any]:
        """``c2s.close``: close the sessions of an account or one resource with the stream
        error ``policy-violation`` (RFC 6120 §4.9.3.14) and the operator's reason."""
        sessions = self._matching(req)
        reason = str(req.arg("reason") or "closed by the server administrator")
        for session in sessions:
            session.log.info("closing on the administrator's request: %s", reason)
            session.close(StreamError("policy-violation", reason))
            self.server.session_closed(session)
        return {"jid": req.arg("jid"), "closed": len(sessions)}

    # -- hosts --------------------------------------------------------------------------
    def host_list(self, _req: AdminRequest) -> list[dict[str, Any]]:
        """``host.list``: every hosted domain, its kind, sessions and whether it is
        active (accepts client logins)."""
        return [{"host": name, "kind": h.kind, "active": name not in self.inactive,
                 "sessions": sum(1 for _ in h.all_sessions()),
                 "modules": len(self.server.modules.modules_on(name))}
                for name, h in sorted(self.server.hosts.items())]

    def host_deactivate(self, req: AdminRequest) -> dict[str, Any]:
        """``host.deactivate``: close the host's client sessions and refuse new client
        streams to it with ``host-gone`` (RFC 6120 §4.9.3.5) until ``host.activate`` or
        a restart. The host keeps its accounts, data and federation; removing it for good
        is a configuration change and a restart."""
        name = _arg(req, "host")
        host = self._local_host(name)
        if name not in self.inactive:
            self.inactive[name] = host.events.hook(
                "stream-features", self._refuse_stream, STREAM_OBSERVER_PRIORITY)
        sessions = list(host.all_sessions())
        for session in sessions:
            session.close(StreamError("host-gone", "this host is deactivated"))
            self.server.session_closed(session)
        return {"host": name, "active": False, "closed": len(sessions)}

    @staticmethod
    def _refuse_stream(event: StreamFeaturesEvent) -> bool:
        session: Session = event.session
        if isinstance(session, C2SSession):
            session.close(StreamError("host-gone", "this host is deactivated"))
        return True

    def host_activate(self, req: AdminRequest) -> dict[str, Any]:
        """``host.activate``: accept client streams to a deactivated host again."""
        name = _arg(req, "host")
        self._local_host(name)
        handle = self.inactive.pop(name, None)
        if handle is not None:
            self.server.hosts[name].events.unhook(handle)
        return {"host": name, "active": True, "was_active": handle is None}

    # -- announce -----------------------------------------------------------------------
    async def announce(self, req: AdminRequest) -> dict[str, Any]:
        """``announce``: send ``message`` from the host to every online session of
        ``host`` (every virtual host when none is named), as a headline by default."""
        text = _arg(req, "message")
        kind = str(req.arg("type") or "headline")
        if kind not in ANNOUNCE_TYPES:
            raise AdminCommandError(f"type must be one of {', '.join(ANNOUNCE_TYPES)}")
        name = req.arg("host") or None
        hosts = [self._local_host(name)] if name else [
            h for h in self.server.hosts.values() if h.kind == "local"]
        sent = 0
        for host in hosts:
            for session in list(host.all_sessions()):
                stanza = message(to=session.full_jid, from_=host.name, type_=kind)
                stanza.text_tag("body", text)
                result = self.server.router.route(host.origin, stanza)
                if is_awaitable(result):
                    await result
                sent += 1
        return {"hosts": [h.name for h in hosts], "sent": sent}

    # -- stats --------------------------------------------------------------------------
    def stats(self, _req: AdminRequest) -> dict[str, Any]:
        """``stats``: sessions by kind and host, stanza counters, uptime, memory."""
        by_host = {name: sum(1 for _ in h.all_sessions())
                   for name, h in sorted(self.server.hosts.items()) if h.kind == "local"}
        streams: dict[str, int] = {}
        for session in self.server.net.sessions():
            kind = session.kind
            direction = getattr(session, "direction", None)
            key = f"{kind}_{direction}" if direction else kind
            streams[key] = streams.get(key, 0) + 1
        return {
            "uptime": round(self.server.clock() - self.server.started, 1),
            "rss": rss_bytes(),
            "c2s_sessions": sum(by_host.values()), "c2s_by_host": by_host,
            "connections": streams,
            "stanzas": {kind: {"received": dict(counts.received), "sent": dict(counts.sent)}
                        for kind, counts in self.server.stats.stanzas.items()},
        }

    # -- completion ---------------------------------------------------------------------
    def complete(self, _req: AdminRequest) -> dict[str, list[str]]:
        """``shell.complete``: what the shell completes: commands, online JIDs (bare and
        full), hosts, module names (available and loaded)."""
        jids: set[str] = set()
        for host in self.server.hosts.values():
            for session in host.all_sessions():
                if session.full_jid and session.bare_jid:
                    jids.update((session.full_jid, session.bare_jid))
        modules = {source.name for source in self.server.modules.available()}
        modules.update(name for name, _host in self.server.modules.loaded)
        commands = sorted(name[len("admin/"):] for name in self.server.events.names()
                          if name.startswith("admin/"))
        return {"commands": commands, "jids": sorted(jids), "hosts": sorted(self.server.hosts),
                "modules": sorted(modules)}

    # -- accounts (fallbacks) -----------------------------------------------------------
    def _account(self, req: AdminRequest) -> tuple[str, Host, AuthProvider]:
        text = _arg(req, "jid")
        try:
            jid: JID = self.server.parse_jid(text)
        except InvalidJID:
            raise AdminCommandError(f"{text!r} is not a valid JID") from None
        if jid.node is None or jid.resource is not None:
            raise AdminCommandError(f"expected user@host, got {text!r}")
        host = self._local_host(jid.domain)
        if host.auth is None:
            raise AdminCommandError(f"{jid.domain} has no account store")
        return jid.node, host, host.auth

    async def user_create(self, req: AdminRequest) -> dict[str, Any]:
        """``user.create``: create an account with ``password``."""
        user, host, auth = self._account(req)
        password = str(req.arg("password") or "")
        if not password:
            raise AdminCommandError("the password may not be empty")
        try:
            await auth.create_user(user, password)
        except UserExists:
            raise AdminCommandError(f"{user}@{host.name} already exists") from None
        return {"jid": f"{user}@{host.name}", "created": True}

    async def user_password(self, req: AdminRequest) -> dict[str, Any]:
        """``user.password``: set an account's password."""
        user, host, auth = self._account(req)
        password = str(req.arg("password") or "")
        if not password:
            raise AdminCommandError("the password may not be empty")
        try:
            await auth.set_password(user, password)
        except UserNotFound:
            raise AdminCommandError(f"{user}@{host.name} does not exist") from None
        return {"jid": f"{user}@{host.name}", "changed": True}

    async def _set_disabled(self, req: AdminRequest, disabled: bool) -> dict[str, Any]:
        user, host, auth = self._account(req)
        reason = str(req.arg("reason") or "") or None
        try:
            if isinstance(auth, InternalHashedProvider):
                await auth.set_disabled(user, disabled, reason)  # shown at login
            else:
                await auth.set_disabled(user, disabled)
        except UserNotFound:
            raise AdminCommandError(f"{user}@{host.name} does not exist") from None
        closed = 0
        if disabled:
            for session in list(host.user_sessions(user).values()):
                session.close(StreamError("not-authorized", reason or "account disabled"))
                self.server.session_closed(session)
                closed += 1
        return {"jid": f"{user}@{host.name}", "disabled": disabled, "closed": closed}

    async def user_disable(self, req: AdminRequest) -> dict[str, Any]:
        """``user.disable``: the account cannot log in; its sessions are closed."""
        return await self._set_disabled(req, True)

    async def user_enable(self, req: AdminRequest) -> dict[str, Any]:
        """``user.enable``: a disabled account may log in again."""
        return await self._set_disabled(req, False)

    async def user_list(self, req: AdminRequest) -> list[dict[str, Any]]:
        """``user.list``: the accounts (of ``host`` if given) and whether disabled."""
        name = req.arg("host") or None
        hosts = [self._local_host(name)] if name else [
            h for h in self.server.hosts.values() if h.kind == "local"]
        rows = []
        for host in hosts:
            auth = host.auth
            if auth is None:
                continue
            for user in sorted(await auth.users()):
                rows.append({"jid": f"{user}@{host.name}",
                             "disabled": await auth.is_disabled(user),
                             "online": len(host.user_sessions(user))})
        return rows

    async def user_show(self, req: AdminRequest) -> dict[str, Any]:
        """``user.show``: whether the account exists, is disabled, its role and its
        online resources."""
        user, host, auth = self._account(req)
        if not await auth.user_exists(user):
            raise AdminCommandError(f"{user}@{host.name} does not exist")
        jid = f"{user}@{host.name}"
        out: dict[str, Any] = {"jid": jid, "disabled": await auth.is_disabled(user)}
        if isinstance(auth, InternalHashedProvider):
            info = await auth.account_info(user)
            if info is not None:
                out.update(info.to_dict())
                del out["username"]
        out["role"] = self._role(jid, host.name)
        out["sessions"] = sorted(s.full_jid or "" for s in host.user_sessions(user).values())
        return out

    async def user_roles(self, req: AdminRequest) -> dict[str, Any]:
        """``user.roles``: the account's role on its host."""
        user, host, auth = self._account(req)
        if not await auth.user_exists(user):
            raise AdminCommandError(f"{user}@{host.name} does not exist")
        jid = f"{user}@{host.name}"
        return {"jid": jid, "host": host.name, "role": self._role(jid, host.name)}

    def _role(self, jid: str, host: str) -> str:
        return self.server.role_of(jid, host)

    # -- roles (fallbacks) --------------------------------------------------------------
    def role_list(self, _req: AdminRequest) -> list[dict[str, Any]]:
        """``role.list``: every role (built-in, lowest first, then the configured ones)
        with the role it inherits from."""
        permissions = self.server.permissions
        return [{"name": name, "inherits": permissions.parent(name),
                 "builtin": permissions.custom(name) is None}
                for name in permissions.roles()]

    def role_show(self, req: AdminRequest) -> dict[str, Any]:
        """``role.show``: a role's parent and every permission it has."""
        name = _arg(req, "role")
        if not self.server.permissions.exists(name):
            raise AdminCommandError(f"no role {name!r}; `role list` names them")
        return self.server.permissions.describe(name)
