"""AdminClient against the real admin socket, and against a scripted peer.

The real server (tests/harness.py) is used for everything it can produce: answers, ok:false
errors, several calls over one connection. The server never splits an answer across writes
on purpose, interleaves events only for subscribed connections, closes a connection mid-
request, stays silent, or sends non-JSON; those are what a client must survive from a broken
or hostile peer, so :class:`FakeAdmin`, a scripted stand-in speaking the same line-delimited
JSON over AF_UNIX, produces them. It stands in for nothing the real server can do here.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import pytest

from tercet.cli.adminclient import AdminClient, AdminError, AdminUnavailable

if TYPE_CHECKING:
    from harness import ServerHarness

# -- the scripted peer ------------------------------------------------------------------------

# Reply to one request: a list of raw lines (bytes) to send back, in order.
Script = Callable[[dict[str, Any]], list[bytes]]


def ok(request: dict[str, Any], result: Any = None) -> bytes:
    """An ``ok: true`` answer line to *request*."""
    return json.dumps({"id": request["id"], "ok": True, "result": result}).encode() + b"\n"


class FakeAdmin:
    """A scripted admin-socket peer: accepts connections on a unix socket and answers each
    request line with *script* (the raw lines to send, or ``[b"CLOSE"]`` to hang up); it
    records the requests it received. Only for peer behaviour the real server cannot
    produce (see the module docstring)."""

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


# -- against the real server ------------------------------------------------------------------


def test_real_server_status_and_errors(server: ServerHarness) -> None:
    with AdminClient(server.admin_socket, timeout=10) as client:
        status = client.call("server.status")
        assert status["pid"] == os.getpid()
        assert status["hosts"] == ["localhost"]
        assert status["listeners"]["c2s"] == [["127.0.0.1", server.port()]]
        with pytest.raises(AdminError, match="unknown command 'no.such.command'") as info:
            client.call("no.such.command")
        assert not isinstance(info.value, AdminUnavailable)
        with pytest.raises(AdminError, match="module 'nope' not found") as info:
            client.call("module.load", name="nope", host=None)
        assert not isinstance(info.value, AdminUnavailable)
        # Errors leave the connection usable: the next call on it is answered.
        assert client.call("server.status")["pid"] == os.getpid()
        rows = client.call("module.list", host="localhost")
        assert {"name": "ping", "host": "localhost", "status": "loaded"}.items() <= \
            next(r for r in rows if r["name"] == "ping").items()


def test_no_server(tmp_path: Path) -> None:
    path = tmp_path / "admin.sock"
    with pytest.raises(AdminUnavailable, match="is the server running") as info:
        AdminClient(path, timeout=1).call("server.status")
    assert str(path) in str(info.value)


# -- against the scripted peer ----------------------------------------------------------------


def test_call_returns_the_result_and_skips_events() -> None:
    def script(request: dict[str, Any]) -> list[bytes]:
        return [b'{"event": "log", "line": "hello"}\n', ok(request, {"loaded": True})]

    with FakeAdmin(script) as admin, AdminClient(admin.path, timeout=5) as client:
        assert client.call("module.load", name="motd", host=None) == {"loaded": True}
        assert client.call("module.reload", name="motd") == {"loaded": True}
    assert admin.requests == [
        {"id": 1, "cmd": "module.load", "args": {"name": "motd", "host": None}},
        {"id": 2, "cmd": "module.reload", "args": {"name": "motd"}},
    ]


def test_a_response_split_over_writes_is_reassembled() -> None:
    def script(request: dict[str, Any]) -> list[bytes]:
        line = ok(request, "x" * 200_000)
        return [line[:7], line[7:100_000], line[100_000:]]

    with FakeAdmin(script) as admin:
        assert AdminClient(admin.path, timeout=5).call("server.status") == "x" * 200_000


def test_server_closes_the_connection() -> None:
    with (
        FakeAdmin(lambda r: [b"CLOSE"]) as admin,
        pytest.raises(AdminError, match="closed the connection"),
    ):
        AdminClient(admin.path, timeout=5).call("server.status")


def test_server_does_not_answer() -> None:
    with (
        FakeAdmin(lambda r: [b'{"event": "tick"}\n']) as admin,
        pytest.raises(AdminError, match="no answer to server.status within 0.3 s"),
    ):
        AdminClient(admin.path, timeout=0.3).call("server.status")


def test_garbage_from_the_server() -> None:
    with (
        FakeAdmin(lambda r: [b"not json\n"]) as admin,
        pytest.raises(AdminError, match="not JSON"),
    ):
        AdminClient(admin.path, timeout=5).call("server.status")
