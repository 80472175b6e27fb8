"""Bidirectional server-to-server streams (XEP-0288) between two Tercets, and the idle
timeout of inbound streams (``s2s_timeout``, both directions). The federation helpers of
test_s2s (dialback, self-signed) and test_s2s_certs (a private CA, SASL EXTERNAL)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import run, until
from test_s2s import DomainHarness
from test_s2s import federation as dialback_federation
from test_s2s_admin import _admin
from test_s2s_certs import DEMANDING, sessions
from test_s2s_certs import federation as ca_federation
from xmpp import available, close, login

BIDI = ("s2s", "dialback", "s2s_bidi")


class Clock:
    """A settable server clock (``module.now()``): real time plus an offset."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


async def _message(sender: Any, receiver: Any, to: str, body: str) -> None:
    sender.send_message(mto=to, mbody=body, mtype="chat")
    got = await asyncio.wait_for(receiver.messages.get(), 15)
    assert got["body"] == body and got["type"] == "chat", got


async def _both_ways_with_iq(servers: dict[str, DomainHarness]) -> None:
    """a -> b first (a's stream, made bidirectional, carries b's answers), then b -> a
    messages and iq round trips in both directions."""
    alice = await login("user@a.test", "pass", servers["a.test"].c2s_port,
                        plugins=("xep_0030",))
    bob = await login("user@b.test", "pass", servers["b.test"].c2s_port,
                      plugins=("xep_0030",))
    try:
        await available(alice, bob)
        await _message(alice, bob, "user@b.test/x", "hello b")
        await _message(bob, alice, "user@a.test", "hello a")
        for _ in range(3):
            await _message(alice, bob, "user@b.test", "again b")
            await _message(bob, alice, "user@a.test", "again a")
        info = await bob.plugin["xep_0030"].get_info(jid="a.test", timeout=15)
        assert info["type"] == "result"
        info = await alice.plugin["xep_0030"].get_info(jid="b.test", timeout=15)
        assert info["type"] == "result"
    finally:
        await close(alice)
        await close(bob)


def test_bidi_external_one_connection(tmp_path: Path) -> None:
    """Certificates on both sides: a's stream to b authenticates by SASL EXTERNAL and,
    bidirectional, carries b's stanzas too: one TCP connection for the pair."""
    async def main() -> None:
        async with ca_federation(tmp_path, {"a.test": "ca", "b.test": "ca"},
                                 {"a.test": DEMANDING, "b.test": DEMANDING},
                                 modules=BIDI) as servers:
            await _both_ways_with_iq(servers)
            a, b = servers["a.test"], servers["b.test"]
            assert sessions(a, "in") == [] and sessions(b, "out") == []
            [out] = sessions(a, "out")
            [in_] = sessions(b, "in")
            assert out.bidi and in_.bidi
            assert out.auth_method == in_.auth_method == "EXTERNAL"
            # The admin list (tercet s2s list) shows one bidirectional stream each side.
            for h, direction in ((a, "out"), (b, "in")):
                rows = await asyncio.to_thread(_admin, h, "s2s.list")
                assert [(r["direction"], r["bidi"]) for r in rows] == [(direction, True)]
            links = b.server.providers["s2s"][0]  # type: ignore[union-attr]
            assert links.links[("b.test", "a.test")].session is in_
    run(main(), timeout=90)


def test_bidi_with_dialback(tmp_path: Path) -> None:
    """Self-signed certificates: dialback. Stanzas flow both ways and the streams are
    bidirectional; b verifies a's key over a connection of its own (XEP-0288 §2.2: never
    on the requesting one), which it then keeps for its stanzas."""
    async def main() -> None:
        async with dialback_federation(tmp_path, modules=BIDI) as servers:
            await _both_ways_with_iq(servers)
            a, b = servers["a.test"], servers["b.test"]
            [out] = sessions(a, "out")
            assert out.bidi and out.auth_method == "dialback"
            assert all(s.bidi for s in sessions(b, "in"))
            # At most one stream each way: no connection beyond the dialback pair.
            assert len(sessions(a, "out")) == len(sessions(b, "in")) == 1
            assert len(sessions(b, "out")) <= 1 and len(sessions(a, "in")) <= 1
    run(main(), timeout=90)


def test_without_bidi_on_one_side_two_streams(tmp_path: Path) -> None:
    """b does not load s2s_bidi: it offers no bidi, a asks for none, each side opens its
    own stream as before."""
    async def main() -> None:
        async with ca_federation(tmp_path, {"a.test": "ca", "b.test": "ca"},
                                 {"a.test": DEMANDING, "b.test": DEMANDING},
                                 modules=("s2s", "dialback")) as servers:
            await _both_ways_with_iq(servers)
            for h in servers.values():
                assert len(sessions(h, "out")) == len(sessions(h, "in")) == 1
                assert not any(s.bidi for d in ("in", "out") for s in sessions(h, d))
    run(main(), timeout=90)


async def _sweep(h: DomainHarness) -> None:
    """Run the s2s module's idle check now, on the server's loop."""
    async def sweep() -> float:
        links = h.server.providers["s2s"][0]  # type: ignore[union-attr]
        result: float = links.close_idle()
        return result
    await h.acall(sweep())


def test_idle_inbound_stream_closes(tmp_path: Path) -> None:
    """b's inbound stream from a closes after s2s_timeout without traffic (b's clock is
    advanced, no sleeping); traffic keeps it open; a reconnects on demand."""
    async def main() -> None:
        async with dialback_federation(tmp_path, {"b.test": "s2s_timeout = 300\n"}
                                       ) as servers:
            a, b = servers["a.test"], servers["b.test"]
            clock = Clock()
            assert b.server is not None
            b.server.clock = clock
            alice = await login("user@a.test", "pass", a.c2s_port)
            bob = await login("user@b.test", "pass", b.c2s_port)
            try:
                await available(alice, bob)
                await _message(alice, bob, "user@b.test", "one")
                [inbound] = sessions(b, "in")
                clock.offset = 299
                await _sweep(b)
                assert not inbound.closed
                await _message(alice, bob, "user@b.test", "traffic")  # at +299
                clock.offset = 299 + 299
                await _sweep(b)
                assert not inbound.closed
                clock.offset = 299 + 301
                await _sweep(b)
                assert inbound.closed  # closing is immediate; forgetting it follows the
                await until(lambda: sessions(b, "in") == [], "b to forget the stream")
                # a saw its stream end and opens a new one for the next stanza.
                await _message(alice, bob, "user@b.test", "after the close")
                assert [s for s in sessions(b, "in") if s is not inbound]
            finally:
                await close(alice)
                await close(bob)
    run(main(), timeout=90)


async def _inject(h: DomainHarness, session: Any, xml: str) -> None:
    """Write a raw stanza on one of ``h``'s streams, from its loop."""
    async def write() -> None:
        session.conn.write(xml.encode())
    await h.acall(write())


async def _closed(session: Any) -> None:
    await until(lambda: session.closed, "the stream to close")


def test_stanzas_back_on_outbound_are_checked(tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    """On a's bidirectional stream, a stanza from a domain the peer did not authenticate
    ends it (invalid-from); without bidi, any stanza back on a's stream ends it
    (not-authorized, RFC 6120 §4.9.3.12), as before."""
    async def main() -> None:
        for modules, xml, condition in (
                (BIDI, "<message from='x@evil.test' to='user@a.test'><body>x</body></message>",
                 "invalid-from"),
                (("s2s", "dialback"),
                 "<message from='user@b.test' to='user@a.test'><body>x</body></message>",
                 "not-authorized")):
            path = tmp_path / modules[-1]
            async with ca_federation(path, {"a.test": "ca", "b.test": "ca"},
                                     {"a.test": DEMANDING, "b.test": DEMANDING},
                                     modules=modules) as servers:
                a, b = servers["a.test"], servers["b.test"]
                alice = await login("user@a.test", "pass", a.c2s_port)
                bob = await login("user@b.test", "pass", b.c2s_port)
                try:
                    await available(alice, bob)
                    await _message(alice, bob, "user@b.test", "open the stream")
                    [out] = sessions(a, "out")
                    [in_] = sessions(b, "in")
                    await _inject(b, in_, xml)
                    await _closed(out)
                    # b hears why: a's stream error, with the condition the RFC names.
                    await until(lambda c=condition: "a.test ended the inbound stream with the "
                                f"error {c}" in caplog.text, f"b to log {condition}")
                    assert alice.messages.empty()  # the stanza was refused, not delivered
                finally:
                    await close(alice)
                    await close(bob)
    run(main(), timeout=120)
