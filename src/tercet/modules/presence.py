"""Presence (RFC 6121 §3 and §4): availability, subscriptions, probes, directed presence.

Outbound (``pre-presence/*`` on the sender's host, from local clients):

* no 'to', available or unavailable: reflected to the sender, sent to the account's
  other available resources and to every contact with subscription from/both (§4.2, §4.4,
  §4.5); the first available presence also probes the contacts with subscription to/both,
  brings the other resources' presence, redelivers pending subscription requests and
  fires ``initial-presence`` (the offline module delivers stored messages there);
* with a 'to', available or unavailable: directed presence (§4.6), remembered so that
  unavailable presence follows it;
* subscribe / subscribed / unsubscribe / unsubscribed: stamped with bare JIDs, applied to
  the sender's roster (Appendix A.2, with pre-approval, §3.4), then routed.

Inbound (``presence/bare``, ``presence/full`` on the destination host): availability
goes to the available resources (or the one full JID) and is dropped when there is none;
subscription stanzas go through Appendix A.3 and probes are answered (§4.3.2).

When a session ends without unavailable presence, the server sends it on its behalf
(§4.5.3, as on a stream error). Roster state needs the roster module; without it only
the account's own resources see its presence.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable
from dataclasses import dataclass

from tercet.module import (
    ClientSession,
    ModuleApi,
    StanzaError,
    StanzaEvent,
    StreamError,
    StreamFeaturesEvent,
)
from tercet.modules._rosterlib import (
    NS_PREAPPROVAL,
    SUBSCRIPTION_TYPES,
    Outcome,
    RosterFull,
    RosterService,
    last_presence,
    presence,
    sees_user,
    send_presence_of_resources,
    user_sees,
)
from tercet.protocol.stanza import Element
from tercet.protocol.xmlstream import parse_fragment

#: What a session's ``directed`` becomes when emptied (the session starts with one too).
_NO_DIRECTED: frozenset[str] = frozenset()

META = {"summary": "Presence (RFC 6121 §3, §4)", "stage": "stable", "xeps": []}
AVAILABILITY = (None, "unavailable")
# Directed presence remembered per session (RFC 6121 §4.6.2 does not bound it; RFC 6120
# §13.12 lets a server limit what one session may make it hold).
MAX_DIRECTED = 1000
_PRIORITY = re.compile(r"[+-]?[0-9]{1,10}")
# Shared by every session without contacts: frozenset() makes a new object each time (224 B
# per idle session).
_NO_CONTACTS: frozenset[str] = frozenset()
# Stored presences (``session.presence``) alike to the byte are one object: most sessions
# of a server keep one of a few (the same client's capabilities, no status), ~210 B each
# otherwise. Keyed by their XML; past this many distinct ones the table starts afresh
# (the sessions keep theirs, and what follows is shared again).
MAX_SHARED_PRESENCES = 1024
_shared_presences: dict[str, Element] = {}


@dataclass(frozen=True, slots=True)
class PresenceBroadcast:
    """Payload of ``presence-broadcast``: ``session``'s availability (``stanza``) went out
    to its contacts."""

    session: ClientSession
    stanza: Element


class _Presence:
    """The handlers of one host's presence: they share the module API and look up the
    roster service on each use, since the roster module may come and go."""

    def __init__(self, module: ModuleApi) -> None:
        self.module = module

    def roster(self) -> RosterService | None:
        """The host's roster service, or None when no roster module is loaded."""
        return self.module.find("roster", RosterService)

    def features(self, event: StreamFeaturesEvent) -> None:
        if event.session.authenticated and self.roster() is not None:
            event.features.tag("sub", NS_PREAPPROVAL)  # RFC 6121 §3.4.1

    # -- outbound availability (§4.2, §4.4, §4.5) ---------------------------------------------
    def outbound_broadcast(self, event: StanzaEvent) -> Awaitable[bool] | bool | None:
        session, stanza = event.origin, event.stanza
        if event.to is not None or not isinstance(session, ClientSession) or not session.bound:
            return None
        ptype = stanza.get("type")
        if ptype in AVAILABILITY:
            return self.availability(session, stanza)
        if ptype != "error":
            session.send(stanza.error_reply(StanzaError("bad-request", "this needs a 'to'")))
        return True

    async def availability(self, session: ClientSession, stanza: Element) -> bool:
        stanza.attrs["from"] = session.full_jid or ""
        stanza.attrs.pop("to", None)
        available = stanza.get("type") is None
        initial = available and not session.available
        session.available = available
        if available:
            session.priority = _priority(stanza)
            session.presence = _kept(stanza)
            session.data["presence.since"] = self.module.now()
        else:
            session.presence = None
        self.to_own_resources(session, stanza)
        await self.to_contacts(session, stanza)
        await self.module.fire_async("presence-broadcast", PresenceBroadcast(session, stanza))
        if not available:
            await self.to_directed(session, stanza)
        elif initial:
            await self.initial_presence(session)
        else:
            await self.module.fire_async("presence-available", session)
        return True

    def to_own_resources(self, session: ClientSession, stanza: Element) -> None:
        for other in list(self.module.sessions(session.username or "").values()):
            if other.available or other is session:
                copy = stanza.copy()
                copy.attrs["to"] = other.full_jid or ""
                other.send(copy)

    async def to_contacts(self, session: ClientSession, stanza: Element) -> None:
        service = self.roster()
        if service is None or session.username is None:
            return
        record = await service.load(session.username)
        contacts = record.contacts(sees_user)
        # Remembered so that directed-presence tracking can tell contacts apart without
        # reading the roster for every copy of a broadcast.
        session.data["presence.contacts"] = frozenset(contacts) if contacts else _NO_CONTACTS
        for jid in contacts:
            copy = stanza.copy()
            copy.attrs["to"] = jid
            await self.module.route(session, copy)

    async def to_directed(self, session: ClientSession, stanza: Element) -> None:
        targets = sorted(session.directed)
        session.directed = _NO_DIRECTED
        for jid in targets:
            copy = stanza.copy()
            copy.attrs["to"] = jid
            await self.module.route(session, copy)

    async def initial_presence(self, session: ClientSession) -> None:
        """After the first available presence (§4.2.2, §3.1.3, XEP-0160)."""
        username, full_jid = session.username or "", session.full_jid or ""
        service = self.roster()
        record = await service.load(username) if service is not None else None
        if record is not None:
            for jid in record.contacts(user_sees):
                await self.module.route(session, Element("presence", attrs={
                    "type": "probe", "from": full_jid, "to": jid}))
        for other in list(self.module.sessions(username).values()):
            found = last_presence(self.module, other) if other is not session else None
            if found is not None:
                found.attrs["to"] = full_jid
                session.send(found)
        if record is not None:
            for jid, xml in record.pending.items():
                session.send(_pending_request(jid, xml))
            # As Prosody: ask again for subscriptions still pending, in case the contact's
            # server lost the request.
            user_bare = session.bare_jid or ""
            for jid in record.asking():
                await self.module.send(presence(user_bare, jid, "subscribe"))
        await self.module.fire_async("initial-presence", session)

    # -- outbound directed presence (§4.6) ------------------------------------------------------
    def outbound_directed(self, event: StanzaEvent) -> bool | None:
        session, stanza = event.origin, event.stanza
        ptype = stanza.get("type")
        if event.to is None or not isinstance(session, ClientSession) \
                or ptype not in AVAILABILITY:
            return None
        target = str(event.to)
        if ptype is not None:
            directed = session.directed
            if isinstance(directed, set):
                directed.discard(target)
            return None
        if str(event.to.bare) in session.data.get("presence.contacts", ()):
            return None  # a contact getting a broadcast, not directed presence
        return self.remember_directed(session, target, event.stanza)

    def remember_directed(self, session: ClientSession, target: str,
                          stanza: Element) -> bool | None:
        if target not in session.directed and len(session.directed) >= MAX_DIRECTED:
            session.send(stanza.error_reply(
                StanzaError("resource-constraint", "too many directed presences")))
            return True
        directed = session.directed
        if not isinstance(directed, set):
            directed = session.directed = set()
        directed.add(target)
        return None  # routing continues to the destination

    # -- outbound subscriptions (§3, Appendix A.2) -------------------------------------------------
    def outbound_subscription(self, event: StanzaEvent) -> Awaitable[bool] | None:
        ptype = event.stanza.get("type")
        session, to = event.origin, event.to
        if ptype not in SUBSCRIPTION_TYPES or to is None \
                or not isinstance(session, ClientSession):
            return None
        service = self.roster()
        if service is None:
            return None
        return self.handle_outbound(session, event.stanza, str(to.bare), service, ptype)

    async def handle_outbound(self, session: ClientSession, stanza: Element, contact: str,
                              service: RosterService, ptype: str) -> bool:
        user_bare, username = session.bare_jid or "", session.username or ""
        if contact == user_bare:
            return True  # nobody subscribes to themselves
        # §3.1.2 and friends: subscription stanzas travel between bare JIDs.
        stanza.attrs["from"], stanza.attrs["to"] = user_bare, contact
        try:
            outcome = await service.outbound(username, contact, ptype)
        except RosterFull:
            session.send(stanza.error_reply(StanzaError(
                "not-allowed", f"the roster is full ({service.max_items} contacts)")))
            return True
        if ptype in ("subscribe", "unsubscribe"):
            await self.module.send(stanza)
        elif ptype == "subscribed":
            await self.outbound_subscribed(username, user_bare, stanza, outcome)
        elif outcome.changed:  # unsubscribed
            if sees_user(outcome.before.subscription):  # §3.2.2
                await send_presence_of_resources(self.module, username, contact, unavailable=True)
            await self.module.send(stanza)
        return True

    async def outbound_subscribed(self, username: str, user_bare: str, stanza: Element,
                                  outcome: Outcome) -> None:
        contact = stanza.attrs["to"]
        if not sees_user(outcome.after.subscription):
            return  # a pre-approval (§3.4) stays here until the contact asks
        await self.module.send(stanza)  # §3.1.5 (or a repeat that resynchronises the contact)
        await send_presence_of_resources(self.module, username, contact)
        if user_sees(outcome.after.subscription):
            await self.module.send(presence(user_bare, contact, "probe"))

    # -- inbound (§3, Appendix A.3, §4.3, §8.5) ---------------------------------------------------
    def inbound_bare(self, event: StanzaEvent) -> Awaitable[bool] | bool:
        stanza, to = event.stanza, event.to
        ptype = stanza.get("type")
        if to is None or to.node is None:
            return True
        if ptype in AVAILABILITY or ptype == "error":
            # §8.5.2.1.2 / §8.5.2.2.2: every available resource, or nobody.
            for session in list(self.module.sessions(to.node, to.domain).values()):
                if session.available:
                    session.send(stanza)
            return True
        return self.inbound_subscription(event, to.node, ptype)

    def inbound_full(self, event: StanzaEvent) -> Awaitable[bool] | bool:
        stanza, to = event.stanza, event.to
        ptype = stanza.get("type")
        if to is None or to.node is None:  # never: a full JID has both
            return True
        if ptype in AVAILABILITY or ptype == "error":
            session = self.module.sessions(to.node, to.domain).get(to.resource or "")
            if session is not None:
                session.send(stanza)
            return True
        return self.inbound_subscription(event, to.node, ptype)

    def inbound_subscription(self, event: StanzaEvent, user: str,
                             ptype: str | None) -> Awaitable[bool] | bool:
        sender = event.stanza.get("from")
        if not sender:
            return True
        if ptype is None or (ptype not in SUBSCRIPTION_TYPES and ptype != "probe"):
            return self.refuse(event.stanza.error_reply(StanzaError("bad-request")))
        return self.handle_inbound(event, user, ptype, sender)

    async def refuse(self, error: Element) -> bool:
        await self.module.send(error)
        return True

    async def handle_inbound(self, event: StanzaEvent, user: str, ptype: str, sender: str) -> bool:
        user_bare, contact = f"{user}@{self.module.host}", sender.partition("/")[0]
        # A user with a bound session exists (deleting an account closes its sessions
        # first): the store read is skipped on the path of every probe.
        if self.module.auth is None or (not self.module.sessions(user)
                                   and not await self.module.account_exists(user)):
            if ptype in ("subscribe", "probe"):  # §8.5.1: no such user
                await self.module.send(presence(user_bare, contact, "unsubscribed"))
            return True
        service = self.roster()
        if service is None or contact == user_bare:
            if ptype == "probe" and contact == user_bare:
                await send_presence_of_resources(self.module, user, sender)
            return True
        if ptype == "probe":
            await self.answer_probe(service, user, user_bare, contact, sender)
            return True
        stanza = event.stanza.copy()
        stanza.attrs["from"], stanza.attrs["to"] = contact, user_bare
        def deliver(outcome: Outcome) -> None:
            if ptype != "subscribe" and outcome.changed:
                # §3.1.6, §3.2.3, §3.3.3: to the interested resources, before the push.
                for session in list(self.module.sessions(user).values()):
                    if session.interested:
                        session.send(stanza)
        outcome = await service.inbound(user, contact, ptype, stanza, deliver)
        if ptype == "subscribe":
            await self.inbound_subscribe(user, user_bare, contact, stanza, outcome)
        elif ptype == "unsubscribe" and sees_user(outcome.before.subscription):
            await send_presence_of_resources(self.module, user, contact, unavailable=True)
        return True

    async def inbound_subscribe(self, user: str, user_bare: str, contact: str, stanza: Element,
                                outcome: Outcome) -> None:
        if outcome.auto_approved:  # already subscribed, or pre-approved (§3.4)
            await self.module.send(presence(user_bare, contact, "subscribed"))
            if not await send_presence_of_resources(self.module, user, contact):
                await self.module.send(presence(user_bare, contact, "unavailable"))
            return
        if outcome.refused:
            if stanza.get("type") != "error":
                await self.module.send(stanza.error_reply(StanzaError(
                    "resource-constraint", "too many pending subscription requests")))
            return
        # As Prosody: acknowledge receipt without revealing the user's presence.
        await self.module.send(presence(user_bare, contact, "unavailable"))
        if outcome.stored:  # §3.1.3: every available resource now, the rest at login
            for session in list(self.module.sessions(user).values()):
                if session.available:
                    session.send(stanza)

    async def answer_probe(self, service: RosterService, user: str, user_bare: str, contact: str,
                           prober: str) -> None:
        """§4.3.2: the last presence of each available resource, if the prober may see it."""
        if not sees_user(await service.subscription(user, contact)):
            await self.module.send(presence(user_bare, contact, "unsubscribed"))
            return
        if not await send_presence_of_resources(self.module, user, prober):
            await self.module.send(presence(user_bare, prober, "unavailable"))

    def inbound_host(self, event: StanzaEvent) -> Awaitable[bool] | bool:
        """Presence to the server itself: it is always available and always approves."""
        stanza = event.stanza
        sender, ptype = stanza.get("from"), stanza.get("type")
        if not sender or ptype not in ("probe", "subscribe"):
            return True
        return self.answer_as_host(sender.partition("/")[0], ptype)

    async def answer_as_host(self, bare: str, ptype: str) -> bool:
        if ptype == "subscribe":
            await self.module.send(presence(self.module.host, bare, "subscribed"))
        await self.module.send(presence(self.module.host, bare))
        return True

    # -- the end of a session (§4.5.3) ---------------------------------------------------------
    def unbind(self, session: ClientSession) -> None:
        if not session.available:
            if session.directed:
                unavailable = Element("presence", attrs={"type": "unavailable",
                                                         "from": session.full_jid or ""})
                self.module.spawn(self.to_directed(session, unavailable))
            return
        session.available = False
        session.presence = None
        unavailable = Element("presence", attrs={"type": "unavailable",
                                                 "from": session.full_jid or ""})
        self.to_own_resources(session, unavailable)
        self.module.spawn(self.after_unbind(session, unavailable))
        return

    async def after_unbind(self, session: ClientSession, unavailable: Element) -> None:
        await self.to_contacts(session, unavailable)
        await self.module.fire_async("presence-broadcast", PresenceBroadcast(session, unavailable))
        await self.to_directed(session, unavailable)


def load(module: ModuleApi) -> None:
    handlers = _Presence(module)
    module.hook("stream-features", handlers.features, 5)
    module.hook("pre-presence/bare", handlers.outbound_broadcast, 100)
    for kind in ("bare", "full", "host"):
        module.hook(f"pre-presence/{kind}", handlers.outbound_directed, 90)
        module.hook(f"pre-presence/{kind}", handlers.outbound_subscription, 80)
    module.hook("presence/full", handlers.inbound_full, -1)
    module.hook("presence/bare", handlers.inbound_bare, -1)
    module.hook("presence/host", handlers.inbound_host, -1)
    module.hook("resource-unbind", handlers.unbind)


def _priority(stanza: Element) -> int:
    """RFC 6121 §4.7.2.3: an integer from -128 to 127; anything else counts as 0."""
    text = (stanza.child_text("priority") or "").strip()
    if not _PRIORITY.fullmatch(text):
        return 0
    return max(-128, min(127, int(text)))


def _pending_request(jid: str, xml: str) -> Element:
    """The stored subscription request from ``jid``, redelivered at login (§3.1.3)."""
    try:
        request = parse_fragment(xml)
    except (StreamError, ValueError):  # a damaged record still yields a plain request
        request = Element("presence")
    request.attrs["type"] = "subscribe"
    request.attrs["from"] = jid
    return request


def _kept(stanza: Element) -> Element:
    """The copy of an available presence a session keeps (``session.presence``): without
    its 'from', the session's own full JID, which whoever sends the presence on stamps
    (``last_presence``), so that sessions with the same presence can share one (see
    MAX_SHARED_PRESENCES). Readers copy it before they change anything."""
    attrs = {name: value for name, value in stanza.attrs.items() if name != "from"}
    # The key from the stanza's own children: a presence already kept costs no copy.
    key = Element(stanza.name, stanza.xmlns, attrs, stanza.children).to_xml()
    shared = _shared_presences.get(key)
    if shared is not None:
        return shared
    kept = stanza.copy()
    kept.attrs = attrs
    if len(_shared_presences) >= MAX_SHARED_PRESENCES:
        _shared_presences.clear()
    _shared_presences[key] = kept
    return kept
