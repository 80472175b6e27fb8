"""The failed-login counts and the waits they impose (tercet.modules._authguard)."""

from __future__ import annotations

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


def test_delays_grow_per_address_and_stay_small_per_account() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            now = [1000.0]
            srv.server.clock = lambda: now[0]
            romeo = await srv.connect("romeo@localhost/a")
            api = srv.server.modules.loaded[("saslauth", "localhost")].api
            assert api is not None
            guard = AuthGuard(api)
            for _ in range(FREE_FAILURES):
                romeo.session.data[ATTEMPT] = "romeo"
                await guard.failed(romeo.session, "PLAIN")
            assert await guard.wait_for("127.0.0.1", "romeo") == 0
            for _ in range(10):
                romeo.session.data[ATTEMPT] = "romeo"
                await guard.failed(romeo.session, "PLAIN")
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
            romeo = await srv.connect("romeo@localhost/a")
            api = srv.server.modules.loaded[("saslauth", "localhost")].api
            assert api is not None
            guard = AuthGuard(api)
            pair = "pair:romeo|127.0.0.1"
            await guard.before_attempt(romeo.session, "romeo")
            assert guard._cache[pair] == () and guard._cache["user:romeo"] is guard._cache[pair]
            await guard.succeeded(romeo.session)
            assert pair not in guard._cache
            assert await guard.store.get(pair) is None
            # After failures: the success clears the count, in the store and the cache.
            for _ in range(FREE_FAILURES + 2):
                romeo.session.data[ATTEMPT] = "romeo"
                await guard.failed(romeo.session, "PLAIN")
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
