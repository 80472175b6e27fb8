"""The admin command contract: what an ``admin/<cmd>`` handler receives and may raise.

Commands are events on the global bus named ``admin/<cmd>``; the transport (the unix
socket in tercet.net.admin, later the shell) only needs an :class:`AdminChannel`.
"""

from __future__ import annotations

from typing import Any, Protocol


class AdminCommandError(Exception):
    """Raise from an admin command handler: the message goes back to the operator."""


class AdminChannel(Protocol):
    """The connection a command came in on: it can carry server-initiated lines."""

    def send(self, obj: dict[str, Any]) -> None: ...


class AdminRequest:
    """What an ``admin/<cmd>`` handler receives."""

    __slots__ = ("args", "cmd", "conn")

    def __init__(self, cmd: str, args: dict[str, Any], conn: AdminChannel) -> None:
        self.cmd = cmd
        self.args = args
        self.conn = conn

    def arg(self, name: str, default: Any = None) -> Any:
        return self.args.get(name, default)

    def emit(self, event: str, **data: Any) -> None:
        """Send a server-initiated line on this connection (for watch-style commands)."""
        self.conn.send({"event": event, **data})
