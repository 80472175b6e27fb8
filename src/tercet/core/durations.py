"""Durations as operators write them: ``"30s"``, ``"15m"``, ``"12h"``, ``"7d"``, ``"2w"``.

One number and one unit; a bare number is seconds. Used by options such as
``user_deletion_grace_period`` and by CLI flags (``--inactive-since 30d``).
"""

from __future__ import annotations

import re

__all__ = ["UNITS", "format_duration", "parse_duration"]

#: Seconds per unit, largest last (format_duration picks the largest that divides evenly).
UNITS: dict[str, int] = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PATTERN = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*")


def parse_duration(text: str | int | float) -> float:
    """Seconds in ``text``; raises ``ValueError`` naming the accepted form."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if text < 0:
            raise ValueError(f"a duration cannot be negative ({text})")
        return float(text)
    match = _PATTERN.fullmatch(str(text))
    if match is None:
        raise ValueError(f"{text!r} is not a duration (write a number and a unit among "
                         f"{', '.join(UNITS)}, e.g. \"7d\")")
    return float(match.group(1)) * UNITS[match.group(2) or "s"]


def format_duration(seconds: float) -> str:
    """The shortest exact form: 604800 -> "1w", 90 -> "90s"."""
    whole = int(seconds)
    if whole != seconds or whole <= 0:
        return f"{seconds:g}s"
    for unit, size in reversed(UNITS.items()):
        if whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"
