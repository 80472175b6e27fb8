"""`tercet invite create|list|revoke`: invitation tokens (XEP-0401, XEP-0379, XEP-0445).

With the server running, the commands go over the admin socket (``invite.create``,
``invite.list``, ``invite.revoke``, answered by the ``invites`` module of the host), so the
server logs them and sees them at once. With the server stopped they work on the storage
directly, in the same format (tercet.protocol.invites). docs/invites.md.

Exit codes: 0 done, 1 refused or (revoke) no such invitation, 2 usage error.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from tercet.auth.internal import InternalHashedProvider
from tercet.cli.adminclient import AdminClient, AdminError, AdminUnavailable
from tercet.cli.server_cmds import load_config
from tercet.core import permissions as roles
from tercet.core.config import Config
from tercet.protocol.invites import Invite, make_invite, parse_duration
from tercet.protocol.jid import JID, InvalidJID, nodeprep
from tercet.storage.base import MapStore
from tercet.storage.manager import StorageConfig, StorageManager

T = TypeVar("T")

STORE = "invites"
ADMIN_ROLE = roles.ADMIN


def _duration(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _hosts(config: Config, host: str | None) -> list[str]:
    """The hosts a command is about: ``host`` or every host with the invites module."""
    if host is not None:
        if host not in config.hosts:
            raise click.BadParameter(f"{host} is not a virtual host here "
                                     f"(hosts: {', '.join(config.hosts) or 'none'})",
                                     param_hint="--host")
        return [host]
    with_module = [h for h in config.hosts if "invites" in _modules(config, h)]
    return with_module or config.hosts[:1]


def _modules(config: Config, host: str) -> set[str]:
    found = set(config.modules_for_host(host))
    if found & {"invites_register", "invites_page"}:
        found.add("invites")  # they load it
    return found


class _Server:
    """The running server's admin socket, or None when it is not running."""

    def __init__(self, config: Config) -> None:
        self.path = config.resolve_path("admin_socket")

    def call(self, cmd: str, **args: Any) -> Any:
        """The command's answer; raises AdminUnavailable when the server is not running."""
        if self.path is None or not self.path.exists():
            raise AdminUnavailable("not running")
        with AdminClient(str(self.path), timeout=30) as client:
            try:
                return client.call(cmd, **args)
            except AdminUnavailable:
                raise
            except AdminError as exc:
                if "unknown command" in str(exc):
                    raise click.ClickException(
                        f"{exc} (is the invites module enabled on {args.get('host')}?)"
                    ) from None
                raise click.ClickException(str(exc)) from None


def _with_store(config: Config, host: str, fn: Callable[[MapStore], Awaitable[T]]) -> T:
    async def main() -> T:
        storage = StorageManager(StorageConfig.from_option(config.get("storage")),
                                 config.data_path)
        try:
            await storage.ready()
            return await fn(storage.open(host, STORE, "map"))
        finally:
            await storage.close()
    return asyncio.run(main())


def landing_url(config: Config, host: str, token: str) -> str | None:
    """The invitation page's URL as the running server would give it: the host's
    ``http_external_url`` (else its first HTTP port) and the invites_page base path."""
    if "invites_page" not in _modules(config, host):
        return None
    base = str(config.get("http_external_url", host) or "")
    if not base:
        ports = config.get("http_ports") or [5280]
        base = f"http://{host}:{ports[0]}"
    paths = config.get("http_paths") or {}
    path = str(paths.get("invites_page", "/invite")).rstrip("/")
    return f"{base.rstrip('/')}{path}/{token}"


@click.group()
def invite() -> None:
    """Create, list and revoke invitations to create an account (docs/invites.md)."""


@invite.command("create")
@click.option("--host", help="The virtual host (default: the first with invites enabled).")
@click.option("--admin", is_flag=True, help=f"The new account gets the role {ADMIN_ROLE}.")
@click.option("--role", help="The role the new account gets.")
@click.option("--group", "groups", multiple=True, help="A roster group (repeatable).")
@click.option("--ttl", callback=_duration, metavar="DURATION",
              help="Validity, e.g. 30s, 12h, 7d (default: invite_expiry, 7d).")
@click.option("--reusable", "uses", type=click.IntRange(1, 10_000), default=1,
              metavar="N", help="How many accounts it may create (default: 1).")
@click.option("--contact", "inviter", metavar="JID",
              help="A contact invitation from this user: the new account and JID become "
                   "mutual contacts (XEP-0379).")
@click.option("--username", help="Reserve this username for the new account.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def create(ctx: click.Context, host: str | None, admin: bool, role: str | None,
           groups: tuple[str, ...], ttl: int | None, uses: int, inviter: str | None,
           username: str | None, as_json: bool) -> None:
    """Create an invitation and print its xmpp: URI, landing page and expiry."""
    config = load_config(ctx)
    if admin and role:
        raise click.UsageError("--admin and --role both set a role: give one")
    target = _hosts(config, host)[0]
    if role is not None:
        role = _role(config, role)
    args: dict[str, Any] = {
        "host": target, "kind": "contact" if inviter else "account", "uses": uses,
        "role": ADMIN_ROLE if admin else role, "groups": list(groups), "inviter": inviter,
        "username": username, "created_by": "tercet invite"}
    if ttl is not None:
        args["ttl"] = ttl
    try:
        described = _Server(config).call("invite.create", **args)
    except AdminUnavailable:
        described = _create_offline(config, args)
    if as_json:
        click.echo(json.dumps(described, indent=2))
        return
    click.echo(described["uri"])
    if described.get("landing_url"):
        click.echo(f"landing page: {described['landing_url']}")
    click.echo(f"expires: {described['expires']}  uses: {described['uses_left']}")


def _create_offline(config: Config, args: dict[str, Any]) -> dict[str, Any]:
    host = args["host"]
    if "invites" not in _modules(config, host):
        click.echo(f"note: the invites modules are not enabled on {host}; enable "
                   "invites_register (and invites_page) for the invitation to work", err=True)
    ttl = args.get("ttl") or parse_duration(str(config.get("invite_expiry", host) or "7d"))
    try:
        made = make_invite(
            host, time.time(), kind=args["kind"], ttl=ttl, uses=args["uses"],
            inviter=_inviter(args["inviter"], host), username=_username(config,
                                                                        args["username"]),
            role=args["role"], groups=args["groups"], created_by=args["created_by"])
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None

    if made.inviter is not None and not _account_exists(config, host,
                                                        made.inviter.partition("@")[0]):
        raise click.ClickException(f"{made.inviter} has no account")

    async def store(invites: MapStore) -> None:
        await invites.set(None, made.token, made.to_json())
    _with_store(config, host, store)
    return made.describe(time.time(), landing_url(config, host, made.token),
                         "invites_register" in _modules(config, host))


def _role(config: Config, name: str) -> str:
    """The role's canonical name; BadParameter for a role the configuration lacks."""
    role = roles.canonical_role(name)
    custom, _problems = roles.parse_custom_roles(config.get("custom_roles") or [])
    known = [*roles.BUILTIN_ROLES, *(r.name for r in custom)]
    if role not in known:
        raise click.BadParameter(f"unknown role {name!r} (roles: {', '.join(known)})",
                                 param_hint="--role")
    return role


def _account_exists(config: Config, host: str, username: str) -> bool:
    async def main() -> bool:
        storage = StorageManager(StorageConfig.from_option(config.get("storage")),
                                 config.data_path)
        try:
            await storage.ready()
            accounts = InternalHashedProvider(storage.open(host, "accounts", "keyval"))
            return await accounts.user_exists(username)
        finally:
            await storage.close()
    return asyncio.run(main())


def _inviter(value: str | None, host: str) -> str | None:
    if not value:
        return None
    try:
        jid = JID.parse(value)
    except InvalidJID:
        raise click.BadParameter(f"{value!r} is not a JID", param_hint="--contact") from None
    if jid.node is None or jid.domain != host:
        raise click.BadParameter(f"the inviter must be an account of {host}",
                                 param_hint="--contact")
    return str(jid.bare)


def _username(config: Config, value: str | None) -> str | None:
    if not value:
        return None
    try:
        return nodeprep(value, str(config.get("jid_profile")))
    except InvalidJID:
        raise click.BadParameter(f"{value!r} is not a valid username",
                                 param_hint="--username") from None


@invite.command("list")
@click.option("--host", help="Only this virtual host.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def list_(ctx: click.Context, host: str | None, as_json: bool) -> None:
    """List the usable invitations (expired and used-up ones are gone)."""
    config = load_config(ctx)
    rows: list[dict[str, Any]] = []
    for target in _hosts(config, host):
        try:
            rows += _Server(config).call("invite.list", host=target)
        except AdminUnavailable:
            rows += _list_offline(config, target)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif not rows:
        click.echo("no invitations")
    for row in rows if not as_json else []:
        who = f" from {row['inviter']}" if row.get("inviter") else ""
        role = f" role {row['role']}" if row.get("role") else ""
        click.echo(f"{row['token']}  {row['host']}  {row['kind']}{who}{role}  "
                   f"expires {row['expires']}  uses {row['uses_left']}")


def _list_offline(config: Config, host: str) -> list[dict[str, Any]]:
    async def read(invites: MapStore) -> list[Invite]:
        found = [Invite.from_json(v) for v in (await invites.get_all(None)).values()]
        return sorted((i for i in found if i is not None), key=lambda i: i.created)
    now = time.time()
    ibr = "invites_register" in _modules(config, host)
    return [i.describe(now, landing_url(config, host, i.token), ibr)
            for i in _with_store(config, host, read) if i.usable(now)]


@invite.command("revoke")
@click.argument("token")
@click.option("--host", help="Only this virtual host.")
@click.pass_context
def revoke(ctx: click.Context, token: str, host: str | None) -> None:
    """Delete the invitation TOKEN, so it can no longer be used. Exits 1 if none."""
    config = load_config(ctx)
    targets = [host] if host else config.hosts
    for target in targets:
        _hosts(config, target)
        try:
            done = bool(_Server(config).call("invite.revoke", host=target,
                                             token=token)["revoked"])
        except AdminUnavailable:
            done = _revoke_offline(config, target, token)
        except click.ClickException:
            if host:
                raise
            continue  # no invites module on that host
        if done:
            click.echo(f"revoked {token} on {target}")
            return
    click.echo(f"no invitation {token}", err=True)
    raise SystemExit(1)


def _revoke_offline(config: Config, host: str, token: str) -> bool:
    async def drop(invites: MapStore) -> bool:
        if await invites.get(None, token) is None:
            return False
        await invites.set(None, token, None)
        return True
    return _with_store(config, host, drop)
