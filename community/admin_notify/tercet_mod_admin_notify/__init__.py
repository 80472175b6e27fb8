"""Tell admins what happens to the server: a message from the host to each admin (the JIDs
in ``admins``, global and this host's) when the server has started, when it is stopping,
and when a module fails to load (or, if asked, loads or unloads).

Admins online here get the message straight away on each available session; others get it
routed like any message (offline storage, when a module provides it). A notice names the
module and the host, never the error text: that stays in the server log and in
``tercet module list``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tercet.module import (
    ClientSession,
    Element,
    InvalidJID,
    LoadedModule,
    ModuleApi,
    Option,
    message,
)

META = {"summary": "Notify admins of server and module events", "stage": "stable", "xeps": []}

EVENTS = ("started", "stopping", "module-failed", "module-loaded", "module-unloaded")
OPTIONS: list[Option[Any]] = [
    Option("admin_notify_events", list[str], ["started", "stopping", "module-failed"],
           "Events reported to the admins.", choices=EVENTS),
]


def load(module: ModuleApi) -> None:
    wanted = set(module.option("admin_notify_events"))
    admins = sorted(set(module.global_option("admins")) | set(module.option("admins")))

    def notify(text: str) -> None:
        for admin in admins:
            deliver(message(to=admin, from_=module.host, type_="normal",
                            body=f"[{module.host}] {text}"))

    def deliver(stanza: Element) -> None:
        online = online_sessions(stanza.get("to") or "")
        for session in online:
            # Straight to the session, not routed: this must also work while the server
            # stops, when sessions are closed right after the event.
            copy = stanza.copy()
            copy.attrs["to"] = session.full_jid or ""
            session.send(copy)
        if not online:
            module.send_detached(stanza)  # offline storage, or another server

    def online_sessions(admin: str) -> list[ClientSession]:
        """The admin's available sessions here (RFC 6121 §8.5.2.1: non-negative priority)."""
        try:
            jid = module.parse_jid(admin)
        except InvalidJID:
            return []
        if jid.node is None or not module.is_local_host(jid.domain):
            return []
        return [s for s in module.sessions(jid.node, jid.domain).values()
                if s.available and s.priority >= 0]

    def on_module(verb: str, hint: str = "") -> Callable[[LoadedModule], None]:
        def handler(entry: LoadedModule) -> None:
            # Modules of this host, and global ones (reported by every host's instance).
            if entry.host in (module.host, "*") and entry.name != module.name:
                where = "globally" if entry.host == "*" else f"on {entry.host}"
                notify(f"module {entry.name} {verb} {where}{hint}")
        return handler

    info = module.server_info
    if "started" in wanted:
        module.hook_global("server-started", lambda _server: notify(
            f"{info['name']} {info['version']} has started"))
    if "stopping" in wanted:
        # Fired before sessions are closed, so online admins still receive it.
        module.hook_global("server-stopping", lambda _server: notify(
            f"{info['name']} is shutting down"))
    if "module-failed" in wanted:
        module.hook_global("module-failed", on_module(
            "failed to load", " (see the server log or `tercet module list`)"))
    if "module-loaded" in wanted:
        module.hook_global("module-loaded", on_module("loaded"))
    if "module-unloaded" in wanted:
        module.hook_global("module-unloaded", on_module("unloaded"))
