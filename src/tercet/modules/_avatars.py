"""Avatars in both places (XEP-0398): vcard-temp PHOTO (XEP-0153) and PEP (XEP-0084).

Used by the ``vcard`` module when ``pep`` is loaded:

* a vCard set with a PHOTO (BINVAL) publishes the image to ``urn:xmpp:avatar:data`` and
  its metadata (sha1 id, bytes, type, width/height for PNG, GIF and JPEG) to
  ``urn:xmpp:avatar:metadata``, both with item id = the sha1 (XEP-0084 §4.1, §4.2); a
  vCard without PHOTO while an avatar is published disables it (empty metadata, §4.5);
* a metadata publish whose image is in the data node (the PNG one first) becomes the
  vCard's PHOTO; empty metadata, or the last metadata item retracted, removes the PHOTO;
* a vCard with a PHOTO stored before the conversion existed is published when its owner's
  resource binds and the account has no avatar metadata node yet (an upgrade, once);
* every available presence of a local client carries the server's
  ``<x xmlns='vcard-temp:x:update'><photo>sha1</photo></x>`` (XEP-0153 §3.2, XEP-0398
  §4), replacing the client's: ``<photo/>`` empty when the account has no avatar.

Nothing is converted twice: each direction compares sha1s first, and the context flag
:data:`_CONVERTING` keeps the events of this module's own publishes from coming back.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

from tercet.module import ClientSession, Element, ModuleApi, Sealed, StanzaError, StanzaEvent
from tercet.modules._pubsub import PepItemEvent, PepService, PubsubError
from tercet.modules._pubsub.errors import to_stanza_error

NS_VCARD = "vcard-temp"
NS_DATA = "urn:xmpp:avatar:data"
NS_META = "urn:xmpp:avatar:metadata"
NS_UPDATE = "vcard-temp:x:update"

#: The update element of an account without an avatar, one for every presence that
#: carries it: each online session keeps a copy of its last presence, and two elements
#: with their attribute dicts and child lists are ~0.4 kB of an idle session. Sealed, so
#: that copies share it; this module replaces the element rather than editing it.
_NO_PHOTO = Sealed("x", NS_UPDATE, None, [Sealed("photo", NS_UPDATE)])
NS_CONVERSION = "urn:xmpp:pep-vcard-conversion:0"
#: XEP-0084 §4.5: the item that says "no avatar".
DISABLED_ID = "current"
#: Applied only when a node is created: the avatar is public, as the vCard is.
NODE_OPTIONS: dict[str, str | list[str]] = {"access_model": "open", "persist_items": "true"}
_CONVERTING: ContextVar[bool] = ContextVar("avatar_converting", default=False)


@dataclass(frozen=True, slots=True)
class Photo:
    """An image and its XEP-0084 description."""

    data: bytes
    type: str

    @property
    def sha1(self) -> str:
        return hashlib.sha1(self.data).hexdigest()  # noqa: S324 - XEP-0084 §4.2 names SHA-1

    @property
    def b64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")

    def data_payload(self) -> Element:
        return Element("data", NS_DATA, children=[self.b64])

    def metadata(self) -> Element:
        attrs = {"id": self.sha1, "bytes": str(len(self.data)), "type": self.type}
        size = image_size(self.data)
        if size is not None:
            attrs["width"], attrs["height"] = str(size[0]), str(size[1])
        meta = Element("metadata", NS_META)
        meta.tag("info", attrs=attrs)
        return meta


def decode(text: str) -> bytes:
    """Base64 as vCards carry it (line-wrapped); raises ValueError."""
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except binascii.Error as err:
        raise ValueError("invalid base64") from err


def sniff(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    return None


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG, GIF or JPEG, from its header; None otherwise."""
    kind = sniff(data)
    if kind == "image/png" and len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if kind == "image/gif" and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return int(width), int(height)
    if kind == "image/jpeg":
        return _jpeg_size(data)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Walk the JPEG segments to the first start-of-frame (SOF0..SOF15 but DHT, JPG, DAC)."""
    at = 2
    while at + 9 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[at + 5:at + 9])
            return int(width), int(height)
        (length,) = struct.unpack(">H", data[at + 2:at + 4])
        at += 2 + int(length)
    return None


def vcard_photo(card: Element | None) -> Photo | None:
    """The PHOTO of a vcard-temp with inline data (BINVAL); raises ValueError when the
    data is not base64. An EXTVAL photo (a URL) has no data to publish: None."""
    photo = card.find("PHOTO", NS_VCARD) if card is not None else None
    binval = photo.child_text("BINVAL", NS_VCARD) if photo is not None else None
    if photo is None or not binval or not binval.strip():
        return None
    data = decode(binval)
    kind = (photo.child_text("TYPE", NS_VCARD) or "").strip() or sniff(data) or "image/png"
    return Photo(data, kind)


def with_photo(card: Element | None, photo: Photo | None) -> Element:
    """A copy of ``card`` (or a new vCard) whose PHOTO is ``photo`` (None: no PHOTO)."""
    out = card.copy() if card is not None else Element("vCard", NS_VCARD)
    out.remove_children("PHOTO", NS_VCARD)
    if photo is not None:
        el = out.tag("PHOTO", NS_VCARD)
        el.text_tag("TYPE", photo.type, NS_VCARD)
        el.text_tag("BINVAL", photo.b64, NS_VCARD)
    return out


def photo_hash(card: Element | None) -> str | None:
    try:
        photo = vcard_photo(card)
    except ValueError:
        return None
    return None if photo is None else photo.sha1


@contextmanager
def converting() -> Iterator[None]:
    token = _CONVERTING.set(True)
    try:
        yield
    finally:
        _CONVERTING.reset(token)


class VCardStore(Protocol):
    """What the vcard module offers: its stored vCards."""

    max_size: int

    async def stored(self, user: str | None) -> Element | None: ...
    async def save(self, user: str, card: Element | None) -> None: ...


class Avatars:
    """The conversions of one host."""

    def __init__(self, module: ModuleApi, vcards: VCardStore) -> None:
        self.module = module
        self.vcards = vcards

    @property
    def pep(self) -> PepService | None:
        return self.module.find("pep", PepService)

    async def published_id(self, username: str) -> str | None:
        """The sha1 of the account's PEP avatar (the PNG one of the last metadata item,
        else its first image), None when there is none."""
        pep = self.pep
        items = await pep.get_items(username, NS_META, max_items=1) if pep else []
        infos = sorted(items[-1][1].find_all("info", NS_META) if items else (),
                       key=lambda i: i.get("type") != "image/png")
        return (infos[0].get("id") or items[-1][0]) if infos else None

    # -- vCard -> PEP ---------------------------------------------------------------------
    async def from_vcard(self, username: str, card: Element | None) -> StanzaError | None:
        """Publish the PHOTO of a vCard being set; the error to answer with, if any."""
        pep = self.pep
        if pep is None:
            return None
        try:
            photo = vcard_photo(card)
        except ValueError:
            return StanzaError("bad-request", "PHOTO/BINVAL is not base64")
        current = await self.published_id(username)
        try:
            with converting():
                if photo is None:
                    if current is not None:
                        await pep.publish(username, NS_META, DISABLED_ID,
                                          Element("metadata", NS_META))
                elif current != photo.sha1:
                    await self._publish(pep, username, NS_DATA, photo.sha1,
                                        photo.data_payload())
                    await self._publish(pep, username, NS_META, photo.sha1,
                                        photo.metadata())
        except PubsubError as err:
            return to_stanza_error(err)
        return None

    async def _publish(self, pep: PepService, username: str, node: str, item_id: str,
                       payload: Element) -> None:
        exists = await pep.node_config(username, node) is not None
        await pep.publish(username, node, item_id, payload, None if exists else NODE_OPTIONS)

    async def on_bind(self, session: ClientSession) -> None:
        """Publish a PHOTO stored before conversion existed (once: the metadata node
        then exists)."""
        pep, username = self.pep, session.username
        if pep is None or username is None:
            return
        # The vCard first: most accounts have none, and then one storage read per login
        # is all this costs.
        card = await self.vcards.stored(username)
        if card is None or card.find("PHOTO", NS_VCARD) is None:
            return
        # node_config, not pep.service(): it leaves no service cached for an account
        # without PEP nodes (memory per idle session).
        if await pep.node_config(username, NS_META) is not None:
            return
        refusal = await self.from_vcard(username, card)
        if refusal is not None:
            self.module.log.info("the vCard PHOTO of %s was not published: %s", username,
                                 refusal.condition)

    # -- PEP -> vCard ---------------------------------------------------------------------
    async def on_published(self, event: PepItemEvent) -> None:
        if _CONVERTING.get() or event.node != NS_META or event.payload is None:
            return
        infos = list(event.payload.find_all("info", NS_META))
        if not infos:
            await self.set_photo(event.username, None)
            return
        photo = await self.find_image(event.username, infos)
        if photo is not None:
            await self.set_photo(event.username, photo)

    async def on_retracted(self, event: PepItemEvent) -> None:
        if _CONVERTING.get() or event.node != NS_META:
            return
        if await self.published_id(event.username) is None:
            await self.set_photo(event.username, None)

    async def find_image(self, username: str, infos: list[Element]) -> Photo | None:
        """The image a metadata item describes that the data node holds (XEP-0084 §4.2:
        the PNG one is always there), checked against its sha1."""
        pep = self.pep
        if pep is None:
            return None
        for info in sorted(infos, key=lambda i: i.get("type") != "image/png"):
            item_id = info.get("id") or ""
            items = await pep.get_items(username, NS_DATA, ids=[item_id]) if item_id else []
            if not items:
                continue
            try:
                data = decode(items[0][1].text)
            except ValueError:
                continue
            photo = Photo(data, info.get("type") or sniff(data) or "image/png")
            if photo.sha1 == item_id:
                return photo
        return None

    async def set_photo(self, username: str, photo: Photo | None) -> None:
        """Make the stored vCard's PHOTO ``photo`` (nothing when it already is)."""
        async with self.module.lock(username):  # the vcard module's per-account writer lock
            stored = await self.vcards.stored(username)
            if photo_hash(stored) == (photo.sha1 if photo else None):
                return
            card = with_photo(stored, photo)
            if len(card.to_xml(None).encode()) > self.vcards.max_size:
                self.module.log.info("avatar of %s not copied to the vCard: larger than "
                                     "vcard_max_size", username)
                return
            await self.vcards.save(username, card)

    # -- XEP-0153 presence -------------------------------------------------------------
    async def on_presence(self, event: StanzaEvent) -> None:
        """Put the account's avatar hash in its client's available presence."""
        origin, stanza = event.origin, event.stanza
        if not isinstance(origin, ClientSession) or origin.username is None \
                or stanza.get("type") is not None:
            return None
        if self.pep is not None:
            digest = await self.published_id(origin.username)
        else:
            digest = photo_hash(await self.vcards.stored(origin.username))
        stanza.remove_children("x", NS_UPDATE)
        if digest:
            stanza.tag("x", NS_UPDATE).text_tag("photo", digest, NS_UPDATE)
        else:
            stanza.children.append(_NO_PHOTO)
        return None

    async def disco_info(self, event: Any) -> None:
        """Account disco#info (an AccountDiscoEvent): the conversion is offered."""
        if event.node is None and self.pep is not None:
            event.add_feature(NS_CONVERSION)
