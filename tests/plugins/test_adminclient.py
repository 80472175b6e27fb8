from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fake_admin import FakeAdmin, error, ok

from tercet.cli.adminclient import AdminClient, AdminError, AdminUnavailable


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


def test_ok_false_raises_admin_error() -> None:
    with (
        FakeAdmin(lambda r: [error(r, "module 'nope' not found")]) as admin,
        pytest.raises(AdminError, match="module 'nope' not found") as info,
    ):
        AdminClient(admin.path, timeout=5).call("module.load", name="nope")
    assert not isinstance(info.value, AdminUnavailable)


def test_no_server(tmp_path: Path) -> None:
    path = tmp_path / "admin.sock"
    with pytest.raises(AdminUnavailable, match="is the server running") as info:
        AdminClient(path, timeout=1).call("server.status")
    assert str(path) in str(info.value)


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
