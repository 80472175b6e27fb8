"""A small synchronous client for the server's admin socket.

Protocol: line-delimited JSON (UTF-8, one object per ``\\n``-terminated line) over a unix
stream socket. Requests are ``{"id": N, "cmd": "module.load", "args": {...}}``; responses
``{"id": N, "ok": true, "result": ...}`` or ``{"id": N, "ok": false, "error": "message"}``.
The server may interleave ``{"event": ...}`` lines (live logs and the like), which
:meth:`AdminClient.call` skips.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

__all__ = ["AdminClient", "AdminError", "AdminUnavailable"]

# One response line is a JSON document, not a log archive: refuse anything bigger.
MAX_LINE = 16 * 1024 * 1024
# Events that may precede a response; past this the server is not answering us.
MAX_SKIPPED_EVENTS = 100_000


class AdminError(Exception):
    """The server answered ``ok: false`` (or broke the protocol); the message says why."""


class AdminUnavailable(AdminError):
    """No server answers on the admin socket."""


class AdminClient:
    """``AdminClient(path).call("module.load", name="motd")``; one connection, reused.

    Use it as a context manager, or call :meth:`close`. *timeout* (seconds) bounds each call.
    """

    def __init__(self, socket_path: str | Path, timeout: float = 10.0) -> None:
        self.socket_path = Path(socket_path)
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._buffer = bytearray()
        self._scanned = 0  # bytes of _buffer already searched for a newline
        self._next_id = 1

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            self._buffer.clear()
            self._scanned = 0

    def call(self, cmd: str, **args: Any) -> Any:
        """Send one command and return its ``result``; AdminError on ``ok: false``."""
        sock = self._connect()
        request_id = self._next_id
        self._next_id += 1
        line = json.dumps({"id": request_id, "cmd": cmd, "args": args}, separators=(",", ":"))
        deadline = time.monotonic() + self.timeout
        try:
            sock.settimeout(self.timeout)
            sock.sendall(line.encode("utf-8") + b"\n")
            response = self._response(sock, request_id, deadline)
        except TimeoutError:
            self.close()
            raise AdminError(f"no answer to {cmd} within {self.timeout:g} s") from None
        except OSError as exc:
            self.close()
            raise AdminError(f"lost the connection to the server: {exc.strerror or exc}") from None
        if response.get("ok") is True:
            return response.get("result")
        raise AdminError(str(response.get("error") or f"{cmd} failed"))

    def next_event(self, timeout: float | None = None) -> dict[str, Any]:
        """The next server-initiated line (``{"event": ...}``) of a watch started with
        :meth:`call`, waiting up to ``timeout`` seconds (None: for ever); TimeoutError
        when none came, AdminError when the server closed the connection."""
        sock = self._connect()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                message = self._read_message(sock, deadline)
            except OSError as exc:
                if isinstance(exc, TimeoutError):
                    raise
                self.close()
                raise AdminError(f"lost the connection to the server: {exc}") from None
            if "event" in message:
                return message

    def _connect(self) -> socket.socket:
        if self._sock is not None:
            return self._sock
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.socket_path))
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            raise AdminUnavailable(
                f"cannot reach the server: is the server running? socket {self.socket_path}"
            ) from None
        except PermissionError:
            sock.close()
            raise AdminUnavailable(
                f"permission denied on socket {self.socket_path}: run this as the user the "
                "server runs as"
            ) from None
        except OSError as exc:
            sock.close()
            raise AdminUnavailable(
                f"cannot reach the server: is the server running? socket {self.socket_path} "
                f"({exc.strerror or exc})"
            ) from None
        self._sock = sock
        return sock

    def _response(self, sock: socket.socket, request_id: int, deadline: float) -> dict[str, Any]:
        for _ in range(MAX_SKIPPED_EVENTS):
            message = self._read_message(sock, deadline)
            if "event" in message and "id" not in message:
                continue
            if message.get("id") == request_id:
                return message
            # A response to an earlier, timed-out request: not ours, keep reading.
        raise AdminError("the server sent events but no answer")

    def _read_message(self, sock: socket.socket, deadline: float | None) -> dict[str, Any]:
        while (end := self._buffer.find(b"\n", self._scanned)) < 0:
            self._scanned = len(self._buffer)
            if len(self._buffer) > MAX_LINE:
                raise AdminError("the server sent an over-long line")
            if deadline is None:
                sock.settimeout(None)
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                sock.settimeout(remaining)
            chunk = sock.recv(65536)
            if not chunk:
                self.close()
                raise AdminError("the server closed the connection")
            self._buffer += chunk
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        self._scanned = 0
        try:
            message = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise AdminError("the server sent something that is not JSON") from None
        if not isinstance(message, dict):
            raise AdminError("the server sent a JSON value that is not an object")
        return message
