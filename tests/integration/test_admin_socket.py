"""The admin socket only answers the server's own user (or root)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys

import pytest
from harness import ServerHarness


def ask(path: str, cmd: str) -> dict[str, object]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(path)
        sock.sendall(json.dumps({"id": 1, "cmd": cmd}).encode() + b"\n")
        return json.loads(sock.makefile().readline())  # type: ignore[no-any-return]


def test_socket_mode_and_commands(server: ServerHarness) -> None:
    path = str(server.admin_socket)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    reply = ask(path, "server.status")
    assert reply["ok"] is True and reply["result"]["hosts"] == ["localhost"]  # type: ignore[index]
    reply = ask(path, "no.such.command")
    assert reply["ok"] is False and "unknown command" in str(reply["error"])


@pytest.mark.skipif(os.getuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root and setpriv to connect as another user")
def test_other_users_are_refused_by_peer_credentials(server: ServerHarness) -> None:
    path = str(server.admin_socket)
    # Open the file permissions so only the peer-credential check stands in the way.
    os.chmod(path, 0o666)
    os.chmod(server.socket_dir, 0o755)
    # The server answers a refused peer at once and hangs up, before any request.
    script = (f"import socket; s = socket.socket(socket.AF_UNIX); s.connect({path!r}); "
              "print(s.makefile().readline())")
    out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                          sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    reply = json.loads(out.stdout)
    assert reply["ok"] is False and reply["error"] == "permission denied"
