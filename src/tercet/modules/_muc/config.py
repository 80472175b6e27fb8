"""The ``muc#roomconfig`` form (XEP-0045 §10.2, fields registered in §15.5.3) and the
``muc#roominfo`` form (§15.5.4), built from and applied to a :class:`RoomConfig`.

Submitting applies only the fields that are present (an empty submitted form keeps every
value: that is the instant room of §10.1.2). The result says which §15.2 status codes
the change announces (104 for any change, 172-173 for anonymity; an archiving module adds
170/171 itself, see api.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from tercet.modules._muc.api import ROLES, Role, RoomConfig, Whois
from tercet.protocol.dataforms import Field, FormError, Submitted

NS_ROOMCONFIG = "http://jabber.org/protocol/muc#roomconfig"
NS_ROOMINFO = "http://jabber.org/protocol/muc#roominfo"
PREFIX = "muc#roomconfig_"
#: Not a registered field of §15.5.3 (hence the "x-" name, XEP-0068 §3.4); Openfire's.
FIELD_RESERVED_NICK = "x-muc#roomconfig_reservednick"

_ROLE_OPTIONS: tuple[tuple[str, str | None], ...] = (
    ("moderator", "Moderator"), ("participant", "Participant"), ("visitor", "Visitor"))
_ALLOW_PM = ("anyone", "participants", "moderators", "none")
#: §15.5.3: the longest room name and description accepted (not in the XEP: a bound on
#: peer input kept with every persistent room).
MAX_NAME = 1024
MAX_DESCRIPTION = 8192


@dataclass(frozen=True, slots=True)
class Limits:
    """The service's bounds a submitted form must respect."""

    max_users: int
    max_history: int


@dataclass(slots=True)
class Applied:
    """What a submitted form changed."""

    changed: bool = False
    status_codes: list[str] = field(default_factory=list)
    owners: list[str] | None = None
    admins: list[str] | None = None


def form_fields(config: RoomConfig, limits: Limits, owners: Sequence[str],
                admins: Sequence[str]) -> list[Field]:
    """The fields of the configuration form with the room's current values (§10.2)."""
    max_users = config.max_users or limits.max_users
    return [
        Field(PREFIX + "roomname", "text-single", "Title", (config.name,)),
        Field(PREFIX + "roomdesc", "text-single", "Description", (config.description,)),
        Field(PREFIX + "lang", "text-single", "Language tag for room (e.g. 'en', 'de')",
              (config.language,)),
        Field.boolean(PREFIX + "persistentroom", config.persistent,
                      "Persistent (room should remain even when it is empty)"),
        Field.boolean(PREFIX + "publicroom", config.public,
                      "Include room information in public lists"),
        Field.boolean(PREFIX + "changesubject", config.change_subject,
                      "Allow anyone to set the room's subject"),
        Field.boolean(PREFIX + "membersonly", config.members_only,
                      "Only allow members to join"),
        Field.boolean(PREFIX + "allowinvites", config.allow_invites,
                      "Allow members to invite new members"),
        Field(PREFIX + "allowpm", "list-single", "Allow private messages from",
              (config.allow_pm,), tuple((v, v.capitalize()) for v in _ALLOW_PM)),
        Field(PREFIX + "whois", "list-single", "Addresses (JIDs) of room occupants "
              "may be viewed by", (config.whois,),
              (("moderators", "Moderators only"), ("anyone", "Anyone"))),
        Field.boolean(PREFIX + "moderatedroom", config.moderated,
                      "Moderated (only occupants with voice may send messages)"),
        Field(PREFIX + "presencebroadcast", "list-multi",
              "Roles whose presence is broadcast", tuple(config.presence_broadcast),
              _ROLE_OPTIONS),
        Field(PREFIX + "getmemberlist", "list-multi",
              "Roles that may retrieve the member list", tuple(config.get_member_list),
              _ROLE_OPTIONS),
        Field.boolean(PREFIX + "passwordprotectedroom", config.password_protected,
                      "Password protected"),
        Field(PREFIX + "roomsecret", "text-private", "Password", (config.password,)),
        Field(PREFIX + "maxusers", "list-single", "Maximum number of occupants",
              (str(max_users),),
              tuple((str(n), None) for n in _max_user_choices(limits.max_users))),
        Field(PREFIX + "historylength", "text-single",
              "Maximum number of history messages returned by room",
              (str(config.history_length),)),
        Field.boolean(FIELD_RESERVED_NICK, config.registered_nicks_only,
                      "Users who registered a nickname must use it"),
        Field(PREFIX + "roomowners", "jid-multi", "Room owners", tuple(owners)),
        Field(PREFIX + "roomadmins", "jid-multi", "Room admins", tuple(admins)),
    ]


def _max_user_choices(limit: int) -> list[int]:
    choices = [n for n in (5, 10, 20, 30, 50, 100, 200, 500, 1000) if n < limit]
    return choices + [limit]


def apply_submitted(config: RoomConfig, form: Submitted, limits: Limits) -> Applied:
    """Apply a submitted form to ``config`` in place; raises FormError (nothing applied)
    for a value that does not fit."""
    new = _copy(config)
    _read_text(new, form)
    _read_flags(new, form)
    _read_lists(new, form)
    result = Applied()
    result.owners = _jids(form, PREFIX + "roomowners")
    result.admins = _jids(form, PREFIX + "roomadmins")
    result.status_codes = _status_codes(config, new)
    result.changed = new != config
    for name in RoomConfig.__slots__:
        setattr(config, name, getattr(new, name))
    return result


def restore_config(config: RoomConfig, saved: RoomConfig) -> None:
    """Put back a configuration saved before a change that is then refused."""
    for name in RoomConfig.__slots__:
        setattr(config, name, getattr(saved, name))


def _copy(config: RoomConfig) -> RoomConfig:
    return RoomConfig(**{name: getattr(config, name)
                         for name in RoomConfig.__slots__})


def _read_text(new: RoomConfig, form: Submitted) -> None:
    name = form.get_text(PREFIX + "roomname")
    if name is not None:
        new.name = _bounded(PREFIX + "roomname", name, MAX_NAME)
    desc = form.get_text(PREFIX + "roomdesc")
    if desc is not None:
        new.description = _bounded(PREFIX + "roomdesc", desc, MAX_DESCRIPTION)
    lang = form.get_text(PREFIX + "lang")
    if lang is not None:
        new.language = _bounded(PREFIX + "lang", lang, 64)
    secret = form.get_text(PREFIX + "roomsecret")
    if secret is not None:
        new.password = _bounded(PREFIX + "roomsecret", secret, 1024)


def _read_flags(new: RoomConfig, form: Submitted) -> None:
    for var, attr in (("persistentroom", "persistent"), ("publicroom", "public"),
                      ("changesubject", "change_subject"), ("membersonly", "members_only"),
                      ("allowinvites", "allow_invites"), ("moderatedroom", "moderated")):
        value = form.get_bool(PREFIX + var)
        if value is not None:
            setattr(new, attr, value)
    reserved = form.get_bool(FIELD_RESERVED_NICK)
    if reserved is not None:
        new.registered_nicks_only = reserved
    protected = form.get_bool(PREFIX + "passwordprotectedroom")
    if protected is False:
        new.password = ""
    whois = form.get_choice(PREFIX + "whois", ("moderators", "anyone"))
    if whois is not None:
        new.whois = _whois(whois)
    allow_pm = form.get_choice(PREFIX + "allowpm", _ALLOW_PM)
    if allow_pm is not None:
        new.allow_pm = allow_pm  # type: ignore[assignment]  # checked by get_choice


def _read_lists(new: RoomConfig, form: Submitted) -> None:
    # §10.2: "none" may be submitted by clients that offer it (Prosody's form does); it
    # means "unavailable members are shown" and is kept alongside the roles.
    for var, attr in (("presencebroadcast", "presence_broadcast"),
                      ("getmemberlist", "get_member_list")):
        values = form.get_list(PREFIX + var)
        if values is not None:
            setattr(new, attr, _roles(PREFIX + var, values))
    max_users = form.get_text(PREFIX + "maxusers")
    if max_users is not None:
        new.max_users = 0 if max_users in ("", "none") else form.get_int(
            PREFIX + "maxusers", minimum=1, maximum=10**9) or 0
    history = form.get_int(PREFIX + "historylength", minimum=0, maximum=10**9)
    if history is not None:
        new.history_length = history


def clamp(config: RoomConfig, limits: Limits) -> None:
    """Hold a configuration to the service's bounds (§7.2.10, §7.2.14)."""
    if config.max_users <= 0 or config.max_users > limits.max_users:
        config.max_users = limits.max_users
    config.history_length = max(0, min(config.history_length, limits.max_history))


def _roles(var: str, values: list[str]) -> tuple[Role, ...]:
    allowed = set(ROLES)
    found: list[Role] = []
    for value in values:
        if value not in allowed:
            raise FormError(var, f"field {var!r}: unknown role {value!r}")
        role = next(r for r in ROLES if r == value)
        if role not in found:
            found.append(role)
    return tuple(found)


def _whois(value: str) -> Whois:
    return "anyone" if value == "anyone" else "moderators"


def _jids(form: Submitted, var: str) -> list[str] | None:
    values = form.get_list(var)
    if values is None:
        return None
    return [v.strip() for v in values if v.strip()]


def _bounded(var: str, value: str, limit: int) -> str:
    if len(value) > limit:
        raise FormError(var, f"field {var!r} is longer than {limit} characters")
    return value


def _status_codes(old: RoomConfig, new: RoomConfig) -> list[str]:
    """§10.2.1: 104 for any change, with the privacy-related codes of §15.2."""
    codes = ["104"] if old != new else []
    if old.logging != new.logging:
        codes.append("170" if new.logging else "171")
    if old.whois != new.whois:
        codes.append("172" if new.whois == "anyone" else "173")
    if ("none" in old.presence_broadcast) != ("none" in new.presence_broadcast):
        codes.append("102" if "none" in new.presence_broadcast else "103")
    return codes


def roominfo_fields(config: RoomConfig, occupants: int) -> list[Field]:
    """The ``muc#roominfo`` extension of a room's disco#info (§6.4, §15.5.4)."""
    fields = [
        Field("muc#roominfo_description", "text-single", "Description",
              (config.description,)),
        Field("muc#roominfo_occupants", "text-single", "Number of occupants",
              (str(occupants),)),
        Field("muc#roomconfig_roomname", "text-single", "Title", (config.name,)),
        Field("muc#roominfo_lang", "text-single", "Language tag for room",
              (config.language,)),
        Field.boolean("muc#roomconfig_allowinvites", config.allow_invites,
                      "Allow members to invite new members"),
        Field.boolean("muc#roomconfig_changesubject", config.change_subject,
                      "Allow anyone to set the room's subject"),
    ]
    return [f for f in fields if f.values != ("",)]


def role_tuple(values: Sequence[str]) -> tuple[Role, ...]:
    """Roles read back from storage, unknown names dropped."""
    return tuple(r for r in ROLES if r in values)
