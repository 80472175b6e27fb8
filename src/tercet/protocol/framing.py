"""XMPP over WebSocket framing (RFC 7395), sans-I/O: messages in, stream events out.

On a WebSocket every message is one whole XML element (§3.3.3), the stream opens with
``<open/>`` and closes with ``<close/>`` of ``urn:ietf:params:xml:ns:xmpp-framing``
(§3.3.1, §3.6) instead of ``<stream:stream>`` tags. ``FramingReader`` turns messages into
the same ``StreamOpened`` / ``StanzaReceived`` / ``StreamClosed`` events a TCP stream's
``StreamReader`` gives, so the c2s machinery above it is the same for both transports.
"""

from __future__ import annotations

from tercet.protocol.errors import StreamError
from tercet.protocol.stanza import NS_CLIENT, Element
from tercet.protocol.xmlstream import (
    DEFAULT_MAX_STANZA_SIZE,
    NS_STREAM,
    StanzaReceived,
    StreamClosed,
    StreamEvent,
    StreamOpened,
    StreamReader,
)

NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
#: The WebSocket subprotocol name (RFC 7395 §3.1, IANA registry of §6.1).
SUBPROTOCOL = "xmpp"

# Every message is parsed as if it followed this header, so stanzas without an xmlns of
# their own are jabber:client, as on a TCP stream, and the reader's bounds apply as there.
_HEADER = (f"<stream:stream xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAM}'>").encode()


class FramingReader:
    """Parses the client side of a framed stream; ``reset()`` after a stream restart
    (RFC 7395 §3.5: after SASL success the client sends a new ``<open/>``)."""

    __slots__ = ("_opened", "_reader", "max_stanza_size")

    def __init__(self, max_stanza_size: int = DEFAULT_MAX_STANZA_SIZE) -> None:
        self.max_stanza_size = max_stanza_size
        self._reader = StreamReader(max_stanza_size)
        self._opened = False
        self.reset()

    @property
    def reader(self) -> StreamReader:
        """The stream reader the messages go through (its idle parser may hibernate)."""
        return self._reader

    def reset(self) -> None:
        """Start a new stream: the next message must be ``<open/>``."""
        self._reader.reset()
        self._reader.feed(_HEADER)
        self._opened = False

    def feed(self, data: bytes) -> list[StreamEvent]:
        """Parse one message (RFC 7395 §3.3.3: exactly one element). Raises StreamError."""
        if len(data) > self.max_stanza_size:
            # RFC 6120 §13.12: the server may bound stanza size.
            raise StreamError("policy-violation", "stanza too large")
        events = self._reader.feed(data)
        if not self._reader.between_elements:
            raise StreamError("bad-format", "a message must hold whole elements")
        if not events:
            if data.strip():
                raise StreamError("bad-format", "a message must hold one element")
            return []  # whitespace only: nothing to do
        if len(events) != 1 or type(events[0]) is not StanzaReceived:
            raise StreamError("bad-format", "a message must hold one element")
        return [self._framed(events[0].element)]

    def _framed(self, el: Element) -> StreamEvent:
        if el.xmlns == NS_FRAMING:
            if el.name == "open" and not self._opened:
                self._opened = True
                return StreamOpened(dict(el.attrs), NS_CLIENT)
            if el.name == "close":
                return StreamClosed()
            raise StreamError("bad-format", f"unexpected <{el.name}/>")
        if not self._opened:
            raise StreamError("bad-format", "the stream starts with <open/>")
        if el.xmlns == NS_STREAM:
            # RFC 7395 §3.3.1: the framing replaces the stream's own opening and closing.
            raise StreamError("bad-format", "stream elements are framed by <open/>/<close/>")
        return StanzaReceived(el)


def open_element(*, from_: str | None, id_: str | None, lang: str = "en",
                 version: str = "1.0") -> str:
    """The server's ``<open/>`` (RFC 7395 §3.4)."""
    el = Element("open", NS_FRAMING, {"version": version, "xml:lang": lang})
    if from_:
        el.attrs["from"] = from_
    if id_:
        el.attrs["id"] = id_
    return el.to_xml(None)


#: The server's ``<close/>`` (RFC 7395 §3.6).
CLOSE = Element("close", NS_FRAMING).to_xml(None)


def frame_element(data: bytes) -> bytes:
    """Make one serialised element stand alone in its own message (RFC 7395 §3.3.3):
    a ``stream:`` element gets its namespace declaration, a stanza written against the
    stream's default namespace gets ``xmlns='jabber:client'``."""
    if data.startswith(b"<stream:"):
        end = data.index(b">")
        if data[end - 1:end] == b"/":
            end -= 1
        return data[:end] + b" xmlns:stream='" + NS_STREAM.encode() + b"'" + data[end:]
    for name in (b"<message", b"<presence", b"<iq"):
        at = len(name)
        if data.startswith(name) and data[at:at + 1] in (b" ", b">", b"/"):
            # The serialiser writes xmlns first, right after the name, when it writes it.
            if not data.startswith(b" xmlns=", at):
                return data[:at] + b" xmlns='" + NS_CLIENT.encode() + b"'" + data[at:]
            break
    return data
