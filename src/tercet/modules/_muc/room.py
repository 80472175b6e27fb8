"""A room: its configuration, affiliations, occupants, subject and history, and everything
that happens inside it (XEP-0045 §7 occupant use cases, §8 moderator, §9 admin and §10
owner use cases). IQ parsing lives in ``admin.py``; the service (room creation, routing,
storage) in ``service.py``. The room raises :class:`StanzaError` for a refused request;
the caller turns it into the error reply.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tercet.modules._muc import tables
from tercet.modules._muc.api import (
    EV_BROADCAST_MESSAGE,
    EV_GET_HISTORY,
    EV_OCCUPANT_JOINED,
    EV_OCCUPANT_LEFT,
    NS_MUC,
    NS_MUC_REQUEST,
    NS_MUC_USER,
    Affiliation,
    BroadcastMessage,
    HistoryLimits,
    HistoryRequest,
    Occupant,
    OccupantEvent,
    Role,
    RoomConfig,
)
from tercet.modules._muc.history import History, parse_limits
from tercet.modules._muc.occupant import (
    NS_HATS,
    Actor,
    Destroy,
    OccupantState,
    View,
    addressed,
    user_x,
    without_room_elements,
)
from tercet.modules._muc.render import Shared
from tercet.protocol.dataforms import Field, FormError, build_form, parse_submit
from tercet.protocol.errors import StanzaError
from tercet.protocol.jid import JID
from tercet.protocol.stanza import Element

if TYPE_CHECKING:
    from tercet.modules._muc.service import Service

NS_CONFERENCE = "jabber:x:conference"
#: §7.8.2 allows several <invite/> in one message; more than this are refused, so one
#: stanza cannot make the room send an unbounded number of messages.
MAX_INVITES = 20
RESERVED_NICK_REASON = "This nickname is reserved"
#: Hats one user may wear in a room (XEP-0317 sets no number).
MAX_HATS = 32


@dataclass(slots=True)
class AffiliationData:
    """What an affiliation carries besides its name: a reserved nick (§7.10) and the
    reason given when it was set (§9.1, kept for the outcast list)."""

    nick: str | None = None
    reason: str | None = None


class Room:
    """One room of the service (implements ``api.Room``)."""

    def __init__(self, service: Service, jid: JID, config: RoomConfig) -> None:
        self.service = service
        self._jid = jid
        self._config = config
        self._affiliations: dict[str, Affiliation] = {}
        self.affiliation_data: dict[str, AffiliationData] = {}
        self._nick_owners: dict[str, str] = {}  # registered nick -> bare JID
        self._occupants: dict[str, OccupantState] = {}
        self._by_real: dict[str, OccupantState] = {}
        self._subject = ""
        self.subject_from: str | None = None  # occupant JID of who set it
        self._locked = False
        self.history = History(config.history_length)
        self.destroyed = False
        #: XEP-0317: bare JID -> hat URI -> title
        self.hats: dict[str, dict[str, str]] = {}

    # -- the api.Room surface ----------------------------------------------------------
    @property
    def jid(self) -> JID:
        return self._jid

    @property
    def config(self) -> RoomConfig:
        return self._config

    @property
    def subject(self) -> str:
        return self._subject

    @property
    def locked(self) -> bool:
        return self._locked

    @locked.setter
    def locked(self, value: bool) -> None:
        self._locked = value

    def affiliation(self, bare_jid: JID | str) -> Affiliation:
        bare = str(bare_jid.bare) if isinstance(bare_jid, JID) else bare_jid.partition("/")[0]
        if self.service.is_service_admin(bare):
            return "owner"
        return self._affiliations.get(bare, "none")

    def shown_affiliation(self, occupant: OccupantState) -> Affiliation:
        """The affiliation an occupant's presence shows: the room's own, or owner for a
        service admin as of the occupant's latest broadcast presence. A joiner is sent
        every occupant's presence (N² over N joins) and the server's roles answer at a
        cost, so a role given or taken while the user is in the room shows, to everyone
        alike, with its next presence; what the user may do is always asked afresh
        (``affiliation``)."""
        if occupant.service_admin:
            return "owner"
        return self._affiliations.get(occupant.bare, "none")

    def affiliations(self) -> dict[str, Affiliation]:
        return dict(self._affiliations)

    def occupants(self) -> Iterator[OccupantState]:
        return iter(list(self._occupants.values()))

    def occupant(self, nick: str) -> OccupantState | None:
        return self._occupants.get(nick)

    def occupant_by_real_jid(self, full_jid: JID | str) -> OccupantState | None:
        return self._by_real.get(str(full_jid))

    def send_to_occupant(self, occupant: Occupant, stanza: Element) -> None:
        self._send_to(occupant, stanza)
        self.service.flush_later()  # called from another module's handler

    def broadcast(self, stanza: Element) -> None:
        self._broadcast(stanza)
        self.service.flush_later()

    def _send_to(self, occupant: Occupant, stanza: Element) -> None:
        for real in occupant.real_jids():
            self.service.route(addressed(stanza, real))

    def _broadcast(self, stanza: Element) -> None:
        # Written out once for all (render.py), addressed as sent (outbox.py).
        self.service.route_copies([Shared.of(stanza)], [
            real for occupant in self._occupants.values() for real in occupant.sessions])

    def save(self) -> None:
        self.service.room_changed(self)

    # -- small queries -------------------------------------------------------------------
    @property
    def occupant_count(self) -> int:
        return len(self._occupants)

    @property
    def non_anonymous(self) -> bool:
        return self._config.whois == "anyone"

    def sees_jids(self, occupant: OccupantState) -> bool:
        """§7.2.3/§7.2.4: real JIDs go to moderators, or to all in non-anonymous rooms."""
        return self.non_anonymous or occupant.role == "moderator"

    def reserved_nick(self, bare: str) -> str | None:
        data = self.affiliation_data.get(bare)
        return None if data is None else data.nick

    def nick_owner(self, nick: str) -> str | None:
        """The bare JID that registered ``nick`` (§7.10), if any (an index: every join
        asks)."""
        return self._nick_owners.get(nick)

    def set_affiliation_raw(self, bare: str, affiliation: Affiliation,
                            data: AffiliationData | None = None) -> None:
        """Record an affiliation without side effects (loading, configuration)."""
        old = self.affiliation_data.pop(bare, None)
        if old is not None and old.nick is not None \
                and self._nick_owners.get(old.nick) == bare:
            del self._nick_owners[old.nick]
        if affiliation == "none":
            self._affiliations.pop(bare, None)
            return
        self._affiliations[bare] = affiliation
        if data is not None and (data.nick or data.reason):
            self.affiliation_data[bare] = data
            if data.nick is not None:
                self._nick_owners[data.nick] = bare

    def set_subject_raw(self, subject: str, by: str | None) -> None:
        self._subject = subject
        self.subject_from = by

    # -- sending presence --------------------------------------------------------------
    def publish(self, occupant: OccupantState, *, unavailable: bool = False,
                codes: tuple[str, ...] = (), self_codes: tuple[str, ...] = (),
                actor: Actor | None = None, reason: str | None = None,
                new_nick: str | None = None, payload: list[Element | str] | None = None,
                to_self: bool = True, role: Role | None = None) -> None:
        """Send ``occupant``'s presence to everyone in the room: each distinct view is
        built once and addressed per session (§7.2.3)."""
        occupant.changed()  # every change of an occupant is published: the cache goes
        occupant.service_admin = self.service.is_service_admin(occupant.bare)
        affiliation = self.shown_affiliation(occupant)
        plain = not unavailable and not codes and actor is None and reason is None \
            and new_nick is None and payload is None and role is None
        body = occupant.shown if payload is None else occupant.decorate(payload)
        views: dict[View, Element] = {}

        def view(kind: View) -> Element:
            if plain and kind != "self":  # what a joiner will be sent too: kept
                return self.current_presence(occupant, kind, affiliation)
            found = views.get(kind)
            if found is None:
                x = user_x(occupant, affiliation, kind, actor=actor, reason=reason,
                           new_nick=new_nick, role=role,
                           codes=codes + self_codes if kind == "self" else codes)
                attrs = {"from": str(occupant.jid)}
                if unavailable:
                    attrs["type"] = "unavailable"
                found = views[kind] = Shared("presence", attrs=attrs, children=[*body, x])
            return found

        broadcast_roles = self._config.presence_broadcast
        visible = (role or occupant.role) in broadcast_roles or unavailable \
            or occupant.role in broadcast_roles
        if visible:
            # Per view, the sessions that get it (sees_jids, inlined: once per occupant).
            full: list[str] = []
            anon: list[str] = []
            non_anonymous = self.non_anonymous
            for other in self._occupants.values():
                if other is not occupant:
                    (full if non_anonymous or other.role == "moderator" else anon).extend(
                        other.sessions)
            if full:
                self.service.route_copies([view("full")], full)
            if anon:
                self.service.route_copies([view("anon")], anon)
        if to_self:
            self.service.route_copies([view("self")], list(occupant.sessions))

    def current_presence(self, occupant: OccupantState, kind: View,
                         affiliation: Affiliation | None = None) -> Element:
        """``occupant``'s current presence as a recipient of ``kind`` sees it, without
        'to' (§7.2.3). Built once and kept until the occupant changes: a join sends
        every occupant's presence to the joiner, so N joins would build N² of them."""
        if affiliation is None:
            affiliation = self.shown_affiliation(occupant)
        key = (kind, affiliation, occupant.role)
        found = occupant.views.get(key)
        if found is None:
            x = user_x(occupant, affiliation, kind)
            found = occupant.views[key] = Shared(
                "presence", attrs={"from": str(occupant.jid)},
                children=[*occupant.shown, x])
        return found

    def presence_to(self, occupant: OccupantState, recipient: OccupantState,
                    real: JID | str) -> None:
        """One occupant's current presence to one session (the join of §7.2.3)."""
        kind: View = "full" if self.sees_jids(recipient) else "anon"
        self.service.route(addressed(self.current_presence(occupant, kind), real))

    # -- entering (§7.2) -----------------------------------------------------------------
    def check_entry(self, real: JID, nick: str, stanza: Element) -> Affiliation:
        """The checks of §7.2.5-§7.2.11, in the order a user is best told about them."""
        bare = str(real.bare)
        affiliation = self.affiliation(bare)
        if self._locked and affiliation != "owner":
            raise StanzaError("item-not-found", "This room is locked")  # §10.1.1
        if affiliation == "outcast":
            raise StanzaError("forbidden", "You are banned from this room")  # §7.2.8
        holder = self._occupants.get(nick)
        if holder is not None and str(holder.bare_jid) != bare:
            raise StanzaError("conflict", "That nickname is in use")  # §7.2.9
        owner = self.nick_owner(nick)
        if owner is not None and owner != bare:
            raise StanzaError("conflict", "That nickname is reserved")  # §7.10
        self._check_registered_nick(bare, nick)
        if self._config.members_only and tables.AFFILIATION_RANK[affiliation] < \
                tables.AFFILIATION_RANK["member"]:
            raise StanzaError("registration-required", "Members only")  # §7.2.7
        if self._config.password and affiliation != "owner":
            join = stanza.find("x", NS_MUC)
            given = None if join is None else join.child_text("password", NS_MUC)
            if given != self._config.password:
                raise StanzaError("not-authorized", "A password is required")  # §7.2.6
        if holder is None and affiliation not in ("owner", "admin") \
                and len(self._occupants) >= self.service.max_occupants(self):
            raise StanzaError("service-unavailable", "The room is full")  # §7.2.10
        return affiliation

    def _check_registered_nick(self, bare: str, nick: str) -> None:
        """§7.2.9: a room that enforces registered nicks refuses any other one."""
        if self._config.registered_nicks_only:
            registered = self.reserved_nick(bare)
            if registered is not None and registered != nick:
                raise StanzaError("not-acceptable", "Use your registered nickname")

    async def join(self, real: JID, nick: str, stanza: Element, *,
                   created: bool = False) -> None:
        """Enter the room as ``nick`` (§7.2); the checks have passed."""
        affiliation = self.affiliation(real.bare)
        occupant = self._occupants.get(nick)
        first = occupant is None
        if occupant is None:
            occupant = OccupantState(self._jid, nick, real.bare,
                                     tables.default_role(affiliation, self._config.moderated),
                                     self.service.occupant_id(self._jid, real.bare))
            occupant.hats = self.hats_element(str(real.bare))
            self._occupants[nick] = occupant
        occupant.sessions[str(real)] = real
        occupant.set_presence(stanza)
        self._by_real[str(real)] = occupant
        self._send_occupants_to(occupant, real)
        codes: list[str] = []
        if self.non_anonymous:
            codes.append("100")
        if self._config.logging:
            codes.append("170")
        if created:
            codes.append("201")
        self._announce_join(occupant, real, tuple(codes), first)
        await self._send_history(real, parse_limits(stanza.find("x", NS_MUC)))
        self._send_subject(real)
        self.service.notify(EV_OCCUPANT_JOINED, OccupantEvent(self, occupant, real))

    def _send_occupants_to(self, joiner: OccupantState, real: JID) -> None:
        kind: View = "full" if self.sees_jids(joiner) else "anon"
        everyone = joiner.role == "moderator"
        broadcast_roles = self._config.presence_broadcast
        self.service.route_copies([
            self.current_presence(other, kind) for other in self._occupants.values()
            if other is not joiner and (everyone or other.role in broadcast_roles)],
            [str(real)])
        if "none" in self._config.presence_broadcast:
            self._send_offline_members(joiner, real)

    def _send_offline_members(self, joiner: OccupantState, real: JID) -> None:
        """Prosody's "none" in presencebroadcast: members with a registered nick who are
        not in the room are shown as unavailable (§15.2 status 102)."""
        sees = self.sees_jids(joiner)
        for bare, data in list(self.affiliation_data.items()):
            nick = data.nick
            if nick is None or nick in self._occupants or bare == str(joiner.bare_jid):
                continue
            self.service.route(self.offline_presence(bare, nick, sees, real))

    def offline_presence(self, bare: str, nick: str, sees: bool, to: JID) -> Element:
        attrs = {"affiliation": self.affiliation(bare), "role": "none", "nick": nick}
        if sees:
            attrs["jid"] = bare
        x = Element("x", NS_MUC_USER)
        x.tag("item", attrs=attrs)
        return Element("presence", attrs={"from": f"{self._jid}/{nick}", "to": str(to),
                                          "type": "unavailable"}, children=[x])

    def _announce_join(self, occupant: OccupantState, real: JID, codes: tuple[str, ...],
                       first: bool) -> None:
        if first:
            self.publish(occupant, self_codes=codes, to_self=False)
        else:
            self.publish(occupant, to_self=False)  # another session shares the nick
        x = user_x(occupant, self.affiliation(occupant.bare_jid), "self", codes=codes)
        self.service.route(Element("presence", attrs={"from": str(occupant.jid),
                                                      "to": str(real)},
                                   children=[*occupant.shown, x]))
        if not first:
            # The other sessions learn that the nick now has one more session.
            x = user_x(occupant, self.affiliation(occupant.bare_jid), "self")
            own = Element("presence", attrs={"from": str(occupant.jid)},
                          children=[*occupant.shown, x])
            for other in occupant.real_jids():
                if other != real:
                    self.service.route(addressed(own, other))

    async def _send_history(self, real: JID, limits: HistoryLimits) -> None:
        request = HistoryRequest(self, limits)
        answered = await self.service.fire(EV_GET_HISTORY, request)
        messages = request.messages if answered else self.history.select(
            limits, str(self._jid), self.service.now())
        for message in messages:
            self.service.route(addressed(message, real))

    def _send_subject(self, real: JID) -> None:
        """§7.2.15: the subject (empty when none) after the history."""
        message = Element("message", attrs={
            "from": self.subject_from or str(self._jid), "to": str(real),
            "type": "groupchat"})
        message.text_tag("subject", self._subject) if self._subject else message.tag("subject")
        self.service.route(message)

    async def rejoin(self, occupant: OccupantState, real: JID, stanza: Element) -> None:
        """A session already in the room sends a join again (a client resyncing): it gets
        the whole room state again; the others see a presence update."""
        occupant.set_presence(stanza)
        self._send_occupants_to(occupant, real)
        self.publish(occupant, to_self=False)
        codes = ("100",) if self.non_anonymous else ()
        x = user_x(occupant, self.affiliation(occupant.bare_jid), "self", codes=codes)
        self.service.route(Element("presence", attrs={"from": str(occupant.jid),
                                                      "to": str(real)},
                                   children=[*occupant.shown, x]))
        await self._send_history(real, parse_limits(stanza.find("x", NS_MUC)))
        self._send_subject(real)

    def update_presence(self, occupant: OccupantState, stanza: Element) -> None:
        """§7.7: a change of availability is broadcast to everyone."""
        occupant.set_presence(stanza)
        self.publish(occupant)

    # -- nickname change (§7.6) ------------------------------------------------------------
    def change_nick(self, occupant: OccupantState, real: JID, nick: str,
                    stanza: Element) -> None:
        bare = str(occupant.bare_jid)
        holder = self._occupants.get(nick)
        owner = self.nick_owner(nick)
        if (holder is not None and holder is not occupant) or (owner and owner != bare):
            raise StanzaError("conflict", "That nickname is in use")
        self._check_registered_nick(bare, nick)
        if len(occupant.sessions) > 1:
            raise StanzaError("not-acceptable",
                              "A nickname shared by several sessions cannot be changed")
        self.publish(occupant, unavailable=True, codes=("303",), new_nick=nick,
                     payload=[])
        del self._occupants[occupant.nick]
        occupant.nick = nick
        occupant.jid = JID(self._jid.node, self._jid.domain, nick)
        occupant.set_presence(stanza)
        self._occupants[nick] = occupant
        self.publish(occupant)

    # -- leaving (§7.14) -----------------------------------------------------------------
    def leave(self, real: JID, stanza: Element | None, *, codes: tuple[str, ...] = (),
              status: str | None = None) -> None:
        """One session leaves; the nick leaves with its last session."""
        occupant = self._by_real.pop(str(real), None)
        if occupant is None:
            return
        payload: list[Element | str] = [] if stanza is None else [
            c for c in stanza.children if isinstance(c, Element)
            and c.name == "status" and c.xmlns == stanza.xmlns]
        if status is not None:
            payload = [Element("status", children=[status])]
        del occupant.sessions[str(real)]
        if self.service.stopping:
            # Every session is closing with the server, and each is told so by its stream
            # error: a departure broadcast to all who are left would make a stop O(N²).
            if not occupant.sessions:
                del self._occupants[occupant.nick]
            return
        if occupant.sessions:
            # Only this session goes: it gets its unavailable, the room an update.
            x = user_x(occupant, self.affiliation(occupant.bare_jid), "self", role="none",
                       sessions=[real])
            self.service.route(Element("presence", attrs={
                "from": str(occupant.jid), "to": str(real), "type": "unavailable"},
                children=[*payload, x]))
            self.publish(occupant, to_self=False)
        else:
            del self._occupants[occupant.nick]
            gone = OccupantState(self._jid, occupant.nick, occupant.bare_jid, "none",
                                 occupant.id_element)
            gone.hats = occupant.hats
            gone.sessions[str(real)] = real
            self.publish(gone, unavailable=True, codes=codes, payload=payload)
        self.service.notify(EV_OCCUPANT_LEFT, OccupantEvent(self, occupant, real))
        if not self._occupants:
            self.service.room_emptied(self)

    def remove_occupant(self, occupant: OccupantState, codes: tuple[str, ...], *,
                        actor: Actor | None = None, reason: str | None = None) -> None:
        """Remove every session of ``occupant`` (kick §8.2, ban §9.1, §9.3, §10.2)."""
        if self._occupants.get(occupant.nick) is not occupant:
            return
        del self._occupants[occupant.nick]
        for key in occupant.sessions:
            self._by_real.pop(key, None)
        self.publish(occupant, unavailable=True, codes=codes, actor=actor, reason=reason,
                     payload=[], role="none")
        for real in occupant.real_jids():
            self.service.notify(EV_OCCUPANT_LEFT, OccupantEvent(self, occupant, real))
        occupant.role = "none"
        if not self._occupants:
            self.service.room_emptied(self)

    def bounced(self, real: JID, error: Element | None) -> None:
        """An error from an occupant's session: it is gone (§15.2 status 333, issue 978)."""
        if self._by_real.get(str(real)) is None:
            return
        condition, text = "undefined-condition", None
        if error is not None:
            found = StanzaError.from_element(error)
            condition, text = found.condition, found.text
        status = "Kicked: " + condition.replace("-", " ") + (f": {text}" if text else "")
        self.leave(real, None, codes=("333",), status=status)

    # -- messages (§7.4, §7.5, §8.1) -------------------------------------------------------
    async def groupchat(self, real: JID, stanza: Element) -> None:
        occupant = self._by_real.get(str(real))
        if occupant is None:
            raise StanzaError("not-acceptable", "You are not in this room", type="cancel")  # §7.4
        subject = stanza.find("subject")
        if subject is not None and stanza.find("body") is None \
                and stanza.find("thread") is None:
            await self._change_subject(occupant, subject.text, stanza)
            return
        if "send_groupchat" not in tables.ROLE_PRIVILEGES[occupant.role]:
            raise StanzaError("forbidden", "You have no voice in this room")  # §7.4
        message = self._outgoing(occupant, stanza)
        keep = subject is not None or message.find("body") is not None
        if keep:
            event = BroadcastMessage(self, message, occupant)
            if await self.service.fire(EV_BROADCAST_MESSAGE, event):
                return
            self.history.add(message, self.service.now())
        self._broadcast(message)

    def _outgoing(self, occupant: OccupantState, stanza: Element) -> Element:
        attrs = {"from": str(occupant.jid), "type": "groupchat"}
        if "id" in stanza.attrs:
            attrs["id"] = stanza.attrs["id"]
        lang = stanza.attrs.get("xml:lang")
        if lang:
            attrs["xml:lang"] = lang
        children = occupant.with_id(without_room_elements(stanza.children))
        return Element("message", attrs=attrs, children=children)

    async def _change_subject(self, occupant: OccupantState, text: str, stanza: Element) -> None:
        privileges = tables.ROLE_PRIVILEGES[occupant.role]
        allowed = occupant.role == "moderator" or (
            self._config.change_subject and "modify_subject" in privileges)
        if not allowed:
            raise StanzaError("forbidden", "You may not change the subject")  # §8.1
        message = self._outgoing(occupant, stanza)
        event = BroadcastMessage(self, message, occupant)
        if await self.service.fire(EV_BROADCAST_MESSAGE, event):
            return
        self._subject = text
        self.subject_from = str(occupant.jid) if text else None
        self._broadcast(message)
        self.save()

    def private_message(self, real: JID, nick: str, stanza: Element) -> None:
        """§7.5: a message to an occupant JID goes to that occupant's sessions."""
        sender = self._by_real.get(str(real))
        if stanza.attrs.get("type") == "error":
            if sender is not None and nick in self._occupants:
                self._forward_pm(sender, self._occupants[nick], stanza)
            return
        if sender is None:
            raise StanzaError("not-acceptable", "You are not in this room", type="cancel")
        if stanza.attrs.get("type") == "groupchat":
            raise StanzaError("bad-request", "Groupchat messages go to the room")
        target = self._occupants.get(nick)
        if target is None:
            raise StanzaError("item-not-found", "No such occupant")
        if not self._may_pm(sender):
            raise StanzaError("forbidden", "Private messages are not allowed here")
        self._forward_pm(sender, target, stanza)

    def _may_pm(self, sender: OccupantState) -> bool:
        allow = self._config.allow_pm
        if allow == "none":
            return False
        if allow == "moderators":
            return sender.role == "moderator"
        if allow == "participants":
            return sender.role in ("moderator", "participant")
        return "send_pm" in tables.ROLE_PRIVILEGES[sender.role]

    def _forward_pm(self, sender: OccupantState, target: OccupantState,
                    stanza: Element) -> None:
        attrs = dict(stanza.attrs)
        attrs["from"] = str(sender.jid)
        children = sender.with_id(without_room_elements(stanza.children))
        message = Element("message", stanza.xmlns, attrs, children)
        message.tag("x", NS_MUC_USER)  # §7.5: marks it as coming through the room
        self._send_to(target, message)

    # -- invitations (§7.8.2) --------------------------------------------------------------
    def invite(self, real: JID, stanza: Element, invites: list[Element]) -> None:
        if len(invites) > MAX_INVITES:
            raise StanzaError("policy-violation", "Too many invitations in one message")
        sender = self._by_real.get(str(real))
        affiliation = self.affiliation(real.bare)
        if sender is None and affiliation not in ("owner", "admin"):
            raise StanzaError("not-acceptable", "You are not in this room", type="cancel")
        if self._config.members_only and affiliation not in ("owner", "admin") \
                and not self._config.allow_invites:
            raise StanzaError("forbidden", "Only admins may invite to this room")
        if sender is not None and "invite" not in tables.ROLE_PRIVILEGES[sender.role]:
            raise StanzaError("forbidden", "You may not invite")
        by = str(sender.jid) if sender is not None and not self.non_anonymous \
            else str(real.bare)
        for invite in invites:
            self._send_invite(by, stanza, invite)
            if self._config.members_only:
                self._invitee_becomes_member(invite.get("to") or "")

    def _send_invite(self, by: str, stanza: Element, invite: Element) -> None:
        to = invite.get("to")
        if not to:
            raise StanzaError("bad-request", "An invitation needs a 'to'")
        reason = invite.child_text("reason", NS_MUC_USER)
        attrs = {"from": str(self._jid), "to": to}
        if "id" in stanza.attrs:
            attrs["id"] = stanza.attrs["id"]
        message = Element("message", attrs=attrs)
        x = message.tag("x", NS_MUC_USER)
        x.tag("invite", attrs={"from": by}).text_tag("reason", reason or "")
        if self._config.password:
            x.text_tag("password", self._config.password)
        body = f"{by} invited you to the room {self._jid}"
        message.text_tag("body", body + (f" ({reason})" if reason else ""))
        legacy = {"jid": str(self._jid)}
        if reason:
            legacy["reason"] = reason
        if self._config.password:
            legacy["password"] = self._config.password
        message.tag("x", NS_CONFERENCE, legacy)
        self.service.route(message)

    def _invitee_becomes_member(self, to: str) -> None:
        """§7.8.2: in a members-only room an invitation adds the invitee to the member
        list (if it has no affiliation yet)."""
        try:
            bare = str(self.service.parse_jid(to).bare)
        except ValueError:
            return
        if self.affiliation(bare) == "none":
            self.set_affiliation_raw(bare, "member")
            self.save()

    def decline(self, real: JID, decline: Element) -> None:
        to = decline.get("to")
        if not to:
            raise StanzaError("bad-request", "A decline needs a 'to'")
        message = Element("message", attrs={"from": str(self._jid), "to": to})
        out = message.tag("x", NS_MUC_USER).tag("decline", attrs={"from": str(real.bare)})
        reason = decline.child_text("reason", NS_MUC_USER)
        if reason is not None:
            out.text_tag("reason", reason)
        self.service.route(message)

    # -- voice requests (§7.13, §8.6) -----------------------------------------------------------
    def voice_request(self, real: JID, form: Element) -> None:
        """A visitor's request goes to the moderators as a form; a moderator's submitted
        form with ``muc#request_allow`` grants voice."""
        occupant = self._by_real.get(str(real))
        if occupant is None:
            raise StanzaError("not-acceptable", "You are not in this room", type="cancel")
        try:
            submitted = parse_submit(form)
            allow = submitted.get_bool("muc#request_allow")
            nick = submitted.get_text("muc#roomnick")
        except FormError:
            raise StanzaError("bad-request", "The request form does not fit") from None
        if occupant.role == "moderator" and allow is not None:
            if allow and nick:
                self.set_role(real, nick, "participant", None)
            return
        if occupant.role != "visitor":
            return  # §7.13: only visitors ask for voice
        fields = [Field("muc#role", "list-single", "Requested role", ("participant",),
                        (("participant", None),)),
                  Field("muc#jid", "jid-single", "User ID", (str(real),)),
                  Field("muc#roomnick", "text-single", "Room Nickname", (occupant.nick,)),
                  Field.boolean("muc#request_allow", False,
                                "Grant voice to this person?")]
        message = Element("message", attrs={"from": str(self._jid)})
        message.append(build_form(fields, title="Voice request",
                                  instructions="To approve this request for voice, select "
                                               "the checkbox and submit this form.",
                                  form_type=NS_MUC_REQUEST))
        for moderator in list(self._occupants.values()):
            if moderator.role == "moderator":
                self._send_to(moderator, message)

    # -- roles (§8.2-§8.5, §9.6-§9.7) -------------------------------------------------------
    def set_role(self, actor: JID | None, nick: str, role: Role,
                 reason: str | None) -> None:
        target = self._occupants.get(nick)
        if target is None:
            raise StanzaError("item-not-found", "No occupant with that nickname")
        actor_occupant = None if actor is None else self._by_real.get(str(actor))
        if actor is not None:
            actor_aff = self.affiliation(actor.bare)
            actor_role: Role = "none" if actor_occupant is None else actor_occupant.role
            if actor_aff == "owner" and actor_occupant is None:
                actor_role = "moderator"  # an owner outside the room still owns it
            if not tables.may_change_role(actor_role, actor_aff,
                                          self.affiliation(target.bare_jid),
                                          target.role, role):
                raise StanzaError("not-allowed", "You may not change that role")
        by = self._actor(actor)
        if role == "none":
            self.remove_occupant(target, ("307",), actor=by, reason=reason)
            return
        target.role = role
        self.publish(target, actor=by, reason=reason)

    def _actor(self, actor: JID | None) -> Actor | None:
        if actor is None:
            return None
        occupant = self._by_real.get(str(actor))
        return Actor(None if occupant is None else occupant.nick, str(actor))

    # -- affiliations (§9, §10.3-§10.8) ----------------------------------------------------
    def check_affiliation_change(self, actor: JID | None, bare: str,
                                 affiliation: Affiliation) -> None:
        if actor is None:
            return
        actor_aff = self.affiliation(actor.bare)
        current = self.affiliation(bare)
        if not tables.may_change_affiliation(actor_aff, current, affiliation):
            raise StanzaError("not-allowed", "You may not change that affiliation")
        if current == "owner" and affiliation != "owner" and \
                not any(a == "owner" for b, a in self._affiliations.items() if b != bare):
            raise StanzaError("conflict", "A room needs an owner")  # §10.5

    def set_affiliation(self, actor: JID | None, bare: str, affiliation: Affiliation,
                        reason: str | None = None, nick: str | None = None,
                        *, keep_nick: bool = True) -> None:
        """Change an affiliation and what follows from it (§9.1-§9.8, §10.3-§10.8)."""
        self.check_affiliation_change(actor, bare, affiliation)
        if nick is not None:
            owner = self.nick_owner(nick)
            if owner is not None and owner != bare:
                raise StanzaError("conflict", "That nickname is reserved by someone else")
        before = self._affiliations.get(bare, "none")
        old_nick = self.reserved_nick(bare) if keep_nick else None
        if affiliation == "outcast":  # a banned user's nick is free again
            nick = old_nick = None
        data = AffiliationData(nick if nick is not None else old_nick, reason)
        self.set_affiliation_raw(bare, affiliation, data)
        if nick is not None:
            self._evict_nick_squatter(nick, bare)
        self._after_affiliation(actor, bare, before, affiliation, reason)
        self.save()

    def _evict_nick_squatter(self, nick: str, bare: str) -> None:
        holder = self._occupants.get(nick)
        if holder is not None and str(holder.bare_jid) != bare:
            self.remove_occupant(holder, ("307",), reason=RESERVED_NICK_REASON)

    def _after_affiliation(self, actor: JID | None, bare: str, before: Affiliation,
                           after: Affiliation, reason: str | None) -> None:
        affected = [o for o in self._occupants.values() if str(o.bare_jid) == bare]
        by = self._actor(actor)
        if not affected:
            self._notify_affiliation(bare, after, reason)
            return
        for occupant in affected:
            if after == "outcast":
                self.remove_occupant(occupant, ("301",), actor=by, reason=reason)
            elif self._config.members_only and tables.AFFILIATION_RANK[after] < \
                    tables.AFFILIATION_RANK["member"]:
                self.remove_occupant(occupant, ("321",), actor=by, reason=reason)
            else:
                if before != after:
                    occupant.role = tables.default_role(after, self._config.moderated)
                self.publish(occupant, actor=by, reason=reason)

    def _notify_affiliation(self, bare: str, affiliation: Affiliation,
                            reason: str | None) -> None:
        """An affiliation change of someone not in the room is told to those who may see
        real JIDs (§9.1, §9.3: the room's occupants learn of the ban)."""
        x = Element("x", NS_MUC_USER)
        if affiliation == "outcast":
            x.tag("status", attrs={"code": "301"})
        item = x.tag("item", attrs={"jid": bare, "affiliation": affiliation})
        if reason:
            item.text_tag("reason", reason)
        message = Element("message", attrs={"from": str(self._jid)}, children=[x])
        for occupant in list(self._occupants.values()):
            if self.sees_jids(occupant):
                self._send_to(occupant, message)

    def affiliation_list(self, affiliation: Affiliation) -> list[tuple[str, AffiliationData]]:
        return sorted((bare, self.affiliation_data.get(bare, AffiliationData()))
                      for bare, aff in self._affiliations.items() if aff == affiliation)

    # -- registration (§7.10) ---------------------------------------------------------------
    def register_nick(self, real: JID, nick: str) -> None:
        bare = str(real.bare)
        affiliation = self._affiliations.get(bare, "none")
        owner = self.nick_owner(nick)
        if owner is not None and owner != bare:
            raise StanzaError("conflict", "That nickname is reserved by someone else")
        holder = self._occupants.get(nick)
        if holder is not None and str(holder.bare_jid) != bare:
            raise StanzaError("conflict", "That nickname is in use")
        if affiliation == "none":
            affiliation = "member"
        self.set_affiliation_raw(bare, affiliation, AffiliationData(
            nick, self.affiliation_data.get(bare, AffiliationData()).reason))
        for occupant in [o for o in self._occupants.values() if str(o.bare_jid) == bare]:
            self.publish(occupant)
        self.save()

    def unregister(self, real: JID) -> None:
        """§7.10.? (cancel registration): the user's affiliation is removed."""
        bare = str(real.bare)
        before = self._affiliations.get(bare, "none")
        if before == "outcast":
            raise StanzaError("forbidden", "Banned users cannot cancel")
        if before == "owner":
            self.check_affiliation_change(real, bare, "none")
        self.set_affiliation_raw(bare, "none")
        self._after_affiliation(None, bare, before, "none", None)
        self.save()

    # -- destruction (§10.9) -----------------------------------------------------------------
    def destroy(self, destroy: Destroy) -> None:
        self.destroyed = True
        for occupant in list(self._occupants.values()):
            affiliation = self.affiliation(occupant.bare_jid)
            x = user_x(occupant, affiliation, "self", destroy=destroy, role="none")
            stanza = Element("presence", attrs={"from": str(occupant.jid),
                                                "type": "unavailable"}, children=[x])
            self._send_to(occupant, stanza)
        self._occupants.clear()
        self._by_real.clear()

    def shutdown(self) -> None:
        """§15.2 status 332: the service goes away; every occupant is told it left."""
        for occupant in list(self._occupants.values()):
            x = user_x(occupant, self.affiliation(occupant.bare_jid), "self",
                       codes=("332",), role="none")
            stanza = Element("presence", attrs={"from": str(occupant.jid),
                                                "type": "unavailable"}, children=[x])
            self._send_to(occupant, stanza)

    # -- hats (XEP-0317) ----------------------------------------------------------------------
    def hats_element(self, bare: str) -> Element | None:
        """The ``<hats/>`` for a user's presences, or None when it wears none."""
        hats = self.hats.get(bare)
        if not hats:
            return None
        el = Element("hats", NS_HATS)
        for uri, title in sorted(hats.items()):
            el.tag("hat", attrs={"uri": uri, "title": title})
        return el

    def set_hat(self, bare: str, uri: str, title: str, wear: bool) -> None:
        """Put a hat on (``don``) or take it off (``doff``) a user; its presence in the
        room is sent again with the hats it now wears."""
        hats = self.hats.setdefault(bare, {})
        if wear:
            if uri not in hats and len(hats) >= MAX_HATS:
                raise StanzaError("resource-constraint", "Too many hats")
            hats[uri] = title
        elif hats.pop(uri, None) is None:
            raise StanzaError("item-not-found", "The user does not wear that hat")
        if not hats:
            del self.hats[bare]
        element = self.hats_element(bare)
        for occupant in [o for o in self._occupants.values() if str(o.bare_jid) == bare]:
            occupant.hats = element
            self.publish(occupant)
        self.save()

    # -- configuration side effects (§10.2) ------------------------------------------------
    def after_config(self, codes: list[str]) -> None:
        """Announce a configuration change and apply what it implies to occupants."""
        self.history.resize(self._config.history_length)
        if codes:
            message = Element("message", attrs={"from": str(self._jid),
                                                "type": "groupchat"})
            x = message.tag("x", NS_MUC_USER)
            for code in codes:
                x.tag("status", attrs={"code": code})
            self._broadcast(message)
        if self._config.members_only:
            for occupant in list(self._occupants.values()):
                aff = self.affiliation(occupant.bare_jid)
                if tables.AFFILIATION_RANK[aff] < tables.AFFILIATION_RANK["member"]:
                    self.remove_occupant(occupant, ("322",))

    # -- probes (Prosody #1535) --------------------------------------------------------------
    def probe(self, real: JID, nick: str) -> None:
        asker = self._by_real.get(str(real))
        if asker is None:
            raise StanzaError("not-acceptable", "You are not in this room", type="cancel")
        target = self._occupants.get(nick)
        if target is not None:
            self.presence_to(target, asker, real)
            return
        owner = self.nick_owner(nick)
        if owner is None:
            raise StanzaError("item-not-found", "No occupant with that nickname")
        self.service.route(self.offline_presence(owner, nick, self.sees_jids(asker), real))

    # -- persistence ---------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The room as JSON data (store.py writes it)."""
        config = {name: getattr(self._config, name)
                  for name in RoomConfig.__slots__}
        config["presence_broadcast"] = list(self._config.presence_broadcast)
        config["get_member_list"] = list(self._config.get_member_list)
        return {
            "config": config,
            "affiliations": dict(self._affiliations),
            "affiliation_data": {bare: {"nick": d.nick, "reason": d.reason}
                                 for bare, d in self.affiliation_data.items()},
            "subject": self._subject,
            "subject_from": self.subject_from,
            "locked": self._locked,
            "hats": {bare: dict(hats) for bare, hats in self.hats.items()},
        }

