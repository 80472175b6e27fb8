"""The admin commands the core itself answers (server status and the module lifecycle).

Modules add more by hooking ``admin/<cmd>`` on the global bus (see tercet.net.admin).
"""

from __future__ import annotations

import inspect
import os
from typing import TYPE_CHECKING, Any

from tercet.core import accounts, shell_commands
from tercet.core.admin import AdminCommandError, AdminRequest
from tercet.core.moduleapi import ModuleError
from tercet.protocol.errors import StreamError

if TYPE_CHECKING:
    from tercet.core.server import Server


def register(server: Server) -> None:
    bus = server.events
    commands = {
        "help": lambda req: help_(server, req),
        "server.status": lambda req: status(server),
        "server.reload": lambda req: server_reload(server),
        "module.list": lambda req: module_list(server, req),
        "module.load": lambda req: module_load(server, req),
        "module.unload": lambda req: module_unload(server, req),
        "module.reload": lambda req: module_reload(server, req),
        "user.disabled": lambda req: close_user_sessions(server, req, "not-authorized"),
        "user.deleted": lambda req: close_user_sessions(server, req, "not-authorized"),
        "user.delete": lambda req: user_delete(server, req),
    }
    for name, handler in commands.items():
        bus.hook(f"admin/{name}", handler)
    shell_commands.register(server)  # the commands behind `tercet shell`


def help_(server: Server, req: AdminRequest) -> list[str] | dict[str, str]:
    """Every command's name; with ``command``, what that command does (the first
    paragraph of its handler's docstring)."""
    wanted = req.arg("command")
    if wanted:
        handlers = server.events.handlers(f"admin/{wanted}")
        if not handlers:
            raise AdminCommandError(f"unknown command {wanted!r}")
        doc = inspect.getdoc(handlers[0].handler) or ""
        return {"command": str(wanted), "doc": doc.split("\n\n")[0]}
    return sorted(name[len("admin/"):] for name in server.events._chains  # noqa: SLF001
                  if name.startswith("admin/"))


def status(server: Server) -> dict[str, Any]:
    sessions = sum(1 for h in server.hosts.values() for _ in h.all_sessions())
    return {"pid": os.getpid(), "version": server.version, "started": server.started,
            "uptime": server.clock() - server.started, "hosts": list(server.hosts),
            "sessions": sessions,
            "listeners": server.net.bound()}


async def server_reload(server: Server) -> dict[str, list[str]]:
    """Re-read the configuration file and apply it (tercet.core.reload)."""
    report = await server.reload()
    if report is None:
        raise AdminCommandError("the configuration file has errors (the server log and "
                                "`tercet check` say which); nothing was changed")
    return report.to_dict()


def module_list(server: Server, req: AdminRequest) -> list[dict[str, Any]]:
    host = req.arg("host")
    rows = server.modules.describe()
    return [r for r in rows if host is None or r["host"] in (host, "*")]


def _targets(server: Server, name: str, host: str | None) -> list[str]:
    if host is not None:
        if host not in server.hosts and host != "*":
            raise AdminCommandError(f"no such host {host!r}")
        return [host]
    if server.modules.is_global(name):
        return ["*"]
    return [h for h, obj in server.hosts.items() if obj.kind == "local"]


async def module_load(server: Server, req: AdminRequest) -> list[dict[str, Any]]:
    name = str(req.arg("name", ""))
    if server.modules.find(name) is None:
        raise AdminCommandError(f"module {name!r} not found")
    out = []
    for host in _targets(server, name, req.arg("host")):
        entry = await server.modules.load(name, host)
        out.append({"host": entry.host, "status": entry.status, "error": entry.error})
    return out


def _loaded_on(server: Server, req: AdminRequest) -> tuple[str, list[str]]:
    """The module named in the request and the hosts it is loaded on (or the one asked)."""
    name = str(req.arg("name", ""))
    hosts = [h for (n, h) in server.modules.loaded if n == name]
    if req.arg("host") is not None:
        hosts = [h for h in hosts if h in (req.arg("host"), "*")]
    if not hosts:
        raise AdminCommandError(f"module {name!r} is not loaded")
    return name, hosts


async def module_unload(server: Server, req: AdminRequest) -> list[dict[str, Any]]:
    name, hosts = _loaded_on(server, req)
    out = []
    for host in hosts:
        try:
            gone = await server.modules.unload(name, host)
        except ModuleError as exc:
            raise AdminCommandError(str(exc)) from None
        out.append({"host": host, "unloaded": gone})
    return out


async def module_reload(server: Server, req: AdminRequest) -> list[dict[str, Any]]:
    name, hosts = _loaded_on(server, req)
    out = []
    for host in hosts:
        entry = await server.modules.reload(name, host)
        out.append({"host": entry.host, "status": entry.status, "error": entry.error})
    return out


def close_user_sessions(server: Server, req: AdminRequest, condition: str) -> int:
    jid = str(req.arg("jid", ""))
    user, _, host = jid.partition("@")
    h = server.hosts.get(host)
    if h is None:
        raise AdminCommandError(f"no such host {host!r}")
    sessions = list(h.user_sessions(user).values())
    for session in sessions:
        session.close(StreamError(condition, "account disabled or deleted"))
        server.session_closed(session)
    return len(sessions)


async def user_delete(server: Server, req: AdminRequest) -> dict[str, Any]:
    """Delete an account and all its data the way XEP-0077 cancel does (core.accounts):
    locked until ``user_deletion_grace_period`` ends, unless ``now`` is set."""
    jid = str(req.arg("jid", ""))
    user, _, host = jid.partition("@")
    h = server.hosts.get(host)
    if h is None or h.kind != "local":
        raise AdminCommandError(f"no such virtual host {host!r}")
    immediate = bool(req.arg("now", False))
    if not await accounts.delete_account(server, host, user, immediate=immediate):
        raise AdminCommandError(f"{jid} does not exist")
    grace = 0.0 if immediate else accounts.grace_period(server.config, host)
    return {"jid": jid, "deleted": True, "grace_period": grace}
