"""`tercet s2s list|close`: the server-to-server streams of a running server.

Talks to the admin socket (commands ``s2s.list`` and ``s2s.close``, answered by the s2s
module). Exit codes: 0 done, 1 the server is unreachable, refused the command, or (close)
had no stream with that domain.
"""

from __future__ import annotations

import json
from typing import Any

import click

from tercet.cli.server_cmds import call_server

COLUMNS = ("DIR", "LOCAL", "REMOTE", "PEER", "TLS", "AUTH", "CERT", "AGE", "IDLE", "QUEUED")


def _call(ctx: click.Context, cmd: str, **args: Any) -> Any:
    return call_server(ctx, cmd, missing="is the s2s module loaded?", **args)


@click.group()
def s2s() -> None:
    """Inspect and close server-to-server (federation) streams."""


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.0f}h"


def _cells(row: dict[str, Any]) -> tuple[str, ...]:
    remote = ",".join(row["authenticated_domains"]) or row["remote_domain"] or "?"
    tls = row["tls_version"] or "plain"
    if row["tls_cipher"]:
        tls += f" {row['tls_cipher']}"
    if row["id"] is None:
        tls = "(connecting)"
    queued = row["queued"]
    direction = row["direction"] + ("+bidi" if row.get("bidi") else "")
    return (direction, row["local_domain"] or "?", remote, row["peer"] or "-", tls,
            row["auth_method"] or "none", row["cert_status"] or "-", _duration(row["age"]),
            _duration(row["idle"]), "-" if queued is None else str(queued))


def format_table(rows: list[dict[str, Any]]) -> str:
    """The rows of ``s2s.list`` as aligned columns (one stream a line)."""
    table = [COLUMNS] + [_cells(r) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True))
                     .rstrip() for line in table)


@s2s.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def list_(ctx: click.Context, as_json: bool) -> None:
    """List s2s streams: direction, domains, peer address, TLS, authentication method
    (EXTERNAL, dialback, none yet), certificate status, age, idle time and queued stanzas."""
    rows = _call(ctx, "s2s.list")
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif rows:
        click.echo(format_table(rows))
    else:
        click.echo("no server-to-server streams")


@s2s.command("close")
@click.argument("domain")
@click.option("--condition", type=click.Choice(["reset", "policy-violation"]),
              default="reset", show_default=True,
              help="Stream error sent to the peer (RFC 6120 §4.9.3).")
@click.pass_context
def close(ctx: click.Context, domain: str, condition: str) -> None:
    """Close every stream with DOMAIN (both directions) with a stream error. The peer may
    reconnect when it next has something to send. Exits 1 if there was none."""
    result = _call(ctx, "s2s.close", domain=domain, condition=condition)
    closed = int(result["closed"])
    if not closed:
        click.echo(f"no s2s stream with {result['domain']}", err=True)
        raise SystemExit(1)
    click.echo(f"closed {closed} stream(s) with {result['domain']} ({result['condition']})")
