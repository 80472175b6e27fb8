"""Admin socket commands of the MUC: ``muc.list``, ``muc.show``, ``muc.occupants``,
``muc.affiliations`` and ``muc.destroy`` (``tercet muc ...``, ``tercet shell``). One
handler answers for every MUC component of the server, so the
commands are registered once whatever the number of components.
"""

from __future__ import annotations

from typing import Any

from tercet.module import AdminCommandError, AdminRequest, ModuleApi
from tercet.modules._muc.api import RoomConfig
from tercet.modules._muc.handlers import Muc
from tercet.modules._muc.occupant import Destroy
from tercet.modules._muc.room import Room

#: The live MUC components, by their module instance.
INSTANCES: dict[ModuleApi, Muc] = {}


def _all_rooms() -> list[tuple[Muc, Room]]:
    return [(muc, room) for muc in INSTANCES.values() for room in muc.service.rooms()]


def _find(req: AdminRequest) -> tuple[Muc, Room]:
    name = str(req.arg("room") or "")
    if not name:
        raise AdminCommandError("name the room (room@service)")
    for muc in INSTANCES.values():
        room = muc.service.get_room(name)
        if room is not None:
            return muc, room
    raise AdminCommandError(f"no room {name}")


def admin_list(_req: AdminRequest) -> list[dict[str, Any]]:
    """``muc.list``: every room of every MUC component."""
    return sorted((muc.room_row(room) for muc, room in _all_rooms()),
                  key=lambda r: str(r["jid"]))


def admin_show(req: AdminRequest) -> dict[str, Any]:
    """``muc.show``: one room's configuration, affiliations and occupants."""
    muc, room = _find(req)
    row = muc.room_row(room)
    row["subject"] = room.subject
    row["config"] = {name: getattr(room.config, name)
                     for name in RoomConfig.__slots__}
    row["config"].pop("password", None)
    row["affiliations"] = room.affiliations()
    row["occupants_list"] = [{"nick": o.nick, "role": o.role, "jid": str(o.bare_jid),
                              "sessions": len(o.sessions)} for o in room.occupants()]
    return row


def admin_occupants(req: AdminRequest) -> list[dict[str, Any]]:
    """``muc.occupants``: a room's occupants with their role and affiliation (XEP-0045
    §5)."""
    _muc, room = _find(req)
    return [{"nick": o.nick, "role": o.role, "affiliation": room.affiliation(o.bare_jid),
             "jid": str(o.bare_jid), "sessions": len(o.sessions)}
            for o in room.occupants()]


def admin_affiliations(req: AdminRequest) -> list[dict[str, Any]]:
    """``muc.affiliations``: a room's affiliated JIDs (XEP-0045 §5.2)."""
    _muc, room = _find(req)
    return [{"jid": jid, "affiliation": affiliation}
            for jid, affiliation in sorted(room.affiliations().items())]


def admin_destroy(req: AdminRequest) -> dict[str, Any]:
    """``muc.destroy``: destroy a room, telling its occupants why."""
    muc, room = _find(req)
    reason = req.arg("reason")
    muc.service.destroy_room(room, Destroy(reason=str(reason) if reason else None))
    muc.service.flush_later()
    return {"destroyed": str(room.jid)}
