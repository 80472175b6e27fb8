"""The roster (RFC 6121 §2) with roster versioning (XEP-0237).

Get, set and remove over ``jabber:iq:roster``; pushes go to every *interested* resource
(one that fetched the roster, §2.1.6). The records, the subscription state machine and
the API other modules use (``module.require("roster", RosterService)``) live in
``_rosterlib``; see docs/roster.md for the storage layout and the options.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from tercet.module import (
    ClientSession,
    ModuleApi,
    Option,
    StanzaError,
    StanzaEvent,
    StorageError,
    StreamFeaturesEvent,
    UserDeleted,
)
from tercet.modules._rosterlib import (
    DEFAULT_MAX_ROSTER_SIZE,
    MAX_GROUPS,
    MAX_TEXT_BYTES,
    NS_ROSTER,
    NS_ROSTERVER,
    RosterFull,
    RosterRecord,
    RosterService,
    item_element,
)
from tercet.protocol.jid import JID, InvalidJID
from tercet.protocol.stanza import Element

META = {"summary": "Rosters (RFC 6121 §2)", "stage": "stable", "xeps": ["XEP-0237"]}

OPTIONS: list[Option[Any]] = [
    Option("max_roster_size", int, DEFAULT_MAX_ROSTER_SIZE,
           "Most contacts in one roster (and most unanswered subscription requests).",
           min=1, max=100_000, cite="RFC 6121 §2.3.3"),
]


class RosterSetError(Exception):
    """A roster set that must be refused with ``error`` (RFC 6121 §2.3.3)."""

    def __init__(self, error: StanzaError) -> None:
        super().__init__(error.condition)
        self.error = error


class _RosterQueries:
    """Answers to ``jabber:iq:roster`` queries (RFC 6121 §2) over the host's ``service``."""

    def __init__(self, module: ModuleApi, service: RosterService, max_items: int) -> None:
        self.module = module
        self.service = service
        self.max_items = max_items

    def features(self, event: StreamFeaturesEvent) -> None:
        if event.session.authenticated:
            event.features.tag("ver", NS_ROSTERVER)  # XEP-0237 §2.1

    async def on_query(self, event: StanzaEvent) -> bool | None:
        stanza, session = event.stanza, event.origin
        if not isinstance(session, ClientSession) or session.username is None:
            return None  # "self" is a local client asking about its own account
        try:
            if stanza.get("type") == "get":
                await self.roster_get(session, session.username, stanza)
            else:
                await self.roster_set(session, session.username, stanza)
        except RosterSetError as err:
            session.send(stanza.error_reply(err.error))
        except StorageError:
            self.module.log.exception("roster storage failed for %s", session.username)
            session.send(stanza.error_reply(StanzaError("internal-server-error")))
        return True

    async def roster_get(self, session: ClientSession, username: str, stanza: Element) -> None:
        record = await self.service.load(username)
        session.interested = True
        reply = stanza.reply()
        query = stanza.iq_payload()
        # XEP-0237 §2.3: a client whose version is current gets an empty result.
        if query is None or query.get("ver") != str(record.version):
            reply.append(roster_query(record))
        session.send(reply)

    async def roster_set(self, session: ClientSession, username: str, stanza: Element) -> None:
        jid, item = parse_set(stanza, f"{username}@{self.module.host}")
        if item.get("subscription") == "remove":
            removed = await self.service.remove_contact(
                username, jid, before_push=lambda: session.send(stanza.reply()))
            if not removed:  # RFC 6121 §2.5.3
                raise RosterSetError(StanzaError("item-not-found"))
            return
        name, groups = item_name(item), item_groups(item)

        def apply(rec: RosterRecord) -> None:
            try:
                entry = rec.ensure_item(jid, self.max_items)
            except RosterFull:
                raise RosterSetError(StanzaError(
                    "not-allowed", f"the roster is full ({self.max_items} contacts)")) from None
            # §2.1.2.5: subscription, ask and approved in a set are ignored; only the
            # user-editable fields change.
            entry["groups"] = groups
            if name:
                entry["name"] = name
            else:
                entry.pop("name", None)
        _, record, changed = await self.service.update(username, apply)
        session.send(stanza.reply())
        self.service.push(username, changed or [jid], record)

    def forbidden(self, event: StanzaEvent) -> Awaitable[bool] | bool:
        # §2.1.5 / §2.3.3: only the account itself may read or change its roster.
        if event.stanza.get("type") not in ("get", "set"):
            return True
        reply = event.stanza.error_reply(StanzaError("forbidden"))
        if event.origin.kind != "c2s":
            return self.send_reply(reply)
        event.origin.send(reply)
        return True

    async def send_reply(self, reply: Element) -> bool:
        await self.module.send(reply)
        return True


def load(module: ModuleApi) -> None:
    max_items = module.option("max_roster_size")
    service = RosterService(module, module.open_keyval("roster"), max_items)
    module.provides("roster", service)
    load_cache_hooks(module, service)
    module.add_feature(NS_ROSTER)
    queries = _RosterQueries(module, service, max_items)
    module.hook("stream-features", queries.features, 5)
    module.hook(f"iq/self/{NS_ROSTER}:query", queries.on_query)
    module.hook(f"iq/bare/{NS_ROSTER}:query", queries.forbidden, -1)


def load_cache_hooks(module: ModuleApi, service: RosterService) -> None:
    """Keep the rosters of users with a bound session in memory, drop deleted ones."""
    cache = service.cache
    for session in module.all_sessions():  # loaded while users are online (reload)
        if session.username is not None:
            cache.pin(session.username)

    def bind(session: ClientSession) -> None:
        if session.username is not None:
            cache.pin(session.username)

    def unbind(session: ClientSession) -> None:
        # Fired once the session left the host's table: no sessions left means offline.
        if session.username is not None and not module.sessions(session.username):
            cache.unpin(session.username)

    def deleted(event: UserDeleted) -> None:
        cache.forget(event.username)

    module.hook("resource-bind", bind)
    module.hook("resource-unbind", unbind)
    module.hook("user-deleted", deleted)
    module.on_unload(cache.clear)


def roster_query(record: RosterRecord) -> Element:
    query = Element("query", NS_ROSTER, {"ver": str(record.version)})
    for jid in sorted(record.items):
        query.append(item_element(jid, record.items[jid]))
    return query


def parse_set(stanza: Element, own_bare: str) -> tuple[str, Element]:
    """The prepared JID and <item/> of a roster set, or RosterSetError (RFC 6121 §2.3.3)."""
    query = stanza.iq_payload()
    children = list(query.elements()) if query is not None else []
    if len(children) != 1 or children[0].name != "item" or children[0].xmlns != NS_ROSTER:
        raise RosterSetError(StanzaError("bad-request", "a roster set carries one item"))
    item = children[0]
    try:
        jid = JID.parse(item.get("jid") or "")
    except InvalidJID:
        raise RosterSetError(StanzaError("bad-request", "invalid JID")) from None
    if jid.resource is not None:
        raise RosterSetError(StanzaError("bad-request", "roster items are bare JIDs"))
    if str(jid) == own_bare:
        # As Prosody: the account is not a contact of itself.
        raise RosterSetError(StanzaError("not-allowed", "cannot add yourself"))
    return str(jid), item


def item_name(item: Element) -> str:
    name = item.get("name") or ""
    if len(name.encode()) > MAX_TEXT_BYTES:
        raise RosterSetError(StanzaError("not-acceptable", "name too long"))
    return name


def item_groups(item: Element) -> list[str]:
    groups: list[str] = []
    for el in item.find_all("group", NS_ROSTER):
        text = el.text
        if not text:
            raise RosterSetError(StanzaError("not-acceptable", "empty group name"))
        if len(text.encode()) > MAX_TEXT_BYTES:
            raise RosterSetError(StanzaError("not-acceptable", "group name too long"))
        if text in groups:  # RFC 6121 §2.3.3: duplicate groups are a bad request
            raise RosterSetError(StanzaError("bad-request", "duplicate group"))
        groups.append(text)
        if len(groups) > MAX_GROUPS:
            raise RosterSetError(StanzaError("not-acceptable", "too many groups"))
    return groups
