"""`tercet check dns` against a real DNS responder named by dns_nameservers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from click.testing import CliRunner
from dnsresponder import DnsResponder
from helpers import run

from tercet.cli.main import cli

CONFIG = """
dns_nameservers = ["{dns}"]
c2s_ports = [5222]
s2s_ports = [5269]
s2s_direct_tls_ports = [5270]
data_path = "data"
modules_enabled = ["s2s", "dialback"]

[virtualhosts."good.test"]
[virtualhosts."bare.test"]
[virtualhosts."broken.test"]
[virtualhosts."nothing.test"]
[virtualhosts."island.test"]
modules_disabled = ["s2s", "dialback"]
"""


def _zone(dns: DnsResponder) -> None:
    dns.add("_xmpp-client._tcp.good.test", "SRV", ["0 5 5222 xmpp.good.test."])
    dns.add("_xmpp-server._tcp.good.test", "SRV", ["0 5 5269 xmpp.good.test."])
    dns.add("_xmpps-server._tcp.good.test", "SRV", ["0 5 5270 xmpp.good.test."])
    dns.add("xmpp.good.test", "A", ["192.0.2.1"])
    dns.add("xmpp.good.test", "AAAA", ["2001:db8::1"])
    dns.add("bare.test", "A", ["192.0.2.2"])  # no SRV: fallback to 5222 / 5269
    dns.add("_xmpp-server._tcp.broken.test", "SRV", ["0 5 5999 gone.broken.test."])
    dns.add("broken.test", "A", ["192.0.2.3"])
    dns.add("island.test", "A", ["192.0.2.4"])


def _check(config: Path, *args: str) -> tuple[int, dict[str, object]]:
    result = CliRunner().invoke(cli, ["-c", str(config), "check", "dns", "--json", *args])
    return result.exit_code, json.loads(result.output)


def test_check_dns(tmp_path: Path) -> None:
    async def main() -> None:
        async with DnsResponder() as dns:
            _zone(dns)
            config = tmp_path / "tercet.toml"
            config.write_text(CONFIG.format(dns=dns.nameserver))
            code, out = await asyncio.to_thread(_check, config)
        assert code == 1 and out["ok"] is False
        hosts = {h["host"]: h for h in out["hosts"]}  # type: ignore[attr-defined]

        good = hosts["good.test"]
        assert good["problems"] == []
        server = good["srv"]["_xmpp-server._tcp"]
        assert [(r["target"], r["port"]) for r in server] == [("xmpp.good.test", 5269)]
        assert sorted(server[0]["addresses"]) == ["192.0.2.1", "2001:db8::1"]

        assert hosts["bare.test"]["addresses"] == ["192.0.2.2"]
        assert hosts["bare.test"]["problems"] == []  # A records on the default ports

        broken = [p["message"] for p in hosts["broken.test"]["problems"]]
        assert any("gone.broken.test, which has no A or AAAA record" in m for m in broken)
        assert any("port 5999" in m and "s2s_ports" in m for m in broken)

        nothing = hosts["nothing.test"]["problems"]
        assert {p["severity"] for p in nothing} == {"error"}
        assert any("federation (other servers) cannot reach it" in p["message"]
                   for p in nothing)
        assert any("clients cannot reach it" in p["message"] for p in nothing)

        island = hosts["island.test"]
        assert island["problems"] == [] and "_xmpp-server._tcp" not in island["srv"]
    run(main(), timeout=60)


def test_check_dns_text_and_exit_zero(tmp_path: Path) -> None:
    async def main() -> None:
        async with DnsResponder() as dns:
            _zone(dns)
            config = tmp_path / "tercet.toml"
            config.write_text(CONFIG.format(dns=dns.nameserver).split(
                '[virtualhosts."bare.test"]')[0])
            result = await asyncio.to_thread(
                CliRunner().invoke, cli, ["-c", str(config), "check", "dns"])
        assert result.exit_code == 0, result.output
        assert "xmpp.good.test:5269" in result.output
        assert "0 error(s), 0 warning(s)" in result.output
    run(main(), timeout=60)
