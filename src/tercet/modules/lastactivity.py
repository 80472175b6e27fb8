"""Last Activity of accounts (XEP-0012 §3): how long ago the user went offline, and the
status text of the last unavailable presence.

The time and status are recorded when a client sends unavailable presence, and when a
resource that was still available goes away without one (its time, no status); they are
kept in the keyval store "lastactivity" as ``{"time": <epoch seconds>, "status": str}``.

Only the user and contacts with a subscription ``from`` or ``both`` may ask; anyone else
gets ``forbidden`` (XEP-0012 §3.1, which also keeps the account's existence private). An
account with an available resource answers ``seconds='0'`` (XEP-0012 §3.1); an account
never seen offline also answers 0, as Prosody does.
"""

from __future__ import annotations

import asyncio

from tercet.module import ClientSession, ModuleApi, StanzaError, StanzaEvent
from tercet.modules._rosterlib import contact_subscription

NS_LAST = "jabber:iq:last"
META = {"summary": "Last activity of accounts", "stage": "stable", "xeps": ["XEP-0012"]}


class _LastActivity:
    """Records when accounts went offline and answers ``jabber:iq:last`` about them."""

    def __init__(self, module: ModuleApi) -> None:
        self.module = module
        self.store = module.open_keyval("lastactivity")
        # Records not yet written: a query right after going offline must already see them.
        # At most one entry per account, removed once written.
        self.pending: dict[str, dict[str, float | str]] = {}
        # One background writer per account at most, so a client sending unavailable
        # presence in a loop cannot pile up storage tasks: the writer stores the newest
        # record, and again if a newer one arrived meanwhile.
        self.writers: dict[str, asyncio.Task[None]] = {}

    def record(self, username: str, status: str) -> None:
        self.pending[username] = {"time": self.module.now(), "status": status}
        if username not in self.writers:
            self.writers[username] = self.module.spawn(self.flush(username))

    async def flush(self, username: str) -> None:
        try:
            while (rec := self.pending.get(username)) is not None:
                try:
                    await self.store.set(username, rec)
                except Exception:
                    self.module.log.exception("could not store the last activity of %s", username)
                if self.pending.get(username) is rec:
                    del self.pending[username]
        finally:
            del self.writers[username]

    def on_unavailable(self, event: StanzaEvent) -> None:
        stanza, session = event.stanza, event.origin
        if event.to is None and stanza.get("type") == "unavailable" \
                and isinstance(session, ClientSession) and session.username:
            self.record(session.username, stanza.child_text("status") or "")

    def on_unbind(self, session: ClientSession) -> None:
        if session.available and session.username:  # gone without unavailable presence
            self.record(session.username, "")

    async def on_query(self, event: StanzaEvent) -> bool | None:
        owner = event.to_type == "self"
        if owner:
            origin = event.origin
            username = origin.username if isinstance(origin, ClientSession) else None
        else:
            username = event.to.node if event.to is not None else None
        if username is None:
            return None  # not an account's JID, or "self" from no local client
        if not owner and (event.from_ is None or await contact_subscription(
                self.module, username, str(event.from_.bare)) not in ("from", "both")):
            event.origin.send(event.stanza.error_reply(StanzaError("forbidden")))
            return True
        seconds, status = 0, ""
        if not any(s.available for s in self.module.sessions(username).values()):
            rec: object = self.pending.get(username) or await self.store.get(username)
            if isinstance(rec, dict) and isinstance(rec.get("time"), int | float):
                seconds = max(0, int(self.module.now() - rec["time"]))
                status = str(rec.get("status") or "")
        reply = event.stanza.reply()
        query = reply.tag("query", NS_LAST, {"seconds": str(seconds)})
        if status:
            query.append(status)
        event.origin.send(reply)
        return True


def load(module: ModuleApi) -> None:
    activity = _LastActivity(module)
    module.add_feature(NS_LAST)
    module.provides("account-feature", NS_LAST)
    # Above presence.py's broadcast handler (100), which ends the chain.
    module.hook("pre-presence/bare", activity.on_unavailable, 110)
    # Before presence.py's unbind handler marks the session unavailable.
    module.hook("resource-unbind", activity.on_unbind, 10)
    module.hook(f"iq-get/bare/{NS_LAST}:query", activity.on_query)

