"""The MUC component's glue between the component host's events and the service:
stanza handlers, the service-level requests (disco §6.1-§6.3, unique room names §10.1.4,
the room destruction ad-hoc command of XEP-0050 under Prosody's node) and IQs to occupants
(XEP-0410 self-pings answered by the room, others forwarded with the real JIDs hidden).
``muc.py`` wires these to events; room logic lives in ``room.py`` and ``admin.py``.
"""

from __future__ import annotations

import inspect
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tercet.module import Element, ModuleApi, StanzaError, StanzaEvent
from tercet.modules._muc import admin
from tercet.modules._muc.api import NS_MUC, NS_MUC_UNIQUE
from tercet.modules._muc.occupant import Destroy
from tercet.modules._muc.outbox import Outbox
from tercet.modules._muc.room import Room
from tercet.modules._muc.service import Service, Settings
from tercet.modules._muc.store import RoomStore
from tercet.protocol.dataforms import Field, FormError, build_form, find_form, parse_submit
from tercet.protocol.jid import JID

NS_PING = "urn:xmpp:ping"
NS_COMMANDS = "http://jabber.org/protocol/commands"
NS_VCARD = "vcard-temp"
DESTROY_NODE = "http://prosody.im/protocol/muc#destroy"
#: Forwarded occupant IQs waiting for an answer; the oldest are forgotten beyond this.
MAX_FORWARDED = 1000


@dataclass(slots=True)
class Forwarded:
    """An occupant IQ sent on to a real JID, waiting for its answer (§7.6-style)."""

    requester: str
    id: str
    target: str
    destination: str  # only an answer from here is passed back


class Muc:
    """One MUC component: the service plus the glue to the host's events."""

    def __init__(self, module: ModuleApi, settings: Settings) -> None:
        self.module = module
        self.store = RoomStore(module.open_store("muc_rooms", "keyval"), module.spawn)
        self.outbox = Outbox(module.send_now, module.spawn)
        self.service = Service(
            module.host, settings, route=self.outbox.put, route_copies=self.outbox.put_copies,
            fire=module.fire_async, notify=module.fire_detached, now=module.now,
            is_admin=lambda jid: module.may(":admin", jid),
            may_create_rooms=lambda jid: module.may(":create-room", jid),
            is_local_user=self._is_local_user, parse_jid=module.parse_jid,
            on_change=self.store.changed, on_destroy=self.store.destroyed,
            flush_later=self.outbox.flush_later)
        self.forwarded: OrderedDict[str, Forwarded] = OrderedDict()
        self._counter = 0
        self.reloading = False  # set by save(): rooms move on to the next instance

    async def start(self) -> None:
        """Load the occupant-id secret and the persistent rooms (at module load)."""
        state = self.module.open_store("muc_state", "keyval")
        secret = await state.get(None)
        if isinstance(secret, str):
            self.service.secret = bytes.fromhex(secret)
        else:  # the first start: occupant ids stay the same from now on (XEP-0421 §4)
            await state.set(None, self.service.secret.hex())
        count = await self.store.load(self.service)
        if count:
            self.module.log.info("restored %d persistent room(s)", count)

    def stopping(self) -> None:
        """``server-stopping``: the sessions that close now leave rooms silently."""
        self.service.stopping = True

    def flushing(self, handler: Callable[[StanzaEvent], Any]) -> Callable[[StanzaEvent],
                                                                          Awaitable[Any]]:
        """``handler``, then the delivery of everything it sent (see outbox.py), once the
        room changes it made are stored (an acknowledged change survives a crash)."""
        async def run(event: StanzaEvent) -> Any:
            try:
                result = handler(event)
                if inspect.isawaitable(result):
                    result = await result
                return result
            finally:
                try:
                    await self.store.settle()
                finally:  # cancelled while waiting for the disk: still deliver in order
                    await self.outbox.flush()
        return run

    def _is_local_user(self, bare: str) -> bool:
        domain = bare.partition("@")[2] or bare
        return self.module.host_kind(domain) == "local"

    # -- presence and messages ------------------------------------------------------------
    async def on_presence(self, event: StanzaEvent) -> bool:
        stanza = event.stanza
        if event.from_ is None or event.to is None or event.to.node is None:
            return True  # presence to the service itself means nothing
        try:
            await self.service.presence(event.from_, event.to, stanza)
        except StanzaError as err:
            self._bounce(stanza, err, event.to)
        return True

    async def on_message(self, event: StanzaEvent) -> bool:
        stanza = event.stanza
        if event.from_ is None or event.to is None or event.to.node is None:
            if stanza.get("type") not in ("error", "groupchat"):
                self._bounce(stanza, StanzaError("service-unavailable"), None)
            return True
        try:
            await self.service.message(event.from_, event.to, stanza)
        except StanzaError as err:
            self._bounce(stanza, err, event.to)
        return True

    def _bounce(self, stanza: Element, err: StanzaError, to: JID | None) -> None:
        if stanza.get("type") == "error":
            return
        if to is not None and to.node is not None:
            err.by = str(to.bare)
        self.outbox.put(stanza.error_reply(err))

    # -- room IQs --------------------------------------------------------------------------
    def _room_of(self, event: StanzaEvent) -> tuple[Room, JID]:
        room = None if event.to is None else self.service.get_room(event.to)
        if room is None or event.from_ is None:
            raise StanzaError("item-not-found", "No such room")
        return room, event.from_

    def _answer(self, event: StanzaEvent, payload: Element | None) -> bool:
        reply = event.stanza.reply()
        if payload is not None:
            reply.append(payload)
        self.outbox.put(reply)
        return True

    def _fail(self, event: StanzaEvent, err: StanzaError) -> bool:
        self.outbox.put(event.stanza.error_reply(err))
        return True

    def admin_get(self, event: StanzaEvent) -> bool:
        try:
            room, real = self._room_of(event)
            return self._answer(event, admin.admin_get(room, real, self._payload(event)))
        except StanzaError as err:
            return self._fail(event, err)

    def admin_set(self, event: StanzaEvent) -> bool:
        try:
            room, real = self._room_of(event)
            admin.admin_set(self.service, room, real, self._payload(event))
        except StanzaError as err:
            return self._fail(event, err)
        return self._answer(event, None)

    async def owner_get(self, event: StanzaEvent) -> bool:
        try:
            room, real = self._room_of(event)
            return self._answer(event, await admin.owner_get(self.service, room, real))
        except StanzaError as err:
            return self._fail(event, err)

    async def owner_set(self, event: StanzaEvent) -> bool:
        try:
            room, real = self._room_of(event)
            codes = await admin.owner_set(self.service, room, real, self._payload(event))
        except StanzaError as err:
            return self._fail(event, err)
        self._answer(event, None)
        if not room.destroyed:
            room.after_config(codes)
        return True

    def register_get(self, event: StanzaEvent) -> bool:
        try:
            room, real = self._room_of(event)
            return self._answer(event, admin.register_get(room, real))
        except StanzaError as err:
            return self._fail(event, err)

    def register_set(self, event: StanzaEvent) -> bool:
        try:
            room, real = self._room_of(event)
            admin.register_set(self.service, room, real, self._payload(event))
        except StanzaError as err:
            return self._fail(event, err)
        return self._answer(event, None)

    async def room_info(self, event: StanzaEvent) -> bool:
        try:
            room, real = self._room_of(event)
            node = self._payload(event).get("node")
            return self._answer(event, await admin.room_info(self.service, room, real, node))
        except StanzaError as err:
            return self._fail(event, err)

    def room_items(self, event: StanzaEvent) -> bool:
        try:
            room, real = self._room_of(event)
            return self._answer(event, admin.room_items(room, real))
        except StanzaError as err:
            return self._fail(event, err)

    @staticmethod
    def _payload(event: StanzaEvent) -> Element:
        payload = event.stanza.iq_payload()
        assert payload is not None  # the iq module only fires events for iqs with one
        return payload

    # -- the service itself (§6.1-§6.3, §10.1.4) ------------------------------------------
    def host_info(self, event: StanzaEvent) -> bool:
        if self._payload(event).get("node") is not None:
            return self._fail(event, StanzaError("item-not-found"))
        query = Element("query", admin.NS_DISCO_INFO)
        query.tag("identity", attrs={"category": "conference", "type": "text",
                                     "name": self.service.settings.name})
        for ident in self.module.identities():
            attrs = {"category": ident.category, "type": ident.type}
            if ident.name:
                attrs["name"] = ident.name
            query.tag("identity", attrs=attrs)
        for var in sorted({NS_MUC, admin.NS_DISCO_INFO, admin.NS_DISCO_ITEMS,
                           NS_MUC_UNIQUE, NS_COMMANDS, *self.module.features()}):
            query.tag("feature", attrs={"var": var})
        for form in self.module.extensions():
            query.append(form)
        return self._answer(event, query)

    def host_items(self, event: StanzaEvent) -> bool:
        node = self._payload(event).get("node")
        if node is not None:  # no nodes here (XEP-0030 §4.2: an empty list is fine)
            return self._answer(event, Element("query", admin.NS_DISCO_ITEMS, {"node": node}))
        return self._answer(event, admin.service_items(self.service))

    def unique(self, event: StanzaEvent) -> bool:
        result = Element("unique", NS_MUC_UNIQUE)
        result.append(self.service.unique_name())
        return self._answer(event, result)

    def command(self, event: StanzaEvent) -> bool | None:
        """XEP-0050 ``execute`` of the room destruction command (Prosody's node), for
        the service's admins."""
        command = self._payload(event)
        if command.get("node") != DESTROY_NODE:
            return None  # another module's command
        if event.from_ is None or not self.module.may(":admin", event):
            return self._fail(event, StanzaError("forbidden"))
        form = find_form(command)
        if form is None:
            return self._answer(event, self._destroy_form(command))
        try:
            rooms = parse_submit(form).get_list("rooms") or []
        except FormError:
            return self._fail(event, StanzaError("bad-request"))
        destroyed = []
        for name in rooms:
            room = self.service.get_room(name)
            if room is not None:
                self.service.destroy_room(room, Destroy())
                destroyed.append(str(room.jid))
        result = Element("command", NS_COMMANDS, {
            "node": DESTROY_NODE, "status": "completed",
            "sessionid": command.get("sessionid") or self._next_id()})
        result.text_tag("note", "The following rooms were destroyed:\n" +
                        "\n".join(destroyed), attrs={"type": "info"})
        return self._answer(event, result)

    def room_command(self, event: StanzaEvent) -> bool | None:
        """XEP-0050 commands of a room: XEP-0317 don and doff (hats)."""
        command = self._payload(event)
        node = command.get("node") or ""
        wear = admin.HAT_NODES.get(node)
        if wear is None:
            return None  # another module's command (the router answers if nobody does)
        try:
            room, real = self._room_of(event)
            form = find_form(command)
            if form is None or command.get("action") == "cancel":
                status = "canceled" if form is None and command.get("action") == "cancel" \
                    else "executing"
                reply = Element("command", NS_COMMANDS, {
                    "node": node, "status": status,
                    "sessionid": command.get("sessionid") or self._next_id()})
                if status == "executing":
                    reply.append(admin.hat_form(wear))
                return self._answer(event, reply)
            admin.hat_command(self.service, room, real, form, wear)
        except StanzaError as err:
            return self._fail(event, err)
        return self._answer(event, Element("command", NS_COMMANDS, {
            "node": node, "status": "completed",
            "sessionid": command.get("sessionid") or self._next_id()}))

    def _destroy_form(self, command: Element) -> Element:
        result = Element("command", NS_COMMANDS, {
            "node": DESTROY_NODE, "status": "executing", "sessionid": self._next_id()})
        result.tag("actions", attrs={"execute": "complete"}).tag("complete")
        options = tuple((str(r.jid), r.config.name or None) for r in self.service.rooms())
        result.append(build_form([Field("rooms", "list-multi", "Rooms to destroy",
                                        options=options, required=True)],
                                 title="Destroy rooms"))
        return result

    def _next_id(self) -> str:
        self._counter += 1
        return f"muc{self._counter}"

    # -- occupant IQs ------------------------------------------------------------------------
    def occupant_iq(self, event: StanzaEvent) -> bool:
        """IQs to ``room/nick``: self-pings answered (XEP-0410), others forwarded to the
        occupant's session, answers routed back (§7 keeps real JIDs hidden)."""
        stanza, to, real = event.stanza, event.to, event.from_
        if to is None or real is None or to.resource is None:
            return True
        room = self.service.get_room(to)
        iq_type = stanza.get("type")
        if iq_type in ("result", "error"):
            self._answer_back(room, real, stanza)
            return True
        if room is None:
            return self._fail(event, StanzaError("item-not-found", "No such room"))
        sender = room.occupant_by_real_jid(real)
        target = room.occupant(to.resource)
        if sender is None:
            return self._fail(event, StanzaError("not-acceptable", "You are not in this room",
                                                 type="cancel"))
        if target is None:
            return self._fail(event, StanzaError("item-not-found", "No such occupant"))
        payload = stanza.iq_payload()
        if target is sender and payload is not None and payload.xmlns == NS_PING:
            return self._answer(event, None)
        destination = str(target.bare_jid) if payload is not None \
            and payload.xmlns == NS_VCARD else str(next(iter(target.real_jids())))
        self._forward(stanza, str(real), str(sender.jid), destination, str(target.jid))
        return True

    def _forward(self, stanza: Element, requester: str, sender_jid: str, destination: str,
                 target_jid: str) -> None:
        new_id = secrets.token_hex(12)  # unguessable: answers are matched by it
        self.forwarded[new_id] = Forwarded(requester, stanza.get("id") or "", target_jid,
                                           destination)
        while len(self.forwarded) > MAX_FORWARDED:
            self.forwarded.popitem(last=False)
        attrs = dict(stanza.attrs)
        attrs.update({"from": sender_jid, "to": destination, "id": new_id})
        self.outbox.put(Element("iq", stanza.xmlns, attrs, list(stanza.children)))

    def _answer_back(self, room: Room | None, real: JID, stanza: Element) -> None:
        key = stanza.get("id") or ""
        found = self.forwarded.get(key)
        if found is None or room is None or found.destination not in (str(real),
                                                                      str(real.bare)):
            return
        del self.forwarded[key]
        attrs = dict(stanza.attrs)
        attrs.update({"from": found.target, "to": found.requester, "id": found.id})
        self.outbox.put(Element("iq", stanza.xmlns, attrs, list(stanza.children)))

    # -- admin socket ---------------------------------------------------------------------
    def room_row(self, room: Room) -> dict[str, Any]:
        config = room.config
        return {"jid": str(room.jid), "name": config.name, "occupants": room.occupant_count,
                "persistent": config.persistent, "public": config.public,
                "members_only": config.members_only, "locked": room.locked}
