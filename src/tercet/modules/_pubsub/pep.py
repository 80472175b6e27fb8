"""Personal Eventing Protocol (XEP-0163): one pubsub service per account, and the
``pep`` service other modules use (:class:`PepService`, ``module.provides("pep", ...)``).

Recipients of a notification (XEP-0163 §4.3): explicit subscribers, the owner's
resources and the resources of contacts with subscription ``from``/``both`` whose caps
(:class:`CapsCache`) ask ``<node>+notify``, as the node's access model allows. The
notification is built once; each copy differs only in its ``to``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from tercet.module import JID, NS_CLIENT, Element, KeyValStore, ModuleApi
from tercet.modules._pubsub.caps import CapsCache
from tercet.modules._pubsub.config import NodeConfig
from tercet.modules._pubsub.engine import Item, Limits, Node, Service
from tercet.modules._pubsub.errors import PubsubError
from tercet.modules._rosterlib import RosterService, sees_user

#: XEP-0163 §4.1.2 and what clients expect of PEP nodes by default.
PEP_DEFAULT = NodeConfig(max_items=1, access_model="presence",
                         send_last_published_item="on_sub_and_presence")


@dataclass(frozen=True, slots=True)
class PepItemEvent:
    """Payload of ``pep-item-published`` and ``pep-item-retracted`` (host events)."""

    username: str
    node: str
    item_id: str
    payload: Element | None
    publisher: str


class _UserStore:
    """One account's nodes as one keyval record (username -> {node: node record})."""

    def __init__(self, store: KeyValStore, username: str, nodes: dict[str, Node]) -> None:
        self.store = store
        self.username = username
        self.nodes = nodes

    async def save(self, node: Node) -> None:
        await self.flush()

    async def remove(self, name: str) -> None:
        await self.flush()

    async def flush(self) -> None:
        data = {name: node.to_json() for name, node in self.nodes.items()}
        await self.store.set(self.username, data or None)


class PepService:
    """The PEP services of one host (a bounded cache of accounts' :class:`Service`)."""

    def __init__(self, module: ModuleApi, store: KeyValStore, caps: CapsCache, *,
                 limits: Limits, max_cached: int = 10_000) -> None:
        self.module = module
        self.store = store
        self.caps = caps
        self.limits = limits
        self.max_cached = max_cached
        self.services: OrderedDict[str, Service] = OrderedDict()
        # Accounts read and found without nodes: a set entry instead of a service each
        # (about 1.3 kB), so read-only lookups need not read the store again. Bounded like
        # the cache; only service() (which may create nodes) and forget() take one out.
        self._without_nodes: set[str] = set()

    # -- the API other modules use (docs/pep.md) --------------------------------------------
    async def publish(self, username: str, node: str, item_id: str | None,
                      payload: Element, options: dict[str, str | list[str]] | None = None,
                      publisher: JID | None = None) -> str:
        """Publish as the account would (auto-create, preconditions, notifications);
        returns the item id. ``publisher`` (default: the account) is recorded as the
        item's publisher. Raises PubsubError (e.g. precondition-not-met)."""
        service = await self.service(username)
        return await service.publish(
            node, service.jid, item_id, payload, _lists(options), autocreate=True,
            publisher=str(publisher.bare) if publisher is not None else None)

    async def get_items(self, username: str, node: str, *, max_items: int | None = None,
                        ids: list[str] | None = None) -> list[tuple[str, Element]]:
        """(id, payload) of a node's items, oldest first; [] when the node is absent."""
        service = await self.existing(username)
        if service is None or node not in service.nodes:
            return []
        try:
            _, items = await service.items(node, service.jid, max_items=max_items, ids=ids)
        except PubsubError:
            return []
        return [(i.id, i.payload) for i in items if i.payload is not None]

    async def retract(self, username: str, node: str, item_id: str,
                      notify: bool = True) -> None:
        service = await self.service(username)
        await service.retract(node, service.jid, item_id, notify)

    async def delete_node(self, username: str, node: str) -> None:
        service = await self.existing(username)
        if service is not None and node in service.nodes:
            await service.delete(node, service.jid)

    async def node_config(self, username: str, node: str) -> dict[str, Any] | None:
        """The node's configuration as ``{field name: value}``, None when absent."""
        service = await self.existing(username)
        found = service.nodes.get(node) if service is not None else None
        return None if found is None else found.config.to_json()

    # -- services ---------------------------------------------------------------------------
    async def service(self, username: str) -> Service:
        """The account's service, loaded from storage on first use."""
        found = await self._service(username, create=True)
        assert found is not None  # create=True always gives one
        return found

    async def existing(self, username: str) -> Service | None:
        """The account's service as :meth:`service` gives it, but None, and no service
        cached (only the name, in a set), when the account has no nodes in storage.

        For lookups that only read (``node_config`` is asked at every resource bind):
        a cached service costs ~1.3 kB per idle session's account even when it has no
        node, so an account without nodes gets one only when something may create a
        node (:meth:`service`)."""
        return await self._service(username, create=False)

    async def _service(self, username: str, *, create: bool) -> Service | None:
        found = self.services.get(username)
        if found is None:
            if not create and username in self._without_nodes:
                return None
            async with self.module.lock(f"pep:{username}"):
                found = self.services.get(username)
                if found is None:
                    if create:
                        self._without_nodes.discard(username)  # it may get one now
                    elif username in self._without_nodes:
                        return None
                    nodes = await self._load(username)
                    if not nodes and not create:
                        if len(self._without_nodes) >= self.max_cached:
                            self._without_nodes.clear()
                        self._without_nodes.add(username)
                        return None
                    found = self._cache(username, nodes)
        self.services.move_to_end(username)
        return found

    async def _load(self, username: str) -> dict[str, Node]:
        """The account's nodes, from storage."""
        nodes: dict[str, Node] = {}
        raw = await self.store.get(username)
        for name, data in (raw or {}).items() if isinstance(raw, dict) else ():
            node = Node.from_json(name, data, PEP_DEFAULT)
            if node is not None:
                nodes[name] = node
        return nodes

    def _cache(self, username: str, nodes: dict[str, Node]) -> Service:
        """A service over ``nodes``, cached (the oldest are dropped past the bound)."""
        owner = f"{username}@{self.module.host}"
        notifier = PepNotifier(self, username)
        service = Service(owner, default_config=PEP_DEFAULT, limits=self.limits,
                          store=_UserStore(self.store, username, nodes), notifier=notifier,
                          access=notifier.access, admins=lambda jid: jid == owner,
                          observer=notifier.observe)
        service.nodes = nodes
        # The owner is the owner of every node (XEP-0163 §4.1.1).
        self.services[username] = service
        while len(self.services) > self.max_cached:
            self.services.popitem(last=False)
        return service

    def forget(self, username: str) -> None:
        self.services.pop(username, None)
        self._without_nodes.discard(username)

    def roster(self) -> RosterService | None:
        return self.module.find("roster", RosterService)


class PepNotifier:
    """Notifications and access decisions of one account's PEP service."""

    def __init__(self, pep: PepService, username: str) -> None:
        self.pep = pep
        self.username = username
        self.owner = f"{username}@{pep.module.host}"

    async def access(self, actor: str, config: NodeConfig) -> str | None:
        """presence / roster access models (XEP-0060 §4.5) from the owner's roster."""
        if actor == self.owner:
            return None
        roster = self.pep.roster()
        record = await roster.load(self.username) if roster is not None else None
        item = record.items.get(actor) if record is not None else None
        if item is None or not sees_user(str(item.get("subscription"))):
            if config.access_model == "roster":
                return "not-in-roster-group"
            return "presence-subscription-required"
        if config.access_model == "roster" and not set(item.get("groups") or ()) & set(
                config.roster_groups_allowed):
            return "not-in-roster-group"
        return None

    async def recipients(self, node: Node, subscribers: dict[str, str]) -> list[str]:
        """Explicit subscribers, then the owner's and contacts' resources with +notify."""
        out = dict.fromkeys(subscribers)
        caps = self.pep.caps
        for session in self.pep.module.sessions(self.username).values():
            full = session.full_jid
            if full and node.name in (caps.wants(full) or ()):
                out[full] = None
        model = node.config.access_model
        if model in ("presence", "roster", "open"):
            roster = self.pep.roster()
            record = await roster.load(self.username) if roster is not None else None
            for contact, item in (record.items.items() if record is not None else ()):
                if not sees_user(str(item.get("subscription"))):
                    continue
                if model == "roster" and not set(item.get("groups") or ()) & set(
                        node.config.roster_groups_allowed):
                    continue
                for full in caps.resources_of(contact):
                    if node.name in (caps.wants(full) or ()):
                        out[full] = None
        return list(out)

    async def notify(self, node: Node, event: Element, subscribers: dict[str, str],
                     item: Item | None) -> None:
        targets = await self.recipients(node, subscribers)
        await send_event(self.pep.module, self.owner, node.config, event, targets)

    async def observe(self, kind: str, node: Node, item: Item) -> None:
        name = "pep-item-published" if kind == "published" else "pep-item-retracted"
        await self.pep.module.fire_async(name, PepItemEvent(
            self.username, node.name, item.id, item.payload, item.publisher))

    async def send_last(self, full_jid: str, wanted: frozenset[str]) -> None:
        """Send ``full_jid`` the last item of each node it wants (XEP-0163 §4.3.2:
        when it comes online or its interest becomes known)."""
        service = await self.pep.existing(self.username)  # no nodes: nothing to send
        if service is None:
            return
        actor = full_jid.split("/", 1)[0]
        for node in list(service.nodes.values()):
            item = node.last_item()
            if item is None or node.name not in wanted \
                    or node.config.send_last_published_item == "never":
                continue
            try:
                await service.may_access(node, actor)
            except PubsubError:
                continue
            event = service.items_event(node, [item], payloads=node.config.deliver_payloads)
            await send_event(self.pep.module, self.owner, node.config, event, [full_jid])


async def send_event(module: ModuleApi, sender: str, config: NodeConfig, event: Element,
                     targets: list[str]) -> None:
    """One <message/> per target around one event element: only ``to`` differs."""
    kind = config.notification_type
    for target in targets:
        # The event element is shared (nothing downstream changes a payload); each copy
        # has its own child list, since delivery may add children (delay, stanza-id).
        # Awaited, so notifications precede the publisher's result (as clients expect).
        await module.send(Element("message", NS_CLIENT,
                                  {"from": sender, "to": target, "type": kind}, [event]))


def _lists(options: dict[str, str | list[str]] | None) -> dict[str, list[str]] | None:
    if not options:
        return None
    return {(k if k.startswith("pubsub#") else f"pubsub#{k}"):
            ([v] if isinstance(v, str) else list(v)) for k, v in options.items()}
