"""The admin command contract: what an ``admin/<cmd>`` handler receives and may raise.

Commands are events on the global bus named ``admin/<cmd>``; the transport (the unix
socket in tercet.net.admin, later the shell) only needs an :class:`AdminChannel`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from tercet.core.session import C2SSession


class AdminCommandError(Exception):
    """Raise from an admin command handler: the message goes back to the operator."""


class AdminChannel(Protocol):
    """The connection a command came in on: it can carry server-initiated lines."""

    def send(self, obj: dict[str, Any]) -> None: ...

    def buffered(self) -> int:
        """Bytes written to the connection that the client has not read yet (a watch
        drops lines past a bound rather than grow this without end)."""
        ...

    def when_closed(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` once when the connection ends (a watch stops there)."""
        ...


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


@dataclass(slots=True)
class SessionReport:
    """Payload of the host event ``session-report`` (``c2s list`` in the shell): a module
    in use on ``session`` adds an entry to ``features`` (``features["carbons"] = True``,
    ``features["csi"] = "inactive"``) and returns None."""

    session: C2SSession
    features: dict[str, Any] = field(default_factory=dict)
