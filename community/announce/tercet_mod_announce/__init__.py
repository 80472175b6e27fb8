"""Announcements (as Prosody's mod_announce): an admin sends a message to
``<host>/announce/online`` and every user online on that host gets a copy from the host.

Only actors with the ``announce:send`` permission (admins by default) may announce; others
get ``forbidden``. The copy keeps the message's type and payload (body, subject, ...).
"""

from __future__ import annotations

from tercet.module import ModuleApi, StanzaError, StanzaEvent

META = {"summary": "Announcements to every online user", "stage": "stable", "xeps": []}
#: The least role with each action (docs/roles.md); custom roles may grant or deny it.
PERMISSIONS = {":send": "tercet:admin"}


def load(module: ModuleApi) -> None:
    address = f"{module.host}/announce/online"

    async def on_message(event: StanzaEvent) -> bool | None:
        stanza = event.stanza
        if stanza.get("to") != address:
            return None  # some other message to the host: not ours
        if stanza.get("type") == "error":
            return True  # never answer an error (RFC 6120 §8.3.1)
        if not module.may(":send", event):
            event.origin.send(stanza.error_reply(StanzaError("forbidden")))
            return True
        sessions = module.all_sessions()  # a snapshot: bounded by the sessions bound now
        for session in sessions:
            copy = stanza.copy()
            copy.attrs = {k: v for k, v in stanza.attrs.items() if k in ("type", "xml:lang")}
            copy.attrs.update({"from": module.host, "to": str(session.full_jid)})
            await module.send(copy)
        module.log.info("%s announced to %d session(s)", event.from_, len(sessions))
        return True

    # A JID with a resource on the host's domain is still addressed to the host (to_type host).
    module.hook("message/host", on_message, 10)
