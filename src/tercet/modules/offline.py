"""Offline messages (XEP-0160) with delay stamps (XEP-0203).

The message module fires ``message/offline`` for a chat or normal message to an existing
account with no available resource of non-negative priority. Such messages are kept in
the archive store ``offline`` with ``<delay from='host' stamp='...'/>`` added, and sent,
oldest first, to the first resource that then sends available presence with a
non-negative priority (XEP-0160 §2, step 5); delivered messages are deleted.

Not kept (XEP-0160 §3, XEP-0334 hints, XEP-0085 "Server Handling of Notifications"):
messages with ``<no-store xmlns='urn:xmpp:hints'/>`` (answered ``service-unavailable``,
as RFC 6121 §8.5.2.2.1 asks of any message that is not stored), and standalone chat state
notifications (dropped silently). ``<store/>`` keeps a message either way. Groupchat,
headline and error messages never get here (message.py).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from tercet.module import (
    MAX_ARCHIVE_PAGE,
    ArchiveQuery,
    ClientSession,
    ModuleApi,
    Option,
    StanzaError,
    StanzaEvent,
    StorageError,
)
from tercet.modules._rosterlib import stamp
from tercet.protocol.stanza import NS_DELAY, Element

META = {"summary": "Offline messages", "stage": "stable", "xeps": ["XEP-0160", "XEP-0203"]}
NS_HINTS = "urn:xmpp:hints"
NS_CHATSTATES = "http://jabber.org/protocol/chatstates"
# Children that may travel with a chat state without making it more than a notification.
_NOTIFICATION_NS = frozenset((NS_CHATSTATES, NS_HINTS, "urn:xmpp:sid:0"))
OPTIONS: list[Option[Any]] = [
    # XEP-0160 §2 step 3: a full queue makes the server answer service-unavailable.
    Option("offline_message_limit", int, 1000, "Messages stored per offline user.",
           min=0, max=1_000_000, cite="XEP-0160 §2"),
]


def load(module: ModuleApi) -> None:
    limit = module.option("offline_message_limit")
    store = module.open_archive("offline")
    module.add_feature("msgoffline")  # XEP-0160 §4

    async def on_offline(event: StanzaEvent) -> bool | None:
        stanza = event.stanza
        if is_standalone_notification(stanza):
            return True  # nothing worth keeping, and not worth an error either
        if stanza.find("no-store", NS_HINTS) is not None or limit == 0:
            return None  # not stored: message.py answers service-unavailable
        username = event.to.node if event.to is not None else None
        if username is None:
            return None  # never: message.py fires this for an account's JID
        async with module.lock(username):
            try:
                if await store.count(username, ArchiveQuery()) >= limit:
                    await bounce(stanza)
                    return True
                await store.append(username, with_delay(stanza), when=module.now(),
                                   with_jid=stanza.get("from") or "")
            except StorageError:
                module.log.exception("could not store an offline message for %s", username)
                return None
        return True

    async def bounce(stanza: Element) -> None:
        # service-unavailable rather than resource-constraint: XEP-0160 §2 step 3 names it
        # for a full queue, and RFC 6121 §8.5.2.2.1 for any message not stored; the
        # condition does not reveal whether the account exists.
        if stanza.get("type") != "error":
            await module.send(stanza.error_reply(StanzaError(
                "service-unavailable", "offline storage full")))

    def with_delay(stanza: Element) -> Element:
        copy = stanza.copy()
        # One delay per entity (XEP-0203 §3): a message stream management routes here
        # after its session ended already says since when this server held it.
        if not any(c.name == "delay" and c.xmlns == NS_DELAY and c.get("from") == module.host
                   for c in copy.elements()):
            copy.tag("delay", NS_DELAY, {"from": module.host, "stamp": stamp(module.now())})
        return copy

    async def deliver(session: ClientSession) -> None:
        """Send every stored message to ``session``, oldest first, then delete them."""
        username = session.username
        if username is None:
            return
        async with module.lock(username):
            previous: str | None = None
            # Each round sends one page and deletes it; a page that comes back unchanged
            # (nothing was deleted) ends the loop, so it cannot spin.
            while not session.closed:
                page = await store.find(username, ArchiveQuery(limit=MAX_ARCHIVE_PAGE))
                if not page or page[0].key == previous:
                    return
                previous = page[0].key
                for item in page:
                    session.send(item.value)
                await store.delete(username, ArchiveQuery(ids=[i.key for i in page]))

    def on_initial(session: ClientSession) -> Awaitable[None] | None:
        if session.priority < 0:
            session.data["offline.waiting"] = True  # XEP-0160 §2: not to negative priority
            return None
        return deliver_logged(session)

    def on_available(session: ClientSession) -> Awaitable[None] | None:
        if session.priority < 0:
            session.data["offline.waiting"] = True
            return None
        if session.data.pop("offline.waiting", False):
            return deliver_logged(session)
        return None

    async def deliver_logged(session: ClientSession) -> None:
        session.data.pop("offline.waiting", None)
        try:
            await deliver(session)
        except StorageError:
            module.log.exception("could not deliver offline messages to %s", session.full_jid)

    module.hook("message/offline", on_offline, -1)
    module.hook("initial-presence", on_initial)
    module.hook("presence-available", on_available)


def is_standalone_notification(stanza: Element) -> bool:
    """A chat state notification with no body and no store hint (XEP-0085)."""
    if stanza.find("body") is not None or stanza.find("store", NS_HINTS) is not None:
        return False
    children = list(stanza.elements())
    return any(c.xmlns == NS_CHATSTATES for c in children) and all(
        c.xmlns in _NOTIFICATION_NS or c.name == "thread" for c in children)
