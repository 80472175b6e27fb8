"""Two Tercets federating on loopback: a.test and b.test, found through a real DNS
responder (SRV records) named by ``dns_nameservers``, STARTTLS with self-signed
certificates, authenticated by Server Dialback (XEP-0220)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from harness import ServerHarness, free_port
from helpers import run
from xmpp import available, close, login

from tercet.core.certs import generate_self_signed

CONFIG = """
c2s_ports = [{c2s}]
c2s_direct_tls_ports = []
c2s_interfaces = ["127.0.0.1"]
s2s_ports = [{s2s}]
s2s_interfaces = ["127.0.0.1"]
dns_nameservers = ["{dns}"]
data_path = "data"
certificates = "certs"
log = "warning"
admin_socket = "{admin_socket}"

{extra}
[virtualhosts."{domain}"]
modules_enabled = {modules}
{host_extra}
"""


class DomainHarness(ServerHarness):
    """A ServerHarness serving ``domain`` with s2s on a free port."""

    def __init__(self, directory: Path, domain: str, dns: str, extra: str = "",
                 host_extra: str = "", modules: tuple[str, ...] = ("s2s", "dialback")
                 ) -> None:
        super().__init__(directory)
        self.dns: Any = None  # the DnsResponder serving the test's zone
        self.domain = domain
        generate_self_signed(domain, directory / "certs")
        self.c2s_port, self.s2s_port = free_port(), free_port()
        self.config_path.write_text(CONFIG.format(
            c2s=self.c2s_port, s2s=self.s2s_port, dns=dns, domain=domain,
            admin_socket=self.admin_socket, extra=extra, host_extra=host_extra,
            modules=json.dumps(list(modules))))


@asynccontextmanager
async def federation(tmp_path: Path, extra: dict[str, str] | None = None,
                     host_extra: dict[str, str] | None = None,
                     also_hosts: dict[str, list[str]] | None = None,
                     modules: tuple[str, ...] = ("s2s", "dialback"),
                     prepare: Callable[[str, DomainHarness], None] | None = None,
                     ) -> AsyncIterator[dict[str, DomainHarness]]:
    """a.test and b.test, each on its own server; ``also_hosts`` names more domains a
    server hosts (their tables go in ``host_extra``): certificates and DNS for them too.
    ``prepare(domain, harness)`` runs before the servers start (e.g. other certificates)."""
    from dnsresponder import DnsResponder  # tests/net

    async with DnsResponder() as dns:
        servers: dict[str, DomainHarness] = {}
        try:
            for domain in ("a.test", "b.test"):
                h = DomainHarness(tmp_path / domain, domain, dns.nameserver,
                                  (extra or {}).get(domain, ""),
                                  (host_extra or {}).get(domain, ""), modules)
                servers[domain] = h
                h.dns = dns
                if prepare is not None:
                    prepare(domain, h)
                for name in (domain, *(also_hosts or {}).get(domain, [])):
                    if name != domain:
                        generate_self_signed(name, h.directory / "certs")
                    dns.add(f"_xmpp-server._tcp.{name}", "SRV", [f"0 0 {h.s2s_port} {name}."])
                    dns.add(name, "A", ["127.0.0.1"])
            for h in servers.values():
                await asyncio.to_thread(h.start)
                await asyncio.to_thread(h.create_user, "user", "pass", h.domain)
            yield servers
        finally:
            for h in servers.values():
                await asyncio.to_thread(h.stop)


def _import_dns_helpers() -> None:
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "net"))


_import_dns_helpers()


async def _clients(servers: dict[str, DomainHarness]) -> tuple[Any, Any]:
    a = await login("user@a.test", "pass", servers["a.test"].c2s_port, plugins=("xep_0030",))
    b = await login("user@b.test", "pass", servers["b.test"].c2s_port)
    await available(a, b)  # messages to a bare JID go to available resources
    return a, b


def test_messages_both_ways_iq_and_burst(tmp_path: Path) -> None:
    async def main() -> None:
        async with federation(tmp_path) as servers:
            alice, bob = await _clients(servers)
            try:
                alice.send_message(mto="user@b.test/x", mbody="hello b", mtype="chat")
                got = await asyncio.wait_for(bob.messages.get(), 15)
                assert got["body"] == "hello b" and str(got["from"]).startswith("user@a.test")
                bob.send_message(mto="user@a.test", mbody="hello a", mtype="chat")
                got = await asyncio.wait_for(alice.messages.get(), 15)
                assert got["body"] == "hello a" and str(got["from"]).startswith("user@b.test")

                # An iq with a result: disco#info of the remote server.
                info = await alice.plugin["xep_0030"].get_info(jid="b.test", timeout=15)
                assert info["type"] == "result"
                # An iq with an error: to an account that does not exist.
                iq = alice.make_iq_get(queryxmlns="jabber:iq:version",
                                       ito="nobody@b.test/r")
                error: Exception | None = None
                try:
                    await iq.send(timeout=15)
                except Exception as exc:  # slixmpp raises IqError for type='error'
                    error = exc
                assert error is not None and "service-unavailable" in str(
                    getattr(error, "iq", error))

                # 50 messages in a burst arrive complete and in order.
                for i in range(50):
                    alice.send_message(mto="user@b.test", mbody=f"m{i}", mtype="chat")
                bodies = [str((await asyncio.wait_for(bob.messages.get(), 15))["body"])
                          for _ in range(50)]
                assert bodies == [f"m{i}" for i in range(50)]

                # One link pair, authenticated by dialback, reused.
                srv_a = servers["a.test"].server
                assert srv_a is not None
                links = srv_a.providers["s2s"][0]
                link = links.links[("a.test", "b.test")]
                assert link.session.authenticated and link.session.auth_method == "dialback"
                assert link.session.secure
            finally:
                await close(alice)
                await close(bob)
    run(main(), timeout=90)


def test_unresolvable_domain_bounces(tmp_path: Path) -> None:
    async def main() -> None:
        async with federation(tmp_path) as servers:
            alice = await login("user@a.test", "pass", servers["a.test"].c2s_port)
            try:
                for i in range(3):
                    alice.send_message(mto="someone@nowhere.test", mbody=f"x{i}",
                                       mtype="chat", mfrom=None)
                errors = []
                for _ in range(3):
                    errors.append(await asyncio.wait_for(alice.messages.get(), 15))
                assert [e["type"] for e in errors] == ["error"] * 3
                assert [e["body"] for e in errors] == ["x0", "x1", "x2"]
                assert all(e["error"]["condition"] == "remote-server-not-found"
                           for e in errors)
                assert all(str(e["from"]) == "someone@nowhere.test" for e in errors)

                # Backing off: the next stanza bounces at once, with no new lookup.
                dns = servers["a.test"].dns
                asked = [q for q in dns.queries if "nowhere.test" in q[0]]
                assert asked  # the first attempt did look the domain up
                alice.send_message(mto="someone@nowhere.test", mbody="x3", mtype="chat")
                error = await asyncio.wait_for(alice.messages.get(), 15)
                assert error["body"] == "x3"
                assert error["error"]["condition"] == "remote-server-not-found"
                assert [q for q in dns.queries if "nowhere.test" in q[0]] == asked
            finally:
                await close(alice)
    run(main(), timeout=60)


def test_secure_auth_refuses_dialback_actively(tmp_path: Path) -> None:
    """b.test requires certificates (s2s_secure_auth); self-signed a.test can only offer
    dialback, so b refuses it with a stream error and a's messages bounce."""
    async def main() -> None:
        async with federation(tmp_path, {"b.test": "s2s_secure_auth = true"}) as servers:
            alice = await login("user@a.test", "pass", servers["a.test"].c2s_port)
            try:
                alice.send_message(mto="user@b.test", mbody="let me in", mtype="chat")
                error = await asyncio.wait_for(alice.messages.get(), 30)
                assert error["type"] == "error" and error["body"] == "let me in"
                assert error["error"]["condition"].startswith("remote-server-")
                srv_a = servers["a.test"].server
                assert srv_a is not None
                link = srv_a.providers["s2s"][0].links.get(("a.test", "b.test"))
                assert link is None or link.session is None or not link.session.authenticated
            finally:
                await close(alice)
    run(main(), timeout=90)


async def bounce_of(client: Any, to: str, body: str) -> Any:
    client.send_message(mto=to, mbody=body, mtype="chat")
    error = await asyncio.wait_for(client.messages.get(), 30)
    assert error["type"] == "error" and error["body"] == body, error
    return error


def test_blocked_domains_both_directions(tmp_path: Path) -> None:
    """a.test blocks b.test: a's users get not-allowed at once; b's stream to a is
    refused, so b's users get a remote-server error."""
    async def main() -> None:
        async with federation(tmp_path, {"a.test": 's2s_blocked_domains = ["b.test"]\n'}
                              ) as servers:
            alice, bob = await _clients(servers)
            try:
                error = await bounce_of(alice, "user@b.test", "to a blocked domain")
                assert error["error"]["condition"] == "not-allowed"
                error = await bounce_of(bob, "user@a.test", "from a blocked domain")
                assert error["error"]["condition"].startswith("remote-server-")
            finally:
                await close(alice)
                await close(bob)
    run(main(), timeout=90)


QUIET = """
[virtualhosts."quiet.test"]
modules_disabled = ["s2s"]
"""


def test_federation_off_for_one_host(tmp_path: Path) -> None:
    """Server a also hosts quiet.test with modules_disabled = ["s2s"]: its users cannot
    reach b (service-unavailable), a stream to it is refused (host-unknown, so b's user
    gets a remote-server error), and a.test still federates."""
    async def main() -> None:
        async with federation(tmp_path, host_extra={"a.test": QUIET},
                              also_hosts={"a.test": ["quiet.test"]}) as servers:
            h = servers["a.test"]
            await asyncio.to_thread(h.create_user, "quiet", "pass", "quiet.test")
            quiet = await login("quiet@quiet.test", "pass", h.c2s_port)
            alice, bob = await _clients(servers)
            try:
                error = await bounce_of(quiet, "user@b.test", "out of a quiet host")
                assert error["error"]["condition"] == "service-unavailable"
                error = await bounce_of(bob, "quiet@quiet.test", "into a quiet host")
                assert error["error"]["condition"].startswith("remote-server-")
                alice.send_message(mto="user@b.test", mbody="a.test still federates",
                                   mtype="chat")
                got = await asyncio.wait_for(bob.messages.get(), 15)
                assert got["body"] == "a.test still federates"
            finally:
                for client in (quiet, alice, bob):
                    await close(client)
    run(main(), timeout=90)
