"""Stream Management (XEP-0198, ``urn:xmpp:sm:3``): acks and resumption.

Counting (§4): ``h`` of our ``<a/>`` is the number of stanzas received from the client
since ``<enable/>`` (the connection counts them in ``session.stanzas_in``); what we send
is counted and kept by a send filter that runs last (priority -100), so stanzas a filter
holds back (client state indication) count only when they leave. The client's ``<a h/>``
drops what it acknowledges. All counters wrap at 2^32 (§4).

Resumption (§5): a session enabled with ``resume='true'`` whose connection goes without
a stream close *hibernates* for ``smacks_hibernation_time``: it stays bound and
available, stanzas to it are kept in its queue. ``<resume previd h/>`` on a new stream of
the same account moves it there (``session.attach``), answers ``<resumed/>`` and resends
what the client did not acknowledge. When a session with unacknowledged messages ends
for good (hibernation expired, closed, replaced), those messages are routed again to the
account's bare JID: another resource or offline storage takes them, exactly once.

Redelivery is stamped (XEP-0198 §4, since version 1.5): every message and presence resent
after a resumption, and every message routed again when the session ends, carries a
XEP-0203 ``<delay from='<host>' stamp='...'/>`` with the time it was first queued for the
client, unless one from this host is there already (offline storage keeps that one).

The queue keeps the very Element the router handed to ``session.send`` (a reference, no
copy on the hot path): a stanza once sent is not changed by anyone (the router and every
module copy before they change what they deliver, as presence broadcast and carbons do),
and what is resent is a copy with the delay, so the queued original stays as it was.

Inline, without extra round trips: ``<enable/>`` inside a Bind 2 ``<bind/>`` (XEP-0386;
the ``<enabled/>`` goes into ``<bound/>``), and ``<resume/>`` inside the SASL2
``<authenticate/>`` (XEP-0388 ``<inline>``, XEP-0198 "Inline resumption"): once the
account is authenticated the hibernated session moves onto the stream, ``<resumed/>``
(or ``<failed/>``, then the client binds as usual) goes into ``<success/>``, and what the
client did not acknowledge is resent after it.
"""

from __future__ import annotations

import asyncio
import inspect
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from tercet.module import (
    NS_DELAY,
    ClientSession,
    Element,
    ModuleApi,
    Option,
    SessionReport,
    StreamElementEvent,
    StreamError,
    StreamFeaturesEvent,
)
from tercet.modules._sasllib import Bind2Inline, Sasl2Success
from tercet.modules._smlib import ACKNOWLEDGE, HIBERNATION_TIMEOUT, HibernationTimeout

NS_SM = "urn:xmpp:sm:3"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
MOD = 2**32  # XEP-0198 §4: h is an unsigned 32-bit integer that wraps
KEY = "smacks"
# Hibernations are ended by a sweep on the server's clock (module.now(), which tests set)
# at most this many seconds apart: an expiry is at most that late.
MAX_SWEEP_INTERVAL = 5.0
# How long unloading (server shutdown) waits for unacknowledged messages being routed to
# offline storage: they are written before the storage closes, not lost.
REROUTE_WAIT = 5.0
META = {"summary": "Stream Management", "stage": "beta", "xeps": ["XEP-0198"]}

OPTIONS: list[Option[Any]] = [
    Option("smacks_hibernation_time", int, 600,
           "Seconds a session whose connection was lost waits for a resumption "
           "(0: no resumption).", min=0, max=86400, cite="XEP-0198 §5"),
    Option("smacks_max_unacked_stanzas", int, 0,
           "Unacknowledged stanzas beyond which the server asks the client for an ack.",
           min=0, max=10000, cite="XEP-0198 §4"),
    Option("smacks_max_queue_size", int, 500,
           "Unacknowledged stanzas kept per session; beyond it the session is closed "
           "(policy-violation) and what it kept goes to offline storage.",
           min=1, max=100000, cite="XEP-0198 §4"),
    Option("smacks_max_hibernated_sessions", int, 10,
           "Hibernated sessions one account may have; the oldest ends first.",
           min=0, max=1000, cite="XEP-0198 §5"),
]


class SmState:
    """One session's stream management state."""

    __slots__ = ("acked", "awaiting", "deadline", "ended", "filter", "in_base", "queue",
                 "resume_id", "sent", "since")

    def __init__(self, in_base: int, filter_: Callable[[Element], Element | None]) -> None:
        self.in_base = in_base  # session.stanzas_in at <enable/>
        self.filter = filter_
        # Sent, not acknowledged yet, each with the time it was queued (for the delay).
        self.queue: deque[tuple[Element, float]] = deque()
        self.sent = 0  # stanzas sent since <enable/> (not wrapped)
        self.acked = 0  # of which acknowledged
        self.awaiting = False  # an <r/> is out
        self.resume_id: str | None = None
        self.deadline: float | None = None  # hibernating until then (module.now())
        self.since = 0.0  # when the connection was lost (module.now())
        self.ended = False

    def handled(self, session: ClientSession) -> int:
        return (session.stanzas_in - self.in_base) % MOD


class StreamManagement:
    def __init__(self, module: ModuleApi) -> None:
        self.module = module
        self.now = module.now  # bound once: every stanza sent is stamped with it
        self.hibernation_time = module.option("smacks_hibernation_time")
        self.max_unacked = module.option("smacks_max_unacked_stanzas")
        self.max_queue = module.option("smacks_max_queue_size")
        self.max_hibernated = module.option("smacks_max_hibernated_sessions")
        self.sweep_every = min(float(self.hibernation_time), MAX_SWEEP_INTERVAL)
        self.resumable: dict[str, ClientSession] = {}  # resumption id -> session
        self.hibernated: dict[str, list[ClientSession]] = {}  # username -> oldest first
        self.rerouting: set[asyncio.Task[None]] = set()  # unbind() routing messages again

    # -- stream elements ------------------------------------------------------------------
    def features(self, event: StreamFeaturesEvent) -> None:
        if event.session.authenticated:
            event.features.tag("sm", NS_SM)

    def enable(self, event: StreamElementEvent) -> bool:
        session = event.session
        if not session.authenticated or KEY in session.data:
            return failed(session, "unexpected-request")
        session.send_element(self.start(session, event.element))
        return True

    def start(self, session: ClientSession, request: Element) -> Element:
        """Enable stream management on ``session`` as ``request`` (an <enable/>) asks;
        the <enabled/> to answer."""
        state = SmState(session.stanzas_in, lambda stanza: self.outgoing(session, stanza))
        session.data[KEY] = state
        session.add_send_filter(state.filter, -100)
        attrs: dict[str, str] = {}
        if request.get("resume") in ("true", "1") and self.hibernation_time > 0:
            state.resume_id = secrets.token_urlsafe(18)
            self.resumable[state.resume_id] = session
            attrs = {"id": state.resume_id, "resume": "true",
                     "max": str(self.hibernation_time)}
        return Element("enabled", NS_SM, attrs)

    # -- inline in Bind 2 and SASL2 -------------------------------------------------------
    def bind2_features(self, event: StreamFeaturesEvent) -> None:
        event.features.tag("feature", attrs={"var": NS_SM})

    def bind2_enable(self, event: Bind2Inline) -> bool:
        if KEY not in event.session.data:
            event.bound.append(self.start(event.session, event.element))
        return True

    def sasl2_inline(self, event: StreamFeaturesEvent) -> None:
        if self.hibernation_time > 0:  # XEP-0198: inline resumption is offered
            event.features.tag("sm", NS_SM)

    def sasl2_success(self, event: Sasl2Success) -> None:
        """``<resume/>`` inline in SASL2: resume before Bind 2 runs (which then does
        nothing), answer in <success/>, move the session once <success/> is sent."""
        request = event.request.find("resume", NS_SM)
        session = event.session
        if request is None or session.bound or KEY in session.data:
            return None
        old = self.resumable.get(request.get("previd") or "")
        if old is None or old.username != session.username or old.host is not session.host:
            event.success.append(failed_element("item-not-found"))
            return None
        state: SmState = old.data[KEY]
        error = acknowledge(state, request.get("h"))
        if error is not None:  # the client may still bind a new session
            event.success.append(failed_element("unexpected-request"))
            return None
        state.deadline = None
        self._unlist(old)
        if not old.detached:
            old.detach(lambda: self.end(old))
        event.success.append(Element("resumed", NS_SM, {"previd": state.resume_id or "",
                                                         "h": str(state.handled(old))}))
        # XEP-0388 §2.3: the full JID of the session the client now has.
        ident = event.success.tag("authorization-identifier", "urn:xmpp:sasl:2")
        ident.append(old.full_jid or "")
        event.after.insert(0, lambda: self.move(old, session))
        return None

    def move(self, old: ClientSession, session: ClientSession) -> None:
        """Put the hibernated ``old`` on ``session``'s connection and resend what the
        client did not acknowledge (shared by <resume/> and inline resumption)."""
        state: SmState = old.data[KEY]
        old.attach(session.conn)
        old.log.info("resumed on a new connection (%d stanzas to resend)", len(state.queue))
        host = self.module.host
        for stanza, when in list(state.queue):  # still unacknowledged: they stay queued
            old.send_after(state.filter, delayed(stanza, when, host))
        state.awaiting = False
        if state.queue:
            self.ask(old, state)

    def request(self, event: StreamElementEvent) -> Awaitable[bool] | bool | None:
        state = event.session.data.get(KEY)
        if state is None:
            return None  # unsupported-stanza-type: not enabled
        pending = self.module.fire(ACKNOWLEDGE, event.session)
        if inspect.isawaitable(pending):
            return self._answer_after(event.session, state, pending)
        return self._answer(event.session, state)

    async def _answer_after(self, session: ClientSession, state: SmState,
                            pending: Awaitable[Any]) -> bool:
        await pending  # the stream reads nothing more meanwhile: h is the same number
        return self._answer(session, state)

    @staticmethod
    def _answer(session: ClientSession, state: SmState) -> bool:
        session.send_element(Element("a", NS_SM, {"h": str(state.handled(session))}))
        return True

    def answer(self, event: StreamElementEvent) -> bool | None:
        state = event.session.data.get(KEY)
        if state is None:
            return None
        error = acknowledge(state, event.element.get("h"))
        if error is not None:
            event.session.close(error)
        elif len(state.queue) > self.max_unacked:
            self.ask(event.session, state)  # more left while the <r/> was out
        return True

    def resume(self, event: StreamElementEvent) -> bool:
        session = event.session
        if not session.authenticated or session.bound or KEY in session.data:
            return failed(session, "unexpected-request")
        old = self.resumable.get(event.element.get("previd") or "")
        # Another account's id is as unknown as an expired one (no oracle for ids).
        if old is None or old.username != session.username or old.host is not session.host:
            return failed(session, "item-not-found")
        state: SmState = old.data[KEY]
        error = acknowledge(state, event.element.get("h"))
        if error is not None:
            session.close(error)
            return True
        state.deadline = None
        self._unlist(old)
        if not old.detached:  # the client noticed the loss before we did
            old.detach(lambda: self.end(old))
        session.send_element(Element("resumed", NS_SM, {"previd": state.resume_id or "",
                                                         "h": str(state.handled(old))}))
        self.move(old, session)
        return True

    # -- what leaves ----------------------------------------------------------------------
    def outgoing(self, session: ClientSession, stanza: Element) -> Element | None:
        state: SmState = session.data[KEY]
        state.queue.append((stanza, self.now()))
        state.sent += 1
        if len(state.queue) > self.max_queue:
            session.log.info("%d stanzas unacknowledged, closing", len(state.queue))
            if session.detached:
                self.end(session)
            else:
                # Unbound at once, not when the transport is gone: what comes meanwhile
                # is routed elsewhere rather than written to a closing stream.
                self.module.close_session(session, StreamError(
                    "policy-violation", "too many unacknowledged stanzas"))
            return None
        if not state.awaiting and len(state.queue) > self.max_unacked:
            self.ask(session, state)
        return stanza

    def ask(self, session: ClientSession, state: SmState) -> None:
        """Send <r/> after what is being written now (one per batch)."""
        state.awaiting = True

        def send_r() -> None:
            if not session.closed and not session.detached:
                session.send_element(Element("r", NS_SM))
        asyncio.get_running_loop().call_soon(send_r)

    # -- hibernation and the end ----------------------------------------------------------
    def connection_lost(self, session: ClientSession) -> bool | None:
        state: SmState | None = session.data.get(KEY)
        if state is None or state.resume_id is None or state.ended:
            return None
        session.detach(lambda: self.end(session))
        session.log.info("connection lost, hibernating for %d s", self.hibernation_time)
        state.since = self.module.now()
        state.deadline = state.since + self.hibernation_time
        assert session.username is not None  # bound
        sessions = self.hibernated.setdefault(session.username, [])
        sessions.append(session)
        while len(sessions) > self.max_hibernated:
            self.end(sessions[0])
        return True

    def sweep(self) -> float:
        """End the hibernations whose time is up (by the server's clock); run by a timer
        every ``sweep_every`` seconds, which is how late an expiry can be. Before one
        ends, ``smacks-hibernation-timeout`` lets other modules keep it longer (push
        notifications, while the device has not been woken yet)."""
        now = self.module.now()
        for sessions in list(self.hibernated.values()):
            for session in list(sessions):
                state: SmState | None = session.data.get(KEY)
                if state is None or state.deadline is None or state.deadline > now:
                    continue
                event = HibernationTimeout(session, state.since, now,
                                           float(self.hibernation_time))
                self.module.fire(HIBERNATION_TIMEOUT, event)  # handlers are synchronous
                if event.until is not None:
                    state.deadline = event.until
                    session.log.info("hibernation extended by %.0f s", event.until - now)
                else:
                    self.end(session)
        return self.sweep_every

    def end(self, session: ClientSession) -> None:
        """End a hibernated session for good (expired, replaced, closed)."""
        state: SmState | None = session.data.get(KEY)
        if state is None or state.ended:
            return
        state.ended = True
        self._forget(session, state)
        session.log.info("hibernation over, closing")
        self.module.close_session(session)

    def unbind(self, session: ClientSession) -> None:
        """The session ended: route its unacknowledged messages again (XEP-0198 §5)."""
        state: SmState | None = session.data.get(KEY)
        if state is None:
            return
        state.ended = True
        self._forget(session, state)
        session.remove_send_filter(state.filter)
        queue, state.queue = state.queue, deque()
        again: list[Element] = []
        for stanza, when in queue:
            if (stanza.name == "message" and stanza.get("type", "normal") in ("chat", "normal")
                    and stanza.find("body") is not None and session.bare_jid is not None):
                copy = delayed(stanza, when, self.module.host)
                if copy is stanza:
                    copy = stanza.copy()
                copy.attrs["to"] = session.bare_jid
                again.append(copy)
        if again:
            task = self.module.spawn(self.reroute(again))
            self.rerouting.add(task)
            task.add_done_callback(self.rerouting.discard)

    async def reroute(self, stanzas: list[Element]) -> None:
        """Route the messages of an ended session to its bare JID, one after the other
        (another resource or offline storage takes them, in their order)."""
        for stanza in stanzas:
            await self.module.send(stanza)

    def closed(self, session: ClientSession) -> None:
        state: SmState | None = session.data.get(KEY)
        if state is not None:
            state.ended = True
            self._forget(session, state)

    def _forget(self, session: ClientSession, state: SmState) -> None:
        state.deadline = None
        if state.resume_id is not None:
            self.resumable.pop(state.resume_id, None)
        self._unlist(session)

    def _unlist(self, session: ClientSession) -> None:
        sessions = self.hibernated.get(session.username or "")
        if sessions is not None and session in sessions:
            sessions.remove(session)
            if not sessions:
                del self.hibernated[session.username or ""]

    def unload(self) -> None:
        for sessions in list(self.hibernated.values()):
            for session in list(sessions):
                self.end(session)

    async def drain(self) -> None:
        """End every hibernation and wait (a bounded time) until the unacknowledged
        messages are routed again, before the module and the storage go."""
        self.unload()
        if self.rerouting:
            await asyncio.wait(list(self.rerouting), timeout=REROUTE_WAIT)


def acknowledge(state: SmState, text: str | None) -> StreamError | None:
    """Drop what the peer's ``h`` acknowledges; an ``h`` beyond what was sent is the
    stream error returned (XEP-0198 §4, handled-count-too-high)."""
    try:
        h = int(text or "")
    except ValueError:
        return StreamError("invalid-xml", "h is not a number")
    if not 0 <= h < MOD:
        return StreamError("invalid-xml", "h out of range")
    count = (h - state.acked) % MOD
    if count > len(state.queue):
        return StreamError("undefined-condition", "h acknowledges more than was sent",
                          extra=Element("handled-count-too-high", NS_SM, {
                              "h": str(h), "send-count": str(state.sent % MOD)}))
    for _ in range(count):
        state.queue.popleft()
    state.acked += count
    state.awaiting = False
    return None


def delayed(stanza: Element, when: float, host: str) -> Element:
    """``stanza`` as it is delivered again: for a message or presence, a copy with a
    XEP-0203 delay from ``host`` saying when it was first queued (XEP-0198 §4), unless it
    carries a delay from ``host`` already (never two from the same entity); otherwise
    ``stanza`` itself."""
    if stanza.name not in ("message", "presence") or has_delay_from(stanza, host):
        return stanza
    copy = stanza.copy()
    copy.tag("delay", NS_DELAY, {"from": host, "stamp": stamp(when)})
    return copy


def has_delay_from(stanza: Element, host: str) -> bool:
    return any(child.name == "delay" and child.xmlns == NS_DELAY and child.get("from") == host
               for child in stanza.elements())


def stamp(when: float) -> str:
    """XEP-0082 DateTime in UTC with milliseconds (resent stanzas keep their order)."""
    millis = int(round(when * 1000))
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(millis // 1000)) + \
        f".{millis % 1000:03d}Z"


def failed(session: ClientSession, condition: str) -> bool:
    session.send_element(failed_element(condition))
    return True


def failed_element(condition: str) -> Element:
    reply = Element("failed", NS_SM)
    reply.tag(condition, NS_STANZAS)
    return reply


_INSTANCES: dict[ModuleApi, StreamManagement] = {}


def load(module: ModuleApi) -> None:
    sm = StreamManagement(module)
    _INSTANCES[module] = sm
    module.hook("stream-features", sm.features)
    module.hook("session-report", report)  # `c2s list` in the admin shell
    module.hook(f"stream/{NS_SM}:enable", sm.enable)
    module.hook(f"stream/{NS_SM}:r", sm.request)
    module.hook(f"stream/{NS_SM}:a", sm.answer)
    module.hook(f"stream/{NS_SM}:resume", sm.resume)
    module.hook("bind2-features", sm.bind2_features)
    module.hook(f"bind2-inline/{NS_SM}:enable", sm.bind2_enable)
    module.hook("sasl2-inline", sm.sasl2_inline)
    # Before Bind 2 (10): a resumed session is not bound again.
    module.hook("sasl2-success", sm.sasl2_success, 20)
    module.hook("connection-lost", sm.connection_lost)
    module.hook("resource-unbind", sm.unbind, 100)
    module.hook("session-closed", sm.closed)
    module.on_unload(sm.unload)
    module.provides("smacks", sm)  # tests run sweep() after moving the clock
    if sm.hibernation_time > 0:
        module.add_timer(sm.sweep_every, sm.sweep)


async def unload(module: ModuleApi) -> None:
    """Route the unacknowledged messages of hibernated sessions before the module goes."""
    sm = _INSTANCES.pop(module, None)
    if sm is not None:
        await sm.drain()


def report(event: SessionReport) -> None:
    """Stream management in use: resumable or not, and stanzas not acknowledged yet."""
    state = event.session.data.get(KEY)
    if isinstance(state, SmState) and not state.ended:
        event.features["sm"] = "resumable" if state.resume_id else "on"
        event.features["sm_unacked"] = len(state.queue)
