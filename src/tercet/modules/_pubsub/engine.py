"""The pubsub service engine (XEP-0060), without transport: nodes, items, affiliations,
subscriptions and access rules. Front ends (the ``pubsub`` component, ``pep``) turn
stanzas into calls here and the :class:`Notifier` they pass in turns events into stanzas.

Every failure is a :class:`PubsubError` naming the XEP's case. State lives in memory and
is written through a :class:`NodeStore` after each change; items of nodes with
``persist_items`` off are kept in memory only.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from tercet.modules._pubsub.config import NodeConfig, apply_values, check_preconditions
from tercet.modules._pubsub.errors import PubsubError
from tercet.protocol.errors import StreamError
from tercet.protocol.stanza import Element
from tercet.protocol.xmlstream import parse_fragment

#: XEP-0060 §4.1 affiliations, strongest first.
AFFILIATIONS = ("owner", "publisher", "publish-only", "member", "none", "outcast")
#: §4.2 subscription states a client may hold.
SUBSCRIPTION_STATES = ("none", "pending", "unconfigured", "subscribed")


@dataclass(slots=True)
class Item:
    """A published item: its id, payload (may be None: notification-only) and publisher."""

    id: str
    payload: Element | None
    publisher: str

    def to_json(self) -> list[str | None]:
        return [self.id, None if self.payload is None else self.payload.to_xml(None),
                self.publisher]

    @classmethod
    def from_json(cls, data: Any) -> Item | None:
        if not (isinstance(data, list) and len(data) == 3 and isinstance(data[0], str)):
            return None
        payload = None
        if isinstance(data[1], str):
            try:
                payload = parse_fragment(data[1])
            except StreamError:
                return None
        return cls(data[0], payload, str(data[2] or ""))


@dataclass(slots=True)
class Node:
    """One node: configuration, affiliations (bare JID -> affiliation), subscriptions
    (JID -> subid) and items, oldest first."""

    name: str
    config: NodeConfig
    affiliations: dict[str, str] = field(default_factory=dict)
    subscriptions: dict[str, str] = field(default_factory=dict)
    items: dict[str, Item] = field(default_factory=dict)

    def last_item(self) -> Item | None:
        return next(reversed(self.items.values()), None)

    def to_json(self) -> dict[str, Any]:
        return {"config": self.config.to_json(), "affiliations": dict(self.affiliations),
                "subscriptions": dict(self.subscriptions),
                "items": [i.to_json() for i in self.items.values()]
                if self.config.persist_items else []}

    @classmethod
    def from_json(cls, name: str, data: Any, default: NodeConfig) -> Node | None:
        if not isinstance(data, dict):
            return None
        node = cls(name, NodeConfig.from_json(data.get("config"), default))
        for key, target in (("affiliations", node.affiliations),
                            ("subscriptions", node.subscriptions)):
            raw = data.get(key)
            if isinstance(raw, dict):
                target.update({str(k): str(v) for k, v in raw.items()})
        for raw_item in data.get("items") or ():
            item = Item.from_json(raw_item)
            if item is not None:
                node.items[item.id] = item
        return node


class NodeStore(Protocol):
    """Where a service keeps its nodes (one record per node)."""

    async def save(self, node: Node) -> None: ...
    async def remove(self, name: str) -> None: ...


class Notifier(Protocol):
    """Delivers a service's events (§7.1.2, §7.2.2, §8.4.2, §8.5.2, §8.2.5).

    ``event`` is a <event xmlns='...#event'/> element built once; ``subscribers`` maps
    each explicitly subscribed JID to its subid. ``item`` is the item an items event is
    about (None for others), for front ends that add implicit recipients (PEP)."""

    def notify(self, node: Node, event: Element, subscribers: dict[str, str],
               item: Item | None) -> Awaitable[None]: ...


#: Decides whether ``actor`` (bare JID) may see a node of ``model`` (presence/roster):
#: the front end answers from the owner's roster.
AccessCheck = Callable[[str, NodeConfig], Awaitable[str | None]]
#: Told of each published ("published") and retracted ("retracted") item, after the fact.
Observer = Callable[[str, "Node", Item], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds of one service (XEP-0060 leaves them to the service, §7.1.3.4, §8.1.3)."""

    max_items: int = 256
    max_nodes: int = 1000
    max_payload: int = 65536
    max_subscriptions: int = 1000


class Service:
    """One pubsub service: the component's, or one account's PEP service."""

    def __init__(self, jid: str, *, default_config: NodeConfig, limits: Limits,
                 store: NodeStore, notifier: Notifier, access: AccessCheck,
                 admins: Callable[[str], bool], expose_publisher: bool = False,
                 observer: Observer | None = None) -> None:
        self.jid = jid
        self.nodes: dict[str, Node] = {}
        self.default_config = default_config
        self.limits = limits
        self.store = store
        self.notifier = notifier
        self.access = access
        self.is_admin = admins
        self.expose_publisher = expose_publisher
        self.observer = observer

    # -- lookups ---------------------------------------------------------------------------
    def node(self, name: str | None) -> Node:
        if not name:
            raise PubsubError("nodeid-required")
        found = self.nodes.get(name)
        if found is None:
            raise PubsubError("item-not-found")
        return found

    def affiliation(self, node: Node, actor: str) -> str:
        """``actor``'s affiliation (bare JID); service admins are owners (§4.1)."""
        if self.is_admin(actor):
            return "owner"
        return node.affiliations.get(actor, "none")

    def require_owner(self, node: Node, actor: str) -> None:
        if self.affiliation(node, actor) != "owner":
            raise PubsubError("forbidden")

    async def may_access(self, node: Node, actor: str) -> None:
        """Raise the §6.1.3 / §6.5.9 error when ``actor`` may not see ``node``."""
        aff = self.affiliation(node, actor)
        if aff == "outcast":
            raise PubsubError("forbidden")
        if aff in ("owner", "publisher", "member") or node.config.access_model == "open":
            return
        if node.config.access_model == "whitelist":
            raise PubsubError("closed-node")
        if node.config.access_model == "authorize":
            raise PubsubError("forbidden")
        refusal = await self.access(actor, node.config)
        if refusal is not None:
            raise PubsubError(refusal)

    # -- owner use cases (§8) --------------------------------------------------------------
    async def create(self, name: str | None, actor: str,
                     config: dict[str, list[str]] | None = None) -> str:
        """§8.1: a node named ``name`` (None: an instant node, §8.1.2) owned by ``actor``."""
        if name is None:
            name = uuid.uuid4().hex
        if name in self.nodes:
            raise PubsubError("conflict")
        if len(self.nodes) >= self.limits.max_nodes:
            raise PubsubError("max-nodes-exceeded")
        settings = self.default_config
        if config:
            settings = apply_values(settings, config, self.limits.max_items)
        node = Node(name, settings, {actor: "owner"})
        self.nodes[name] = node
        await self.store.save(node)
        return name

    async def configure(self, name: str, actor: str, values: dict[str, list[str]]) -> None:
        """§8.2.4: apply a submitted configuration form."""
        node = self.node(name)
        self.require_owner(node, actor)
        node.config = apply_values(node.config, values, self.limits.max_items)
        self.trim(node)
        await self.store.save(node)
        if node.config.notify_config and node.config.deliver_notifications:
            event = _event()
            event.tag("configuration", attrs={"node": name})
            await self.notifier.notify(node, event, dict(node.subscriptions), None)

    async def delete(self, name: str, actor: str, redirect: str | None = None) -> None:
        """§8.4: delete the node and tell its subscribers (with a redirect URI)."""
        node = self.node(name)
        self.require_owner(node, actor)
        del self.nodes[name]
        await self.store.remove(name)
        if node.config.notify_delete and node.config.deliver_notifications:
            event = _event()
            deleted = event.tag("delete", attrs={"node": name})
            if redirect:
                deleted.tag("redirect", attrs={"uri": redirect})
            await self.notifier.notify(node, event, dict(node.subscriptions), None)

    async def purge(self, name: str, actor: str) -> None:
        """§8.5: remove every item."""
        node = self.node(name)
        self.require_owner(node, actor)
        node.items.clear()
        await self.store.save(node)
        if node.config.notify_retract and node.config.deliver_notifications:
            event = _event()
            event.tag("purge", attrs={"node": name})
            await self.notifier.notify(node, event, dict(node.subscriptions), None)

    async def set_affiliations(self, name: str, actor: str,
                               changes: dict[str, str]) -> None:
        """§8.9.2: owners change affiliations; "none" removes one. An owner may not leave
        the node without owners (§8.9.2.4)."""
        node = self.node(name)
        self.require_owner(node, actor)
        if any(a not in AFFILIATIONS for a in changes.values()):
            raise PubsubError("bad-request")
        merged = {**node.affiliations, **changes}
        merged = {j: a for j, a in merged.items() if a != "none"}
        if "owner" not in merged.values():
            raise PubsubError("not-allowed", "A node needs an owner")
        node.affiliations = merged
        for jid, aff in changes.items():
            if aff == "outcast":
                for sub in [s for s in node.subscriptions if _bare(s) == jid]:
                    del node.subscriptions[sub]
        await self.store.save(node)

    async def set_subscriptions(self, name: str, actor: str,
                                changes: dict[str, str]) -> None:
        """§8.8.2: owners subscribe ("subscribed") or remove ("none") entities."""
        node = self.node(name)
        self.require_owner(node, actor)
        for jid, state in changes.items():
            if state == "none":
                node.subscriptions.pop(jid, None)
            elif state == "subscribed":
                node.subscriptions.setdefault(jid, uuid.uuid4().hex)
            else:
                raise PubsubError("bad-request")
        await self.store.save(node)

    # -- publishing (§7.1, §7.2) ---------------------------------------------------------
    async def publish(self, name: str, actor: str, item_id: str | None,
                      payload: Element | None, options: dict[str, list[str]] | None = None,
                      *, autocreate: bool = False, publisher: str | None = None) -> str:
        """§7.1: store and announce an item; returns its id (generated when absent).
        ``publisher`` records another JID than the actor's as the item's publisher."""
        node = self.nodes.get(name)
        if node is None:
            if not autocreate:
                raise PubsubError("item-not-found")
            await self.create(name, actor, options)
            node = self.nodes[name]
        elif options:
            check_preconditions(node.config, options, self.limits.max_items)
        self.may_publish(node, actor)
        if payload is not None and len(payload.to_xml(None)) > self.limits.max_payload:
            raise PubsubError("payload-too-big")
        item = Item(item_id or uuid.uuid4().hex, payload, publisher or actor)
        node.items.pop(item.id, None)  # a re-published id moves to the end (§7.1.2)
        node.items[item.id] = item
        self.trim(node)
        await self.store.save(node)
        if node.config.deliver_notifications:
            event = self.items_event(node, [item], payloads=node.config.deliver_payloads)
            await self.notifier.notify(node, event, dict(node.subscriptions), item)
        if self.observer is not None:
            await self.observer("published", node, item)
        return item.id

    def may_publish(self, node: Node, actor: str) -> None:
        aff = self.affiliation(node, actor)
        if aff in ("owner", "publisher", "publish-only"):
            return
        model = node.config.publish_model
        if model == "open" and aff != "outcast":
            return
        if model == "subscribers" and any(_bare(s) == actor for s in node.subscriptions):
            return
        raise PubsubError("forbidden")

    def trim(self, node: Node) -> None:
        """Keep at most max_items, dropping the oldest (§7.1.2, §16.4.3)."""
        excess = len(node.items) - node.config.max_items
        for key in list(node.items)[:max(excess, 0)]:
            del node.items[key]

    async def retract(self, name: str, actor: str, item_id: str, notify: bool) -> None:
        """§7.2: remove an item; publishers remove theirs, owners any."""
        node = self.node(name)
        item = node.items.get(item_id)
        if item is None:
            raise PubsubError("item-not-found")
        aff = self.affiliation(node, actor)
        if aff not in ("owner", "publisher") and item.publisher != actor:
            raise PubsubError("forbidden")
        del node.items[item_id]
        await self.store.save(node)
        if notify and node.config.notify_retract and node.config.deliver_notifications:
            event = _event()
            event.tag("items", attrs={"node": name}).tag("retract", attrs={"id": item_id})
            await self.notifier.notify(node, event, dict(node.subscriptions), item)
        if self.observer is not None:
            await self.observer("retracted", node, item)

    # -- subscribers (§6) ------------------------------------------------------------------
    async def subscribe(self, name: str, actor: str, jid: str) -> tuple[str, str]:
        """§6.1: subscribe ``jid`` (whose bare JID must be the actor's); returns
        (state, subid)."""
        node = self.node(name)
        if _bare(jid) != actor and self.affiliation(node, actor) != "owner":
            raise PubsubError("invalid-jid")
        await self.may_access(node, _bare(jid))
        if jid not in node.subscriptions and \
                len(node.subscriptions) >= self.limits.max_subscriptions:
            raise PubsubError("too-many-subscriptions")
        subid = node.subscriptions.setdefault(jid, uuid.uuid4().hex)
        await self.store.save(node)
        return "subscribed", subid

    async def unsubscribe(self, name: str, actor: str, jid: str,
                          subid: str | None) -> None:
        """§6.2: remove ``jid``'s subscription (its own, or any for owners)."""
        node = self.node(name)
        if _bare(jid) != actor and self.affiliation(node, actor) != "owner":
            raise PubsubError("forbidden")
        current = node.subscriptions.get(jid)
        if current is None:
            raise PubsubError("not-subscribed")
        if subid is not None and subid != current:
            raise PubsubError("invalid-subid")
        del node.subscriptions[jid]
        await self.store.save(node)

    def subscription(self, node: Node, jid: str, subid: str | None) -> str:
        """The subid of ``jid``'s subscription, checked as §6.3.4 says."""
        current = node.subscriptions.get(jid)
        if current is None:
            raise PubsubError("not-subscribed")
        if subid is not None and subid != current:
            raise PubsubError("invalid-subid")
        return current

    async def items(self, name: str, actor: str, *, max_items: int | None = None,
                    ids: list[str] | None = None) -> tuple[Node, list[Item]]:
        """§6.5: the node's items, oldest first; the newest ``max_items``, or by id."""
        node = self.node(name)
        await self.may_access(node, actor)
        if ids:
            found = [node.items[i] for i in ids if i in node.items]
            if not found:
                raise PubsubError("item-not-found")
            return node, found
        items = list(node.items.values())
        if max_items is not None:
            items = items[-max_items:] if max_items > 0 else []
        return node, items

    def default(self) -> NodeConfig:
        return self.default_config

    # -- building events -------------------------------------------------------------------
    def publisher_of(self, node: Node, item: Item) -> str | None:
        """The publisher attribute an item carries (itemreply, expose_publisher)."""
        if node.config.itemreply == "publisher" or self.expose_publisher:
            return item.publisher or None
        if node.config.itemreply == "owner":
            return next((j for j, a in node.affiliations.items() if a == "owner"), None)
        return None

    def item_element(self, node: Node, item: Item, ns: str, payload: bool = True) -> Element:
        attrs = {"id": item.id}
        publisher = self.publisher_of(node, item)
        if publisher:
            attrs["publisher"] = publisher
        el = Element("item", ns, attrs)
        if payload and item.payload is not None:
            el.append(item.payload)
        return el

    def items_event(self, node: Node, items: list[Item], *, payloads: bool) -> Element:
        event = _event()
        holder = event.tag("items", attrs={"node": node.name})
        for item in items:
            holder.append(self.item_element(node, item, NS_EVENT, payloads))
        return event


NS_EVENT = "http://jabber.org/protocol/pubsub#event"


def _event() -> Element:
    return Element("event", NS_EVENT)


def _bare(jid: str) -> str:
    return jid.split("/", 1)[0]
