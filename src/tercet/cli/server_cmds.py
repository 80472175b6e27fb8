"""`tercet start|stop|status|reload`: run and control the server process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

from tercet.cli.adminclient import AdminClient, AdminError, AdminUnavailable
from tercet.core.config import Config, ConfigError
from tercet.files import private_file


def load_config(ctx: click.Context) -> Config:
    """The configuration named by the group's -c option (exits 1 listing problems)."""
    if ctx.obj is not None and hasattr(ctx.obj, "load_config"):
        return ctx.obj.load_config()  # type: ignore[no-any-return]
    path = os.environ.get("TERCET_CONFIG") or "tercet.toml"
    try:
        return Config.load(path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def read_pid(config: Config) -> int | None:
    pidfile = config.resolve_path("pidfile")
    if pidfile is None or not pidfile.exists():
        return None
    try:
        pid = int(pidfile.read_text().strip())
    except ValueError:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


@click.command()
@click.option("--daemon", is_flag=True, help="Detach and run in the background.")
@click.pass_context
def start(ctx: click.Context, daemon: bool) -> None:
    """Run the server (in the foreground unless --daemon; logs go to stderr)."""
    config = load_config(ctx)
    running = read_pid(config)
    if running is not None:
        raise click.ClickException(f"already running (pid {running})")
    if daemon:
        sys.exit(_daemonize(config))
    from tercet.app import run
    sys.exit(run(config.path))


def _daemonize(config: Config) -> int:
    log_path = config.data_path / "tercet.log"
    private_file(log_path)
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tercet", "-c", str(config.path), "start"],
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
            start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            click.echo(f"tercet: the server exited with {proc.returncode}; see {log_path}",
                       err=True)
            return 1
        if read_pid(config) == proc.pid:
            click.echo(f"started (pid {proc.pid}), logging to {log_path}")
            return 0
        time.sleep(0.1)
    click.echo("tercet: the server did not write its pidfile within 30 s", err=True)
    return 1


@click.command()
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait.")
@click.pass_context
def stop(ctx: click.Context, timeout: float) -> None:
    """Stop a running server (SIGTERM, then wait for it to exit)."""
    config = load_config(ctx)
    pid = read_pid(config)
    if pid is None:
        click.echo("not running")
        sys.exit(1)
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if read_pid(config) is None:
            click.echo(f"stopped (pid {pid})")
            return
        time.sleep(0.1)
    raise click.ClickException(f"pid {pid} did not exit within {timeout:g} s")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Say whether the server is running (exit 0) or not (exit 3, like LSB init scripts)."""
    config = load_config(ctx)
    pid = read_pid(config)
    info: dict[str, object] = {"running": pid is not None, "pid": pid,
                               "config": str(config.path)}
    sock = config.resolve_path("admin_socket")
    if pid is not None and sock is not None and Path(sock).exists():
        try:
            from tercet.cli.adminclient import AdminClient
            info["server"] = AdminClient(str(sock), timeout=5).call("server.status")
        except Exception as exc:  # the socket is optional for status
            info["admin_socket_error"] = str(exc)
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        click.echo(f"running (pid {pid})" if pid else "not running")
    sys.exit(0 if pid is not None else 3)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print what changed as JSON.")
@click.pass_context
def reload(ctx: click.Context, as_json: bool) -> None:
    """Re-read the configuration, reopen log files and apply what changed: modules whose
    options changed are reloaded, modules_enabled is followed, and options that need a
    restart are listed. Uses the admin socket; without it, sends SIGHUP."""
    config = load_config(ctx)
    sock = config.resolve_path("admin_socket")
    try:
        report = AdminClient(str(sock), timeout=60).call("server.reload")
    except AdminUnavailable:
        report = None
    except AdminError as exc:
        raise click.ClickException(str(exc)) from None
    if report is None:
        _signal_reload(config)
        return
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    for key, title in (("reloaded", "reloaded"), ("loaded", "loaded"),
                       ("unloaded", "unloaded"), ("failed", "FAILED"),
                       ("restart_needed", "needs a restart")):
        for item in report.get(key, []):
            click.echo(f"{title}: {item}")
    if not any(report.values()):
        click.echo("configuration reloaded; nothing changed")
    if report.get("failed"):
        sys.exit(1)


def _signal_reload(config: Config) -> None:
    pid = read_pid(config)
    if pid is None:
        click.echo("not running")
        sys.exit(1)
    os.kill(pid, signal.SIGHUP)
    click.echo(f"reload signal sent to pid {pid} (the server log says what changed)")


def call_server(ctx: click.Context, cmd: str, *, missing: str, **args: Any) -> Any:
    """Run admin command ``cmd`` on the running server; a failure becomes a one-line CLI
    error, and an unknown command says what to load (``missing``, e.g. "is the s2s module
    loaded?")."""
    sock = load_config(ctx).resolve_path("admin_socket")
    try:
        with AdminClient(str(sock), timeout=30) as client:
            return client.call(cmd, **args)
    except AdminError as exc:
        if "unknown command" in str(exc):
            raise click.ClickException(f"{exc} ({missing})") from None
        raise click.ClickException(str(exc)) from None
