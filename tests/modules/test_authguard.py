"""The failed-login counts and the waits they impose (tercet.modules._authguard)."""

from __future__ import annotations

from typing import Any

from helpers import run
from moduletest import ModuleTestServer

from tercet.modules._authguard import (
    ATTEMPT,
    FREE_FAILURES,
    MAX_ACCOUNT_DELAY,
    MAX_DELAY,
    WINDOW,
    AuthGuard,
    delay_for,
)


async def _romeo_and_saslauth(srv: ModuleTestServer) -> tuple[Any, Any, list[float]]:
    """romeo's session, the module API the login guard runs on (saslauth's), and the
    server's clock, stopped at 1000 s (the test moves it: ``now[0] += ...``)."""
    now = [1000.0]
    srv.server.clock = lambda: now[0]
    romeo = await srv.connect("romeo@localhost/a")
    api = srv.server.modules.loaded[("saslauth", "localhost")].api
    assert api is not None
    return romeo, api, now


async def _fail(guard: AuthGuard, session: Any, username: str, times: int) -> None:
    """``times`` failed logins of ``session`` as ``username``."""
    for _ in range(times):
        session.data[ATTEMPT] = username
        await guard.failed(session, "PLAIN")


def test_delays_grow_per_address_and_stay_small_per_account() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            romeo, api, now = await _romeo_and_saslauth(srv)
            guard = AuthGuard(api)
            await _fail(guard, romeo.session, "romeo", FREE_FAILURES)
            assert await guard.wait_for("127.0.0.1", "romeo") == 0
            await _fail(guard, romeo.session, "romeo", 10)
            assert await guard.wait_for("127.0.0.1", "romeo") == MAX_DELAY
            assert await guard.wait_for("192.0.2.9", "romeo") == MAX_ACCOUNT_DELAY
            assert await guard.wait_for("192.0.2.9", "juliet") == 0
            now[0] += WINDOW
            assert await guard.wait_for("127.0.0.1", "romeo") == 0  # old failures expire
    run(main())


def test_delay_table() -> None:
    assert [delay_for(n, MAX_DELAY) for n in range(FREE_FAILURES, FREE_FAILURES + 8)] == [
        0, 1, 2, 4, 8, 16, 30, 30]


def test_success_leaves_no_pair_entry_cached() -> None:
    # Memory per logged-in session: a success drops its (account, address) key, and keys
    # without failures share one empty value.
    async def main() -> None:
        async with ModuleTestServer() as srv:
            romeo, api, _ = await _romeo_and_saslauth(srv)
            guard = AuthGuard(api)
            pair = "pair:romeo|127.0.0.1"
            await guard.before_attempt(romeo.session, "romeo")
            assert guard._cache[pair] == () and guard._cache["user:romeo"] is guard._cache[pair]
            await guard.succeeded(romeo.session)
            assert pair not in guard._cache
            assert await guard.store.get(pair) is None
            # After failures: the success clears the count, in the store and the cache.
            await _fail(guard, romeo.session, "romeo", FREE_FAILURES + 2)
            assert await guard.store.get(pair) is not None
            romeo.session.data[ATTEMPT] = "romeo"
            await guard.succeeded(romeo.session)
            assert pair not in guard._cache
            assert await guard.store.get(pair) is None
            # The address and account counts stay.
            assert await guard.wait_for("127.0.0.1", "juliet") \
                == delay_for(FREE_FAILURES + 2, MAX_DELAY)
            assert await guard.wait_for("192.0.2.9", "romeo") \
                == delay_for(FREE_FAILURES + 2, MAX_ACCOUNT_DELAY)
    run(main())


class _CountingStore:
    """The guard's real store, with its reads and writes noted."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.gets: list[str] = []
        self.sets: list[str] = []

    async def get(self, key: str) -> Any:
        self.gets.append(key)
        return await self.inner.get(key)

    async def set(self, key: str, value: Any) -> None:
        self.sets.append(key)
        await self.inner.set(key, value)

    async def users(self) -> list[str]:
        return list(await self.inner.users())


def test_a_started_guard_reads_only_the_keys_with_failures() -> None:
    # Logins that do not fail cost no storage operation once the guard knows which keys
    # the store holds; failures recorded before a restart still count.
    async def main() -> None:
        async with ModuleTestServer() as srv:
            romeo, api, now = await _romeo_and_saslauth(srv)
            first = AuthGuard(api)
            await _fail(first, romeo.session, "romeo", FREE_FAILURES + 2)
            guard = AuthGuard(api)  # as after a restart: the same store, nothing cached
            store = _CountingStore(guard.store)
            guard.store = store
            await guard.list_stored()
            assert guard._stored == {"addr:127.0.0.1", "user:romeo", "pair:romeo|127.0.0.1"}
            # No failures for juliet, from elsewhere or (as a success) from here: no read,
            # no write, nothing cached.
            assert await guard.wait_for("192.0.2.9", "juliet") == 0
            juliet = await srv.connect("juliet@localhost/a")
            juliet.session.data[ATTEMPT] = "juliet"
            await guard.succeeded(juliet.session)
            assert (store.gets, store.sets) == ([], [])
            assert not guard._cache
            # The stored failures are read and count.
            assert await guard.wait_for("127.0.0.1", "romeo") \
                == delay_for(FREE_FAILURES + 2, MAX_DELAY)
            assert sorted(store.gets) == ["addr:127.0.0.1", "pair:romeo|127.0.0.1",
                                          "user:romeo"]
            # A new failure makes its keys known; their expiry forgets them.
            juliet.session.data[ATTEMPT] = "juliet"
            await guard.failed(juliet.session, "PLAIN")
            assert {"user:juliet", "pair:juliet|127.0.0.1"} <= guard._stored
            now[0] += WINDOW
            await guard.sweep()
            assert guard._stored == set()
    run(main())
