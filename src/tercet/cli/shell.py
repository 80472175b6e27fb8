"""`tercet shell`: the admin shell, a thin client of the admin socket.

Every shell command is one admin-socket command (``c2s list`` is ``c2s.list``); this file
only parses the line, asks the server, and prints the answer as text or JSON. Commands the
table below does not know (a plugin's) still work as ``group verb key=value ...``.

Interactive: ``tercet shell`` (history, tab completion of commands, online JIDs, hosts and
module names, ``help``). One-shot: ``tercet shell "c2s list"``; with ``--json`` the result
is printed as JSON. Exit codes: 0 done, 1 the command failed, 2 usage error, 3 the server
is not running (nothing answers on its admin socket). docs/shell.md is the reference.
"""

from __future__ import annotations

import getpass
import json
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from tercet.cli.adminclient import AdminClient, AdminError, AdminUnavailable
from tercet.cli.server_cmds import load_config

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_RUNNING = 0, 1, 2, 3
#: Log levels ``watch log`` takes (the server's list; repeated for completion).
LEVELS = ("debug", "info", "warning", "error", "critical")
#: Seconds the completion data (online JIDs, modules) is reused before asking again.
COMPLETION_TTL = 5.0
#: Seconds one command may take (a reload loads modules).
CALL_TIMEOUT = 60.0


class UsageError(Exception):
    """The line does not parse: exit code 2 in one-shot use."""


@dataclass(frozen=True, slots=True)
class Param:
    """One positional argument: ``name`` (the admin argument), optional, taking the rest
    of the line, and what completes it (``jid``, ``host``, ``module``, ``level``...)."""

    name: str
    optional: bool = False
    rest: bool = False
    kind: str = ""


@dataclass(frozen=True, slots=True)
class Spec:
    """A shell command: its words, the admin command, its arguments and help."""

    words: str
    cmd: str
    usage: str
    help: str
    columns: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()      # "--bodies" (boolean) or "--type=" (takes a value)
    secret: str | None = None        # an argument read hidden, never from the line
    confirm: bool = False            # asks first; one-shot needs --yes
    watch: bool = False              # streams events until interrupted

    @property
    def params(self) -> list[Param]:
        out = []
        for token in self.usage.split():
            if token.startswith("--"):
                continue
            optional = token.startswith("[")
            word = token.strip("[]")
            rest = word.endswith("...")
            name = word.rstrip(".").lower()
            kind = {"jid": "jid", "host": "host", "module": "module", "level": "level",
                    "room": "room"}.get(name, "")
            out.append(Param(name, optional, rest, kind))
        return out


def _s(words: str, cmd: str, usage: str, help_: str, **kw: Any) -> Spec:
    return Spec(words, cmd, usage, help_, **kw)


SPECS: list[Spec] = [
    _s("server version", "server.version", "", "The server software and version."),
    _s("server uptime", "server.uptime", "", "How long the server has been running."),
    _s("server memory", "server.memory", "", "Resident memory (RSS) now and at its peak."),
    _s("server status", "server.status", "", "Pid, hosts, sessions and listeners."),
    _s("server reload", "server.reload", "",
       "Re-read the configuration and apply what changed."),
    _s("server shutdown", "server.shutdown", "[REASON...]",
       "Stop the server (clients get system-shutdown).", confirm=True),
    _s("module list", "module.list", "[HOST]", "Loaded modules, per host.",
       columns=("name", "host", "status", "origin", "error")),
    _s("module load", "module.load", "MODULE [HOST]", "Load a module (every host if none).",
       columns=("host", "status", "error")),
    _s("module unload", "module.unload", "MODULE [HOST]", "Unload a module."),
    _s("module reload", "module.reload", "MODULE [HOST]", "Reload a module, keeping state.",
       columns=("host", "status", "error")),
    _s("module info", "module.info", "MODULE",
       "A module: where it comes from, its summary, and its status per host."),
    _s("config reload", "config.reload", "",
       "Re-read the configuration and apply what changed."),
    _s("config get", "config.get", "OPTION [HOST]", "An option's value in force."),
    _s("c2s list", "c2s.list", "[HOST]",
       "Client sessions: full JID, peer address, TLS, client software, features in use.",
       columns=("jid", "peer", "tls", "client", "features")),
    _s("c2s show", "c2s.show", "JID", "Every detail of an account's sessions (or one)."),
    _s("c2s close", "c2s.close", "JID [REASON...]",
       "Close an account's sessions (or one resource's) with a reason."),
    _s("s2s list", "s2s.list", "", "Server-to-server streams.",
       columns=("direction", "local_domain", "remote_domain", "peer", "tls_version",
                "auth_method", "cert_status")),
    _s("s2s close", "s2s.close", "DOMAIN", "Close every stream with a remote domain."),
    _s("host list", "host.list", "", "Hosted domains, their kind and whether active.",
       columns=("host", "kind", "active", "sessions", "modules")),
    _s("host activate", "host.activate", "HOST", "Accept client logins on HOST again."),
    _s("host deactivate", "host.deactivate", "HOST",
       "Close HOST's client sessions and refuse logins until activated (or a restart)."),
    _s("user create", "user.create", "JID", "Create an account (the password is asked).",
       secret="password"),
    _s("user password", "user.password", "JID",
       "Set an account's password (asked, never shown).", secret="password"),
    _s("user delete", "user.delete", "JID", "Delete an account and all its data.",
       confirm=True),
    _s("user disable", "user.disable", "JID [REASON...]",
       "Disable an account: it cannot log in, its sessions are closed."),
    _s("user enable", "user.enable", "JID", "Enable a disabled account."),
    _s("user list", "user.list", "[HOST]", "Accounts (of HOST, or every host).",
       columns=("jid", "disabled", "online")),
    _s("user show", "user.show", "JID", "An account: disabled, role, online resources."),
    _s("user roles", "user.roles", "JID", "An account's role."),
    _s("role list", "role.list", "", "Every role and what it inherits from.",
       columns=("name", "inherits", "builtin")),
    _s("role show", "role.show", "ROLE", "A role's permissions."),
    _s("muc list", "muc.list", "", "Rooms of every MUC component.",
       columns=("jid", "occupants", "name")),
    _s("muc occupants", "muc.occupants", "ROOM", "A room's occupants.",
       columns=("nick", "role", "affiliation", "jid")),
    _s("muc affiliations", "muc.affiliations", "ROOM", "A room's affiliations.",
       columns=("jid", "affiliation")),
    _s("muc destroy", "muc.destroy", "ROOM [REASON...]", "Destroy a room.", confirm=True),
    _s("pubsub nodes", "pubsub.nodes", "[SERVICE]", "Nodes of a pubsub service (or all).",
       columns=("service", "node", "items", "subscriptions", "access_model")),
    _s("pubsub items", "pubsub.items", "SERVICE NODE", "Items of a node.",
       columns=("id", "publisher")),
    _s("pubsub delete", "pubsub.delete", "SERVICE NODE", "Delete a node.", confirm=True),
    _s("watch log", "watch.log", "[LEVEL] [MODULE]",
       "Live log lines (info and above unless LEVEL), of one MODULE if given.", watch=True),
    _s("watch stanzas", "watch.stanzas", "JID",
       "Live stanzas to and from an account (or resource); bodies only with --bodies.",
       flags=("--bodies",), watch=True),
    _s("announce", "announce", "[HOST] MESSAGE...",
       "Send a message to every online user of HOST (or of every host).",
       flags=("--type=",)),
    _s("stats", "stats", "", "Sessions, connections, stanza counters, uptime, memory."),
]
BY_WORDS = {spec.words: spec for spec in SPECS}
GROUPS = sorted({spec.words.split()[0] for spec in SPECS} | {"help", "exit"})


# -- parsing ------------------------------------------------------------------------------
@dataclass(slots=True)
class Parsed:
    spec: Spec | None
    cmd: str
    args: dict[str, Any]
    yes: bool = False


def find_spec(words: list[str]) -> tuple[Spec | None, int]:
    """The spec the line's first words name, and how many words that took."""
    if len(words) >= 2 and f"{words[0]} {words[1]}" in BY_WORDS:
        return BY_WORDS[f"{words[0]} {words[1]}"], 2
    if words and words[0] in BY_WORDS:
        return BY_WORDS[words[0]], 1
    return None, 0


def parse(line: str, hosts: Callable[[], Iterable[str]] = tuple) -> Parsed:
    """The admin command and arguments of a shell line (UsageError when it is wrong).
    ``hosts`` names the server's hosts, to tell ``announce HOST MESSAGE`` from
    ``announce MESSAGE``."""
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not words:
        raise UsageError("empty command")
    spec, used = find_spec(words)
    if spec is None:
        return _generic(words)
    rest, flags, yes = _flags(spec, words[used:])
    args = _positionals(spec, rest, hosts)
    args.update(flags)
    if "module" in args and spec.cmd.startswith("module."):
        args["name"] = args.pop("module")  # the module.* commands call it "name"
    return Parsed(spec, spec.cmd, args, yes)


def _generic(words: list[str]) -> Parsed:
    """``group verb key=value ...`` for a command the shell has no spec for."""
    if len(words) < 2 and "." not in words[0]:
        raise UsageError(f"unknown command {words[0]!r}; try 'help'")
    if "." in words[0]:
        cmd, rest = words[0], words[1:]
    else:
        cmd, rest = f"{words[0]}.{words[1]}", words[2:]
    args: dict[str, Any] = {}
    for word in rest:
        key, eq, value = word.partition("=")
        if not eq:
            raise UsageError(f"{cmd}: arguments are key=value, got {word!r}")
        args[key] = value
    return Parsed(None, cmd, args)


def _flags(spec: Spec, words: list[str]) -> tuple[list[str], dict[str, Any], bool]:
    rest: list[str] = []
    flags: dict[str, Any] = {}
    yes = False
    it = iter(words)
    for word in it:
        if word == "--yes" and spec.confirm:
            yes = True
        elif word in spec.flags:
            flags[word[2:]] = True
        elif word.startswith("--") and word.split("=")[0] + "=" in spec.flags:
            name, eq, value = word[2:].partition("=")
            flags[name] = value if eq else next(it, "")
        elif word.startswith("--") and len(word) > 2:
            raise UsageError(f"{spec.words}: unknown option {word}; usage: {usage(spec)}")
        else:
            rest.append(word)
    return rest, flags, yes


def _positionals(spec: Spec, words: list[str], hosts: Callable[[], Iterable[str]]
                 ) -> dict[str, Any]:
    params = spec.params
    args: dict[str, Any] = {}
    required = sum(1 for p in params if not p.optional)
    spare = len(words) - required
    for index, param in enumerate(params):
        if param.rest:
            if not words and not param.optional:
                raise UsageError(f"{spec.words}: missing {param.name.upper()}; "
                                 f"usage: {usage(spec)}")
            if words:
                args[param.name] = " ".join(words)
            words = []
            continue
        if param.optional:
            ambiguous = any(p.rest for p in params[index + 1:])
            if not words or spare <= 0 or not _fits(param, words[0], hosts, ambiguous):
                continue
            spare -= 1
        elif not words:
            raise UsageError(f"{spec.words}: missing {param.name.upper()}; "
                             f"usage: {usage(spec)}")
        args[param.name] = words.pop(0)
    if words:
        raise UsageError(f"{spec.words}: too many arguments; usage: {usage(spec)}")
    return args


def _fits(param: Param, word: str, hosts: Callable[[], Iterable[str]],
          ambiguous: bool) -> bool:
    """Whether an optional argument takes ``word``: a level must be a level, and a host
    followed by free text (``announce [HOST] MESSAGE...``) one of the server's."""
    if param.kind == "level":
        return word.lower() in LEVELS
    if param.kind == "host" and ambiguous:
        known = list(hosts())
        return not known or word in known
    return True


def usage(spec: Spec) -> str:
    extra = " [--yes]" if spec.confirm else ""
    flags = " ".join(f"[{f}{f[2:-1].upper()}]" if f.endswith("=") else f"[{f}]"
                     for f in spec.flags)
    text = f"{spec.words} {spec.usage}".strip()
    return f"{text} {flags}".strip() + extra


# -- output -------------------------------------------------------------------------------
def _duration(seconds: float) -> str:
    seconds = int(seconds)
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    parts = [f"{days}d"] if days else []
    if days or hours:
        parts.append(f"{hours}h")
    if days or hours or minutes:
        parts.append(f"{minutes}m")
    parts.append(f"{seconds}s")
    return " ".join(parts)


def _bytes(value: Any) -> str:
    if not isinstance(value, int | float):
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{value} B"
        value /= 1024
    return str(value)


def _cell(key: str, row: dict[str, Any]) -> str:
    if key == "tls":
        version = row.get("tls_version")
        return f"{version} {row.get('tls_cipher') or ''}".strip() if version else "plain"
    value = row.get(key)
    if isinstance(value, dict):
        return ",".join(k if v is True else f"{k}={v}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "-"
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def table(rows: list[dict[str, Any]], columns: Iterable[str]) -> str:
    cols = list(columns)
    lines = [[c.upper() for c in cols]] + [[_cell(c, r) for c in cols] for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(cols))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True))
                     .rstrip() for line in lines)


def _mapping(value: dict[str, Any], indent: str = "") -> str:
    out = []
    for key, item in value.items():
        if key in ("rss", "peak_rss"):
            item = _bytes(item)
        elif key == "uptime" and isinstance(item, int | float):
            item = _duration(item)
        elif key == "started" and isinstance(item, int | float):
            item = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(item))
        elif isinstance(item, dict) and item:
            out.append(f"{indent}{key}:")
            out.append(_mapping(item, indent + "  "))
            continue
        elif isinstance(item, dict | list):
            item = ", ".join(str(i) for i in item) or "-"
        out.append(f"{indent}{key}: {'-' if item is None else item}")
    return "\n".join(out)


def render(spec: Spec | None, result: Any) -> str:
    """A command's result as text for a person."""
    if isinstance(result, list):
        if not result:
            return "(none)"
        if all(isinstance(r, dict) for r in result):
            columns = spec.columns if spec is not None and spec.columns else [
                k for k, v in result[0].items() if not isinstance(v, dict | list)]
            return table(result, columns)
        return "\n".join(str(r) for r in result)
    if isinstance(result, dict):
        return _mapping(result)
    return "" if result is None else str(result)


def render_event(event: dict[str, Any]) -> str:
    """A watch line as text."""
    stamp = time.strftime("%H:%M:%S", time.localtime(float(event.get("time") or 0)))
    kind = event.get("event")
    if kind == "log":
        return f"{stamp} {str(event['level']):8} {event['logger']}: {event['message']}"
    if kind == "stanza":
        return f"{stamp} {str(event['direction']):8} {event['session']}: {event['xml']}"
    if kind == "dropped":
        return f"({event['count']} lines dropped: the shell did not keep up)"
    return json.dumps(event, default=str)


# -- help ---------------------------------------------------------------------------------
def help_text(topic: list[str], server_commands: list[str]) -> str:
    """``help``: every command; ``help GROUP``: its commands; ``help GROUP VERB``: one."""
    if not topic:
        lines = [f"  {usage(s):42} {s.help}" for s in SPECS]
        known = {s.cmd for s in SPECS}
        extra = [c for c in server_commands if c not in known and not c.startswith(
            ("shell.", "help", "watch.")) and not c.endswith((".disabled", ".deleted"))]
        text = "Commands:\n" + "\n".join(lines)
        if extra:
            text += ("\n\nMore commands of this server (group verb key=value ...):\n  "
                     + "\n  ".join(extra))
        return text + "\n\nhelp COMMAND for one command; exit or Ctrl-D to leave."
    spec, used = find_spec(topic)
    if spec is not None and used == len(topic):
        text = f"{usage(spec)}\n  {spec.help}\n  (admin command {spec.cmd})"
        if spec.secret:
            text += "\n  The password is asked for (hidden); it is never on the line."
        return text
    group = [s for s in SPECS if s.words.split()[0] == topic[0]]
    if group:
        return "\n".join(f"  {usage(s):42} {s.help}" for s in group)
    raise UsageError(f"no command {' '.join(topic)!r}; try 'help'")


# -- running ------------------------------------------------------------------------------
class Shell:
    """One connection to the server and what the prompt needs from it."""

    def __init__(self, socket_path: Path, as_json: bool = False,
                 interactive: bool = False) -> None:
        self.socket_path = socket_path
        self.as_json = as_json
        self.interactive = interactive
        self.client = AdminClient(socket_path, timeout=CALL_TIMEOUT)
        self._completion: dict[str, list[str]] = {}
        self._completion_at = 0.0

    def close(self) -> None:
        self.client.close()

    def completion(self) -> dict[str, list[str]]:
        """Online JIDs, hosts, modules and commands, asked at most every few seconds."""
        if time.monotonic() - self._completion_at > COMPLETION_TTL:
            try:
                self._completion = dict(self.client.call("shell.complete"))
            except AdminError:
                pass
            self._completion_at = time.monotonic()
        return self._completion

    def hosts(self) -> list[str]:
        return list(self.completion().get("hosts", []))

    def out(self, text: str) -> None:
        if text:
            click.echo(text)

    def run_line(self, line: str) -> int:
        """Run one shell line; the exit code it means."""
        words = line.split()
        if words and words[0] == "help":
            try:
                commands = list(self.client.call("help"))
            except AdminError:
                commands = []
            self.out(help_text(words[1:], commands))
            return EXIT_OK
        parsed = parse(line, self.hosts)
        spec = parsed.spec
        if spec is not None and spec.secret is not None:
            parsed.args[spec.secret] = self.read_secret()
        if spec is not None and spec.confirm and not parsed.yes and not self.confirm(line):
            return EXIT_USAGE if not self.interactive else EXIT_OK
        if spec is not None and spec.watch:
            return self.watch(parsed)
        result = self.client.call(parsed.cmd, **parsed.args)
        self.out(json.dumps(result, indent=2, default=str) if self.as_json
                 else render(spec, result))
        return EXIT_OK

    def read_secret(self) -> str:
        """A password: asked twice, hidden, at a prompt; one line from stdin otherwise."""
        if self.interactive or sys.stdin.isatty():
            first = self.ask_hidden("Password: ")
            if first != self.ask_hidden("Again: "):
                raise UsageError("the passwords differ")
            secret = first
        else:
            secret = sys.stdin.readline().rstrip("\r\n")
        if not secret:
            raise UsageError("the password may not be empty")
        return secret

    def ask_hidden(self, prompt: str) -> str:
        if self.interactive:
            from prompt_toolkit import prompt as pt_prompt
            return pt_prompt(prompt, is_password=True)
        return getpass.getpass(prompt)

    def confirm(self, line: str) -> bool:
        if not self.interactive:
            click.echo(f"'{line}' needs --yes in one-shot use", err=True)
            return False
        from prompt_toolkit import prompt as pt_prompt
        return pt_prompt(f"{line}: are you sure? [y/N] ").strip().lower() in ("y", "yes")

    def watch(self, parsed: Parsed) -> int:
        """Stream a watch's lines until Ctrl-C (or the server goes away), on a connection
        of its own: closing it ends the watch on the server."""
        with AdminClient(self.socket_path, timeout=CALL_TIMEOUT) as client:
            started = client.call(parsed.cmd, **parsed.args)
            if not self.as_json:
                described = ", ".join(f"{k}: {v}" for k, v in started.items())
                click.echo(f"watching ({described}); "
                           "Ctrl-C to stop", err=True)
            try:
                while True:
                    event = client.next_event()
                    line = json.dumps(event, default=str) if self.as_json \
                        else render_event(event)
                    sys.stdout.write(line + "\n")
                    sys.stdout.flush()
            except KeyboardInterrupt:
                return EXIT_OK


def _history_path() -> Path:
    override = os.environ.get("TERCET_SHELL_HISTORY")
    return Path(override) if override else Path.home() / ".tercet_shell_history"


def interactive(shell: Shell) -> int:
    """The prompt: read, run, print, until exit or Ctrl-D."""
    from prompt_toolkit import PromptSession

    from tercet.cli.shell_prompt import ShellCompleter, make_history

    try:
        version = shell.client.call("server.version")
    except AdminUnavailable as exc:
        click.echo(f"tercet shell: {exc}", err=True)
        return EXIT_NOT_RUNNING
    click.echo(f"{version['software']} {version['version']} admin shell; 'help' lists "
               "commands, 'exit' leaves.")
    session: PromptSession[str] = PromptSession(
        history=make_history(_history_path()), completer=ShellCompleter(shell),
        complete_while_typing=False)
    while True:
        try:
            line = session.prompt("tercet> ").strip()
        except KeyboardInterrupt:
            continue
        except EOFError:
            return EXIT_OK
        if line in ("exit", "quit"):
            return EXIT_OK
        if not line:
            continue
        try:
            shell.run_line(line)
        except UsageError as exc:
            click.echo(f"usage: {exc}", err=True)
        except AdminUnavailable as exc:
            click.echo(f"error: {exc}", err=True)
        except AdminError as exc:
            click.echo(f"error: {exc}", err=True)
        except KeyboardInterrupt:
            continue


def one_shot(shell: Shell, line: str) -> int:
    try:
        return shell.run_line(line)
    except UsageError as exc:
        click.echo(f"tercet shell: {exc}", err=True)
        return EXIT_USAGE
    except AdminUnavailable as exc:
        click.echo(f"tercet shell: {exc}", err=True)
        return EXIT_NOT_RUNNING
    except AdminError as exc:
        if shell.as_json:
            click.echo(json.dumps({"error": str(exc)}))
        click.echo(f"tercet shell: {exc}", err=True)
        return EXIT_FAILED


@click.command("shell", context_settings={"ignore_unknown_options": True})
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON (one-shot).")
@click.pass_context
def shell(ctx: click.Context, command: tuple[str, ...], as_json: bool) -> None:
    """The admin shell: interactive without COMMAND, else runs COMMAND and exits
    (`tercet shell "c2s list"`). Exit codes: 0 done, 1 the command failed, 2 usage
    error, 3 the server is not running. `help` inside lists the commands."""
    config = load_config(ctx)
    sock = config.resolve_path("admin_socket")
    if sock is None:
        click.echo("tercet shell: admin_socket is not configured", err=True)
        sys.exit(EXIT_NOT_RUNNING)
    # `tercet shell "user delete a@b" --yes`: the first argument may be a whole line.
    line = " ".join([command[0], shlex.join(command[1:])]).strip() if command else ""
    runner = Shell(sock, as_json=as_json, interactive=not command)
    try:
        code = one_shot(runner, line) if command else interactive(runner)
    finally:
        runner.close()
    sys.exit(code)
