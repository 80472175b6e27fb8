"""Slowing down password guessing, and logging each failed login for fail2ban.

Every failed authentication is logged at WARNING in one stable format (never summarised
by the log's repeat limiter), for a fail2ban filter (docs/accounts.md)::

    authentication failed for romeo@example.org from 192.0.2.7 (SCRAM-SHA-1)

and counted three ways over the last ``WINDOW`` seconds: per address, per account, and per
(account, address). From the ``FREE_FAILURES``-th failure on, the *next attempt* waits
before its credentials are even looked at: 1 s, then doubling up to ``MAX_DELAY`` (30 s).
The wait comes before the attempt, not before the failure answer, because a guesser can
stop waiting for a failure it has already inferred from the silence.

An attacker must not lock the real user out from elsewhere, so the per-account count
(guesses spread over many addresses) only ever costs up to ``MAX_ACCOUNT_DELAY`` (2 s);
the long waits fall on the guessing address and on that address's attempts for that
account. A success clears the (account, address) count. Counts live in the host's store,
so a restart does not wipe them, behind a bounded in-memory cache, so a login that does
not fail costs no write and, once cached, no read but the (account, address) one: a
success drops that key from the cache rather than keep an empty count for every logged-in
session (memory per idle session), so the next login there reads it once.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

from tercet.module import ClientSession, KeyValStore, ModuleApi

#: Failures within this window count (seconds).
WINDOW = 600.0
#: Failures allowed before attempts are slowed.
FREE_FAILURES = 4
#: The longest wait before an attempt from a guessing address (seconds).
MAX_DELAY = 30.0
#: The longest wait the per-account count alone may impose: the real user, from an
#: address that did not guess, still logs in within a few seconds.
MAX_ACCOUNT_DELAY = 2.0
#: Failure times kept per key (enough to compute any delay above).
KEEP = 16
#: Keys cached in memory; the store holds the rest.
CACHE_SIZE = 10_000
#: Keys one sweep looks at (the rest wait for the next sweep).
SWEEP_BATCH = 20_000
STORE = "auth_failures"
SERVICE = "auth-guard"
ATTEMPT = "auth-guard.username"  # session.data key: who the session tries to log in as
#: The cached times of a key without failures: one shared empty tuple, not a fresh empty
#: list per cached key (memory per logged-in session).
_NO_FAILURES: tuple[float, ...] = ()


def delay_for(failures: int, cap: float) -> float:
    """1 s at the first failure beyond the free ones, doubling, at most ``cap``."""
    if failures <= FREE_FAILURES:
        return 0.0
    return min(cap, 2.0 ** (failures - FREE_FAILURES - 1))


class AuthGuard:
    """One host's failure counts; offered as the ``auth-guard`` service by saslauth."""

    def __init__(self, module: ModuleApi) -> None:
        self.module = module
        self.store: KeyValStore = module.open_store(STORE, "keyval")
        self._cache: OrderedDict[str, tuple[float, ...]] = OrderedDict()

    def start(self) -> None:
        """Sweep expired counts out of the store every window (attackers' addresses would
        otherwise stay there for ever)."""
        self.module.add_timer(WINDOW, self.sweep)

    async def sweep(self) -> float:
        now = self.module.now()
        for key in (await self.store.users())[:SWEEP_BATCH]:
            stored: Any = await self.store.get(key)
            if not isinstance(stored, list) or all(now - float(t) >= WINDOW for t in stored):
                await self.store.set(key, None)
                self._cache.pop(key, None)
        return WINDOW

    async def before_attempt(self, session: ClientSession, username: str) -> None:
        """Wait as long as the failures so far ask, before ``username``'s credentials
        are used for ``session``."""
        session.data[ATTEMPT] = username  # for the failure that may follow
        wait = await self.wait_for(session.peer, username)
        if wait > 0:
            session.log.info("waiting %.0f s before this login attempt (earlier failures)",
                             wait)
            await asyncio.sleep(wait)

    async def wait_for(self, address: str, username: str) -> float:
        """Seconds an attempt for ``username`` from ``address`` waits now."""
        now = self.module.now()
        return max(
            delay_for(await self._count(f"addr:{address}", now), MAX_DELAY),
            delay_for(await self._count(f"pair:{username}|{address}", now), MAX_DELAY),
            delay_for(await self._count(f"user:{username}", now), MAX_ACCOUNT_DELAY))

    async def failed(self, session: ClientSession, mechanism: str) -> None:
        """Record and log a failed login of ``session`` (wrong credentials)."""
        username = session.data.pop(ATTEMPT, None)
        address = session.peer
        who = f"{username}@{self.module.host}" if username else "(no account)"
        self.module.log.warning("authentication failed for %s from %s (%s)", who, address,
                                mechanism, extra={"repeat_unlimited": True})
        now = self.module.now()
        await self._add(f"addr:{address}", now)
        if username:
            await self._add(f"user:{username}", now)
            await self._add(f"pair:{username}|{address}", now)

    async def succeeded(self, session: ClientSession) -> None:
        username = session.data.pop(ATTEMPT, None)
        if username is None:
            return
        key = f"pair:{username}|{session.peer}"
        if await self._count(key, self.module.now()):
            self._remember(key, _NO_FAILURES)
            await self.store.set(key, None)
        # Nothing to remember for this pair now (memory per logged-in session); unless a
        # failure came in while the store was written: that one stays.
        if key in self._cache and not self._cache[key]:
            del self._cache[key]

    async def _times(self, key: str) -> tuple[float, ...]:
        found = self._cache.get(key)
        if found is not None:
            self._cache.move_to_end(key)
            return found
        stored: Any = await self.store.get(key)
        times = tuple(float(t) for t in stored) if isinstance(stored, list) and stored \
            else _NO_FAILURES
        self._remember(key, times)
        return times

    async def _count(self, key: str, now: float) -> int:
        return sum(1 for t in await self._times(key) if now - t < WINDOW)

    async def _add(self, key: str, now: float) -> None:
        times = [t for t in await self._times(key) if now - t < WINDOW][-(KEEP - 1):]
        times.append(now)
        self._remember(key, tuple(times))
        await self.store.set(key, times)

    def _remember(self, key: str, times: tuple[float, ...]) -> None:
        self._cache[key] = times
        self._cache.move_to_end(key)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
