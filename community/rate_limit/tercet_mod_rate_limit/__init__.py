"""Per-session stanza rate limit: each client session has a token bucket that holds up to
``rate_limit_burst`` stanzas and refills at ``rate_limit_rate`` stanzas per second.

A stanza sent with the bucket empty is refused: messages and iq get/set are answered with a
``policy-violation`` error of type ``wait`` (RFC 6120 §8.3.3.12; §8.3.2: retry after
waiting), presences and responses are dropped. With ``rate_limit_kick_after`` > 0, a session
refused that many stanzas in a row is closed with the ``policy-violation`` stream error
(RFC 6120 §4.9.3.13). Actors with ``rate_limit:unlimited`` (admins) are exempt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tercet.module import ModuleApi, Option, StanzaEvent
from tercet.protocol.errors import StanzaError, StreamError

META = {"summary": "Per-session stanza rate limit", "stage": "stable", "xeps": []}
#: The least role with each action (docs/roles.md); custom roles may grant or deny it.
PERMISSIONS = {":unlimited": "tercet:admin"}
OPTIONS: list[Option[Any]] = [
    Option("rate_limit_rate", float, 10.0, "Stanzas per second a session may send on average.",
           min=0.01, max=100000),
    Option("rate_limit_burst", int, 30, "Stanzas a session may send at once.",
           min=1, max=100000),
    Option("rate_limit_kick_after", int, 0,
           "Refusals in a row before the session is closed; 0: never.", min=0, max=100000),
]

ROUTES = [f"pre-{kind}/{to}" for kind in ("message", "presence", "iq")
          for to in ("host", "bare", "full")] + ["pre-iq/self"]


@dataclass(slots=True)
class Bucket:
    """One session's allowance; ``refused`` counts refusals since the last accepted stanza."""

    tokens: float
    stamp: float
    exempt: bool
    refused: int = 0

    def take(self, now: float, rate: float, burst: int) -> bool:
        """Refill for the time elapsed (never above ``burst``), then spend one token."""
        self.tokens = min(float(burst), self.tokens + max(0.0, now - self.stamp) * rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            self.refused = 0
            return True
        self.refused += 1
        return False


def load(module: ModuleApi) -> None:
    rate = float(module.option("rate_limit_rate"))
    burst = module.option("rate_limit_burst")
    kick_after = module.option("rate_limit_kick_after")
    key = module.name  # our slot in session.data

    def check(event: StanzaEvent) -> bool | None:
        session = event.origin
        bucket = session.data.get(key)
        if bucket is None:  # first stanza: decide exemption once, not per stanza
            bucket = Bucket(float(burst), module.now(), module.may(":unlimited", event))
            session.data[key] = bucket
        if bucket.exempt or bucket.take(module.now(), rate, burst):
            return None  # within the limit: routing goes on
        if kick_after and bucket.refused >= kick_after:
            session.log.info("closing: %d stanzas over the rate limit", bucket.refused)
            module.close_session(session, StreamError("policy-violation", "rate limit exceeded"))
            return True
        stanza = event.stanza
        if stanza.name != "presence" and stanza.get("type") not in ("error", "result"):
            error = StanzaError("policy-violation", "Too many stanzas; slow down.", type="wait")
            session.send(stanza.error_reply(error))
        return True  # refused: routing stops here

    for route in ROUTES:
        # Above every other policy hook: a refused stanza costs nothing further.
        module.hook(route, check, 1000)

    def forget() -> None:
        for session in module.all_sessions():
            session.data.pop(key, None)

    module.on_unload(forget)
