"""A scripted stand-in for the server's admin socket (line-delimited JSON over AF_UNIX)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

# Reply to one request: a list of raw lines (bytes) to send back, in order.
Script = Callable[[dict[str, Any]], list[bytes]]


def ok(request: dict[str, Any], result: Any = None) -> bytes:
    return json.dumps({"id": request["id"], "ok": True, "result": result}).encode() + b"\n"


def error(request: dict[str, Any], message: str) -> bytes:
    return json.dumps({"id": request["id"], "ok": False, "error": message}).encode() + b"\n"


class FakeAdmin:
    """Accepts connections on a unix socket and answers each request line with *script*."""

    def __init__(self, script: Script) -> None:
        # AF_UNIX paths are short (108 bytes): keep the directory short too.
        self._dir = Path(tempfile.mkdtemp(prefix="tadm", dir="/tmp"))
        self.path = self._dir / "admin.sock"
        self.script = script
        self.requests: list[dict[str, Any]] = []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(str(self.path))
        os.chmod(self.path, 0o600)
        self._sock.listen(4)
        self._sock.settimeout(0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            with conn:
                self._talk(conn)

    def _talk(self, conn: socket.socket) -> None:
        conn.settimeout(0.1)
        buffer = b""
        while not self._stop.is_set():
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                return
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                request = json.loads(line)
                self.requests.append(request)
                replies = self.script(request)
                if replies == [b"CLOSE"]:
                    return
                for reply in replies:
                    conn.sendall(reply)
