"""Message delivery to local accounts (RFC 6121 §8.5.2 and §8.5.3).

To a full JID: that resource if it is bound, otherwise as if to the bare JID (chat and
normal), silently dropped (headline), or an error (groupchat). To a bare JID: the available
resources with the highest non-negative priority (chat, normal), every non-negative resource
(headline), otherwise ``message/offline`` (the offline module stores it), and failing that
``service-unavailable``.
"""

from __future__ import annotations

from collections.abc import Awaitable

from tercet.module import ModuleApi, StanzaError, StanzaEvent

META = {"summary": "Message delivery (RFC 6121 §8.5)", "stage": "stable", "xeps": []}


def load(module: ModuleApi) -> None:
    # Bound once: a method read on ``module`` from compiled code is a Python-level lookup
    # with an argument tuple and keyword dict each time (core/moduleapi.py, _host_of);
    # calling the bound method skips both, once per delivery.
    sessions_of = module.sessions

    def bounce(event: StanzaEvent, condition: str = "service-unavailable") -> bool:
        stanza = event.stanza
        if stanza.attrs.get("type") != "error":
            module.send_detached(stanza.error_reply(StanzaError(condition)))
        return True

    def to_full(event: StanzaEvent) -> Awaitable[bool] | bool | None:
        to = event.to
        if to is None or to.node is None:
            return None  # not an account's JID: the router answers
        session = sessions_of(to.node, to.domain).get(to.resource or "")
        if session is not None:
            session.send(event.stanza)
            return True
        mtype = event.stanza.attrs.get("type", "normal")
        if mtype == "groupchat":
            return bounce(event)
        if mtype in ("headline", "error"):
            return True
        return to_bare(event)

    def to_bare(event: StanzaEvent) -> Awaitable[bool] | bool | None:
        stanza = event.stanza
        to = event.to
        if to is None or to.node is None:
            return None  # not an account's JID: the router answers
        mtype = stanza.attrs.get("type", "normal")
        sessions = [s for s in sessions_of(to.node, to.domain).values()
                    if s.available and s.priority >= 0]
        if sessions:
            if mtype == "groupchat":
                return bounce(event)
            if mtype != "headline":
                top = max(s.priority for s in sessions)
                sessions = [s for s in sessions if s.priority == top]
            for s in sessions:
                s.send(stanza)
            return True
        if mtype in ("headline", "error"):
            return True
        if mtype == "groupchat":
            return bounce(event)
        return offline(event, to.node)

    async def offline(event: StanzaEvent, username: str) -> bool:
        if not await module.account_exists(username):
            return bounce(event)
        stored = await module.fire_async("message/offline", event)
        if stored is None:
            return bounce(event)
        return True

    module.hook("message/full", to_full, -1)
    module.hook("message/bare", to_bare, -1)
