"""A client stream over a message-framed transport (XMPP over WebSocket, RFC 7395).

The c2s machinery is ``C2SConnection``'s, unchanged: negotiation through stream events,
per-session order with backpressure, send-buffer bounds, the authentication timeout and
the per-IP cap, stream management's adopt/release. Only the framing differs, in four
places: input arrives as whole messages (``FramingReader``), the stream opens and closes
with ``<open/>``/``<close/>``, every element leaves as its own message with its
namespaces declared, and there is no STARTTLS (the WebSocket's own connection carries
TLS, §3.8).
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from tercet.core.network import MessageLink
from tercet.net.c2s import C2SConnection
from tercet.protocol.errors import StreamError
from tercet.protocol.framing import CLOSE, FramingReader, frame_element, open_element
from tercet.protocol.xmlstream import STREAM_CLOSE, StreamOpened

if TYPE_CHECKING:
    from tercet.core.server import Server
    from tercet.net.listeners import Listener, NetManager

_STREAM_CLOSE = STREAM_CLOSE.encode()
_CLOSE = CLOSE.encode()


class _LinkTransport:
    """The asyncio.Transport look-alike ``C2SConnection`` drives, over a MessageLink.

    Only what the connection calls is here; ``write`` is unused because
    ``FramedC2SConnection.flush`` sends message by message."""

    __slots__ = ("_link",)

    def __init__(self, link: MessageLink) -> None:
        self._link = link

    def get_extra_info(self, name: str, default: object = None) -> object:
        if name == "peername":
            return (self._link.peer, 0)
        found = self._link.extra_info(name)
        return default if found is None else found

    def get_write_buffer_size(self) -> int:
        return self._link.buffered()

    def pause_reading(self) -> None:
        self._link.pause_reading()

    def resume_reading(self) -> None:
        self._link.resume_reading()

    def close(self) -> None:
        self._link.close()

    def abort(self) -> None:
        self._link.abort()


class FramedC2SConnection(C2SConnection):
    """One client stream over one WebSocket (or another MessageLink)."""

    __slots__ = ("_framing", "_link", "_messages", "_only_host")

    def __init__(self, server: Server, listener: Listener, net: NetManager,
                 link: MessageLink, only_host: str | None = None,
                 transport: str = "websocket") -> None:
        super().__init__(server, listener, net)
        # Counted under the transport's name, not as TCP clients (core/stats.py).
        counts = server.stats.counts_for(transport)
        self._received = counts.received
        session = self._client()
        session.sent_counts = counts.sent
        session.transport = transport
        self._link = link
        # Messages framed during this loop iteration (C2SConnection queues bytes).
        self._messages: list[bytes] | None = None
        self._framing = FramingReader(listener.limits.stanza_size)
        # The framing reader's parser is this stream's: the idle sweep hibernates it.
        self._reader = self._framing.reader
        # The host whose endpoint this is (a module loaded per host): others' streams
        # are not served here, as the host did not enable this transport for them.
        self._only_host = only_host
        session.framed = True

    def start(self) -> None:
        """The transport is up: run what a TCP connection runs on connect."""
        # uvloop's transports are look-alikes too; the connection needs only these methods.
        self.connection_made(_LinkTransport(self._link))  # type: ignore[arg-type]
        if self._secure and not self._closing:
            self._tls_established()  # the link's own TLS (wss, https): channel bindings

    def limit_kind(self) -> None:
        # Admission and read budgets of a framed transport are its module's (the HTTP
        # server meters requests, not stream bytes).
        return None

    # -- FramedStream -----------------------------------------------------------------
    def message_received(self, data: bytes) -> None:
        if self._closing:
            return
        self._active = True
        if self._asleep:
            self._wake_up()
        try:
            events = self._framing.feed(data)
        except StreamError as err:
            self.session.log.info("framing error from %s: %s", self.peer, err.condition)
            self.close_stream(err)
            return
        self._take(events)

    def _stream_opened(self, event: StreamOpened) -> None:
        to = (event.attrs.get("to") or "").lower().rstrip(".")
        if self._only_host is not None and to != self._only_host:
            self._send_header(to or None)
            raise StreamError("host-unknown", "not served at this address")
        super()._stream_opened(event)

    # -- framing where C2SConnection writes stream syntax -------------------------------
    def _send_header(self, host: str | None) -> None:
        self.session.stream_id = secrets.token_urlsafe(12)
        self._queue(open_element(from_=host, id_=self.session.stream_id).encode())
        self._header_sent = True

    def _queue(self, data: bytes) -> None:
        message = _CLOSE if data == _STREAM_CLOSE else frame_element(data)
        out = self._messages
        if out is None:
            self._messages = [message]
            self._out_size = len(message)
            self._sent_size = self._link.buffered()
            self.net.output.add(self)
        else:
            out.append(message)
            self._out_size += len(message)

    def flush(self) -> None:
        """One message per element (RFC 7395 §3.3.3), all handed over now."""
        out, self._messages = self._messages, None
        if not out or self.transport is None or self._closing:
            return
        for message in out:
            self._link.send_message(message)
        self._out_size = 0
        self._sent_size = self._link.buffered()
        if self._sent_size > self._send_limit:
            self._overflow()

    def _drop_output(self) -> None:
        self._messages = None

    def restart_stream(self) -> None:
        """After SASL success the client sends a new ``<open/>`` (RFC 7395 §3.5)."""
        self._framing.reset()
        self._drop_backlog()

    async def start_tls(self) -> None:
        # Never offered on a framed stream (modules/tls.py checks session.framed).
        raise StreamError("unsupported-feature", "no STARTTLS over WebSocket")
