"""Rosters and presence subscriptions, shared by the roster and presence modules.

Private to ``tercet.modules``: the roster module creates one :class:`RosterService` per
host and registers it as the host's ``roster`` provider; the presence module and others
(blocking, account deletion, disco) reach it through
``module.require("roster", RosterService)``, or ``module.find`` when it is optional.

Storage: keyval store ``roster``, one record per account. The record is a table of bare
JID -> item, the layout other modules (and Prosody) read, plus one metadata entry under
``@meta`` (not a valid JID, so no contact can collide with it)::

    {"juliet@example.org": {"subscription": "both", "name": "Juliet",
                            "groups": ["Friends"], "ask": "subscribe", "approved": true},
     "@meta": {"version": 7,
               "pending": {"nurse@example.org": "<presence type='subscribe' ...>"}}}

``ask`` and ``approved`` are present only when set. ``pending`` keeps each inbound
subscription request the user has not answered, as the complete original stanza
(RFC 6121 §3.1.3), so it can be delivered again at the next login.

The subscription state machine of RFC 6121 Appendix A is the pair of tables
:data:`OUTBOUND` and :data:`INBOUND` below; nothing else changes a subscription state.
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from tercet.protocol.stanza import NS_DELAY, Element

if TYPE_CHECKING:
    from tercet.module import ClientSession, KeyValStore, ModuleApi

T = TypeVar("T")

NS_ROSTER = "jabber:iq:roster"
NS_ROSTERVER = "urn:xmpp:features:rosterver"  # XEP-0237 §2.1
NS_PREAPPROVAL = "urn:xmpp:features:pre-approval"  # RFC 6121 §3.4.1
META_KEY = "@meta"
SUBSCRIPTIONS = ("none", "to", "from", "both")
SUBSCRIPTION_TYPES = frozenset(("subscribe", "subscribed", "unsubscribe", "unsubscribed"))
# RFC 6121 §2.3.3: names and group names longer than "a server-configured limit" are
# not-acceptable. 1023 bytes is the limit RFC 7622 §3.1 puts on each part of a JID.
MAX_TEXT_BYTES = 1023
# Groups per item (RFC 6121 §2.3.3 "server-configured limit"): keeps one item, and every
# push that carries it, small.
MAX_GROUPS = 100
DEFAULT_MAX_ROSTER_SIZE = 500
# Rosters of users with no bound session kept in memory after use, least recently used
# dropped first. Not a protocol limit: it bounds what answering probes (RFC 6121 §4.3.2)
# of offline contacts may keep; a login with 50 contacts reads 50 of them (bench/README.md).
DEFAULT_ROSTER_CACHE_SIZE = 1000


# -- subscription states (RFC 6121 Appendix A.1) -------------------------------------------

@dataclass(frozen=True, slots=True)
class SubState:
    """One of the nine subscription states of RFC 6121 Appendix A.1, from the user's side.

    ``ask`` is "Pending Out" (the user asked the contact), ``pending_in`` is "Pending In"
    (the contact asked the user and the user has not answered).
    """

    subscription: str
    ask: bool = False
    pending_in: bool = False

    def __str__(self) -> str:
        name = self.subscription.capitalize()
        extra = [n for n, on in (("Out", self.ask), ("In", self.pending_in)) if on]
        return name + (" + Pending " + "+".join(extra) if extra else "")


NONE = SubState("none")
NONE_OUT = SubState("none", ask=True)
NONE_IN = SubState("none", pending_in=True)
NONE_OUT_IN = SubState("none", ask=True, pending_in=True)
TO = SubState("to")
TO_IN = SubState("to", pending_in=True)
FROM = SubState("from")
FROM_OUT = SubState("from", ask=True)
BOTH = SubState("both")
STATES = (NONE, NONE_OUT, NONE_IN, NONE_OUT_IN, TO, TO_IN, FROM, FROM_OUT, BOTH)

# RFC 6121 Appendix A.2: the user sends a subscription stanza to the contact.
OUTBOUND: dict[str, dict[SubState, SubState]] = {
    "subscribe": {  # A.2.1
        NONE: NONE_OUT, NONE_OUT: NONE_OUT, NONE_IN: NONE_OUT_IN, NONE_OUT_IN: NONE_OUT_IN,
        TO: TO, TO_IN: TO_IN, FROM: FROM_OUT, FROM_OUT: FROM_OUT, BOTH: BOTH},
    "unsubscribe": {  # A.2.2
        NONE: NONE, NONE_OUT: NONE, NONE_IN: NONE_IN, NONE_OUT_IN: NONE_IN,
        TO: NONE, TO_IN: NONE_IN, FROM: FROM, FROM_OUT: FROM, BOTH: FROM},
    "subscribed": {  # A.2.3 (no pending request: pre-approval, §3.4, handled apart)
        NONE: NONE, NONE_OUT: NONE_OUT, NONE_IN: FROM, NONE_OUT_IN: FROM_OUT,
        TO: TO, TO_IN: BOTH, FROM: FROM, FROM_OUT: FROM_OUT, BOTH: BOTH},
    "unsubscribed": {  # A.2.4
        NONE: NONE, NONE_OUT: NONE_OUT, NONE_IN: NONE, NONE_OUT_IN: NONE_OUT,
        TO: TO, TO_IN: TO, FROM: NONE, FROM_OUT: NONE_OUT, BOTH: TO},
}

# RFC 6121 Appendix A.3: the contact's subscription stanza reaches the user's server.
INBOUND: dict[str, dict[SubState, SubState]] = {
    "subscribe": {  # A.3.1 (from/both: answered "subscribed" automatically)
        NONE: NONE_IN, NONE_OUT: NONE_OUT_IN, NONE_IN: NONE_IN, NONE_OUT_IN: NONE_OUT_IN,
        TO: TO_IN, TO_IN: TO_IN, FROM: FROM, FROM_OUT: FROM_OUT, BOTH: BOTH},
    "unsubscribe": {  # A.3.2
        NONE: NONE, NONE_OUT: NONE_OUT, NONE_IN: NONE, NONE_OUT_IN: NONE_OUT,
        TO: TO, TO_IN: TO, FROM: NONE, FROM_OUT: NONE_OUT, BOTH: TO},
    "subscribed": {  # A.3.3
        NONE: NONE, NONE_OUT: TO, NONE_IN: NONE_IN, NONE_OUT_IN: TO_IN,
        TO: TO, TO_IN: TO_IN, FROM: FROM, FROM_OUT: BOTH, BOTH: BOTH},
    "unsubscribed": {  # A.3.4
        NONE: NONE, NONE_OUT: NONE, NONE_IN: NONE_IN, NONE_OUT_IN: NONE_IN,
        TO: NONE, TO_IN: NONE_IN, FROM: FROM, FROM_OUT: FROM, BOTH: FROM},
}


def sees_user(subscription: str) -> bool:
    """Whether the contact receives the user's presence (subscription from or both)."""
    return subscription in ("from", "both")


def user_sees(subscription: str) -> bool:
    """Whether the user receives the contact's presence (subscription to or both)."""
    return subscription in ("to", "both")


class RosterFull(Exception):
    """Adding an item would exceed ``max_roster_size`` (the owner gets ``not-allowed``)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one subscription stanza did to the state of one contact."""

    before: SubState
    after: SubState
    auto_approved: bool = False  # inbound subscribe answered "subscribed" at once
    stored: bool = False  # inbound subscribe newly kept as pending
    refused: bool = False  # inbound subscribe not kept: too many pending requests

    @property
    def changed(self) -> bool:
        return self.before != self.after


@dataclass(frozen=True, slots=True)
class RosterItemRemoved:
    """Payload of the ``roster-item-removed`` event (fired after the removal)."""

    username: str
    jid: str
    item: dict[str, Any]


# -- the record ------------------------------------------------------------------------------

@dataclass(eq=True, slots=True)
class RosterRecord:
    """One account's roster: items, version (XEP-0237) and pending inbound requests."""

    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    version: int = 0
    pending: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any) -> RosterRecord:
        """Read a stored record, dropping malformed entries instead of failing."""
        rec = cls()
        if not isinstance(data, dict):
            return rec
        for jid, raw in data.items():
            if jid != META_KEY and isinstance(jid, str) and isinstance(raw, dict):
                rec.items[jid] = _clean_item(raw)
        meta = data.get(META_KEY)
        if isinstance(meta, dict):
            version = meta.get("version")
            rec.version = version if isinstance(version, int) and version >= 0 else 0
            pending = meta.get("pending")
            if isinstance(pending, dict):
                rec.pending = {k: v for k, v in pending.items()
                               if isinstance(k, str) and isinstance(v, str)}
        return rec

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {jid: dict(item) for jid, item in self.items.items()}
        out[META_KEY] = {"version": self.version, "pending": dict(self.pending)}
        return out

    def copy(self) -> RosterRecord:
        items = {jid: {**item, "groups": list(item.get("groups", ()))}
                 for jid, item in self.items.items()}
        return RosterRecord(items, self.version, dict(self.pending))

    def subscription(self, jid: str) -> str:
        item = self.items.get(jid)
        return str(item["subscription"]) if item is not None else "none"

    def state(self, jid: str) -> SubState:
        item = self.items.get(jid)
        return SubState(self.subscription(jid), bool(item and item.get("ask")),
                        jid in self.pending)

    def contacts(self, accept: Callable[[str], bool]) -> list[str]:
        """The JIDs whose subscription passes ``accept`` (e.g. :func:`sees_user`)."""
        return [jid for jid, item in self.items.items() if accept(item["subscription"])]

    def asking(self) -> list[str]:
        """The JIDs the user asked for a subscription that is still pending (ask)."""
        return [jid for jid, item in self.items.items() if item.get("ask")]

    def ensure_item(self, jid: str, limit: int) -> dict[str, Any]:
        item = self.items.get(jid)
        if item is None:
            if len(self.items) >= limit:
                raise RosterFull(jid)
            item = self.items[jid] = {"subscription": "none", "groups": []}
        return item

    def set_state(self, jid: str, state: SubState, limit: int) -> None:
        """Write ``state`` for ``jid``; an item is created only when it carries something."""
        if not state.pending_in:
            self.pending.pop(jid, None)
        item = self.items.get(jid)
        if item is None:
            if state.subscription == "none" and not state.ask:
                return
            item = self.ensure_item(jid, limit)
        item["subscription"] = state.subscription
        if state.ask:
            item["ask"] = "subscribe"
        else:
            item.pop("ask", None)
        if sees_user(state.subscription):
            item.pop("approved", None)  # a pre-approval is used up once the contact sees us


def _clean_item(raw: dict[str, Any]) -> dict[str, Any]:
    sub = raw.get("subscription")
    groups = raw.get("groups", [])
    if isinstance(groups, dict):  # Prosody's set-as-table layout
        groups = list(groups)
    item: dict[str, Any] = {
        "subscription": sub if sub in SUBSCRIPTIONS else "none",
        "groups": [g for g in groups if isinstance(g, str)] if isinstance(groups, list) else [],
    }
    if isinstance(raw.get("name"), str) and raw["name"]:
        item["name"] = raw["name"]
    if raw.get("ask") == "subscribe":
        item["ask"] = "subscribe"
    if raw.get("approved") in (True, "true"):
        item["approved"] = True
    return item


def item_element(jid: str, item: dict[str, Any] | None) -> Element:
    """The <item/> of a roster result or push; ``None`` is a removal (RFC 6121 §2.1.6)."""
    if item is None:
        return Element("item", NS_ROSTER, {"jid": jid, "subscription": "remove"})
    attrs = {"jid": jid, "subscription": item["subscription"]}
    if item.get("name"):
        attrs["name"] = item["name"]
    if item.get("ask"):
        attrs["ask"] = "subscribe"
    if item.get("approved"):
        attrs["approved"] = "true"  # RFC 6121 §2.1.2.1: SHOULD tell the client
    el = Element("item", NS_ROSTER, attrs)
    for group in item.get("groups", ()):
        el.text_tag("group", group)
    return el


# -- presence helpers -------------------------------------------------------------------------

def stamp(when: float) -> str:
    """XEP-0082 DateTime in UTC, whole seconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def last_presence(module: ModuleApi, session: ClientSession) -> Element | None:
    """The session's last available presence, with a XEP-0203 delay saying since when."""
    if session.presence is None:
        return None
    copy = session.presence.copy()
    copy.attrs["from"] = session.full_jid or ""
    when = session.data.get("presence.since")
    if isinstance(when, int | float):
        copy.tag("delay", NS_DELAY, {"from": module.host, "stamp": stamp(when)})
    return copy


async def send_presence_of_resources(module: ModuleApi, username: str, to: str, *,
                                     unavailable: bool = False) -> int:
    """Send each available resource's presence (or unavailable) to ``to``; return how many.

    Routed as each session, so the sender's blocking rules apply (RFC 6121 §3.1.5 and
    §4.3.2 answers, §3.2.2 and §2.5.2 unavailable).
    """
    count = 0
    for session in list(module.sessions(username).values()):
        if not session.available:
            continue
        if unavailable:
            pres = Element("presence", attrs={"type": "unavailable",
                                              "from": session.full_jid or ""})
        else:
            found = last_presence(module, session)
            if found is None:
                continue
            pres = found
        pres.attrs["to"] = to
        await module.route(session, pres)
        count += 1
    return count


def presence(from_: str, to: str, type_: str | None = None) -> Element:
    attrs = {"from": from_, "to": to}
    if type_ is not None:
        attrs["type"] = type_
    return Element("presence", attrs=attrs)


# -- the service ------------------------------------------------------------------------------

_push_ids = itertools.count(1)


class RosterCache:
    """Decoded rosters: pinned ones (users with a bound session) and a bounded LRU.

    Pinned entries are bounded by the number of bound sessions; the others by ``size``
    (:data:`DEFAULT_ROSTER_CACHE_SIZE`). ``epoch`` goes up whenever entries are dropped
    from outside a write, so a read that started before cannot put back what was dropped.
    """

    def __init__(self, size: int = DEFAULT_ROSTER_CACHE_SIZE) -> None:
        self.size = size
        self.epoch = 0
        self._pinned: dict[str, RosterRecord | None] = {}  # None: not loaded yet
        self._lru: OrderedDict[str, RosterRecord] = OrderedDict()

    def get(self, username: str) -> RosterRecord | None:
        record = self._pinned.get(username)
        if record is not None:
            return record
        record = self._lru.get(username)
        if record is not None:
            self._lru.move_to_end(username)
        return record

    def put(self, username: str, record: RosterRecord) -> None:
        if username in self._pinned:
            self._pinned[username] = record
            return
        self._lru[username] = record
        self._lru.move_to_end(username)
        while len(self._lru) > self.size:
            self._lru.popitem(last=False)

    def pin(self, username: str) -> None:
        """The user has a bound session: keep its roster while it has one."""
        if username not in self._pinned:
            self._pinned[username] = self._lru.pop(username, None)

    def unpin(self, username: str) -> None:
        """The user's last session is gone: its roster goes back to the LRU."""
        record = self._pinned.pop(username, None)
        if record is not None:
            self.put(username, record)

    def forget(self, username: str) -> None:
        """Drop the user's roster (account deleted); it stays pinned if it was."""
        self.epoch += 1
        if username in self._pinned:
            self._pinned[username] = None
        self._lru.pop(username, None)

    def clear(self) -> None:
        self.epoch += 1
        self._pinned.clear()
        self._lru.clear()

    def __len__(self) -> int:
        return len(self._lru) + sum(1 for r in self._pinned.values() if r is not None)


class RosterService:
    """Every account's roster on one host: storage, pushes and subscription state.

    Records are cached (:class:`RosterCache`, as Prosody keeps ``session.roster``): an
    initial presence probes every contact and each probe needs the contact's roster.
    The cache is write-through: every change goes through :meth:`update`, which holds a
    per-account lock around read-change-write and puts the new record in the cache only
    once the store took it. A record written to the store by anything else is seen once
    it leaves the cache (the user has no session and it was evicted, or it was deleted).
    """

    def __init__(self, module: ModuleApi, store: KeyValStore,
                 max_items: int = DEFAULT_MAX_ROSTER_SIZE,
                 cache_size: int = DEFAULT_ROSTER_CACHE_SIZE) -> None:
        self.module = module
        self.store = store
        self.max_items = max_items
        self.cache = RosterCache(cache_size)

    # -- reading ---------------------------------------------------------------------------
    async def load(self, username: str) -> RosterRecord:
        """The account's roster (shared with the cache: change it only through update)."""
        record = self.cache.get(username)
        if record is not None:
            return record
        # Filled under the account's lock, so no write can land between the read and
        # the fill and leave an older record in the cache.
        async with self.module.lock(username):
            return await self._load_locked(username)

    def invalidate(self, username: str) -> None:
        """Forget the cached roster of ``username``: for code that wrote the ``roster``
        store directly (an import, a test seeding records) while the service runs."""
        self.cache.forget(username)

    async def _load_locked(self, username: str) -> RosterRecord:
        record = self.cache.get(username)
        if record is None:
            epoch = self.cache.epoch
            record = RosterRecord.from_json(await self.store.get(username))
            if epoch == self.cache.epoch:  # not dropped (account deleted) meanwhile
                self.cache.put(username, record)
        return record

    async def subscription(self, username: str, contact: str) -> str:
        """"none", "to", "from" or "both": the state of ``contact`` in ``username``'s roster."""
        return (await self.load(username)).subscription(contact)

    def cached_subscription(self, username: str, contact: str) -> str | None:
        """:meth:`subscription` without waiting, when the roster is in the cache (it is
        for accounts with a bound session); None when it would need the store."""
        record = self.cache.get(username)
        return None if record is None else record.subscription(contact)

    async def item(self, username: str, contact: str) -> dict[str, Any] | None:
        item = (await self.load(username)).items.get(contact)
        return None if item is None else dict(item)

    # -- writing ---------------------------------------------------------------------------
    async def update(self, username: str,
                     change: Callable[[RosterRecord], T]) -> tuple[T, RosterRecord, list[str]]:
        """Apply ``change`` to a copy of the record and store it if anything changed.

        Returns ``change``'s result, the new record and the JIDs whose item changed (the
        version goes up once when any did). If ``change`` raises, nothing is stored.
        The per-account lock is held only around load-change-store, never while
        routing, so two accounts answering each other cannot deadlock.
        """
        async with self.module.lock(username):
            current = await self._load_locked(username)
            work = current.copy()
            result = change(work)
            changed = sorted(jid for jid in set(current.items) | set(work.items)
                             if current.items.get(jid) != work.items.get(jid))
            if changed:
                work.version = current.version + 1
            if work != current:
                epoch = self.cache.epoch
                # Store first: if it fails, the cache keeps the record the store holds.
                await self.store.set(username, work.to_json())
                if epoch == self.cache.epoch:
                    self.cache.put(username, work)
            return result, work, changed

    def push(self, username: str, jids: Iterable[str], record: RosterRecord) -> None:
        """Roster pushes (RFC 6121 §2.1.6) to every interested resource, one item each."""
        targets = [s for s in self.module.sessions(username).values() if s.interested]
        for jid in jids:
            for session in targets:
                iq = Element("iq", attrs={"type": "set", "id": f"push{next(_push_ids)}",
                                          "to": session.full_jid or ""})
                query = iq.tag("query", NS_ROSTER, {"ver": str(record.version)})
                query.append(item_element(jid, record.items.get(jid)))
                session.send(iq)

    async def change(self, username: str, change: Callable[[RosterRecord], T],
                     before_push: Callable[[T], None] | None = None) -> T:
        """:meth:`update`, then ``before_push(result)``, then push whatever items changed."""
        result, record, changed = await self.update(username, change)
        if before_push is not None:
            before_push(result)
        self.push(username, changed, record)
        return result

    # -- subscriptions (RFC 6121 §3, Appendix A) ----------------------------------------------
    async def outbound(self, username: str, contact: str, ptype: str) -> Outcome:
        """The user sends ``ptype`` to ``contact``; raises RosterFull if an item is needed
        and the roster is full."""
        def apply(rec: RosterRecord) -> Outcome:
            before = rec.state(contact)
            if ptype == "subscribed" and not before.pending_in and \
                    not sees_user(before.subscription):
                # §3.4: approve in advance; the item remembers it until the contact asks.
                rec.ensure_item(contact, self.max_items)["approved"] = True
                return Outcome(before, before)
            if ptype == "unsubscribed" and contact in rec.items:
                rec.items[contact].pop("approved", None)  # §3.4.2: cancels a pre-approval
            after = OUTBOUND[ptype][before]
            rec.set_state(contact, after, self.max_items)
            return Outcome(before, after)
        return await self.change(username, apply)

    async def inbound(self, username: str, contact: str, ptype: str,
                      stanza: Element | None = None,
                      before_push: Callable[[Outcome], None] | None = None) -> Outcome:
        """``contact`` sent ``ptype`` to the user; ``stanza`` is kept for a new request.

        ``before_push`` runs once the new state is stored, before the roster push (the
        presence module delivers the stanza there, the order RFC 6121 §3.1.6 shows).
        """
        def apply(rec: RosterRecord) -> Outcome:
            before = rec.state(contact)
            if ptype != "subscribe":
                after = INBOUND[ptype][before]
                rec.set_state(contact, after, self.max_items)
                return Outcome(before, after)
            if sees_user(before.subscription):
                return Outcome(before, before, auto_approved=True)
            item = rec.items.get(contact)
            if item is not None and item.get("approved"):
                after = OUTBOUND["subscribed"][INBOUND["subscribe"][before]]
                rec.set_state(contact, after, self.max_items)
                return Outcome(before, after, auto_approved=True)
            if before.pending_in:
                return Outcome(before, before)
            if len(rec.pending) >= self.max_items:
                return Outcome(before, before, refused=True)
            rec.pending[contact] = (stanza or presence(contact, "", "subscribe")).to_xml(None)
            return Outcome(before, INBOUND["subscribe"][before], stored=True)
        return await self.change(username, apply, before_push)

    async def forget_request(self, username: str, contact: str) -> None:
        """Drop ``contact``'s unanswered subscription request (RFC 6121 §3.1.3), so it is
        not shown again at the next login; no item changes, so nothing is pushed."""
        def drop(rec: RosterRecord) -> None:
            rec.pending.pop(contact, None)
        await self.update(username, drop)

    # -- removal (RFC 6121 §2.5) -------------------------------------------------------------
    async def remove_contact(self, username: str, contact: str,
                             before_push: Callable[[], None] | None = None) -> bool:
        """Remove ``contact`` and cancel both subscriptions; False if it was not there.

        ``before_push`` runs after the removal is stored and before the roster push (the
        roster module sends the iq result there). Then the contact gets unavailable
        presence (if it could see the user), ``unsubscribed`` and ``unsubscribe`` as
        §2.5.2 asks, and ``roster-item-removed`` fires.
        """
        def apply(rec: RosterRecord) -> tuple[dict[str, Any], bool] | None:
            item = rec.items.pop(contact, None)
            if item is None:
                return None
            return item, rec.pending.pop(contact, None) is not None
        found, record, changed = await self.update(username, apply)
        if found is None:
            return False
        if before_push is not None:
            before_push()
        self.push(username, changed, record)
        item, pending_in = found
        sub, user_bare = item["subscription"], f"{username}@{self.module.host}"
        if sees_user(sub):
            await send_presence_of_resources(self.module, username, contact, unavailable=True)
        if sees_user(sub) or pending_in:
            await self.module.send(presence(user_bare, contact, "unsubscribed"))
        if user_sees(sub) or item.get("ask"):
            await self.module.send(presence(user_bare, contact, "unsubscribe"))
        await self.module.fire_async("roster-item-removed",
                                     RosterItemRemoved(username, contact, item))
        return True


async def contact_subscription(module: ModuleApi, username: str, contact: str) -> str:
    """The subscription state ("none", "to", "from", "both") of ``contact`` (a bare JID)
    in ``username``'s roster; "none" when no roster module is loaded on the host."""
    service = module.find("roster", RosterService)
    return "none" if service is None else await service.subscription(username, contact)
