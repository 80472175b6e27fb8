"""`tercet s2s list` / `tercet s2s close` against two federating Tercets (the federation
helper of test_s2s: a real DNS responder, STARTTLS, dialback), through the admin socket
and through the CLI."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from helpers import run
from test_s2s import DomainHarness, _clients, federation
from xmpp import close

from tercet.cli.adminclient import AdminClient
from tercet.cli.main import cli


def _admin(h: DomainHarness, cmd: str, **args: Any) -> Any:
    with AdminClient(h.admin_socket) as client:
        return client.call(cmd, **args)


def _cli(h: DomainHarness, *args: str) -> Result:
    return CliRunner().invoke(cli, ["-c", str(h.config_path), "s2s", *args])


async def _until(predicate: Any, timeout: float = 15) -> None:
    async with asyncio.timeout(timeout):
        while not await asyncio.to_thread(predicate):
            await asyncio.sleep(0.05)


async def _exchange(alice: Any, bob: Any, body: str) -> None:
    alice.send_message(mto="user@b.test", mbody=body, mtype="chat")
    assert (await asyncio.wait_for(bob.messages.get(), 15))["body"] == body
    bob.send_message(mto="user@a.test", mbody=body, mtype="chat")
    assert (await asyncio.wait_for(alice.messages.get(), 15))["body"] == body


def test_s2s_list_and_close(tmp_path: Path) -> None:
    async def main() -> None:
        async with federation(tmp_path) as servers:
            a = servers["a.test"]
            alice, bob = await _clients(servers)
            try:
                await _exchange(alice, bob, "hello")
                rows = await asyncio.to_thread(_admin, a, "s2s.list")
                by_dir = {r["direction"]: r for r in rows if r["id"] is not None}
                out, in_ = by_dir["out"], by_dir["in"]
                assert out["local_domain"] == "a.test" and out["remote_domain"] == "b.test"
                assert out["authenticated_domains"] == ["b.test"]
                assert out["auth_method"] == "dialback"
                assert out["tls_version"].startswith("TLSv1.") and out["tls_cipher"]
                assert out["queued"] == 0 and out["idle"] >= 0 and out["age"] >= 0
                assert out["peer"].startswith("127.0.0.1")
                assert in_["local_domain"] == "a.test"
                assert in_["authenticated_domains"] == ["b.test"]
                assert in_["auth_method"] == "dialback" and in_["tls_version"]
                assert in_["queued"] is None

                result = await asyncio.to_thread(_cli, a, "list", "--json")
                assert result.exit_code == 0, result.output
                assert {r["direction"] for r in json.loads(result.output)} == {"in", "out"}
                result = await asyncio.to_thread(_cli, a, "list")
                assert result.exit_code == 0, result.output
                lines = result.output.splitlines()
                assert lines[0].split()[:3] == ["DIR", "LOCAL", "REMOTE"]
                assert any(line.split()[:3] == ["out", "a.test", "b.test"]
                           and "dialback" in line for line in lines[1:])

                result = await asyncio.to_thread(_cli, a, "close", "B.test")
                assert result.exit_code == 0, result.output
                assert "closed 2 stream(s) with b.test (reset)" in result.output
                await _until(lambda: not [r for r in _admin(a, "s2s.list")
                                          if r["remote_domain"] == "b.test"])
                # The peers reconnect on demand.
                await _exchange(alice, bob, "again")

                result = await asyncio.to_thread(_cli, a, "close", "nowhere.test")
                assert result.exit_code == 1 and "no s2s stream with nowhere.test" in \
                    result.output
                result = await asyncio.to_thread(_cli, a, "close", "b.test",
                                                 "--condition", "bogus")
                assert result.exit_code == 2
            finally:
                await close(alice)
                await close(bob)
    run(main(), timeout=120)


def test_s2s_list_without_server(tmp_path: Path) -> None:
    h = DomainHarness(tmp_path / "a.test", "a.test", "127.0.0.1:53")
    result = _cli(h, "list")
    assert result.exit_code == 1 and "cannot reach the server" in result.output
