"""vcard-temp (XEP-0054): users set their own vCard; anyone may read it.

vCards are kept as serialised XML strings in the keyval store "vcard" (the server's own,
readable at the host JID, under the host key). Reading an account that has none gives an
empty <vCard/> (XEP-0054 §3.1 allows it; Prosody 13 does the same); reading an account
that does not exist gives ``service-unavailable`` (RFC 6121 §8.5.1). Setting anyone else's
vCard is ``forbidden``. A vCard larger than ``vcard_max_size`` bytes once serialised is
refused with ``not-acceptable``; setting an empty <vCard/> deletes the stored one.
Handlers of ``vcard-updated`` receive a :class:`VCardUpdated` (e.g. for XEP-0153 hashes).

With ``pep`` loaded, avatars are converted both ways (XEP-0398, tercet.modules._avatars):
a PHOTO set here is published as an XEP-0084 avatar before the vCard is stored (a PHOTO
that is not base64 is ``bad-request``; a PEP refusal such as payload-too-big is answered
and nothing is stored), an avatar published in PEP becomes the PHOTO, and each available
presence of a local client carries the XEP-0153 hash. Accounts advertise
``urn:xmpp:pep-vcard-conversion:0``.
"""

from __future__ import annotations

from typing import Any

from tercet.module import ClientSession, ModuleApi, Option, StanzaEvent
from tercet.modules._avatars import Avatars
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
        self.avatars = Avatars(module, self)

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
        new: Element | None = card if any(True for _ in card.elements()) else None
        if new is not None and len(new.to_xml(None).encode()) > self.max_size:
            event.origin.send(stanza.error_reply(StanzaError(
                "not-acceptable", f"vCard larger than {self.max_size} bytes")))
            return True
        # One writer at a time per account: a PEP avatar may be copied in concurrently.
        async with self.module.lock(username):
            refusal = await self.avatars.from_vcard(username, new)
            if refusal is not None:
                event.origin.send(stanza.error_reply(refusal))
                return True
            await self.store.set(username, None if new is None else new.to_xml(None))
        event.origin.send(stanza.reply())
        await self.module.fire_async("vcard-updated", VCardUpdated(username, new))
        return True

    async def save(self, user: str, card: Element | None) -> None:
        """Store ``user``'s vCard as another source (a PEP avatar) changed it."""
        await self.store.set(user, None if card is None else card.to_xml(None))
        await self.module.fire_async("vcard-updated", VCardUpdated(user, card))


def load(module: ModuleApi) -> None:
    vcards = _VCards(module)
    module.add_feature(NS_VCARD)
    module.hook(f"iq-get/bare/{NS_VCARD}:vCard", vcards.on_get)
    module.hook(f"iq-get/host/{NS_VCARD}:vCard", vcards.on_get)
    module.hook(f"iq-set/bare/{NS_VCARD}:vCard", vcards.on_set)
    module.hook(f"iq-set/host/{NS_VCARD}:vCard", _forbidden)
    avatars = vcards.avatars
    module.hook("pep-item-published", avatars.on_published)
    module.hook("pep-item-retracted", avatars.on_retracted)
    module.hook("account-disco-info", avatars.disco_info)
    module.hook("resource-bind", avatars.on_bind)
    # Before the presence module broadcasts or routes it (priorities 100 and 90).
    for kind in ("bare", "full", "host"):
        module.hook(f"pre-presence/{kind}", avatars.on_presence, 120)


def _forbidden(event: StanzaEvent) -> bool:
    """The server's own vCard is not editable over XMPP."""
    event.origin.send(event.stanza.error_reply(StanzaError("forbidden")))
    return True


def _own_account(event: StanzaEvent) -> str | None:
    """The account a "self" request is about: its sender's (a local client)."""
    origin = event.origin
    return origin.username if isinstance(origin, ClientSession) else None
