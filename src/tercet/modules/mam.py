"""Message Archive Management (XEP-0313 ``urn:xmpp:mam:2`` and ``#extended``) with stanza
IDs (XEP-0359).

Every 1:1 message a local user sends (``pre-message/*``, after policy modules) or receives
(``message/bare``, ``message/full``, before delivery and before offline storage) goes into
the user's archive store ``archive`` when :func:`_mamlib.archivable` and the user's
preferences say so. An archived incoming message is delivered with
``<stanza-id by='user@host' id='<archive id>'/>``; stanza-ids with that ``by`` put in by
anyone else are removed first (XEP-0359 §4). The server itself is not anyone else: a
message it routes again (``module.send``, host origin) that already carries that
stanza-id was archived when it first arrived, and is not archived twice; that is how the
unacknowledged messages of an ended stream management session (``smacks``) come back.
Offline messages carry the stanza-id too, since offline storage runs after this module.

Queries (§4), the query form (§5.1.1), the metadata query (§5.1.2 of 0313 1.1) and
preferences (§6) are iqs to the user's own account. Pages are RSM (XEP-0059) pages: results
are sent before the iq result, which carries ``<fin/>`` with first (index), last and count.
Old items are deleted by a timer, in bounded batches (``archive_expires_after``).

Archiving does not hold up delivery: the archive id (a time-ordered UUIDv7-style key) and
the time are fixed when the message arrives, the stanza is stamped, and the append goes to
one writer task of the module that writes in arrival order from a bounded queue
(``ARCHIVE_QUEUE_MAX``; when full, the handler awaits its own write, so memory stays
bounded). A query (and the item-limit check) first waits until everything queued before
it is written (read your writes); unloading the module drains the queue. Preferences are
cached per user (bounded LRU), updated when set through this module.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Awaitable
from typing import Any

from tercet.module import (
    MAX_ARCHIVE_PAGE,
    ArchiveAppend,
    ArchiveItem,
    ArchiveKeyNotFound,
    ArchiveQuery,
    ClientSession,
    Invalid,
    InvalidJID,
    ModuleApi,
    Option,
    StanzaError,
    StanzaEvent,
    StorageError,
    UserDeleted,
)
from tercet.modules._mamlib import (
    NS_MAM,
    NS_MAM_EXTENDED,
    NS_SID,
    MamQuery,
    Page,
    Prefs,
    QueryError,
    add_stanza_id,
    archivable,
    expiry_seconds,
    fields_form,
    fin,
    parse_prefs,
    parse_query,
    result_message,
    stamp,
    strip_stanza_ids,
)
from tercet.modules._mamstore import (
    ARCHIVE_QUEUE_MAX,
    WRITE_BATCH,
    ArchiveWriter,
    expiry_run,
    query_page,
)
from tercet.modules._rosterlib import RosterService
from tercet.modules._smlib import ACKNOWLEDGE
from tercet.protocol.stanza import Element

META = {"summary": "Message Archive Management", "stage": "beta",
        "xeps": ["XEP-0313", "XEP-0359", "XEP-0059", "XEP-0297"]}

# Runs after policy (blocking 200, filters 50-100) and before delivery and offline
# storage (-1), so it archives what is delivered and offline messages get the stanza-id.
INCOMING_PRIORITY = 1
# pre-message: after every policy module, which may still refuse the message.
OUTGOING_PRIORITY = -10
# Users whose stored preferences are kept in memory (least recently used dropped first).
PREFS_CACHE_MAX = 1000
_MISSING = object()


def _policy_ok(value: Any) -> list[Invalid]:
    if isinstance(value, bool) or value in ("always", "never", "roster"):
        return []
    return [Invalid('true, false, "always", "never" or "roster"', repr(value))]


def _expiry_ok(value: Any) -> list[Invalid]:
    try:
        expiry_seconds(value)
    except ValueError:
        return [Invalid('a duration: seconds, "never", or like "1d", "1w", "2m", "1y"',
                        repr(value), 'archive_expires_after = "1w"')]
    return []


DEFAULT_POLICY = Option[bool | str](
    "default_archive_policy", bool | str, True,
    "Archive messages of users who set no preference: true (always), false (never) or "
    '"roster" (only with contacts in the roster).', validate=_policy_ok,
    cite="XEP-0313 §6")
SMART_ENABLE = Option("mam_smart_enable", bool, False,
                      "Archive only for users who have used MAM once (queried or set "
                      "preferences); before that, nothing is archived for them.")
MAX_RESULTS = Option("max_archive_query_results", int, 50,
                     "Most results in one page of a query; larger RSM max values are "
                     "capped to it.", min=1, max=MAX_ARCHIVE_PAGE, cite="XEP-0313 §5.1")
EXPIRES_AFTER = Option[int | str](
    "archive_expires_after", int | str, "1w",
    'Delete archived messages older than this: seconds, "never", or a number with d '
    "(days), w (weeks), m (months), y (years).", validate=_expiry_ok)
CLEANUP_INTERVAL = Option("archive_cleanup_interval", float, 4 * 3600.0,
                          "Seconds between two runs of the expiry job.",
                          min=0.01, max=7 * 86400)
ITEM_LIMIT = Option[int | None](
    "archive_item_limit", int | None, None,
    "Most messages kept per user; when full, new messages are not archived (and not "
    "marked with a stanza-id) and a warning is logged. None: no limit.", min=1)
OPTIONS: list[Option[Any]] = [DEFAULT_POLICY, SMART_ENABLE, MAX_RESULTS, EXPIRES_AFTER,
                              CLEANUP_INTERVAL, ITEM_LIMIT]


_INSTANCES: dict[ModuleApi, Mam] = {}


def load(module: ModuleApi) -> None:
    mam = Mam(module)
    _INSTANCES[module] = mam
    module.provides("account-feature", NS_MAM)
    module.provides("account-feature", NS_MAM_EXTENDED)
    for to_type in ("bare", "full"):
        module.hook(f"pre-message/{to_type}", mam.on_outgoing, OUTGOING_PRIORITY)
        module.hook(f"message/{to_type}", mam.on_incoming, INCOMING_PRIORITY)
    module.hook(f"iq-set/self/{NS_MAM}:query", mam.on_query)
    module.hook(f"iq-get/self/{NS_MAM}:query", mam.on_form)
    module.hook(f"iq-get/self/{NS_MAM}:metadata", mam.on_metadata)
    module.hook(f"iq-get/self/{NS_MAM}:prefs", mam.on_prefs_get)
    module.hook(f"iq-set/self/{NS_MAM}:prefs", mam.on_prefs_set)
    module.hook("user-deleted", mam.on_user_deleted)
    module.hook(ACKNOWLEDGE, mam.on_acknowledge)
    if mam.expires_after is not None:
        module.add_timer(mam.cleanup_interval, mam.cleanup)


async def unload(module: ModuleApi) -> None:
    """Write everything still queued for the archive before the module goes."""
    mam = _INSTANCES.pop(module, None)
    if mam is not None:
        await mam.drain()


_last_key_ms = 0
_last_key_seq = 0


def new_key() -> str:
    """A fresh archive id: UUIDv7 layout (RFC 9562 §5.7), time-ordered and unguessable.

    48 bits of Unix milliseconds, then a 12-bit counter within the millisecond (so keys
    made in one process sort in the order they were made), then 62 random bits.
    """
    global _last_key_ms, _last_key_seq
    ms = time.time_ns() // 1_000_000
    if ms <= _last_key_ms:
        ms = _last_key_ms
        _last_key_seq += 1
        if _last_key_seq > 0xFFF:  # counter overflow: borrow the next millisecond
            ms += 1
            _last_key_seq = 0
    else:
        _last_key_seq = 0
    _last_key_ms = ms
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (_last_key_seq << 64) | (0b10 << 62) | rand
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def has_stanza_id(stanza: Element, by: str) -> bool:
    """Whether ``stanza`` carries a ``<stanza-id/>`` of the archive ``by``."""
    return any(c.get("by") == by for c in stanza.find_all("stanza-id", NS_SID))


class Mam:
    """The module on one host: options, the archive and preference stores, handlers."""

    def __init__(self, module: ModuleApi) -> None:
        self.module = module
        policy = module.option(DEFAULT_POLICY)
        self.default_policy = policy if isinstance(policy, str) else (
            "always" if policy else "never")
        self.smart_enable = module.option(SMART_ENABLE)
        self.max_results = module.option(MAX_RESULTS)
        self.expires_after = expiry_seconds(module.option(EXPIRES_AFTER))
        self.cleanup_interval = module.option(CLEANUP_INTERVAL)
        self.item_limit = module.option(ITEM_LIMIT)
        self.full: set[str] = set()  # users whose full archive was logged already
        self.store = module.open_archive("archive")
        self.prefs_store = module.open_keyval("archive_prefs")
        # Stored preferences (the raw JSON value, None for none) of recent users.
        self.prefs_cache: OrderedDict[str, Any] = OrderedDict()
        self.prefs_generation = 0  # bumped on every set: a read racing it is not cached
        self.writer = ArchiveWriter(module, self.store, "message", max_queue=ARCHIVE_QUEUE_MAX,
                                    batch=WRITE_BATCH)
        self.flushed = self.writer.flushed
        self.drain = self.writer.drain

    # -- archiving -------------------------------------------------------------------------

    async def on_outgoing(self, event: StanzaEvent) -> None:
        """A local client sends a message: into the sender's archive."""
        origin, stanza = event.origin, event.stanza
        if not self.module.is_host_client(origin) or origin.username is None:
            return
        if not archivable(stanza):
            return
        to = event.to
        if to is None or (to.node == origin.username and to.domain == self.module.host):
            return  # to one's own account: archived once, as incoming
        await self.archive(origin.username, stanza.copy(), str(to))

    async def on_incoming(self, event: StanzaEvent) -> None:
        """A message for a local user: into the recipient's archive, stanza-id added."""
        to, stanza = event.to, event.stanza
        if to is None or to.node is None:
            return
        by = f"{to.node}@{to.domain}"
        if event.origin is self.module.host_origin and has_stanza_id(stanza, by):
            # Routed again by this server (stream management re-delivers what a session
            # that ended never acknowledged): its stanza-id says it is archived already.
            return
        strip_stanza_ids(stanza, by)
        if not archivable(stanza):
            return
        if not self.module.sessions(to.node) and not await self.module.account_exists(to.node):
            return
        key = await self.archive(to.node, stanza.copy(), stanza.get("from") or "")
        if key is not None:
            add_stanza_id(stanza, key, by)

    async def archive(self, username: str, stanza: Element, with_jid: str) -> str | None:
        """Queue an append if the preferences allow; the archive id, or None when not
        archived. The id and time are fixed now; the writer task does the append."""
        try:
            if not await self.wanted(username, with_jid.partition("/")[0]):
                return None
            if self.item_limit is not None:
                await self.flushed()
                if await self.store.count(username, ArchiveQuery()) >= self.item_limit:
                    if username not in self.full:  # once, not for every message
                        self.full.add(username)
                        self.module.log.warning(
                            "archive of %s is full (%d items): new messages are not "
                            "archived until items expire", username, self.item_limit)
                    return None
                self.full.discard(username)  # room again: warn when it fills up next
        except StorageError:
            self.module.log.exception("could not archive a message of %s", username)
            return None
        key = new_key()
        waiting = self.writer.add(ArchiveAppend(username, stanza, self.module.now(),
                                                with_jid, key))
        if waiting is not None:
            await waiting  # the queue was full: the sender's stream waits for its write
        return key

    def on_acknowledge(self, _session: ClientSession) -> Awaitable[None] | None:
        """A stream management <r/>: what was received so far is acknowledged only once
        its archive entries are written (a client may then forget it, and a crash must
        not lose it). Queued writes of all users are waited for: one batch, no order
        bookkeeping per session; usually nothing is pending and this costs nothing."""
        return self.writer.flushed() if self.writer.pending else None

    async def on_user_deleted(self, event: UserDeleted) -> None:
        """Storage was purged: writes still queued for the user must not bring it back."""
        self.prefs_generation += 1
        self.prefs_cache.pop(event.username, None)
        if self.writer.pending:
            await self.flushed()
            try:
                await self.store.delete_user(event.username)
            except StorageError:
                self.module.log.exception("could not purge the archive of %s",
                                          event.username)

    async def stored_prefs(self, username: str) -> Any:
        """The user's stored preferences, from the cache or (once) from the store."""
        value = self.prefs_cache.get(username, _MISSING)
        if value is not _MISSING:
            self.prefs_cache.move_to_end(username)
            return value
        generation = self.prefs_generation
        value = await self.prefs_store.get(username)
        if generation == self.prefs_generation:
            self.cache_prefs(username, value)
        return value

    def cache_prefs(self, username: str, value: Any) -> None:
        self.prefs_cache[username] = value
        self.prefs_cache.move_to_end(username)
        while len(self.prefs_cache) > PREFS_CACHE_MAX:
            self.prefs_cache.popitem(last=False)

    async def set_prefs(self, username: str, value: Any) -> None:
        self.prefs_generation += 1
        self.prefs_cache.pop(username, None)
        await self.prefs_store.set(username, value)
        self.prefs_generation += 1
        self.cache_prefs(username, value)

    async def wanted(self, username: str, contact: str) -> bool:
        stored = await self.stored_prefs(username)
        if stored is None and self.smart_enable:
            return False
        prefs = Prefs.from_json(stored, self.default_policy)
        decided = prefs.decide(contact)
        if decided is not None:
            return decided
        if prefs.default == "roster":
            roster = self.module.find("roster", RosterService)
            return roster is not None and await roster.item(username, contact) is not None
        return prefs.default == "always"

    async def prefs(self, username: str) -> Prefs:
        """The user's preferences; with mam_smart_enable, using MAM enables archiving."""
        stored = await self.stored_prefs(username)
        prefs = Prefs.from_json(stored, self.default_policy)
        if stored is None and self.smart_enable:
            await self.set_prefs(username, prefs.to_json())
        return prefs

    # -- queries ---------------------------------------------------------------------------

    def owner(self, event: StanzaEvent) -> ClientSession | None:
        origin = event.origin
        if self.module.is_host_client(origin) and origin.username is not None:
            return origin
        return None

    async def on_query(self, event: StanzaEvent) -> bool | None:
        session = self.owner(event)
        payload = event.stanza.iq_payload()
        if session is None or session.username is None or payload is None:
            return None
        try:
            query = parse_query(payload)
            await self.prefs(session.username)
            await self.flushed()  # read your writes: all archived before the query
            items, page = await self.run_query(session.username, query)
        except QueryError as exc:
            session.send(event.stanza.error_reply(StanzaError(exc.condition, exc.text)))
            return True
        except ArchiveKeyNotFound:
            session.send(event.stanza.error_reply(StanzaError(
                "item-not-found", "no such item in the archive")))
            return True
        except StorageError:
            self.module.log.exception("archive query of %s failed", session.username)
            session.send(event.stanza.error_reply(StanzaError("internal-server-error")))
            return True
        to = str(event.from_) if event.from_ is not None else session.full_jid or ""
        for item in (reversed(items) if query.flip else items):
            session.send(result_message(to, query.queryid, item.key, item.when, item.value))
        reply = event.stanza.reply()
        reply.append(fin(page))
        session.send(reply)
        return True

    async def run_query(self, username: str, q: MamQuery) -> tuple[list[ArchiveItem], Page]:
        limit = self.max_results if q.max is None else min(q.max, self.max_results)
        with_jid = None
        if q.with_jid is not None:
            try:
                with_jid = str(self.module.parse_jid(q.with_jid))
            except InvalidJID:
                raise QueryError("jid-malformed", "the with field is not a JID") from None
        return await query_page(self.store, username, q, limit, with_jid)

    async def on_form(self, event: StanzaEvent) -> bool | None:
        if self.owner(event) is None:
            return None
        reply = event.stanza.reply()
        reply.tag("query", NS_MAM).append(fields_form())
        event.origin.send(reply)
        return True

    async def on_metadata(self, event: StanzaEvent) -> bool | None:
        session = self.owner(event)
        if session is None or session.username is None:
            return None
        try:
            await self.flushed()
            first = await self.store.find(session.username, ArchiveQuery(limit=1))
            last = await self.store.find(session.username, ArchiveQuery(limit=1, reverse=True))
        except StorageError:
            self.module.log.exception("archive metadata of %s failed", session.username)
            session.send(event.stanza.error_reply(StanzaError("internal-server-error")))
            return True
        reply = event.stanza.reply()
        meta = reply.tag("metadata", NS_MAM)
        for name, found in (("start", first), ("end", last)):
            if found:
                meta.tag(name, NS_MAM, {"id": found[0].key, "timestamp": stamp(found[0].when)})
        session.send(reply)
        return True

    # -- preferences (XEP-0313 §6) ----------------------------------------------------------

    async def on_prefs_get(self, event: StanzaEvent) -> bool | None:
        session = self.owner(event)
        if session is None or session.username is None:
            return None
        prefs = await self.prefs(session.username)
        reply = event.stanza.reply()
        reply.append(prefs.to_element())
        session.send(reply)
        return True

    async def on_prefs_set(self, event: StanzaEvent) -> bool | None:
        session = self.owner(event)
        payload = event.stanza.iq_payload()
        if session is None or session.username is None or payload is None:
            return None
        try:
            default, always, never = parse_prefs(payload)
            current = Prefs.from_json(await self.stored_prefs(session.username),
                                      self.default_policy)
            prefs = Prefs(default or current.default,
                          tuple(dict.fromkeys(self.prep(j) for j in always)),
                          tuple(dict.fromkeys(self.prep(j) for j in never)))
        except QueryError as exc:
            session.send(event.stanza.error_reply(StanzaError(exc.condition, exc.text)))
            return True
        await self.set_prefs(session.username, prefs.to_json())
        reply = event.stanza.reply()
        reply.append(prefs.to_element())
        session.send(reply)
        return True

    def prep(self, text: str) -> str:
        try:
            return str(self.module.parse_jid(text))
        except InvalidJID:
            raise QueryError("jid-malformed", "not a JID in the preferences") from None

    # -- expiry ------------------------------------------------------------------------------

    async def cleanup(self) -> float:
        """Delete what is older than archive_expires_after, in bounded batches."""
        return await expiry_run(self.module, self.store, self.expires_after,
                                self.cleanup_interval, "archived messages")
