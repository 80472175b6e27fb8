"""The event bus: named events, handlers by numeric priority, first non-None result wins.

Handlers may be plain functions or coroutine functions. ``fire`` stays synchronous on the
common path (no coroutine is created when every handler is plain), and returns an awaitable
only when a handler returned one; the caller awaits it and the chain resumes after it.
That keeps the hot stanza path cheap while letting storage-backed handlers be async.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("tercet.events")

Handler = Callable[[Any], Any]


def is_awaitable(value: Any) -> bool:
    """``inspect.isawaitable``, answering the common plain results without its ABC check.

    Handlers return True, False or None almost always; the ABC instance check costs about
    a microsecond, several times per stanza.
    """
    if value is None or value is True or value is False:
        return False
    return inspect.isawaitable(value)


@dataclass(eq=False, slots=True)
class HookHandle:
    """What ``hook`` returns; pass it to ``unhook``."""

    name: str
    handler: Handler
    priority: float
    seq: int
    bus: EventBus | None = field(default=None, repr=False)


class EventBus:
    """One bus per host plus one global bus; modules register through their ModuleApi."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._handlers: dict[str, list[HookHandle]] = {}
        # Sorted handler tuples per event, rebuilt lazily: firing never sorts.
        self._chains: dict[str, tuple[Handler, ...]] = {}
        self._seq = 0

    def hook(self, name: str, handler: Handler, priority: float = 0) -> HookHandle:
        self._seq += 1
        handle = HookHandle(name, handler, priority, self._seq, self)
        lst = self._handlers.setdefault(name, [])
        lst.append(handle)
        lst.sort(key=lambda h: (-h.priority, h.seq))
        self._chains[name] = tuple(h.handler for h in lst)
        return handle

    def unhook(self, handle: HookHandle) -> None:
        lst = self._handlers.get(handle.name)
        if not lst or handle not in lst:
            return
        lst.remove(handle)
        if lst:
            self._chains[handle.name] = tuple(h.handler for h in lst)
        else:
            del self._handlers[handle.name]
            del self._chains[handle.name]

    def has_handlers(self, name: str) -> bool:
        return name in self._chains

    def handlers(self, name: str) -> list[HookHandle]:
        return list(self._handlers.get(name, ()))

    def names(self) -> list[str]:
        """Every event name with at least one handler (for tools and tests)."""
        return list(self._handlers)

    def fire(self, name: str, event: Any) -> Any:
        """Run the chain for ``name``; see the module docstring for async handlers."""
        chain = self._chains.get(name)
        if chain is None:
            return None
        done = 0  # a counter, not enumerate: no tuple per handler
        for handler in chain:
            done += 1
            try:
                result = handler(event)
            except Exception:
                log.exception("error in handler %r for event %s", handler, name)
                continue
            if result is None:
                continue
            if result is not True and inspect.isawaitable(result):
                return self._continue(name, chain, done, event, result)
            return result
        return None

    async def _continue(self, name: str, chain: tuple[Handler, ...], start: int,
                        event: Any, pending: Awaitable[Any]) -> Any:
        try:
            result = await pending
        except Exception:
            log.exception("error in async handler for event %s", name)
            result = None
        if result is not None:
            return result
        for handler in chain[start:]:
            try:
                result = handler(event)
                if inspect.isawaitable(result):
                    result = await result
            except Exception:
                log.exception("error in handler %r for event %s", handler, name)
                continue
            if result is not None:
                return result
        return None

    async def fire_async(self, name: str, event: Any) -> Any:
        """Fire and always await the result (for callers that are async anyway)."""
        result = self.fire(name, event)
        if is_awaitable(result):
            result = await result
        return result
