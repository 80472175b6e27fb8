"""Resource binding (RFC 6120 §7) and the optional legacy session (RFC 3921 §3).

Conflict policy (RFC 6120 §7.7.2.2), option ``resource_conflict``:
``kick_old`` (default, as Prosody and ejabberd do): the existing session gets a
``conflict`` stream error; ``random``: the new session gets a generated resource;
``refuse``: the new bind fails with ``conflict``.
"""

from __future__ import annotations

import secrets
from typing import Any

from tercet.module import (
    ClientSession,
    ModuleApi,
    Option,
    StanzaError,
    StanzaEvent,
    StreamElementEvent,
    StreamError,
    StreamFeaturesEvent,
)
from tercet.protocol.jid import InvalidJID, resourceprep
from tercet.protocol.stanza import Element

NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session"
META = {"summary": "Resource binding (RFC 6120 §7)", "stage": "stable", "xeps": []}

OPTIONS: list[Option[Any]] = [
    Option("resource_conflict", str, "kick_old",
           "What a bind to a resource already in use does: kick_old, random or refuse.",
           choices=("kick_old", "random", "refuse"), cite="RFC 6120 §7.7.2.2"),
    # resource-constraint: a bound on connected resources per account.
    Option("c2s_max_resources", int, 20, "Resources one account may bind at once.",
           min=1, max=1000, cite="RFC 6120 §7.6.2.1"),
]


def load(module: ModuleApi) -> None:
    policy = module.option("resource_conflict")
    max_resources = module.option("c2s_max_resources")

    def features(event: StreamFeaturesEvent) -> None:
        session = event.session
        if session.authenticated and not session.bound:
            event.features.tag("bind", NS_BIND)
            event.features.tag("session", NS_SESSION).tag("optional", NS_SESSION)
        return None

    def reply_error(session: ClientSession, stanza: Element, error: StanzaError) -> bool:
        session.send(stanza.error_reply(error))
        return True

    def on_bind(event: StreamElementEvent) -> object:
        session, stanza = event.session, event.element
        username = session.username  # set: unbound-iq comes after authentication
        if stanza.get("type") != "set" or username is None:
            return reply_error(session, stanza, StanzaError("bad-request"))
        requested = (stanza.iq_payload() or Element("bind")).child_text("resource", NS_BIND)
        existing = module.sessions(username)
        if len(existing) >= max_resources:
            return reply_error(session, stanza, StanzaError("resource-constraint"))
        resource = _prepare(requested)
        if resource is None:
            return reply_error(session, stanza, StanzaError("bad-request", "invalid resource"))
        if resource in existing:
            if policy == "refuse":
                return reply_error(session, stanza, StanzaError("conflict"))
            if policy == "random":
                resource = f"{resource}.{secrets.token_hex(4)}"
            else:
                module.close_session(existing[resource],
                                     StreamError("conflict", "replaced by a new session"))
        session.bind(resource)
        session.log.info("bound %s", session.full_jid)
        result = Element("iq", attrs={"type": "result", "id": stanza.get("id") or ""})
        result.tag("bind", NS_BIND).text_tag("jid", session.full_jid or "")
        session.send(result)
        # Returned when async: the session waits for resource-bind handlers, so nothing it
        # sends next can overtake them.
        fired = module.fire("resource-bind", session)
        return True if fired is None else fired

    def on_session_unbound(event: StreamElementEvent) -> bool:
        # The legacy session request is a no-op that must still be answered (RFC 6121 §1.4).
        event.session.send(event.element.reply())
        return True

    def on_session(event: StanzaEvent) -> bool:
        event.origin.send(event.stanza.reply())
        return True

    module.hook("stream-features", features, 10)
    module.hook(f"unbound-iq/{NS_BIND}:bind", on_bind)
    module.hook(f"unbound-iq/{NS_SESSION}:session", on_session_unbound)
    module.hook(f"iq-set/self/{NS_SESSION}:session", on_session)
    module.hook(f"iq-set/host/{NS_SESSION}:session", on_session)


def _prepare(requested: str | None) -> str | None:
    if not requested:
        return secrets.token_urlsafe(9)
    try:
        # The resourcepart alone, as JID.parse would prepare it in the full JID: parsing the
        # full JID left an entry in the JID parse cache per session (memory per idle
        # session).
        return resourceprep(requested)
    except InvalidJID:
        return None
