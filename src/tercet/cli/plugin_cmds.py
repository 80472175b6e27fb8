"""``tercet plugin ...`` and ``tercet repo ...``: install plugins, build and serve repositories.

Attached to the main command with ``cli.add_command(plugin)`` and ``cli.add_command(repo)``.
The commands read the configuration through the main group's context (``-c FILE``); embedders
and tests may instead put a :class:`PluginSettings` in ``ctx.obj``.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import tomlkit
from tomlkit.container import Container
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Array, InlineTable, Table, Whitespace
from tomlkit.toml_document import TOMLDocument

from tercet.cli.adminclient import AdminClient, AdminError, AdminUnavailable
from tercet.plugins.installer import (
    InstalledPlugin,
    Installer,
    InstallError,
    InstallResult,
    PluginInfo,
)
from tercet.plugins.repo import BuildError, build_repository, serve, server_url

if TYPE_CHECKING:
    from tercet.core.config import Config

__all__ = ["PluginSettings", "enable_module_in_toml", "plugin", "repo"]


def _progress(message: str) -> None:
    click.echo(message, err=True)


# -- settings ---------------------------------------------------------------------------------


@dataclass
class PluginSettings:
    """Everything the plugin commands need from the configuration and the installation."""

    plugin_path: Path
    repositories: list[str]
    tercet_version: str
    builtin_modules: set[str]
    loaded_modules: set[str] | None
    config_file: Path | None = None
    admin_socket: Path | None = None
    pip_options: list[str] = field(default_factory=list)
    admin_timeout: float = 10.0

    @classmethod
    def from_config(cls, config: Config) -> PluginSettings:
        plugin_path = config.resolve_path("installer_plugin_path")
        return cls(
            plugin_path=plugin_path or config.data_path / "plugins",
            repositories=list(config.get("plugin_repositories") or []),
            tercet_version=_tercet_version(),
            builtin_modules=builtin_modules(),
            loaded_modules=_configured_modules(config),
            config_file=config.path,
            admin_socket=config.resolve_path("admin_socket"),
        )

    def installer(self) -> Installer:
        return Installer(self.plugin_path, self.repositories, self.tercet_version,
                         self.builtin_modules, self.loaded_modules, pip_options=self.pip_options)


def builtin_modules() -> set[str]:
    """Names of the modules shipped with Tercet (the module manager's discovery)."""
    from tercet.core.modulemanager import builtin_names

    return builtin_names()


def _tercet_version() -> str:
    from tercet.cli.main import tercet_version  # late: main imports this module

    return tercet_version()


def _configured_modules(config: Config) -> set[str]:
    """Every module the configuration makes the server load (the conflicts check uses it)."""
    names = set(config.get("modules_enabled") or [])
    for host in config.hosts:
        names.update(config.modules_for_host(host))
    names.update(config.components.values())
    return names


def _settings(ctx: click.Context) -> PluginSettings:
    given = ctx.find_object(PluginSettings)
    if given is not None:
        return given
    root = ctx.find_root().obj
    if hasattr(root, "load_config"):
        config = root.load_config()  # the main group's CliContext; exits 1 on a bad config
    else:
        from tercet.core.config import Config, ConfigError

        path = os.environ.get("TERCET_CONFIG", "tercet.toml")
        try:
            config = Config.load(path)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
    return PluginSettings.from_config(config)


def _fail(exc: Exception) -> click.ClickException:
    """A one-line error, exit code 1."""
    return click.ClickException(" ".join(str(exc).split()))


# -- talking to a running server --------------------------------------------------------------


def _tell_server(settings: PluginSettings, cmd: str, args: dict[str, Any], later: str) -> bool:
    """Ask the running server to apply a change. False only if the server refused it."""
    if settings.admin_socket is None:
        _progress(f"note: no admin socket configured; {later}")
        return True
    try:
        with AdminClient(settings.admin_socket, timeout=settings.admin_timeout) as client:
            rows = client.call(cmd, **args)
    except AdminUnavailable as exc:
        _progress(f"note: {exc}; {later}")
        return True
    except AdminError as exc:
        _progress(f"the server could not {cmd} {args.get('name')}: {exc}")
        return False
    # module.load/reload answer one row per host; a module that raised is "failed" there.
    good = True
    for row in rows if isinstance(rows, list) else []:
        if isinstance(row, dict) and row.get("status") == "failed":
            good = False
            _progress(f"{cmd} {args.get('name')} failed on {row.get('host')}: {row.get('error')}")
        elif isinstance(row, dict):
            _progress(f"{cmd} {args.get('name')} on {row.get('host')}: done")
    return good


# -- plugin -----------------------------------------------------------------------------------


_NO_REPOSITORY = ("no plugin repository is configured: add plugin_repositories = "
                  '["https://<repository>/"] to the configuration file (see docs/plugins.md)')


@click.group()
def plugin() -> None:
    """Install, update and remove plugins from plugin repositories."""


@plugin.command()
@click.argument("spec", metavar="NAME[==VERSION]|PATH|URL")
@click.option("--replace-builtin", is_flag=True,
              help="Allow a plugin with the name of a built-in module to replace it.")
@click.option("--enable", is_flag=True,
              help="Add it to modules_enabled and load it on the running server.")
@click.option("--host", metavar="HOST",
              help="With --enable: enable it for this virtual host only.")
@click.pass_context
def install(ctx: click.Context, spec: str, replace_builtin: bool, enable: bool,
            host: str | None) -> None:
    """Install a plugin by name from the configured repositories, or from a wheel file,
    a project directory (PATH must contain a '/') or a wheel URL."""
    settings = _settings(ctx)
    try:
        result = settings.installer().install(spec, replace_builtin=replace_builtin,
                                              progress=_progress)
    except InstallError as exc:
        raise _fail(exc) from None
    _print_installed(result)
    if not enable:
        click.echo(_enable_hint(result.name, settings.config_file, host))
        return
    _enable(settings, result.name, host)


def _print_installed(result: InstallResult) -> None:
    if result.unchanged:
        return  # the installer already said "is already installed"
    for dep in result.also_installed:
        click.echo(f"Installed {dep.name} {dep.version} (required by {result.name})")
    was = f" (was {result.previous})" if result.previous and result.previous != result.version \
        else ""
    click.echo(f"Installed {result.name} {result.version}{was} into {result.path}")
    for note in result.notes:
        click.echo(f"note: {note}")


def _enable_hint(name: str, config_file: Path | None, host: str | None) -> str:
    where = f" in {config_file}" if config_file else ""
    table = f'[virtualhosts."{host}"]' if host else "the global section (above any [table])"
    return (f"To enable it, add it to modules_enabled in {table}{where}:\n"
            f"    modules_enabled = {_toml_list(_modules_with(name, config_file, host))}\n"
            f"or run: tercet plugin install --enable {name}")


def _toml_list(names: list[str]) -> str:
    return "[" + ", ".join(json.dumps(n) for n in names) + "]"


def _modules_with(name: str, config_file: Path | None, host: str | None) -> list[str]:
    """The whole list the line should hold: the file's current list for that table (the
    default list when the global one is not set), plus ``name``. A hint with "..." typed
    literally would replace the defaults with one module."""
    from tercet.core.config import DEFAULT_MODULES, Config, ConfigError
    current: list[str] = list(DEFAULT_MODULES) if host is None else []
    if config_file is not None and config_file.is_file():
        try:
            config = Config.load(config_file)
        except ConfigError:
            pass  # a broken file: `tercet check` says why; the defaults stand in
        else:
            found = (config.get_host_only("modules_enabled", host) if host
                     else config.get("modules_enabled"))
            current = list(found or current)
    return current + ([name] if name not in current else [])


def _enable(settings: PluginSettings, name: str, host: str | None) -> None:
    if settings.config_file is None:
        raise click.ClickException("no configuration file to enable the module in")
    try:
        changed = enable_module_in_file(settings.config_file, name, host)
    except ConfigEditError as exc:
        raise _fail(exc) from None
    where = f'[virtualhosts."{host}"] ' if host else ""
    click.echo(f"Added {name} to {where}modules_enabled in {settings.config_file}" if changed
               else f"{name} is already in modules_enabled in {settings.config_file}")
    later = f"{name} will be loaded at the next start"
    if not _tell_server(settings, "module.load", {"name": name, "host": host}, later):
        raise click.ClickException(f"{name} is installed and enabled, but did not load")


@plugin.command()
@click.argument("name")
@click.pass_context
def remove(ctx: click.Context, name: str) -> None:
    """Unload a plugin from the running server and remove it."""
    settings = _settings(ctx)
    installer = settings.installer()
    if name in {p.name for p in installer.list_installed(check_updates=False)}:
        _tell_server(settings, "module.unload", {"name": name}, "nothing to unload")
    try:
        removed = installer.remove(name, progress=_progress)
    except InstallError as exc:
        raise _fail(exc) from None
    click.echo(f"Removed {removed.name} {removed.version}")
    if settings.config_file is not None and _mentions_module(settings.config_file, removed.name):
        click.echo(f'note: {settings.config_file} still lists "{removed.name}"; remove it '
                   "from modules_enabled, or the server will report it missing")


def _mentions_module(config_file: Path, name: str) -> bool:
    try:
        return f'"{name}"' in config_file.read_text(encoding="utf-8")
    except OSError:
        return False


@plugin.command()
@click.argument("name", required=False)
@click.pass_context
def update(ctx: click.Context, name: str | None) -> None:
    """Update NAME (default: every plugin) to the newest compatible version, and reload it
    on the running server."""
    settings = _settings(ctx)
    try:
        results = settings.installer().update(name, progress=_progress)
    except InstallError as exc:
        raise _fail(exc) from None
    if not results:
        click.echo("Everything is up to date")
        return
    refused = []
    for result in results:
        click.echo(f"Updated {result.name} {result.previous} -> {result.version}")
        later = f"{result.name} {result.version} will be used at the next start"
        if not _tell_server(settings, "module.reload", {"name": result.name}, later):
            refused.append(result.name)
    if refused:
        raise click.ClickException(f"updated, but the server could not reload {', '.join(refused)}")


@plugin.command("list")
@click.option("--outdated", is_flag=True, help="Only plugins with a newer compatible version.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def list_(ctx: click.Context, outdated: bool, as_json: bool) -> None:
    """List installed plugins and whether updates are available."""
    settings = _settings(ctx)
    try:
        plugins = settings.installer().list_installed(progress=_progress)
    except InstallError as exc:
        raise _fail(exc) from None
    if outdated:
        plugins = [p for p in plugins if p.outdated]
    if as_json:
        click.echo(json.dumps([p.to_dict() for p in plugins], indent=2))
        return
    if not plugins:
        click.echo("No outdated plugins" if outdated else "No plugins installed")
    for p in plugins:
        click.echo(_installed_line(p))


def _installed_line(p: InstalledPlugin) -> str:
    newer = f"  (update available: {p.latest})" if p.latest else ""
    return f"{p.name:<20} {p.version:<12} {p.source}{newer}"


@plugin.command()
@click.argument("text")
@click.pass_context
def search(ctx: click.Context, text: str) -> None:
    """Search the repositories' plugins by name, summary and XEP."""
    settings = _settings(ctx)
    if not settings.repositories:
        raise click.ClickException(_NO_REPOSITORY)
    try:
        hits = settings.installer().search(text, progress=_progress)
    except InstallError as exc:
        raise _fail(exc) from None
    if not hits:
        # As grep: a search that finds nothing exits 1, so scripts can tell.
        click.echo(f"No plugin matches {text!r}")
        ctx.exit(1)
    for hit in hits:
        installed = f" [installed {hit.installed}]" if hit.installed else ""
        xeps = f" ({', '.join(hit.xeps)})" if hit.xeps else ""
        click.echo(f"{hit.name:<20} {hit.latest:<10} {hit.stage:<7} {hit.summary}{xeps}"
                   f"{installed}")


@plugin.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def info(ctx: click.Context, name: str, as_json: bool) -> None:
    """Show what the repositories and this server know about a plugin."""
    settings = _settings(ctx)
    try:
        details = settings.installer().info(name, progress=_progress)
    except InstallError as exc:
        raise _fail(exc) from None
    if as_json:
        click.echo(json.dumps(details.to_dict(), indent=2))
    else:
        click.echo(_format_info(details))


def _format_info(details: PluginInfo) -> str:
    lines = [details.name]
    entry = details.entry
    if entry is not None:
        meta = entry.latest.meta
        lines += [
            f"  summary:     {meta.summary}",
            f"  stage:       {meta.stage}",
            f"  XEPs:        {', '.join(meta.xeps) or 'none'}",
            f"  requires:    {', '.join(meta.requires) or 'nothing'}",
            f"  conflicts:   {', '.join(meta.conflicts) or 'nothing'}",
            f"  tercet:      {meta.tercet or 'any version'}",
            f"  versions:    {', '.join(r.version for r in entry.versions)}",
            f"  compatible:  {details.compatible or 'none for this server'}",
            f"  repository:  {details.repository}",
        ]
        if entry.docs and details.repository:
            lines.append(f"  docs:        {details.repository}{entry.docs}")
    installed = details.installed
    lines.append(f"  installed:   {installed.version} in {installed.path}" if installed
                 else "  installed:   no")
    return "\n".join(lines)


# -- repo -------------------------------------------------------------------------------------


@click.group()
def repo() -> None:
    """Build a plugin repository from plugin sources, and serve one for testing."""


@repo.command()
@click.argument("source_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--replace-existing", is_flag=True,
              help="Allow republishing a version with different content.")
@click.option("--isolation", is_flag=True,
              help="Build each plugin in an isolated environment (downloads its build backend).")
def build(source_dir: Path, out_dir: Path, replace_existing: bool, isolation: bool) -> None:
    """Build or update the repository in OUT_DIR from the plugin folders in SOURCE_DIR.
    Unchanged folders are not rebuilt; old versions stay in the repository."""
    try:
        report = build_repository(source_dir, out_dir, progress=_progress,
                                  replace_existing=replace_existing, isolation=isolation)
    except BuildError as exc:
        raise _fail(exc) from None
    click.echo(f"{out_dir}: {len(report.built)} built, {len(report.unchanged)} unchanged, "
               f"{len(report.failed)} failed")
    if not report.ok:
        raise click.ClickException("failed: " + "; ".join(f"{f}: {m}" for f, m in report.failed))


@repo.command("serve")
@click.argument("out_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port on 127.0.0.1 (0 picks a free one).")
def serve_cmd(out_dir: Path, port: int) -> None:
    """Serve a built repository on loopback, for testing, until Ctrl-C."""
    try:
        server = serve(out_dir, port=port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None
    url = server_url(server)
    click.echo(f"Serving {out_dir} at {url} (Ctrl-C to stop)")
    click.echo(f'Use it with: plugin_repositories = ["{url}"]')
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


# -- editing modules_enabled in the TOML file -------------------------------------------------

_KEY = "modules_enabled"
_WIDTH = 88  # a new array longer than this goes one item per line


class ConfigEditError(Exception):
    """The configuration file could not be edited safely; nothing was written."""


def enable_module_in_file(path: Path, name: str, host: str | None = None) -> bool:
    """Add *name* to ``modules_enabled`` (global, or of ``[virtualhosts.HOST]``) in the file.

    Returns False when it is already there. Comments and layout stay, and the file is
    replaced atomically with the same permissions.
    """
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigEditError(f"cannot read {path}: {exc.strerror}") from None
    try:
        new_text = enable_module_in_toml(text, name, host)
    except ConfigEditError as exc:
        raise ConfigEditError(f"{path}: {exc}") from None
    if new_text == text:
        return False
    tmp = path.with_name(f".{path.name}.tercet-tmp")
    try:
        with tmp.open("w", encoding="utf-8", newline="") as fh:
            fh.write(new_text)
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigEditError(f"cannot write {path}: {exc.strerror}") from None
    return True


def enable_module_in_toml(text: str, name: str, host: str | None = None) -> str:
    """*text* with *name* appended to the right ``modules_enabled`` array (tomlkit edits it,
    keeping comments and layout).

    The result is parsed back with the server's parser and compared with the intended
    change; any other outcome raises ConfigEditError instead.
    """
    try:
        before = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigEditError(f"the configuration is not valid TOML: {exc}") from None
    table_path, current, default = _target(before, host)
    if name in current:
        return text
    nl = "\r\n" if "\r\n" in text and "\n" not in text.replace("\r\n", "") else "\n"
    where = f'{_KEY} in [{_dotted(table_path)}]' if table_path else _KEY
    try:
        doc = tomlkit.parse(text)
        _add_module(_table(doc, table_path), name, default, nl, where)
        new_text = doc.as_string()
        if nl == "\r\n":  # tomlkit writes "\n" in the lines it adds
            new_text = re.sub(r"(?<!\r)\n", "\r\n", new_text)
        after: dict[str, Any] | None = tomllib.loads(new_text)
    except (TOMLKitError, tomllib.TOMLDecodeError):
        after = None
    if after != _with_modules(before, table_path, [*current, name]):
        raise ConfigEditError(f'could not edit {where} safely; add "{name}" by hand')
    return new_text


def _target(data: dict[str, Any], host: str | None) -> tuple[tuple[str, ...], list[str], list[str]]:
    """(table path, its current modules_enabled, the list to write if the key is missing)."""
    if host is None:
        from tercet.core.config import DEFAULT_MODULES

        current = data.get(_KEY)
        default = list(DEFAULT_MODULES)  # an absent key means the default set: keep it
        return (), list(current) if isinstance(current, list) else default, default
    from tercet.core.config import normalize_host

    wanted = _normal(host, normalize_host)
    for raw_name, table in (data.get("virtualhosts") or {}).items():
        if _normal(raw_name, normalize_host) == wanted and isinstance(table, dict):
            current = table.get(_KEY)
            current = list(current) if isinstance(current, list) else []
            return ("virtualhosts", raw_name), current, []
    raise ConfigEditError(f'there is no [virtualhosts."{host}"] table in the configuration')


def _normal(host: str, normalize: Callable[[str], str]) -> str:
    try:
        return normalize(host)
    except ValueError:
        return host.lower()


def _dotted(table_path: tuple[str, ...]) -> str:
    return ".".join(tomlkit.key(part).as_string() for part in table_path)


def _with_modules(data: dict[str, Any], table_path: tuple[str, ...],
                  modules: list[str]) -> dict[str, Any]:
    """A copy of *data* with modules_enabled of *table_path* set to *modules*."""
    if not table_path:
        return {**data, _KEY: modules}
    head, *rest = table_path
    return {**data, head: _with_modules(data[head], tuple(rest), modules)}


def _table(doc: TOMLDocument, table_path: tuple[str, ...]) -> Container | Table | InlineTable:
    """The tomlkit table at *table_path* (tomllib has already checked that it exists)."""
    node: object = doc
    for part in table_path:
        node = node[part] if isinstance(node, MutableMapping) else None
    if not isinstance(node, Container | Table | InlineTable):
        raise TOMLKitError(f"unexpected {type(node).__name__} at {_dotted(table_path)}")
    return node


def _add_module(table: Container | Table | InlineTable, name: str, default: list[str],
                nl: str, where: str) -> None:
    if isinstance(table, InlineTable):  # left as the operator wrote it, on one line
        raise ConfigEditError(f'{where} is in an inline table; add "{name}" by hand')
    existing = table.get(_KEY)
    if isinstance(existing, Array):
        existing.append(name)
    elif existing is not None:
        raise ConfigEditError(f"{where} is not an array")
    elif isinstance(table, Container):
        _insert_global(table, _new_array([*default, name]), nl)
    elif isinstance(table, Table) and table.value.body:
        # Right below the table's header. tomlkit can only append, which would put the key
        # under comments that introduce the next table (python-poetry/tomlkit#7, #295).
        table.value._insert_at(0, _KEY, _new_array([name]))
    else:
        table.add(_KEY, _new_array([name]))


def _insert_global(doc: Container, array: Array, nl: str) -> None:
    """Add the key after the last global key, above the comments that introduce the first
    table, with a blank line on either side."""
    body = doc.body
    at = 0
    for i, (key, item) in enumerate(body):
        if isinstance(item, Table | AoT) and key is not None and not key.is_dotted():
            break
        if key is not None:
            at = i + 1
    before = body[at - 1][1] if at else None
    if before is not None and not isinstance(before, Table | AoT):
        before.trivia.trail = before.trivia.trail.rstrip("\r\n") + nl + nl
    follows_blank = at >= len(body) or isinstance(body[at][1], Whitespace)
    array.trivia.trail = nl if follows_blank else nl + nl
    if at < len(body):
        doc._insert_at(at, _KEY, array)  # see _add_module on tomlkit's missing insert
    else:
        doc.add(_KEY, array)


def _new_array(modules: list[str]) -> Array:
    array = tomlkit.array()
    array.extend(modules)
    return array.multiline(len(f"{_KEY} = {array.as_string()}") > _WIDTH)
