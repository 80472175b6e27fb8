"""Stream and stanza errors as typed values (RFC 6120 §4.9 and §8.3).

Errors say whose fault they are: ``remote=True`` means the peer violated the protocol and
the condition is what we send it; ``remote=False`` marks our own failure. Neither ever
carries exception text to the peer: ``text`` is a fixed, human-written explanation.
"""

from __future__ import annotations

from tercet.protocol.stanza import NS_CLIENT, NS_STANZAS, Element

NS_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams"

# RFC 6120 §4.9.3
STREAM_CONDITIONS = frozenset({
    "bad-format", "bad-namespace-prefix", "conflict", "connection-timeout", "host-gone",
    "host-unknown", "improper-addressing", "internal-server-error", "invalid-from",
    "invalid-namespace", "invalid-xml", "not-authorized", "not-well-formed",
    "policy-violation", "remote-connection-failed", "reset", "resource-constraint",
    "restricted-xml", "see-other-host", "system-shutdown", "undefined-condition",
    "unsupported-encoding", "unsupported-feature", "unsupported-stanza-type",
    "unsupported-version",
})

# RFC 6120 §8.3.3, with the default error type of each condition (§8.3.3.x examples).
STANZA_CONDITIONS: dict[str, str] = {
    "bad-request": "modify", "conflict": "cancel", "feature-not-implemented": "cancel",
    "forbidden": "auth", "gone": "cancel", "internal-server-error": "cancel",
    "item-not-found": "cancel", "jid-malformed": "modify", "not-acceptable": "modify",
    "not-allowed": "cancel", "not-authorized": "auth", "policy-violation": "modify",
    "recipient-unavailable": "wait", "redirect": "modify", "registration-required": "auth",
    "remote-server-not-found": "cancel", "remote-server-timeout": "wait",
    "resource-constraint": "wait", "service-unavailable": "cancel",
    "subscription-required": "auth", "undefined-condition": "cancel",
    "unexpected-request": "wait",
}


class StreamError(Exception):
    """A condition that ends the stream (RFC 6120 §4.9)."""

    def __init__(self, condition: str, text: str | None = None, *, remote: bool = True,
                 extra: Element | None = None) -> None:
        if condition not in STREAM_CONDITIONS:
            raise ValueError(f"unknown stream error condition {condition!r}")
        super().__init__(condition if text is None else f"{condition}: {text}")
        self.condition = condition
        self.text = text
        self.remote = remote
        # An application-specific condition (RFC 6120 §4.9.4), e.g. XEP-0198's
        # <handled-count-too-high/>.
        self.extra = extra

    def to_element(self) -> Element:
        el = Element("error", "http://etherx.jabber.org/streams")
        el.tag(self.condition, NS_STREAMS)
        if self.text:
            el.tag("text", NS_STREAMS, {"xml:lang": "en"}).append(self.text)
        if self.extra is not None:
            el.append(self.extra)
        return el


class StanzaError(Exception):
    """A stanza-level error (RFC 6120 §8.3), converted to XML in one place."""

    def __init__(self, condition: str, text: str | None = None, *, type: str | None = None,
                 extra: Element | None = None, by: str | None = None) -> None:
        if condition not in STANZA_CONDITIONS:
            raise ValueError(f"unknown stanza error condition {condition!r}")
        super().__init__(condition if text is None else f"{condition}: {text}")
        self.condition = condition
        self.text = text
        self.type = type or STANZA_CONDITIONS[condition]
        self.extra = extra
        self.by = by

    def to_element(self, xmlns: str = NS_CLIENT) -> Element:
        attrs = {"type": self.type}
        if self.by:
            attrs["by"] = self.by
        el = Element("error", xmlns, attrs)
        el.tag(self.condition, NS_STANZAS)
        if self.text:
            el.tag("text", NS_STANZAS, {"xml:lang": "en"}).append(self.text)
        if self.extra is not None:
            el.append(self.extra)
        return el

    @classmethod
    def from_element(cls, el: Element) -> StanzaError:
        """Read an <error/> element; unknown conditions become undefined-condition."""
        condition = "undefined-condition"
        text = None
        extra = None
        for child in el.elements():
            if child.xmlns == NS_STANZAS:
                if child.name == "text":
                    text = child.text
                elif child.name in STANZA_CONDITIONS:
                    condition = child.name
            else:
                extra = child
        return cls(condition, text, type=el.get("type"), extra=extra, by=el.get("by"))
