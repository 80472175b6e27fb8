"""`tercet check dns|certs|features|connectivity`: what the world sees of each virtual host.

``check dns`` asks DNS (the server's own resolver and ``dns_nameservers``; the hosts file
is ignored, remote peers do not see it) for the SRV records of RFC 6120 §3.2 and XEP-0368
and for address records, and says what is missing. ``check certs`` says whether each
host's certificate is valid for clients (DNS-ID, RFC 6125 §6.4) and for servers (DNS-ID,
SRV-ID or XmppAddr, RFC 6120 §13.7.1.2 / RFC 7590), how long it stays valid, and whether
its chain verifies against the system trust store (or ``--cafile``).

``check features`` says which features of the XMPP Compliance Suites each host enables
(tercet.cli.compliance) and what the Advanced Server level still needs: advice, so it
always exits 0. ``check connectivity`` connects to every configured listener from this
machine and checks that an XMPP stream answers.

All print findings like plain ``tercet check`` (``--json`` for machines) and exit 1 when
there is an error; advice never makes the exit code non-zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import ssl
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from tercet.cli import compliance
from tercet.core import certs
from tercet.core.config import Config, ConfigProblem
from tercet.net.resolver import Resolver
from tercet.protocol import certid

#: RFC 6120 §3.2.1 / XEP-0368 §3: the SRV services of a host, and the port options of ours
#: each should point at.
SERVICES = (
    ("_xmpp-client._tcp", "c2s_ports"),
    ("_xmpps-client._tcp", "c2s_direct_tls_ports"),
    ("_xmpp-server._tcp", "s2s_ports"),
    ("_xmpps-server._tcp", "s2s_direct_tls_ports"),
)
#: RFC 6120 §3.2.2 / §14.7: the ports used without SRV records.
FALLBACK_PORTS = {"c2s_ports": 5222, "s2s_ports": 5269}
#: RFC 6120 §13.7.1.2.1 (XmppAddr) and RFC 4985 (SRVName) otherName types.
OID_XMPP_ADDR = ObjectIdentifier("1.3.6.1.5.5.7.8.5")
OID_SRV_NAME = ObjectIdentifier("1.3.6.1.5.5.7.8.7")


@dataclass
class Report:
    """One host's findings: facts for ``--json`` and the problems found."""

    host: str
    facts: dict[str, Any] = field(default_factory=dict)
    problems: list[ConfigProblem] = field(default_factory=list)


def _output(config: Config, reports: list[Report], as_json: bool,
            show: Callable[[Report], list[str]]) -> None:
    problems = [p for r in reports for p in r.problems]
    errors = sum(p.severity == "error" for p in problems)
    if as_json:
        click.echo(json.dumps({
            "config": config.file, "ok": errors == 0, "errors": errors,
            "warnings": len(problems) - errors,
            "hosts": [{"host": r.host, **r.facts,
                       "problems": [p.to_dict() for p in r.problems]} for r in reports],
        }, indent=2))
    else:
        for report in reports:
            click.echo("\n".join([report.host, *show(report)]))
            for problem in report.problems:
                click.echo(f"  {problem.severity}: {problem.message}. {problem.fix}".rstrip())
        click.echo(f"{config.file}: {errors} error(s), {len(problems) - errors} warning(s)")
    if errors:
        sys.exit(1)


def _load(ctx: click.Context) -> Config:
    from tercet.cli.main import CliContext

    return ctx.find_object(CliContext).load_config()  # type: ignore[union-attr]


# --------------------------------------------------------------------------------------
# dns


@click.command("dns")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def dns(ctx: click.Context, as_json: bool) -> None:
    """Look up each virtual host's SRV, A and AAAA records (with dns_nameservers, else
    /etc/resolv.conf) and report what is missing. Exits 1 on errors."""
    config = _load(ctx)
    reports = asyncio.run(dns_reports(config))
    _output(config, reports, as_json, _show_dns)


def _show_dns(report: Report) -> list[str]:
    lines = []
    for name, records in report.facts["srv"].items():
        shown = ", ".join(f"{r['target']}:{r['port']}" for r in records) if records \
            else "(none)"
        lines.append(f"  {name:<20} {shown}")
    lines.append(f"  {'A/AAAA':<20} {', '.join(report.facts['addresses']) or '(none)'}")
    return lines


async def dns_reports(config: Config, resolver: Resolver | None = None) -> list[Report]:
    """One report per virtual host (RFC 6120 §3.2)."""
    resolver = resolver or Resolver(config.get("dns_nameservers") or ())
    if not resolver.has_nameservers:
        problem = ConfigProblem("error", config.file, "dns_nameservers",
                                "no nameserver: /etc/resolv.conf names none",
                                "Set dns_nameservers or configure the system resolver.")
        return [Report(h, {"srv": {}, "addresses": []}, [problem]) for h in config.hosts]
    return list(await asyncio.gather(*(_dns_report(config, resolver, h)
                                       for h in config.hosts)))


async def _dns_report(config: Config, resolver: Resolver, host: str) -> Report:
    report = Report(host, {"srv": {}, "addresses": await resolver.dns_addresses(host)})
    federates = "s2s" in config.modules_for_host(host)
    for service, ports_option in SERVICES:
        if service.startswith("_xmpp-server") or service.startswith("_xmpps-server"):
            if not federates:
                continue
        records = await resolver.srv(f"{service}.{host}.") or []
        report.facts["srv"][service] = [
            {"priority": r.priority, "weight": r.weight, "port": r.port, "target": r.target,
             "addresses": await _target_addresses(resolver, r.target)} for r in records]
        report.problems += _srv_problems(config, host, service, ports_option,
                                         report.facts["srv"][service])
    report.problems += _fallback_problems(config, host, report.facts, federates)
    return report


async def _target_addresses(resolver: Resolver, target: str) -> list[str]:
    if target in (".", ""):
        return []
    return await resolver.dns_addresses(target)


def _srv_problems(config: Config, host: str, service: str, ports_option: str,
                  records: list[dict[str, Any]]) -> list[ConfigProblem]:
    problems = []
    ports = set(config.get(ports_option) or [])
    key = config.host_location(host)[0]
    for r in records:
        if r["target"] in (".", ""):
            continue  # RFC 2782: the service is decidedly not available here
        if not r["addresses"]:
            problems.append(ConfigProblem(
                "error", config.file, key,
                f"{service}.{host} points at {r['target']}, which has no A or AAAA record",
                f"Add address records for {r['target']}."))
        if r["port"] not in ports:
            problems.append(ConfigProblem(
                "warning", config.file, ports_option,
                f"{service}.{host} says port {r['port']}, but {ports_option} is "
                f"{sorted(ports)}", "Fix the record or the option (unless a port forward "
                "maps one to the other)."))
    return problems


def _fallback_problems(config: Config, host: str, facts: dict[str, Any],
                       federates: bool) -> list[ConfigProblem]:
    """RFC 6120 §3.2.2: without SRV records, peers connect to the domain's addresses on the
    default port."""
    problems = []
    key = config.host_location(host)[0]
    checks = [("client", ("_xmpp-client._tcp", "_xmpps-client._tcp"), "c2s_ports")]
    if federates:
        checks.append(("server", ("_xmpp-server._tcp", "_xmpps-server._tcp"), "s2s_ports"))
    for who, services, ports_option in checks:
        if any(facts["srv"].get(s) for s in services):
            continue
        if not facts["addresses"]:
            reach = "clients" if who == "client" else "federation (other servers)"
            problems.append(ConfigProblem(
                "error", config.file, key,
                f"{host} has no {services[0]} SRV record and no A or AAAA record: "
                f"{reach} cannot reach it",
                f"Publish {services[0]}.{host} SRV records or A/AAAA records for {host}."))
        elif FALLBACK_PORTS[ports_option] not in (config.get(ports_option) or []):
            problems.append(ConfigProblem(
                "warning", config.file, ports_option,
                f"{host} has no {services[0]} SRV record, so {who}s use port "
                f"{FALLBACK_PORTS[ports_option]}, which is not in {ports_option}",
                f"Publish {services[0]}.{host} SRV records naming your port."))
    return problems


# --------------------------------------------------------------------------------------
# certs


@click.command("certs")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--cafile", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Also trust the CA certificates in this PEM file (a private CA).")
@click.pass_context
def certs_(ctx: click.Context, as_json: bool, cafile: Path | None) -> None:
    """Check each host's certificate for clients (c2s) and servers (s2s): names, expiry,
    chain (system trust store). Exits 1 on errors."""
    config = _load(ctx)
    store = trust_store(cafile, *_configured_cas(config))
    reports = [cert_report(config, h, store) for h in config.hosts + list(config.components)]
    _output(config, reports, as_json, _show_cert)


def _show_cert(report: Report) -> list[str]:
    facts = report.facts
    if facts.get("cert") is None:
        return ["  no certificate"]
    return [f"  certificate: {facts['cert']}",
            f"  names:       {', '.join(facts['names']) or '(none)'}",
            f"  expires:     {facts['not_after']}",
            f"  c2s:         {'valid' if facts['c2s'] else 'not valid'}",
            f"  s2s:         {'valid' if facts['s2s'] else 'not valid'}",
            f"  chain:       {facts['chain']}"]


def _configured_cas(config: Config) -> list[Path]:
    """PEM files of the CAs the server trusts for peers (``s2s_cafile``/``s2s_capath``,
    when those options exist), relative to the config file's directory."""
    out: list[Path] = []
    for key in ("s2s_cafile", "s2s_capath"):
        value = config.get(key)
        if value:
            path = config.directory / str(value)
            out += sorted(path.glob("*.pem")) + sorted(path.glob("*.crt")) \
                if path.is_dir() else [path]
    return out


def trust_store(*extra: Path | None) -> list[x509.Certificate]:
    """The system's trusted CA certificates (OpenSSL's default file) plus ``extra`` files."""
    found: list[x509.Certificate] = []
    paths = [ssl.get_default_verify_paths().cafile, *extra]
    for path in paths:
        if path is None or not Path(path).is_file():
            continue
        try:
            with warnings.catch_warnings():  # old roots with odd serials are still roots
                warnings.simplefilter("ignore")
                found += x509.load_pem_x509_certificates(Path(path).read_bytes())
        except ValueError:
            continue  # a bundle we cannot read adds nothing
    return found


def _der_string(value: bytes) -> str | None:
    """The text of a DER string (UTF8String, IA5String), unwrapping an explicit [0] tag."""
    for _ in range(2):
        if len(value) < 2:
            return None
        tag, length, start = value[0], value[1], 2
        if length & 0x80:
            count = length & 0x7F
            length, start = int.from_bytes(value[2:2 + count]), 2 + count
        body = value[start:start + length]
        if tag == 0xA0:
            value = body
            continue
        return body.decode("utf-8", "replace") if tag in (0x0C, 0x16) else None
    return None


def identities(cert: x509.Certificate) -> dict[str, list[str]]:
    """The certificate's reference identities (RFC 6125 §6): DNS-IDs, SRV-IDs, XmppAddrs."""
    out: dict[str, list[str]] = {"dns": [], "srv": [], "xmpp": []}
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return out
    out["dns"] = [n.lower() for n in san.get_values_for_type(x509.DNSName)]
    for other in san.get_values_for_type(x509.OtherName):
        text = _der_string(other.value)
        if text is None:
            continue
        if other.type_id == OID_XMPP_ADDR:
            out["xmpp"].append(text.lower())
        elif other.type_id == OID_SRV_NAME:
            out["srv"].append(text.lower())
    return out


def valid_for(ids: dict[str, list[str]], host: str, service: str) -> bool:
    """Whether the identities cover ``host`` for ``service`` ("c2s": DNS-ID only, what
    clients check; "s2s": DNS-ID, SRV-ID or XmppAddr), by the s2s identity rules of
    :mod:`tercet.protocol.certid`."""
    wanted = certid.a_label(host)
    if wanted is None:
        return False
    if service == "c2s":
        return any(certid.dns_id_matches(d, wanted) for d in ids["dns"])
    found = certid.CertIdentities(tuple(ids["dns"]), tuple(ids["srv"]), tuple(ids["xmpp"]))
    return certid.matches(found, host) or certid.matches(found, host, "xmpps-server")


def _chain(chain: list[x509.Certificate], store: list[x509.Certificate],
           now: dt.datetime) -> str:
    """"trusted", "self-signed", or why the chain does not verify."""
    leaf = chain[0]
    if leaf.issuer == leaf.subject and leaf not in store:
        return "self-signed"
    names = identities(leaf)["dns"]
    if not store:
        return "untrusted: no trust store found"
    if not names:
        return "untrusted: no DNS name to verify"
    try:
        verifier = PolicyBuilder().store(Store(store)).time(now).build_server_verifier(
            x509.DNSName(names[0].replace("*", "wildcard", 1)))
        verifier.verify(leaf, chain[1:])
    except VerificationError as exc:
        return f"untrusted: {exc}"
    except ValueError as exc:
        return f"untrusted: {exc}"
    return "trusted"


def cert_report(config: Config, host: str, store: list[x509.Certificate],
                now: dt.datetime | None = None) -> Report:
    """Whether ``host``'s certificate serves clients and servers, with its problems."""
    from tercet.cli.main import _missing_cert

    now = now or dt.datetime.now(dt.UTC)
    found = certs.certificate_for_host(config, host)
    if found is None:
        return Report(host, {"cert": None}, [_missing_cert(config, host)])
    report = Report(host, {"cert": str(found[0])})
    try:
        chain = x509.load_pem_x509_certificates(found[0].read_bytes())
    except (OSError, ValueError) as exc:
        report.problems.append(_problem(config, host, found[0], "error",
                                        f"cannot read it: {exc}", "Import it again."))
        return report
    ids = identities(chain[0])
    is_host = not config.is_component(host)
    report.facts.update({
        "names": ids["dns"] + ids["srv"] + [f"xmpp:{x}" for x in ids["xmpp"]],
        "not_after": chain[0].not_valid_after_utc.isoformat(),
        "c2s": valid_for(ids, host, "c2s"), "s2s": valid_for(ids, host, "s2s"),
        "chain": _chain(chain, store, now)})
    report.problems += _cert_problems(config, host, found[0], report.facts, chain[0], now,
                                      is_host)
    return report


def _problem(config: Config, host: str, path: Path, severity: str, message: str,
             fix: str) -> ConfigProblem:
    return ConfigProblem(severity, str(path), config.host_location(host)[0],  # type: ignore[arg-type]
                         message, fix)


def _cert_problems(config: Config, host: str, path: Path, facts: dict[str, Any],
                   leaf: x509.Certificate, now: dt.datetime,
                   is_host: bool) -> list[ConfigProblem]:
    out = []
    names = ", ".join(facts["names"]) or "no names"
    if is_host and not facts["c2s"]:
        out.append(_problem(config, host, path, "error",
                            f"not valid for clients of {host} (it covers {names})",
                            f"Get a certificate whose subjectAltName lists {host}."))
    if not facts["s2s"]:
        out.append(_problem(config, host, path, "warning",
                            f"not valid for federation as {host} (no DNS-ID, SRV-ID or "
                            f"XmppAddr for it; it covers {names}): peers can only use dialback",
                            f"Get a certificate whose subjectAltName lists {host}."))
    left = leaf.not_valid_after_utc - now
    if left < dt.timedelta(0):
        out.append(_problem(config, host, path, "error",
                            f"expired on {leaf.not_valid_after_utc:%Y-%m-%d}",
                            "Renew it, then run `tercet cert import`."))
    elif left < dt.timedelta(days=certs.EXPIRY_WARNING_DAYS):
        out.append(_problem(config, host, path, "warning",
                            f"expires on {leaf.not_valid_after_utc:%Y-%m-%d} (in {left.days} "
                            "days)", "Renew it soon."))
    if leaf.not_valid_before_utc > now:
        out.append(_problem(config, host, path, "error",
                            f"not valid before {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC",
                            "Check the system clock."))
    if facts["chain"] == "self-signed":
        out.append(_problem(config, host, path, "warning",
                            "self-signed: clients warn about it, and peers cannot "
                            "authenticate it (dialback only)",
                            "Use a certificate from a CA (e.g. Let's Encrypt)."))
    elif facts["chain"] != "trusted":
        out.append(_problem(config, host, path, "warning",
                            f"the chain does not verify against the system trust store "
                            f"({facts['chain']})",
                            "Include the intermediate certificates (fullchain.pem), or pass "
                            "--cafile for a private CA."))
    return out


# --------------------------------------------------------------------------------------
# features


@click.command("features")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def features(ctx: click.Context, as_json: bool) -> None:
    """Which features of the XMPP Compliance Suites 2022/2023 (XEP-0459, XEP-0479) each
    host enables, per suite and level, and what to enable for the Advanced Server level.
    Advice only: the exit code is 0."""
    config = _load(ctx)
    hosts: list[dict[str, Any]] = []
    xeps_of = compliance.module_xeps(config)
    for host in config.hosts:
        setup = compliance.setup_for(config, host)
        suites = compliance.evaluate(setup)
        hosts.append({"host": host, "modules": sorted(setup.modules),
                      "component_modules": sorted(setup.component_modules),
                      "xeps": compliance.enabled_xeps(setup, xeps_of),
                      "suites": suites, "advice": compliance.advice(suites)})
    if as_json:
        click.echo(json.dumps({"config": config.file, "ok": True,
                               "compliance_suites": list(compliance.SUITE_DOCS),
                               "hosts": hosts}, indent=2))
        return
    for report in hosts:
        click.echo("\n".join([report["host"], *_show_features(report)]))
    click.echo(f"{config.file}: per {' and '.join(compliance.SUITE_DOCS)}")


def _show_features(report: dict[str, Any]) -> list[str]:
    lines = [f"  XEPs enabled: {', '.join(x.removeprefix('XEP-') for x in report['xeps'])}"]
    for suite, result in report["suites"].items():
        level = ("Advanced Server" if result["advanced_server"] else
                 "Server" if result["server"] else "no level")
        missing = [f["feature"] for f in result["features"]
                   if f["server"] and not f["enabled"]]
        if missing:
            level += f" (the Server level needs: {', '.join(missing)})"
        elif not result["server"]:
            level += " (the Server level needs the Core suite's)"
        lines.append(f"  {suite + ':':<13} {level}")
    if report["advice"]:
        lines.append("  for the Advanced Server level of every suite:")
        lines += [f"    {line}" for line in report["advice"]]
    return lines


# --------------------------------------------------------------------------------------
# connectivity

#: Port options, the module that opens them, the stream namespace spoken there and whether
#: TLS comes first (XEP-0368). HTTP is checked for an answer to a plain request.
LISTENERS = (
    ("c2s_ports", "c2s_interfaces", "c2s", "jabber:client", False),
    ("c2s_direct_tls_ports", "c2s_interfaces", "c2s", "jabber:client", True),
    ("s2s_ports", "s2s_interfaces", "s2s", "jabber:server", False),
    ("s2s_direct_tls_ports", "s2s_interfaces", "s2s", "jabber:server", True),
    ("component_ports", "component_interfaces", "component_listener",
     "jabber:component:accept", False),
)
CONNECT_TIMEOUT = 5.0
#: Enough of the answer to see the stream header; a server sends it in its first bytes.
READ_LIMIT = 4096


@click.command("connectivity")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--timeout", default=CONNECT_TIMEOUT, show_default=True,
              type=click.FloatRange(0.1, 60), help="Seconds per connection attempt.")
@click.pass_context
def connectivity(ctx: click.Context, as_json: bool, timeout: float) -> None:
    """Connect to each configured client, server and component port on its configured
    interfaces (from this machine) and check that an XMPP stream answers there. Exits 1
    when one does not."""
    config = _load(ctx)
    targets = listener_targets(config)
    results = asyncio.run(_probe_all(targets, timeout))
    problems = [_listener_problem(config, r) for r in results if not r["ok"]]
    errors = len(problems)
    if as_json:
        click.echo(json.dumps({"config": config.file, "ok": errors == 0, "errors": errors,
                               "warnings": 0, "listeners": results,
                               "problems": [p.to_dict() for p in problems]}, indent=2))
    else:
        for r in results:
            state = "ok" if r["ok"] else f"FAILED: {r['error']}"
            click.echo(f"{r['option']:<22} {r['address']:<24} {state}")
        if not results:
            click.echo("no listeners configured")
        click.echo(f"{config.file}: {errors} error(s)")
    if errors:
        sys.exit(1)


def listener_targets(config: Config) -> list[dict[str, Any]]:
    """Every (option, address, port) the running server should listen on."""
    enabled = {m for h in config.hosts for m in config.modules_for_host(h)} | {"c2s"}
    out = []
    for ports_key, ifaces_key, module, ns, tls in LISTENERS:
        if module not in enabled:
            continue
        for iface in config.get(ifaces_key) or ():
            address = {"*": "127.0.0.1", "::": "::1", "0.0.0.0": "127.0.0.1"}.get(iface, iface)
            for port in config.get(ports_key) or ():
                out.append({"option": ports_key, "interface": iface, "host": address,
                            "port": int(port), "namespace": ns, "tls": tls,
                            "domain": config.hosts[0] if config.hosts else "localhost"})
    return out


async def _probe_all(targets: list[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
    return list(await asyncio.gather(*(_probe(t, timeout) for t in targets)))


async def _probe(target: dict[str, Any], timeout: float) -> dict[str, Any]:
    host, port = target["host"], target["port"]
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    result = {"option": target["option"], "address": shown, "tls": target["tls"],
              "ok": False, "error": None}
    try:
        answer = await asyncio.wait_for(_stream_answer(target), timeout)
    except TimeoutError:
        result["error"] = f"no answer within {timeout:g} s"
    except ssl.SSLError as exc:
        result["error"] = f"TLS handshake failed ({exc.reason or exc})"
    except OSError as exc:
        result["error"] = os.strerror(exc.errno).lower() if exc.errno else str(exc)
    else:
        result["ok"] = "<stream:stream" in answer or "stream:features" in answer
        if not result["ok"]:
            result["error"] = "something answered, but not an XMPP stream"
    return result


async def _stream_answer(target: dict[str, Any]) -> str:
    """Open the connection (TLS first on direct TLS ports), send a stream header and read
    the start of the answer."""
    context = None
    if target["tls"]:
        context = ssl.create_default_context()
        context.check_hostname = False  # `check certs` judges the certificate
        context.verify_mode = ssl.CERT_NONE
    reader, writer = await asyncio.open_connection(
        target["host"], target["port"], ssl=context,
        server_hostname=target["domain"] if context else None)
    try:
        writer.write(("<?xml version='1.0'?><stream:stream xmlns='" + target["namespace"] +
                      "' xmlns:stream='http://etherx.jabber.org/streams' to='" +
                      target["domain"] + "' version='1.0'>").encode())
        await writer.drain()
        data = b""
        while len(data) < READ_LIMIT and b">" not in data.partition(b"<stream:stream")[2]:
            chunk = await reader.read(READ_LIMIT)
            if not chunk:
                break
            data += chunk
        return data.decode("utf-8", "replace")
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


def _listener_problem(config: Config, result: dict[str, Any]) -> ConfigProblem:
    return ConfigProblem("error", config.file, result["option"],
                         f"{result['address']}: {result['error']}",
                         "Start the server (tercet start), or check the interfaces, the "
                         "firewall and what else listens on that port.")
