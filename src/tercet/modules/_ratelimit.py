"""Token buckets and their configuration syntax, for the ``limits`` module (and any module
that meters something): pure arithmetic on an injected clock, no I/O.

Rates are written as Prosody writes them: ``"10kb/s"``, ``"1mb/s"``, ``"500b/s"`` or a
plain number of bytes per second, where ``kb`` is 1,000 bytes and ``mb`` 1,000,000
(Prosody's ``mod_limits`` units); bursts as ``"2s"`` or a number of seconds.
"""

from __future__ import annotations

import ipaddress
import re
from collections import OrderedDict
from collections.abc import Callable, Sequence

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]?)b?\s*(?:/\s*s)?\s*$", re.IGNORECASE)
_BURST = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s)?\s*$", re.IGNORECASE)
#: The shortest wait ``wait_for`` answers (seconds).
MIN_WAIT = 0.01
_UNITS = {"": 1, "k": 1_000, "m": 1_000_000, "g": 1_000_000_000}


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def ip_in(ip: str, networks: Sequence[Network]) -> bool:
    """Whether address ``ip`` is in one of ``networks`` (an IPv4-mapped IPv6 address
    counts as its IPv4 address); False for text that is no address."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return any(addr in net for net in networks)


def parse_rate(value: object) -> float:
    """Bytes per second from ``"10kb/s"`` (kb = 1,000 bytes), ``"1mb/s"``, ``"500b/s"``,
    ``"3000"`` or 3000; ValueError says what is expected."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    match = _RATE.match(value) if isinstance(value, str) else None
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"{value!r} is not a rate: write e.g. \"10kb/s\", \"1mb/s\" or "
                         "a number of bytes per second")
    return float(match.group(1)) * _UNITS[match.group(2).lower()]


def parse_burst(value: object) -> float:
    """Seconds from ``"2s"``, ``"500ms"``, ``"2"`` or 2; ValueError otherwise."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    match = _BURST.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{value!r} is not a duration: write e.g. \"2s\" or \"500ms\"")
    seconds = float(match.group(1))
    return seconds / 1000 if (match.group(2) or "s").lower() == "ms" else seconds


class TokenBucket:
    """``rate`` tokens per second, at most ``capacity`` saved up; starts full."""

    __slots__ = ("_clock", "_last", "capacity", "rate", "tokens")

    def __init__(self, rate: float, capacity: float, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self._clock = clock
        self._last = clock()

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._last)
        self._last = now
        self.tokens = min(self.capacity, self.tokens + elapsed * self.rate)

    def take_up_to(self, amount: int) -> int:
        """Spend as much of ``amount`` as the bucket holds (whole units); how much."""
        self._refill()
        allowed = max(0, min(amount, int(self.tokens)))
        self.tokens -= allowed
        return allowed

    def wait_for(self, amount: int) -> float:
        """Seconds until ``amount`` (at most a full bucket) can be taken; at least
        ``MIN_WAIT``, so a caller that waits and retries never spins."""
        self._refill()
        wanted = min(float(amount), self.capacity)
        return max(MIN_WAIT, (wanted - self.tokens) / self.rate)

    def try_take(self, amount: float = 1.0) -> bool:
        """Spend ``amount`` only if it is there."""
        self._refill()
        if self.tokens < amount:
            return False
        self.tokens -= amount
        return True

    def full(self) -> bool:
        self._refill()
        return self.tokens >= self.capacity


class Buckets:
    """One bucket per key (an IP address), the least recently used dropped beyond
    ``size``: an evicted key starts again with a full bucket, which errs on the side of
    the user."""

    def __init__(self, rate: float, capacity: float, size: int,
                 clock: Callable[[], float]) -> None:
        self.rate = rate
        self.capacity = capacity
        self.size = size
        self.clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def try_take(self, key: str) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.capacity, self.clock)
            while len(self._buckets) > self.size:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.try_take()

    def __len__(self) -> int:
        return len(self._buckets)


class LogLimiter:
    """At most one log line per key per ``interval`` seconds; the lines in between are
    counted and reported with the next one. Bounded to ``size`` keys."""

    def __init__(self, interval: float, clock: Callable[[], float], size: int = 10_000) -> None:
        self.interval = interval
        self.clock = clock
        self.size = size
        self._last: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def allow(self, key: str) -> int | None:
        """None: stay quiet; else the number of lines suppressed since the last one."""
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last[0] < self.interval:
            self._last[key] = (last[0], last[1] + 1)
            return None
        self._last[key] = (now, 0)
        self._last.move_to_end(key)
        while len(self._last) > self.size:
            self._last.popitem(last=False)
        return 0 if last is None else last[1]
