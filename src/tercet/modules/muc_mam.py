"""Message Archive Management for MUC rooms (XEP-0313 ``urn:xmpp:mam:2`` and ``#extended``
§3.3.2, with XEP-0359 stanza IDs), and moderated retraction (XEP-0425).

Loaded on a MUC component through the component's own table::

    [components."conference.example.org"]
    module = "muc"
    modules_enabled = ["muc_mam"]

It uses only the MUC's extension surface (``_muc.api``). Every groupchat message the
room broadcasts (``muc-broadcast-message``) that :func:`_mucarchive.historic` keeps goes
into the store ``muc_log`` under the room's node, as the occupant JID sent it and with the
sender's real bare JID; the broadcast gets ``<stanza-id by='room@service'/>`` (any such
stanza-id the sender put in is removed first, XEP-0359 §4). Which rooms archive follows
Prosody: ``muc_log_all_rooms`` forces it on, else the room's
``muc#roomconfig_enablearchiving`` field, else ``muc_log_by_default``.

Queries are iqs to the room's bare JID; the reader must be an occupant or hold an
affiliation (member, admin, owner), never an outcast; real JIDs are shown as XEP-0045
§5.2.1 allows (anyone in non-anonymous rooms, otherwise owners, admins and moderators).
Join history comes from the archive (``muc-get-history``). Old messages expire in bounded
batches (``muc_log_expires_after``), each room keeps at most ``muc_log_max_items``
(oldest dropped first), and destroying a room deletes its archive, as in Prosody.

Appends go through one writer task in arrival order from a bounded queue, as in ``mam``:
the stanza-id is fixed before the broadcast, queries wait until earlier writes are done.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, cast

from tercet.module import (
    JID,
    ArchiveAppend,
    ArchiveItem,
    ArchiveKeyNotFound,
    ArchiveQuery,
    Invalid,
    InvalidJID,
    ModuleApi,
    Option,
    StanzaError,
    StanzaEvent,
    StorageError,
)
from tercet.modules._mamlib import (
    NS_MAM,
    NS_MAM_EXTENDED,
    MamQuery,
    Page,
    QueryError,
    add_stanza_id,
    expiry_seconds,
    fields_form,
    fin,
    parse_query,
    result_message,
    stamp,
    strip_stanza_ids,
)
from tercet.modules._mamstore import (
    ARCHIVE_QUEUE_MAX,
    CLEANUP_BATCH,
    WRITE_BATCH,
    ArchiveWriter,
    expiry_run,
    query_page,
)
from tercet.modules._muc.api import (
    EV_BROADCAST_MESSAGE,
    EV_CONFIG_FORM,
    EV_CONFIG_SUBMITTED,
    EV_DISCO_INFO,
    EV_GET_HISTORY,
    EV_ROOM_DESTROYED,
    BroadcastMessage,
    ConfigForm,
    ConfigSubmitted,
    DiscoInfo,
    HistoryRequest,
    MucService,
    Room,
    RoomEvent,
)
from tercet.modules._mucarchive import (
    NS_FASTEN,
    NS_MODERATE,
    NS_MODERATE_0,
    REVEAL_AFFILIATIONS,
    HistoryItem,
    archived_form,
    historic,
    history_messages,
    history_window,
    parse_moderate,
    presented,
    retraction_message,
    tombstone,
)
from tercet.protocol.dataforms import Field, FormError
from tercet.protocol.stanza import Element

META = {"summary": "Message Archive Management for MUC rooms", "stage": "beta",
        "xeps": ["XEP-0313", "XEP-0359", "XEP-0425", "XEP-0045"]}

# After other modules' muc-broadcast-message handlers: what they add (an occupant-id) is
# archived, and a message one of them drops (returns True) is never archived.
BROADCAST_PRIORITY = -10
STORE = "muc_log"  # Prosody's store name for room archives
FIELD_ARCHIVING = "muc#roomconfig_enablearchiving"


def _expiry_ok(value: Any) -> list[Invalid]:
    try:
        expiry_seconds(value)
    except ValueError:
        return [Invalid('a duration: seconds, "never", or like "1d", "1w", "2m", "1y"',
                        repr(value), 'muc_log_expires_after = "1w"')]
    return []


LOG_BY_DEFAULT = Option("muc_log_by_default", bool, True,
                        "Archive rooms whose owner has not set muc#roomconfig_enablearch"
                        "iving; owners can still turn archiving off per room.",
                        cite="XEP-0313 §3.3.2")
LOG_ALL_ROOMS = Option("muc_log_all_rooms", bool, False,
                       "Archive every room, whatever its configuration (owners are not "
                       "offered the archiving field).")
EXPIRES_AFTER = Option[int | str](
    "muc_log_expires_after", int | str, "1w",
    'Delete archived room messages older than this: seconds, "never", or a number with '
    "d (days), w (weeks), m (months), y (years).", validate=_expiry_ok)
CLEANUP_INTERVAL = Option("muc_log_cleanup_interval", float, 4 * 3600.0,
                          "Seconds between two runs of the room archive expiry job.",
                          min=0.01, max=7 * 86400)
MAX_ITEMS = Option(
    "muc_log_max_items", int, 100_000,
    "Most messages kept per room; beyond it the oldest are deleted (a room never stops "
    "archiving). 0: no limit other than muc_log_expires_after.", min=0,
    cite="XEP-0313 §3.2")
OPTIONS: list[Option[Any]] = [LOG_BY_DEFAULT, LOG_ALL_ROOMS, EXPIRES_AFTER,
                              CLEANUP_INTERVAL, MAX_ITEMS]
# Also read: max_archive_query_results, declared by mam (the page bound of both).
MAX_RESULTS_OPTION = "max_archive_query_results"

_INSTANCES: dict[ModuleApi, RoomArchive] = {}


def load(module: ModuleApi) -> None:
    archive = RoomArchive(module)
    _INSTANCES[module] = archive
    module.hook(EV_BROADCAST_MESSAGE, archive.on_broadcast, BROADCAST_PRIORITY)
    module.hook(EV_GET_HISTORY, archive.on_history)
    module.hook(EV_DISCO_INFO, archive.on_disco)
    module.hook(EV_CONFIG_FORM, archive.on_config_form)
    module.hook(EV_CONFIG_SUBMITTED, archive.on_config_submitted)
    module.hook(EV_ROOM_DESTROYED, archive.on_destroyed)
    module.hook(f"iq-set/bare/{NS_MAM}:query", archive.on_query)
    module.hook(f"iq-get/bare/{NS_MAM}:query", archive.on_form)
    module.hook(f"iq-get/bare/{NS_MAM}:metadata", archive.on_metadata)
    module.hook(f"iq-set/bare/{NS_MODERATE}:moderate", archive.on_moderate)
    module.hook(f"iq-set/bare/{NS_FASTEN}:apply-to", archive.on_moderate)
    if archive.expires_after is not None:
        module.add_timer(archive.cleanup_interval, archive.cleanup)


async def unload(module: ModuleApi) -> None:
    """Write everything still queued before the module goes."""
    archive = _INSTANCES.pop(module, None)
    if archive is not None:
        await archive.drain()


def new_key() -> str:
    """A fresh archive id: random and unguessable (XEP-0359 §4: unique per room)."""
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class Access:
    """What one reader may do with a room's archive."""

    allowed: bool
    reveal: bool  # sees real JIDs (XEP-0045 §5.2.1)


class RoomArchive:
    """The module on one MUC component: options, the ``muc_log`` store, handlers."""

    def __init__(self, module: ModuleApi) -> None:
        self.module = module
        self.log_by_default = module.option(LOG_BY_DEFAULT)
        self.log_all_rooms = module.option(LOG_ALL_ROOMS)
        self.expires_after = expiry_seconds(module.option(EXPIRES_AFTER))
        self.cleanup_interval = module.option(CLEANUP_INTERVAL)
        self.max_items = module.option(MAX_ITEMS)
        self.max_results = int(module.option(MAX_RESULTS_OPTION))
        self.store = module.open_archive(STORE)
        self.writer = ArchiveWriter(module, self.store, "room message",
                                    max_queue=ARCHIVE_QUEUE_MAX, batch=WRITE_BATCH,
                                    after_batch=self.trim_written)
        self.flushed = self.writer.flushed
        self.drain = self.writer.drain

    @property
    def service(self) -> MucService:
        """The component's MUC (a Protocol, so looked up by kind, not by isinstance)."""
        found = self.module.providers("muc")
        if not found:
            raise StanzaError("service-unavailable", "no MUC on this host")
        return cast(MucService, found[0])

    def enabled(self, room: Room) -> bool:
        """Prosody's rule: forced on for all rooms, else the room's choice, else the
        default."""
        if self.log_all_rooms:
            return True
        chosen = room.config.extra.get(FIELD_ARCHIVING)
        return chosen if isinstance(chosen, bool) else self.log_by_default

    # -- archiving -------------------------------------------------------------------------

    def on_broadcast(self, event: BroadcastMessage) -> Awaitable[None] | None:
        """A groupchat message about to go to occupants: archive it, add its stanza-id."""
        room, stanza = event.room, event.stanza
        by = str(room.jid)
        strip_stanza_ids(stanza, by)
        if not self.enabled(room) or not historic(stanza) or room.jid.node is None:
            return None
        key = new_key()
        stored = archived_form(stanza, str(event.occupant.jid), str(event.occupant.bare_jid))
        add_stanza_id(stanza, key, by)
        item = ArchiveAppend(room.jid.node, stored, self.module.now(),
                             str(event.occupant.jid), key)
        return self.writer.add(item)

    async def trim_written(self, batch: list[ArchiveAppend]) -> None:
        await self.trim({item.user for item in batch})

    async def trim(self, rooms: set[str]) -> None:
        """Delete the oldest messages of rooms over muc_log_max_items."""
        if not self.max_items:
            return
        for node in rooms:
            excess = await self.store.count(node, ArchiveQuery()) - self.max_items
            while excess > 0:
                old = await self.store.find(node, ArchiveQuery(limit=min(excess,
                                                                         CLEANUP_BATCH)))
                if not old:
                    break
                excess -= await self.store.delete(node, ArchiveQuery(
                    ids=[i.key for i in old]))

    # -- who may read (XEP-0313 §3.3.2, XEP-0045 §5.2) -------------------------------------

    def access(self, room: Room, reader: JID) -> Access:
        """Occupants and affiliated users may read, outcasts never; in members-only rooms
        only members and above. Real JIDs: non-anonymous rooms, or owners, admins,
        moderators (and server admins)."""
        affiliation = room.affiliation(reader.bare)
        occupant = room.occupant_by_real_jid(reader)
        admin = self.module.may("muc:admin", str(reader.bare))
        if affiliation == "outcast" and not admin:
            return Access(False, False)
        member = affiliation in ("owner", "admin", "member")
        allowed = admin or member or (occupant is not None and not room.config.members_only)
        reveal = (room.config.whois == "anyone" or admin or affiliation in
                  REVEAL_AFFILIATIONS or (occupant is not None and occupant.role == "moderator"))
        return Access(allowed, reveal)

    def room_for(self, event: StanzaEvent) -> tuple[Room, Access]:
        """The queried room and the reader's access; StanzaError when there is none."""
        room = self.service.get_room(event.to) if event.to is not None else None
        if room is None:
            raise StanzaError("item-not-found", "no such room")
        if event.from_ is None:
            raise StanzaError("bad-request")
        access = self.access(room, event.from_)
        if not access.allowed:
            raise StanzaError("forbidden", "only occupants and members read this archive",
                              type="auth")
        return room, access

    async def reply(self, event: StanzaEvent, stanza: Element) -> None:
        """Answer the requester: straight to a local client's session, else routed."""
        if event.origin.kind == "c2s":
            event.origin.send(stanza)
        else:
            await self.module.send(stanza)

    async def fail(self, event: StanzaEvent, error: StanzaError) -> bool:
        await self.reply(event, event.stanza.error_reply(error))
        return True

    # -- queries (XEP-0313 §4) --------------------------------------------------------------

    async def on_query(self, event: StanzaEvent) -> bool | None:
        payload = event.stanza.iq_payload()
        if payload is None:
            return None
        try:
            room, access = self.room_for(event)
            query = parse_query(payload)
            await self.flushed()  # read your writes
            items, page = await self.run_query(room, query)
        except StanzaError as err:
            return await self.fail(event, err)
        except QueryError as exc:
            return await self.fail(event, StanzaError(exc.condition, exc.text))
        except ArchiveKeyNotFound:
            return await self.fail(event, StanzaError("item-not-found",
                                                      "no such item in the archive"))
        except StorageError:
            self.module.log.exception("archive query on %s failed", event.to)
            return await self.fail(event, StanzaError("internal-server-error"))
        to = event.stanza.get("from") or ""
        for item in (reversed(items) if query.flip else items):
            msg = result_message(to, query.queryid, item.key, item.when,
                                 presented(item.value, access.reveal))
            msg.set("from", str(room.jid))
            await self.reply(event, msg)
        reply = event.stanza.reply()
        reply.append(fin(page))
        await self.reply(event, reply)
        return True

    def with_filter(self, room: Room, text: str | None) -> tuple[str | None, bool]:
        """(with_jid for the store, whether anything can match). In a room archive
        ``with`` names an occupant JID (room@service/nick); the room's bare JID is the
        whole archive; any other JID matches nothing (real JIDs are not an index)."""
        if text is None:
            return None, True
        try:
            jid = self.module.parse_jid(text)
        except InvalidJID:
            raise QueryError("jid-malformed", "the with field is not a JID") from None
        if jid.bare != room.jid:
            return None, False
        return (str(jid) if jid.resource is not None else None), True

    async def run_query(self, room: Room, q: MamQuery) -> tuple[list[ArchiveItem], Page]:
        node = room.jid.node or ""
        limit = self.max_results if q.max is None else min(q.max, self.max_results)
        with_jid, possible = self.with_filter(room, q.with_jid)
        if q.start is not None and q.end is not None and q.start > q.end:
            raise QueryError("bad-request", "start is after end")
        if not possible:
            await self.check_keys(node, q)
            return [], Page([], None, 0, complete=True)
        return await query_page(self.store, node, q, limit, with_jid)

    async def check_keys(self, node: str, q: MamQuery) -> None:
        """Unknown ids are item-not-found even when nothing else can match (§5.1.2)."""
        for key in (q.after_id, q.before_id, q.after, q.before or None):
            if key:
                await self.store.find(node, ArchiveQuery(after=key, limit=1))

    async def on_form(self, event: StanzaEvent) -> bool | None:
        try:
            self.room_for(event)
        except StanzaError as err:
            return await self.fail(event, err)
        reply = event.stanza.reply()
        reply.tag("query", NS_MAM).append(fields_form())
        await self.reply(event, reply)
        return True

    async def on_metadata(self, event: StanzaEvent) -> bool | None:
        """XEP-0313 §5.1.2 (1.1): the first and last item of the room's archive."""
        try:
            room, _ = self.room_for(event)
            await self.flushed()
            node = room.jid.node or ""
            first = await self.store.find(node, ArchiveQuery(limit=1))
            last = await self.store.find(node, ArchiveQuery(limit=1, reverse=True))
        except StanzaError as err:
            return await self.fail(event, err)
        except StorageError:
            self.module.log.exception("archive metadata of %s failed", event.to)
            return await self.fail(event, StanzaError("internal-server-error"))
        reply = event.stanza.reply()
        meta = reply.tag("metadata", NS_MAM)
        for name, found in (("start", first), ("end", last)):
            if found:
                meta.tag(name, NS_MAM, {"id": found[0].key, "timestamp": stamp(found[0].when)})
        await self.reply(event, reply)
        return True

    # -- the MUC's events --------------------------------------------------------------------

    async def on_history(self, event: HistoryRequest) -> bool | None:
        """Join history from the archive (XEP-0045 §7.2.15), as Prosody's muc_mam does:
        it holds more than the in-memory history and survives restarts."""
        room = event.room
        if not self.enabled(room) or room.jid.node is None:
            return None
        window = history_window(event.limits, room.config.history_length, self.module.now())
        if window is None:
            return None
        wanted, since = window
        try:
            await self.flushed()
            found = await self.store.find(room.jid.node, ArchiveQuery(
                start=since, limit=wanted, reverse=True))
        except StorageError:
            self.module.log.exception("history of %s from the archive failed", room.jid)
            return None  # the in-memory history answers instead
        items = [HistoryItem(i.key, i.value, i.when) for i in reversed(found)]
        event.messages.extend(history_messages(
            items, str(room.jid), event.limits.maxchars, stamp,
            reveal=room.config.whois == "anyone"))
        return True

    def on_disco(self, event: DiscoInfo) -> None:
        """XEP-0313 §7: a room with an archive says so in its disco#info."""
        if self.enabled(event.room):
            event.features.extend((NS_MAM, NS_MAM_EXTENDED))
        event.features.extend((NS_MODERATE, NS_MODERATE_0))

    def on_config_form(self, event: ConfigForm) -> None:
        """XEP-0045 §10.2 ``muc#roomconfig_enablearchiving``, unless forced on for all."""
        if self.log_all_rooms:
            return
        event.fields.append(Field.boolean(FIELD_ARCHIVING, self.enabled(event.room),
                                          "Archive messages (XEP-0313)"))

    def on_config_submitted(self, event: ConfigSubmitted) -> None:
        if self.log_all_rooms:
            return
        try:
            chosen = event.form.get_bool(FIELD_ARCHIVING)
        except FormError:
            event.error = StanzaError("not-acceptable",
                                      "muc#roomconfig_enablearchiving is boolean")
            return
        if chosen is None:
            return
        before = self.enabled(event.room)
        event.room.config.extra[FIELD_ARCHIVING] = chosen
        if chosen != before:  # XEP-0045 §10.2.1: 170 logging on, 171 logging off
            event.status_codes.add("170" if chosen else "171")

    async def on_destroyed(self, event: RoomEvent) -> None:
        """A destroyed room's archive goes with it (as in Prosody)."""
        node = event.room.jid.node
        if node is None:
            return
        try:
            await self.flushed()
            await self.store.delete_user(node)
        except StorageError:
            self.module.log.exception("could not delete the archive of %s", event.room.jid)

    # -- moderation (XEP-0425) ---------------------------------------------------------------

    async def on_moderate(self, event: StanzaEvent) -> bool | None:
        """A moderator retracts a message: the archive keeps a tombstone, occupants are
        told with a ``<retract/>`` message (XEP-0425 §4, §5)."""
        payload = event.stanza.iq_payload()
        if payload is None:
            return None
        try:
            room = self.service.get_room(event.to) if event.to is not None else None
            if room is None or room.jid.node is None:
                raise StanzaError("item-not-found", "no such room")
            request = parse_moderate(payload)
            if request is None:
                raise StanzaError("bad-request", "moderate needs an id and <retract/>")
            moderator = room.occupant_by_real_jid(event.from_) \
                if event.from_ is not None else None
            if moderator is None or moderator.role != "moderator":
                raise StanzaError("forbidden", "only moderators retract messages",
                                  type="auth")
            await self.flushed()
            found = await self.store.find(room.jid.node, ArchiveQuery(
                ids=[request.stanza_id], limit=1))
            if not found:
                raise StanzaError("item-not-found", "no such message in the archive")
            await self.retract(room, found[0], str(moderator.jid), request.reason)
        except StanzaError as err:
            return await self.fail(event, err)
        except StorageError:
            self.module.log.exception("moderation in %s failed", event.to)
            return await self.fail(event, StanzaError("internal-server-error"))
        await self.reply(event, event.stanza.reply())
        return True

    async def retract(self, room: Room, item: ArchiveItem, by: str,
                      reason: str | None) -> None:
        """Tombstone the item in place (same key and time), then announce it; the
        announcement is archived too, so clients that sync later learn of it."""
        node = room.jid.node or ""
        now = self.module.now()
        await self.store.append(node, tombstone(item.value, by, reason, stamp(now)),
                                when=item.when, with_jid=item.with_jid, key=item.key)
        # XEP-0425 §4 puts the moderator's XEP-0421 occupant-id in <moderated/>; the MUC
        # surface does not expose it, and it is a SHOULD: left out.
        notice = retraction_message(str(room.jid), item.key, by, reason, None, new_key())
        if self.enabled(room):
            key = new_key()
            await self.store.append(node, notice.copy(), when=now, with_jid=str(room.jid),
                                    key=key)
            add_stanza_id(notice, key, str(room.jid))
        room.broadcast(notice)

    # -- expiry ------------------------------------------------------------------------------

    async def cleanup(self) -> float:
        """Delete what is older than muc_log_expires_after, in bounded batches."""
        return await expiry_run(self.module, self.store, self.expires_after,
                                self.cleanup_interval, "room messages")
