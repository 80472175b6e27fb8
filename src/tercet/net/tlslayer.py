"""TLS between a TCP transport and a stream protocol, on ``ssl.SSLObject`` + ``MemoryBIO``.

Why our own layer rather than the event loop's (``create_server(ssl=...)``,
``loop.start_tls``):

* **Memory.** The loop's SSL protocol keeps a 256 KiB receive buffer per connection and
  its own objects around them. Here reads go through the loop's ordinary receive path
  into two memory BIOs; Python's contexts already run in OpenSSL's release-buffers mode,
  so an idle session holds no record buffers. bench/README.md ("TLS memory per session")
  has the measurements.
* **Admission at accept.** On a direct-TLS port the stream protocol sees the connection
  when TCP accepts it, not when the handshake ends, so the per-address cap on
  unauthenticated connections counts a stalled handshake too, and its time is bounded
  here (``handshake_timeout``).
* **One write per flush.** The stream protocol already batches what one loop iteration
  writes; each batch becomes one ``SSL_write`` and one ``transport.write``.

The layer is the transport of the stream protocol (write, close, pause/resume reading,
extra info) and the protocol of the TCP transport.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import Any

log = logging.getLogger("tercet.tls")

#: Plaintext asked of OpenSSL per read call; one TLS record holds at most 16 KiB of
#: plaintext (RFC 8446 §5.1), so one call returns at most one record's worth.
READ_SIZE = 16384

#: Seconds a TLS handshake may take, on STARTTLS and direct-TLS streams alike.
HANDSHAKE_TIMEOUT = 30.0

HandshakeCallback = Callable[[BaseException | None], None]


class TLSLayer(asyncio.Protocol):
    """One TLS connection. ``app`` is the stream protocol; it sees this object as its
    transport. ``on_handshake`` is called once, with None when the handshake succeeded or
    the exception that ended it (the connection is then aborted)."""

    __slots__ = ("_app", "_app_paused", "_closing", "_done", "_incoming", "_outgoing",
                 "_io", "_pending", "_raw", "_raw_paused", "_sslobj", "_timer",
                 "_on_handshake", "_timeout", "handshake")

    def __init__(self, app: asyncio.Protocol, context: ssl.SSLContext, *, server_side: bool,
                 server_hostname: str | None = None, handshake_timeout: float = HANDSHAKE_TIMEOUT,
                 on_handshake: HandshakeCallback | None = None) -> None:
        self._app = app
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._sslobj = context.wrap_bio(self._incoming, self._outgoing, server_side=server_side,
                                        server_hostname=server_hostname)
        # For the per-record reads and writes: the C object under the SSLObject, whose
        # read/write/pending the stdlib's Python wrappers only pass on to (three Python
        # frames per delivery, ~2 % of its CPU); the wrapper itself where there is none.
        self._io: Any = getattr(self._sslobj, "_sslobj", self._sslobj)
        self._raw: asyncio.Transport | None = None
        self._done = False  # handshake complete
        self._closing = False
        self._app_paused = False
        self._raw_paused = False
        # Plaintext the stream protocol wrote before the handshake ended.
        self._pending: list[bytes] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timeout = handshake_timeout
        self._on_handshake = on_handshake
        #: Resolved when the handshake ends (with its exception on failure).
        self.handshake: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # -- set-up ----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """A new TCP connection (direct TLS): the stream protocol sees it now."""
        self._attach(transport)
        self._app.connection_made(self)  # type: ignore[arg-type]
        if not self._closing:
            self._step_handshake()

    @classmethod
    def upgrade(cls, transport: asyncio.BaseTransport, app: asyncio.Protocol,
                context: ssl.SSLContext, *, server_side: bool,
                server_hostname: str | None = None, handshake_timeout: float = HANDSHAKE_TIMEOUT,
                ) -> TLSLayer:
        """STARTTLS (RFC 6120 §5.4.3.3): put TLS under ``app``'s existing connection.
        Await ``.handshake``; the stream protocol then uses the layer as its transport."""
        layer = cls(app, context, server_side=server_side, server_hostname=server_hostname,
                    handshake_timeout=handshake_timeout)
        transport.set_protocol(layer)
        layer._attach(transport)
        # The stream protocol paused reading while its STARTTLS handler ran.
        transport.resume_reading()  # type: ignore[attr-defined]
        layer._step_handshake()
        return layer

    def _attach(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only look-alikes.
        self._raw = transport  # type: ignore[assignment]
        self._timer = asyncio.get_running_loop().call_later(self._timeout,
                                                            self._handshake_timed_out)

    # -- the handshake ---------------------------------------------------------------------
    def _step_handshake(self) -> None:
        try:
            self._sslobj.do_handshake()
        except ssl.SSLWantReadError:
            self._send_outgoing()
            return
        except (ssl.SSLError, ValueError) as exc:
            self._send_outgoing()  # the alert, if OpenSSL made one
            self._fail(exc)
            return
        self._done = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._send_outgoing()
        if not self.handshake.done():
            self.handshake.set_result(None)
        if self._on_handshake is not None:
            self._on_handshake(None)
        pending, self._pending = self._pending, None
        if pending and not self._closing:
            self.write(b"".join(pending))
        if self._incoming.pending and not self._app_paused:
            self._read_plaintext()  # application data that came with the last flight

    def _handshake_timed_out(self) -> None:
        self._timer = None
        if not self._done:
            self._fail(TimeoutError("TLS handshake timed out"))

    def _fail(self, exc: BaseException) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.handshake.done():
            self.handshake.set_exception(exc)
            self.handshake.exception()  # retrieved: nobody may be awaiting it
        callback, self._on_handshake = self._on_handshake, None
        if callback is not None:
            callback(exc)
        self.abort()

    # -- TCP transport -> here --------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        self._incoming.write(data)
        if not self._done:
            self._step_handshake()
        elif not self._app_paused:
            self._read_plaintext()

    def _read_plaintext(self) -> None:
        chunks: list[bytes] = []
        sslobj = self._io
        incoming = self._incoming
        try:
            while chunk := sslobj.read(READ_SIZE):
                chunks.append(chunk)
                if not incoming.pending and not sslobj.pending():
                    break  # all read: no SSLWantReadError raised (the common case)
            else:
                # An empty read is the peer's close_notify (RFC 8446 §6.1).
                self._deliver(chunks)
                self._peer_closed()
                return
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:
            self._deliver(chunks)
            self._peer_closed()
            return
        except ssl.SSLError as exc:
            log.info("TLS error from %s: %s", self._peer(), exc.reason or exc)
            self._deliver(chunks)
            self.abort()
            return
        if self._outgoing.pending:
            self._send_outgoing()  # e.g. a KeyUpdate answer (RFC 8446 §4.6.3)
        self._deliver(chunks)

    def _deliver(self, chunks: list[bytes]) -> None:
        if chunks and not self._closing:
            self._app.data_received(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def _peer_closed(self) -> None:
        keep_open = self._app.eof_received()
        if not keep_open:
            self.close()

    def eof_received(self) -> bool | None:
        if not self._done:
            self._fail(ConnectionResetError("connection closed during the TLS handshake"))
            return None
        return self._app.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._done and not self.handshake.done():
            lost = exc or ConnectionResetError("connection lost during the TLS handshake")
            self.handshake.set_exception(lost)
            self.handshake.exception()
            callback, self._on_handshake = self._on_handshake, None
            if callback is not None:
                callback(lost)
        self._closing = True
        self._raw = None
        self._app.connection_lost(exc)

    def pause_writing(self) -> None:
        self._app.pause_writing()

    def resume_writing(self) -> None:
        self._app.resume_writing()

    # -- the stream protocol -> here (its transport) -------------------------------------------
    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or self._raw is None:
            return
        if not self._done:
            if self._pending is None:
                self._pending = []
            self._pending.append(bytes(data))
            return
        try:
            self._io.write(data)
        except ssl.SSLError as exc:
            log.info("TLS error writing to %s: %s", self._peer(), exc.reason or exc)
            self.abort()
            return
        self._send_outgoing()

    def _send_outgoing(self) -> None:
        if self._outgoing.pending and self._raw is not None:
            self._raw.write(self._outgoing.read())

    def close(self) -> None:
        """Send close_notify and close once what is written has gone (RFC 8446 §6.1);
        the peer's close_notify is not waited for."""
        if self._closing or self._raw is None:
            return
        self._closing = True
        if self._done:
            try:
                self._sslobj.unwrap()
            except (ssl.SSLError, ValueError):
                pass  # SSLWantReadError: the peer's close_notify is not awaited
            self._send_outgoing()
        self._raw.close()

    def abort(self) -> None:
        self._closing = True
        if self._raw is not None:
            self._raw.abort()

    def is_closing(self) -> bool:
        return self._closing

    def pause_reading(self) -> None:
        self._app_paused = True
        if self._done and self._raw is not None and not self._raw_paused:
            self._raw_paused = True
            self._raw.pause_reading()

    def resume_reading(self) -> None:
        if not self._app_paused:
            return
        self._app_paused = False
        if self._incoming.pending and self._done:
            self._read_plaintext()  # what arrived while paused
        if self._raw_paused and self._raw is not None and not self._closing:
            self._raw_paused = False
            self._raw.resume_reading()

    def get_write_buffer_size(self) -> int:
        raw = self._raw
        size = raw.get_write_buffer_size() if raw is not None else 0
        if self._pending is None:
            return size  # after the handshake: twice per output batch, kept short
        return size + sum(map(len, self._pending))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "ssl_object":
            return self._sslobj
        if name == "sslcontext":
            return self._sslobj.context
        if name == "peercert":
            return self._sslobj.getpeercert() if self._done else default
        if name == "cipher":
            return self._sslobj.cipher()
        if self._raw is None:
            return default
        return self._raw.get_extra_info(name, default)

    def _peer(self) -> str:
        peer = self.get_extra_info("peername")
        return peer[0] if isinstance(peer, tuple) else "?"
