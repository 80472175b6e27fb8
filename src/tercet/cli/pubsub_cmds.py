"""`tercet pubsub nodes|items|delete`: the publish-subscribe nodes of a running server.

Talks to the admin socket (commands ``pubsub.nodes``, ``pubsub.items`` and
``pubsub.delete``, answered by the pubsub component and PEP). SERVICE is a pubsub
component's domain or, for PEP, an account's bare JID. Exit codes: 0 done, 1 the server is
unreachable or refused the command (no such service or node).
"""

from __future__ import annotations

import json
from typing import Any

import click

from tercet.cli.server_cmds import call_server


def _call(ctx: click.Context, cmd: str, **args: Any) -> Any:
    return call_server(ctx, cmd, missing="is a pubsub component or pep loaded?", **args)


@click.group()
def pubsub() -> None:
    """Inspect and delete publish-subscribe (XEP-0060) and PEP nodes."""


def _table(columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    table = [columns, *rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True))
                     .rstrip() for line in table)


@pubsub.command("nodes")
@click.argument("service", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def nodes(ctx: click.Context, service: str | None, as_json: bool) -> None:
    """List the nodes of SERVICE (default: every pubsub component): title, access model,
    item and subscription counts, owners."""
    rows = _call(ctx, "pubsub.nodes", service=service)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif rows:
        click.echo(_table(("SERVICE", "NODE", "TITLE", "ACCESS", "ITEMS", "SUBS", "OWNERS"),
                          [(r["service"], r["node"], r["title"] or "-", r["access_model"],
                            str(r["items"]), str(r["subscriptions"]),
                            ",".join(r["owners"]) or "-") for r in rows]))
    else:
        click.echo("no nodes")


@pubsub.command("items")
@click.argument("service")
@click.argument("node")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def items(ctx: click.Context, service: str, node: str, as_json: bool) -> None:
    """List the items of NODE at SERVICE, oldest first, with their payloads."""
    rows = _call(ctx, "pubsub.items", service=service, node=node)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no items")
    for row in rows:
        click.echo(f"{row['id']}  {row['publisher'] or '-'}")
        if row["payload"]:
            click.echo(f"  {row['payload']}")


@pubsub.command("delete")
@click.argument("service")
@click.argument("node")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def delete(ctx: click.Context, service: str, node: str, as_json: bool) -> None:
    """Delete NODE at SERVICE with its items; subscribers are notified."""
    result = _call(ctx, "pubsub.delete", service=service, node=node)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(f"deleted node {result['node']} of {result['service']}")
