"""Disconnect idle sessions: a client session that has sent no stanza for
``idle_kick_after`` seconds is closed with the ``connection-timeout`` stream error
(RFC 6120 §4.9.3.4: "the entity has not generated any traffic over the stream for some
period of time").

Sessions are checked by one timer every ``idle_kick_interval`` seconds; each check looks at
the sessions of this host once, so its cost is bounded by the number of sessions.
Whitespace keepalives are not stanzas and do not count as activity; XMPP pings do.
"""

from __future__ import annotations

from typing import Any

from tercet.module import ClientSession, ModuleApi, Option, StanzaEvent
from tercet.protocol.errors import StreamError

META = {"summary": "Disconnect idle client sessions", "stage": "stable", "xeps": []}
OPTIONS: list[Option[Any]] = [
    Option("idle_kick_after", int, 1800, "Seconds without a stanza before a session closes.",
           min=10, max=30 * 86400),
    Option("idle_kick_interval", float, 60.0, "Seconds between two checks for idle sessions.",
           min=0.01, max=3600),
]

ROUTES = [f"pre-{kind}/{to}" for kind in ("message", "presence", "iq")
          for to in ("host", "bare", "full")] + ["pre-iq/self"]


def load(module: ModuleApi) -> None:
    idle_after = module.option("idle_kick_after")
    interval = float(module.option("idle_kick_interval"))
    key = module.name  # session.data slot: when the session last sent a stanza

    def touch(event: StanzaEvent) -> None:
        # An observer: it returns None, so routing goes on.
        event.origin.data[key] = module.now()

    def on_bind(session: ClientSession) -> None:
        session.data[key] = module.now()

    def sweep() -> float:
        now = module.now()
        for session in module.all_sessions():  # a snapshot: closing does not disturb it
            last = session.data.setdefault(key, now)  # bound before we were loaded
            if now - last >= idle_after:
                session.log.info("closing: idle for %d s", now - last)
                module.close_session(session, StreamError("connection-timeout", "idle too long"))
        return interval  # run again

    for route in ROUTES:
        module.hook(route, touch, 2000)  # before any policy hook may stop the stanza
    module.hook("resource-bind", on_bind)
    module.add_timer(interval, sweep)
