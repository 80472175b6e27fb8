"""The router: one stanza in, computed event names out (see docs/routing.md).

The router does no delivery itself. It stamps the sender, decides the destination kind
(``host``, ``bare``, ``full``, or ``self`` for an iq to one's own account), and fires

1. ``pre-<kind>/<to_type>`` on the *sender's* host, for stanzas from local clients
   (policy: blocking, privacy, rate limits; a non-None result stops routing);
2. ``<kind>/<to_type>`` on the *destination's* host when it is hosted here, or
   ``route/remote`` on the global bus when it is not (s2s hooks it).

Whatever is left unhandled is answered with the right stanza error, except errors, which
are never answered (RFC 6120 §8.3.1).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tercet.core.events import is_awaitable
from tercet.protocol.errors import StanzaError
from tercet.protocol.jid import JID, InvalidJID
from tercet.protocol.stanza import Element

if TYPE_CHECKING:
    from tercet.core.events import EventBus
    from tercet.core.host import Host
    from tercet.core.session import Session

log = logging.getLogger("tercet.router")

STANZA_KINDS = frozenset(("message", "presence", "iq"))
_TO_TYPES = ("host", "bare", "full", "self")
# (stanza name, destination kind) -> the two event names fired for it: made once here,
# not formatted for every stanza.
_EVENT_NAMES = {(name, kind): (f"pre-{name}/{kind}", f"{name}/{kind}")
                for name in STANZA_KINDS for kind in _TO_TYPES}
# Addresses seen in 'to' and 'from', parsed, with their normal form. Cleared when full,
# so a server with more addresses in use than this only parses some of them again.
JID_CACHE_SIZE = 8192


class StanzaEvent:
    """The payload of every stanza event: who sent it, what, and where it goes."""

    __slots__ = ("origin", "stanza", "to", "from_", "host", "to_type")

    def __init__(self, origin: Session, stanza: Element, to: JID | None, from_: JID | None,
                 host: Host | None, to_type: str) -> None:
        self.origin = origin
        self.stanza = stanza
        self.to = to  # parsed destination; None means "the sender's own account"
        self.from_ = from_
        self.host = host  # destination host object when hosted here
        self.to_type = to_type

    def __repr__(self) -> str:
        return f"<StanzaEvent {self.to_type} {self.stanza.name} from {self.from_}>"


class Router:
    def __init__(self, hosts: dict[str, Host], global_events: EventBus,
                 jid_parser: Callable[[str], JID] = JID.parse) -> None:
        self.hosts = hosts
        self.events = global_events
        self.parse_jid = jid_parser
        self._jids: dict[str, tuple[JID, str]] = {}

    def _jid(self, text: str) -> tuple[JID, str]:
        """``text`` parsed, and its normal form; raises InvalidJID (never cached)."""
        known = self._jids.get(text)
        if known is None:
            jid = self.parse_jid(text)
            normal = str(jid)
            # The key itself when it is already normal (the usual case): one string per
            # entry, not two equal ones (entries last while their session does).
            known = (jid, text if normal == text else normal)
            if len(self._jids) >= JID_CACHE_SIZE:
                self._jids.clear()
            self._jids[text] = known
        return known

    def route(self, origin: Session, stanza: Element) -> Any:
        """Route a stanza; returns an awaitable when a handler needs to wait."""
        name = stanza.name
        if name not in STANZA_KINDS:
            return None
        attrs = stanza.attrs
        to_text = attrs.get("to")
        to: JID | None = None
        if to_text:
            try:
                to, normal = self._jid(to_text)
            except InvalidJID:
                return self._bounce(origin, stanza, StanzaError("jid-malformed"))
            if normal != to_text:
                attrs["to"] = normal
        from_text = attrs.get("from")
        from_: JID | None = None
        if from_text:
            try:
                from_ = self._jid(from_text)[0]
            except InvalidJID:
                return None
        if to is None and name == "message" and from_ is not None:
            # RFC 6120 §10.3.1: a message without 'to' is handled as if addressed to the
            # sender's bare JID, so it reaches the account's resources (RFC 6121 §8.5).
            to = from_.bare
            stanza.attrs["to"] = str(to)
        dest = to if to is not None else (from_.bare if from_ is not None else None)
        if dest is None:
            return None
        to_type = "host" if dest.node is None else ("bare" if dest.resource is None else "full")
        if name == "iq" and to_type == "bare" and from_ is not None and (
            to is None or dest.same_bare(from_)
        ):
            to_type = "self"
        host = self.hosts.get(dest.domain)
        event = StanzaEvent(origin, stanza, to, from_, host, to_type)
        if origin.kind == "c2s" and origin.host is not None:
            result = origin.host.events.fire(_EVENT_NAMES[name, to_type][0], event)
            if result is not None:
                if is_awaitable(result):
                    return self._after_pre(result, event)
                return result
        return self._deliver(event)

    async def _after_pre(self, pending: Any, event: StanzaEvent) -> Any:
        result = await pending
        if result is not None:
            return result
        result = self._deliver(event)
        if is_awaitable(result):
            result = await result
        return result

    def _deliver(self, event: StanzaEvent) -> Any:
        stanza = event.stanza
        if event.host is not None:
            result = event.host.events.fire(_EVENT_NAMES[stanza.name, event.to_type][1], event)
            if result is None:
                return self._unhandled(event)
            if is_awaitable(result):
                return self._await_delivery(result, event)
            return result
        result = self.events.fire("route/remote", event)
        if result is None:
            return self._bounce(event.origin, stanza, StanzaError("remote-server-not-found"))
        return result

    async def _await_delivery(self, pending: Any, event: StanzaEvent) -> Any:
        result = await pending
        if result is None:
            result = self._unhandled(event)
            if is_awaitable(result):
                result = await result
        return result

    def _unhandled(self, event: StanzaEvent) -> Any:
        stanza = event.stanza
        if stanza.name == "iq" and stanza.attrs.get("type") in ("get", "set"):
            return self._bounce(event.origin, stanza, StanzaError("service-unavailable"))
        if stanza.name == "message" and stanza.attrs.get("type") != "groupchat":
            return self._bounce(event.origin, stanza, StanzaError("service-unavailable"))
        return True  # presence and groupchat: silently dropped (RFC 6121 §8)

    def _bounce(self, origin: Session, stanza: Element, error: StanzaError) -> Any:
        """Answer ``stanza`` with ``error``: straight to a client, routed otherwise (the
        routing may need awaiting: the result is then returned to be awaited)."""
        if stanza.attrs.get("type") in ("error", "result"):
            return True
        reply = stanza.error_reply(error)
        if origin.kind == "c2s":
            origin.send(reply)
            return True
        result = self.route(origin, reply)
        return result if is_awaitable(result) else True
