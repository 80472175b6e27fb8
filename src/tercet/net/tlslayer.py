"""TLS between a TCP connection and a stream protocol, with OpenSSL on the socket itself.

Why our own layer rather than the event loop's (``create_server(ssl=...)``,
``loop.start_tls``):

* **Memory.** OpenSSL reads and writes the socket itself (a socket BIO, as Prosody's
  LuaSec does), and Python's contexts run it in release-buffers mode, so an idle session
  holds no record buffer at all. The event loop's SSL protocol keeps a 256 KiB receive
  buffer per connection; and a pair of memory BIOs (asyncio's design, and this layer's
  until 2026-12) never shrinks: each keeps the largest chunk ever passed through it, so a
  session that once received a 200 kB archive page held ~270 kB until it ended.
  bench/README.md ("TLS on the socket") has the measurements.
* **Admission at accept.** On a direct-TLS port the stream protocol sees the connection
  when TCP accepts it, not when the handshake ends, so the per-address cap on
  unauthenticated connections counts a stalled handshake too, and its time is bounded
  here (``handshake_timeout``).
* **One write per flush.** The stream protocol already batches what one loop iteration
  writes; each batch becomes one ``SSL_write``, which sends its records at once.

The layer takes the socket over from the TCP transport that accepted or connected it
(``connection_made``), or that carried the stream until STARTTLS (``upgrade``): it keeps a
duplicate of the descriptor and closes the transport, which never read past the point of
the take-over (RFC 6120 §5.4.3.3: the peer sends nothing between ``<proceed/>`` and its
ClientHello). From then on the event loop only says when the socket is readable or
writable. The layer is the transport of the stream protocol (write, close, pause/resume
reading, extra info).
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tercet.net.tls import TLSConnection

if TYPE_CHECKING:
    from tercet.net.readiness import ReadySet

log = logging.getLogger("tercet.tls")

#: Plaintext asked of OpenSSL per read call; one TLS record holds at most 16 KiB of
#: plaintext (RFC 8446 §5.1), so one call returns at most one record's worth.
READ_SIZE = 16384

#: Records read per readiness event, at most (16 × 16 KiB = 256 KiB, the event loop's own
#: read size): a peer that keeps its socket full cannot hold the loop; the rest is read on
#: the next pass.
MAX_READS = 16

#: Seconds a TLS handshake may take, on STARTTLS and direct-TLS streams alike.
HANDSHAKE_TIMEOUT = 30.0

#: Seconds ``close()`` waits for unsent output to leave before it drops the connection.
CLOSE_TIMEOUT = 10.0

#: Reads of unread input discarded before the socket is closed, at most (64 KiB each).
#: A socket closed with unread input sends a reset instead of an end, and a reset may
#: destroy what the peer has not read yet: the stream error or TLS alert we sent last.
DISCARD_READS = 4

HandshakeCallback = Callable[[BaseException | None], None]


class _Detached(asyncio.Protocol):
    """The protocol of a TCP transport after the layer took its socket over: the
    transport's own close is no event for anyone."""


_DETACHED = _Detached()


class TLSLayer(asyncio.Protocol):
    """One TLS connection. ``app`` is the stream protocol; it sees this object as its
    transport. ``on_handshake`` is called once, with None when the handshake succeeded or
    the exception that ended it (the connection is then aborted)."""

    __slots__ = ("_app", "_app_paused", "_closing", "_context", "_done", "_eof", "_fd",
                 "_io", "_loop", "_lost", "_on_handshake", "_outcome", "_pending",
                 "_readers", "_reading", "_server_hostname", "_server_side", "_sock",
                 "_timeout", "_timer", "_unsent", "_waiter", "_writing")

    def __init__(self, app: asyncio.Protocol, context: ssl.SSLContext, *, server_side: bool,
                 server_hostname: str | None = None, handshake_timeout: float = HANDSHAKE_TIMEOUT,
                 on_handshake: HandshakeCallback | None = None,
                 readers: ReadySet | None = None) -> None:
        self._app = app
        self._context = context
        self._server_side = server_side
        self._server_hostname = server_hostname
        self._loop = asyncio.get_running_loop()
        self._sock: TLSConnection | None = None
        # OpenSSL's connection object (the TLSConnection's), for the per-record reads and
        # writes without a Python frame between.
        self._io: Any = None
        self._fd = -1
        self._done = False  # handshake complete
        self._closing = False
        self._lost = False  # connection_lost is on its way to the stream protocol
        self._eof = False  # the peer closed its side
        self._app_paused = False
        self._reading = False  # watching for readability
        # Who says when the socket is readable: the shared epoll set (net/readiness.py),
        # or, when None or it cannot, a reader of the event loop's.
        self._readers = readers
        self._writing = False  # watching for writability
        # Plaintext the stream protocol wrote before the handshake ended.
        self._pending: list[bytes] | None = None
        # Plaintext OpenSSL has not finished sending: the socket was full. OpenSSL keeps
        # the records it made of its start and must be handed the same bytes again.
        self._unsent: bytearray | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timeout = handshake_timeout
        self._on_handshake = on_handshake
        # The handshake's end, for ``handshake``: made only when someone awaits it (a
        # STARTTLS stream; direct-TLS ones get ``on_handshake``), dropped once resolved.
        self._waiter: asyncio.Future[None] | None = None
        self._outcome: BaseException | bool = False  # False: not ended; True: succeeded

    @property
    def handshake(self) -> asyncio.Future[None]:
        """Resolved when the handshake ends (with its exception on failure)."""
        waiter = self._waiter
        if waiter is None:
            waiter = self._loop.create_future()
            outcome = self._outcome
            if outcome is True:
                waiter.set_result(None)
            elif outcome is not False:
                waiter.set_exception(outcome)
                waiter.exception()  # retrieved: nobody may be awaiting it
            else:
                self._waiter = waiter
        return waiter

    def _ended(self, outcome: BaseException | bool) -> None:
        self._outcome = outcome
        waiter, self._waiter = self._waiter, None
        if waiter is None or waiter.done():
            return
        if outcome is True:
            waiter.set_result(None)
        else:
            assert isinstance(outcome, BaseException)
            waiter.set_exception(outcome)
            waiter.exception()  # retrieved: nobody may be awaiting it

    # -- set-up ----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """A new TCP connection (direct TLS): the stream protocol sees it now."""
        error = self._take(transport)
        self._app.connection_made(self)  # type: ignore[arg-type]
        if error is not None:
            self._fail(error)
        elif not self._closing:
            self._step_handshake()

    @classmethod
    def upgrade(cls, transport: asyncio.BaseTransport, app: asyncio.Protocol,
                context: ssl.SSLContext, *, server_side: bool,
                server_hostname: str | None = None, handshake_timeout: float = HANDSHAKE_TIMEOUT,
                readers: ReadySet | None = None) -> TLSLayer:
        """STARTTLS (RFC 6120 §5.4.3.3): put TLS under ``app``'s existing connection.
        Await ``.handshake``; the stream protocol then uses the layer as its transport."""
        layer = cls(app, context, server_side=server_side, server_hostname=server_hostname,
                    handshake_timeout=handshake_timeout, readers=readers)
        error: BaseException | None
        if transport.get_write_buffer_size():  # type: ignore[attr-defined]
            # What the transport still holds (the <proceed/>) would be lost with it. Only
            # a peer that stopped reading gets here.
            error = ConnectionError("STARTTLS: earlier output has not left yet")
            _drop(transport)
        else:
            error = layer._take(transport)
        if error is not None:
            layer._fail(error)
        else:
            layer._step_handshake()
        return layer

    def _take(self, transport: asyncio.BaseTransport) -> BaseException | None:
        """Own the transport's socket: a duplicate of its descriptor under TLS; the
        transport itself is closed. The error that prevented it, if any."""
        try:
            raw = transport.get_extra_info("socket")
            fd = os.dup(raw.fileno())
        except (OSError, AttributeError) as exc:  # out of descriptors; no socket
            _drop(transport)
            return exc if isinstance(exc, OSError) else ConnectionError(str(exc))
        _drop(transport)
        try:
            sock = TLSConnection(fileno=fd)
        except OSError as exc:
            os.close(fd)
            return exc
        try:
            sock.setblocking(False)
            sock.wrap(self._context, server_side=self._server_side,
                      server_hostname=self._server_hostname)
        except (OSError, ValueError) as exc:
            sock.close()
            return exc
        self._sock = sock
        self._io = sock._sslobj
        self._fd = fd
        self._timer = self._loop.call_later(self._timeout, self._handshake_timed_out)
        return None

    # -- the handshake ---------------------------------------------------------------------
    def _step_handshake(self) -> None:
        try:
            self._io.do_handshake()
        except ssl.SSLWantReadError:
            self._watch(True, False)
            return
        except ssl.SSLWantWriteError:
            self._watch(False, True)
            return
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            self._fail(exc)  # OpenSSL sent its alert, if it made one
            return
        self._done = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._watch(True, False)  # paused or not: see readable
        self._ended(True)
        if self._on_handshake is not None:
            self._on_handshake(None)
        pending, self._pending = self._pending, None
        if pending and not self._closing:
            self.write(b"".join(pending))
        # Application data that came with the last flight is still in the socket (OpenSSL
        # reads no further than the records it needs): the next readiness event reads it.

    def _handshake_timed_out(self) -> None:
        self._timer = None
        if not self._done:
            self._fail(TimeoutError("TLS handshake timed out"))

    def _fail(self, exc: BaseException) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._outcome is False:
            self._ended(exc)
        callback, self._on_handshake = self._on_handshake, None
        if callback is not None:
            callback(exc)
        self._closing = True
        self._lose(None)

    # -- readiness -------------------------------------------------------------------------
    def _watch(self, read: bool, write: bool) -> None:
        """Watch the socket for what is asked, and for nothing else."""
        loop = self._loop
        if read != self._reading:
            self._reading = read
            readers = self._readers
            if read:
                if readers is None or not readers.add(self._fd, self):
                    self._readers = None  # the set cannot: the loop watches from now on
                    loop.add_reader(self._fd, self.readable)
            elif readers is not None:
                readers.remove(self._fd)
            else:
                loop.remove_reader(self._fd)
        if write != self._writing:
            self._writing = write
            if write:
                loop.add_writer(self._fd, self._writable)
            else:
                loop.remove_writer(self._fd)

    def readable(self) -> None:
        """The socket is readable (or the peer closed it): read what the state asks."""
        if not self._done:
            self._step_handshake()
        elif self._app_paused:
            # Paused (pause_reading): only now, with input waiting, stop watching. Most
            # pauses last one storage read with nothing arriving meanwhile, and then cost
            # no system call at all (the event loop's stop and restart of watching a
            # socket cost ~5).
            self._watch(False, self._writing)
        else:
            self._read_plaintext()

    def _writable(self) -> None:
        if not self._done:
            self._step_handshake()
        elif self._unsent is not None:
            self._send_unsent()
        else:
            self._watch(self._reading, False)

    # -- the peer -> the stream protocol ----------------------------------------------------
    def _read_plaintext(self) -> None:
        chunks: list[bytes] = []
        sslobj = self._io
        try:
            for _ in range(MAX_READS):
                chunk = sslobj.read(READ_SIZE)
                if not chunk:  # the peer's close_notify (RFC 8446 §6.1)
                    self._deliver(chunks)
                    self._peer_closed()
                    return
                chunks.append(chunk)
                if len(chunk) < READ_SIZE:
                    # A short record, most likely the peer's last: stop here rather than
                    # pay a system call to hear "nothing more". OpenSSL reads no further
                    # than the record it returns, so anything else is still in the
                    # socket, and the loop calls again while the socket is readable.
                    break
        except ssl.SSLWantReadError:
            pass  # all read
        except ssl.SSLWantWriteError:
            pass  # a post-handshake answer waits for room; OpenSSL sends it on the next call
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
            self._deliver(chunks)  # TCP closed without close_notify: an end all the same
            self._peer_closed()
            return
        except ssl.SSLError as exc:
            log.info("TLS error from %s: %s", self._peer(), exc.reason or exc)
            self._deliver(chunks)
            self.abort()
            return
        except OSError as exc:  # reset by the peer
            self._deliver(chunks)
            self._closing = True
            self._lose(exc)
            return
        self._deliver(chunks)

    def _deliver(self, chunks: list[bytes]) -> None:
        if chunks and not self._closing:
            self._app.data_received(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def _peer_closed(self) -> None:
        self._eof = True
        self._watch(False, self._writing)
        if self._closing:
            return
        keep_open = self._app.eof_received()
        if not keep_open:
            self.close()

    # -- the stream protocol -> here (its transport) -------------------------------------------
    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or self._sock is None:
            return
        if not self._done:
            if self._pending is None:
                self._pending = []
            self._pending.append(bytes(data))
            return
        if self._unsent is not None:
            self._unsent += data  # after what waits for room, in order
            return
        try:
            self._io.write(data)
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
            self._unsent = bytearray(data)
            self._watch(self._reading, True)
        except (OSError, ValueError) as exc:
            log.info("TLS error writing to %s: %s", self._peer(), exc)
            self._closing = True
            self._lose(exc if isinstance(exc, OSError) else None)

    def _send_unsent(self) -> None:
        try:
            self._io.write(self._unsent)
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
            return  # still full
        except (OSError, ValueError) as exc:
            self._closing = True
            self._lose(exc if isinstance(exc, OSError) else None)
            return
        self._unsent = None
        self._watch(self._reading, False)
        if self._closing:
            self._finish_close()

    def close(self) -> None:
        """Send what is written, then close_notify, then close (RFC 8446 §6.1); the
        peer's close_notify is not waited for. Unsent output gets CLOSE_TIMEOUT to
        leave."""
        if self._closing or self._sock is None:
            return
        self._closing = True
        self._pending = None
        self._watch(False, self._writing)
        if self._unsent is None:
            self._finish_close()
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_later(CLOSE_TIMEOUT, self.abort)

    def _finish_close(self) -> None:
        if self._done and not self._lost:
            try:
                self._io.shutdown()
            except (OSError, ValueError):
                pass  # SSLWantReadError: the peer's close_notify is not awaited
        self._lose(None)

    def abort(self) -> None:
        self._closing = True
        self._lose(None)

    def _lose(self, exc: Exception | None) -> None:
        """Close the socket and tell the stream protocol, once."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._lost:
            return
        self._lost = True
        self._unsent = None
        if self._outcome is False:  # closed before the handshake ended
            lost = exc or ConnectionResetError("connection closed during the TLS handshake")
            self._ended(lost)
            callback, self._on_handshake = self._on_handshake, None
            if callback is not None:
                callback(lost)
        sock = self._sock
        if sock is not None:
            self._watch(False, False)
            _discard_input(self._fd)
            sock.close()
        self._loop.call_soon(self._app.connection_lost, exc)

    def is_closing(self) -> bool:
        return self._closing

    def pause_reading(self) -> None:
        self._app_paused = True  # watching stops when input comes (readable)

    def resume_reading(self) -> None:
        if not self._app_paused:
            return
        self._app_paused = False
        if self._done and not self._closing and not self._eof:
            self._watch(True, self._writing)

    def get_write_buffer_size(self) -> int:
        unsent = self._unsent
        size = len(unsent) if unsent is not None else 0
        if self._pending is None:
            return size  # after the handshake: twice per output batch, kept short
        return size + sum(map(len, self._pending))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        sock = self._sock
        if name == "ssl_object":
            return sock
        if sock is None:
            return default
        if name == "sslcontext":
            return sock.context
        if name == "peercert":
            return sock.getpeercert() if self._done else default
        if name == "cipher":
            return sock.cipher()
        if name == "socket":
            return sock
        try:
            if name == "peername":
                return sock.getpeername()
            if name == "sockname":
                return sock.getsockname()
        except OSError:
            pass  # closed, or the peer is gone
        return default

    def _peer(self) -> str:
        peer = self.get_extra_info("peername")
        return peer[0] if isinstance(peer, tuple) else "?"


def _drop(transport: asyncio.BaseTransport) -> None:
    """Close a TCP transport the layer took over (or failed to): the stream protocol
    hears of the end from the layer, once, not from the transport too."""
    transport.set_protocol(_DETACHED)
    transport.abort()  # type: ignore[attr-defined]


def _discard_input(fd: int) -> None:
    """Read and drop what the peer sent that nobody will read (see DISCARD_READS)."""
    try:
        for _ in range(DISCARD_READS):
            if not os.read(fd, 65536):
                return
    except OSError:
        return  # nothing more (BlockingIOError), or the peer is gone
