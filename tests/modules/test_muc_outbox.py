"""The MUC's ordered sending (modules/_muc/outbox.py): copies queued as one entry arrive
as if queued one by one, in order, each once, across awaits and a cancelled flush."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import pytest

from tercet.modules._muc.outbox import Copies, Outbox
from tercet.modules._muc.render import Shared
from tercet.protocol.stanza import Element


def presence(nick: str) -> Shared:
    return Shared("presence", attrs={"from": f"room@conference.example/{nick}"})


def test_copies_keep_order_across_awaits_and_a_cancelled_flush() -> None:
    async def main() -> None:
        sent: list[tuple[str | None, str | None]] = []
        slow = asyncio.Event()
        tasks: list[asyncio.Task[Any]] = []

        async def waiting() -> None:
            await slow.wait()

        def send(stanza: Element) -> Awaitable[None] | None:
            # As ModuleApi.send_now: None once delivered, an awaitable while a handler
            # still runs (here the delivery to b, the first time).
            sent.append((stanza.get("from"), stanza.get("to")))
            if stanza.get("to") == "b@example/x" and not slow.is_set():
                return waiting()
            return None

        def spawn(coro: Awaitable[None]) -> Any:
            task = asyncio.ensure_future(coro)
            tasks.append(task)
            return task

        outbox = Outbox(send, spawn)
        outbox.put_copies([presence("x"), presence("y"), presence("z")], ["a@example/x"])
        outbox.put_copies([presence("j")], ["a@example/x", "b@example/x", "c@example/x"])
        outbox.put_copies([], ["nobody@example/x"])  # nothing to send: nothing queued
        outbox.put(Element("message", attrs={"to": "a@example/x"}))
        assert len(outbox) == 7
        flush = asyncio.ensure_future(outbox.flush())
        await asyncio.sleep(0.01)  # the flush waits in the delivery to b
        outbox.put_copies([presence("k")], ["c@example/x"])  # queued meanwhile
        flush.cancel()  # the handler that flushed is cancelled half-way
        with pytest.raises(asyncio.CancelledError):
            await flush
        slow.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 5)  # the rest, in a task
        room = "room@conference.example/"
        assert sent == [
            (room + "x", "a@example/x"), (room + "y", "a@example/x"),
            (room + "z", "a@example/x"),
            (room + "j", "a@example/x"), (room + "j", "b@example/x"),
            (room + "j", "c@example/x"),
            (None, "a@example/x"),
            (room + "k", "c@example/x"),
        ]
        assert len(outbox) == 0
    asyncio.run(asyncio.wait_for(main(), 10))


def test_copies_are_one_for_many_or_many_for_one() -> None:
    with pytest.raises(ValueError):
        Copies([presence("x"), presence("y")], ["a@example/x", "b@example/x"])
    copies = Copies([presence("x")], ["a@example/x", "b@example/x"])
    assert [copies.take().get("to") for _ in range(copies.left)] == ["a@example/x",
                                                                      "b@example/x"]
    assert copies.left == 0
