"""vCard4 over XMPP (XEP-0292): a user's vCard4 lives in PEP, node ``urn:xmpp:vcard4``,
item ``current``.

Clients publish and read it with plain PEP; this module adds the iq shortcut of §3 on an
account's bare JID, ``<vcard xmlns='urn:ietf:params:xml:ns:vcard-4.0'/>``:

* get: the item's payload, when the requester may read the node (its owner; anyone for
  ``open``; contacts with a presence subscription for ``presence``); ``item-not-found``
  when there is none or the requester may not see it (so its existence is not revealed),
  ``service-unavailable`` for an account that does not exist (RFC 6121 §8.5.1);
* set (one's own account only, else ``forbidden``): published as item ``current`` of a
  node created with ``open`` access, the vCard being public as vcard-temp is; a
  ``<vcard/>`` without children retracts it. A PEP refusal (payload-too-big, a node
  configured otherwise with preconditions) is the pubsub error.

The feature ``urn:ietf:params:xml:ns:vcard-4.0`` is advertised on accounts.
"""

from __future__ import annotations

from typing import Any

from tercet.module import ClientSession, ModuleApi, Option, StanzaError, StanzaEvent
from tercet.modules._pubsub import PepService, PubsubError
from tercet.modules._pubsub.errors import error_reply
from tercet.modules._rosterlib import contact_subscription, sees_user

NS_VCARD4 = "urn:ietf:params:xml:ns:vcard-4.0"
NODE = "urn:xmpp:vcard4"
ITEM = "current"

META = {"summary": "vCard4 in PEP", "stage": "beta", "xeps": ["XEP-0292"]}
OPTIONS: list[Option[Any]] = []

#: Applied only when the node is created: the profile is public, like vcard-temp.
NODE_OPTIONS: dict[str, str | list[str]] = {"access_model": "open", "persist_items": "true"}


class _VCard4:
    def __init__(self, module: ModuleApi) -> None:
        self.module = module

    @property
    def pep(self) -> PepService:
        return self.module.require("pep", PepService)

    async def on_get(self, event: StanzaEvent) -> bool | None:
        username = await self.target(event)
        if username is None:
            return None
        requester = str(event.from_.bare) if event.from_ is not None else ""
        payload = None
        if await self.may_read(username, requester):
            items = await self.pep.get_items(username, NODE, ids=[ITEM])
            payload = items[0][1] if items else None
        if payload is None:
            event.origin.send(event.stanza.error_reply(StanzaError("item-not-found")))
            return True
        reply = event.stanza.reply()
        reply.append(payload)
        event.origin.send(reply)
        return True

    async def may_read(self, username: str, requester: str) -> bool:
        """The node's access model for ``requester`` (XEP-0060 §4.5)."""
        if requester == f"{username}@{self.module.host}":
            return True
        config = await self.pep.node_config(username, NODE)
        model = config.get("access_model") if config is not None else None
        if model == "open":
            return True
        if model == "presence":
            return sees_user(await contact_subscription(self.module, username, requester))
        return False

    async def on_set(self, event: StanzaEvent) -> bool | None:
        origin = event.origin
        if event.to_type != "self" or not isinstance(origin, ClientSession) \
                or origin.username is None:
            origin.send(event.stanza.error_reply(StanzaError("forbidden")))
            return True
        card = event.stanza.iq_payload()
        assert card is not None  # the event is named after the payload
        username = origin.username
        try:
            if any(True for _ in card.elements()):
                exists = await self.pep.node_config(username, NODE) is not None
                await self.pep.publish(username, NODE, ITEM, card,
                                       None if exists else NODE_OPTIONS)
            elif await self.pep.get_items(username, NODE, ids=[ITEM]):
                await self.pep.retract(username, NODE, ITEM, notify=True)
        except PubsubError as err:
            origin.send(error_reply(event.stanza, err))
            return True
        origin.send(event.stanza.reply())
        return True

    async def target(self, event: StanzaEvent) -> str | None:
        if event.to_type == "self":
            origin = event.origin
            return origin.username if isinstance(origin, ClientSession) else None
        node = event.to.node if event.to is not None else None
        return node if await self.module.account_exists(node) else None


def load(module: ModuleApi) -> None:
    module.depends("pep")
    vcard4 = _VCard4(module)
    for kind in ("self", "bare"):
        module.hook(f"iq-get/{kind}/{NS_VCARD4}:vcard", vcard4.on_get)
        module.hook(f"iq-set/{kind}/{NS_VCARD4}:vcard", vcard4.on_set)
    module.provides("account-feature", NS_VCARD4)
