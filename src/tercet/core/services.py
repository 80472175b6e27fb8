"""Contracts of the services modules offer each other with ``module.provides(kind, obj)``.

A consumer asks for one with ``module.require(kind, Contract)`` or ``module.find(...)``;
the contracts are runtime-checkable protocols, so any provider with the methods qualifies
and a plugin needs no private class of the module that provides it.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class RosterLookup(Protocol):
    """The ``roster`` service as other modules read it (RFC 6121 §2)."""

    async def subscription(self, username: str, contact: str) -> str:
        """"none", "to", "from" or "both": ``contact`` (a bare JID) in ``username``'s
        roster; "none" when absent."""
        ...

    async def item(self, username: str, contact: str) -> dict[str, Any] | None:
        """A copy of the roster item (subscription, name, groups, ask), None if absent."""
        ...
