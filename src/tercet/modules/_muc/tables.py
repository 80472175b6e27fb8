"""XEP-0045 written as data: the privilege tables of §5.1 and §5.2, the default roles of
§5.1.2, the ranking used when one user acts on another (§5.2, §8, §9) and the status codes
of §15.2.

Every permission check in the MUC reads these tables instead of spelling the rule out in
code, so the checks and the XEP can be compared line by line.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from tercet.modules._muc.api import Affiliation, Role

# §5.1.1 Table 1 (privileges of roles). "broadcast presence" is subject to the room's
# presencebroadcast setting; "send_pm" to allowpm.
ROLE_PRIVILEGES: Mapping[Role, frozenset[str]] = MappingProxyType({
    "none": frozenset(),
    "visitor": frozenset({
        "present_in_room", "receive_messages", "receive_occupant_presence",
        "broadcast_presence", "change_availability", "change_nick", "send_pm",
        "invite",
    }),
    "participant": frozenset({
        "present_in_room", "receive_messages", "receive_occupant_presence",
        "broadcast_presence", "change_availability", "change_nick", "send_pm",
        "invite", "send_groupchat", "modify_subject",
    }),
    "moderator": frozenset({
        "present_in_room", "receive_messages", "receive_occupant_presence",
        "broadcast_presence", "change_availability", "change_nick", "send_pm",
        "invite", "send_groupchat", "modify_subject", "kick", "grant_voice",
        "revoke_voice", "see_real_jids",
    }),
})

# §5.2.1 Table 2 (privileges of affiliations).
AFFILIATION_PRIVILEGES: Mapping[Affiliation, frozenset[str]] = MappingProxyType({
    "outcast": frozenset(),
    "none": frozenset({"enter_open_room", "register"}),
    "member": frozenset({"enter_open_room", "register", "enter_members_only",
                         "retrieve_member_list"}),
    "admin": frozenset({"enter_open_room", "register", "enter_members_only",
                        "retrieve_member_list", "ban", "edit_member_list",
                        "edit_moderator_list"}),
    "owner": frozenset({"enter_open_room", "register", "enter_members_only",
                        "retrieve_member_list", "ban", "edit_member_list",
                        "edit_moderator_list", "edit_admin_list", "edit_owner_list",
                        "change_config", "destroy"}),
})

#: §5.2: the hierarchy of affiliations, highest first.
AFFILIATION_RANK: Mapping[Affiliation, int] = MappingProxyType({
    "owner": 4, "admin": 3, "member": 2, "none": 1, "outcast": 0,
})
ROLE_RANK: Mapping[Role, int] = MappingProxyType({
    "moderator": 3, "participant": 2, "visitor": 1, "none": 0,
})


def default_role(affiliation: Affiliation, moderated: bool) -> Role:
    """§5.1.2: the role an occupant gets on entering the room."""
    if affiliation in ("owner", "admin"):
        return "moderator"
    if affiliation == "member":
        return "participant"
    if affiliation == "none":
        return "visitor" if moderated else "participant"
    return "none"


def may_change_affiliation(actor: Affiliation, target_now: Affiliation,
                           target_new: Affiliation) -> bool:
    """§9 and §10: admins edit member and outcast lists, only owners touch owners and
    admins (§10.3-§10.6); nobody else edits affiliations."""
    if actor == "owner":
        return True
    if actor == "admin":
        return target_now not in ("owner", "admin") and target_new not in ("owner", "admin")
    return False


def may_change_role(actor_role: Role, actor_aff: Affiliation, target_aff: Affiliation,
                    target_role: Role, new_role: Role) -> bool:
    """§8.2-§8.5 and §9.6-§9.7: a moderator kicks and (de)voices participants and
    visitors; only admins and owners grant or revoke moderator; nobody changes the role of
    an admin or owner (not-allowed, §8.2)."""
    if actor_role != "moderator":
        return False
    if target_aff in ("owner", "admin"):
        return False
    if "moderator" in (target_role, new_role):
        return actor_aff in ("owner", "admin")
    return True


def may_get_list(actor: Affiliation, listed: Affiliation, *, members_only: bool,
                 non_anonymous: bool) -> bool:
    """Who may read an affiliation list (§9.5, §9.8, §10.5, §10.8): admins and owners read
    lists up to their own rank; members may read them in members-only non-anonymous
    rooms, where they could learn the members anyway."""
    rank = AFFILIATION_RANK[actor]
    if rank >= AFFILIATION_RANK["admin"] and rank >= AFFILIATION_RANK[listed]:
        return True
    return members_only and non_anonymous and rank >= AFFILIATION_RANK["member"]


# §15.2 (status codes), with the context each is sent in.
STATUS_CODES: Mapping[str, str] = MappingProxyType({
    "100": "Inform user that any occupant is allowed to see the user's full JID",
    "101": "Inform user that his or her affiliation changed while not in the room",
    "102": "Inform occupants that room now shows unavailable members",
    "103": "Inform occupants that room now does not show unavailable members",
    "104": "Inform occupants that a non-privacy-related room configuration change "
           "has occurred",
    "110": "Inform user that presence refers to itself",
    "170": "Inform occupants that room logging is now enabled",
    "171": "Inform occupants that room logging is now disabled",
    "172": "Inform occupants that the room is now non-anonymous",
    "173": "Inform occupants that the room is now semi-anonymous",
    "174": "Inform occupants that the room is now fully-anonymous",
    "201": "Inform user that a new room has been created",
    "210": "Inform user that service has assigned or modified occupant's roomnick",
    "301": "Inform user that he or she has been banned from the room",
    "303": "Inform all occupants of new room nickname",
    "307": "Inform user that he or she has been kicked from the room",
    "321": "Inform user that he or she is being removed from the room because of an "
           "affiliation change",
    "322": "Inform user that he or she is being removed from the room because the room "
           "has been changed to members-only and the user is not a member",
    "332": "Inform user that he or she is being removed from the room because of a "
           "system shutdown",
    "333": "Inform user that he or she is being removed from the room because the "
           "user's server or client stopped responding (XEP-0045 1.32)",
})
