"""One BOSH session (XEP-0124, XEP-0206): the ``MessageLink`` under a client stream.

The stream is the c2s machinery every transport shares (``module.open_framed_stream``);
this class only turns HTTP requests into messages for it and its messages into HTTP
responses. Requests are processed strictly in rid order (§14.2): each one's payloads
go to the stream, then the request is *held* until the stream has something to say, its
``wait`` runs out, or a newer request needs the slot (§8: at most ``hold`` held). The
stream's elements wait in a queue while no request is held, bounded by the stream's send
buffer (``buffered()``), as unread data on a TCP connection is.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from tercet.module import FramedStream
from tercet.protocol.bosh import (
    LEGACY_STATUS,
    BodyRequest,
    BoshError,
    Params,
    ResponseCache,
    RidCheck,
    check_rid,
    payload_xml,
    render_body,
    terminate,
)
from tercet.protocol.errors import StreamError
from tercet.protocol.framing import CLOSE, NS_FRAMING
from tercet.protocol.stanza import Element
from tercet.protocol.xmlstream import parse_fragment

NS_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams"
_CLOSE = CLOSE.encode()
_CLOSE_IN = f"<close xmlns='{NS_FRAMING}'/>".encode()


@dataclass(frozen=True, slots=True)
class Reply:
    """What the HTTP handler answers: a body, or a legacy client's HTTP error (§17.1)."""

    body: bytes
    status: int = 200


@dataclass(slots=True, eq=False)
class _Held:
    rid: int
    future: asyncio.Future[Reply]
    timer: asyncio.TimerHandle | None = None


@dataclass(slots=True, eq=False)
class _Pending:
    request: BodyRequest
    future: asyncio.Future[Reply] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())


def error_reply(condition: str, legacy: bool) -> Reply:
    """A terminal binding condition, as a legacy client expects it if it is one (§17.1)."""
    status = LEGACY_STATUS.get(condition) if legacy else None
    if status is not None:
        return Reply(b"", status)
    return Reply(terminate(condition))


class BoshSession:
    """A BOSH session: the HTTP side of one client stream."""

    def __init__(self, sid: str, params: Params, first: BodyRequest, *, peer: str,
                 secure: bool, host: str, on_end: Callable[[BoshSession], None],
                 log: logging.Logger) -> None:
        self.sid = sid
        self.params = params
        self.host = host
        self.rid = first.rid  # the highest rid processed (§14.2)
        self.log = log
        self.stream: FramedStream | None = None
        self._first = first
        self._peer = peer
        self._secure = secure
        self._on_end = on_end
        self._loop = asyncio.get_running_loop()
        self._out: list[bytes] = []  # payloads waiting for a held request
        self._out_size = 0
        self._held: deque[_Held] = deque()
        self._pending: dict[int, _Pending] = {}
        self._cache = ResponseCache(params.requests)
        self._created = False  # the session creation response went out
        self._authid: str | None = None
        self._error: str | None = None  # the condition of a stream error we sent
        self._closed = False  # the stream is closed: no more messages
        self._final: bytes | None = None  # the terminate body no request took yet
        self._ended = False
        self._lost_told = False
        self._readable = True
        self._deliver_soon = False
        self._inactivity: asyncio.TimerHandle | None = None
        self._pause: int | None = None
        self._last_poll: float | None = None  # an empty poll answered empty (§12)
        self.shutdown_condition: str | None = None

    # -- MessageLink ------------------------------------------------------------------
    @property
    def peer(self) -> str:
        return self._peer

    @property
    def secure(self) -> bool:
        return self._secure

    def send_message(self, data: bytes) -> None:
        if self._closed:
            return
        if data.startswith(b"<open"):
            opened = parse_fragment(data)
            if opened.xmlns == NS_FRAMING:
                self._authid = opened.attrs.get("id")  # XEP-0206 §4 'authid'
                return  # the body wrapper stands for the stream header
        elif data == _CLOSE:
            return  # close() follows: the terminate body stands for it
        elif data.startswith(b"<stream:error"):
            self._error = _stream_error_condition(data)
        self._out.append(data)
        self._out_size += len(data)
        if not self._deliver_soon:
            self._deliver_soon = True
            self._loop.call_soon(self._deliver)

    def buffered(self) -> int:
        return self._out_size

    def pause_reading(self) -> None:
        self._readable = False

    def resume_reading(self) -> None:
        if not self._readable:
            self._readable = True
            self._loop.call_soon(self._advance)

    def close(self) -> None:
        """The stream closed (either side, or a stream error): terminate (§13, XEP-0206
        §6: a stream error travels as ``remote-stream-error``)."""
        if self._closed:
            return
        condition = self.shutdown_condition
        if self._error == "system-shutdown":
            condition = "system-shutdown"  # §17.2: the server is going away
            self._out = [m for m in self._out if not m.startswith(b"<stream:error")]
        elif self._error is not None:
            condition = "remote-stream-error"
        self._finish(terminate(condition, self._out))

    def abort(self) -> None:
        """The session moved to another stream (XEP-0198 resumption): this one ends."""
        if not self._closed:
            self._finish(terminate("other-request"))

    def extra_info(self, name: str) -> object:
        # A BOSH session spans many HTTP connections: no TLS channel to bind to.
        return None

    # -- requests -----------------------------------------------------------------------
    def start(self, stream: FramedStream) -> asyncio.Future[Reply]:
        """The session creation request (§7.1): open the stream (XEP-0206 §3)."""
        self.stream = stream
        self._feed(_open_xml(self._first, self.host))
        held = _Held(self._first.rid, self._loop.create_future())
        self._hold(held)
        self._balance()
        return held.future

    def request(self, req: BodyRequest) -> asyncio.Future[Reply] | Reply:
        """A later request of this session: a future reply, or a reply right away."""
        check = check_rid(self.rid, req.rid, self.params.requests)
        if check is RidCheck.REPEAT:
            return self._repeat(req)
        if check is RidCheck.OUTSIDE:
            self.log.info("BOSH session %s...: rid %d outside the window after %d",
                          self.sid[:6], req.rid, self.rid)
            return self.fail("item-not-found")  # §14.2
        if self._final is not None:
            body, self._final = self._final, None
            self._end()
            return Reply(body)
        pending = self._pending.get(req.rid)
        if pending is not None:  # the same rid again before we processed it (§14.3)
            _settle(pending.future, Reply(render_body({"type": "error"})))
        entry = self._pending[req.rid] = _Pending(req)
        self._advance()
        return entry.future

    def _repeat(self, req: BodyRequest) -> asyncio.Future[Reply] | Reply:
        """§14.3: a rid seen before is a client that lost our response."""
        cached = self._cache.get(req.rid)
        if cached is not None:
            return Reply(cached)
        for held in self._held:
            if held.rid == req.rid:
                # Not answered yet: the older request gets a recoverable error, the
                # newer one the answer.
                old, held.future = held.future, self._loop.create_future()
                _settle(old, Reply(render_body({"type": "error"})))
                return held.future
        return self.fail("item-not-found")

    def fail(self, condition: str) -> Reply:
        """End the session with a terminal binding condition (§17.2), as a broken
        connection: stream management may keep the XMPP session for a resumption."""
        self._finish(terminate(condition))
        if self._final is not None:
            self._final = None
            self._end()
        self._tell_closed()
        return error_reply(condition, self.params.ver is None)

    # -- processing in rid order (§14.2) --------------------------------------------------
    def _advance(self) -> None:
        while self._readable and not self._closed:
            entry = self._pending.pop(self.rid + 1, None)
            if entry is None:
                return
            self.rid += 1
            try:
                self._process(entry)
            except BoshError as err:
                _settle(entry.future, self.fail(err.condition))
                return
        if self._closed:
            self._flush_pending()

    def _process(self, entry: _Pending) -> None:
        req = entry.request
        self._stop_inactivity()
        self._pause = None  # §10: back to normal on the next request
        ack = req.number("ack")
        if ack is not None:
            self._cache.acknowledged(ack)
        held = _Held(req.rid, entry.future)
        if req.type == "terminate":
            self._feed_payloads(req)
            self._hold(held)
            self._feed(_CLOSE_IN)  # §13: payloads first, then the stream's close
            return
        pause = req.number("pause")
        if pause is not None:
            self._feed_payloads(req)
            self._paused(held, pause)
            return
        self._check_polling(req)
        if req.restart:
            self._feed(_open_xml(req, self.host))  # XEP-0206 §5; its payloads are ignored
        else:
            self._feed_payloads(req)
        self._hold(held)
        self._balance()

    def _check_polling(self, req: BodyRequest) -> None:
        """§12: in a polling session, two empty requests closer than 'polling' seconds,
        the first answered empty, are a policy violation."""
        if self.params.hold != 0:
            return
        now = self._loop.time()
        previous, self._last_poll = self._last_poll, None
        if req.payloads or req.restart:
            return
        if previous is not None and now - previous < self.params.polling:
            raise BoshError("policy-violation", "polling too often")
        self._last_poll = now

    def _paused(self, held: _Held, pause: int) -> None:
        """§10: answer everything held, the pause request empty, and wait ``pause``."""
        while self._held:
            self._answer(self._held.popleft())
        self._pause = min(pause, self.params.maxpause)
        body = self._body({}, [])
        # §14.3 need not keep a pause's answer; kept all the same, a client repeating
        # its pause gets it again instead of losing the session.
        self._cache.add(held.rid, body)
        _settle(held.future, Reply(body))
        self._start_inactivity()

    def _feed_payloads(self, req: BodyRequest) -> None:
        for payload in req.payloads:
            self._feed(payload_xml(payload))

    def _feed(self, data: bytes) -> None:
        if self.stream is not None and not self._closed:
            self.stream.message_received(data)

    def _hold(self, held: _Held) -> None:
        if self._closed:
            self._answer_final(held)
            return
        held.timer = self._loop.call_later(self.params.wait, self._waited, held)
        self._held.append(held)

    def _balance(self) -> None:
        """§8: hold at most ``hold`` requests; answer the oldest (with what is queued)."""
        while len(self._held) > self.params.hold:
            self._answer(self._held.popleft())
        self._deliver()

    def _waited(self, held: _Held) -> None:
        if held in self._held:
            self._held.remove(held)
            self._answer(held)

    def _deliver(self) -> None:
        """Queued payloads go out on the oldest held request."""
        self._deliver_soon = False
        if self._out and self._held and not self._closed:
            self._answer(self._held.popleft())

    def _answer(self, held: _Held) -> None:
        if held.timer is not None:
            held.timer.cancel()
        payloads, self._out, self._out_size = self._out, [], 0
        attrs: dict[str, str] = {}
        if self.params.ack and held.rid != self.rid:
            attrs["ack"] = str(self.rid)  # §9.1: every rid up to this one arrived
        body = self._body(attrs, payloads)
        if payloads:
            self._last_poll = None  # §12 counts only polls that got nothing
        self._cache.add(held.rid, body)
        _settle(held.future, Reply(body))
        if not self._held:
            self._start_inactivity()

    def _body(self, attrs: dict[str, str], payloads: list[bytes]) -> bytes:
        if not self._created:
            # §7.2 and XEP-0206 §4: the first response carries the session's terms.
            self._created = True
            attrs = {"sid": self.sid, **self.params.creation_attrs(self._first.rid),
                     "from": self.host, "xmpp:version": "1.0",
                     "xmpp:restartlogic": "true", **attrs}
            if self._authid:
                attrs["authid"] = self._authid
        return render_body(attrs, payloads)

    # -- the end ----------------------------------------------------------------------------
    def _finish(self, body: bytes) -> None:
        """The stream is over: the oldest held request takes the terminate body (§13),
        the others an empty one; with none held, the next request takes it."""
        self._closed = True
        self._out, self._out_size = [], 0
        held = list(self._held)
        self._held.clear()
        self._final = body
        for i, entry in enumerate(held):
            if entry.timer is not None:
                entry.timer.cancel()
            if i == 0:
                self._answer_final(entry)
            else:
                _settle(entry.future, Reply(render_body({})))
        self._flush_pending()
        if self._final is not None:
            self._start_inactivity()
        self._loop.call_soon(self._tell_closed)

    def _answer_final(self, held: _Held) -> None:
        body, self._final = self._final, None
        if body is None:
            body = terminate()
        _settle(held.future, Reply(body))
        self._end()

    def _flush_pending(self) -> None:
        pending = list(self._pending.values())
        self._pending.clear()
        for entry in pending:
            if entry.future.done():
                continue
            if self._final is not None:
                _settle(entry.future, Reply(self._final))
                self._final = None
                self._end()
            else:
                _settle(entry.future, Reply(terminate()))

    def _tell_closed(self) -> None:
        """The stream learns that its transport is gone (after our close or abort)."""
        if not self._lost_told and self.stream is not None:
            self._lost_told = True
            self.stream.connection_lost(None)

    def _end(self) -> None:
        """Forget the session: its sid is unknown from now on (§10, §13)."""
        if not self._ended:
            self._ended = True
            self._stop_inactivity()
            self._on_end(self)

    # -- inactivity (§10) -------------------------------------------------------------------
    def _start_inactivity(self) -> None:
        self._stop_inactivity()
        if self._ended:
            return
        period = self._pause if self._pause is not None else self.params.inactivity
        self._inactivity = self._loop.call_later(period, self._inactive)

    def _stop_inactivity(self) -> None:
        if self._inactivity is not None:
            self._inactivity.cancel()
            self._inactivity = None

    def _inactive(self) -> None:
        """§10: no request for too long: the client is gone, without a word to it.
        The stream sees a lost connection, so stream management can keep the XMPP
        session (XEP-0198 §5) as it does when a TCP connection drops."""
        self._inactivity = None
        if self._held:
            return
        if self.rid + 1 in self._pending and not self._closed:
            # The next request is here, waiting for the stream to read again: the
            # client is not the one being slow.
            self._start_inactivity()
            return
        if not self._closed:
            self.log.info("BOSH session %s... inactive, closing it", self.sid[:6])
            if self._pending:
                # Requests after a gap that never filled (§14.2): they end with it.
                self._finish(terminate("item-not-found"))
            self._closed = True
        self._final = None
        self._end()
        self._tell_closed()

    def shutdown(self, condition: str) -> None:
        """The module unloads: held requests get ``condition``, the stream is closed,
        the session is forgotten."""
        self.shutdown_condition = condition
        if not self._closed:
            self._feed(_CLOSE_IN)
            self.close()  # the stream may be busy: do not wait for it
        self._final = None
        self._end()


def _settle(future: asyncio.Future[Reply], reply: Reply) -> None:
    # A future whose HTTP request went away may be cancelled already.
    if not future.done():
        future.set_result(reply)


def _open_xml(req: BodyRequest, host: str) -> bytes:
    """The framed stream's ``<open/>`` for a session request or a restart (XEP-0206 §3,
    §5): the body's 'to', 'xml:lang' and 'xmpp:version' are the stream header's (a
    restart SHOULD repeat 'to'; without it, the session's host)."""
    el = Element("open", NS_FRAMING, {"to": req.attrs.get("to") or host,
                                      "version": req.xmpp_version or "1.0"})
    lang = req.attrs.get("xml:lang")
    if lang:
        el.attrs["xml:lang"] = lang
    return el.to_xml(None).encode()


def _stream_error_condition(data: bytes) -> str:
    try:
        error = parse_fragment(data)
    except StreamError:
        return "undefined-condition"
    for child in error.elements():
        if child.xmlns == NS_STREAMS and child.name != "text":
            return child.name
    return "undefined-condition"

