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

META = {"summary": "Presence (RFC 6121 §3, §4)", "stage": "stable", "xeps": []}
AVAILABILITY = (None, "unavailable")
# Directed presence remembered per session (RFC 6121 §4.6.2 does not bound it; RFC 6120
# §13.12 lets a server limit what one session may make it hold).
MAX_DIRECTED = 1000
_PRIORITY = re.compile(r"[+-]?[0-9]{1,10}")


@dataclass(frozen=True, slots=True)
class PresenceBroadcast:
    """Payload of ``presence-broadcast``: ``session``'s availability (``stanza``) went out
    to its contacts."""

    session: ClientSession
    stanza: Element


def load(module: ModuleApi) -> None:
    def roster() -> RosterService | None:
        """The host's roster service, or None when no roster module is loaded."""
        return module.find("roster", RosterService)

    def features(event: StreamFeaturesEvent) -> None:
        if event.session.authenticated and roster() is not None:
            event.features.tag("sub", NS_PREAPPROVAL)  # RFC 6121 §3.4.1

    # -- outbound availability (§4.2, §4.4, §4.5) ---------------------------------------------
    def outbound_broadcast(event: StanzaEvent) -> Awaitable[bool] | bool | None:
        session, stanza = event.origin, event.stanza
        if event.to is not None or not isinstance(session, ClientSession) or not session.bound:
            return None
        ptype = stanza.get("type")
        if ptype in AVAILABILITY:
            return availability(session, stanza)
        if ptype != "error":
            session.send(stanza.error_reply(StanzaError("bad-request", "this needs a 'to'")))
        return True

    async def availability(session: ClientSession, stanza: Element) -> bool:
        stanza.attrs["from"] = session.full_jid or ""
        stanza.attrs.pop("to", None)
        available = stanza.get("type") is None
        initial = available and not session.available
        session.available = available
        if available:
            session.priority = _priority(stanza)
            session.presence = stanza.copy()
            session.data["presence.since"] = module.now()
        else:
            session.presence = None
        to_own_resources(session, stanza)
        await to_contacts(session, stanza)
        await module.fire_async("presence-broadcast", PresenceBroadcast(session, stanza))
        if not available:
            await to_directed(session, stanza)
        elif initial:
            await initial_presence(session)
        else:
            await module.fire_async("presence-available", session)
        return True

    def to_own_resources(session: ClientSession, stanza: Element) -> None:
        for other in list(module.sessions(session.username or "").values()):
            if other.available or other is session:
                copy = stanza.copy()
                copy.attrs["to"] = other.full_jid or ""
                other.send(copy)

    async def to_contacts(session: ClientSession, stanza: Element) -> None:
        service = roster()
        if service is None or session.username is None:
            return
        record = await service.load(session.username)
        contacts = record.contacts(sees_user)
        # Remembered so that directed-presence tracking can tell contacts apart without
        # reading the roster for every copy of a broadcast.
        session.data["presence.contacts"] = frozenset(contacts)
        for jid in contacts:
            copy = stanza.copy()
            copy.attrs["to"] = jid
            await module.route(session, copy)

    async def to_directed(session: ClientSession, stanza: Element) -> None:
        targets = sorted(session.directed)
        session.directed.clear()
        for jid in targets:
            copy = stanza.copy()
            copy.attrs["to"] = jid
            await module.route(session, copy)

    async def initial_presence(session: ClientSession) -> None:
        """After the first available presence (§4.2.2, §3.1.3, XEP-0160)."""
        username, full_jid = session.username or "", session.full_jid or ""
        service = roster()
        record = await service.load(username) if service is not None else None
        if record is not None:
            for jid in record.contacts(user_sees):
                await module.route(session, Element("presence", attrs={
                    "type": "probe", "from": full_jid, "to": jid}))
        for other in list(module.sessions(username).values()):
            found = last_presence(module, other) if other is not session else None
            if found is not None:
                found.attrs["to"] = full_jid
                session.send(found)
        if record is not None:
            for jid, xml in record.pending.items():
                session.send(pending_request(jid, xml))
            # As Prosody: ask again for subscriptions still pending, in case the contact's
            # server lost the request.
            user_bare = session.bare_jid or ""
            for jid in record.asking():
                await module.send(presence(user_bare, jid, "subscribe"))
        await module.fire_async("initial-presence", session)

    def pending_request(jid: str, xml: str) -> Element:
        try:
            request = parse_fragment(xml)
        except (StreamError, ValueError):  # a damaged record still yields a plain request
            request = Element("presence")
        request.attrs["type"] = "subscribe"
        request.attrs["from"] = jid
        return request

    # -- outbound directed presence (§4.6) ------------------------------------------------------
    def outbound_directed(event: StanzaEvent) -> bool | None:
        session, stanza = event.origin, event.stanza
        ptype = stanza.get("type")
        if event.to is None or not isinstance(session, ClientSession) \
                or ptype not in AVAILABILITY:
            return None
        target = str(event.to)
        if ptype is not None:
            session.directed.discard(target)
            return None
        if str(event.to.bare) in session.data.get("presence.contacts", ()):
            return None  # a contact getting a broadcast, not directed presence
        return remember_directed(session, target, event.stanza)

    def remember_directed(session: ClientSession, target: str, stanza: Element) -> bool | None:
        if target not in session.directed and len(session.directed) >= MAX_DIRECTED:
            session.send(stanza.error_reply(
                StanzaError("resource-constraint", "too many directed presences")))
            return True
        session.directed.add(target)
        return None  # routing continues to the destination

    # -- outbound subscriptions (§3, Appendix A.2) -------------------------------------------------
    def outbound_subscription(event: StanzaEvent) -> Awaitable[bool] | None:
        ptype = event.stanza.get("type")
        session, to = event.origin, event.to
        if ptype not in SUBSCRIPTION_TYPES or to is None \
                or not isinstance(session, ClientSession):
            return None
        service = roster()
        if service is None:
            return None
        return handle_outbound(session, event.stanza, str(to.bare), service, ptype)

    async def handle_outbound(session: ClientSession, stanza: Element, contact: str,
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
            await module.send(stanza)
        elif ptype == "subscribed":
            await outbound_subscribed(username, user_bare, stanza, outcome)
        elif outcome.changed:  # unsubscribed
            if sees_user(outcome.before.subscription):  # §3.2.2
                await send_presence_of_resources(module, username, contact, unavailable=True)
            await module.send(stanza)
        return True

    async def outbound_subscribed(username: str, user_bare: str, stanza: Element,
                                  outcome: Outcome) -> None:
        contact = stanza.attrs["to"]
        if not sees_user(outcome.after.subscription):
            return  # a pre-approval (§3.4) stays here until the contact asks
        await module.send(stanza)  # §3.1.5 (or a repeat that resynchronises the contact)
        await send_presence_of_resources(module, username, contact)
        if user_sees(outcome.after.subscription):
            await module.send(presence(user_bare, contact, "probe"))

    # -- inbound (§3, Appendix A.3, §4.3, §8.5) ---------------------------------------------------
    def inbound_bare(event: StanzaEvent) -> Awaitable[bool] | bool:
        stanza, to = event.stanza, event.to
        ptype = stanza.get("type")
        if to is None or to.node is None:
            return True
        if ptype in AVAILABILITY or ptype == "error":
            # §8.5.2.1.2 / §8.5.2.2.2: every available resource, or nobody.
            for session in list(module.sessions(to.node, to.domain).values()):
                if session.available:
                    session.send(stanza)
            return True
        return inbound_subscription(event, to.node, ptype)

    def inbound_full(event: StanzaEvent) -> Awaitable[bool] | bool:
        stanza, to = event.stanza, event.to
        ptype = stanza.get("type")
        if to is None or to.node is None:  # never: a full JID has both
            return True
        if ptype in AVAILABILITY or ptype == "error":
            session = module.sessions(to.node, to.domain).get(to.resource or "")
            if session is not None:
                session.send(stanza)
            return True
        return inbound_subscription(event, to.node, ptype)

    def inbound_subscription(event: StanzaEvent, user: str,
                             ptype: str | None) -> Awaitable[bool] | bool:
        sender = event.stanza.get("from")
        if not sender:
            return True
        if ptype is None or (ptype not in SUBSCRIPTION_TYPES and ptype != "probe"):
            return refuse(event.stanza.error_reply(StanzaError("bad-request")))
        return handle_inbound(event, user, ptype, sender)

    async def refuse(error: Element) -> bool:
        await module.send(error)
        return True

    async def handle_inbound(event: StanzaEvent, user: str, ptype: str, sender: str) -> bool:
        user_bare, contact = f"{user}@{module.host}", sender.partition("/")[0]
        # A user with a bound session exists (deleting an account closes its sessions
        # first): the store read is skipped on the path of every probe.
        if module.auth is None or (not module.sessions(user)
                                   and not await module.account_exists(user)):
            if ptype in ("subscribe", "probe"):  # §8.5.1: no such user
                await module.send(presence(user_bare, contact, "unsubscribed"))
            return True
        service = roster()
        if service is None or contact == user_bare:
            if ptype == "probe" and contact == user_bare:
                await send_presence_of_resources(module, user, sender)
            return True
        if ptype == "probe":
            await answer_probe(service, user, user_bare, contact, sender)
            return True
        stanza = event.stanza.copy()
        stanza.attrs["from"], stanza.attrs["to"] = contact, user_bare
        def deliver(outcome: Outcome) -> None:
            if ptype != "subscribe" and outcome.changed:
                # §3.1.6, §3.2.3, §3.3.3: to the interested resources, before the push.
                for session in list(module.sessions(user).values()):
                    if session.interested:
                        session.send(stanza)
        outcome = await service.inbound(user, contact, ptype, stanza, deliver)
        if ptype == "subscribe":
            await inbound_subscribe(user, user_bare, contact, stanza, outcome)
        elif ptype == "unsubscribe" and sees_user(outcome.before.subscription):
            await send_presence_of_resources(module, user, contact, unavailable=True)
        return True

    async def inbound_subscribe(user: str, user_bare: str, contact: str, stanza: Element,
                                outcome: Outcome) -> None:
        if outcome.auto_approved:  # already subscribed, or pre-approved (§3.4)
            await module.send(presence(user_bare, contact, "subscribed"))
            if not await send_presence_of_resources(module, user, contact):
                await module.send(presence(user_bare, contact, "unavailable"))
            return
        if outcome.refused:
            if stanza.get("type") != "error":
                await module.send(stanza.error_reply(StanzaError(
                    "resource-constraint", "too many pending subscription requests")))
            return
        # As Prosody: acknowledge receipt without revealing the user's presence.
        await module.send(presence(user_bare, contact, "unavailable"))
        if outcome.stored:  # §3.1.3: every available resource now, the rest at login
            for session in list(module.sessions(user).values()):
                if session.available:
                    session.send(stanza)

    async def answer_probe(service: RosterService, user: str, user_bare: str, contact: str,
                           prober: str) -> None:
        """§4.3.2: the last presence of each available resource, if the prober may see it."""
        if not sees_user(await service.subscription(user, contact)):
            await module.send(presence(user_bare, contact, "unsubscribed"))
            return
        if not await send_presence_of_resources(module, user, prober):
            await module.send(presence(user_bare, prober, "unavailable"))

    def inbound_host(event: StanzaEvent) -> Awaitable[bool] | bool:
        """Presence to the server itself: it is always available and always approves."""
        stanza = event.stanza
        sender, ptype = stanza.get("from"), stanza.get("type")
        if not sender or ptype not in ("probe", "subscribe"):
            return True
        return answer_as_host(sender.partition("/")[0], ptype)

    async def answer_as_host(bare: str, ptype: str) -> bool:
        if ptype == "subscribe":
            await module.send(presence(module.host, bare, "subscribed"))
        await module.send(presence(module.host, bare))
        return True

    # -- the end of a session (§4.5.3) ---------------------------------------------------------
    def unbind(session: ClientSession) -> None:
        if not session.available:
            if session.directed:
                unavailable = Element("presence", attrs={"type": "unavailable",
                                                         "from": session.full_jid or ""})
                module.spawn(to_directed(session, unavailable))
            return
        session.available = False
        session.presence = None
        unavailable = Element("presence", attrs={"type": "unavailable",
                                                 "from": session.full_jid or ""})
        to_own_resources(session, unavailable)
        module.spawn(after_unbind(session, unavailable))
        return

    async def after_unbind(session: ClientSession, unavailable: Element) -> None:
        await to_contacts(session, unavailable)
        await module.fire_async("presence-broadcast", PresenceBroadcast(session, unavailable))
        await to_directed(session, unavailable)

    module.hook("stream-features", features, 5)
    module.hook("pre-presence/bare", outbound_broadcast, 100)
    for kind in ("bare", "full", "host"):
        module.hook(f"pre-presence/{kind}", outbound_directed, 90)
        module.hook(f"pre-presence/{kind}", outbound_subscription, 80)
    module.hook("presence/full", inbound_full, -1)
    module.hook("presence/bare", inbound_bare, -1)
    module.hook("presence/host", inbound_host, -1)
    module.hook("resource-unbind", unbind)


def _priority(stanza: Element) -> int:
    """RFC 6121 §4.7.2.3: an integer from -128 to 127; anything else counts as 0."""
    text = (stanza.child_text("priority") or "").strip()
    if not _PRIORITY.fullmatch(text):
        return 0
    return max(-128, min(127, int(text)))
