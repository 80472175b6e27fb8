"""The errors of XEP-0060 as data: one row per case the XEP names (§6-§8).

Each row is (RFC 6120 condition, pubsub#errors child or None). A handler raises
``PubsubError("nodeid-required")``; :func:`to_stanza_error` turns it into the stanza
error once, at the edge, so the engine never builds XML for errors.
"""

from __future__ import annotations

from tercet.protocol.errors import StanzaError
from tercet.protocol.stanza import NS_STANZAS, Element

NS_ERRORS = "http://jabber.org/protocol/pubsub#errors"

#: XEP-0060 error cases: name -> (stanza condition, application condition).
ERRORS: dict[str, tuple[str, str | None]] = {
    # generic
    "item-not-found": ("item-not-found", None),
    "forbidden": ("forbidden", None),
    "conflict": ("conflict", None),
    "bad-request": ("bad-request", None),
    "not-allowed": ("not-allowed", None),
    "internal-server-error": ("internal-server-error", None),
    "policy-violation": ("policy-violation", None),
    "resource-constraint": ("resource-constraint", None),
    # §6.1.3 subscribe
    "invalid-jid": ("bad-request", "invalid-jid"),
    "presence-subscription-required": ("not-authorized", "presence-subscription-required"),
    "not-in-roster-group": ("not-authorized", "not-in-roster-group"),
    "closed-node": ("not-allowed", "closed-node"),
    "pending-subscription": ("not-authorized", "pending-subscription"),
    "too-many-subscriptions": ("not-allowed", "too-many-subscriptions"),
    # §6.2.3 unsubscribe, §6.3 options
    "subid-required": ("bad-request", "subid-required"),
    "not-subscribed": ("unexpected-request", "not-subscribed"),
    "invalid-subid": ("not-acceptable", "invalid-subid"),
    "invalid-options": ("bad-request", "invalid-options"),
    # §6.5.9 items
    "not-subscribed-items": ("not-authorized", "not-subscribed"),
    # §7.1.3 publish, §7.2.3 retract
    "payload-too-big": ("not-acceptable", "payload-too-big"),
    "invalid-payload": ("bad-request", "invalid-payload"),
    "item-required": ("bad-request", "item-required"),
    "item-forbidden": ("bad-request", "item-forbidden"),
    "nodeid-required": ("bad-request", "nodeid-required"),
    "precondition-not-met": ("conflict", "precondition-not-met"),
    "too-many-items": ("bad-request", None),
    # §8 owner use cases
    "node-config-invalid": ("not-acceptable", None),
    "unsupported": ("feature-not-implemented", "unsupported"),
    "max-nodes-exceeded": ("not-allowed", "max-nodes-exceeded"),
}


class PubsubError(Exception):
    """An expected failure of a pubsub request; ``kind`` is a key of :data:`ERRORS`.

    ``feature`` names the unsupported feature (§5.4: ``<unsupported feature='...'/>``);
    ``text`` is a fixed human explanation, never exception text."""

    def __init__(self, kind: str, text: str | None = None, *, feature: str | None = None,
                 type_: str | None = None) -> None:
        if kind not in ERRORS:
            raise ValueError(f"unknown pubsub error {kind!r}")
        super().__init__(kind if text is None else f"{kind}: {text}")
        self.kind = kind
        self.text = text
        self.feature = feature
        self.type = type_


def to_stanza_error(error: PubsubError) -> StanzaError:
    """The stanza error for ``error``, with its pubsub#errors child."""
    condition, app = ERRORS[error.kind]
    extra = None
    if app is not None:
        extra = Element(app, NS_ERRORS)
        if error.feature is not None:
            extra.attrs["feature"] = error.feature
    return StanzaError(condition, error.text, type=error.type, extra=extra)


def error_reply(stanza: Element, error: PubsubError) -> Element:
    """The error reply to an iq for ``error``.

    Built here rather than by StanzaError.to_element because the <text/> goes without
    xml:lang, as other servers send it and as clients compare it (RFC 6120 §8.3.2 makes
    the attribute optional)."""
    err = to_stanza_error(error)
    reply = stanza.reply()
    reply.attrs["type"] = "error"
    el = reply.tag("error", stanza.xmlns, {"type": err.type})
    el.tag(err.condition, NS_STANZAS)
    if err.text:
        el.text_tag("text", err.text, NS_STANZAS)
    if err.extra is not None:
        el.append(err.extra)
    return reply
