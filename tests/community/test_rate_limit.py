"""rate_limit: a token bucket per client session, refusals with policy-violation."""

from __future__ import annotations

from pathlib import Path

import pytest
from community_helpers import FakeClock, error_condition, load, messages, server_with
from helpers import run

from tercet.core.config import ConfigError

LIMITS = "rate_limit_rate = 1\nrate_limit_burst = 3\nadmins = [\"admin@localhost\"]"


def chat(n: int) -> str:
    return (f"<message xmlns='jabber:client' to='juliet@localhost/a' id='m{n}'>"
            f"<body>{n}</body></message>")


def test_burst_then_refill_at_the_rate(community_plugins: dict[str, Path]) -> None:
    async def main() -> None:
        async with server_with(community_plugins["rate_limit"], LIMITS) as srv:
            clock = FakeClock()
            srv.server.clock = clock
            await load(srv, "rate_limit")
            romeo = await srv.connect("romeo@localhost/a")
            juliet = await srv.connect("juliet@localhost/a")
            for n in range(4):
                await romeo.send(chat(n))
            assert [m.child_text("body") for m in messages(juliet)] == ["0", "1", "2"]
            [refused] = messages(romeo)
            assert refused.get("type") == "error" and refused.get("id") == "m3"
            assert error_condition(refused) == "policy-violation"
            assert refused.find("error").get("type") == "wait"  # type: ignore[union-attr]
            clock.advance(1.0)  # one token back
            await romeo.send(chat(4))
            await romeo.send(chat(5))
            assert [m.child_text("body") for m in messages(juliet)] == ["4"]
            assert [m.get("id") for m in messages(romeo)] == ["m5"]
            # Another session of the same account has its own bucket.
            other = await srv.connect("romeo@localhost/b")
            await other.send(chat(6))
            assert [m.child_text("body") for m in messages(juliet)] == ["6"]
            # Presence over the limit is dropped without an error.
            clock.advance(0.5)
            for _ in range(3):
                await romeo.send("<presence xmlns='jabber:client' to='juliet@localhost/a'/>")
            assert romeo.received() == []
            assert romeo.conn.closed_with is False  # never kicked by default
    run(main())


def test_kick_after_repeated_refusals(community_plugins: dict[str, Path]) -> None:
    async def main() -> None:
        async with server_with(community_plugins["rate_limit"],
                               LIMITS + "\nrate_limit_kick_after = 2") as srv:
            srv.server.clock = FakeClock()
            await load(srv, "rate_limit")
            romeo = await srv.connect("romeo@localhost/a")
            await srv.connect("juliet@localhost/a")
            for n in range(4):
                await romeo.send(chat(n))
            assert romeo.conn.closed_with is False  # one refusal so far
            await romeo.send(chat(5))
            error = romeo.conn.closed_with
            assert error is not None and error is not False
            assert error.condition == "policy-violation"  # type: ignore[union-attr]
            assert "romeo" not in srv.server.hosts["localhost"].sessions
    run(main())


def test_admins_are_exempt_and_unload_lifts_the_limit(community_plugins: dict[str, Path]) -> None:
    async def main() -> None:
        async with server_with(community_plugins["rate_limit"], LIMITS) as srv:
            srv.server.clock = FakeClock()
            await load(srv, "rate_limit")
            admin = await srv.connect("admin@localhost/a")
            romeo = await srv.connect("romeo@localhost/a")
            juliet = await srv.connect("juliet@localhost/a")
            for n in range(10):
                await admin.send(chat(n))
            assert len(messages(juliet)) == 10 and messages(admin) == []
            for n in range(5):
                await romeo.send(chat(n))
            assert len(messages(juliet)) == 3
            await srv.server.modules.unload("rate_limit", "localhost")
            for n in range(5):
                await romeo.send(chat(n))
            assert len(messages(juliet)) == 5
    run(main())


def test_bad_option_is_a_config_error(community_plugins: dict[str, Path]) -> None:
    # The plugin declares the option (OPTIONS), so the file is checked when it is loaded.
    with pytest.raises(ConfigError, match="rate_limit_burst: expected a value from 1 to"):
        server_with(community_plugins["rate_limit"], "rate_limit_burst = 0")
