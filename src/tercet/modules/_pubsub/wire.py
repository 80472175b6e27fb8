"""XEP-0060 requests as stanzas: parse an iq's <pubsub/> payload, call the engine, build
the reply. Shared by the ``pubsub`` component and ``pep``; what differs between them
(which service, who may create, auto-create on publish) is a :class:`Frontend`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from tercet.modules._pubsub.config import (
    FORM_NODE_CONFIG,
    FORM_PUBLISH_OPTIONS,
    NS_DATA,
    config_form,
    read_form,
)
from tercet.modules._pubsub.engine import Item, Node, Service
from tercet.modules._pubsub.errors import PubsubError, error_reply
from tercet.protocol.dataforms import Field, FormError, build_form, parse_submit
from tercet.protocol.jid import JID, InvalidJID
from tercet.protocol.stanza import Element

NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_OWNER = "http://jabber.org/protocol/pubsub#owner"
FEATURE = "http://jabber.org/protocol/pubsub#"


@dataclass(slots=True)
class Request:
    """One pubsub iq: the stanza, the acting bare JID and the full JID it came from.

    ``after_reply`` collects work that must follow the reply (§6.1.7: the last item
    comes after the subscription result)."""

    stanza: Element
    actor: str
    sender: str
    service: Service
    after_reply: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def finish(self) -> None:
        """Run what waited for the reply to be sent."""
        for step in self.after_reply:
            await step()


class Frontend(Protocol):
    """What the component and PEP decide differently."""

    autocreate: bool

    def may_create(self, request: Request) -> bool: ...
    async def after_subscribe(self, request: Request, node: Node, jid: str) -> None: ...


Handler = Callable[[Request, Element, Element], Awaitable[Element | None]]


class PubsubWire:
    """Turns one pubsub iq into engine calls; :meth:`handle` returns the reply stanza."""

    def __init__(self, frontend: Frontend) -> None:
        self.frontend = frontend
        self.user_ops: dict[tuple[str, str], Handler] = {
            ("set", "create"): self.create, ("set", "publish"): self.publish,
            ("set", "retract"): self.retract, ("set", "subscribe"): self.subscribe,
            ("set", "unsubscribe"): self.unsubscribe, ("get", "items"): self.items,
            ("get", "options"): self.get_options, ("set", "options"): self.set_options,
            ("get", "subscriptions"): self.my_subscriptions,
            ("get", "affiliations"): self.my_affiliations,
            ("get", "default"): self.default_sub_options,
        }
        self.owner_ops: dict[tuple[str, str], Handler] = {
            ("get", "configure"): self.get_configure, ("set", "configure"): self.configure,
            ("get", "default"): self.default_config, ("set", "delete"): self.delete,
            ("set", "purge"): self.purge, ("get", "affiliations"): self.get_affiliations,
            ("set", "affiliations"): self.set_affiliations,
            ("get", "subscriptions"): self.get_subscriptions,
            ("set", "subscriptions"): self.set_subscriptions,
        }

    async def handle(self, request: Request) -> Element:
        stanza = request.stanza
        payload = stanza.iq_payload()
        assert payload is not None  # the event is named after it
        ops = self.owner_ops if payload.xmlns == NS_OWNER else self.user_ops
        verb = _first_verb(payload)
        try:
            if verb is None:
                raise PubsubError("bad-request")
            handler = ops.get((stanza.get("type") or "", verb.name))
            if handler is None:
                raise PubsubError("unsupported", feature=_feature_of(verb.name))
            reply = stanza.reply()
            body = await handler(request, payload, verb)
            if body is not None:
                reply.append(body)
            return reply
        except PubsubError as error:
            return error_reply(stanza, error)

    # -- §8.1 create -------------------------------------------------------------------
    async def create(self, req: Request, payload: Element, verb: Element) -> Element | None:
        if not self.frontend.may_create(req):
            raise PubsubError("forbidden")
        values = None
        configure = payload.find("configure", NS_PUBSUB)
        form = configure.find("x", NS_DATA) if configure is not None else None
        if form is not None:
            values = read_form(form, FORM_NODE_CONFIG)
        name = await req.service.create(verb.get("node") or None, req.actor, values)
        body = Element("pubsub", NS_PUBSUB)
        body.tag("create", attrs={"node": name})
        return body

    # -- §7.1 publish, §7.2 retract ------------------------------------------------------------
    async def publish(self, req: Request, payload: Element, verb: Element) -> Element | None:
        node = verb.get("node")
        if not node:
            raise PubsubError("nodeid-required")
        items = list(verb.find_all("item", NS_PUBSUB))
        if len(items) > 1:
            raise PubsubError("too-many-items", "Only one item per publish")
        item = items[0] if items else None
        content = list(item.elements()) if item is not None else []
        if item is None or not content:
            raise PubsubError("item-required")  # §7.1.3.6: payloads are required here
        if len(content) > 1:
            raise PubsubError("invalid-payload")  # §7.1.3.5: one payload element
        options = _publish_options(payload)
        item_id = await req.service.publish(
            node, req.actor, item.get("id") or None, content[0].copy(), options,
            autocreate=self.frontend.autocreate and self.frontend.may_create(req))
        body = Element("pubsub", NS_PUBSUB)
        body.tag("publish", attrs={"node": node}).tag("item", attrs={"id": item_id})
        return body

    async def retract(self, req: Request, payload: Element, verb: Element) -> Element | None:
        node = verb.get("node")
        if not node:
            raise PubsubError("nodeid-required")
        item = verb.find("item", NS_PUBSUB)
        if item is None or not item.get("id"):
            raise PubsubError("item-required")
        notify = (verb.get("notify") or "").lower() in ("1", "true")
        await req.service.retract(node, req.actor, item.get("id") or "", notify)
        return None

    # -- §6.1 subscribe, §6.2 unsubscribe --------------------------------------------------------
    async def subscribe(self, req: Request, payload: Element, verb: Element) -> Element | None:
        name, jid = verb.get("node"), _jid(verb.get("jid"))
        if not name:
            raise PubsubError("nodeid-required")
        if payload.find("options", NS_PUBSUB) is not None:
            _check_options_form(payload.find("options", NS_PUBSUB))
        state, _subid = await req.service.subscribe(name, req.actor, jid)
        node = req.service.node(name)
        await self.frontend.after_subscribe(req, node, jid)
        return _subscription(name, jid, state)

    async def unsubscribe(self, req: Request, payload: Element,
                          verb: Element) -> Element | None:
        name, jid = verb.get("node"), _jid(verb.get("jid"))
        if not name:
            raise PubsubError("nodeid-required")
        await req.service.unsubscribe(name, req.actor, jid, verb.get("subid"))
        return _subscription(name, jid, "none")

    # -- §6.3 subscription options ---------------------------------------------------------
    async def get_options(self, req: Request, payload: Element,
                          verb: Element) -> Element | None:
        name, jid = self._options_target(req, verb)
        body = Element("pubsub", NS_PUBSUB)
        options = body.tag("options", attrs={"node": name, "jid": jid})
        options.append(_subscribe_options_form())
        return body

    async def set_options(self, req: Request, payload: Element,
                          verb: Element) -> Element | None:
        self._options_target(req, verb)
        _check_options_form(verb)
        return None

    @staticmethod
    def _options_target(req: Request, verb: Element) -> tuple[str, str]:
        """The node and subscriber of an options request (§6.3): the subscriber itself or
        a node owner may ask, and the subscription must exist (its errors otherwise)."""
        name, jid = verb.get("node"), verb.get("jid")
        if not name:
            raise PubsubError("nodeid-required")
        node = req.service.node(name)
        if not jid or (jid.split("/")[0] != req.actor
                       and req.service.affiliation(node, req.actor) != "owner"):
            raise PubsubError("forbidden")
        req.service.subscription(node, jid, verb.get("subid"))
        return name, jid

    async def default_sub_options(self, req: Request, payload: Element,
                                  verb: Element) -> Element | None:
        body = Element("pubsub", NS_PUBSUB)
        default = body.tag("default")
        if verb.get("node"):
            default.attrs["node"] = verb.get("node") or ""
        default.append(_subscribe_options_form())
        return body

    # -- §6.5 items, §5.6, §5.7 --------------------------------------------------------------
    async def items(self, req: Request, payload: Element, verb: Element) -> Element | None:
        name = verb.get("node")
        if not name:
            raise PubsubError("nodeid-required")
        ids = [i.get("id") or "" for i in verb.find_all("item", NS_PUBSUB) if i.get("id")]
        max_items = None
        if verb.get("max_items"):
            try:
                max_items = int(verb.get("max_items") or "")
            except ValueError:
                raise PubsubError("bad-request") from None
        node, found = await req.service.items(name, req.actor, max_items=max_items,
                                              ids=ids or None)
        body = Element("pubsub", NS_PUBSUB)
        holder = body.tag("items", attrs={"node": name})
        for item in found:
            holder.append(req.service.item_element(node, item, NS_PUBSUB))
        return body

    async def my_subscriptions(self, req: Request, payload: Element,
                               verb: Element) -> Element | None:
        body = Element("pubsub", NS_PUBSUB)
        holder = body.tag("subscriptions")
        for node in _nodes(req.service, verb.get("node")):
            for jid, subid in node.subscriptions.items():
                if jid.split("/")[0] == req.actor:
                    holder.tag("subscription", attrs={"node": node.name, "jid": jid,
                                                      "subscription": "subscribed",
                                                      "subid": subid})
        return body

    async def my_affiliations(self, req: Request, payload: Element,
                              verb: Element) -> Element | None:
        body = Element("pubsub", NS_PUBSUB)
        holder = body.tag("affiliations")
        for node in _nodes(req.service, verb.get("node")):
            aff = node.affiliations.get(req.actor)
            if aff:
                holder.tag("affiliation", attrs={"node": node.name, "affiliation": aff})
        return body

    # -- §8.2 configure, §8.3 default ------------------------------------------------------------
    async def get_configure(self, req: Request, payload: Element,
                            verb: Element) -> Element | None:
        node = req.service.node(verb.get("node"))
        req.service.require_owner(node, req.actor)
        body = Element("pubsub", NS_OWNER)
        body.tag("configure", attrs={"node": node.name}).append(
            config_form(node.config, req.service.limits.max_items))
        return body

    async def configure(self, req: Request, payload: Element, verb: Element) -> Element | None:
        name = verb.get("node")
        node = req.service.node(name)
        req.service.require_owner(node, req.actor)
        form = verb.find("x", NS_DATA)
        if form is None:
            raise PubsubError("bad-request")
        await req.service.configure(node.name, req.actor, read_form(form, FORM_NODE_CONFIG))
        return None

    async def default_config(self, req: Request, payload: Element,
                             verb: Element) -> Element | None:
        body = Element("pubsub", NS_OWNER)
        body.tag("default").append(config_form(req.service.default(),
                                               req.service.limits.max_items))
        return body

    # -- §8.4 delete, §8.5 purge -----------------------------------------------------------------
    async def delete(self, req: Request, payload: Element, verb: Element) -> Element | None:
        redirect = verb.find("redirect", NS_OWNER)
        await req.service.delete(verb.get("node") or "", req.actor,
                                 redirect.get("uri") if redirect is not None else None)
        return None

    async def purge(self, req: Request, payload: Element, verb: Element) -> Element | None:
        await req.service.purge(verb.get("node") or "", req.actor)
        return None

    # -- §8.8 subscriptions, §8.9 affiliations (owner) --------------------------------------------
    async def get_affiliations(self, req: Request, payload: Element,
                               verb: Element) -> Element | None:
        node = req.service.node(verb.get("node"))
        req.service.require_owner(node, req.actor)
        body = Element("pubsub", NS_OWNER)
        holder = body.tag("affiliations", attrs={"node": node.name})
        for jid, aff in node.affiliations.items():
            holder.tag("affiliation", attrs={"jid": jid, "affiliation": aff})
        return body

    async def set_affiliations(self, req: Request, payload: Element,
                               verb: Element) -> Element | None:
        changes = {}
        for el in verb.find_all("affiliation", NS_OWNER):
            jid, aff = el.get("jid"), el.get("affiliation")
            if not jid or not aff:
                raise PubsubError("bad-request")
            changes[jid.split("/")[0]] = aff
        await req.service.set_affiliations(verb.get("node") or "", req.actor, changes)
        return None

    async def get_subscriptions(self, req: Request, payload: Element,
                                verb: Element) -> Element | None:
        node = req.service.node(verb.get("node"))
        req.service.require_owner(node, req.actor)
        body = Element("pubsub", NS_OWNER)
        holder = body.tag("subscriptions", attrs={"node": node.name})
        for jid, subid in node.subscriptions.items():
            holder.tag("subscription", attrs={"jid": jid, "subscription": "subscribed",
                                              "subid": subid})
        return body

    async def set_subscriptions(self, req: Request, payload: Element,
                                verb: Element) -> Element | None:
        changes = {}
        for el in verb.find_all("subscription", NS_OWNER):
            jid, state = el.get("jid"), el.get("subscription")
            if not jid or not state:
                raise PubsubError("bad-request")
            changes[jid] = state
        await req.service.set_subscriptions(verb.get("node") or "", req.actor, changes)
        return None


# -- helpers --------------------------------------------------------------------------------

_SUPPORTED_FEATURE = {
    "create": "create-nodes", "publish": "publish", "retract": "delete-items",
    "subscribe": "subscribe", "unsubscribe": "subscribe", "items": "retrieve-items",
    "options": "subscription-options", "subscriptions": "retrieve-subscriptions",
    "affiliations": "retrieve-affiliations", "configure": "config-node",
    "default": "retrieve-default", "delete": "delete-nodes", "purge": "purge-nodes",
}


def _jid(text: str | None) -> str:
    """A subscriber JID in its canonical form (§6.1.3.1: a bad one is invalid-jid)."""
    try:
        return str(JID.parse(text or ""))
    except InvalidJID:
        raise PubsubError("invalid-jid") from None


def _feature_of(verb: str) -> str:
    return FEATURE + _SUPPORTED_FEATURE.get(verb, verb)


def _first_verb(payload: Element) -> Element | None:
    """The action element: the first child other than the auxiliary ones (§7.1.5, §6.3.7)."""
    for child in payload.elements():
        if child.name in ("publish-options", "configure") and payload.xmlns == NS_PUBSUB \
                and any(c.name in ("publish", "create") for c in payload.elements()):
            continue
        if child.name == "options" and any(c.name == "subscribe" for c in payload.elements()):
            continue
        return child
    return None


def _publish_options(payload: Element) -> dict[str, list[str]] | None:
    holder = payload.find("publish-options", NS_PUBSUB)
    form = holder.find("x", NS_DATA) if holder is not None else None
    if form is None:
        return None
    try:
        return read_form(form, FORM_PUBLISH_OPTIONS)
    except PubsubError:
        raise PubsubError("bad-request", "Invalid publish-options") from None


def _subscription(node: str, jid: str, state: str) -> Element:
    body = Element("pubsub", NS_PUBSUB)
    body.tag("subscription", attrs={"node": node, "jid": jid, "subscription": state})
    return body


SUBSCRIBE_OPTIONS = "http://jabber.org/protocol/pubsub#subscribe_options"


def _subscribe_options_form() -> Element:
    """§6.3: the subscription options this service offers (delivery on or off)."""
    return build_form([Field.boolean("pubsub#deliver", True, "Enable delivery?")],
                      form_type=SUBSCRIBE_OPTIONS)


def _check_options_form(holder: Element | None) -> None:
    """§6.3.5: a submitted options form must be of the subscribe_options type."""
    form = holder.find("x", NS_DATA) if holder is not None else None
    if form is None:
        return
    try:
        submitted = parse_submit(form)
    except FormError:
        raise PubsubError("invalid-options") from None
    if submitted.form_type not in (None, SUBSCRIBE_OPTIONS) or any(
            v not in ("pubsub#deliver",) for v in submitted.values):
        raise PubsubError("invalid-options")


def _nodes(service: Service, name: str | None) -> list[Node]:
    if name:
        return [service.node(name)]
    return list(service.nodes.values())


__all__ = ["NS_OWNER", "NS_PUBSUB", "Item", "PubsubWire", "Request"]
