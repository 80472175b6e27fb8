"""Keep strangers out: a message or a presence subscription request to a local user from a
JID that is not in the user's roster is dropped (messages are bounced with
``service-unavailable`` if ``stranger_filter_bounce`` is set: the answer an account that does
not exist gives, so a stranger learns nothing, RFC 6121 §8.5.2.2).

Never filtered: errors and groupchat messages, servers and components (JIDs without a
local part), the user's own other resources, senders from ``stranger_filter_allow_hosts``,
and JIDs one of the user's sessions sent directed presence to (a chat room joined, so its
private messages get through). iqs are not filtered.

The roster is asked through the roster module's ``roster`` service, so adding someone to
the roster lets them in at once.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from tercet.module import ModuleApi, Option, RosterLookup, StanzaError, StanzaEvent

META = {"summary": "Drop messages and subscription requests from strangers", "stage": "beta",
        "xeps": []}
OPTIONS: list[Option[Any]] = [
    Option("stranger_filter_bounce", bool, False,
           "Answer dropped messages with service-unavailable instead of silence.",
           cite="RFC 6121 §8.5.2.2"),
    Option("stranger_filter_allow_hosts", list[str], [], "Domains whose users pass the filter."),
]


def load(module: ModuleApi) -> None:
    bounce = module.option("stranger_filter_bounce")
    allowed_hosts = set(module.option("stranger_filter_allow_hosts"))
    module.depends("roster")

    def exempt(event: StanzaEvent) -> bool:
        """What needs no roster lookup to be let through."""
        to, sender = event.to, event.from_
        if to is None or to.node is None or sender is None or sender.node is None:
            return True
        if sender.bare == to.bare or sender.domain in allowed_hosts:
            return True
        bare = str(sender.bare)
        return any(jid.partition("/")[0] == bare
                   for session in module.sessions(to.node, to.domain).values()
                   for jid in session.directed)

    def on_message(event: StanzaEvent) -> Awaitable[bool | None] | None:
        if event.stanza.get("type") in ("error", "groupchat") or exempt(event):
            return None
        return filter_stranger(event)

    def on_presence(event: StanzaEvent) -> Awaitable[bool | None] | None:
        if event.stanza.get("type") != "subscribe" or exempt(event):
            return None
        return filter_stranger(event)

    async def filter_stranger(event: StanzaEvent) -> bool | None:
        to, sender = event.to, event.from_
        if to is None or to.node is None or sender is None:
            return None  # never: exempt() lets these through
        # A storage failure raises: the event bus logs it and delivery goes on (fail open),
        # so a broken disk never silently eats wanted messages.
        roster = module.require("roster", RosterLookup)
        if await roster.item(to.node, str(sender.bare)) is not None:
            return None  # a contact: delivery goes on
        module.log.debug("dropping %s from stranger %s", event.stanza.name, sender)
        if bounce and event.stanza.name == "message":
            await module.send(event.stanza.error_reply(StanzaError("service-unavailable")))
        return True

    for to_type in ("bare", "full"):
        # Before delivery (-1) and offline storage, after blocking (200).
        module.hook(f"message/{to_type}", on_message, 100)
        module.hook(f"presence/{to_type}", on_presence, 100)
