"""Bookmarks (XEP-0402) with XEP-0411 conversion: every client sees the same bookmarks.

The source of truth is the account's PEP node ``urn:xmpp:bookmarks:1``: one item per
room, the item id being the room's bare JID and the payload a ``<conference/>`` (XEP-0402
§3). Two older views are kept in step with it (XEP-0411 §3):

* private XML storage (XEP-0049, ``<storage xmlns='storage:bookmarks'/>``, the ``private``
  module): a get is answered from the node; a set becomes publishes (new or changed rooms)
  and retractions (rooms no longer listed), and the private store keeps no copy;
* the legacy PEP node ``storage:bookmarks`` (XEP-0048 over PEP, XEP-0223): rewritten,
  item ``current``, after each change of the node; a client's publish there is converted
  like a private XML set.

Conversion compares bookmarks, not XML, so it is idempotent: a change that conversion
itself causes finds nothing left to do, and the context flag :data:`_CONVERTING` keeps the
events of the publishes it makes from being converted again. A bookmark list kept by an
older Tercet in private storage (or the legacy node) moves to the node when its owner's
resource binds or first asks for it.

Errors on a private XML set: a ``<conference/>`` without a valid bare ``jid``
(required, XEP-0048 §3.2) is ``bad-request``; more rooms than the node may keep is
``policy-violation``; a PEP failure (e.g. payload-too-big) is the pubsub error.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any, Protocol

from tercet.module import (
    ClientSession,
    Element,
    InvalidJID,
    ModuleApi,
    Option,
    StanzaError,
    StreamError,
)
from tercet.modules._pubsub import PepItemEvent, PepService, PubsubError
from tercet.modules._pubsub.errors import to_stanza_error
from tercet.protocol.xmlstream import parse_fragment

NS_BOOKMARKS = "urn:xmpp:bookmarks:1"
NS_LEGACY = "storage:bookmarks"
#: The private XML key of the legacy list (``<ns>:<name>``, as the private module keys).
LEGACY_KEY = f"{NS_LEGACY}:storage"
LEGACY_ITEM = "current"

META = {"summary": "Bookmarks (PEP native, with conversion from older storage)",
        "stage": "beta", "xeps": ["XEP-0402", "XEP-0411", "XEP-0048"]}
OPTIONS: list[Option[Any]] = []

#: XEP-0402 §3: the node's publish-options (max_items "max": the PEP service's bound,
#: pep_max_items).
NODE_OPTIONS: dict[str, str | list[str]] = {
    "persist_items": "true", "access_model": "whitelist", "max_items": "max",
    "send_last_published_item": "never"}
#: XEP-0048 §3.2 over PEP with XEP-0223's private-storage options.
LEGACY_OPTIONS: dict[str, str | list[str]] = {
    "persist_items": "true", "access_model": "whitelist", "send_last_published_item": "never"}
#: Set while this module publishes or retracts, so its own changes are not converted back.
_CONVERTING: ContextVar[bool] = ContextVar("bookmarks_converting", default=False)


class Fragment(Protocol):
    """The private module's ``private-get``/``private-set`` payload."""

    @property
    def username(self) -> str: ...
    @property
    def element(self) -> Element: ...


class InvalidBookmark(ValueError):
    """A ``<conference/>`` that cannot be converted (no valid bare room JID)."""


@dataclass(frozen=True, slots=True)
class Bookmark:
    """One room, in the terms both formats share (XEP-0411 §4's mapping)."""

    jid: str
    name: str | None = None
    autojoin: bool = False
    nick: str | None = None
    password: str | None = None
    #: Serialised extension elements: 0402's <extensions/> children, or the unknown
    #: children of a legacy <conference/>.
    extensions: tuple[str, ...] = ()

    def native(self) -> Element:
        """XEP-0402 §3 payload."""
        attrs = {"autojoin": "true" if self.autojoin else "false"}
        if self.name is not None:
            attrs["name"] = self.name
        el = Element("conference", NS_BOOKMARKS, attrs)
        self._children(el)
        if self.extensions:
            holder = el.tag("extensions")
            for text in self.extensions:
                holder.append(parse_fragment(text))
        return el

    def legacy(self) -> Element:
        """XEP-0048 §3.2 <conference/>."""
        attrs = {"jid": self.jid, "autojoin": "true" if self.autojoin else "false"}
        if self.name is not None:
            attrs["name"] = self.name
        el = Element("conference", NS_LEGACY, attrs)
        self._children(el)
        for text in self.extensions:
            el.append(parse_fragment(text))
        return el

    def _children(self, el: Element) -> None:
        if self.nick is not None:
            el.text_tag("nick", self.nick)
        if self.password is not None:
            el.text_tag("password", self.password)


def _truthy(value: str | None) -> bool:
    return value in ("true", "1")  # xs:boolean


def from_native(item_id: str, payload: Element) -> Bookmark | None:
    """The bookmark of a 0402 item, None when the payload is not a conference."""
    if payload.name != "conference" or payload.xmlns != NS_BOOKMARKS:
        return None
    holder = payload.find("extensions")
    extensions = tuple(e.to_xml(None) for e in holder.elements()) if holder else ()
    return Bookmark(item_id, payload.get("name"), _truthy(payload.get("autojoin")),
                    payload.child_text("nick"), payload.child_text("password"), extensions)


def from_legacy(conference: Element) -> Bookmark:
    """The bookmark of a legacy <conference/>; raises InvalidBookmark without a jid."""
    jid = conference.get("jid")
    if not jid:
        raise InvalidBookmark("conference without jid")
    known = ("nick", "password")
    extensions = tuple(e.to_xml(None) for e in conference.elements()
                       if not (e.xmlns == NS_LEGACY and e.name in known))
    return Bookmark(jid, conference.get("name"), _truthy(conference.get("autojoin")),
                    conference.child_text("nick"), conference.child_text("password"),
                    extensions)


def legacy_storage(bookmarks: dict[str, Bookmark]) -> Element:
    storage = Element("storage", NS_LEGACY)
    for bookmark in bookmarks.values():
        storage.append(bookmark.legacy())
    return storage


@contextmanager
def converting() -> Iterator[None]:
    token = _CONVERTING.set(True)
    try:
        yield
    finally:
        _CONVERTING.reset(token)


class _Bookmarks:
    """The conversions of one host."""

    def __init__(self, module: ModuleApi) -> None:
        self.module = module
        self.private = module.open_map("private")

    @property
    def pep(self) -> PepService:
        return self.module.require("pep", PepService)

    # -- reading ------------------------------------------------------------------------
    async def native(self, username: str) -> dict[str, Bookmark]:
        """The account's 0402 bookmarks by room JID, oldest first."""
        out: dict[str, Bookmark] = {}
        for item_id, payload in await self.pep.get_items(username, NS_BOOKMARKS):
            found = from_native(item_id, payload)
            if found is not None:
                out[item_id] = found
        return out

    def parse_legacy(self, storage: Element, *, strict: bool) -> dict[str, Bookmark]:
        """A legacy <storage/>'s rooms; invalid ones raise (``strict``) or are skipped."""
        out: dict[str, Bookmark] = {}
        for conference in storage.find_all("conference", NS_LEGACY):
            try:
                bookmark = from_legacy(conference)
                jid = self.module.parse_jid(bookmark.jid)
                if jid.resource is not None or jid.node is None:
                    raise InvalidBookmark("not a room's bare JID")
            except (InvalidBookmark, InvalidJID):
                if strict:
                    raise InvalidBookmark("invalid conference jid") from None
                self.module.log.info("skipping an invalid legacy bookmark")
                continue
            out[str(jid)] = replace(bookmark, jid=str(jid))
        return out

    # -- writing ------------------------------------------------------------------------
    async def apply(self, username: str, wanted: dict[str, Bookmark]) -> None:
        """Make the 0402 node hold ``wanted`` (publish new or changed rooms, retract the
        rest), then the legacy node. Raises PubsubError."""
        with converting():
            async with self.module.lock(username):
                current = await self.native(username)
                exists = await self.pep.node_config(username, NS_BOOKMARKS) is not None
                for jid, bookmark in wanted.items():
                    if current.get(jid) == bookmark:
                        continue
                    await self.pep.publish(username, NS_BOOKMARKS, jid, bookmark.native(),
                                           None if exists else NODE_OPTIONS)
                    exists = True
                for jid in current.keys() - wanted.keys():
                    await self._retract(username, NS_BOOKMARKS, jid)
                await self._sync_legacy(username)

    async def sync_legacy(self, username: str) -> None:
        with converting():
            async with self.module.lock(username):
                await self._sync_legacy(username)

    async def _sync_legacy(self, username: str) -> None:
        """Rewrite the legacy PEP node from the 0402 node when they differ (never
        creating it for an account without bookmarks)."""
        bookmarks = await self.native(username)
        items = await self.pep.get_items(username, NS_LEGACY, max_items=1)
        if items:
            if self.parse_legacy(items[-1][1], strict=False) == bookmarks:
                return
        elif not bookmarks:
            return
        config = await self.pep.node_config(username, NS_LEGACY)
        await self.pep.publish(username, NS_LEGACY, LEGACY_ITEM, legacy_storage(bookmarks),
                               None if config is not None else LEGACY_OPTIONS)

    async def _retract(self, username: str, node: str, item_id: str) -> None:
        try:
            await self.pep.retract(username, node, item_id, notify=True)
        except PubsubError:
            pass  # already gone (a concurrent retraction)

    async def migrate(self, username: str) -> None:
        """Move a legacy list (private storage, else the legacy node) into an account
        that has no 0402 node yet (XEP-0411 §3)."""
        if await self.pep.node_config(username, NS_BOOKMARKS) is not None:
            return
        text = await self.private.get(username, LEGACY_KEY)
        storage = _parse(text) if isinstance(text, str) else None
        if storage is None:
            items = await self.pep.get_items(username, NS_LEGACY, max_items=1)
            storage = items[-1][1] if items else None
        if storage is None:
            return
        wanted = self.parse_legacy(storage, strict=False)
        if wanted:
            await self.apply(username, wanted)
        if isinstance(text, str):
            await self.private.set(username, LEGACY_KEY, None)
        self.module.log.info("moved %d bookmarks of %s to PEP", len(wanted), username)

    # -- hooks ---------------------------------------------------------------------------
    async def on_private_get(self, event: Fragment) -> Element | None:
        """XEP-0411 §3: a private XML get of storage:bookmarks, from the 0402 node."""
        await self.migrate(event.username)
        if await self.pep.node_config(event.username, NS_BOOKMARKS) is None:
            return None  # nothing anywhere: the private module answers (empty)
        return legacy_storage(await self.native(event.username))

    async def on_private_set(self, event: Fragment) -> bool | StanzaError:
        """XEP-0411 §3: a private XML set of storage:bookmarks, into the 0402 node."""
        try:
            wanted = self.parse_legacy(event.element, strict=True)
        except InvalidBookmark:
            return StanzaError("bad-request", "a conference needs a room's bare JID")
        bound = await self.max_items(event.username)
        if len(wanted) > bound:
            return StanzaError("policy-violation", f"at most {bound} bookmarks")
        try:
            await self.apply(event.username, wanted)
        except PubsubError as err:
            return to_stanza_error(err)
        return True

    async def max_items(self, username: str) -> int:
        """How many rooms the 0402 node keeps (its max_items, else the PEP bound)."""
        config = await self.pep.node_config(username, NS_BOOKMARKS)
        value = config.get("max_items") if config is not None else None
        return value if isinstance(value, int) else int(self.module.option("pep_max_items"))

    async def on_published(self, event: PepItemEvent) -> None:
        if _CONVERTING.get():
            return
        if event.node == NS_BOOKMARKS:
            await self.sync_legacy(event.username)
        elif event.node == NS_LEGACY and event.payload is not None:
            # XEP-0048 over PEP: the whole list in one item.
            wanted = self.parse_legacy(event.payload, strict=False)
            if len(wanted) > await self.max_items(event.username):
                self.module.log.info("legacy bookmarks of %s exceed the node's bound; "
                                     "not converted", event.username)
                return
            try:
                await self.apply(event.username, wanted)
            except PubsubError as err:
                self.module.log.info("legacy bookmarks of %s not converted: %s",
                                     event.username, err.kind)

    async def on_retracted(self, event: PepItemEvent) -> None:
        # A retraction on the legacy node is not a statement about the list (XEP-0048
        # clients replace the item); only 0402 retractions change bookmarks.
        if not _CONVERTING.get() and event.node == NS_BOOKMARKS:
            await self.sync_legacy(event.username)

    async def on_bind(self, session: ClientSession) -> None:
        if session.username is not None:
            await self.migrate(session.username)


def _parse(text: str) -> Element | None:
    try:
        return parse_fragment(text)
    except StreamError:
        return None


def load(module: ModuleApi) -> None:
    module.depends("pep")
    bookmarks = _Bookmarks(module)
    module.hook(f"private-get/{LEGACY_KEY}", bookmarks.on_private_get)
    module.hook(f"private-set/{LEGACY_KEY}", bookmarks.on_private_set)
    module.hook("pep-item-published", bookmarks.on_published)
    module.hook("pep-item-retracted", bookmarks.on_retracted)
    module.hook("resource-bind", bookmarks.on_bind)
    for feature in ("compat", "compat-pep"):
        module.provides("account-feature", f"{NS_BOOKMARKS}#{feature}")
