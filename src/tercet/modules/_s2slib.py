"""Outbound server-to-server links: one bounded queue per (our domain, remote domain).

A stanza for a remote domain waits in its link's queue while the stream is set up
(resolution, connection, STARTTLS, authentication); once authenticated the queue is
flushed in order and later stanzas go straight out. If the peer cannot be reached, every
queued stanza that may be answered is bounced (RFC 6120 §8.3.3.15 / §8.3.3.16), in order.
The s2s module offers a :class:`S2SLinks` as the ``s2s`` service; dialback uses it to get a
stream for its verification requests (XEP-0220 §2.1.2).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from tercet.module import (
    ConnectSpec,
    Element,
    ModuleApi,
    PeerUnreachable,
    ServerSession,
    Session,
    StanzaError,
    StreamLimits,
)

#: Stanzas waiting for one remote domain while its stream is set up. RFC 6120 §13.12
#: (resource exhaustion) asks for a bound; beyond it stanzas bounce resource-constraint.
MAX_QUEUE = 10000
#: Seconds an outbound stream may take from connection to authenticated (XEP-0220 leaves
#: it open; Prosody's s2s auth timeout is 60 s).
AUTH_TIMEOUT = 60.0
#: After a failed attempt, stanzas to that domain bounce at once for this long, doubling
#: with each consecutive failure up to RETRY_MAX (RFC 6120 §3.2 leaves retries to the
#: implementation; a short cap, unlike ejabberd's 300 s, so a peer that comes back is
#: reachable again within a minute).
RETRY_BASE = 2.0
RETRY_MAX = 60.0


@dataclass(eq=False)
class Link:
    local: str
    remote: str
    queue: deque[tuple[Element, Session]] = field(default_factory=deque)
    session: ServerSession | None = None
    opening: asyncio.Task[ServerSession | PeerUnreachable] | None = None
    establishing: asyncio.Task[None] | None = None
    last_used: float = 0.0
    failures: int = 0  # consecutive failed attempts
    retry_at: float = 0.0  # no new attempt before this (server clock)
    last_condition: str = "remote-server-not-found"

    @property
    def idle(self) -> bool:
        return self.session is None and not self.queue and self.establishing is None


class S2SLinks:
    """The outbound links of the server (the ``s2s`` service)."""

    def __init__(self, module: ModuleApi, spec: ConnectSpec, idle_timeout: float) -> None:
        self.module = module
        self.spec = spec  # template: service, limits, nameservers, timeouts
        self.idle_timeout = idle_timeout
        self.links: dict[tuple[str, str], Link] = {}
        # Inbound streams by session id, for the idle timeout.
        self.inbound: dict[str, ServerSession] = {}

    def _link(self, local: str, remote: str) -> Link:
        link = self.links.get((local, remote))
        if link is None:
            link = self.links[(local, remote)] = Link(local, remote)
        return link

    def send(self, local: str, remote: str, stanza: Element, origin: Session) -> None:
        """Send ``stanza`` from our ``local`` domain to ``remote``, connecting if needed;
        errors go back through ``origin`` (the sender's session)."""
        link = self._link(local, remote)
        link.last_used = self.module.now()
        session = link.session
        if session is not None and session.carries(local, remote) and not link.queue:
            session.last_activity = link.last_used
            session.transmit(stanza)
            return
        if link.establishing is None and (session is None or session.closed) \
                and link.last_used < link.retry_at:
            self._bounce(stanza, origin, link.last_condition)  # backing off
            return
        if len(link.queue) >= MAX_QUEUE:
            self._bounce(stanza, origin, "resource-constraint")
            return
        link.queue.append((stanza, origin))
        if link.establishing is None:
            link.establishing = self.module.spawn(self._establish(link))

    async def stream_for(self, local: str, remote: str) -> ServerSession:
        """An outbound stream to ``remote`` whose negotiation is done (it may not be
        authenticated yet): what dialback sends db:verify over. Raises PeerUnreachable."""
        link = self._link(local, remote)
        session = await self._open(link)
        if session.direction == "in":
            return session  # a bidirectional stream the peer opened (XEP-0288)
        async with asyncio.timeout(AUTH_TIMEOUT):
            await session.negotiated.wait()
        if session.closed:
            raise PeerUnreachable("remote-server-not-found", "the stream closed")
        return session

    async def _open(self, link: Link) -> ServerSession:
        if link.session is not None and not link.session.closed:
            return link.session
        if link.opening is None or link.opening.done():
            link.opening = self.module.spawn(self._connect(link))
        result = await asyncio.shield(link.opening)
        if isinstance(result, PeerUnreachable):
            raise result
        return result

    async def _connect(self, link: Link) -> ServerSession | PeerUnreachable:
        spec = ConnectSpec(self.spec.service, link.local, link.remote, self.spec.limits,
                           self.spec.nameservers, self.spec.connect_timeout,
                           self.spec.overall_timeout)
        try:
            session = await self.module.connect(spec)
        except PeerUnreachable as exc:
            return exc
        link.session = session
        return session

    async def _establish(self, link: Link) -> None:
        try:
            session = await self._open(link)
            async with asyncio.timeout(AUTH_TIMEOUT):
                await session.ready.wait()
            if session.closed or not session.authenticated:
                raise PeerUnreachable("remote-server-not-found", "not authenticated")
        except PeerUnreachable as exc:
            self.module.log.info("no stream %s -> %s: %s", link.local, link.remote, exc)
            self._fail(link, exc.condition)
            return
        except TimeoutError:
            self.module.log.info("no stream %s -> %s in %s s", link.local, link.remote,
                                 AUTH_TIMEOUT)
            if link.session is not None:
                link.session.close()
            self._fail(link, "remote-server-timeout")
            return
        finally:
            link.establishing = None
        link.failures, link.retry_at = 0, 0.0
        self.module.log.debug("flushing %d stanza(s) to %s", len(link.queue), link.remote)
        self._flush(link, session)

    def _flush(self, link: Link, session: ServerSession) -> None:
        while link.queue:  # no await inside: nothing can overtake the queue
            session.transmit(link.queue.popleft()[0])

    def _fail(self, link: Link, condition: str) -> None:
        queue, link.queue = link.queue, deque()
        link.session = None
        link.failures += 1
        link.last_condition = condition
        delay = min(RETRY_MAX, RETRY_BASE * 2 ** (link.failures - 1))
        link.retry_at = self.module.now() + delay
        for stanza, origin in queue:
            self._bounce(stanza, origin, condition)

    def _bounce(self, stanza: Element, origin: Session, condition: str) -> None:
        """The stanza error back to its sender, ``from`` the address it was sent to
        (RFC 6120 §8.3.1); errors and results are never answered."""
        if stanza.get("type") in ("error", "result"):
            return
        reply = stanza.error_reply(StanzaError(condition))
        self.module.route_detached(origin, reply)

    def adopt(self, session: ServerSession) -> None:
        """XEP-0288 §2.2: a bidirectional inbound stream may carry our stanzas for the
        inverse of each pair authenticated on it. It becomes the link of a pair that has
        no stream of its own (open or being set up): no second connection is opened."""
        if session.direction != "in" or not session.bidi or session.closed:
            return
        for local, remote in sorted(session.pairs):
            link = self._link(local, remote)
            current = link.session
            if link.establishing is not None or (
                    current is not None and not current.closed):
                continue  # keep the stream we have or are opening
            session.log.info("bidirectional stream from %s also carries %s -> %s",
                             remote, local, remote)
            link.session = session
            link.failures, link.retry_at = 0, 0.0
            self._flush(link, session)

    def opened(self, session: ServerSession) -> None:
        """An inbound stream opened: watched for the idle timeout until it ends."""
        if session.direction == "in" and not session.closed:
            self.inbound[session.id] = session

    def closed(self, session: ServerSession) -> None:
        """A stream ended: forget it; stanzas still queued get a new connection."""
        self.inbound.pop(session.id, None)
        if session.direction == "out":
            pairs = [(session.local_domain, session.remote_domain)]
        else:
            pairs = list(session.pairs) if session.bidi else []
        for local, remote in pairs:
            link = self.links.get((local or "", remote or ""))
            if link is None or link.session is not session:
                continue
            link.session = None
            if link.queue and link.establishing is None:
                link.establishing = self.module.spawn(self._establish(link))
            elif not link.queue and link.establishing is None:
                del self.links[(link.local, link.remote)]

    def close_idle(self) -> float:
        """Close streams unused for ``idle_timeout`` seconds, in both directions (as
        Prosody's ``s2s_timeout``); returns the next check delay."""
        now = self.module.now()
        for key, link in list(self.links.items()):
            if link.idle and now >= link.retry_at:
                del self.links[key]  # a failed domain is remembered only while backing off
                continue
            session = link.session
            if session is not None and session.direction == "out" \
                    and session.authenticated and not link.queue \
                    and now - max(link.last_used, session.last_activity) >= self.idle_timeout:
                session.log.info("closing idle stream to %s", link.remote)
                session.close()
        for session in list(self.inbound.values()):
            # Received traffic and, on a bidirectional stream, what we sent on it.
            if now - session.last_activity >= self.idle_timeout:
                session.log.info("closing idle stream from %s", session.remote_domain)
                session.close()
        return min(60.0, self.idle_timeout)

    def limits(self) -> StreamLimits:
        return self.spec.limits
