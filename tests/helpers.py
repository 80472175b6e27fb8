"""Async helpers shared by the tests: run a test coroutine under a deadline, and wait for a
condition (instead of sleeping for a guessed time).

    from helpers import async_test, idle, run, until, until_sync

    def test_something() -> None:
        async def main() -> None:
            ...
            await until(lambda: client.messages, "the message")
        run(main())
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

#: Overall deadline of one test coroutine; only ever reached by a hung test.
RUN_TIMEOUT = 60.0
#: Deadline of one awaited condition; only ever reached when the condition never holds.
UNTIL_TIMEOUT = 10.0
#: How often ``until`` looks again.
POLL_INTERVAL = 0.01


def run(coro: Coroutine[Any, Any, T], timeout: float = RUN_TIMEOUT) -> T:
    """Run ``coro`` on a fresh event loop; fail it if it takes longer than ``timeout``.

    The coroutine runs in the loop's main task itself (``asyncio.timeout``, not a wrapping
    task), so every other task is background work; see :func:`idle`.
    """
    async def main() -> T:
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(main())


def async_test(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Decorate an ``async def test_...`` so pytest runs it through :func:`run` (fixtures
    and parameters are passed through)."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        run(fn(*args, **kwargs))

    return wrapper


async def until(predicate: Callable[[], bool | Awaitable[bool]], what: str = "the condition",
                *, timeout: float = UNTIL_TIMEOUT, interval: float = POLL_INTERVAL) -> None:
    """Return as soon as ``predicate()`` is true (it may be async); the event loop keeps
    running in between. Fails with "timed out waiting for <what>" after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() >= deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(interval)


def until_sync(predicate: Callable[[], bool], what: str = "the condition", *,
               timeout: float = UNTIL_TIMEOUT, interval: float = 0.05) -> None:
    """:func:`until` for code without an event loop (other processes, raw sockets)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def accepts(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``port`` (a predicate for ``until``)."""
    try:
        socket.create_connection((host, port), 0.5).close()
    except OSError:
        return False
    return True


async def idle(timeout: float = UNTIL_TIMEOUT) -> None:
    """Wait until the background tasks on this loop have finished (what a server fires
    detached: unbind handlers, broadcasts on behalf of a departed session, store writes).

    For in-process servers (``ModuleTestServer``), which run no long-lived tasks; the test
    itself must run in the loop's main task, as :func:`run` arranges.
    """
    me = asyncio.current_task()

    def background() -> list[asyncio.Task[Any]]:
        return [t for t in asyncio.all_tasks() if t is not me and not t.done()]

    async def quiet() -> bool:
        # Twice, one loop iteration apart: a callback that was already scheduled (call_soon,
        # a finished task's done callback) may still start a task.
        if background():
            return False
        await asyncio.sleep(0)
        return not background()

    await until(quiet, "background tasks to finish", timeout=timeout)


def receive(sock: socket.socket, end: str | None, wait: float) -> str:
    """What the server sends until it closes the connection or ``end`` arrives, for at
    most ``wait`` seconds."""
    sock.settimeout(wait)
    data = b""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        data += chunk
        if end is not None and end.encode() in data:
            break
    return data.decode("utf-8", "replace")


def examples(count: int) -> int:
    """Hypothesis examples for a property test: ``count`` in the suite, times
    ``TERCET_FUZZ_SCALE`` for a long run (docs/internals.md, "Fuzzing")."""
    return count * max(1, int(os.environ.get("TERCET_FUZZ_SCALE", "1")))
