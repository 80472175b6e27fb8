"""Server status for monitoring: software, version, uptime and session counts.

* Over XMPP: an iq get ``<status xmlns='urn:tercet:status'/>`` to the host is answered for
  actors with ``server_status:query`` (admins by default), ``forbidden`` for anyone else.
* As a file: with ``server_status_file`` set, the same facts are written as JSON every
  ``server_status_interval`` seconds, atomically (a reader never sees half a file), for
  monitoring tools that read files rather than speak XMPP.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from tercet.module import ModuleApi, ModuleError, Option, StanzaEvent
from tercet.protocol.errors import StanzaError

NS = "urn:tercet:status"
META = {"summary": "Server status for admins and monitoring", "stage": "stable", "xeps": []}
#: The least role with each action (docs/roles.md); custom roles may grant or deny it.
PERMISSIONS = {":query": "tercet:admin"}
OPTIONS: list[Option[Any]] = [
    Option("server_status_file", str, "",
           "Absolute path of the JSON status file ({host} is replaced); empty: none."),
    Option("server_status_interval", float, 60.0, "Seconds between two writes of the file.",
           min=0.01, max=86400),
]


def load(module: ModuleApi) -> None:
    file = module.option("server_status_file").replace("{host}", module.host)
    interval = float(module.option("server_status_interval"))
    if file and not Path(file).is_absolute():
        raise ModuleError(f"server_status_file must be an absolute path, not {file!r}")

    def snapshot() -> dict[str, Any]:
        info = module.server_info
        sessions = {host: len(module.all_sessions(host)) for host in module.hosts}
        return {"software": info["name"], "version": info["version"], "host": module.host,
                "started": int(info["started"]), "time": int(module.now()),
                "uptime": max(0, int(module.now() - info["started"])),
                "sessions": sum(sessions.values()), "hosts": sessions}

    def on_query(event: StanzaEvent) -> bool:
        if not module.may(":query", event):
            event.origin.send(event.stanza.error_reply(StanzaError("forbidden")))
            return True
        facts = snapshot()
        reply = event.stanza.reply()
        status = reply.tag("status", NS, {k: str(facts[k]) for k in (
            "software", "version", "started", "uptime", "sessions")})
        for host, count in sorted(facts["hosts"].items()):
            status.tag("host", attrs={"name": host, "sessions": str(count)})
        event.origin.send(reply)
        return True

    async def write_file() -> float:
        try:  # file I/O off the event loop, so a slow disk never stalls stanzas
            await asyncio.to_thread(_write_json, Path(file), snapshot())
        except OSError as exc:
            module.log.warning("cannot write %s: %s", file, exc)
        return interval  # again after the interval, whatever happened

    module.add_feature(NS)
    module.hook(f"iq-get/host/{NS}:status", on_query)
    if file:
        module.add_timer(0, write_file)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write to a temporary file next to ``path``, then rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
