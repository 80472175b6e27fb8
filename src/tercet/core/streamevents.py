"""Payloads of the stream-negotiation events a transport fires on a host's bus.

``stream-features``           :class:`StreamFeaturesEvent`: add children to ``features``.
``stream/<ns>:<name>``        :class:`StreamElementEvent`: a non-stanza element (STARTTLS,
                              SASL, stream management) from a client.
``unauthenticated-iq/<ns>:<name>`` and ``unbound-iq/<ns>:<name>``: an IQ received before
                              authentication (in-band registration) or before binding.
``component-handshake``       :class:`ComponentHandshake`: an external component's
                              ``<handshake/>`` (XEP-0114), on the component's host.

They live in core, not in a transport, so every transport (TCP, WebSocket, BOSH) fires the
same events and modules depend on no transport.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tercet.core.session import C2SSession, ComponentSession
    from tercet.protocol.stanza import Element


class StreamFeaturesEvent:
    """``stream-features``: the features element being offered to ``session``."""

    __slots__ = ("features", "session")

    def __init__(self, session: C2SSession, features: Element) -> None:
        self.session = session
        self.features = features

    def __repr__(self) -> str:
        return f"<StreamFeaturesEvent {self.session.id}>"


class StreamElementEvent:
    """``stream/...`` and pre-bind IQ events: one element received from ``session``."""

    __slots__ = ("element", "session")

    def __init__(self, session: C2SSession, element: Element) -> None:
        self.session = session
        self.element = element

    def __repr__(self) -> str:
        return f"<StreamElementEvent {self.session.id} {self.element.name}>"


@dataclass(frozen=True, slots=True)
class ComponentHandshake:
    """``component-handshake``: an external component's proof of the shared secret, the
    text of its ``<handshake/>`` (hex SHA-1 of ``session.stream_id`` and the secret,
    XEP-0114 §3). The handler accepts (``session.set_authenticated()``) or closes the
    session with a stream error, and returns True."""

    session: ComponentSession
    digest: str
