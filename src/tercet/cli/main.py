"""The ``tercet`` command.

This file holds the group, the shared context and the commands that need no running server
(init, cert, check, version). Other commands are written elsewhere and attached with
``cli.add_command(...)``; they reach the configuration through :data:`pass_cli`::

    @click.command()
    @pass_cli
    def start(ctx: CliContext) -> None:
        config = ctx.load_config()      # exits 1 with every problem listed on failure

Exit codes: 0 success, 1 problem found or operation failed, 2 usage error (click).
Results go to stdout, progress and diagnostics to stderr.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import platform
import shlex
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import click

import tercet
from tercet.cli.templates import render_config, render_systemd_unit
from tercet.core import certs
from tercet.core.config import (
    Config,
    ConfigError,
    ConfigProblem,
    did_you_mean,
    normalize_host,
    plugin_path_of,
)
from tercet.core.modulemanager import (
    ENTRY_POINT_GROUP,
    available_sources,
    builtin_schema,
    declared_schema,
)
from tercet.files import loose_mode, private_dir

DEFAULT_CONFIG = "tercet.toml"


def tercet_version() -> str:
    try:
        return importlib.metadata.version("tercet")
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        return str(getattr(importlib.import_module("tercet"), "__version__", "0+unknown"))
    except ImportError:
        return "0+unknown"


class ProblemReport(click.ClickException):
    """Exit 1 after printing each problem on its own line (stderr)."""

    exit_code = 1

    def __init__(self, problems: Iterable[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    def show(self, file: IO[Any] | None = None) -> None:
        for problem in self.problems:
            click.echo(str(problem), file=file or sys.stderr)


@dataclass
class CliContext:
    """What every command gets: the config path, and the config once loaded."""

    config_path: Path
    _config: Config | None = field(default=None, repr=False)

    def load_config(self) -> Config:
        if self._config is None:
            try:
                # Every declared option: core, built-in modules, installed plugins.
                schema = declared_schema(plugin_path_of(self.config_path))
                self._config = Config.load(self.config_path, schema=schema)
            except ConfigError as exc:
                raise ProblemReport(exc.problems) from None
        return self._config


pass_cli = click.make_pass_decorator(CliContext)


def _progress(message: str) -> None:
    click.echo(message, err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-c", "--config", "config_path", default=DEFAULT_CONFIG, show_default=True,
              envvar="TERCET_CONFIG", show_envvar=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Configuration file.")
@click.version_option(tercet_version(), "--version", prog_name="tercet",
                      message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, config_path: Path) -> None:
    """Tercet, an XMPP server."""
    ctx.obj = CliContext(config_path)


# --------------------------------------------------------------------------------------
# init


def _domain(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    try:
        return normalize_host(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a valid domain name ({exc})") from None


def _optional_domain(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    return _domain(ctx, param, value) if value is not None else None


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--domain", default="localhost", show_default=True, callback=_domain,
              help="The first virtual host.")
@click.option("--force", is_flag=True, help="Overwrite an existing tercet.toml and certificate.")
@click.option("--systemd", "systemd_user", metavar="USER", default=None,
              help="Also write tercet.service, a systemd unit running the server as USER.")
def init(directory: Path, domain: str, force: bool, systemd_user: str | None) -> None:
    """Create DIRECTORY with a commented tercet.toml, a data directory and a self-signed
    certificate for the domain. The server listens on loopback only until you change it.
    With --systemd USER, also a systemd unit for a real deployment (docs/quickstart.md)."""
    directory = directory.absolute()
    config_file = directory / DEFAULT_CONFIG
    if config_file.exists() and not force:
        raise click.ClickException(f"{config_file} already exists; pass --force to overwrite it")
    directory.mkdir(parents=True, exist_ok=True)
    config_file.write_text(render_config(domain), encoding="utf-8")
    config_file.chmod(0o640)
    data = private_dir(directory / "data")
    cert_dir = directory / "certs"
    found = certs.find_certificate(cert_dir, domain)
    if found is not None and not force:
        _progress(f"Keeping the existing certificate {found[0]}")
    else:
        _progress(f"Generating a self-signed certificate for {domain}...")
        try:
            found = certs.generate_self_signed(domain, cert_dir, overwrite=force)
        except certs.CertError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(_init_summary(config_file, data, found[0], domain))
    if systemd_user is not None:
        unit = directory / "tercet.service"
        unit.write_text(render_systemd_unit(
            python=sys.executable, config_file=str(config_file), directory=str(directory),
            user=systemd_user), encoding="utf-8")
        click.echo(f"\nsystemd unit: {unit}\n  sudo cp {unit} /etc/systemd/system/ && "
                   "sudo systemctl daemon-reload && sudo systemctl enable --now tercet")


def _init_summary(config_file: Path, data: Path, cert: Path, domain: str) -> str:
    run = f"tercet -c {shlex.quote(str(config_file))}"
    return f"""\
Created:
  {config_file}   configuration (loopback only)
  {data}/   server data
  {cert}   self-signed certificate for {domain}

Next steps:
  1. Review the configuration: {config_file}
  2. Check it:                 {run} check
  3. Create an account:        {run} user add admin@{domain}
  4. Start the server:         {run} start

For a public domain, use a certificate from a CA instead of the self-signed one:
  {run} cert import /etc/letsencrypt/live/{domain}"""


# --------------------------------------------------------------------------------------
# cert


@cli.group()
def cert() -> None:
    """Generate, import and inspect TLS certificates."""


def _cert_dir(config: Config, host: str | None = None) -> Path:
    path = config.resolve_path("certificates", host)
    assert path is not None  # the option has a default
    return path


def _configured(config: Config) -> list[str]:
    return config.hosts + list(config.components)


@cert.command("generate")
@click.argument("host", callback=_domain)
@click.option("--days", default=365, show_default=True, type=click.IntRange(1, 3650),
              help="Validity period.")
@click.option("--force", is_flag=True, help="Replace an existing certificate.")
@pass_cli
def cert_generate(ctx: CliContext, host: str, days: int, force: bool) -> None:
    """Create a self-signed certificate and key for HOST in the certificates directory.

    Clients will not trust it without manual confirmation: use it for testing or
    private servers, and import a CA-issued certificate for public ones."""
    config = ctx.load_config()
    if host not in _configured(config):
        _progress(f"note: {host} is not a configured virtual host or component")
    _progress(f"Generating an EC P-256 key and a self-signed certificate for {host}...")
    try:
        cert_path, key_path = certs.generate_self_signed(
            host, _cert_dir(config, host), days=days, overwrite=force)
    except certs.CertError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{cert_path}\n{key_path}")


@cert.command("import")
@click.argument("paths", nargs=-1, required=True,
                type=click.Path(exists=True, path_type=Path))
@pass_cli
def cert_import(ctx: CliContext, paths: tuple[Path, ...]) -> None:
    """Copy certificates and keys from PATHS into the certificates directory.

    PATHS may be PEM files (a certificate and its key), a certbot directory
    (/etc/letsencrypt/live/example.org) or a directory of them (/etc/letsencrypt/live).
    Files are stored as <host>.crt/<host>.key for every name the certificate lists.
    Files are copied: run this again after each renewal (e.g. from a certbot deploy hook)."""
    config = ctx.load_config()
    dest = _cert_dir(config)
    try:
        hosts = certs.import_certificates(paths, dest, progress=_progress)
    except certs.CertError as exc:
        raise click.ClickException(str(exc)) from None
    configured = _configured(config)
    failed = False
    for host in hosts:
        click.echo(f"imported {host}" + ("" if host in configured or host.startswith("*.")
                                         else " (not a configured host)"))
        found = certs.find_certificate(dest, host)
        for problem in certs.certificate_problems(*found, host) if found else []:
            failed |= problem.severity == "error"
            click.echo(f"  {problem.severity}: {problem}", err=True)
    if failed:
        sys.exit(1)


@cert.command("show")
@click.argument("host", required=False, callback=_optional_domain)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_cli
def cert_show(ctx: CliContext, host: str | None, as_json: bool) -> None:
    """Show the certificate used by HOST (default: every configured host and component).
    Exits 1 when a host has no usable certificate."""
    config = ctx.load_config()
    hosts = [host] if host else _configured(config)
    reports = [_cert_report(config, h) for h in hosts]
    if as_json:
        click.echo(json.dumps(reports, indent=2))
    else:
        click.echo("\n\n".join(_format_report(r) for r in reports) or "no hosts configured")
    if any(r.get("cert") is None or r.get("unreadable") for r in reports):
        sys.exit(1)


def _cert_report(config: Config, host: str) -> dict[str, Any]:
    found = certs.certificate_for_host(config, host)
    if found is None:
        missing = _missing_cert(config, host)
        return {"host": host, "cert": None, "key": None,
                "problems": [f"{missing.severity}: {missing.message}. {missing.fix}"]}
    cert_path, key_path = found
    report: dict[str, Any] = {"host": host, "cert": str(cert_path), "key": str(key_path)}
    try:
        facts = certs.describe(cert_path)
        facts["key_type"] = facts.pop("key")
        report.update(facts)
    except certs.CertError as exc:
        report["unreadable"] = str(exc)
    report["problems"] = [f"{p.severity}: {p}"
                          for p in certs.certificate_problems(cert_path, key_path, host)]
    return report


def _format_report(report: dict[str, Any]) -> str:
    lines = [report["host"]]
    if report.get("cert") and "subject" in report:
        issuer = report["issuer"] + (" (self-signed)" if report["self_signed"] else "")
        lines += [
            f"  certificate: {report['cert']}",
            f"  key:         {report['key']} ({report['key_type']})",
            f"  subject:     {report['subject']}",
            f"  names:       {', '.join(report['sans']) or '(none)'}",
            f"  issuer:      {issuer}",
            f"  valid:       {report['not_before']} to {report['not_after']}",
            f"  sha256:      {report['sha256']}",
        ]
    lines += [f"  {p}" for p in report["problems"]] or ["  no problems found"]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# check


def _missing_cert(config: Config, host: str) -> ConfigProblem:
    key, line = config.host_location(host)
    # Clients cannot log in to a host that requires TLS but has no certificate; a
    # component only needs one for federation.
    fatal = not config.is_component(host) and config.get("c2s_require_encryption", host)
    return ConfigProblem(
        "error" if fatal else "warning", config.file, key,
        f"no certificate found for {host} in {_cert_dir(config, host)} "
        f"(looked for {host}.crt, a wildcard for its parent, {host}/fullchain.pem)",
        f"Run `{_command(config)} cert generate {host}` (self-signed) or "
        f"`{_command(config)} cert import /etc/letsencrypt/live/{host}`.", line)


def _command(config: Config) -> str:
    """How to invoke tercet on this configuration, for suggested commands."""
    if Path(config.file) == Path(DEFAULT_CONFIG):
        return "tercet"
    return f"tercet -c {shlex.quote(config.file)}"


def certificate_findings(config: Config, host: str) -> list[ConfigProblem]:
    """Problems with the certificate a host would use, located at the certificate file."""
    found = certs.certificate_for_host(config, host)
    if found is None:
        return [_missing_cert(config, host)]
    key = config.host_location(host)[0]
    return [ConfigProblem(p.severity, str(found[0]), key, p.message,
                          p.fix[:1].upper() + p.fix[1:] + "." if p.fix else "")
            for p in certs.certificate_problems(*found, host)]


def _data_path_findings(config: Config) -> list[ConfigProblem]:
    path = config.data_path
    if not path.exists():
        return [ConfigProblem("warning", config.file, "data_path",
                              f"{path} does not exist", f"Create it: mkdir -m 700 {path}")]
    if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
        return [ConfigProblem("error", config.file, "data_path",
                              f"expected a writable directory, found {path} not writable "
                              "or not a directory",
                              "Fix its ownership/permissions for the server's user.")]
    return _loose_modes(config, path)


#: Files in the data directory that hold secrets: the database (SCRAM keys, archives) and
#: the daemon's log (account names, addresses).
PRIVATE_FILES = ("tercet.sqlite", "tercet.log")


def _loose_modes(config: Config, data: Path) -> list[ConfigProblem]:
    """The data directory and the files in it with secrets (SCRAM keys, archives, logs)
    should be the server user's alone."""
    found = []
    for target, mode in [(data, "700"), *((data / name, "600") for name in PRIVATE_FILES)]:
        loose = loose_mode(target)
        if loose is not None:
            found.append(ConfigProblem(
                "warning", config.file, "data_path", f"{target} is {loose}; it holds "
                "account keys and messages", f"Run: chmod {mode} {target}"))
    return found


def collect_problems(config: Config) -> list[ConfigProblem]:
    """Config, certificate and data directory problems, errors first. Options are checked
    against the schema the configuration was loaded with (every declared option)."""
    problems = config.check()
    problems += _data_path_findings(config)
    problems += _missing_modules(config)
    for host in _configured(config):
        problems += certificate_findings(config, host)
    return sorted(problems, key=lambda p: p.severity != "error")


def _missing_modules(config: Config) -> list[ConfigProblem]:
    """Modules the configuration enables (or names as a component's module) that are
    neither built in nor an installed plugin: the server would refuse to start."""
    known = {s.name for s in available_sources(plugin_path_of(config.path))}
    known |= {ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    wanted: dict[str, str] = {}
    for host in config.hosts:
        for name in config.modules_for_host(host):
            wanted.setdefault(name, "modules_enabled")
    for host, name in config.components.items():
        wanted.setdefault(name, f'components."{host}".module')
    found = []
    for name, key in sorted(wanted.items()):
        if name in known:
            continue
        hint = did_you_mean(name, sorted(known))
        found.append(ConfigProblem(
            "error", config.file, key, f"module {name!r} is neither built in nor an "
            "installed plugin: the server would not start",
            (hint + " " if hint else "") + f"Install it (`tercet plugin install {name}`) "
            "or remove it from the configuration."))
    return found


@cli.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def check(click_ctx: click.Context, as_json: bool) -> None:
    """Check the configuration and certificates (same as `check config`). Exits 1 if
    there are errors, 0 if there are only warnings or advice. `check dns`, `check certs`,
    `check features` and `check connectivity` look further: at the DNS records and
    certificates the rest of the world sees, the XMPP Compliance Suites, the listeners."""
    if click_ctx.invoked_subcommand is not None:
        return
    ctx = click_ctx.find_object(CliContext)
    assert ctx is not None
    _check_config(ctx, as_json)


@check.command("config")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_cli
def check_config(ctx: CliContext, as_json: bool) -> None:
    """Check the configuration file, the certificates it needs and the data directory.
    Exits 1 if there are errors, 0 if there are only warnings."""
    _check_config(ctx, as_json)


def _check_config(ctx: CliContext, as_json: bool) -> None:
    try:
        problems = collect_problems(ctx.load_config())
    except ProblemReport as exc:
        problems = exc.problems
    errors = sum(p.severity == "error" for p in problems)
    warnings = len(problems) - errors
    if as_json:
        click.echo(json.dumps({"config": str(ctx.config_path), "ok": errors == 0,
                               "errors": errors, "warnings": warnings,
                               "problems": [p.to_dict() for p in problems]}, indent=2))
    else:
        for problem in problems:
            click.echo(str(problem))
        click.echo(f"{ctx.config_path}: {errors} error(s), {warnings} warning(s)"
                   if problems else f"{ctx.config_path}: no problems found")
    if errors:
        sys.exit(1)


# --------------------------------------------------------------------------------------
# version


_LIBRARIES = ("cryptography", "click", "idna", "uvloop", "aiohttp", "dnspython", "asyncpg",
              "prompt_toolkit")


@cli.command()
def version() -> None:
    """Show the versions of Tercet, Python and the libraries it uses."""
    click.echo(f"tercet {tercet_version()}")
    click.echo(f"hot path: {'compiled (mypyc)' if tercet.compiled() else 'interpreted'}")
    click.echo(f"Python {platform.python_version()} ({platform.python_implementation()}) "
               f"on {platform.system()} {platform.release()}")
    for name in _LIBRARIES:
        try:
            click.echo(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            click.echo(f"{name} (not installed)")


@cli.command("config-reference")
@click.option("--builtin-only", is_flag=True,
              help="Only the core and the built-in modules (docs/configuration.md).")
@click.option("--bounds", is_flag=True,
              help="Instead, every bound: options with a range and fixed limits "
                   "(docs/bounds.md).")
@pass_cli
def config_reference(ctx: CliContext, builtin_only: bool, bounds: bool) -> None:
    """Print the reference of every declared option as Markdown, grouped by the module that
    owns it: the core, the built-in modules and the plugins installed for the configuration
    (its installer_plugin_path, when the file exists)."""
    schema = builtin_schema() if builtin_only else declared_schema(
        plugin_path_of(ctx.config_path))
    if bounds:
        from tercet.cli.bounds import to_markdown
        click.echo(to_markdown(schema, Path(tercet.__file__).parent), nl=False)
        return
    click.echo(CONFIG_REFERENCE_HEADER + schema.to_markdown(), nl=False)


CONFIG_REFERENCE_HEADER = """\
# Configuration reference

Tercet reads one TOML file (`tercet -c FILE`, default `./tercet.toml`). Global options come
first; `[virtualhosts."example.org"]` tables override options with scope *host* for that
host (and take `enabled = false`); `[components."conference.example.org"]` tables need
`module = "..."`, or `component_secret` for an external component (docs/components.md),
and get only their own `modules_enabled`. Options with scope *global* are
process-wide and are ignored, with a warning, inside a host table. Relative paths are
relative to the config file's directory (`data_path`, certificates) or to `data_path`
(sockets, plugins, pidfile). `tercet check` validates a file against this reference; an
unknown key is a warning with a "did you mean", a wrong type or value an error that names
the file, the key, what was expected and how to fix it.

Each module declares the options it owns (its `OPTIONS` list), so options are grouped by
owner below; the RFC or XEP section that motivates a bound or a default is given after the
description. Installed plugins declare theirs the same way: `tercet check` knows them, and
`tercet config-reference` lists them too.

This page is generated by `tercet config-reference --builtin-only`; a test keeps it in step
with the code.

"""


def _attach_commands() -> None:
    # Imported here, not at the top: these modules import this one for pass_cli.
    from tercet.cli import (
        check_cmds,
        invite_cmds,
        module_cmds,
        muc_cmds,
        plugin_cmds,
        pubsub_cmds,
        s2s_cmds,
        server_cmds,
        shell,
        user_cmds,
    )

    check.add_command(check_cmds.dns)
    check.add_command(check_cmds.certs_)
    check.add_command(check_cmds.features)
    check.add_command(check_cmds.connectivity)

    for command in (server_cmds.start, server_cmds.stop, server_cmds.status,
                    server_cmds.reload, user_cmds.user, module_cmds.module,
                    plugin_cmds.plugin, plugin_cmds.repo, s2s_cmds.s2s, muc_cmds.muc,
                    pubsub_cmds.pubsub, invite_cmds.invite, shell.shell):
        cli.add_command(command)


_attach_commands()


def main(argv: Sequence[str] | None = None) -> None:
    """Console script entry point."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="tercet")


if __name__ == "__main__":
    main()
