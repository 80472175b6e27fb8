"""IQ dispatch (RFC 6120 §8.2.3): one computed event per payload namespace and name.

For an iq get/set with payload ``<query xmlns='jabber:iq:version'/>`` to the host this fires
``iq-get/host/jabber:iq:version:query``, then ``iq/host/jabber:iq:version:query``. IQs to
one's own account (``self``) fall back to the ``bare`` names. Responses (result/error) to the
host or an account fire ``iq-result/<to_type>/<id>`` (or ``iq-error/...``) so a module can
wait for the answer to an IQ it sent. An unhandled get/set is answered
``service-unavailable`` by the router; IQs to a full JID go straight to that resource.
"""

from __future__ import annotations

from tercet.module import ModuleApi, StanzaError, StanzaEvent

META = {"summary": "IQ routing (RFC 6120 §8.2.3)", "stage": "stable", "xeps": []}


def load(module: ModuleApi) -> None:
    def dispatch(event: StanzaEvent) -> object:
        stanza = event.stanza
        iq_type = stanza.attrs.get("type")
        if iq_type in ("get", "set"):
            payload = stanza.iq_payload()
            if payload is None or sum(1 for _ in stanza.elements()) != 1 \
                    or not stanza.attrs.get("id"):
                return bounce(event, StanzaError("bad-request"))
            key = f"{payload.xmlns}:{payload.name}"
            for to_type in (("self", "bare") if event.to_type == "self" else (event.to_type,)):
                result = module.deliver(event, f"iq-{iq_type}/{to_type}/{key}")
                if result is not None:
                    return result
                result = module.deliver(event, f"iq/{to_type}/{key}")
                if result is not None:
                    return result
            return None
        if iq_type in ("result", "error"):
            module.deliver(event, f"iq-{iq_type}/{event.to_type}/{stanza.attrs.get('id', '')}")
            return True
        return bounce(event, StanzaError("bad-request"))

    def bounce(event: StanzaEvent, error: StanzaError) -> bool:
        if event.stanza.attrs.get("type") not in ("error", "result"):
            if event.origin.kind == "c2s":
                event.origin.send(event.stanza.error_reply(error))
            else:
                module.send_detached(event.stanza.error_reply(error))
        return True

    def to_full(event: StanzaEvent) -> bool | None:
        stanza = event.stanza
        to = event.to
        if to is None or to.node is None:
            return None  # never: a full JID names an account
        session = module.sessions(to.node, to.domain).get(to.resource or "")
        if session is not None:
            session.send(stanza)
            return True
        if stanza.attrs.get("type") in ("get", "set"):
            return bounce(event, StanzaError("service-unavailable"))
        return True

    module.hook("iq/host", dispatch, -1)
    module.hook("iq/bare", dispatch, -1)
    module.hook("iq/self", dispatch, -1)
    module.hook("iq/full", to_full, -1)
