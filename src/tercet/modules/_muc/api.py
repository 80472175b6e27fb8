"""The extension surface of the MUC component (XEP-0045), for modules such as muc_mam.

The ``muc`` module offers a :class:`MucService` on its component host::

    service = module.require("muc", MucService)
    room = service.get_room("garden")          # or "garden@conference.example.org"

and fires these events on the component host (``module.hook(EVENT, handler)`` in a module
loaded on that host, e.g. through the component's own ``modules_enabled``). Handlers get
the dataclass named next to each event; "return True" means what the event says.

==============================  ==========================  ================================
event                           payload                     a handler may
==============================  ==========================  ================================
``muc-broadcast-message``       :class:`BroadcastMessage`   add children to ``stanza``
                                                            (``<stanza-id/>``); True drops it
``muc-get-history``             :class:`HistoryRequest`     append stanzas to ``messages``
                                                            and return True (it answered)
``muc-disco-info``              :class:`DiscoInfo`          append to ``features`` and
                                                            ``fields`` (muc#roominfo)
``muc-config-form``             :class:`ConfigForm`         append ``Field`` s to ``fields``
``muc-config-submitted``        :class:`ConfigSubmitted`    read ``form``, write
                                                            ``room.config.extra``; set
                                                            ``error`` to refuse (nothing
                                                            is applied then)
``muc-room-created``            :class:`RoomEvent`          observe
``muc-room-destroyed``          :class:`RoomEvent`          observe
``muc-occupant-joined``         :class:`OccupantEvent`      observe
``muc-occupant-left``           :class:`OccupantEvent`      observe
==============================  ==========================  ================================

Handlers may be coroutine functions. The MUC awaits the events a handler answers (history,
broadcast, disco, configuration) before it goes on, so the room's order is kept; the four
observer events are fired without waiting. An exception in a handler is logged by the
event bus and not passed on: to refuse a configuration, set ``ConfigSubmitted.error``.
What a handler sends through ``Room.broadcast`` / ``Room.send_to_occupant`` is delivered
in order with everything else the room sends.

IQs addressed to a room that the MUC does not handle itself (a MAM query to the room's
bare JID) fire the usual ``iq-get/bare/<ns>:<name>`` / ``iq-set/bare/<ns>:<name>`` events
on the component host, so another module answers them; ``event.to`` is the room's JID and
``service.get_room(event.to)`` finds it.

Added in 1.1.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

from tercet.protocol.dataforms import Field, Submitted
from tercet.protocol.errors import StanzaError
from tercet.protocol.jid import JID
from tercet.protocol.stanza import Element

NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_MUC_ADMIN = "http://jabber.org/protocol/muc#admin"
NS_MUC_OWNER = "http://jabber.org/protocol/muc#owner"
NS_MUC_UNIQUE = "http://jabber.org/protocol/muc#unique"
NS_MUC_REQUEST = "http://jabber.org/protocol/muc#request"

EV_BROADCAST_MESSAGE = "muc-broadcast-message"
EV_GET_HISTORY = "muc-get-history"
EV_DISCO_INFO = "muc-disco-info"
EV_CONFIG_FORM = "muc-config-form"
EV_CONFIG_SUBMITTED = "muc-config-submitted"
EV_ROOM_CREATED = "muc-room-created"
EV_ROOM_DESTROYED = "muc-room-destroyed"
EV_OCCUPANT_JOINED = "muc-occupant-joined"
EV_OCCUPANT_LEFT = "muc-occupant-left"

Affiliation = Literal["owner", "admin", "member", "none", "outcast"]
Role = Literal["moderator", "participant", "visitor", "none"]
Whois = Literal["moderators", "anyone"]

AFFILIATIONS: tuple[Affiliation, ...] = ("owner", "admin", "member", "none", "outcast")
ROLES: tuple[Role, ...] = ("moderator", "participant", "visitor", "none")


@dataclass(slots=True)
class RoomConfig:
    """A room's configuration (XEP-0045 §10.2, the ``muc#roomconfig`` form).

    ``extra`` holds the values other modules add through ``muc-config-form`` /
    ``muc-config-submitted`` (e.g. ``{"muc#roomconfig_enablearchiving": True}``); it is
    saved with the room and must hold JSON values only.
    """

    name: str = ""
    description: str = ""
    persistent: bool = False
    public: bool = True
    members_only: bool = False
    moderated: bool = False
    password: str = ""
    whois: Whois = "moderators"
    max_users: int = 0  # 0: the service's default bound
    allow_invites: bool = False  # members (not only admins) may invite, §7.8.2
    allow_pm: Literal["anyone", "participants", "moderators", "none"] = "anyone"
    change_subject: bool = False  # participants (not only moderators) may, §8.1
    history_length: int = 20
    language: str = ""
    presence_broadcast: tuple[Role, ...] = ("moderator", "participant", "visitor")
    get_member_list: tuple[Role, ...] = ("moderator",)  # real JIDs: not for all
    #: the room is logged publicly (status 170 on entering, §7.2.12); not in the form:
    #: a module that archives the room (muc_mam) sets it and offers its own field
    logging: bool = False
    #: occupants who registered a nick (§7.10) must use it (§7.2.9: not-acceptable)
    registered_nicks_only: bool = False
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def password_protected(self) -> bool:
        return bool(self.password)


@dataclass(frozen=True, slots=True)
class HistoryLimits:
    """The ``<history/>`` of a join (XEP-0045 §7.2.14); None: not given."""

    maxchars: int | None = None
    maxstanzas: int | None = None
    seconds: int | None = None
    since: float | None = None  # POSIX time


class Occupant(Protocol):
    """One nickname in a room, with the sessions (full JIDs) sharing it (§7.2)."""

    @property
    def nick(self) -> str: ...
    @property
    def jid(self) -> JID:
        """The occupant JID ``room@service/nick``."""
    @property
    def bare_jid(self) -> JID:
        """The real bare JID of the user behind the nick."""
    @property
    def role(self) -> Role: ...
    def real_jids(self) -> Iterable[JID]:
        """The real full JIDs of the occupant's sessions."""


class Room(Protocol):
    """A live room (persistent or not)."""

    @property
    def jid(self) -> JID: ...
    @property
    def config(self) -> RoomConfig: ...
    @property
    def subject(self) -> str: ...
    @property
    def locked(self) -> bool:
        """True until the owner configures a newly created room (§10.1.2)."""

    def affiliation(self, bare_jid: JID | str) -> Affiliation: ...
    def affiliations(self) -> dict[str, Affiliation]:
        """Bare JID -> affiliation, without ``none``."""
    def occupants(self) -> Iterator[Occupant]: ...
    def occupant(self, nick: str) -> Occupant | None: ...
    def occupant_by_real_jid(self, full_jid: JID | str) -> Occupant | None: ...
    def send_to_occupant(self, occupant: Occupant, stanza: Element) -> None:
        """Send ``stanza`` (with its ``from`` set by the caller) to each session."""
    def broadcast(self, stanza: Element) -> None:
        """Send ``stanza`` to every occupant (``to`` filled in per session)."""
    def save(self) -> None:
        """Persist the room's configuration and affiliations (no-op if temporary)."""


class MucService(Protocol):
    """The ``muc`` service a component host provides."""

    @property
    def host(self) -> str: ...
    def get_room(self, jid_or_node: JID | str) -> Room | None: ...
    def rooms(self) -> Iterator[Room]: ...


@dataclass(slots=True)
class BroadcastMessage:
    """``muc-broadcast-message``: a groupchat message with a body or subject, before it is
    stored in history and sent to occupants. ``stanza`` is what occupants get (``from``
    the occupant JID); adding children adds them for everyone."""

    room: Room
    stanza: Element
    occupant: Occupant


@dataclass(slots=True)
class HistoryRequest:
    """``muc-get-history``: fill ``messages`` (oldest first, each with its XEP-0203
    ``<delay/>`` and ``from`` the occupant JID; ``to`` is set by the MUC) and return True.
    The built-in in-memory history answers when no handler did."""

    room: Room
    limits: HistoryLimits
    messages: list[Element] = field(default_factory=list)


@dataclass(slots=True)
class DiscoInfo:
    """``muc-disco-info``: the room's disco#info answer being built (§6.4)."""

    room: Room
    features: list[str]
    fields: list[Field]  # muc#roominfo fields


@dataclass(slots=True)
class ConfigForm:
    """``muc-config-form``: the muc#roomconfig form being offered to an owner (§10.2)."""

    room: Room
    fields: list[Field]


@dataclass(slots=True)
class ConfigSubmitted:
    """``muc-config-submitted``: an owner submitted ``form``; store what is yours in
    ``room.config.extra``. ``status_codes`` collects §15.2 codes to announce (e.g. 170)."""

    room: Room
    form: Submitted
    status_codes: set[str] = field(default_factory=set)
    #: set by a handler to refuse the whole form (exceptions raised in event handlers
    #: are logged by the event bus, not passed on); the owner gets this error.
    error: StanzaError | None = None


@dataclass(frozen=True, slots=True)
class RoomEvent:
    """``muc-room-created`` / ``muc-room-destroyed``."""

    room: Room


@dataclass(frozen=True, slots=True)
class OccupantEvent:
    """``muc-occupant-joined`` / ``muc-occupant-left``; ``real_jid`` is the session that
    joined or left (an occupant may have several, §7.2)."""

    room: Room
    occupant: Occupant
    real_jid: JID
