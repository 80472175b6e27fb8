"""Admin commands of the s2s module: ``s2s.list`` and ``s2s.close`` (``tercet s2s ...``).

Outbound streams are known from their links (:class:`S2SLinks`); inbound ones are seen
when their stream opens (``s2s-features``) and forgotten when they end (``s2s-closed``),
by observers that never answer the events, so negotiation is untouched.

``s2s.close`` ends every stream with a domain with the stream error ``reset`` by default:
RFC 6120 §4.9.3.16 lets a server close a stream it wants re-established, which fits an
operator's close (the peer may reconnect as soon as it has something to send; nothing
bars it yet). ``policy-violation`` (§4.9.3.14) may be asked for instead, to tell the peer
it is unwelcome.
"""

from __future__ import annotations

from typing import Any

from tercet.module import (
    AdminCommandError,
    AdminRequest,
    ModuleApi,
    ServerSession,
    ServerStreamEvent,
    StreamError,
)
from tercet.modules._s2slib import Link, S2SLinks

#: Stream error conditions an operator may close with (RFC 6120 §4.9.3).
CLOSE_CONDITIONS = ("reset", "policy-violation")
#: Observers run before every negotiation handler and return None.
OBSERVER_PRIORITY = 1000


class S2SAdmin:
    """Tracks the server's s2s streams for the admin socket."""

    def __init__(self, module: ModuleApi, links: S2SLinks) -> None:
        self.module = module
        self.links = links
        # session id -> (session, when its stream first opened)
        self.streams: dict[str, tuple[ServerSession, float]] = {}

    def register(self) -> None:
        """Hook the observers and the admin commands (undone when the module unloads)."""
        hook = self.module.hook_global
        hook("s2s-features", self.seen, OBSERVER_PRIORITY)
        hook("s2s-features-out", self.seen, OBSERVER_PRIORITY)
        hook("s2s-closed", self.forget, -OBSERVER_PRIORITY)
        hook("admin/s2s.list", self.list_)
        hook("admin/s2s.close", self.close)

    def seen(self, event: ServerStreamEvent) -> None:
        session = event.session
        if session.id not in self.streams and not session.closed:
            self.streams[session.id] = (session, self.module.now())
        return None

    def forget(self, session: ServerSession) -> None:
        self.streams.pop(session.id, None)
        return None

    def _sessions(self) -> list[ServerSession]:
        found = {s.id: s for s, _ in self.streams.values()}
        for link in self.links.links.values():
            if link.session is not None:
                found.setdefault(link.session.id, link.session)
        return [s for s in found.values() if not s.closed]

    def list_(self, _req: AdminRequest) -> list[dict[str, Any]]:
        """``s2s.list``: one row per stream, then links still waiting for one."""
        by_session = {link.session.id: link for link in self.links.links.values()
                      if link.session is not None}
        rows = [self._row(s, by_session.get(s.id)) for s in self._sessions()]
        for link in self.links.links.values():
            if link.session is None or link.session.closed:
                if link.queue or link.establishing is not None:
                    rows.append(self._pending_row(link))
        return sorted(rows, key=lambda r: (r["remote_domain"] or "", r["direction"]))

    def _row(self, session: ServerSession, link: Link | None) -> dict[str, Any]:
        now = self.module.now()
        opened = self.streams.get(session.id)
        if session.direction == "in":
            authenticated = sorted(session.remote_domains)
        else:
            authenticated = [session.remote_domain or ""] if session.authenticated else []
        tls = session.tls_info if session.secure else {}
        return {
            "id": session.id,
            "direction": session.direction,
            "local_domain": session.local_domain,
            "remote_domain": session.remote_domain,
            "authenticated_domains": authenticated,
            "peer": session.peer,
            "tls_version": tls.get("version"),
            "tls_cipher": tls.get("cipher"),
            "auth_method": session.auth_method if authenticated else None,
            "cert_status": session.cert_status,
            "age": round(now - opened[1], 1) if opened is not None else None,
            "idle": round(now - max(session.last_activity,
                                    link.last_used if link is not None else 0.0), 1),
            "queued": len(link.queue) if link is not None else None,
            "bidi": session.bidi,  # XEP-0288: this stream carries stanzas both ways
        }

    def _pending_row(self, link: Link) -> dict[str, Any]:
        return {
            "id": None, "direction": "out", "local_domain": link.local,
            "remote_domain": link.remote, "authenticated_domains": [], "peer": None,
            "tls_version": None, "tls_cipher": None, "auth_method": None,
            "cert_status": None, "age": None,
            "idle": round(self.module.now() - link.last_used, 1),
            "queued": len(link.queue), "bidi": False,
        }

    def close(self, req: AdminRequest) -> dict[str, Any]:
        """``s2s.close``: close every stream with ``domain``; says how many."""
        domain = str(req.arg("domain") or "").lower().rstrip(".")
        if not domain:
            raise AdminCommandError("name the remote domain to close")
        condition = str(req.arg("condition") or CLOSE_CONDITIONS[0])
        if condition not in CLOSE_CONDITIONS:
            raise AdminCommandError(f"condition must be one of {', '.join(CLOSE_CONDITIONS)}")
        closing = [s for s in self._sessions()
                   if s.remote_domain == domain or domain in s.remote_domains]
        for session in closing:
            session.log.info("closing the stream with %s on the administrator's request (%s)",
                             domain, condition)
            session.close(StreamError(condition, "closed by the server administrator"))
        return {"domain": domain, "condition": condition, "closed": len(closing)}
