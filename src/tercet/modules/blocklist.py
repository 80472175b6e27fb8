"""Blocking Command (XEP-0191): a per-account list of JIDs no stanza may pass to or from.

Enforcement, with JID matching per XEP-0191 §6 (full JID, bare JID, domain, domain/resource):

* inbound (``message/*``, ``presence/*``, ``iq/*`` on the user's host): presence is dropped;
  iq get/set get ``service-unavailable``; chat and normal messages are dropped, or answered
  ``service-unavailable`` when ``bounce_blocked_messages = true`` (§3.3: the error must not
  tell the contact it is blocked); everything else is dropped.
* outbound (``pre-*`` on the user's host): messages, iq get/set and subscription requests
  are answered ``not-acceptable`` with ``<blocked xmlns='urn:xmpp:blocking:errors'/>``
  (§3.3); availability presence (broadcasts included), probes, errors and iq results are
  dropped silently, and unsubscribe/unsubscribed pass so a contact can still be cut off.

Blocking a contact drops its unanswered subscription request and sends it unavailable
presence from each available resource if it may see the user's presence (§3.3);
unblocking makes it probe the user, so it gets the current presence if its subscription
allows. Pushes go to the resources that fetched the list.
Lists live in the keyval store ``blocklist`` ({"items": {jid: blocked-at}}), cached per
user in a bounded LRU (``blocklist_cache_size``).
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from tercet.module import (
    ClientSession,
    KeyValStore,
    ModuleApi,
    Option,
    StanzaError,
    StanzaEvent,
    UserDeleted,
)
from tercet.modules._rosterlib import RosterService, contact_subscription
from tercet.protocol.jid import JID, InvalidJID
from tercet.protocol.stanza import NS_STANZAS, Element

NS_BLOCKING = "urn:xmpp:blocking"
NS_BLOCKING_ERRORS = "urn:xmpp:blocking:errors"
META = {"summary": "Blocking Command", "stage": "stable", "xeps": ["XEP-0191"]}
STORE = "blocklist"
DEFAULT_CACHE_SIZE = 256
# XEP-0191 does not bound the list; this keeps one account from growing a record (and
# every push) without limit.
DEFAULT_MAX_ITEMS = 5000
# Above the presence module's broadcast (100) and directed-presence tracking (90), so a
# blocked stanza is stopped before anything acts on it; below nothing in the core.
PRIORITY = 200
SUBSCRIPTION_REQUESTS = frozenset(("subscribe", "subscribed"))
PASSING_PRESENCE = frozenset(("unsubscribe", "unsubscribed"))

OPTIONS: list[Option[Any]] = [
    Option("bounce_blocked_messages", bool, False,
           "Answer messages from blocked JIDs with service-unavailable.", cite="XEP-0191 §3.3"),
    Option("blocklist_cache_size", int, DEFAULT_CACHE_SIZE,
           "Block lists kept in memory.", min=1, max=1_000_000),
    Option("blocklist_max_items", int, DEFAULT_MAX_ITEMS,
           "Most JIDs one account may block.", min=1, max=1_000_000),
]

_push_ids = itertools.count(1)


def is_blocked(items: Mapping[str, object], jid: JID) -> bool:
    """XEP-0191 §6 (as XEP-0016 §2.1): full JID, bare JID, domain, or domain/resource."""
    if not items:
        return False  # most lists are empty: no JID strings to build on the stanza path
    if jid.full in items or jid.domain in items:
        return True
    if jid.node is not None and str(jid.bare) in items:
        return True
    return jid.resource is not None and f"{jid.domain}/{jid.resource}" in items


class Blocklists:
    """Every user's list, read through a bounded LRU cache (least recently used dropped).

    The lists of users with a bound session stay in memory while they are online (so as
    many as there are such users): with more users online than the cache holds, every
    stanza would otherwise wait for a storage read (bench/README.md).
    """

    def __init__(self, store: KeyValStore, size: int) -> None:
        self.store = store
        self.size = size
        self._cache: OrderedDict[str, dict[str, float]] = OrderedDict()
        self._online: dict[str, dict[str, float]] = {}
        self._pinned: set[str] = set()

    def pin(self, username: str) -> None:
        """The user has a bound session: keep its list in memory from the next read on."""
        self._pinned.add(username)
        items = self._cache.pop(username, None)
        if items is not None:
            self._online[username] = items

    def unpin(self, username: str) -> None:
        """The user's last session is gone: its list goes back to the LRU cache."""
        self._pinned.discard(username)
        items = self._online.pop(username, None)
        if items is not None:
            self._remember(username, items)

    def cached(self, username: str) -> dict[str, float] | None:
        online = self._online.get(username)
        if online is not None:
            return online
        items = self._cache.get(username)
        if items is not None:
            self._cache.move_to_end(username)
        return items

    def _remember(self, username: str, items: dict[str, float]) -> None:
        if username in self._pinned:
            self._online[username] = items
            return
        self._cache[username] = items
        self._cache.move_to_end(username)
        while len(self._cache) > self.size:
            self._cache.popitem(last=False)

    async def get(self, username: str) -> dict[str, float]:
        items = self.cached(username)
        if items is None:
            record = await self.store.get(username)
            stored = record.get("items") if isinstance(record, dict) else None
            items = dict(stored) if isinstance(stored, dict) else {}
            self._remember(username, items)
        return items

    async def put(self, username: str, items: dict[str, float]) -> None:
        await self.store.set(username, {"items": items} if items else None)
        self._remember(username, items)

    def forget(self, username: str) -> None:
        self._cache.pop(username, None)
        self._online.pop(username, None)


def blocked_error() -> StanzaError:
    """not-acceptable + <blocked/> (XEP-0191 §3.3), text as Prosody words it."""
    return StanzaError("not-acceptable", "You have blocked this JID", type="cancel",
                       extra=Element("blocked", NS_BLOCKING_ERRORS))


def error_reply(stanza: Element, error: StanzaError) -> Element:
    reply = stanza.error_reply(error)
    # No xml:lang on <text/>: it is the stanza's language anyway (RFC 6120 §8.3.2), and
    # Prosody's conformance scripts compare the element strictly.
    err = reply.find("error")
    text = err.find("text", NS_STANZAS) if err is not None else None
    if text is not None:
        text.attrs.pop("xml:lang", None)
    return reply


def load(module: ModuleApi) -> None:
    lists = Blocklists(module.open_keyval(STORE),
                       module.option("blocklist_cache_size"))
    module.add_feature(NS_BLOCKING)
    load_commands(module, lists)
    load_enforcement(module, lists)

    def deleted(event: UserDeleted) -> None:
        lists.forget(event.username)

    def bind(session: ClientSession) -> None:
        if session.username is not None:
            lists.pin(session.username)

    def unbind(session: ClientSession) -> None:
        if session.username is not None and not module.sessions(session.username):
            lists.unpin(session.username)

    module.hook("user-deleted", deleted)
    module.hook("resource-bind", bind)
    module.hook("resource-unbind", unbind)


# -- the block list commands --------------------------------------------------------------

class _Commands:
    """The block list commands of one host (XEP-0191 §3), over the shared ``lists``."""

    def __init__(self, module: ModuleApi, lists: Blocklists) -> None:
        self.module = module
        self.lists = lists
        self.max_items: int = module.option("blocklist_max_items")
        self.profile: str = module.global_option("jid_profile")

    async def on_get(self, event: StanzaEvent) -> bool | None:
        origin = event.origin
        if not isinstance(origin, ClientSession) or origin.username is None:
            return None  # "self" is a local client asking about its own account
        items = await self.lists.get(origin.username)
        reply = event.stanza.reply()
        payload = reply.tag("blocklist", NS_BLOCKING)
        for jid in sorted(items):
            payload.tag("item", attrs={"jid": jid})
        origin.data["blocklist.interested"] = True  # gets pushes from now on
        origin.send(reply)
        return True

    def parse_items(self, action: Element) -> list[str] | None:
        out = []
        for item in action.find_all("item", NS_BLOCKING):
            try:
                jid = JID.parse(item.get("jid") or "", profile=self.profile)
            except InvalidJID:
                return None
            item.attrs["jid"] = str(jid)  # the push echoes the prepared form
            out.append(str(jid))
        return out

    async def on_edit(self, event: StanzaEvent) -> bool | None:
        origin, stanza = event.origin, event.stanza
        if not isinstance(origin, ClientSession) or origin.username is None:
            return None
        action = stanza.iq_payload()
        assert action is not None
        jids = self.parse_items(action)
        if jids is None:
            origin.send(stanza.error_reply(StanzaError("jid-malformed")))
            return True
        blocking = action.name == "block"
        if blocking and not jids:
            origin.send(stanza.error_reply(StanzaError("bad-request", "nothing to block")))
            return True
        before = await self.lists.get(origin.username)
        after = edited(before, jids, blocking, self.module.now())
        if len(after) > self.max_items:
            origin.send(stanza.error_reply(StanzaError("resource-constraint",
                                                       "the block list is full")))
            return True
        await self.lists.put(origin.username, after)
        origin.send(stanza.reply())
        changed = sorted(set(after) - set(before) if blocking else set(before) - set(after))
        await self.announce(origin.username, changed, blocking)
        self.push(origin.username, action)
        return True

    async def announce(self, username: str, changed: list[str], blocking: bool) -> None:
        for jid in changed:
            if blocking:
                await forget_request(self.module, username, jid)
            if not await contact_subscribed(self.module, username, jid):
                continue
            if blocking:
                await self.send_unavailable(username, jid)
            else:
                # The contact "probes" us: the presence logic answers with our current
                # presence exactly as its subscription allows.
                await self.module.send(Element("presence", attrs={
                    "type": "probe", "from": jid, "to": f"{username}@{self.module.host}"}))

    async def send_unavailable(self, username: str, jid: str) -> None:
        for session in list(self.module.sessions(username).values()):
            if session.available:
                await self.module.send(Element("presence", attrs={
                    "type": "unavailable", "to": jid, "from": str(session.full_jid)}))

    def push(self, username: str, action: Element) -> None:
        for session in self.module.sessions(username).values():
            if session.data.get("blocklist.interested"):
                iq = Element("iq", attrs={"type": "set", "to": str(session.full_jid),
                                          "id": f"blocklist-push-{next(_push_ids)}"})
                iq.append(action.copy())
                session.send(iq)

    def on_push_error(self, event: StanzaEvent) -> bool:
        event.origin.log.info("client returned an error to a block list push")
        return True


def load_commands(module: ModuleApi, lists: Blocklists) -> None:
    commands = _Commands(module, lists)
    module.hook(f"iq-get/self/{NS_BLOCKING}:blocklist", commands.on_get)
    module.hook(f"iq-set/self/{NS_BLOCKING}:block", commands.on_edit)
    module.hook(f"iq-set/self/{NS_BLOCKING}:unblock", commands.on_edit)
    module.hook("iq-error/self/blocklist-push", commands.on_push_error)


def edited(before: Mapping[str, float], jids: Iterable[str], blocking: bool,
           now: float) -> dict[str, float]:
    """The list after a block or unblock (an unblock without items empties it, §3.5)."""
    jids = list(jids)
    if blocking:
        return {**before, **{jid: before.get(jid, now) for jid in jids}}
    if not jids:
        return {}
    return {jid: when for jid, when in before.items() if jid not in set(jids)}


async def contact_subscribed(module: ModuleApi, username: str, jid: str) -> bool:
    """Whether ``jid`` may see ``username``'s presence (subscription "from" or "both")."""
    return await contact_subscription(module, username, jid) in ("from", "both")


async def forget_request(module: ModuleApi, username: str, jid: str) -> None:
    """Drop a subscription request from ``jid`` the user has not answered (as Prosody):
    it would otherwise be shown again at each login, though it came from a blocked JID."""
    roster = module.find("roster", RosterService)
    if roster is not None:
        await roster.forget_request(username, jid)


# -- enforcement ----------------------------------------------------------------------------

def load_enforcement(module: ModuleApi, lists: Blocklists) -> None:
    bounce_messages = module.option("bounce_blocked_messages")

    # inbound and outbound run for every stanza: they make no closure and, for the usual
    # cached and empty list, answer at once; a cache miss costs one read (``slow``).
    async def slow(username: str, other: JID, event: StanzaEvent,
                   refuse: Callable[[StanzaEvent], bool | None]) -> bool | None:
        return refuse(event) if is_blocked(await lists.get(username), other) else None

    def inbound(event: StanzaEvent) -> Awaitable[bool | None] | bool | None:
        to, sender = event.to, event.from_
        if to is None or to.node is None or sender is None or sender.same_bare(to):
            return None
        items = lists.cached(to.node)
        if items is None:
            return slow(to.node, sender, event, refuse_inbound)
        return refuse_inbound(event) if items and is_blocked(items, sender) else None

    def refuse_inbound(event: StanzaEvent) -> bool:
        stanza = event.stanza
        kind, stype = stanza.name, stanza.get("type")
        answer = (kind == "iq" and stype in ("get", "set")) or (
            kind == "message" and bounce_messages and stype in (None, "normal", "chat"))
        if answer:
            module.send_detached(stanza.error_reply(StanzaError("service-unavailable")))
        return True

    def outbound(event: StanzaEvent) -> Awaitable[bool | None] | bool | None:
        origin, to = event.origin, event.to
        if to is None or not isinstance(origin, ClientSession) or origin.username is None:
            return None
        items = lists.cached(origin.username)
        if items is None:
            return slow(origin.username, to, event, refuse_outbound)
        return refuse_outbound(event) if items and is_blocked(items, to) else None

    def refuse_outbound(event: StanzaEvent) -> bool | None:
        stanza = event.stanza
        kind, stype = stanza.name, stanza.get("type")
        if kind == "presence" and stype in PASSING_PRESENCE:
            return None
        answer = stype in SUBSCRIPTION_REQUESTS if kind == "presence" else (
            stype != "error" and not (kind == "iq" and stype == "result"))
        if answer:
            event.origin.send(error_reply(stanza, blocked_error()))
        return True

    for kind in ("message", "presence", "iq"):
        for to_type in ("bare", "full"):
            module.hook(f"{kind}/{to_type}", inbound, PRIORITY)
        for to_type in ("bare", "full", "host"):
            module.hook(f"pre-{kind}/{to_type}", outbound, PRIORITY)
