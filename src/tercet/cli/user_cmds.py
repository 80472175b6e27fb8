"""`tercet user ...`: accounts, straight on the storage (works with the server stopped).

With SQLite the server and the CLI can share the database file safely (WAL mode).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from tercet.auth.errors import UserExists, UserNotFound
from tercet.auth.internal import InternalHashedProvider
from tercet.cli.server_cmds import load_config
from tercet.core import accounts
from tercet.core.config import Config
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
                                  iterations=int(config.get("scram_iterations", host=host)))


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
    """Manage accounts: add, passwd, del, list, disable, enable."""


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
@click.pass_context
def delete(ctx: click.Context, jid: str, yes: bool) -> None:
    """Delete JID and every piece of its data (roster, archive, vCard, ...).

    A running server is asked to do it (so the account's sessions are closed and its
    modules see the deletion); otherwise the storage is changed directly. Either way it is
    the same deletion as XEP-0077 cancel, tombstone included when mod_tombstones is on.
    """
    config = load_config(ctx)
    username, host = _split(config, jid)
    if not yes:
        click.confirm(f"Delete {username}@{host} and all its data?", abort=True)
    if not _delete_live(config, f"{username}@{host}"):
        _delete_offline(config, username, host)
    click.echo(f"deleted {username}@{host}")


def _delete_live(config: Config, jid: str) -> bool:
    """Ask a running server to delete ``jid``; False when no server answers."""
    sock = config.resolve_path("admin_socket")
    if sock is None or not sock.exists():
        return False
    from tercet.cli.adminclient import AdminClient, AdminError, AdminUnavailable
    try:
        with AdminClient(str(sock), timeout=60) as client:
            client.call("user.delete", jid=jid)
    except AdminUnavailable:
        return False
    except AdminError as exc:
        raise click.ClickException(str(exc)) from None
    return True


def _delete_offline(config: Config, username: str, host: str) -> None:
    tombstone = accounts.TOMBSTONE_MODULE in config.modules_for_host(host)

    async def go(storage: StorageManager) -> bool:
        if not await _provider(config, storage, host).user_exists(username):
            return False
        await accounts.delete_offline(storage, host, username, tombstone=tombstone,
                                      when=time.time())
        return True
    if not _with_storage(config, go):
        raise click.ClickException(f"{username}@{host} does not exist")


@user.command("list")
@click.argument("host", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def list_users(ctx: click.Context, host: str | None, as_json: bool) -> None:
    """List accounts (of HOST, or of every virtual host)."""
    config = load_config(ctx)
    hosts = [host] if host else config.hosts

    async def go(storage: StorageManager) -> list[dict[str, Any]]:
        out = []
        for h in hosts:
            provider = _provider(config, storage, h)
            for name in sorted(await provider.users()):
                out.append({"jid": f"{name}@{h}",
                            "disabled": await provider.is_disabled(name)})
        return out
    rows = _with_storage(config, go)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(row["jid"] + ("  (disabled)" if row["disabled"] else ""))
    if not rows:
        click.echo("no accounts", err=True)


def _set_disabled(ctx: click.Context, jid: str, disabled: bool) -> None:
    config = load_config(ctx)
    username, host = _split(config, jid)

    async def go(storage: StorageManager) -> None:
        await _provider(config, storage, host).set_disabled(username, disabled)
    try:
        _with_storage(config, go)
    except UserNotFound:
        raise click.ClickException(f"{username}@{host} does not exist") from None
    if disabled:
        _notify(config, "user.disabled", jid=f"{username}@{host}")
    click.echo(f"{'disabled' if disabled else 'enabled'} {username}@{host}")


@user.command("disable")
@click.argument("jid")
@click.pass_context
def disable(ctx: click.Context, jid: str) -> None:
    """Disable JID: it cannot log in, and its sessions are closed."""
    _set_disabled(ctx, jid, True)


@user.command("enable")
@click.argument("jid")
@click.pass_context
def enable(ctx: click.Context, jid: str) -> None:
    """Enable a disabled account again."""
    _set_disabled(ctx, jid, False)


if __name__ == "__main__":
    sys.exit(user())
