"""Plain counters the core keeps for whoever reports on the server (the metrics module).

No metrics library here: the hot path pays one dict increment per stanza, and a reader
turns the numbers into whatever format it serves when it is asked (docs/metrics.md).
"""

from __future__ import annotations

#: Stanzas are counted by their name (RFC 6120 §8).
STANZA_KINDS = ("message", "presence", "iq")
#: Streams are counted by type: clients over TCP, clients over a message-framed transport
#: (named after the module that frames it: XMPP over WebSocket, RFC 7395; BOSH, XEP-0206),
#: servers (both directions), external components.
STREAM_TYPES = ("c2s", "websocket", "bosh", "s2s", "component")


class StanzaCounts:
    """Stanzas received on and sent to the streams of one type, by stanza name.

    ``received`` is counted by the connections as stanzas arrive, ``sent`` by the sessions
    as they write them; both only ever grow (Prometheus counters).
    """

    __slots__ = ("received", "sent")

    def __init__(self) -> None:
        self.received = dict.fromkeys(STANZA_KINDS, 0)
        self.sent = dict.fromkeys(STANZA_KINDS, 0)


class ServerStats:
    """The server's counters: ``stanzas`` maps a stream type to its :class:`StanzaCounts`."""

    __slots__ = ("stanzas",)

    def __init__(self) -> None:
        self.stanzas = {kind: StanzaCounts() for kind in STREAM_TYPES}

    def counts_for(self, stream_type: str) -> StanzaCounts:
        """The counts of ``stream_type``, made for a transport module not listed above."""
        found = self.stanzas.get(stream_type)
        if found is None:
            found = self.stanzas[stream_type] = StanzaCounts()
        return found
