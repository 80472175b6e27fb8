"""Occupants and the ``<x xmlns='…muc#user'/>`` of their presence (XEP-0045 §7.2, §15.2).

One occupant is one nickname; several sessions (full JIDs) of the same bare JID may share
it (Prosody's multi-session nicks). The presence shown for the occupant is the last one a
session sent. What a recipient sees of an occupant depends on who it is (§5.1.1 Table 1,
§7.2.3-§7.2.4): itself (its real JIDs and status 110), a recipient allowed to see real
JIDs (moderators, or anyone in a non-anonymous room: real JIDs and the actor's JID), or
anyone else (no real JIDs).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

from tercet.modules._muc.api import NS_MUC, NS_MUC_USER, Affiliation, Role
from tercet.modules._muc.render import Addressed, Shared
from tercet.protocol.jid import JID
from tercet.protocol.stanza import Element

View = Literal["self", "full", "anon"]
#: What a cached presence of an occupant depends on besides the occupant's own state:
#: the view, and the affiliation and role it shows.
ViewKey: TypeAlias = tuple[View, Affiliation, Role]
NS_OCCUPANT_ID = "urn:xmpp:occupant-id:0"
NS_HATS = "urn:xmpp:hats:0"
# Elements a client may not put in what the room sends on its behalf: the room's own
# protocol elements, occupant ids (XEP-0421 §4: the room removes forged ones) and hats
# (XEP-0317: the room says who wears which).
_ROOM_NAMESPACES = frozenset((NS_MUC, NS_MUC_USER, NS_OCCUPANT_ID, NS_HATS))


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made a change (§8.2, §9.1): shown by nick, and by real JID to those who see
    real JIDs."""

    nick: str | None
    jid: str | None


@dataclass(frozen=True, slots=True)
class Destroy:
    """The ``<destroy/>`` of §10.9: an alternate venue, its password and a reason."""

    jid: str | None = None
    reason: str | None = None
    password: str | None = None

    def element(self, ns: str) -> Element:
        el = Element("destroy", ns, {"jid": self.jid} if self.jid else None)
        if self.reason is not None:
            el.text_tag("reason", self.reason)
        if self.password is not None:
            el.text_tag("password", self.password)
        return el


class OccupantState:
    """A nickname in a room and the sessions behind it."""

    __slots__ = ("bare", "bare_jid", "hats", "id_element", "jid", "nick", "payload", "role",
                 "service_admin", "sessions", "views")

    def __init__(self, room_jid: JID, nick: str, bare_jid: JID, role: Role,
                 id_element: Element | None = None) -> None:
        self.nick = nick
        self.jid = JID(room_jid.node, room_jid.domain, nick)
        self.bare_jid = bare_jid
        self.bare = str(bare_jid)  # affiliations are keyed by it: asked per presence sent
        self.role: Role = role
        #: whether the user was a service admin (so an owner, §5.2) when the room last
        #: published its presence (see ``Room.shown_affiliation``)
        self.service_admin = False
        self.sessions: dict[str, JID] = {}
        #: XEP-0421 ``<occupant-id/>``: stable per room and real bare JID
        self.id_element = id_element
        #: XEP-0317 ``<hats/>`` the user wears in this room (None: none)
        self.hats: Element | None = None
        #: the payload of the last presence a session sent (room elements removed)
        self.payload: list[Element | str] = []
        #: the occupant's current presence as others see it, without 'to', per view
        #: (the N presences a joiner receives are each built once, not once per joiner);
        #: dropped by ``changed`` whenever the presence, nick, role, hats or sessions change
        self.views: dict[ViewKey, Element] = {}

    def changed(self) -> None:
        """Forget the cached presences (the room calls it before it publishes a change)."""
        self.views.clear()

    def real_jids(self) -> Iterable[JID]:
        return self.sessions.values()

    def set_presence(self, stanza: Element) -> None:
        self.payload = presence_payload(stanza)
        self.changed()

    @property
    def shown(self) -> list[Element | str]:
        """What the room's presences for this occupant carry besides the muc#user x."""
        return self.decorate(self.payload)

    def decorate(self, payload: list[Element | str]) -> list[Element | str]:
        """``payload`` with the room's own additions: the occupant id, the hats."""
        extra = [e for e in (self.id_element, self.hats) if e is not None]
        return [*payload, *extra] if extra else payload

    def with_id(self, payload: list[Element | str]) -> list[Element | str]:
        """``payload`` and the occupant's id (XEP-0421 §4: in every presence and message
        the room sends for the occupant)."""
        return payload if self.id_element is None else [*payload, self.id_element]

    def __repr__(self) -> str:
        return f"<Occupant {self.jid} {self.role} {len(self.sessions)} session(s)>"


def presence_payload(stanza: Element) -> list[Element | str]:
    """A presence's children without the MUC protocol elements (the room adds its own)."""
    return [c for c in stanza.children
            if isinstance(c, Element) and c.xmlns not in _ROOM_NAMESPACES]


def without_room_elements(children: list[Element | str]) -> list[Element | str]:
    """A message's children minus muc#user elements and forged occupant ids."""
    return [c for c in children if isinstance(c, Element)
            and c.xmlns not in (NS_MUC_USER, NS_OCCUPANT_ID)]


def user_x(occupant: OccupantState, affiliation: Affiliation, view: View, *,
           codes: Sequence[str] = (), actor: Actor | None = None,
           reason: str | None = None, new_nick: str | None = None,
           role: Role | None = None, destroy: Destroy | None = None,
           sessions: Iterable[JID] | None = None) -> Element:
    """The muc#user ``<x/>`` describing ``occupant`` to a recipient of kind ``view``:
    destroy, status codes, the item(s), then 110 for the occupant itself."""
    x = Element("x", NS_MUC_USER)
    if destroy is not None:
        x.append(destroy.element(NS_MUC_USER))
    for code in codes:
        x.tag("status", attrs={"code": code})
    attrs: dict[str, str] = {"affiliation": affiliation, "role": role or occupant.role}
    if new_nick is not None:
        attrs["nick"] = new_nick
    item = Element("item", NS_MUC_USER, attrs)
    if actor is not None:
        actor_attrs = {}
        if actor.nick is not None:
            actor_attrs["nick"] = actor.nick
        if actor.jid is not None and view == "full":
            actor_attrs["jid"] = actor.jid
        if actor_attrs:
            item.tag("actor", attrs=actor_attrs)
    if reason is not None:
        item.text_tag("reason", reason)
    if view == "anon":
        x.append(item)
    else:
        for real in (occupant.real_jids() if sessions is None else sessions):
            x.append(Element("item", NS_MUC_USER, {**item.attrs, "jid": str(real)},
                             item.children))
    if view == "self":
        x.tag("status", attrs={"code": "110"})
    return x


def addressed(stanza: Element, to: JID | str) -> Element:
    """``stanza`` for one recipient: a new top-level element sharing the children (the
    tree below is never changed after it is built, so copies need not be deep); a
    :class:`Shared` one's copies share its rendered XML too."""
    if isinstance(stanza, Shared):
        return Addressed(stanza, str(to))
    return Element(stanza.name, stanza.xmlns, {**stanza.attrs, "to": str(to)},
                   list(stanza.children))
