"""The IQ use cases of a room: moderator and admin lists and changes (``muc#admin``,
XEP-0045 §8-§9), owner configuration and destruction (``muc#owner``, §10), nickname
registration (``jabber:iq:register``, §7.10), and the room's service discovery (§6.4,
§7.10.1). Each function gets the requester's real JID and the iq, and returns the result
or raises :class:`StanzaError`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tercet.modules._muc import tables
from tercet.modules._muc.api import (
    AFFILIATIONS,
    EV_CONFIG_FORM,
    EV_CONFIG_SUBMITTED,
    EV_DISCO_INFO,
    NS_MUC,
    NS_MUC_ADMIN,
    NS_MUC_OWNER,
    Affiliation,
    ConfigForm,
    ConfigSubmitted,
    DiscoInfo,
    Role,
)
from tercet.modules._muc.config import (
    NS_ROOMCONFIG,
    NS_ROOMINFO,
    apply_submitted,
    clamp,
    form_fields,
    restore_config,
    roominfo_fields,
)
from tercet.modules._muc.occupant import NS_HATS, NS_OCCUPANT_ID, Destroy
from tercet.modules._muc.room import Room
from tercet.modules._muc.service import Service
from tercet.protocol.dataforms import (
    NS_DATA,
    Field,
    FormError,
    build_form,
    find_form,
    parse_submit,
)
from tercet.protocol.errors import StanzaError
from tercet.protocol.jid import JID, InvalidJID
from tercet.protocol.stanza import Element

NS_REGISTER = "jabber:iq:register"
NS_MUC_REGISTER = "http://jabber.org/protocol/muc#register"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NODE_ROOMUSER = "x-roomuser-item"
#: One admin query changes at most this many items (the stanza size limit bounds it too;
#: XEP-0045 §9 sets no number).
MAX_ITEMS = 100
ROLE_SETTABLE: tuple[Role, ...] = ("moderator", "participant", "visitor", "none")


@dataclass(frozen=True, slots=True)
class Change:
    """One ``<item/>`` of an admin set, resolved."""

    bare: str | None
    nick: str | None
    affiliation: Affiliation | None
    role: Role | None
    reason: str | None


# -- muc#admin (§8, §9) ------------------------------------------------------------------
def admin_get(room: Room, real: JID, query: Element) -> Element:
    item = query.find("item", NS_MUC_ADMIN)
    if item is None:
        raise StanzaError("bad-request", "An item is required")
    result = Element("query", NS_MUC_ADMIN)
    affiliation = item.get("affiliation")
    role = item.get("role")
    if affiliation is not None:
        wanted = _affiliation(affiliation)
        actor = room.affiliation(real.bare)
        asker = room.occupant_by_real_jid(real)
        # §10.2 getmemberlist: occupants with these roles may read the member list
        by_role = wanted == "member" and asker is not None \
            and asker.role in room.config.get_member_list
        if not by_role and not tables.may_get_list(
                actor, wanted, members_only=room.config.members_only,
                non_anonymous=room.non_anonymous):
            raise StanzaError("forbidden", "You may not see that list")
        for bare, data in room.affiliation_list(wanted):
            attrs = {"affiliation": wanted, "jid": bare}
            if data.nick:
                attrs["nick"] = data.nick
            out = result.tag("item", attrs=attrs)
            if data.reason:
                out.text_tag("reason", data.reason)
        return result
    if role in ("moderator", "participant", "visitor"):
        asker = room.occupant_by_real_jid(real)
        if asker is None or asker.role != "moderator":
            raise StanzaError("forbidden", "Only moderators may see that list")
        for occupant in room.occupants():
            if occupant.role == role:
                for session in occupant.real_jids():
                    result.tag("item", attrs={
                        "role": role, "nick": occupant.nick, "jid": str(session),
                        "affiliation": room.affiliation(occupant.bare_jid)})
        return result
    raise StanzaError("bad-request", "Ask for an affiliation or a role")


def admin_set(service: Service, room: Room, real: JID, query: Element) -> None:
    items = list(query.find_all("item", NS_MUC_ADMIN))
    if not items or len(items) > MAX_ITEMS:
        raise StanzaError("bad-request", f"Between 1 and {MAX_ITEMS} items")
    changes = [_resolve(service, room, item) for item in items]
    for change in changes:  # all or nothing: check every item before changing any
        if change.affiliation is not None and change.bare is not None:
            room.check_affiliation_change(real, change.bare, change.affiliation)
            if room.affiliation(change.bare) == "none":
                service.check_affiliation_bound(room)
    for change in changes:
        if change.affiliation is not None and change.bare is not None:
            room.set_affiliation(real, change.bare, change.affiliation, change.reason,
                                 change.nick)
        elif change.role is not None and change.nick is not None:
            room.set_role(real, change.nick, change.role, change.reason)


def _resolve(service: Service, room: Room, item: Element) -> Change:
    affiliation = item.get("affiliation")
    role = item.get("role")
    nick = item.get("nick")
    reason = item.child_text("reason", NS_MUC_ADMIN)
    bare = None
    jid_text = item.get("jid")
    if jid_text:
        try:
            bare = str(service.parse_jid(jid_text).bare)
        except InvalidJID:
            raise StanzaError("jid-malformed", "That JID is not valid") from None
    if affiliation is not None:
        if bare is None and nick is not None:
            # Some clients name the occupant by nick only (Prosody issue 1224).
            occupant = room.occupant(nick)
            if occupant is None:
                raise StanzaError("item-not-found", "No occupant with that nickname")
            bare, nick = str(occupant.bare_jid), None
        if bare is None:
            raise StanzaError("bad-request", "An affiliation change needs a jid")
        return Change(bare, nick, _affiliation(affiliation), None, reason)
    if role is not None:
        if role not in ROLE_SETTABLE:
            raise StanzaError("bad-request", "Unknown role")
        if nick is None and bare is not None:
            found = next((o for o in room.occupants() if str(o.bare_jid) == bare), None)
            nick = None if found is None else found.nick
        if nick is None:
            raise StanzaError("bad-request", "A role change needs a nick")
        return Change(None, nick, None, role, reason)
    raise StanzaError("bad-request", "An item needs an affiliation or a role")


def _affiliation(text: str) -> Affiliation:
    for affiliation in AFFILIATIONS:
        if affiliation == text:
            return affiliation
    raise StanzaError("bad-request", "Unknown affiliation")


# -- muc#owner (§10) ---------------------------------------------------------------------
async def owner_get(service: Service, room: Room, real: JID) -> Element:
    if room.affiliation(real.bare) != "owner":
        raise StanzaError("forbidden", "Only owners may configure the room")
    owners = [b for b, a in room.affiliations().items() if a == "owner"]
    admins = [b for b, a in room.affiliations().items() if a == "admin"]
    fields = form_fields(room.config, service.limits, sorted(owners), sorted(admins))
    await service.fire(EV_CONFIG_FORM, ConfigForm(room, fields))
    query = Element("query", NS_MUC_OWNER)
    query.append(build_form(fields, title=f"Configuration for {room.jid}",
                            instructions="Complete and submit this form to configure "
                                         "the room.", form_type=NS_ROOMCONFIG))
    return query


async def owner_set(service: Service, room: Room, real: JID, query: Element) -> list[str]:
    """Destroy or configure; returns the §15.2 codes to announce after the result."""
    if room.affiliation(real.bare) != "owner":
        raise StanzaError("forbidden", "Only owners may configure the room")
    destroy = query.find("destroy", NS_MUC_OWNER)
    if destroy is not None:
        service.destroy_room(room, Destroy(destroy.get("jid"),
                                           destroy.child_text("reason", NS_MUC_OWNER),
                                           destroy.child_text("password", NS_MUC_OWNER)))
        return []
    form = query.find("x", NS_DATA)
    if form is None:
        raise StanzaError("bad-request", "A data form or destroy is required")
    if form.get("type") == "cancel":
        if room.locked:  # §10.1.3: cancelling the initial configuration
            service.destroy_room(room, Destroy())
        return []
    return await submit_config(service, room, real, form)


async def submit_config(service: Service, room: Room, real: JID, form: Element) -> list[str]:
    """§10.2: apply a submitted form; an empty one accepts the defaults (§10.1.2)."""
    try:
        submitted = parse_submit(form)
        if submitted.form_type not in (None, NS_ROOMCONFIG):
            raise FormError(None, "wrong FORM_TYPE")
        before = replace(room.config, extra=dict(room.config.extra))
        applied = apply_submitted(room.config, submitted, service.limits)
    except FormError:
        raise StanzaError("not-acceptable", "The form does not fit") from None
    clamp(room.config, service.limits)
    event = ConfigSubmitted(room, submitted)
    await service.fire(EV_CONFIG_SUBMITTED, event)
    if event.error is not None:  # another module refused its part: nothing changes
        restore_config(room.config, before)
        raise event.error
    _apply_lists(room, real, "owner", applied.owners)
    _apply_lists(room, real, "admin", applied.admins)
    codes = applied.status_codes + sorted(event.status_codes - set(applied.status_codes))
    if event.status_codes and "104" not in codes:
        codes.insert(0, "104")
    room.locked = False
    room.save()
    return codes


def _apply_lists(room: Room, real: JID, affiliation: Affiliation,
                 jids: list[str] | None) -> None:
    """The roomowners/roomadmins fields (§10.2): listed JIDs get the affiliation;
    present ones not listed lose it (except the last owner)."""
    if jids is None:
        return
    wanted = set()
    for text in jids:
        try:
            wanted.add(str(room.service.parse_jid(text).bare))
        except InvalidJID:
            raise StanzaError("jid-malformed", "A listed JID is not valid") from None
    current = {b for b, a in room.affiliations().items() if a == affiliation}
    for bare in sorted(wanted - current):
        room.set_affiliation(real, bare, affiliation)
    for bare in sorted(current - wanted):
        if affiliation == "owner" and bare == str(real.bare):
            continue  # an owner does not drop itself by omission
        room.set_affiliation(real, bare, "none")


# -- registration (§7.10) ---------------------------------------------------------------
def register_get(room: Room, real: JID) -> Element:
    affiliation = room.affiliation(real.bare)
    if affiliation == "outcast":
        raise StanzaError("forbidden", "You are banned from this room")
    if affiliation == "none":
        raise StanzaError("registration-required", "Ask an admin for membership")
    query = Element("query", NS_REGISTER)
    query.append(build_form([Field("muc#register_roomnick", "text-single", "Nickname",
                                   required=True)], form_type=NS_MUC_REGISTER))
    return query


def register_set(service: Service, room: Room, real: JID, query: Element) -> None:
    if query.find("remove", NS_REGISTER) is not None:
        room.unregister(real)
        return
    affiliation = room.affiliation(real.bare)
    if affiliation == "outcast":
        raise StanzaError("forbidden", "You are banned from this room")
    if affiliation == "none":
        raise StanzaError("registration-required", "Ask an admin for membership")
    form = find_form(query)
    if form is None:
        raise StanzaError("bad-request", "The registration form is required")
    try:
        submitted = parse_submit(form)
        nick = submitted.get_text("muc#register_roomnick")
    except FormError:
        raise StanzaError("bad-request", "The form does not fit") from None
    if not nick:
        raise StanzaError("not-acceptable", "A nickname is required")
    try:
        nick = service.parse_jid(f"{room.jid}/{nick}").resource or ""
    except InvalidJID:
        raise StanzaError("jid-malformed", "That nickname is not valid") from None
    room.register_nick(real, nick)


# -- service discovery (§6) --------------------------------------------------------------
async def room_info(service: Service, room: Room, real: JID, node: str | None) -> Element:
    query = Element("query", NS_DISCO_INFO)
    if node == NODE_ROOMUSER:  # §7.10.1 (discovering one's reserved nick)
        query.attrs["node"] = node
        nick = room.reserved_nick(str(real.bare))
        if nick:
            query.tag("identity", attrs={"category": "conference", "type": "text",
                                         "name": nick})
        return query
    if node is not None:
        raise StanzaError("item-not-found", "No such node")
    config = room.config
    attrs = {"category": "conference", "type": "text"}
    if config.name:
        attrs["name"] = config.name
    query.tag("identity", attrs=attrs)
    features = [NS_MUC, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_REGISTER,
                "http://jabber.org/protocol/muc#stable_id", NS_OCCUPANT_ID, NS_HATS,
                "muc_public" if config.public else "muc_hidden",
                "muc_persistent" if config.persistent else "muc_temporary",
                "muc_membersonly" if config.members_only else "muc_open",
                "muc_moderated" if config.moderated else "muc_unmoderated",
                "muc_passwordprotected" if config.password else "muc_unsecured",
                "muc_nonanonymous" if room.non_anonymous else "muc_semianonymous"]
    fields = roominfo_fields(config, room.occupant_count)
    await service.fire(EV_DISCO_INFO, DiscoInfo(room, features, fields))
    for var in dict.fromkeys(features):
        query.tag("feature", attrs={"var": var})
    query.append(build_form(fields, type_="result", form_type=NS_ROOMINFO))
    return query


def room_items(room: Room, real: JID) -> Element:
    """§6.5: the occupants, to occupants only (a room may hide them from others)."""
    query = Element("query", NS_DISCO_ITEMS)
    if room.occupant_by_real_jid(real) is not None:
        for occupant in room.occupants():
            query.tag("item", attrs={"jid": str(occupant.jid)})
    return query


def service_items(service: Service) -> Element:
    """§6.3: public rooms only."""
    query = Element("query", NS_DISCO_ITEMS)
    for room in sorted(service.public_rooms(), key=lambda r: str(r.jid)):
        attrs = {"jid": str(room.jid)}
        if room.config.name:
            attrs["name"] = room.config.name
        query.tag("item", attrs=attrs)
    return query


# -- hats (XEP-0317 §3.2, §3.3) ---------------------------------------------------------
NS_HATS_COMMANDS = "urn:xmpp:hats:commands"
HAT_NODES = {"urn:xmpp:hats:commands:don": True, "urn:xmpp:hats:commands:doff": False}
#: Longest hat URI and title accepted.
MAX_HAT_TEXT = 1024


def hat_form(wear: bool) -> Element:
    """The form of the don/doff commands (a hat is named by its URI)."""
    fields = [Field("accountjid", "jid-single", "User Address", required=True),
              Field("hat", "text-single", "Hat URI", required=True)]
    if wear:
        fields.append(Field("title", "text-single", "Hat title"))
    return build_form(fields, title="Assigning a hat" if wear else "Removing a hat",
                      instructions="Fill out this form.", form_type=NS_HATS_COMMANDS)


def hat_command(service: Service, room: Room, real: JID, form: Element,
                wear: bool) -> None:
    """Apply a submitted don/doff form; room owners and admins only."""
    if room.affiliation(real.bare) not in ("owner", "admin"):
        raise StanzaError("forbidden", "Only owners and admins hand out hats")
    try:
        submitted = parse_submit(form)
        account = submitted.get_text("accountjid") or ""
        uri = (submitted.get_text("hat") or "").strip()
        title = (submitted.get_text("title") or "").strip() or uri
    except FormError:
        raise StanzaError("bad-request", "The form does not fit") from None
    if not account or not uri or len(uri) > MAX_HAT_TEXT or len(title) > MAX_HAT_TEXT:
        raise StanzaError("bad-request", "A user and a hat URI are required")
    try:
        bare = str(service.parse_jid(account).bare)
    except InvalidJID:
        raise StanzaError("jid-malformed", "That JID is not valid") from None
    if wear and bare not in room.hats and len(room.hats) >= service.settings.max_affiliations:
        raise StanzaError("resource-constraint", "Too many users wear hats")
    room.set_hat(bare, uri, title, wear)
