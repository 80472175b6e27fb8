"""Where to connect for a server-to-server stream: SRV ordering and RFC 6120 §3.2 rules.

Sans-I/O: the caller looks records up and hands them in; this module only decides the
order. ``plan_targets`` turns the answers for ``_xmpps-server._tcp`` (XEP-0368, direct TLS)
and ``_xmpp-server._tcp`` into an ordered list of :class:`Target`, or falls back to the
domain itself on port 5269 (RFC 6120 §3.2.1 step 3 / §3.2.2) when no SRV record exists.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

#: RFC 6120 §14.7: the IANA-registered port for server-to-server streams.
DEFAULT_S2S_PORT = 5269
SERVICE_STARTTLS = "_xmpp-server._tcp"
SERVICE_DIRECT_TLS = "_xmpps-server._tcp"  # XEP-0368 §3


@dataclass(frozen=True, slots=True)
class SrvRecord:
    """One SRV resource record (RFC 2782)."""

    priority: int
    weight: int
    port: int
    target: str  # without the trailing dot; "." (or "") means "no service here"


@dataclass(frozen=True, slots=True)
class Target:
    """One host to try, in order: connect to ``host`` (a name to resolve) on ``port``."""

    host: str
    port: int
    direct_tls: bool = False


class NoService(Exception):
    """The domain says it offers no XMPP server service (a lone "." SRV target,
    RFC 2782 "A Target of '.' means that the service is decidedly not available")."""


def order_srv(records: Iterable[SrvRecord],
              rand: Callable[[int], int] | None = None) -> list[SrvRecord]:
    """Order records per RFC 2782: ascending priority; within one priority, repeated
    weighted random selection (records of weight 0 first, so they get a small chance).

    ``rand(n)`` returns an integer in ``[0, n]`` (default ``random.randint(0, n)``);
    tests inject a deterministic one.
    """
    pick = rand if rand is not None else (lambda n: random.randint(0, n))
    by_priority: dict[int, list[SrvRecord]] = {}
    for rec in records:
        by_priority.setdefault(rec.priority, []).append(rec)
    out: list[SrvRecord] = []
    for priority in sorted(by_priority):
        # RFC 2782: "arrange all SRV RRs (that have not been ordered yet) in any order,
        # except that all those with weight 0 are placed at the beginning of the list".
        pending = sorted(by_priority[priority], key=lambda r: r.weight != 0)
        while pending:  # bounded: one record leaves per pass
            total = sum(r.weight for r in pending)
            chosen = pick(total)
            running = 0
            for i, rec in enumerate(pending):
                running += rec.weight
                if running >= chosen:
                    out.append(pending.pop(i))
                    break
            else:  # a misbehaving rand() beyond the total: take the last one
                out.append(pending.pop())
    return out


def _is_no_service(records: Sequence[SrvRecord]) -> bool:
    return len(records) == 1 and records[0].target in (".", "")


def plan_targets(domain: str, direct_tls: Sequence[SrvRecord] | None,
                 starttls: Sequence[SrvRecord] | None,
                 rand: Callable[[int], int] | None = None) -> list[Target]:
    """The connection targets for ``domain``, best first (RFC 6120 §3.2.1, XEP-0368 §3).

    ``direct_tls`` / ``starttls`` are the answers for the two services, None (or empty)
    when the name does not exist or has no SRV records. Both services' records are merged
    and ordered together by priority and weight, as XEP-0368 §3 suggests. Without any SRV
    record the fallback is the domain itself on port 5269 (§3.2.2). Raises
    :class:`NoService` when every answer present is the "." target (§3.2.1 step 5 says
    to abort rather than fall back).
    """
    tls_recs = list(direct_tls or ())
    plain_recs = list(starttls or ())
    no_tls = _is_no_service(tls_recs)
    no_plain = _is_no_service(plain_recs)
    if (no_tls or not tls_recs) and (no_plain or not plain_recs) and (no_tls or no_plain):
        raise NoService(domain)
    tagged: dict[SrvRecord, bool] = {}
    usable: list[SrvRecord] = []
    for recs, tls in ((tls_recs, True), (plain_recs, False)):
        if _is_no_service(recs):
            continue
        for rec in recs:
            if rec.target in (".", ""):
                continue
            # The same record in both services: a distinct key keeps both.
            key = rec if rec not in tagged else SrvRecord(rec.priority, rec.weight,
                                                          rec.port, rec.target + ".")
            tagged[key] = tls
            usable.append(key)
    if not usable:
        return [Target(domain, DEFAULT_S2S_PORT, False)]
    return [Target(rec.target.rstrip("."), rec.port, tagged[rec])
            for rec in order_srv(usable, rand)]
