"""`tercet check features` (XMPP Compliance Suites 2022/2023, advice only),
`tercet check connectivity` against a real listener and a closed port, and `check config`
as a subcommand."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from harness import ServerHarness

from tercet.cli.main import cli

MINIMAL = """
[virtualhosts."example.org"]
"""
ADVANCED = """
modules_enabled = ["roster", "saslauth", "tls", "disco", "private", "vcard", "blocklist",
                   "register", "c2s", "bind", "iq", "message", "presence", "smacks",
                   "carbons", "pep", "bookmarks", "s2s", "component_listener", "websocket",
                   "bosh", "mam", "csi_simple", "cloud_notify", "external_services"]
c2s_direct_tls_ports = [5223]

[virtualhosts."example.org"]

[components."conference.example.org"]
module = "muc"
modules_enabled = ["muc_mam"]

[components."upload.example.org"]
module = "http_file_share"
"""


def run(tmp_path: Path, config: str, *args: str) -> Any:
    path = tmp_path / "tercet.toml"
    path.write_text(config)
    return CliRunner().invoke(cli, ["-c", str(path), "check", *args])


def test_features_of_a_minimal_config_are_advice(tmp_path: Path) -> None:
    result = run(tmp_path, MINIMAL, "features", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"] is True
    assert any("XEP-0479" in s for s in report["compliance_suites"])
    host = report["hosts"][0]
    assert host["host"] == "example.org"
    im = host["suites"]["IM"]
    # Default modules: carbons, vcard, roster... but no MUC or upload and no federation.
    by_name = {f["feature"]: f for f in im["features"]}
    assert by_name["Outbound message synchronization"]["enabled"] is True
    assert by_name["Group chat"]["enabled"] is False
    assert im["server"] is False and im["advanced_server"] is False
    assert host["suites"]["Mobile"]["features"][0]["enabled"] is True  # smacks by default
    assert any("mam" in line for line in host["advice"])
    assert any('module = "muc"' in line for line in host["advice"])

    text = run(tmp_path, MINIMAL, "features")
    assert text.exit_code == 0
    assert "for the Advanced Server level" in text.output


def test_features_of_an_advanced_config(tmp_path: Path) -> None:
    result = run(tmp_path, ADVANCED, "features", "--json")
    assert result.exit_code == 0, result.output
    host = json.loads(result.output)["hosts"][0]
    for suite, levels in host["suites"].items():
        assert levels["server"] and levels["advanced_server"], suite
    assert host["advice"] == []
    # The XEPs the modules and components implement, from their META.
    assert {"XEP-0045", "XEP-0313", "XEP-0363", "XEP-0198", "XEP-0280"} <= set(host["xeps"])
    assert "muc" in host["component_modules"] and "mam" in host["modules"]
    # Without direct TLS the Core suite falls to the Server level, and with it every suite.
    result = run(tmp_path, ADVANCED.replace("[5223]", "[]"), "features", "--json")
    suites = json.loads(result.output)["hosts"][0]["suites"]
    assert suites["Core"]["server"] and not suites["Core"]["advanced_server"]
    assert not suites["IM"]["advanced_server"] and suites["IM"]["server"]


def test_check_config_is_a_subcommand(tmp_path: Path) -> None:
    result = run(tmp_path, MINIMAL + "bogus_key = 1\n", "config", "--json")
    report = json.loads(result.output)
    assert any("bogus_key" in p["key"] or "bogus_key" in p["message"]
               for p in report["problems"])


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends


def test_connectivity_against_a_running_server(server: ServerHarness) -> None:
    path = server.config_path
    result = CliRunner().invoke(cli, ["-c", str(path), "check", "connectivity", "--json"])
    report = json.loads(result.output)
    assert result.exit_code == 0, result.output
    options = {(r["option"], r["ok"]) for r in report["listeners"]}
    assert options == {("c2s_ports", True), ("c2s_direct_tls_ports", True)}



def test_connectivity_reports_a_closed_port(tmp_path: Path) -> None:
    port = closed_port()
    config = (f'c2s_ports = [{port}]\nc2s_direct_tls_ports = []\n'
              'c2s_interfaces = ["127.0.0.1"]\n' + MINIMAL)
    result = run(tmp_path, config, "connectivity", "--json", "--timeout", "5")
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    assert [(r["address"], r["ok"]) for r in report["listeners"]] == [
        (f"127.0.0.1:{port}", False)]
    assert report["problems"][0]["key"] == "c2s_ports"
    assert "refused" in report["listeners"][0]["error"]
