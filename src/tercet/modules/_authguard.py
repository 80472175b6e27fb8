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
so a restart does not wipe them, behind a bounded in-memory cache. Once started, the
guard also knows which keys the store holds (listed once, then kept up to date by its own
writes: one server process writes a host's store): a key it does not hold has no
failures, so a login that does not fail costs no read and no write, and nothing is cached
for it (memory per logged-in session). Under a flood of failures from more than
``MAX_TRACKED`` keys the guard stops tracking them and reads each key again, through the
cache.
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
#: Keys with failures the guard tracks by name, beyond which it reads every key instead.
MAX_TRACKED = 100_000
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
        # The keys the store holds; None while not known (before start has listed them,
        # or beyond MAX_TRACKED). While the list is read, the keys written meanwhile.
        self._stored: set[str] | None = None
        self._listing: set[str] | None = None

    def start(self) -> None:
        """Sweep expired counts out of the store every window (attackers' addresses would
        otherwise stay there for ever), and learn which keys the store holds."""
        self.module.add_timer(WINDOW, self.sweep)
        self.module.spawn(self.list_stored())

    async def list_stored(self) -> None:
        """Read the names of the keys the store holds; from then on a key not among them
        is known to have no failures without a read."""
        written = self._listing = set()
        try:
            keys = set(await self.store.users())
        finally:
            self._listing = None
        # A key written while the list was read may or may not be in it: count it in (one
        # read too many at worst, never a failure missed).
        keys |= written
        self._stored = keys if len(keys) <= MAX_TRACKED else None

    async def sweep(self) -> float:
        now = self.module.now()
        for key in (await self.store.users())[:SWEEP_BATCH]:
            stored: Any = await self.store.get(key)
            if not isinstance(stored, list) or all(now - float(t) >= WINDOW for t in stored):
                await self._write(key, None)
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
            await self._write(key, None)
        # Nothing to remember for this pair now (memory per logged-in session); unless a
        # failure came in while the store was written: that one stays.
        if key in self._cache and not self._cache[key]:
            del self._cache[key]

    async def _times(self, key: str) -> tuple[float, ...]:
        found = self._cache.get(key)
        if found is not None:
            self._cache.move_to_end(key)
            return found
        known = self._stored
        if known is not None and key not in known:
            return _NO_FAILURES  # none recorded: no read, and nothing to cache
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
        await self._write(key, times)

    async def _write(self, key: str, times: list[float] | None) -> None:
        """Store ``times`` for ``key`` (None: delete it), keeping the key list right."""
        if self._listing is not None:
            self._listing.add(key)
        stored = self._stored
        if stored is not None:
            if times is None:
                stored.discard(key)
            else:
                stored.add(key)
                if len(stored) > MAX_TRACKED:
                    self._stored = None  # a flood: read keys again (through the cache)
        await self.store.set(key, times)

    def _remember(self, key: str, times: tuple[float, ...]) -> None:
        self._cache[key] = times
        self._cache.move_to_end(key)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
