"""Client State Indication (XEP-0352): hold back what is not urgent while a client says it
is inactive (a phone in a pocket), and send it all at once when something urgent comes or
the client is active again.

The feature ``<csi xmlns='urn:xmpp:csi:0'/>`` is offered once a client has authenticated
(XEP-0352 "Discovering support"). ``<inactive/>`` puts a send filter on the session; it
runs before stream management's (which filters last), so stream management counts only
what actually leaves. While inactive, the filter holds back (:func:`urgent` says what is
not held):

* available and unavailable presence, keeping only the latest from each full JID
  ("Server behaviour": "push the latest presence from each contact");
* messages without a body (chat states, receipts, markers), unless they are pubsub
  events from the user's own account (bookmarks, OMEMO device lists, ...);
* pubsub events from anyone else.

Anything else (a message with a body, also inside a carbon; an iq; subscription
requests; errors) is urgent: everything held goes first, in order, then the urgent
stanza. ``<active/>`` sends everything held, and so does a full buffer
(``csi_queue_size``). The CSI state is separate from presence (XEP-0352 "Business Rules").

When the connection is lost, everything held is released into stream management's queue
(XEP-0198) before the session hibernates, so a resumption resends it. When a session ends
for good, what it still holds is dropped: by the rules above that is never a message with a
body, an iq, a subscription request or an error, only presence updates, bodiless messages
(chat states, receipts, markers) and other people's pubsub notifications, none of which
stream management would route again either.

Bind 2 (XEP-0386): ``<inactive xmlns='urn:xmpp:csi:0'/>`` inside the SASL2 ``<bind/>``
starts the new session inactive (the inline feature ``urn:xmpp:csi:0`` is listed in
Bind2's ``<inline/>``), as if ``<inactive/>`` had come right after binding.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tercet.module import (
    NS_CLIENT,
    ClientSession,
    Element,
    ModuleApi,
    Option,
    SessionReport,
    StreamElementEvent,
    StreamFeaturesEvent,
)
from tercet.modules._sasllib import Bind2Inline

NS = "urn:xmpp:csi:0"
NS_PUBSUB_EVENT = "http://jabber.org/protocol/pubsub#event"
NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"

META = {"summary": "Client State Indication: hold back presence and notifications "
                   "for inactive clients", "stage": "beta", "xeps": ["XEP-0352"]}
QUEUE_SIZE = Option(
    "csi_queue_size", int, 256,
    "Stanzas held back for one inactive client; when full, all of them are sent.",
    min=1, max=10_000, cite="XEP-0352 'Server behaviour'; RFC 6120 §13.12 (bounded buffers)")
OPTIONS: list[Option[Any]] = [QUEUE_SIZE]

# Before stream management (-100) and other filters that record what leaves.
FILTER_PRIORITY = 100
# Before stream management's connection-lost handler (0), which stops the chain when it
# hibernates the session.
LOST_PRIORITY = 10


def load(module: ModuleApi) -> None:
    limit = module.option(QUEUE_SIZE)
    key = module.name

    def features(event: StreamFeaturesEvent) -> None:
        if event.session.authenticated:
            event.features.tag("csi", NS)

    def inactive(event: StreamElementEvent) -> bool | None:
        session = event.session
        if not session.authenticated:
            return None  # the stream is closed: nothing to indicate before that
        start(session)
        return True

    def start(session: ClientSession) -> None:
        if key not in session.data:
            held = Held(session, limit)
            session.data[key] = held
            session.add_send_filter(held.fn, FILTER_PRIORITY)

    def bind2_features(event: StreamFeaturesEvent) -> None:
        event.features.tag("feature", attrs={"var": NS})

    def bind2_inactive(event: Bind2Inline) -> bool:
        start(event.session)  # XEP-0386 §4: the session starts inactive
        return True

    def active(event: StreamElementEvent) -> bool | None:
        session = event.session
        if not session.authenticated:
            return None
        stop(session)
        return True

    def stop(session: ClientSession) -> None:
        held = session.data.pop(key, None)
        if isinstance(held, Held):
            held.flush()  # XEP-0352 §3.1: before anything the client sends next is handled
            session.remove_send_filter(held.fn)

    def connection_lost(session: ClientSession) -> None:
        # Release what is held into stream management's queue, so that a resumption
        # resends it. Once this event is over: a session whose connection is gone is
        # closed, and sends nothing, until smacks (a handler after this one) detaches it
        # to hibernate; if nobody does, the session ends and what was held is dropped.
        # The session stays inactive: what comes while it hibernates is held as before.
        held = session.data.get(key)
        if isinstance(held, Held):
            asyncio.get_running_loop().call_soon(held.flush)

    def unload() -> None:
        for session in module.all_sessions():
            stop(session)

    def report(event: SessionReport) -> None:  # `c2s list` in the admin shell
        if isinstance(event.session.data.get(key), Held):
            event.features["csi"] = "inactive"

    module.hook("stream-features", features)
    module.hook(f"stream/{NS}:inactive", inactive)
    module.hook(f"stream/{NS}:active", active)
    module.hook("bind2-features", bind2_features)
    module.hook(f"bind2-inline/{NS}:inactive", bind2_inactive)
    module.hook("connection-lost", connection_lost, LOST_PRIORITY)
    module.hook("session-report", report)
    module.on_unload(unload)


def urgent(stanza: Element, own: str | None) -> bool:
    """Whether ``stanza`` must reach an inactive client now; ``own`` is its bare JID."""
    if stanza.name == "presence":
        return stanza.get("type") not in (None, "unavailable")
    if stanza.name != "message":
        return True
    if stanza.find("body") is not None:
        return True
    for name in ("received", "sent"):  # a carbon is as urgent as what it carries
        wrapper = stanza.find(name, NS_CARBONS)
        forwarded = wrapper.find("forwarded", NS_FORWARD) if wrapper is not None else None
        inner = forwarded.find("message", NS_CLIENT) if forwarded is not None else None
        if inner is not None and inner.find("body") is not None:
            return True
    if stanza.find("event", NS_PUBSUB_EVENT) is not None:
        return own is not None and stanza.get("from") == own
    if stanza.get("type") == "error":
        return True
    return False


class Held:
    """What one inactive session holds back, in order; presence keyed by its sender so
    that a newer one replaces the older."""

    __slots__ = ("count", "fn", "limit", "presence", "session", "stanzas")

    def __init__(self, session: ClientSession, limit: int) -> None:
        self.session = session
        self.limit = limit
        self.stanzas: list[Element | None] = []  # None: replaced by a newer presence
        self.presence: dict[str, int] = {}  # sender -> its index in stanzas
        self.count = 0  # stanzas held (not counting the replaced ones)
        # One bound method, kept: the session finds its filters by identity.
        self.fn = self.filter

    def filter(self, stanza: Element) -> Element | None:
        if urgent(stanza, self.session.bare_jid):
            self.flush()
            return stanza
        if stanza.name == "presence":
            sender = stanza.get("from") or ""
            old = self.presence.pop(sender, None)
            if old is not None:
                self.stanzas[old] = None
                self.count -= 1
            self.presence[sender] = len(self.stanzas)
        self.stanzas.append(stanza)
        self.count += 1
        if self.count >= self.limit:
            self.flush()
        elif len(self.stanzas) >= 2 * self.limit:
            self.compact()  # replaced presences never make the list longer than that
        return None

    def compact(self) -> None:
        live: list[Element | None] = [s for s in self.stanzas if s is not None]
        self.stanzas = live
        self.presence = {s.get("from") or "": i for i, s in enumerate(live)
                         if s is not None and s.name == "presence"}

    def flush(self) -> None:
        stanzas, self.stanzas, self.presence, self.count = self.stanzas, [], {}, 0
        for stanza in stanzas:
            if stanza is not None:
                self.session.send_after(self.fn, stanza)
