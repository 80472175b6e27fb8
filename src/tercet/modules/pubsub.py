"""Publish-Subscribe (XEP-0060) as a component: ``[components."pubsub.example.org"]``
with ``module = "pubsub"``.

Node creation is for service admins (``admins``, global or in the component's table),
who are also owners of every node; everyone else publishes and subscribes as each node's
configuration allows (``open`` access by default). Nodes and items are kept in the
component's ``pubsub`` store. Disco (§5): the service lists its nodes in disco#items and
answers disco#info about nodes; ``expose_publisher`` adds the publisher's JID to items.
"""

from __future__ import annotations

from typing import Any

from tercet.module import (
    NS_CLIENT,
    Element,
    KeyValStore,
    ModuleApi,
    Option,
    StanzaError,
    StanzaEvent,
)
from tercet.modules._pubsub import admin
from tercet.modules._pubsub.admin import ServicesQuery
from tercet.modules._pubsub.config import NodeConfig
from tercet.modules._pubsub.engine import Item, Limits, Node, Service
from tercet.modules._pubsub.wire import FEATURE, NS_OWNER, NS_PUBSUB, PubsubWire, Request
from tercet.protocol.dataforms import Field, build_form

META = {"summary": "Publish-Subscribe service (component)", "stage": "beta",
        "xeps": ["XEP-0060", "XEP-0248"]}
#: docs/roles.md. ``admin``: owner of every node (XEP-0060 §4.1 service administrator);
#: ``create-node``: creating nodes on this (component) service.
PERMISSIONS = {":admin": "tercet:admin", ":create-node": "tercet:admin"}

NS_INFO = "http://jabber.org/protocol/disco#info"
NS_ITEMS = "http://jabber.org/protocol/disco#items"

OPTIONS: list[Option[Any]] = [
    Option("pubsub_max_items", int, 256,
           "Most items one node keeps; 'max' in a node's max_items means this.",
           min=1, max=100_000, cite="XEP-0060 §16.4.3"),
    Option("pubsub_max_nodes", int, 10_000, "Most nodes the service holds.",
           min=1, max=10_000_000, cite="XEP-0060 §8.1.3"),
    Option("pubsub_max_payload_size", int, 262144,
           "Largest item payload, in bytes (larger: payload-too-big).",
           min=256, max=16_777_216, cite="XEP-0060 §7.1.3.4"),
    Option("pubsub_max_subscriptions", int, 10_000, "Most subscriptions one node holds.",
           min=1, max=10_000_000, cite="XEP-0060 §6.1.3.9"),
    Option("expose_publisher", bool, False,
           "Add the publisher's JID to items (the 'publisher' attribute, XEP-0060 §7.1.2)."),
]

FEATURES = ("access-open", "access-presence", "access-whitelist", "config-node",
            "create-and-configure", "create-nodes", "delete-items", "delete-nodes",
            "instant-nodes", "item-ids", "last-published", "manage-affiliations",
            "manage-subscriptions", "meta-data", "modify-affiliations", "multi-items",
            "outcast-affiliation", "persistent-items", "publish", "publish-options",
            "publisher-affiliation", "purge-nodes", "retract-items",
            "retrieve-affiliations", "retrieve-default", "retrieve-items",
            "retrieve-subscriptions", "subscribe", "subscription-options")
#: The component's defaults (XEP-0060 §16.4.3; max_items 20 as other servers use).
COMPONENT_DEFAULT = NodeConfig()


class _NodeStore:
    """One keyval record per node (keyed by node name)."""

    def __init__(self, store: KeyValStore) -> None:
        self.store = store

    async def save(self, node: Node) -> None:
        await self.store.set(node.name, node.to_json())

    async def remove(self, name: str) -> None:
        await self.store.set(name, None)


class PubsubComponent:
    """The component's service and its stanza handlers."""

    autocreate = False

    def __init__(self, module: ModuleApi) -> None:
        self.module = module
        self.store = module.open_store("pubsub", "keyval")
        limits = Limits(max_items=module.option("pubsub_max_items"),
                        max_nodes=module.option("pubsub_max_nodes"),
                        max_payload=module.option("pubsub_max_payload_size"),
                        max_subscriptions=module.option("pubsub_max_subscriptions"))
        self.service = Service(module.host, default_config=COMPONENT_DEFAULT, limits=limits,
                               store=_NodeStore(self.store), notifier=self,
                               access=self.access,
                               admins=lambda jid: module.may(":admin", jid),
                               expose_publisher=module.option("expose_publisher"))
        self.wire = PubsubWire(self)

    async def restore(self) -> None:
        """Load every stored node."""
        for name in await self.store.users():
            node = Node.from_json(name, await self.store.get(name), COMPONENT_DEFAULT)
            if node is not None:
                self.service.nodes[name] = node

    # -- Frontend / Notifier ------------------------------------------------------------------
    def may_create(self, request: Request) -> bool:
        return self.module.may(":create-node", request.actor)

    async def after_subscribe(self, request: Request, node: Node, jid: str) -> None:
        item = node.last_item()
        if item is not None and node.config.send_last_published_item != "never":
            event = self.service.items_event(node, [item],
                                             payloads=node.config.deliver_payloads)
            request.after_reply.append(lambda: self.send(node, event, [jid]))

    async def access(self, actor: str, config: NodeConfig) -> str | None:
        # The service has no roster: presence and roster models admit affiliates only.
        return "presence-subscription-required" if config.access_model == "presence" \
            else "not-in-roster-group"

    async def notify(self, node: Node, event: Element, subscribers: dict[str, str],
                     item: Item | None) -> None:
        await self.send(node, event, list(subscribers))

    async def send(self, node: Node, event: Element, targets: list[str]) -> None:
        kind = node.config.notification_type
        for target in targets:
            await self.module.send(Element(
                "message", NS_CLIENT, {"from": self.module.host, "to": target, "type": kind},
                [event]))

    # -- stanzas --------------------------------------------------------------------------
    async def on_iq(self, event: StanzaEvent) -> bool:
        if event.from_ is None:
            return True
        request = Request(event.stanza, str(event.from_.bare), str(event.from_),
                          self.service)
        reply = await self.wire.handle(request)
        await self.module.send(reply)
        await request.finish()
        return True

    def disco_info(self, event: StanzaEvent) -> bool | None:
        """disco#info of a node (§5.4); the service itself is disco's."""
        payload = event.stanza.iq_payload()
        name = payload.get("node") if payload is not None else None
        if not name:
            return None
        node = self.service.nodes.get(name)
        if node is None:
            return self.error(event, "item-not-found")
        reply = event.stanza.reply()
        query = reply.tag("query", NS_INFO, {"node": name})
        query.tag("identity", NS_INFO, {"category": "pubsub", "type": "leaf"})
        query.tag("feature", NS_INFO, {"var": "http://jabber.org/protocol/pubsub"})
        query.append(meta_data(node))
        self.module.send_detached(reply)
        return True

    def disco_items(self, event: StanzaEvent) -> bool:
        """The service's nodes (§5.2), or a node's items (§5.5)."""
        payload = event.stanza.iq_payload()
        name = payload.get("node") if payload is not None else None
        reply = event.stanza.reply()
        query = reply.tag("query", NS_ITEMS, {"node": name} if name else None)
        if name:
            node = self.service.nodes.get(name)
            if node is None:
                return self.error(event, "item-not-found")
            for item_id in node.items:
                query.tag("item", NS_ITEMS, {"jid": self.module.host, "name": item_id})
        else:
            for node in self.service.nodes.values():
                attrs = {"jid": self.module.host, "node": node.name}
                if node.config.title:
                    attrs["name"] = node.config.title
                query.tag("item", NS_ITEMS, attrs)
        self.module.send_detached(reply)
        return True

    def error(self, event: StanzaEvent, condition: str) -> bool:
        self.module.send_detached(event.stanza.error_reply(StanzaError(condition)))
        return True


def meta_data(node: Node) -> Element:
    """The pubsub#meta-data form of a node's disco#info (§5.4)."""
    config = node.config
    owners = [j for j, a in node.affiliations.items() if a == "owner"]
    fields = [Field("pubsub#title", "text-single", None, [config.title] if config.title
                    else []),
              Field("pubsub#description", "text-single", None,
                    [config.description] if config.description else []),
              Field("pubsub#type", "text-single", None, [config.type] if config.type else []),
              Field("pubsub#access_model", "list-single", None, [config.access_model]),
              Field("pubsub#owner", "jid-multi", None, owners)]
    return build_form(fields, type_="result",
                      form_type="http://jabber.org/protocol/pubsub#meta-data")


async def load(module: ModuleApi) -> None:
    module.depends("iq")
    module.depends("disco")
    component = PubsubComponent(module)
    await component.restore()
    module.add_identity("pubsub", "service", module.option("name") or "Publish-Subscribe")
    module.add_feature("http://jabber.org/protocol/pubsub")
    for feature in FEATURES:
        module.add_feature(FEATURE + feature)
    module.provides("pubsub", component.service)
    for ns in (NS_PUBSUB, NS_OWNER):
        module.hook(f"iq/host/{ns}:pubsub", component.on_iq)
    module.hook(f"iq-get/host/{NS_INFO}:query", component.disco_info, 10)
    module.hook(f"iq-get/host/{NS_ITEMS}:query", component.disco_items, 10)

    async def service() -> Service:
        return component.service

    def provide(query: ServicesQuery) -> None:
        if query.service in (None, module.host):
            query.found[module.host] = service
    admin.register(module, provide)
