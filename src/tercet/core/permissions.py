"""Roles and permissions: admin > user > guest, each role inheriting the ones below it.

Modules grant actions to roles with ``ModuleApi.default_permission`` and check them with
``ModuleApi.may``. An actor's role comes from the ``admins`` option and from being an
account of the host (guests are everyone else, e.g. remote users and anonymous sessions).
"""

from __future__ import annotations

from collections.abc import Callable

ROLES = ("guest", "user", "admin")


class Permissions:
    def __init__(self, role_of: Callable[[str, str | None], str]) -> None:
        self._role_of = role_of
        self._grants: dict[str, dict[str, int]] = {role: {} for role in ROLES}

    def grant(self, role: str, action: str) -> None:
        if role not in self._grants:
            raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
        counts = self._grants[role]
        counts[action] = counts.get(action, 0) + 1

    def revoke(self, role: str, action: str) -> None:
        counts = self._grants.get(role, {})
        if counts.get(action, 0) > 1:
            counts[action] -= 1
        else:
            counts.pop(action, None)

    def may(self, action: str, actor: str, host: str | None) -> bool:
        role = self._role_of(actor, host)
        for r in ROLES[: ROLES.index(role) + 1]:
            if action in self._grants[r]:
                return True
        return False
