"""vcard-temp (XEP-0054): users set their own vCard; anyone may read it.

vCards are kept as serialised XML strings in the keyval store "vcard" (the server's own,
readable at the host JID, under the host key). Reading an account that has none gives an
empty <vCard/> (XEP-0054 §3.1 allows it; Prosody 13 does the same); reading an account
that does not exist gives ``service-unavailable`` (RFC 6121 §8.5.1). Setting anyone else's
vCard is ``forbidden``. A vCard larger than ``vcard_max_size`` bytes once serialised is
refused with ``not-acceptable``; setting an empty <vCard/> deletes the stored one.
Handlers of ``vcard-updated`` receive a :class:`VCardUpdated` (e.g. for XEP-0153 hashes).
"""

from __future__ import annotations

from typing import Any

from tercet.module import ClientSession, ModuleApi, Option, StanzaEvent
from tercet.protocol.errors import StanzaError, StreamError
from tercet.protocol.stanza import Element
from tercet.protocol.xmlstream import parse_fragment

NS_VCARD = "vcard-temp"
META = {"summary": "vcard-temp", "stage": "stable", "xeps": ["XEP-0054"]}
DEFAULT_MAX_SIZE = 64 * 1024
# The largest stanza a client may send bounds a vCard anyway (c2s_stanza_size_limit).
MAX_MAX_SIZE = 16 * 1024 * 1024

OPTIONS: list[Option[Any]] = [
    Option("vcard_max_size", int, DEFAULT_MAX_SIZE,
           "Largest vCard in bytes (serialised XML) a user may store (XEP-0054).",
           min=1024, max=MAX_MAX_SIZE),
]


class VCardUpdated:
    """Payload of ``vcard-updated``: whose vCard changed, and the new one (None: deleted)."""

    __slots__ = ("username", "vcard")

    def __init__(self, username: str, vcard: Element | None) -> None:
        self.username = username
        self.vcard = vcard


class _VCards:
    """vcard-temp get and set over the ``vcard`` store, with the size limit read at load."""

    def __init__(self, module: ModuleApi) -> None:
        self.module = module
        self.store = module.open_keyval("vcard")
        self.max_size: int = module.option("vcard_max_size")

    async def stored(self, user: str | None) -> Element | None:
        text = await self.store.get(user)
        if not isinstance(text, str):
            return None
        try:
            return parse_fragment(text, max_size=MAX_MAX_SIZE)
        except StreamError:
            self.module.log.error("the stored vCard of %s is not valid XML; ignoring it", user)
            return None

    async def on_get(self, event: StanzaEvent) -> bool | None:
        user: str | None
        if event.to_type == "host":
            user = None
        elif event.to_type == "self":
            user = _own_account(event)
            if user is None:
                return None
        else:
            user = event.to.node if event.to is not None else None
            if not await self.module.account_exists(user):
                return None  # the router answers service-unavailable
        reply = event.stanza.reply()
        reply.append(await self.stored(user) or Element("vCard", NS_VCARD))
        event.origin.send(reply)
        return True

    async def on_set(self, event: StanzaEvent) -> bool | None:
        stanza = event.stanza
        if event.to_type != "self":
            event.origin.send(stanza.error_reply(StanzaError("forbidden")))
            return True
        card = stanza.iq_payload()
        assert card is not None  # the event is named after the payload
        username = _own_account(event)
        if username is None:
            return None
        if not any(True for _ in card.elements()):
            await self.store.set(username, None)
            card = None
        else:
            text = card.to_xml(None)
            if len(text.encode()) > self.max_size:
                event.origin.send(stanza.error_reply(StanzaError(
                    "not-acceptable", f"vCard larger than {self.max_size} bytes")))
                return True
            await self.store.set(username, text)
        event.origin.send(stanza.reply())
        await self.module.fire_async("vcard-updated", VCardUpdated(username, card))
        return True




def load(module: ModuleApi) -> None:
    vcards = _VCards(module)
    module.add_feature(NS_VCARD)
    module.hook(f"iq-get/bare/{NS_VCARD}:vCard", vcards.on_get)
    module.hook(f"iq-get/host/{NS_VCARD}:vCard", vcards.on_get)
    module.hook(f"iq-set/bare/{NS_VCARD}:vCard", vcards.on_set)
    module.hook(f"iq-set/host/{NS_VCARD}:vCard", _forbidden)


def _forbidden(event: StanzaEvent) -> bool:
    """The server's own vCard is not editable over XMPP."""
    event.origin.send(event.stanza.error_reply(StanzaError("forbidden")))
    return True


def _own_account(event: StanzaEvent) -> str | None:
    """The account a "self" request is about: its sender's (a local client)."""
    origin = event.origin
    return origin.username if isinstance(origin, ClientSession) else None
