"""Personal Eventing Protocol (XEP-0163): a pubsub service at every account's bare JID.

Publishing to a node that does not exist creates it (§3), with publish-options as its
configuration; the default access model is ``presence``. Notifications reach the owner's
resources and contacts (subscription from/both) whose entity capabilities (XEP-0115)
announce ``<node>+notify``; an unknown caps hash is asked once with disco#info from the
account's JID and cached only when the answer matches the hash. The last item of each
wanted node goes to a resource when its interest becomes known (presence, §4.3.2).

Other modules use the ``pep`` service (``module.find("pep", PepService)``) and the
``pep-item-published`` / ``pep-item-retracted`` events; see docs/pep.md.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable
from typing import Any

from tercet.module import ClientSession, Element, ModuleApi, Option, StanzaEvent, UserDeleted
from tercet.modules._pubsub import admin
from tercet.modules._pubsub.admin import ServicesQuery
from tercet.modules._pubsub.caps import NS_INFO, CapsCache, presence_caps
from tercet.modules._pubsub.engine import Limits, Node, Service
from tercet.modules._pubsub.errors import PubsubError
from tercet.modules._pubsub.pep import PepNotifier, PepService
from tercet.modules._pubsub.wire import NS_OWNER, NS_PUBSUB, PubsubWire, Request
from tercet.modules._rosterlib import (
    RosterService,
    contact_subscription,
    sees_user,
    user_sees,
)

META = {"summary": "Personal Eventing Protocol", "stage": "beta",
        "xeps": ["XEP-0163", "XEP-0060", "XEP-0115", "XEP-0223", "XEP-0172"]}

OPTIONS: list[Option[Any]] = [
    Option("pep_max_items", int, 256,
           "Most items one PEP node keeps; 'max' in a node's max_items means this.",
           min=1, max=10_000, cite="XEP-0060 §16.4.3"),
    Option("pep_max_nodes", int, 256, "Most PEP nodes one account may have.",
           min=1, max=100_000, cite="XEP-0060 §8.1.3"),
    Option("pep_max_payload_size", int, 65536,
           "Largest item payload in PEP, in bytes (larger: payload-too-big).",
           min=256, max=16_777_216, cite="XEP-0060 §7.1.3.4"),
    Option("pep_caps_cache_size", int, 10_000,
           "Entity capabilities hashes remembered (XEP-0115 §5.4 verification cache).",
           min=10, max=1_000_000),
    Option("pep_tracked_resources", int, 100_000,
           "Resources whose caps hash is remembered (own users and contacts).",
           min=100, max=10_000_000),
]

FEATURES = ("access-presence", "auto-create", "auto-subscribe", "config-node",
            "create-and-configure", "create-nodes", "delete-items", "delete-nodes",
            "filtered-notifications", "item-ids", "last-published", "persistent-items",
            "presence-notifications", "publish", "publish-options", "purge-nodes",
            "retract-items", "retrieve-items", "subscribe", "access-whitelist",
            "multi-items")
DISCO_ID = "disco"
NS_ITEMS = "http://jabber.org/protocol/disco#items"


class _Pep:
    """The handlers of one host's PEP services."""

    def __init__(self, module: ModuleApi) -> None:
        self.module = module
        self.caps = CapsCache(module.option("pep_caps_cache_size"),
                              module.option("pep_tracked_resources"))
        limits = Limits(max_items=module.option("pep_max_items"),
                        max_nodes=module.option("pep_max_nodes"),
                        max_payload=module.option("pep_max_payload_size"))
        self.pep = PepService(module, module.open_store("pep", "keyval"), self.caps,
                              limits=limits)
        self.wire = PubsubWire(self)
        # (account, full JID) -> the caps hash that account's service last saw it with.
        self.observed: OrderedDict[tuple[str, str], str] = OrderedDict()

    # -- Frontend ---------------------------------------------------------------------------
    autocreate = True

    def may_create(self, request: Request) -> bool:
        return request.actor == request.service.jid

    async def after_subscribe(self, request: Request, node: Node, jid: str) -> None:
        item = node.last_item()
        if item is None or node.config.send_last_published_item == "never":
            return
        notifier = PepNotifier(self.pep, request.service.jid.split("@", 1)[0])
        request.after_reply.append(lambda: notifier.send_last(jid, frozenset((node.name,))))

    # -- iq ------------------------------------------------------------------------------
    async def on_iq(self, event: StanzaEvent) -> bool | None:
        username = await self.target(event)
        if username is None or event.from_ is None:
            return None
        service = await self.pep.service(username)
        request = Request(event.stanza, str(event.from_.bare), str(event.from_), service)
        reply = await self.wire.handle(request)
        if event.origin.kind == "c2s":
            event.origin.send(reply)
        else:  # a contact on another server: the reply is routed back
            await self.module.send(reply)
        await request.finish()
        return True

    async def target(self, event: StanzaEvent) -> str | None:
        if event.to_type == "self":
            origin = event.origin
            return origin.username if isinstance(origin, ClientSession) else None
        node = event.to.node if event.to is not None else None
        return node if await self.module.account_exists(node) else None

    # -- caps and presence (XEP-0115, XEP-0163 §4.3) ----------------------------------------
    def on_outbound(self, event: StanzaEvent) -> None:
        """A local client's broadcast presence: its own caps."""
        origin = event.origin
        if event.to is not None or not isinstance(origin, ClientSession) \
                or origin.username is None or not origin.full_jid:
            return None
        self.seen(origin.username, origin.full_jid, event.stanza)
        found = presence_caps(event.stanza) if event.stanza.get("type") is None else None
        if found is not None and self.caps.features.get(found[1]):
            self.module.spawn(self.to_local_contacts(origin.username, origin.full_jid,
                                                     found[1]))
        return None

    async def to_local_contacts(self, username: str, full_jid: str, ver: str) -> None:
        """The last items of this host's contacts whose presence ``username`` receives,
        for a resource whose interest is known: its contacts' services see it even when
        they are not subscribed back (XEP-0163 §4.3.2, "on coming online")."""
        wanted = self.caps.features.get(ver)
        roster = self.pep.roster()
        if not wanted or roster is None:
            return
        record = await roster.load(username)
        bare = f"{username}@{self.module.host}"
        for contact in record.contacts(user_sees):
            owner, _, domain = contact.partition("@")
            if domain != self.module.host or not owner:
                continue
            if not sees_user(await contact_subscription(self.module, owner, bare)):
                continue
            if self.observe(owner, full_jid, ver):
                await PepNotifier(self.pep, owner).send_last(full_jid, wanted)

    def on_inbound(self, event: StanzaEvent) -> Awaitable[None] | None:
        """Presence from a contact to a local account: the contact's caps (an observer:
        delivery goes on). Synchronous unless the account's roster must be read: this
        runs for every presence a local user receives (room occupants included)."""
        to, sender = event.to, event.from_
        if to is None or to.node is None or sender is None or sender.resource is None \
                or sender.same_bare(to):
            return None
        stanza = event.stanza
        ptype = stanza.get("type")
        if ptype == "unavailable":
            self.forget(to.node, str(sender))
        elif ptype is None and self.module.sessions(to.node):
            # (Offline accounts drop the presence; their probes bring it again at login.)
            if presence_caps(stanza) is None:
                # No caps, no interest to learn: forget any earlier ones without asking
                # the roster (most presences a user gets, room occupants' included).
                self.forget(to.node, str(sender))
                return None
            full_jid, username, contact = str(sender), to.node, str(sender.bare)
            roster = self.module.find("roster", RosterService)
            sub = None if roster is None else roster.cached_subscription(username, contact)
            if sub is None and roster is not None:
                return self._inbound_uncached(username, contact, full_jid, stanza)
            if sees_user(sub or "none"):
                self.seen(username, full_jid, stanza)
        return None

    def forget(self, username: str, full_jid: str) -> None:
        """``full_jid`` has no caps now (or is gone): ``username``'s view of it too."""
        if full_jid in self.caps.resources:
            self.caps.set_resource(full_jid, None)
        self.observed.pop((username, full_jid), None)

    async def _inbound_uncached(self, username: str, contact: str, full_jid: str,
                                stanza: Element) -> None:
        if sees_user(await contact_subscription(self.module, username, contact)):
            self.seen(username, full_jid, stanza)

    def seen(self, username: str, full_jid: str, stanza: Element) -> None:
        """Record ``full_jid``'s caps as ``username``'s service sees them; ask for an
        unknown hash, or send the last items it wants."""
        found = presence_caps(stanza) if stanza.get("type") is None else None
        if found is None:
            self.caps.set_resource(full_jid, None)
            self.observed.pop((username, full_jid), None)
            return
        node, ver = found
        self.caps.set_resource(full_jid, ver)
        if not self.observe(username, full_jid, ver):
            return  # a status change, not new capabilities: nothing to ask or resend
        wanted = self.caps.features.get(ver)
        if wanted is None:
            iq = Element("iq", attrs={"type": "get", "id": DISCO_ID, "to": full_jid,
                                      "from": f"{username}@{self.module.host}"})
            iq.tag("query", NS_INFO, {"node": f"{node}#{ver}"})
            self.module.send_detached(iq)
        elif wanted:
            self.module.spawn(PepNotifier(self.pep, username).send_last(full_jid, wanted))

    def observe(self, username: str, full_jid: str, ver: str) -> bool:
        """Remember that ``username``'s service saw ``full_jid`` with ``ver``; False when
        it had already (as Prosody's per-service recipients table, bounded)."""
        key = (username, full_jid)
        if self.observed.get(key) == ver:
            return False
        self.observed[key] = ver
        self.observed.move_to_end(key)
        while len(self.observed) > self.caps.max_resources:
            self.observed.popitem(last=False)
        return True

    def on_disco_result(self, event: StanzaEvent) -> bool | None:
        """A resource's answer to our caps query (§5.4 verification, then last items).

        Synchronous: iq results are dispatched as notifications nobody awaits."""
        query = event.stanza.find("query", NS_INFO)
        if query is None or event.from_ is None or event.from_.resource is None:
            return None
        node = query.get("node") or ""
        ver = node.rpartition("#")[2]
        if not ver or (ver not in self.caps.features and not self.caps.learn(ver, query)):
            return True
        username = event.to.node if event.to is not None else None
        if event.to_type == "self" and isinstance(event.origin, ClientSession):
            username = event.origin.username
        full = str(event.from_)
        if username and self.caps.resources.get(full) == ver and self.caps.features[ver]:
            self.module.spawn(PepNotifier(self.pep, username).send_last(
                full, self.caps.features[ver]))
            if event.from_.bare == event.to:  # one's own resource: contacts' items too
                self.module.spawn(self.to_local_contacts(username, full, ver))
        return True

    def unbind(self, session: ClientSession) -> None:
        """A resource is gone (with or without unavailable presence)."""
        if session.full_jid:
            self.caps.set_resource(session.full_jid, None)
            self.observed.pop((session.username or "", session.full_jid), None)

    # -- disco, accounts -------------------------------------------------------------------
    async def disco_info(self, event: Any) -> None:
        if event.node is None:
            event.reply.tag("identity", NS_INFO, {"category": "pubsub", "type": "pep"})

    async def disco_items(self, event: Any) -> None:
        if event.node is not None:
            return
        # existing(): a disco of an account without nodes leaves no service cached.
        service = await self.pep.existing(event.username)
        if service is None:
            return
        actor = str(event.stanza.get("from") or "").split("/", 1)[0] if not event.owner \
            else service.jid
        for node in list(service.nodes.values()):
            try:
                await service.may_access(node, actor)
            except PubsubError:  # not visible to this requester
                continue
            attrs = {"jid": service.jid, "node": node.name}
            if node.config.title:
                attrs["name"] = node.config.title
            event.reply.tag("item", NS_ITEMS, attrs)

    async def visible_node(self, event: Any) -> tuple[Service, Node] | None:
        """The node an account-disco node event names, if the requester may see it."""
        service = await self.pep.existing(event.username)
        node = service.nodes.get(event.node or "") if service is not None else None
        if service is None or node is None:
            return None
        actor = service.jid if event.owner else \
            str(event.stanza.get("from") or "").split("/", 1)[0]
        try:
            await service.may_access(node, actor)
        except PubsubError:
            return None
        return service, node

    async def disco_info_node(self, event: Any) -> None:
        """disco#info of a PEP node (XEP-0060 §5.3): a leaf node."""
        found = await self.visible_node(event)
        if found is not None:
            event.exists = True
            event.reply.tag("identity", NS_INFO, {"category": "pubsub", "type": "leaf"})
            event.add_feature(NS_PUBSUB)

    async def disco_items_node(self, event: Any) -> None:
        """disco#items of a PEP node (XEP-0060 §5.5): its item ids."""
        found = await self.visible_node(event)
        if found is not None:
            service, node = found
            event.exists = True
            for item_id in node.items:
                event.reply.tag("item", NS_ITEMS, {"jid": service.jid, "name": item_id})

    async def user_deleted(self, event: UserDeleted) -> None:
        self.pep.forget(event.username)
        await self.pep.store.set(event.username, None)


def load(module: ModuleApi) -> None:
    pep = _Pep(module)
    module.provides("pep", pep.pep)
    for ns in (NS_PUBSUB, NS_OWNER):
        module.hook(f"iq/bare/{ns}:pubsub", pep.on_iq)
    module.hook("pre-presence/bare", pep.on_outbound, 110)
    module.hook("presence/bare", pep.on_inbound, 10)
    module.hook("presence/full", pep.on_inbound, 10)
    module.hook(f"iq-result/self/{DISCO_ID}", pep.on_disco_result)
    module.hook(f"iq-result/bare/{DISCO_ID}", pep.on_disco_result)
    module.hook("account-disco-info", pep.disco_info)
    module.hook("account-disco-items", pep.disco_items)
    module.hook("user-deleted", pep.user_deleted)
    module.hook("resource-unbind", pep.unbind)
    module.hook("account-disco-info-node", pep.disco_info_node)
    module.hook("account-disco-items-node", pep.disco_items_node)
    module.provides("account-feature", "http://jabber.org/protocol/pubsub")

    def provide(query: ServicesQuery) -> None:
        # An account's service, only when asked for by name (there is one per account).
        user, _, domain = (query.service or "").partition("@")
        if user and domain == module.host and "/" not in domain:
            query.found[query.service or ""] = lambda: pep.pep.service(user)
    admin.register(module, provide)
    for feature in FEATURES:
        module.provides("account-feature", f"http://jabber.org/protocol/pubsub#{feature}")
