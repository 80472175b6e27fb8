"""Message Carbons (XEP-0280): every carbons-enabled resource of a user sees both sides of
the user's conversations.

A resource turns carbons on and off with ``<enable/>``/``<disable/>`` (§4, §5); the state
lives on its session. A message eligible for carbons (§6, :func:`eligible`) that a user
*receives* is copied, wrapped in ``<received><forwarded/></received>`` (§7, XEP-0297), to
that user's carbons-enabled resources that did not get the original under RFC 6121 §8.5
(the rules ``message.py`` applies); one the user *sends* is copied in ``<sent/>`` (§8) to
the user's carbons-enabled resources other than the sender. Copies come from the user's
bare JID and are written to the sessions directly, never routed.

Not copied: messages with ``<private xmlns='urn:xmpp:carbons:2'/>`` (§9: the receiving
server also removes ``<private/>`` before delivery) or the XEP-0334 hint ``<no-copy/>``.

Security (§11): a client accepts carbons only from its own bare JID, and the only
legitimate carbons are the ones this module writes to sessions. So a ``<sent/>`` or
``<received/>`` wrapper on any *routed* message (from a contact, a remote server, or a
client of this server) is a forgery: it is removed before delivery, and a message left
with nothing else in it is dropped.
"""

from __future__ import annotations

from typing import Any

from tercet.module import (
    ClientSession,
    Element,
    ModuleApi,
    Option,
    SessionReport,
    StanzaEvent,
    StreamFeaturesEvent,
)
from tercet.modules._sasllib import Bind2Inline

NS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_HINTS = "urn:xmpp:hints"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_CONFERENCE = "jabber:x:conference"  # XEP-0249 direct invitations

META = {"summary": "Message Carbons", "stage": "beta", "xeps": ["XEP-0280", "XEP-0297"]}
OPTIONS: list[Option[Any]] = []

# Forgeries are removed before any other module (blocking, archiving) sees the message;
# copies are made after every policy and archiving handler, just before delivery (-1).
STRIP_PRIORITY = 1000
COPY_PRIORITY = -0.5


def load(module: ModuleApi) -> None:
    carbons = Carbons(module)
    module.add_feature(NS)  # §3, in the server's disco#info
    for to_type in ("self", "host"):  # clients send it with no 'to' (self) or to the host
        module.hook(f"iq-set/{to_type}/{NS}:enable", carbons.on_enable)
        module.hook(f"iq-set/{to_type}/{NS}:disable", carbons.on_disable)
    for to_type in ("bare", "full"):
        module.hook(f"message/{to_type}", strip_forged, STRIP_PRIORITY)
        module.hook(f"pre-message/{to_type}", strip_forged, STRIP_PRIORITY)
        module.hook(f"message/{to_type}", carbons.on_received, COPY_PRIORITY)
        module.hook(f"pre-message/{to_type}", carbons.on_sent, COPY_PRIORITY)
    module.hook("pre-message/host", strip_forged, STRIP_PRIORITY)
    module.hook("message/host", strip_forged, STRIP_PRIORITY)
    # Bind2 (XEP-0386 §4): <enable/> inline in the bind request of a SASL2 login.
    module.hook("bind2-features", advertise_inline)
    module.hook(f"bind2-inline/{NS}:enable", enable_inline)
    module.hook("session-report", report)  # `c2s list` in the admin shell


def report(event: SessionReport) -> None:
    if enabled(event.session):
        event.features["carbons"] = True


def advertise_inline(event: StreamFeaturesEvent) -> None:
    event.features.tag("feature", attrs={"var": NS})
    return None


def enable_inline(event: Bind2Inline) -> bool:
    event.session.data["carbons"] = True
    return True


def enabled(session: ClientSession) -> bool:
    return bool(session.data.get("carbons"))


def eligible(stanza: Element, *, sent: bool) -> bool:
    """XEP-0280 §6 ("Messages Eligible for Carbons Delivery"), for a message a user
    ``sent`` or received: chat messages, normal messages with a body, invitations to
    rooms; never groupchat, errors (§6: that would need tracking what they answer),
    headlines, private or no-copy messages, nor what a room sends (private messages from
    occupants are copied by the room itself to every joined client), while a private
    message a user sends to an occupant is copied."""
    if stanza.find("private", NS) is not None or stanza.find("no-copy", NS_HINTS) is not None:
        return False
    mtype = stanza.get("type") or "normal"
    muc = stanza.find("x", NS_MUC_USER)
    invitation = stanza.find("x", NS_CONFERENCE) is not None or (
        muc is not None and muc.find("invite", NS_MUC_USER) is not None)
    if invitation:
        return mtype in ("normal", "chat")
    if muc is not None and not sent:
        return False
    if mtype == "chat":
        return True
    return mtype == "normal" and stanza.find("body") is not None


def wrap(direction: str, original: Element, bare: str, to: str) -> Element:
    """The copy of ``original`` for resource ``to`` (§7, §8): from the bare JID, same type,
    the original inside ``<direction><forwarded/></direction>`` (XEP-0297)."""
    attrs = {"from": bare, "to": to}
    if original.get("type"):
        attrs["type"] = original.attrs["type"]
    copy = Element("message", attrs=attrs)
    copy.tag(direction, NS).tag("forwarded", NS_FORWARD).append(original.copy())
    return copy


def strip_forged(event: StanzaEvent) -> bool | None:
    """§11: remove carbon wrappers from a routed message; drop it if nothing is left."""
    stanza = event.stanza
    # On every message: one plain loop (a generator expression here cost ~1 µs per
    # message in profiles), no list unless there is something to strip.
    for child in stanza.children:
        if isinstance(child, Element) and child.xmlns == NS:
            break
    else:
        return None
    forged = [c for c in stanza.elements()
              if c.xmlns == NS and c.name in ("sent", "received")]
    if not forged:
        return None
    for child in forged:
        stanza.remove(child)
    if next(stanza.elements(), None) is None:
        return True  # only a forged carbon: nothing to deliver
    return None


class Carbons:
    """The module on one host: enabling, and the two kinds of copies."""

    def __init__(self, module: ModuleApi) -> None:
        self.module = module
        # Bound once, as message.py does: both copy checks run once per delivery.
        self._sessions = module.sessions

    def on_enable(self, event: StanzaEvent) -> bool | None:
        return self.toggle(event, True)

    def on_disable(self, event: StanzaEvent) -> bool | None:
        return self.toggle(event, False)

    def toggle(self, event: StanzaEvent, on: bool) -> bool | None:
        session = event.origin
        if not isinstance(session, ClientSession) or not session.bound:
            return None  # the router answers: only local clients have carbons
        # §10.1: enabling (or disabling) twice is not an error.
        if on:
            session.data["carbons"] = True
        else:
            session.data.pop("carbons", None)
        session.send(event.stanza.reply())
        return True

    def on_received(self, event: StanzaEvent) -> None:
        """§7: copy to the recipient's enabled resources that do not get the original."""
        stanza, to = event.stanza, event.to
        if to is None or to.node is None or to.domain != self.module.host:
            return None
        if stanza.find("private", NS) is not None:
            stanza.remove_children("private", NS)  # §9: removed before delivery
            return None
        sessions = self._sessions(to.node)
        # The common case on the delivery path, checked before the costlier eligibility
        # rules: one resource, or none other with carbons on.
        if len(sessions) < 2 or not any(enabled(s) for s in sessions.values()):
            return None
        if not eligible(stanza, sent=False):
            return None
        getting = self.recipients(stanza, sessions, to.resource)
        if not getting:
            return None  # stored offline (or dropped): nobody saw it live
        bare = f"{to.node}@{to.domain}"
        for session in sessions.values():
            if (enabled(session) and session not in getting and session is not event.origin
                    and session.full_jid is not None):
                session.send(wrap("received", stanza, bare, session.full_jid))
        return None

    @staticmethod
    def recipients(stanza: Element, sessions: dict[str, ClientSession],
                   resource: str | None) -> list[ClientSession]:
        """Who gets the original under RFC 6121 §8.5 (as message.py delivers it) for the
        message types that are eligible: that resource, or the available resources with
        the highest non-negative priority."""
        if resource is not None and resource in sessions:
            return [sessions[resource]]
        available = [s for s in sessions.values() if s.available and s.priority >= 0]
        if not available:
            return []
        top = max(s.priority for s in available)
        return [s for s in available if s.priority == top]

    def on_sent(self, event: StanzaEvent) -> None:
        """§8: copy to the sender's other enabled resources."""
        stanza, origin, sender = event.stanza, event.origin, event.from_
        if not isinstance(origin, ClientSession) or origin.username is None:
            return None
        sessions = self._sessions(origin.username)
        if len(sessions) < 2 or sender is None:
            return None  # no other resource to copy to
        if not eligible(stanza, sent=True):
            return None
        bare = f"{origin.username}@{self.module.host}"
        to = event.to
        if to is None or (to.node, to.domain) == (origin.username, self.module.host):
            return None  # to the user's own account: the received copies cover it
        for session in sessions.values():
            if session is not origin and enabled(session) and session.full_jid is not None:
                session.send(wrap("sent", stanza, bare, session.full_jid))
        return None
