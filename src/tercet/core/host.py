"""A hosted domain: a virtual host (users live here) or a component (a service)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tercet.core.events import EventBus
from tercet.core.session import C2SSession, HostSession
from tercet.protocol.stanza import Element

if TYPE_CHECKING:
    from tercet.auth import AuthProvider


@dataclass(frozen=True, slots=True)
class Identity:
    category: str
    type: str
    name: str | None = None
    lang: str | None = None


@dataclass(eq=False)
class Host:
    """Everything the server keeps per hosted domain.

    ``sessions`` maps username -> resource -> bound client session; only resources that
    completed binding are here.
    """

    name: str
    kind: str = "local"  # "local" (virtual host) | "component"
    events: EventBus = field(default_factory=EventBus)
    sessions: dict[str, dict[str, C2SSession]] = field(default_factory=dict)
    features: list[str] = field(default_factory=list)
    identities: list[Identity] = field(default_factory=list)
    extensions: list[Element] = field(default_factory=list)
    items: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    providers: dict[str, list[Any]] = field(default_factory=dict)
    #: username -> the role its latest login read from the account store, for checks by
    #: JID (``ModuleApi.may(action, jid)``); one entry per account that logged in.
    account_roles: dict[str, str] = field(default_factory=dict)
    origin: HostSession = field(init=False)

    def __post_init__(self) -> None:
        self.events.name = self.name
        self.origin = HostSession(self)

    @property
    def auth(self) -> AuthProvider | None:
        """The account provider an auth module offered with ``provides("auth", ...)``."""
        found = self.providers.get("auth")
        return found[0] if found else None

    def user_sessions(self, username: str) -> dict[str, C2SSession]:
        return self.sessions.get(username, {})

    def all_sessions(self) -> Iterator[C2SSession]:
        for resources in self.sessions.values():
            yield from resources.values()

    def add_session(self, session: C2SSession) -> None:
        assert session.username is not None and session.resource is not None
        self.sessions.setdefault(session.username, {})[session.resource] = session

    def remove_session(self, session: C2SSession) -> bool:
        if session.username is None or session.resource is None:
            return False
        resources = self.sessions.get(session.username)
        if not resources or resources.get(session.resource) is not session:
            return False
        del resources[session.resource]
        if not resources:
            del self.sessions[session.username]
        return True
