"""Admin commands ``pubsub.nodes``, ``pubsub.items`` and ``pubsub.delete`` (``tercet pubsub
...`` over the admin socket).

The admin socket calls one handler per command, so every pubsub component and every PEP
host hooks the same function, and the one that runs asks all of them with the global
``pubsub-admin-services`` event which services they hold (a component: its domain; PEP: a
bare JID of its host).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tercet.module import AdminCommandError, AdminRequest, ModuleApi
from tercet.modules._pubsub.engine import Service

SERVICES_EVENT = "pubsub-admin-services"


@dataclass(slots=True)
class ServicesQuery:
    """Payload of ``pubsub-admin-services``: ``service`` None asks for every component."""

    service: str | None
    found: dict[str, Callable[[], Awaitable[Service]]] = field(default_factory=dict)


def register(module: ModuleApi, provide: Callable[[ServicesQuery], None]) -> None:
    """Hook the commands and this module's answer to ``pubsub-admin-services``."""
    module.hook_global(SERVICES_EVENT, provide)
    admin = _Commands(module)
    module.hook_global("admin/pubsub.nodes", admin.nodes)
    module.hook_global("admin/pubsub.items", admin.items)
    module.hook_global("admin/pubsub.delete", admin.delete)


class _Commands:
    def __init__(self, module: ModuleApi) -> None:
        self.module = module

    async def services(self, service: str | None) -> dict[str, Service]:
        query = ServicesQuery(service)
        self.module.fire_global(SERVICES_EVENT, query)
        if service is not None and service not in query.found:
            raise AdminCommandError(f"no pubsub service {service!r} here")
        return {jid: await get() for jid, get in sorted(query.found.items())}

    async def nodes(self, req: AdminRequest) -> list[dict[str, Any]]:
        service = req.arg("service") or None
        rows = []
        for jid, svc in (await self.services(service)).items():
            for node in svc.nodes.values():
                rows.append({"service": jid, "node": node.name, "title": node.config.title,
                             "access_model": node.config.access_model,
                             "items": len(node.items),
                             "subscriptions": len(node.subscriptions),
                             "owners": sorted(j for j, a in node.affiliations.items()
                                              if a == "owner")})
        return rows

    async def items(self, req: AdminRequest) -> list[dict[str, Any]]:
        svc = await self._one(req)
        node = svc.nodes.get(str(req.arg("node") or ""))
        if node is None:
            raise AdminCommandError(f"no node {req.arg('node')!r} in {req.arg('service')}")
        return [{"id": i.id, "publisher": i.publisher,
                 "payload": None if i.payload is None else i.payload.to_xml(None)}
                for i in node.items.values()]

    async def delete(self, req: AdminRequest) -> dict[str, Any]:
        svc = await self._one(req)
        name = str(req.arg("node") or "")
        if name not in svc.nodes:
            raise AdminCommandError(f"no node {name!r} in {req.arg('service')}")
        owner = next(iter(sorted(j for j, a in svc.nodes[name].affiliations.items()
                                 if a == "owner")), svc.jid)
        # As the owner would: subscribers are told (§8.4.2).
        await svc.delete(name, owner)
        return {"service": req.arg("service"), "node": name, "deleted": True}

    async def _one(self, req: AdminRequest) -> Service:
        service = str(req.arg("service") or "")
        if not service:
            raise AdminCommandError("name the pubsub service (a component or an account)")
        return (await self.services(service))[service]
