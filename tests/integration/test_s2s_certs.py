"""Certificate authentication between two Tercets (RFC 6120 §13.7.2, RFC 9525, XEP-0178):
a private CA made here issues the certificates of a.test and b.test, both servers trust it
(``s2s_cafile``), and the trust policy (``s2s_secure_auth``) decides what else is let in."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from helpers import run
from test_s2s import DomainHarness  # puts tests/net on the path
from test_s2s import federation as s2s_federation
from xmpp import available, close, login

from pki import CA  # tests/net  # isort: skip

#: What each server's certificate is: "ca" (issued for its domain by the CA),
#: "wrong" (issued by the CA for another name), "self" (self-signed, untrusted).
Kinds = dict[str, str]


def federation(tmp_path: Path, kinds: Kinds, extra: dict[str, str] | None = None,
               modules: tuple[str, ...] = ("s2s", "dialback"),
               ) -> AbstractAsyncContextManager[dict[str, DomainHarness]]:
    """test_s2s's two federating servers, with certificates of ``kinds`` from a private
    CA both trust (s2s_cafile)."""
    ca = CA()
    cafile = ca.write(tmp_path / "ca.pem")
    conf = {d: f's2s_cafile = "{cafile}"\n' + (extra or {}).get(d, "")
            for d in ("a.test", "b.test")}

    def issue(domain: str, h: DomainHarness) -> None:
        kind = kinds[domain]
        if kind != "self":  # "self": keep the harness's self-signed certificate
            names = (domain,) if kind == "ca" else ("wrong.test",)
            ca.issue(names).write(h.directory / "certs", domain)

    return s2s_federation(tmp_path, conf, modules=modules, prepare=issue)


def sessions(h: DomainHarness, direction: str) -> list[Any]:
    """The s2s sessions of one server in one direction."""
    assert h.server is not None
    return [c.s2s for c in list(h.server.net.connections)
            if getattr(c, "s2s", None) is not None and c.s2s.direction == direction]


async def exchange(servers: dict[str, DomainHarness]) -> None:
    """A message each way, delivered."""
    a = await login("user@a.test", "pass", servers["a.test"].c2s_port)
    b = await login("user@b.test", "pass", servers["b.test"].c2s_port)
    try:
        await available(a, b)
        a.send_message(mto="user@b.test", mbody="hello b", mtype="chat")
        got = await asyncio.wait_for(b.messages.get(), 15)
        assert got["body"] == "hello b" and got["type"] == "chat"
        b.send_message(mto="user@a.test", mbody="hello a", mtype="chat")
        got = await asyncio.wait_for(a.messages.get(), 15)
        assert got["body"] == "hello a" and got["type"] == "chat"
    finally:
        await close(a)
        await close(b)


async def bounced(servers: dict[str, DomainHarness], sender: str, to: str) -> None:
    """A message from ``sender``'s user to ``to``'s comes back as an error."""
    client = await login(f"user@{sender}", "pass", servers[sender].c2s_port)
    try:
        client.send_message(mto=f"user@{to}", mbody="let me in", mtype="chat")
        error = await asyncio.wait_for(client.messages.get(), 30)
        assert error["type"] == "error" and error["body"] == "let me in"
        assert error["error"]["condition"].startswith("remote-server-")
    finally:
        await close(client)


# A policy that names secure domains makes a server request peers' certificates
# (TLSManager.s2s_server_context); "c.test" only switches that on.
DEMANDING = 's2s_secure_domains = ["c.test"]\n'


def test_external_both_ways(tmp_path: Path) -> None:
    async def main() -> None:
        async with federation(tmp_path, {"a.test": "ca", "b.test": "ca"},
                              {"a.test": DEMANDING, "b.test": DEMANDING}) as servers:
            await exchange(servers)
            for h in servers.values():
                for direction in ("in", "out"):
                    found = sessions(h, direction)
                    assert found, (h.domain, direction)
                    for s in found:
                        assert s.cert_status == "valid", (h.domain, direction, s)
                        assert s.auth_method == "EXTERNAL", (h.domain, direction, s)
    run(main(), timeout=90)


def test_default_policy_asks_no_certificate_and_uses_dialback(tmp_path: Path) -> None:
    """Without a demanding policy, inbound streams request no client certificate (a peer
    with a self-signed one would fail the handshake: Python's ssl cannot continue past
    it), so peers authenticate to us by dialback; our outbound check still runs."""
    async def main() -> None:
        async with federation(tmp_path, {"a.test": "ca", "b.test": "ca"}) as servers:
            await exchange(servers)
            for h in servers.values():
                assert {(s.cert_status, s.auth_method) for s in sessions(h, "in")} == {
                    ("none", "dialback")}, h.domain
                assert {(s.cert_status, s.auth_method) for s in sessions(h, "out")} == {
                    ("valid", "dialback")}, h.domain
    run(main(), timeout=90)


def test_secure_auth_with_valid_certificates(tmp_path: Path) -> None:
    secure = {"a.test": "s2s_secure_auth = true\n", "b.test": "s2s_secure_auth = true\n"}
    async def main() -> None:
        async with federation(tmp_path, {"a.test": "ca", "b.test": "ca"}, secure) as servers:
            await exchange(servers)
            assert all(s.auth_method == "EXTERNAL" for s in sessions(servers["b.test"], "in"))
    run(main(), timeout=90)


def test_self_signed_refused_under_secure_auth_both_directions(tmp_path: Path) -> None:
    async def main() -> None:
        async with federation(tmp_path, {"a.test": "self", "b.test": "ca"},
                              {"b.test": "s2s_secure_auth = true\n"}) as servers:
            await bounced(servers, "a.test", "b.test")  # b refuses a's stream
            await bounced(servers, "b.test", "a.test")  # b refuses to talk to a
            for h in servers.values():
                assert not any(s.authenticated or s.remote_domains
                               for d in ("in", "out") for s in sessions(h, d))
    run(main(), timeout=120)


def test_wrong_name_falls_back_to_dialback(tmp_path: Path) -> None:
    """a.test's certificate is trusted but names wrong.test. On a's stream to b, b sees
    name-mismatch, offers no EXTERNAL, and authenticates a by dialback. On b's stream to
    a, b's certificate is valid for a, so a offers EXTERNAL and b uses it; b's own check
    of a's server certificate still records name-mismatch (allowed: no secure auth)."""
    async def main() -> None:
        async with federation(tmp_path, {"a.test": "wrong", "b.test": "ca"},
                              {"a.test": DEMANDING, "b.test": DEMANDING}) as servers:
            await exchange(servers)
            def status(domain: str, direction: str) -> set[tuple[str, str]]:
                return {(s.cert_status, s.auth_method)
                        for s in sessions(servers[domain], direction)}
            assert status("b.test", "in") == {("name-mismatch", "dialback")}
            assert status("a.test", "out") == {("valid", "dialback")}
            assert status("b.test", "out") == {("name-mismatch", "EXTERNAL")}
            assert status("a.test", "in") == {("valid", "EXTERNAL")}
    run(main(), timeout=90)


def test_wrong_name_refused_for_secure_domains(tmp_path: Path) -> None:
    async def main() -> None:
        async with federation(tmp_path, {"a.test": "wrong", "b.test": "ca"},
                              {"b.test": 's2s_secure_domains = ["a.test"]\n'}) as servers:
            await bounced(servers, "a.test", "b.test")
            await bounced(servers, "b.test", "a.test")
    run(main(), timeout=120)
