"""Failed logins are logged for fail2ban and slow the guesser down, not the real user
(real server, real TLS, loopback source addresses 127.0.0.1 and 127.0.0.2)."""

from __future__ import annotations

import logging
import re
import time

import pytest
from harness import ServerHarness
from helpers import run
from sasl2client import RawClient

from tercet.modules._authguard import FREE_FAILURES, MAX_ACCOUNT_DELAY, MAX_DELAY, delay_for

PASSWORD = "right horse"
# The filter docs/accounts.md gives fail2ban (its <HOST> is an address pattern).
FAILREGEX = re.compile(r"authentication failed for \S+ from (?P<host>[0-9a-fA-F.:]+) ")
GUESSER, ELSEWHERE = "127.0.0.1", "127.0.0.2"


async def attempt(port: int, password: str, source: str) -> tuple[str, float]:
    client = await RawClient().connect(port, source)
    start = time.monotonic()
    try:
        answer = await client.plain_login("romeo", password)
    finally:
        await client.close()
    return answer.name, time.monotonic() - start


def failures_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [m.group("host") for r in caplog.records
            if (m := FAILREGEX.search(r.getMessage())) is not None]


def test_guessing_is_logged_and_slowed_without_locking_out_the_user(
        make_server, caplog: pytest.LogCaptureFixture) -> None:  # noqa: ANN001
    caplog.set_level(logging.INFO, logger="tercet")
    server: ServerHarness = make_server()
    server.create_user("romeo", PASSWORD)
    port = server.port(direct_tls=True)

    async def guess_then_log_in() -> None:
        for _ in range(FREE_FAILURES + 1):
            assert (await attempt(port, "guess", GUESSER))[0] == "failure"
        assert failures_logged(caplog) == [GUESSER] * (FREE_FAILURES + 1)
        # The real user, from elsewhere: in, within the per-account cap.
        answer, took = await attempt(port, PASSWORD, ELSEWHERE)
        assert answer == "success" and took < MAX_ACCOUNT_DELAY + 1
        # The guessing address waits before its next attempt, right password or not.
        waits = len([r for r in caplog.records if "before this login attempt" in r.message])
        answer, took = await attempt(port, PASSWORD, GUESSER)
        assert answer == "success" and took >= delay_for(FREE_FAILURES + 1, MAX_DELAY)
        assert len([r for r in caplog.records
                    if "before this login attempt" in r.message]) > waits
    run(guess_then_log_in())
    # The counts are in the store: a restart does not forgive the guesser.
    server.stop()
    server = make_server()
    caplog.clear()

    async def after_restart() -> None:
        assert (await attempt(server.port(direct_tls=True), "guess", GUESSER))[0] == "failure"
        assert any("before this login attempt" in r.message for r in caplog.records)
    run(after_restart())


def test_sasl2_failures_count_and_log_the_same_way(
        make_server, caplog: pytest.LogCaptureFixture) -> None:  # noqa: ANN001
    caplog.set_level(logging.INFO, logger="tercet")
    server: ServerHarness = make_server(host_extra='modules_enabled = ["sasl2"]')
    server.create_user("romeo", PASSWORD)
    port = server.port(direct_tls=True)

    async def main() -> None:
        for _ in range(FREE_FAILURES + 1):
            client = await RawClient().connect(port, GUESSER)
            try:
                answer = await client.login("SCRAM-SHA-256", "romeo", "guess")
            finally:
                await client.close()
            assert answer.name == "failure"
        assert failures_logged(caplog) == [GUESSER] * (FREE_FAILURES + 1)
        # Legacy SASL from the same address now waits too: one count for both.
        answer, took = await attempt(port, PASSWORD, GUESSER)
        assert answer == "success" and took >= delay_for(FREE_FAILURES + 1, MAX_DELAY)
    run(main())
