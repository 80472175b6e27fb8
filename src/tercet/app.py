"""The composition root: the one place that builds a server from its parts and runs it.

Config, storage, TLS contexts, the server core, the network layer and the admin socket
come together here and nowhere else, so ``tercet.core`` imports neither ``tercet.net`` nor
the admin socket (docs/internals.md has the package graph). The account provider is not
built here: an auth module offers it with ``module.provides("auth", ...)``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from tercet.core.config import Config, ConfigError, plugin_path_of
from tercet.core.logging import setup_logging
from tercet.core.modulemanager import declared_schema
from tercet.core.server import Server
from tercet.core.shell_commands import SHUTDOWN_EVENT
from tercet.files import private_dir
from tercet.net.admin import start_admin_socket
from tercet.net.listeners import NetManager
from tercet.net.tls import TLSManager
from tercet.storage.manager import StorageConfig, StorageManager

log = logging.getLogger("tercet.server")


def build_server(config: Config, *, clock: Callable[[], float] = time.time) -> Server:
    """A server wired to the real storage, TLS and network layers, not started yet."""
    storage = StorageManager(storage_config(config), config.data_path)
    tls = TLSManager(min_version=str(config.get("tls_min_version") or "1.2"))
    server = Server(config, storage=storage, tls=tls, clock=clock)
    server.attach_network(NetManager(server, tls))
    return server


def storage_config(config: Config) -> StorageConfig:
    """The ``storage`` option, with the driver settings other options give."""
    found = StorageConfig.from_option(config.get("storage"))
    return replace(found, options={
        **found.options, "sqlite": {**found.options.get("sqlite", {}),
                                    "synchronous": config.get("sqlite_synchronous")}})


def load_config(path: str | os.PathLike[str]) -> Config:
    """The configuration file, checked against every declared option (the core's, the
    built-in modules' and those of the plugins installed in its installer_plugin_path)."""
    return Config.load(path, schema=declared_schema(plugin_path_of(path)))


def _install_event_loop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def run(config_path: str | os.PathLike[str], *, pidfile: Path | None = None) -> int:
    """Run the server in the foreground until SIGTERM/SIGINT; returns the exit code."""
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(f"tercet: {exc}", file=sys.stderr)
        return 1
    settings = config.logging()
    setup_logging(settings.level, settings.file)
    _install_event_loop()
    return asyncio.run(_main(config, pidfile))


class Application:
    """A built server plus the admin socket beside it: what ``tercet start`` runs."""

    def __init__(self, config: Config, *, clock: Callable[[], float] = time.time) -> None:
        self.server = build_server(config, clock=clock)
        self._admin: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        """Start the server, then the admin socket; either failing is fatal (the caller
        stops what did start)."""
        await self.server.start()
        sock = self.server.config.resolve_path("admin_socket")
        if sock is not None:
            self._admin = await start_admin_socket(sock, self.server.events)

    async def stop(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None
            # The socket file outlives the listening socket; a stale one misleads
            # `tercet status` and other tools into thinking a server is there.
            sock = self.server.config.resolve_path("admin_socket")
            if sock is not None:
                sock.unlink(missing_ok=True)
        await self.server.stop()


# Allocations between two young-generation collections (CPython's default is 700). Each
# stanza makes dozens of short-lived tracked objects that die by reference counting; at
# 700 the collector ran 25-45 times a second under load and promoted live sessions'
# objects into costly full collections (bench/README.md, "Hot path over TLS").
GC_YOUNG_THRESHOLD = 10_000


def _tune_gc() -> None:
    """Objects made while starting (modules, config, tables) live as long as the process:
    freeze them out of every later collection, and collect the young less often."""
    gc.collect()
    gc.freeze()
    _young, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


async def _main(config: Config, pidfile: Path | None) -> int:
    app = Application(config)
    server = app.server
    try:
        await app.start()
    except Exception as exc:
        log.error("could not start: %s", exc)
        await app.stop()
        return 1
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(server.reload()))
    server.events.hook(SHUTDOWN_EVENT, lambda _reason: stop.set())  # `server.shutdown`
    _tune_gc()
    pid = pidfile or config.resolve_path("pidfile", None)
    if pid is not None:
        private_dir(pid.parent)
        pid.write_text(f"{os.getpid()}\n")
    print(f"tercet {server.version} running (pid {os.getpid()})", file=sys.stderr, flush=True)
    try:
        await stop.wait()
    finally:
        await app.stop()
        if pid is not None:
            pid.unlink(missing_ok=True)
    return 0
