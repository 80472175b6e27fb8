"""`tercet muc list|show|destroy`: the rooms of a running server's MUC components.

Talks to the admin socket (commands ``muc.list``, ``muc.show`` and ``muc.destroy``,
answered by the muc module). Exit codes: 0 done, 1 the server is unreachable or refused
the command (no such room, no MUC loaded).
"""

from __future__ import annotations

import json
from typing import Any

import click

from tercet.cli.server_cmds import call_server

COLUMNS = ("ROOM", "OCCUPANTS", "FLAGS", "NAME")


def _call(ctx: click.Context, cmd: str, **args: Any) -> Any:
    return call_server(ctx, cmd, missing="is a muc component configured?", **args)


@click.group()
def muc() -> None:
    """Inspect and destroy Multi-User Chat rooms."""


def _flags(row: dict[str, Any]) -> str:
    flags = [name for name, on in (("persistent", row["persistent"]),
                                   ("public", row["public"]),
                                   ("members-only", row["members_only"]),
                                   ("locked", row["locked"])) if on]
    return ",".join(flags) or "-"


def format_table(rows: list[dict[str, Any]]) -> str:
    """The rows of ``muc.list`` as aligned columns (one room a line)."""
    table = [COLUMNS] + [(r["jid"], str(r["occupants"]), _flags(r), r["name"] or "")
                         for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True))
                     .rstrip() for line in table)


@muc.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def list_(ctx: click.Context, as_json: bool) -> None:
    """List rooms: JID, occupants, flags (persistent, public, members-only, locked), name."""
    rows = _call(ctx, "muc.list")
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif rows:
        click.echo(format_table(rows))
    else:
        click.echo("no rooms")


@muc.command("show")
@click.argument("room")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def show(ctx: click.Context, room: str, as_json: bool) -> None:
    """Show ROOM (room@service): configuration, affiliations, occupants."""
    row = _call(ctx, "muc.show", room=room)
    if as_json:
        click.echo(json.dumps(row, indent=2))
        return
    click.echo(f"{row['jid']}  {row['name'] or '(no name)'}  [{_flags(row)}]")
    if row["subject"]:
        click.echo(f"subject: {row['subject']}")
    for name, value in sorted(row["config"].items()):
        click.echo(f"  {name} = {value}")
    click.echo("affiliations:")
    for jid, affiliation in sorted(row["affiliations"].items()):
        click.echo(f"  {affiliation:8} {jid}")
    click.echo(f"occupants ({row['occupants']}):")
    for occupant in row["occupants_list"]:
        click.echo(f"  {occupant['nick']}  {occupant['role']}  {occupant['jid']}"
                   f"  ({occupant['sessions']} session(s))")


@muc.command("destroy")
@click.argument("room")
@click.option("--reason", default=None, help="Told to the occupants (XEP-0045 §10.9).")
@click.pass_context
def destroy(ctx: click.Context, room: str, reason: str | None) -> None:
    """Destroy ROOM: occupants are told (with REASON), persistent data is removed."""
    args: dict[str, Any] = {"room": room}
    if reason:
        args["reason"] = reason
    result = _call(ctx, "muc.destroy", **args)
    click.echo(f"destroyed {result['destroyed']}")
