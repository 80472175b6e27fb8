"""The MUC service of one component host (XEP-0045 §6): its rooms, room creation, and the
dispatch of presence and messages to rooms (implements ``api.MucService``).

Stanzas reach the service through the component host's events (``muc.py`` hooks them);
every outgoing stanza is routed from the component host, so the user's server applies
its own delivery rules (blocking, carbons, offline storage do not apply to groupchat).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from tercet.modules._muc.api import (
    EV_ROOM_CREATED,
    EV_ROOM_DESTROYED,
    NS_MUC,
    NS_MUC_REQUEST,
    NS_MUC_USER,
    RoomConfig,
    RoomEvent,
)
from tercet.modules._muc.config import Limits, clamp
from tercet.modules._muc.occupant import NS_OCCUPANT_ID, Destroy
from tercet.modules._muc.room import Room
from tercet.protocol.dataforms import find_form
from tercet.protocol.errors import StanzaError
from tercet.protocol.jid import JID, InvalidJID
from tercet.protocol.stanza import Element

Restriction = Literal["none", "local", "admin"]


@dataclass(frozen=True, slots=True)
class Settings:
    """The service's options (declared in ``muc.py``)."""

    restrict_creation: Restriction = "none"
    defaults: RoomConfig = field(default_factory=RoomConfig)
    max_rooms: int = 10_000
    max_occupants: int = 1_000
    max_history: int = 50
    max_affiliations: int = 10_000
    max_nick_bytes: int = 1023
    name: str = "Chatrooms"


class Service:
    """The rooms of one MUC component and what happens between them and the world."""

    def __init__(self, host: str, settings: Settings, *,
                 route: Callable[[Element], None],
                 route_copies: Callable[[list[Element], list[str]], None],
                 fire: Callable[[str, object], Awaitable[Any]],
                 notify: Callable[[str, object], None],
                 now: Callable[[], float],
                 is_admin: Callable[[str], bool],
                 may_create_rooms: Callable[[str], bool],
                 is_local_user: Callable[[str], bool],
                 parse_jid: Callable[[str], JID],
                 on_change: Callable[[Room], None],
                 on_destroy: Callable[[Room], None],
                 flush_later: Callable[[], None]) -> None:
        self._host = host
        self.settings = settings
        self.route = route
        #: (stanzas, full JIDs): one stanza for many or many for one, addressed as they
        #: are sent (outbox.py)
        self.route_copies = route_copies
        self.fire = fire  # awaited: handlers answer (history, broadcast, disco)
        self.notify = notify  # not awaited: observers (created, joined, left, destroyed)
        self.now = now
        self._is_admin = is_admin
        self._may_create_rooms = may_create_rooms
        self._is_local_user = is_local_user
        self.parse_jid = parse_jid
        self._on_change = on_change
        self._on_destroy = on_destroy
        #: deliver what was queued outside the MUC's own handlers (see outbox.py)
        self.flush_later = flush_later
        self._rooms: dict[str, Room] = {}
        #: The server is stopping: sessions leaving rooms are not broadcast (each closing
        #: session would tell everyone still there, O(N²) for a full room).
        self.stopping = False
        #: keys occupant ids; replaced by the stored one at load (see muc.py)
        self.secret = secrets.token_bytes(32)

    # -- the api.MucService surface -------------------------------------------------------
    @property
    def host(self) -> str:
        return self._host

    def get_room(self, jid_or_node: JID | str) -> Room | None:
        if isinstance(jid_or_node, JID):
            if jid_or_node.domain != self._host:
                return None
            node = jid_or_node.node
        else:
            node = jid_or_node
            if "@" in node:
                try:
                    return self.get_room(self.parse_jid(node))
                except InvalidJID:
                    return None
        return None if node is None else self._rooms.get(node)

    def rooms(self) -> Iterator[Room]:
        return iter(list(self._rooms.values()))

    # -- what rooms ask of the service ----------------------------------------------------
    def is_service_admin(self, bare: str) -> bool:
        return self._is_admin(bare)

    def occupant_id(self, room: JID, bare: JID) -> Element:
        """XEP-0421 §4: the same id for the same user in the same room, revealing
        nothing about the user (a keyed hash with the service's secret)."""
        digest = hmac.new(self.secret, f"{room}\0{bare}".encode(), hashlib.sha256)
        value = base64.urlsafe_b64encode(digest.digest()[:18]).decode()
        return Element("occupant-id", NS_OCCUPANT_ID, {"id": value})

    def max_occupants(self, room: Room) -> int:
        return min(room.config.max_users or self.settings.max_occupants,
                   self.settings.max_occupants)

    @property
    def limits(self) -> Limits:
        return Limits(self.settings.max_occupants, self.settings.max_history)

    def room_changed(self, room: Room) -> None:
        if not room.destroyed:
            self._on_change(room)

    def room_emptied(self, room: Room) -> None:
        """A temporary room goes with its last occupant (§10.1, §16.1)."""
        if not room.config.persistent and not room.destroyed:
            self.remove_room(room)

    # -- rooms -----------------------------------------------------------------------------
    def new_room(self, node: str, creator: str | None) -> Room:
        """A room with the service's defaults (§10.1); ``creator`` becomes its owner."""
        config = replace(self.settings.defaults, extra={})
        clamp(config, self.limits)
        room = Room(self, JID(node, self._host), config)
        if creator is not None:
            room.set_affiliation_raw(creator, "owner")
        self._rooms[node] = room
        return room

    def add_room(self, room: Room) -> None:
        self._rooms[room.jid.node or ""] = room

    def remove_room(self, room: Room) -> None:
        room.destroyed = True
        if self._rooms.get(room.jid.node or "") is room:
            del self._rooms[room.jid.node or ""]
        self._on_destroy(room)
        self.notify(EV_ROOM_DESTROYED, RoomEvent(room))

    def destroy_room(self, room: Room, destroy: Destroy) -> None:
        room.destroy(destroy)
        self.remove_room(room)

    def may_create(self, bare: str) -> bool:
        """``restrict_room_creation``: anyone, local users only, or only the roles with
        the ``muc:create-room`` permission (tercet:admin and above by default)."""
        restriction = self.settings.restrict_creation
        if restriction == "admin":
            return self._may_create_rooms(bare)
        if restriction == "local":
            return self._may_create_rooms(bare) or self._is_local_user(bare)
        return True

    # -- presence (§7.1-§7.7, §7.14) ---------------------------------------------------------
    async def presence(self, real: JID, to: JID, stanza: Element) -> None:
        """A presence to ``room`` or ``room/nick`` from ``real`` (raises StanzaError)."""
        ptype = stanza.attrs.get("type")
        room = self.get_room(to)
        if ptype == "error":
            if room is not None:
                room.bounced(real, stanza.find("error"))
            return
        if ptype == "unavailable":
            if room is not None:
                room.leave(real, stanza)
            return
        if ptype == "probe":
            if room is None or to.resource is None:
                raise StanzaError("not-acceptable", "You are not in this room", type="cancel")
            room.probe(real, to.resource)
            return
        if ptype is not None:
            return  # subscriptions mean nothing to a room (§7.2 uses plain presence)
        if to.resource is None:
            raise StanzaError("jid-malformed", "A nickname is required")  # §7.2.1
        await self._available(real, to, room, stanza)

    async def _available(self, real: JID, to: JID, room: Room | None, stanza: Element) -> None:
        nick = to.resource or ""
        self._check_nick(nick)
        if room is None:
            await self._create(real, to, nick, stanza)
            return
        occupant = room.occupant_by_real_jid(real)
        if occupant is None:
            room.check_entry(real, nick, stanza)
            await room.join(real, nick, stanza)
        elif occupant.nick != nick:
            room.change_nick(occupant, real, nick, stanza)
        elif stanza.find("x", NS_MUC) is not None:
            await room.rejoin(occupant, real, stanza)
        else:
            room.update_presence(occupant, stanza)

    def _check_nick(self, nick: str) -> None:
        """RFC 7622 §3.4: a resourcepart (so a nick) is at most 1023 bytes; the service
        may hold nicks to a smaller bound."""
        if not nick.strip() or len(nick.encode()) > self.settings.max_nick_bytes:
            raise StanzaError("not-acceptable", "That nickname is not acceptable")

    async def _create(self, real: JID, to: JID, nick: str, stanza: Element) -> None:
        bare = str(real.bare)
        if not self.may_create(bare):
            raise StanzaError("not-allowed", "Room creation is restricted")  # §10.1.1
        if len(self._rooms) >= self.settings.max_rooms:
            raise StanzaError("resource-constraint", "Too many rooms")
        room = self.new_room(to.node or "", bare)
        # §10.1.1/§10.1.2: a MUC-aware creator gets a locked room to configure; an old
        # groupchat client (no <x/>) gets an instant room.
        room.locked = stanza.find("x", NS_MUC) is not None
        self.notify(EV_ROOM_CREATED, RoomEvent(room))
        await room.join(real, nick, stanza, created=True)

    # -- messages (§7.4, §7.5, §7.8) --------------------------------------------------------
    async def message(self, real: JID, to: JID, stanza: Element) -> None:
        room = self.get_room(to)
        mtype = stanza.attrs.get("type")
        if room is None:
            if mtype != "error":
                raise StanzaError("item-not-found", "No such room")
            return
        if to.resource is not None:
            room.private_message(real, to.resource, stanza)
            return
        if mtype == "groupchat":
            await room.groupchat(real, stanza)
            return
        if mtype == "error":
            room.bounced(real, stanza.find("error"))
            return
        self._mediated(room, real, stanza)

    def _mediated(self, room: Room, real: JID, stanza: Element) -> None:
        request = find_form(stanza, NS_MUC_REQUEST)
        if request is not None:
            room.voice_request(real, request)
            return
        x = stanza.find("x", NS_MUC_USER)
        if x is None:
            raise StanzaError("bad-request", "Messages to the room are groupchat")
        invites = list(x.find_all("invite", NS_MUC_USER))
        if invites:
            room.invite(real, stanza, invites)
            return
        decline = x.find("decline", NS_MUC_USER)
        if decline is not None:
            room.decline(real, decline)
            return
        raise StanzaError("bad-request", "Unknown MUC request")

    # -- helpers -------------------------------------------------------------------------
    def unique_name(self) -> str:
        """XEP-0045 §10.1.4: a room name nobody uses."""
        while True:
            name = secrets.token_hex(8)
            if name not in self._rooms:
                return name

    def public_rooms(self) -> list[Room]:
        return [r for r in self._rooms.values() if r.config.public and not r.locked]

    def check_affiliation_bound(self, room: Room) -> None:
        if len(room.affiliations()) >= self.settings.max_affiliations:
            raise StanzaError("resource-constraint", "The room has too many affiliations")

