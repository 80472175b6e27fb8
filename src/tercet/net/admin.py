"""The admin socket: line-delimited JSON over a unix socket (mode 0600, peer credentials
checked: only the server's own user or root may connect).

Request  ``{"id": 1, "cmd": "module.list", "args": {...}}``
Response ``{"id": 1, "ok": true, "result": ...}`` or ``{"id": 1, "ok": false, "error": "..."}``
Server-initiated lines ``{"event": "...", ...}`` (live logs, stanza watching) may come at any
time on a connection that subscribed to them.

Commands are events on the global bus named ``admin/<cmd>``; modules add commands by hooking
them, so the admin shell grows without this file changing.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tercet.core.admin import AdminCommandError, AdminRequest

if TYPE_CHECKING:
    from tercet.core.events import EventBus

log = logging.getLogger("tercet.admin")

# One request line may not exceed this (a command with arguments, not a data transfer).
MAX_LINE = 1024 * 1024
# Requests in flight per connection: commands run one at a time, in order.


class AdminConnection:
    def __init__(self, bus: EventBus, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.bus = bus
        self.reader = reader
        self.writer = writer
        self.closed = asyncio.Event()
        self.on_close: list[Callable[[], None]] = []

    def send(self, obj: dict[str, Any]) -> None:
        if self.writer.is_closing():
            return
        self.writer.write(json.dumps(obj, default=str).encode() + b"\n")

    def buffered(self) -> int:
        transport = self.writer.transport
        return 0 if transport is None else transport.get_write_buffer_size()

    def when_closed(self, fn: Callable[[], None]) -> None:
        self.on_close.append(fn)

    async def serve(self) -> None:
        try:
            while True:
                try:
                    line = await self.reader.readuntil(b"\n")
                except asyncio.LimitOverrunError:
                    self.send({"id": None, "ok": False, "error": "request line too long"})
                    break
                except asyncio.IncompleteReadError:
                    break
                await self._handle(line)
                await self.writer.drain()
        finally:
            for fn in self.on_close:
                fn()
            self.closed.set()
            self.writer.close()

    async def _handle(self, line: bytes) -> None:
        try:
            request = json.loads(line)
            req_id = request.get("id")
            cmd = str(request["cmd"])
            args = dict(request.get("args") or {})
        except (ValueError, KeyError, TypeError, AttributeError):
            self.send({"id": None, "ok": False, "error": "malformed request"})
            return
        name = f"admin/{cmd}"
        if not self.bus.has_handlers(name):
            self.send({"id": req_id, "ok": False, "error": f"unknown command {cmd!r}; "
                       "try 'help'"})
            return
        # Called directly rather than through fire(): the bus logs and swallows handler
        # exceptions, but an admin command's error must reach the operator.
        handler = self.bus.handlers(name)[0].handler
        try:
            result = handler(AdminRequest(cmd, args, self))
            if inspect.isawaitable(result):
                result = await result
        except AdminCommandError as exc:
            self.send({"id": req_id, "ok": False, "error": str(exc)})
            return
        except Exception:
            log.exception("admin command %s failed", cmd)
            self.send({"id": req_id, "ok": False, "error": "internal error (see the log)"})
            return
        self.send({"id": req_id, "ok": True, "result": result})


def peer_uid(sock: socket.socket) -> int | None:
    """The connecting process's uid (SO_PEERCRED), None where unsupported."""
    if not hasattr(socket, "SO_PEERCRED"):
        return None
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


async def start_admin_socket(path: Path, bus: EventBus) -> asyncio.AbstractServer:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        path.unlink()
    own_uid = os.getuid()

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        uid = peer_uid(sock) if sock is not None else None
        if uid is not None and uid not in (own_uid, 0):
            log.warning("admin socket: refused a connection from uid %d", uid)
            writer.write(b'{"id": null, "ok": false, "error": "permission denied"}\n')
            writer.close()
            return
        await AdminConnection(bus, reader, writer).serve()

    old_umask = os.umask(0o177)  # the socket is created 0600, never briefly wider
    try:
        server = await asyncio.start_unix_server(client, str(path), limit=MAX_LINE)
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    log.info("admin socket on %s", path)
    return server
