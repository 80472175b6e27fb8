"""Keep strangers out: a message or a presence subscription request to a local user from a
JID that is not in the user's roster is dropped (messages are bounced with
``service-unavailable`` if ``stranger_filter_bounce`` is set: the answer an account that does
not exist gives, so a stranger learns nothing, RFC 6121 §8.5.2.2).

Never filtered: errors and groupchat messages, servers and components (JIDs without a
local part), the user's own other resources, senders from ``stranger_filter_allow_hosts``,
and JIDs one of the user's sessions sent directed presence to (a chat room joined, so its
private messages get through). iqs are not filtered.

The roster is read from the roster module's keyval store ``roster`` (layout in
docs/roster.md: bare JID -> item), so adding someone to the roster lets them in at once.
"""

from __future__ import annotations

import inspect
from typing import Any

from tercet.core.moduleapi import ModuleApi
from tercet.protocol.errors import StanzaError

META = {"summary": "Drop messages and subscription requests from strangers", "stage": "beta",
        "xeps": []}


def load(module: ModuleApi) -> None:
    bounce = module.option("stranger_filter_bounce", False, type=bool)
    allowed_hosts = set(module.option("stranger_filter_allow_hosts", [], type=list[str]))
    module.depends("roster")
    rosters = module.open_store("roster", "keyval")

    def exempt(event: Any) -> bool:
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

    def on_message(event: Any) -> Any:
        if event.stanza.get("type") in ("error", "groupchat") or exempt(event):
            return None
        return filter_stranger(event)

    def on_presence(event: Any) -> Any:
        if event.stanza.get("type") != "subscribe" or exempt(event):
            return None
        return filter_stranger(event)

    async def filter_stranger(event: Any) -> bool | None:
        # A storage failure raises: the event bus logs it and delivery goes on (fail open),
        # so a broken disk never silently eats wanted messages.
        roster = await rosters.get(event.to.node)
        if isinstance(roster, dict) and str(event.from_.bare) in roster:
            return None  # a contact: delivery goes on
        module.log.debug("dropping %s from stranger %s", event.stanza.name, event.from_)
        if bounce and event.stanza.name == "message":
            result = module.send(event.stanza.error_reply(StanzaError("service-unavailable")))
            if inspect.isawaitable(result):
                await result
        return True

    for to_type in ("bare", "full"):
        # Before delivery (-1) and offline storage, after blocking (200).
        module.hook(f"message/{to_type}", on_message, 100)
        module.hook(f"presence/{to_type}", on_presence, 100)
