"""Multi-User Chat (XEP-0045) as an internal component::

    [components."conference.example.org"]
    module = "muc"

Rooms, occupants and the use cases of the XEP live in ``_muc``: ``room.py`` (what happens
in a room), ``admin.py`` (the IQ use cases of §7.10 and §8-§10), ``tables.py`` (the
privilege tables of §5 and the status codes of §15.2), ``config.py`` (the room
configuration form), ``handlers.py`` (the glue to the host's events), ``api.py`` (the
extension surface other modules such as muc_mam hook). This file declares the options and
wires the component host's events.

Persistent rooms are stored in the component's ``muc_rooms`` keyval store and restored on
load; on ``module reload`` every live room (temporary ones and occupants included) moves
to the new instance through ``save``/``restore``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from tercet.module import ModuleApi, ModuleError, Option
from tercet.modules._muc import admin
from tercet.modules._muc.adminsocket import (
    INSTANCES,
    admin_affiliations,
    admin_destroy,
    admin_list,
    admin_occupants,
    admin_show,
)
from tercet.modules._muc.api import NS_MUC_ADMIN, NS_MUC_OWNER, NS_MUC_UNIQUE, RoomConfig
from tercet.modules._muc.handlers import NS_COMMANDS, Muc
from tercet.modules._muc.service import Restriction, Settings

META = {"summary": "Multi-User Chat", "stage": "beta",
        "xeps": ["XEP-0045", "XEP-0203", "XEP-0249", "XEP-0317", "XEP-0410", "XEP-0421"]}

#: docs/roles.md. ``admin``: the service's administrators, owners of every room (XEP-0045
#: §5.2 "service administrator"), who may destroy rooms by ad-hoc command;
#: ``create-room``: creating rooms while ``restrict_room_creation`` is "admin" (with
#: "local", users of this server may too).
PERMISSIONS = {":admin": "tercet:admin", ":create-room": "tercet:admin"}

RESTRICT_CREATION = Option[bool | str](
    "restrict_room_creation", bool | str, False,
    'Who may create rooms: false (anyone), "local" (users of this server), "admin".',
    choices=(False, "local", "admin"), cite="XEP-0045 §10.1.1")
DEFAULT_PUBLIC = Option("muc_room_default_public", bool, True,
                        "New rooms are listed in disco#items (muc#roomconfig_publicroom).")
DEFAULT_PERSISTENT = Option("muc_room_default_persistent", bool, False,
                            "New rooms outlive their last occupant.")
DEFAULT_MEMBERS_ONLY = Option("muc_room_default_members_only", bool, False,
                              "New rooms admit members only.")
DEFAULT_MODERATED = Option("muc_room_default_moderated", bool, False,
                           "New rooms give visitors no voice.")
DEFAULT_PUBLIC_JIDS = Option("muc_room_default_public_jids", bool, False,
                             "New rooms are non-anonymous (whois anyone).")
DEFAULT_LANGUAGE = Option("muc_room_default_language", str, "",
                          "The language tag of new rooms.")
DEFAULT_CHANGE_SUBJECT = Option("muc_room_default_change_subject", bool, False,
                                "Participants (not only moderators) may set the subject.")
DEFAULT_HISTORY = Option("muc_room_default_history_length", int, 20,
                         "Messages of history new rooms keep (§7.2.14).", min=0)
DEFAULT_INVITES = Option("muc_room_default_allow_member_invites", bool, False,
                         "Members may invite others to members-only rooms (§7.8.2).")
MAX_ROOMS = Option("muc_max_rooms", int, 10_000,
                   "Rooms the service holds at most; creating more is refused.", min=1)
MAX_OCCUPANTS = Option("muc_max_occupants", int, 1_000,
                       "Occupants a room holds at most (and the default of maxusers).",
                       min=1, cite="XEP-0045 §7.2.10")
MAX_HISTORY = Option("max_history_messages", int, 50,
                     "Upper bound of any room's history length.", min=0,
                     cite="XEP-0045 §7.2.14")
MAX_AFFILIATIONS = Option("muc_max_affiliations", int, 10_000,
                          "Affiliations (members, admins, owners, outcasts) a room holds "
                          "at most.", min=1, cite="XEP-0045 §9")
MAX_NICK = Option("muc_max_nick_length", int, 1023,
                  "Bytes of UTF-8 a nickname may have.", min=1, max=1023,
                  cite="RFC 7622 §3.4")

OPTIONS: list[Option[Any]] = [
    RESTRICT_CREATION, DEFAULT_PUBLIC, DEFAULT_PERSISTENT, DEFAULT_MEMBERS_ONLY,
    DEFAULT_MODERATED, DEFAULT_PUBLIC_JIDS, DEFAULT_LANGUAGE, DEFAULT_CHANGE_SUBJECT,
    DEFAULT_HISTORY, DEFAULT_INVITES, MAX_ROOMS, MAX_OCCUPANTS, MAX_HISTORY,
    MAX_AFFILIATIONS, MAX_NICK,
]


def settings_of(module: ModuleApi) -> Settings:
    restrict = module.option(RESTRICT_CREATION)
    restriction: Restriction = "admin" if restrict == "admin" else (
        "local" if restrict == "local" else "none")
    defaults = RoomConfig(
        public=module.option(DEFAULT_PUBLIC),
        persistent=module.option(DEFAULT_PERSISTENT),
        members_only=module.option(DEFAULT_MEMBERS_ONLY),
        moderated=module.option(DEFAULT_MODERATED),
        whois="anyone" if module.option(DEFAULT_PUBLIC_JIDS) else "moderators",
        language=module.option(DEFAULT_LANGUAGE),
        change_subject=module.option(DEFAULT_CHANGE_SUBJECT),
        history_length=module.option(DEFAULT_HISTORY),
        allow_invites=module.option(DEFAULT_INVITES),
    )
    return Settings(restriction, defaults, module.option(MAX_ROOMS),
                    module.option(MAX_OCCUPANTS), module.option(MAX_HISTORY),
                    module.option(MAX_AFFILIATIONS), module.option(MAX_NICK),
                    module.option("name") or "Chatrooms")


def load(module: ModuleApi) -> Any:
    if module.host_kind(module.host) != "component":
        # On a virtual host it would take every message to the users' bare JIDs.
        raise ModuleError(f"muc serves a component domain, not {module.host}: "
                          f'use [components."conference.{module.host}"] module = "muc"')
    module.depends("iq")
    muc = Muc(module, settings_of(module))
    INSTANCES[module] = muc
    module.provides("muc", muc.service)
    for to_type in ("bare", "full", "host"):
        module.hook(f"presence/{to_type}", muc.flushing(muc.on_presence))
        module.hook(f"message/{to_type}", muc.flushing(muc.on_message))
    module.hook("iq/full", muc.flushing(muc.occupant_iq), 10)
    iqs = {
        f"iq-get/bare/{NS_MUC_ADMIN}:query": muc.admin_get,
        f"iq-set/bare/{NS_MUC_ADMIN}:query": muc.admin_set,
        f"iq-get/bare/{NS_MUC_OWNER}:query": muc.owner_get,
        f"iq-set/bare/{NS_MUC_OWNER}:query": muc.owner_set,
        f"iq-get/bare/{admin.NS_REGISTER}:query": muc.register_get,
        f"iq-set/bare/{admin.NS_REGISTER}:query": muc.register_set,
        f"iq-get/bare/{admin.NS_DISCO_INFO}:query": muc.room_info,
        f"iq-get/bare/{admin.NS_DISCO_ITEMS}:query": muc.room_items,
        f"iq-get/host/{admin.NS_DISCO_INFO}:query": muc.host_info,
        f"iq-get/host/{admin.NS_DISCO_ITEMS}:query": muc.host_items,
        f"iq-get/host/{NS_MUC_UNIQUE}:unique": muc.unique,
        f"iq-set/host/{NS_COMMANDS}:command": muc.command,
        f"iq-set/bare/{NS_COMMANDS}:command": muc.room_command,
    }
    for name, handler in iqs.items():
        module.hook(name, muc.flushing(handler), 1)
    module.hook_global("server-stopping", lambda _server: muc.stopping())
    module.hook_global("admin/muc.list", admin_list)
    module.hook_global("admin/muc.show", admin_show)
    module.hook_global("admin/muc.destroy", admin_destroy)
    module.hook_global("admin/muc.occupants", admin_occupants)
    module.hook_global("admin/muc.affiliations", admin_affiliations)
    return muc.start()


async def unload(module: ModuleApi) -> None:
    muc = INSTANCES.pop(module, None)
    if muc is not None:
        if not muc.reloading:  # shutdown or unload: occupants are told (status 332)
            for room in muc.service.rooms():
                room.shutdown()
        await muc.outbox.flush()
        await muc.store.flush()


def save(module: ModuleApi) -> dict[str, Any] | None:
    """Reload keeps every live room (and its occupants) as it is. Plain containers: the
    new instance may come from a re-imported module."""
    muc = INSTANCES.get(module)
    if muc is None:
        return None
    muc.reloading = True
    return {"rooms": list(muc.service.rooms()), "forwarded": muc.forwarded}


def restore(module: ModuleApi, state: dict[str, Any]) -> None:
    muc = INSTANCES.get(module)
    if muc is None or not isinstance(state, dict):
        return
    for room in state.get("rooms", ()):
        room.service = muc.service
        muc.service.add_room(room)
    forwarded = state.get("forwarded")
    if isinstance(forwarded, OrderedDict):
        muc.forwarded = forwarded
