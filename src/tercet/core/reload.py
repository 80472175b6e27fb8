"""Applying a re-read configuration to a running server (``tercet reload``, SIGHUP).

Modules read their options when they load, so a new file changes nothing by itself. A
reload therefore

1. keeps the running value of every option declared ``restart=True`` (listening
   addresses, the data directory, storage) and reports it as waiting for a restart;
2. reloads (save -> unload -> load -> restore) every module that has read an option whose
   value changed, on its own host; a global module when the value changed on any host;
3. loads what ``modules_enabled`` now adds and unloads what it no longer lists (modules
   something else depends on stay);
4. reports hosts added to or removed from the file: they need a restart.

The result is a :class:`ReloadReport`, logged and returned to ``tercet reload``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tercet.core.config import Config
from tercet.core.moduleapi import ModuleError

if TYPE_CHECKING:
    from tercet.core.server import Server

log = logging.getLogger("tercet.server")


@dataclass
class ReloadReport:
    reloaded: list[str] = field(default_factory=list)   # "name@host (option, ...)"
    loaded: list[str] = field(default_factory=list)     # "name@host"
    unloaded: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)     # "name@host: error"
    restart_needed: list[str] = field(default_factory=list)  # options and hosts

    def to_dict(self) -> dict[str, list[str]]:
        return {"reloaded": self.reloaded, "loaded": self.loaded, "unloaded": self.unloaded,
                "failed": self.failed, "restart_needed": self.restart_needed}

    def summary(self) -> str:
        parts = [f"{what}: {', '.join(items)}" for what, items in self.to_dict().items()
                 if items]
        return "; ".join(parts) or "nothing changed"


def changed_options(old: Config, new: Config, names: set[str], host: str) -> list[str]:
    """Which of ``names`` have another value in ``new`` for ``host`` ("*": on any host or
    globally)."""
    hosts: list[str | None] = [None] if host == "*" else [host]
    if host == "*":
        hosts += sorted(set(old.hosts) | set(new.hosts) | set(old.components)
                        | set(new.components))
    return sorted(n for n in names if any(old.get(n, h) != new.get(n, h) for h in hosts))


async def apply(server: Server, old: Config, new: Config) -> ReloadReport:
    """Make the running server follow ``new`` (already installed as server.config, with
    the restart-only values of ``old`` kept; see Config.keep_running)."""
    report = ReloadReport()
    configured = set(new.hosts) | set(new.components)
    report.restart_needed += [f"host {h} (added)" for h in sorted(configured - set(server.hosts))]
    report.restart_needed += [f"host {h} (removed)" for h in sorted(set(server.hosts) - configured)]
    await _reload_changed(server, old, new, report)
    await _follow_modules_enabled(server, report)
    return report


async def _reload_changed(server: Server, old: Config, new: Config,
                          report: ReloadReport) -> None:
    todo: list[tuple[str, str, list[str]]] = []
    for (name, host), entry in sorted(server.modules.loaded.items()):
        if entry.status != "loaded" or entry.api is None:
            continue
        changed = changed_options(old, new, entry.api.options_read, host)
        if changed:
            todo.append((name, host, changed))
    done: set[tuple[str, str]] = set()
    for name, host, changed in todo:
        if (name, host) in done or (name, host) not in server.modules.loaded:
            continue  # reloaded already, as a dependant of an earlier one
        try:
            entry = await server.modules.reload(name, host)
        except ModuleError as exc:
            report.failed.append(f"{name}@{host}: {exc}")
            continue
        done.add((name, host))
        if entry.status != "loaded":
            report.failed.append(f"{name}@{host}: {entry.error}")
        else:
            report.reloaded.append(f"{name}@{host} ({', '.join(changed)})")


async def _follow_modules_enabled(server: Server, report: ReloadReport) -> None:
    wanted: dict[str, set[str]] = {h: set(server.module_names_for(h)) for h in server.hosts}
    wanted_anywhere = set().union(*wanted.values()) if wanted else set()
    for host, names in wanted.items():
        for name in sorted(names):
            if (name, host) in server.modules.loaded or (name, "*") in server.modules.loaded:
                continue
            entry = await server.modules.load(name, host)
            target = f"{name}@{entry.host}"
            (report.loaded if entry.status == "loaded" else report.failed).append(
                target if entry.status == "loaded" else f"{target}: {entry.error}")
    for (name, host), entry in sorted(server.modules.loaded.items()):
        if entry.dependants or (name, host) not in server.modules.loaded:
            continue  # something depends on it (it was loaded for that, not listed)
        listed = name in wanted_anywhere if host == "*" else name in wanted.get(host, set())
        if not listed:
            await server.modules.unload(name, host)
            report.unloaded.append(f"{name}@{host}")
