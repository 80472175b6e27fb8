"""Discussion history (XEP-0045 §7.2.14): the last messages of a room, kept in memory.

Each entry is the stanza as occupants got it (``from`` the occupant JID) with the time it
arrived. On join the entries that fit the joiner's ``<history/>`` limits are sent oldest
first, each with an XEP-0203 ``<delay/>`` from the room. ``maxchars`` counts the characters
of the serialised stanza, delay included, as §7.2.14 defines it.
"""

from __future__ import annotations

import calendar
import time
from collections import deque
from dataclasses import dataclass

from tercet.modules._muc.api import NS_MUC, HistoryLimits
from tercet.protocol.stanza import NS_DELAY, Element

#: Upper bound of any <history/> attribute we honour (larger values mean "all").
_MAX_LIMIT = 10**9


@dataclass(frozen=True, slots=True)
class Entry:
    stanza: Element
    when: float


class History:
    """A room's history: at most ``length`` entries, the oldest dropped first."""

    __slots__ = ("_entries",)

    def __init__(self, length: int) -> None:
        self._entries: deque[Entry] = deque(maxlen=max(length, 0))

    def __len__(self) -> int:
        return len(self._entries)

    def resize(self, length: int) -> None:
        if self._entries.maxlen != length:
            self._entries = deque(self._entries, maxlen=max(length, 0))

    def add(self, stanza: Element, when: float) -> None:
        if self._entries.maxlen:
            self._entries.append(Entry(stanza, when))

    def select(self, limits: HistoryLimits, room_jid: str, now: float) -> list[Element]:
        """The entries ``limits`` allow, oldest first, each a new stanza with its delay."""
        if limits.maxstanzas == 0 or limits.maxchars == 0:
            return []
        oldest = None
        if limits.seconds is not None:
            oldest = now - limits.seconds
        if limits.since is not None:
            oldest = limits.since if oldest is None else max(oldest, limits.since)
        picked: list[Element] = []
        chars = 0
        for entry in reversed(self._entries):
            if oldest is not None and entry.when < oldest:
                break
            if limits.maxstanzas is not None and len(picked) >= limits.maxstanzas:
                break
            stanza = delayed(entry.stanza, room_jid, entry.when)
            if limits.maxchars is not None:
                chars += len(stanza.to_xml())
                if chars > limits.maxchars:
                    break
            picked.append(stanza)
        picked.reverse()
        return picked


def delayed(stanza: Element, by: str, when: float) -> Element:
    """A shallow copy of ``stanza`` with an XEP-0203 delay added by ``by``."""
    copy = Element(stanza.name, stanza.xmlns, dict(stanza.attrs), list(stanza.children))
    copy.tag("delay", NS_DELAY, {"from": by, "stamp": stamp(when)})
    return copy


def stamp(when: float) -> str:
    """XEP-0082 DateTime in UTC."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def parse_limits(join: Element | None) -> HistoryLimits:
    """The ``<history/>`` of a join presence's ``<x xmlns='…muc'/>`` (§7.2.14); values
    that are not whole numbers (or dates) are ignored, as if absent."""
    history = None if join is None else join.find("history", NS_MUC)
    if history is None:
        return HistoryLimits()
    return HistoryLimits(
        maxchars=_number(history.get("maxchars")),
        maxstanzas=_number(history.get("maxstanzas")),
        seconds=_number(history.get("seconds")),
        since=_datetime(history.get("since")),
    )


def _number(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = int(text.strip())
    except ValueError:
        return None
    return min(value, _MAX_LIMIT) if value >= 0 else None


def _datetime(text: str | None) -> float | None:
    """An XEP-0082 DateTime (``CCYY-MM-DDThh:mm:ss[.sss](Z|±hh:mm)``) as POSIX time."""
    if not text:
        return None
    text = text.strip()
    try:
        base, zone = text[:19], text[19:]
        parsed = calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None
    if zone.startswith("."):
        digits = len(zone) - len(zone[1:].lstrip("0123456789"))
        zone = zone[digits:]
    if zone in ("Z", ""):
        return float(parsed)
    try:
        sign = 1 if zone[0] == "+" else -1
        hours, minutes = int(zone[1:3]), int(zone[4:6])
    except (ValueError, IndexError):
        return None
    return float(parsed - sign * (hours * 3600 + minutes * 60))
