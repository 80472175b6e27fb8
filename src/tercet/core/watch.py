"""Live watching over the admin socket: log lines (``watch.log``) and the stanzas of one
account (``watch.stanzas``).

A watch belongs to the admin connection that asked for it: its lines arrive there as
``{"event": "log", ...}`` / ``{"event": "stanza", ...}`` until ``watch.stop`` or the
connection ends. Nothing is installed while nobody watches, so the stanza path pays
nothing then: stanza watching hooks the account's host (what the client sends) and puts a
send filter on its sessions (what it receives) only for the watch's lifetime.

A client that does not read its lines does not make the server buffer without end: past
``MAX_BUFFERED`` unread bytes lines are dropped and counted, and a ``dropped`` event says
how many once it reads again.

Message bodies are redacted unless the watch asked for them; passwords (in-band
registration, XEP-0077 §3.3; legacy authentication, XEP-0078) always are.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tercet.core.admin import AdminChannel, AdminCommandError, AdminRequest
from tercet.core.events import HookHandle
from tercet.core.logging import watch_root
from tercet.core.router import StanzaEvent
from tercet.core.session import C2SSession
from tercet.protocol.jid import JID, InvalidJID
from tercet.protocol.stanza import Element

if TYPE_CHECKING:
    from tercet.core.server import Server

#: Unread bytes on a watching connection past which lines are dropped (and counted).
MAX_BUFFERED = 1024 * 1024
#: Watches one admin connection may hold at once.
MAX_WATCHES_PER_CONNECTION = 8
#: Levels ``watch.log`` accepts; the default shows info and above.
LEVELS = ("debug", "info", "warning", "error", "critical")
#: A send filter at this priority runs after every other one (stream management filters
#: last among modules): the watch sees what leaves for the client.
FILTER_PRIORITY = -1_000_000
#: Stanza observers run before every handler and return None.
OBSERVER_PRIORITY = 1_000_000
REDACTED = "[redacted]"
#: Elements whose text is always hidden: (namespace, name).
ALWAYS_HIDDEN = {("jabber:iq:register", "password"), ("jabber:iq:auth", "password")}
NS_DATA = "jabber:x:data"
#: The stanza events of a client's own stanzas (routing.md), on its host.
PRE_EVENTS = [f"pre-{kind}/{to}" for kind in ("message", "presence", "iq")
              for to in ("host", "bare", "full")] + ["pre-iq/self"]


def redact(stanza: Element, bodies: bool) -> Element:
    """``stanza`` with message bodies (unless ``bodies``) and passwords replaced by
    ``[redacted]``; the stanza itself when there is nothing to hide (no copy)."""
    if not _needs_redaction(stanza, bodies):
        return stanza
    copy = stanza.copy()
    _redact_in_place(copy, bodies)
    return copy


def _hidden(el: Element, bodies: bool) -> bool:
    if (el.xmlns, el.name) in ALWAYS_HIDDEN:
        return True
    return not bodies and el.name == "body"


def _secret_field(el: Element) -> bool:
    # XEP-0077 §6 extensibility: the registration form's password field.
    return el.name == "field" and el.xmlns == NS_DATA and el.get("var") == "password"


def _needs_redaction(el: Element, bodies: bool) -> bool:
    if _hidden(el, bodies) or _secret_field(el):
        return True
    return any(_needs_redaction(child, bodies) for child in el.elements())


def _redact_in_place(el: Element, bodies: bool) -> None:
    if _hidden(el, bodies) or _secret_field(el):
        if _secret_field(el):
            for value in el.find_all("value", NS_DATA):
                value.children = [REDACTED]
        else:
            el.children = [REDACTED]
        return
    for child in el.elements():
        _redact_in_place(child, bodies)


class _Sink:
    """Delivers a watch's lines to its connection, dropping past the bound."""

    def __init__(self, conn: AdminChannel, watch_id: int) -> None:
        self.conn = conn
        self.watch_id = watch_id
        self.dropped = 0

    def emit(self, event: str, data: dict[str, Any]) -> None:
        if self.conn.buffered() > MAX_BUFFERED:
            self.dropped += 1
            return
        if self.dropped:
            self.conn.send({"event": "dropped", "watch": self.watch_id, "count": self.dropped})
            self.dropped = 0
        self.conn.send({"event": event, "watch": self.watch_id, **data})


def _matches_logger(name: str, module: str | None) -> bool:
    if not module:
        return True
    for prefix in (module, f"tercet.{module}", f"tercet.mod.{module}"):
        if name == prefix or name.startswith(prefix + "."):
            return True
    return False


class _LogHandler(logging.Handler):
    """Forwards records to a sink on the event loop (records come from any thread)."""

    def __init__(self, sink: _Sink, level: int, module: str | None,
                 loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(level)
        self.sink = sink
        self.module = module
        self.loop = loop

    def emit(self, record: logging.LogRecord) -> None:
        if not _matches_logger(record.name, self.module):
            return
        try:
            text = record.getMessage()
        except Exception:  # a bad format string in someone's log call
            text = str(record.msg)
        if record.exc_info and record.exc_info[1] is not None:
            text += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
        line = {"time": record.created, "level": record.levelname.lower(),
                "logger": record.name, "message": text}
        try:
            self.loop.call_soon_threadsafe(self.sink.emit, "log", line)
        except RuntimeError:  # the loop is closed: the server is gone
            pass


class _StanzaWatch:
    """The hooks and send filters watching one account or resource."""

    def __init__(self, server: Server, jid: JID, sink: _Sink, bodies: bool) -> None:
        self.server = server
        self.jid = jid
        self.sink = sink
        self.bodies = bodies
        self.host = server.hosts[jid.domain]
        self.handles: list[HookHandle] = []
        # id(session) -> (session, its send filter), to remove each filter on stop.
        self.filters: dict[int, tuple[C2SSession, Callable[[Element], Element | None]]] = {}

    def start(self) -> None:
        for name in PRE_EVENTS:
            self.handles.append(self.host.events.hook(name, self.sent, OBSERVER_PRIORITY))
        self.handles.append(self.host.events.hook("resource-bind", self.bound,
                                                  OBSERVER_PRIORITY))
        # Sessions that end are forgotten: a long watch of a client that reconnects all
        # day holds only the sessions that are live.
        self.handles.append(self.host.events.hook("resource-unbind", self.unbound,
                                                  OBSERVER_PRIORITY))
        for session in list(self.host.user_sessions(self.jid.node or "").values()):
            self._filter(session)

    def stop(self) -> None:
        for handle in self.handles:
            self.host.events.unhook(handle)
        self.handles.clear()
        for session, fn in self.filters.values():
            session.remove_send_filter(fn)
        self.filters.clear()

    def _wanted(self, session: C2SSession) -> bool:
        if session.username != self.jid.node or session.host is not self.host:
            return False
        return self.jid.resource is None or session.resource == self.jid.resource

    def bound(self, session: C2SSession) -> None:
        self._filter(session)
        return None

    def unbound(self, session: C2SSession) -> None:
        self.filters.pop(id(session), None)
        return None

    def _filter(self, session: C2SSession) -> None:
        if not self._wanted(session) or id(session) in self.filters:
            return

        def received(stanza: Element) -> Element:
            self._emit("received", session, stanza)
            return stanza
        self.filters[id(session)] = (session, received)
        session.add_send_filter(received, FILTER_PRIORITY)

    def sent(self, event: StanzaEvent) -> None:
        origin = event.origin
        if isinstance(origin, C2SSession) and self._wanted(origin):
            self._emit("sent", origin, event.stanza)
        return None

    def _emit(self, direction: str, session: C2SSession, stanza: Element) -> None:
        shown = redact(stanza, self.bodies)
        self.sink.emit("stanza", {"time": time.time(), "direction": direction,
                                  "session": session.full_jid, "xml": shown.to_xml()})


class Watches:
    """``watch.log``, ``watch.stanzas`` and ``watch.stop``; watches per connection."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.by_conn: dict[int, dict[int, Callable[[], None]]] = {}
        self._next = 1

    def _add(self, conn: AdminChannel, stop: Callable[[], None]) -> int:
        key = id(conn)
        mine = self.by_conn.get(key)
        if mine is None:
            mine = self.by_conn[key] = {}
            conn.when_closed(lambda: self._stop_all(key))
        if len(mine) >= MAX_WATCHES_PER_CONNECTION:
            stop()
            raise AdminCommandError(f"at most {MAX_WATCHES_PER_CONNECTION} watches per "
                                    "connection")
        watch_id = self._next
        self._next += 1
        mine[watch_id] = stop
        return watch_id

    def _stop_all(self, key: int) -> None:
        for stop in self.by_conn.pop(key, {}).values():
            stop()

    def log(self, req: AdminRequest) -> dict[str, Any]:
        """``watch.log``: stream log lines at ``level`` (default info) and above, of
        loggers named after ``module`` if given (``c2s``, ``mam``, ``tercet.router``)."""
        level = str(req.arg("level") or "info").lower()
        if level not in LEVELS:
            raise AdminCommandError(f"level must be one of {', '.join(LEVELS)}")
        module = str(req.arg("module") or "") or None
        sink = _Sink(req.conn, self._next)
        handler = _LogHandler(sink, getattr(logging, level.upper()), module,
                              asyncio.get_running_loop())
        undo = watch_root(handler)
        watch_id = self._add(req.conn, undo)
        sink.watch_id = watch_id
        return {"watch": watch_id, "level": level, "module": module}

    def stanzas(self, req: AdminRequest) -> dict[str, Any]:
        """``watch.stanzas``: stream the stanzas a local account (bare JID: all its
        resources) or one resource sends and receives; ``bodies`` shows message bodies."""
        text = str(req.arg("jid") or "")
        try:
            jid = self.server.parse_jid(text)
        except InvalidJID:
            raise AdminCommandError(f"{text!r} is not a valid JID") from None
        host = self.server.hosts.get(jid.domain)
        if jid.node is None or host is None or host.kind != "local":
            raise AdminCommandError("name an account of a virtual host here (user@host or "
                                    "user@host/resource)")
        bodies = bool(req.arg("bodies"))
        sink = _Sink(req.conn, self._next)
        watch = _StanzaWatch(self.server, jid, sink, bodies)
        watch.start()
        watch_id = self._add(req.conn, watch.stop)
        sink.watch_id = watch_id
        return {"watch": watch_id, "jid": str(jid), "bodies": bodies}

    def stop(self, req: AdminRequest) -> dict[str, Any]:
        """``watch.stop``: end one watch of this connection (``watch``), or all."""
        mine = self.by_conn.get(id(req.conn), {})
        wanted = req.arg("watch")
        ids = [int(wanted)] if wanted is not None else list(mine)
        stopped = 0
        for watch_id in ids:
            stop = mine.pop(watch_id, None)
            if stop is not None:
                stop()
                stopped += 1
        return {"stopped": stopped}
