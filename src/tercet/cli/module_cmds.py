"""`tercet module list|load|unload|reload`: the module lifecycle of a running server."""

from __future__ import annotations

import json
from typing import Any

import click

from tercet.cli.adminclient import AdminClient, AdminError
from tercet.cli.server_cmds import load_config


def _call(ctx: click.Context, cmd: str, **args: Any) -> Any:
    config = load_config(ctx)
    sock = config.resolve_path("admin_socket")
    try:
        return AdminClient(str(sock), timeout=60).call(cmd, **args)
    except AdminError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def module() -> None:
    """Load, unload and reload modules on the running server (no restart)."""


@module.command("list")
@click.option("--host", help="Only this virtual host (and global modules).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def list_(ctx: click.Context, host: str | None, as_json: bool) -> None:
    """List loaded modules with their host, status and origin."""
    rows = _call(ctx, "module.list", host=host)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        line = f"{row['name']:<24} {row['host']:<24} {row['status']:<8} {row['origin']}"
        if row.get("error"):
            line += f"  ({row['error']})"
        click.echo(line)


def _report(results: list[dict[str, Any]], verb: str, name: str) -> None:
    failed = False
    for row in results:
        if row.get("status") == "failed":
            failed = True
            click.echo(f"{name} failed on {row['host']}: {row.get('error')}", err=True)
        else:
            click.echo(f"{verb} {name} on {row['host']}")
    if failed:
        raise SystemExit(1)


@module.command("load")
@click.argument("name")
@click.option("--host", help="Virtual host (default: every virtual host).")
@click.pass_context
def load(ctx: click.Context, name: str, host: str | None) -> None:
    """Load module NAME (built in or an installed plugin)."""
    _report(_call(ctx, "module.load", name=name, host=host), "loaded", name)


@module.command("unload")
@click.argument("name")
@click.option("--host", help="Virtual host (default: everywhere it is loaded).")
@click.pass_context
def unload(ctx: click.Context, name: str, host: str | None) -> None:
    """Unload module NAME and the modules that depend on it."""
    for row in _call(ctx, "module.unload", name=name, host=host):
        click.echo(f"unloaded {', '.join(row['unloaded'])} from {row['host']}")


@module.command("reload")
@click.argument("name")
@click.option("--host", help="Virtual host (default: everywhere it is loaded).")
@click.pass_context
def reload(ctx: click.Context, name: str, host: str | None) -> None:
    """Reload module NAME keeping its state (save/restore), with its dependants."""
    _report(_call(ctx, "module.reload", name=name, host=host), "reloaded", name)
