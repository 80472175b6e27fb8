"""The arithmetic and configuration of the ``limits`` module, on a fake clock (the network
behaviour is in tests/integration/test_limits.py)."""

from __future__ import annotations

import pytest

from tercet.modules._ratelimit import (
    MIN_WAIT,
    Buckets,
    LogLimiter,
    TokenBucket,
    parse_burst,
    parse_rate,
)
from tercet.modules.limits import LIMITS, read_rates


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(("text", "rate"), [
    ("10kb/s", 10_000), ("10 kb/s", 10_000), ("1mb/s", 1_000_000), ("500b/s", 500),
    ("3000", 3000), (3000, 3000), ("2KB/s", 2000), ("1.5kb/s", 1500), ("7k", 7000),
])
def test_rates_are_prosody_units(text: object, rate: float) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["fast", "", "0kb/s", "-1", "10kb/min", True, None])
def test_bad_rates_say_what_is_expected(text: object) -> None:
    with pytest.raises(ValueError, match="10kb/s"):
        parse_rate(text)


def test_bursts() -> None:
    assert parse_burst("2s") == 2.0
    assert parse_burst("500ms") == 0.5
    assert parse_burst(3) == 3.0
    with pytest.raises(ValueError):
        parse_burst("soon")


def test_bucket_allows_the_burst_then_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(1000, 2000, clock)
    assert bucket.take_up_to(1500) == 1500
    assert bucket.take_up_to(1500) == 500  # the burst is spent
    assert bucket.wait_for(1000) == pytest.approx(1.0)
    clock.now += 0.5
    assert bucket.take_up_to(1000) == 500
    assert bucket.wait_for(10) >= MIN_WAIT  # never a zero wait: no spinning
    clock.now += 100  # refills only up to the capacity
    assert bucket.take_up_to(10_000) == 2000
    assert bucket.wait_for(10_000) == pytest.approx(2.0)  # at most a full bucket


def test_connection_buckets_per_address_are_bounded() -> None:
    clock = Clock()
    buckets = Buckets(rate=100 / 60, capacity=3, size=2, clock=clock)
    assert [buckets.try_take("a") for _ in range(4)] == [True, True, True, False]
    assert buckets.try_take("b")
    clock.now += 0.6  # one connection per 0.6 s
    assert buckets.try_take("a") and not buckets.try_take("a")
    buckets.try_take("c")
    assert len(buckets) == 2  # the least recently used address was forgotten


def test_log_lines_are_rate_limited_per_key() -> None:
    clock = Clock()
    logs = LogLimiter(60, clock)
    assert logs.allow("ip 1") == 0
    assert logs.allow("ip 1") is None and logs.allow("ip 1") is None
    assert logs.allow("ip 2") == 0
    clock.now += 61
    assert logs.allow("ip 1") == 2  # two lines held back since the last one


def test_table_merges_over_prosody_defaults() -> None:
    assert read_rates({}) == {"c2s": (10_000, 2.0), "s2sin": (30_000, 2.0)}
    rates = read_rates({"s2s": {"rate": "1mb/s"}, "c2s": {"rate": "unlimited"},
                        "component": {"rate": "5kb/s", "burst": "500ms"}})
    assert rates == {"s2sin": (1e6, 2.0), "s2sout": (1e6, 2.0), "component": (5000, 0.5)}


@pytest.mark.parametrize("value", [
    {"c2": {"rate": "1kb/s"}},
    {"c2s": {"rate": "fast"}},
    {"c2s": {"rate": "1kb/s", "burst": "later"}},
    {"c2s": {"rate": "1kb/s", "speed": 1}},
])
def test_bad_tables_are_configuration_errors(value: object) -> None:
    problems = LIMITS.check("limits", value)
    assert problems and problems[0].severity == "error"
    assert LIMITS.check("limits", {"c2s": {"rate": "3kb/s", "burst": "1s"}}) == []
