"""Presence availability (RFC 6121 §4): broadcast to one's own resources, directed
presence, and unavailable presence when a session ends.

The roster-based broadcast and subscriptions of RFC 6121 §3 are added by the roster
module through the ``presence-broadcast`` event.
"""

from __future__ import annotations

from typing import Any

from tercet.core.moduleapi import ModuleApi
from tercet.protocol.stanza import Element

META = {"summary": "Presence (RFC 6121 §4)", "stage": "stable", "xeps": []}
AVAILABILITY = (None, "unavailable")


def load(module: ModuleApi) -> None:
    def outbound_broadcast(event: Any) -> Any:
        session, stanza = event.origin, event.stanza
        if event.to is not None or session.kind != "c2s":
            return None
        ptype = stanza.attrs.get("type")
        if ptype not in AVAILABILITY:
            return None
        if ptype is None:
            initial = not session.available
            session.available = True
            session.priority = _priority(stanza)
            session.presence = stanza
            broadcast(session, stanza)
            if initial:
                module.fire("initial-presence", session)
        else:
            session.available = False
            session.presence = None
            broadcast(session, stanza)
            send_directed_unavailable(session, stanza)
        return True

    def broadcast(session: Any, stanza: Element) -> None:
        for other in module.sessions(session.username).values():
            if other.available or other is session:
                copy = stanza.copy()
                copy.attrs["to"] = other.full_jid
                other.send(copy)
        module.fire("presence-broadcast", (session, stanza))

    def send_directed_unavailable(session: Any, stanza: Element) -> None:
        for jid in sorted(session.directed):
            copy = stanza.copy()
            copy.attrs["to"] = jid
            module.route(session, copy)
        session.directed.clear()

    def outbound_directed(event: Any) -> Any:
        session = event.origin
        ptype = event.stanza.attrs.get("type")
        if event.to is None or session.kind != "c2s" or ptype not in AVAILABILITY:
            return None
        if ptype is None:
            session.directed.add(str(event.to))
        else:
            session.directed.discard(str(event.to))
        return None  # routing continues to the destination

    def inbound_full(event: Any) -> Any:
        to = event.to
        session = module.sessions(to.node, to.domain).get(to.resource)
        if session is not None:
            session.send(event.stanza)
        return True

    def inbound_bare(event: Any) -> Any:
        to = event.to
        for session in module.sessions(to.node, to.domain).values():
            if session.available and session.priority >= 0:
                session.send(event.stanza)
        return True

    def unbind(session: Any) -> None:
        if session.available:
            session.available = False
            unavailable = Element("presence", attrs={"type": "unavailable",
                                                     "from": session.full_jid})
            broadcast(session, unavailable)
            send_directed_unavailable(session, unavailable)
        return None

    module.hook("pre-presence/bare", outbound_broadcast, 100)
    for kind in ("bare", "full", "host"):
        module.hook(f"pre-presence/{kind}", outbound_directed, 90)
    module.hook("presence/full", inbound_full, -1)
    module.hook("presence/bare", inbound_bare, -1)
    module.hook("resource-unbind", unbind)


def _priority(stanza: Element) -> int:
    text = stanza.child_text("priority")
    try:
        value = int(text) if text else 0
    except ValueError:
        return 0
    return max(-128, min(127, value))  # RFC 6121 §4.7.2.3
