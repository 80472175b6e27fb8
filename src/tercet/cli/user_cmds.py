"""`tercet user ...`: accounts, straight on the storage (works with the server stopped).

With SQLite the server and the CLI can share the database file safely (WAL mode).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from tercet.auth.errors import UserExists, UserNotFound
from tercet.auth.internal import LOGINS_STORE, AccountInfo, InternalHashedProvider
from tercet.cli.server_cmds import load_config
from tercet.core import accounts
from tercet.core import permissions as roles
from tercet.core.config import Config
from tercet.core.durations import format_duration, parse_duration
from tercet.protocol.jid import JID, InvalidJID
from tercet.storage.manager import StorageConfig, StorageManager

T = TypeVar("T")


def _split(config: Config, jid: str) -> tuple[str, str]:
    try:
        parsed = JID.parse(jid)
    except InvalidJID as exc:
        raise click.BadParameter(f"{jid!r} is not a valid JID ({exc})") from None
    if parsed.node is None or parsed.resource is not None:
        raise click.BadParameter(f"expected user@host, got {jid!r}")
    if parsed.domain not in config.hosts:
        hosts = ", ".join(config.hosts) or "none"
        raise click.BadParameter(f"{parsed.domain} is not a virtual host here (hosts: {hosts})")
    return parsed.node, parsed.domain


def _with_storage(config: Config, fn: Callable[[StorageManager], Awaitable[T]]) -> T:
    async def main() -> T:
        storage = StorageManager(StorageConfig.from_option(config.get("storage")),
                                 config.data_path)
        try:
            await storage.ready()
            return await fn(storage)
        finally:
            await storage.close()
    return asyncio.run(main())


def _provider(config: Config, storage: StorageManager, host: str) -> InternalHashedProvider:
    return InternalHashedProvider(storage.open(host, "accounts", "keyval"),
                                  iterations=int(config.get("scram_iterations", host=host)),
                                  logins=storage.open(host, LOGINS_STORE, "map"))


def _notify(config: Config, cmd: str, **args: Any) -> None:
    """Tell a running server (so it can close sessions etc.); silent if it is not up."""
    sock = config.resolve_path("admin_socket")
    if sock is None or not sock.exists():
        return
    try:
        from tercet.cli.adminclient import AdminClient
        AdminClient(str(sock), timeout=10).call(cmd, **args)
    except Exception as exc:
        click.echo(f"note: the running server was not told ({exc})", err=True)


def ask_password(prompt: str) -> str:
    """Prompt twice, hidden, on a terminal; read one line when the password is piped in
    (``echo "$PW" | tercet user add ...``), where a hidden prompt cannot work and would
    only print a warning."""
    if sys.stdin.isatty():
        return str(click.prompt(prompt, hide_input=True, confirmation_prompt=True))
    return sys.stdin.readline().rstrip("\r\n")


@click.group()
def user() -> None:
    """Manage accounts: add, passwd, del, restore, list, disable, enable, role."""


@user.command("add")
@click.argument("jid")
@click.option("--password", help="The password (prompted for when not given).")
@click.pass_context
def add(ctx: click.Context, jid: str, password: str | None) -> None:
    """Create the account JID."""
    config = load_config(ctx)
    username, host = _split(config, jid)
    if password is None:
        password = ask_password("Password")
    if not password:
        raise click.BadParameter("the password may not be empty")

    async def go(storage: StorageManager) -> None:
        await _provider(config, storage, host).create_user(username, password)
    try:
        _with_storage(config, go)
    except UserExists:
        raise click.ClickException(f"{username}@{host} already exists") from None
    click.echo(f"created {username}@{host}")


@user.command("passwd")
@click.argument("jid")
@click.option("--password", help="The new password (prompted for when not given).")
@click.pass_context
def passwd(ctx: click.Context, jid: str, password: str | None) -> None:
    """Change the password of JID."""
    config = load_config(ctx)
    username, host = _split(config, jid)
    if password is None:
        password = ask_password("New password")

    async def go(storage: StorageManager) -> None:
        await _provider(config, storage, host).set_password(username, password)
    try:
        _with_storage(config, go)
    except UserNotFound:
        raise click.ClickException(f"{username}@{host} does not exist") from None
    click.echo(f"password changed for {username}@{host}")


@user.command("del")
@click.argument("jid")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--now", is_flag=True,
              help="Purge at once, even when user_deletion_grace_period is set.")
@click.pass_context
def delete(ctx: click.Context, jid: str, yes: bool, now: bool) -> None:
    """Delete JID and every piece of its data (roster, archive, vCard, ...).

    A running server is asked to do it (so the account's sessions are closed and its
    modules see the deletion); otherwise the storage is changed directly. Either way it is
    the same deletion as XEP-0077 cancel, tombstone included when mod_tombstones is on.
    With user_deletion_grace_period set the account is only locked until the period
    ends (`tercet user restore` brings it back), unless --now is given.
    """
    config = load_config(ctx)
    username, host = _split(config, jid)
    grace = 0.0 if now else accounts.grace_period(config, host)
    if not yes:
        what = (f"Delete {username}@{host}? Its data is purged in "
                f"{format_duration(grace)} unless restored" if grace else
                f"Delete {username}@{host} and all its data?")
        click.confirm(what, abort=True)
    if not _delete_live(config, f"{username}@{host}", now):
        _delete_offline(config, username, host, grace)
    if grace:
        click.echo(f"deleted {username}@{host}: locked, purged after "
                   f"{format_duration(grace)} (tercet user restore {username}@{host})")
    else:
        click.echo(f"deleted {username}@{host}")


@user.command("restore")
@click.argument("jid")
@click.pass_context
def restore(ctx: click.Context, jid: str) -> None:
    """Bring back JID, deleted less than user_deletion_grace_period ago."""
    config = load_config(ctx)
    username, host = _split(config, jid)

    async def go(storage: StorageManager) -> bool:
        return await accounts.restore_account(storage, _provider(config, storage, host),
                                              host, username)
    try:
        restored = _with_storage(config, go)
    except UserNotFound:
        raise click.ClickException(f"{username}@{host} does not exist (or was purged "
                                   "already)") from None
    if not restored:
        raise click.ClickException(f"{username}@{host} is not deleted")
    click.echo(f"restored {username}@{host}")


def _delete_live(config: Config, jid: str, now: bool) -> bool:
    """Ask a running server to delete ``jid``; False when no server answers."""
    sock = config.resolve_path("admin_socket")
    if sock is None or not sock.exists():
        return False
    from tercet.cli.adminclient import AdminClient, AdminError, AdminUnavailable
    try:
        with AdminClient(str(sock), timeout=60) as client:
            client.call("user.delete", jid=jid, now=now)
    except AdminUnavailable:
        return False
    except AdminError as exc:
        raise click.ClickException(str(exc)) from None
    return True


def _delete_offline(config: Config, username: str, host: str, grace: float) -> None:
    tombstone = accounts.TOMBSTONE_MODULE in config.modules_for_host(host)

    async def go(storage: StorageManager) -> bool:
        provider = _provider(config, storage, host)
        if not await provider.user_exists(username):
            return False
        if grace:
            await accounts.mark_deleted(storage, provider, host, username, time.time())
        else:
            await accounts.delete_offline(storage, host, username, tombstone=tombstone,
                                          when=time.time())
        return True
    if not _with_storage(config, go):
        raise click.ClickException(f"{username}@{host} does not exist")


def _since(text: str, now: float) -> float:
    """``--inactive-since``: a duration back from now ("30d") or a date ("2026-01-31",
    UTC) -> epoch seconds."""
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is neither a duration (30d) nor a date "
                                 "(2026-01-31)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _effective_role(config: Config, info: AccountInfo, host: str) -> str:
    """The role the account has on its host: from ``admins`` first, else stored."""
    bare = f"{info.username}@{host}"
    if bare in (config.get("admins") or ()):
        return roles.OPERATOR
    if bare in (config.get_host_only("admins", host) or ()):
        return roles.ADMIN
    if config.get("authentication", host=host) == "anonymous":
        return roles.GUEST
    return info.role or roles.DEFAULT_ROLE


def _row(config: Config, info: AccountInfo, host: str) -> dict[str, Any]:
    row = info.to_dict()
    del row["username"]
    return {"jid": f"{info.username}@{host}", **row,
            "role": _effective_role(config, info, host), "stored_role": info.role}


def _line(row: dict[str, Any]) -> str:
    notes = [row["role"]]
    if row["disabled"]:
        notes.append("disabled" + (f": {row['disabled_reason']}"
                                   if row["disabled_reason"] else ""))
    if row["deleted"] is not None:
        notes.append("deleted " + _date(row["deleted"]))
    notes.append("last login " + (_date(row["last_login"]) if row["last_login"]
                                  else "never"))
    return f"{row['jid']}  ({', '.join(notes)})"


def _date(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d %H:%M UTC")


@user.command("list")
@click.argument("host", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--disabled", is_flag=True, help="Only disabled accounts.")
@click.option("--deleted", is_flag=True, help="Only accounts deleted, awaiting purge.")
@click.option("--role", "role", help="Only accounts with this role.")
@click.option("--inactive-since", "inactive", metavar="DURATION|DATE",
              help="Only accounts without a login since then (30d, 2026-01-31).")
@click.pass_context
def list_users(ctx: click.Context, host: str | None, as_json: bool, disabled: bool,
               deleted: bool, role: str | None, inactive: str | None) -> None:
    """List accounts (of HOST, or of every virtual host), with role, state, last login."""
    config = load_config(ctx)
    hosts = [host] if host else config.hosts
    cutoff = None if inactive is None else _since(inactive, time.time())
    wanted = None if role is None else roles.canonical_role(role)

    def keep(row: dict[str, Any]) -> bool:
        return ((not disabled or row["disabled"]) and (not deleted or row["deleted"])
                and (wanted is None or row["role"] == wanted)
                and (cutoff is None or (row["last_login"] or 0) < cutoff))

    async def go(storage: StorageManager) -> list[dict[str, Any]]:
        out = []
        for h in hosts:
            provider = _provider(config, storage, h)
            for name in await provider.users():
                info = await provider.account_info(name)
                if info is not None:
                    out.append(_row(config, info, h))
        return [row for row in out if keep(row)]
    rows = _with_storage(config, go)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(_line(row))
    if not rows:
        click.echo("no accounts", err=True)


def _set_disabled(ctx: click.Context, jid: str, disabled: bool,
                  reason: str | None = None) -> None:
    config = load_config(ctx)
    username, host = _split(config, jid)

    async def go(storage: StorageManager) -> None:
        await _provider(config, storage, host).set_disabled(username, disabled, reason)
    try:
        _with_storage(config, go)
    except UserNotFound:
        raise click.ClickException(f"{username}@{host} does not exist") from None
    if disabled:
        _notify(config, "user.disabled", jid=f"{username}@{host}")
    click.echo(f"{'disabled' if disabled else 'enabled'} {username}@{host}")


@user.command("disable")
@click.argument("jid")
@click.option("--reason", help="Shown to the user when a login is refused.")
@click.pass_context
def disable(ctx: click.Context, jid: str, reason: str | None) -> None:
    """Disable JID: it cannot log in, and its sessions are closed."""
    _set_disabled(ctx, jid, True, reason)


@user.command("enable")
@click.argument("jid")
@click.pass_context
def enable(ctx: click.Context, jid: str) -> None:
    """Enable a disabled account again."""
    _set_disabled(ctx, jid, False)


@user.group("role")
def role_group() -> None:
    """Show or set the role of an account (docs/roles.md)."""


def _known_roles(config: Config) -> list[str]:
    custom, _problems = roles.parse_custom_roles(config.get("custom_roles") or [])
    return [*roles.BUILTIN_ROLES, *(r.name for r in custom)]


@role_group.command("set")
@click.argument("jid")
@click.argument("role")
@click.pass_context
def role_set(ctx: click.Context, jid: str, role: str) -> None:
    """Give JID the role ROLE, from its next login on (no restart needed)."""
    config = load_config(ctx)
    username, host = _split(config, jid)
    role = roles.canonical_role(role)
    known = _known_roles(config)
    if role not in known:
        raise click.BadParameter(f"unknown role {role!r} (roles: {', '.join(known)})")

    async def go(storage: StorageManager) -> None:
        await _provider(config, storage, host).set_role(username, role)
    try:
        _with_storage(config, go)
    except UserNotFound:
        raise click.ClickException(f"{username}@{host} does not exist") from None
    click.echo(f"{username}@{host} has the role {role} from its next login")


@role_group.command("show")
@click.argument("jid")
@click.pass_context
def role_show(ctx: click.Context, jid: str) -> None:
    """Print JID's role (the admins option counts first)."""
    config = load_config(ctx)
    username, host = _split(config, jid)

    async def go(storage: StorageManager) -> AccountInfo | None:
        return await _provider(config, storage, host).account_info(username)
    info = _with_storage(config, go)
    if info is None:
        raise click.ClickException(f"{username}@{host} does not exist")
    click.echo(_effective_role(config, info, host))


if __name__ == "__main__":
    sys.exit(user())
