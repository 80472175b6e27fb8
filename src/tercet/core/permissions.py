"""Roles and permissions (the model of Prosody 13, docs/roles.md).

Five built-in roles, each inheriting every permission of the ones below it::

    tercet:guest < tercet:registered < tercet:member < tercet:admin < tercet:operator

Custom roles (the ``custom_roles`` option) inherit from one role, built-in or custom, and
add (``allow``) or remove (``deny``) permissions. A permission is an action name,
``<module>:<action>`` by convention (``muc:create-room``). Modules declare their actions
with the least built-in role that has them, in a module-level ``PERMISSIONS`` dict (read
at load, and by ``tercet check`` without loading anything) or with
``ModuleApi.default_permission``; they check them with ``ModuleApi.may``.

Who has which role is decided by the server (``Server.role_of``): this file knows roles
and grants only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

GUEST = "tercet:guest"
REGISTERED = "tercet:registered"
MEMBER = "tercet:member"
ADMIN = "tercet:admin"
OPERATOR = "tercet:operator"
#: Lowest first: a role has every permission granted to the roles before it.
BUILTIN_ROLES = (GUEST, REGISTERED, MEMBER, ADMIN, OPERATOR)
#: What a new account gets, and what an account whose stored role no longer exists gets.
DEFAULT_ROLE = REGISTERED
#: COMPAT: the role names of Tercet 1.0's API (default_permission("admin", ...)).
LEGACY_ROLES = {"guest": GUEST, "user": REGISTERED, "admin": ADMIN}
#: Names starting with this belong to the built-in roles; custom roles may not use it.
RESERVED_PREFIX = "tercet:"

__all__ = [
    "ADMIN", "BUILTIN_ROLES", "DEFAULT_ROLE", "GUEST", "LEGACY_ROLES", "MEMBER",
    "OPERATOR", "REGISTERED", "CustomRole", "Permissions", "builtin_rank",
    "canonical_role", "custom_role_problems", "parse_custom_roles",
]


def canonical_role(name: str) -> str:
    """``name`` with the 1.0 names mapped to the built-in ones ("admin" -> tercet:admin)."""
    return LEGACY_ROLES.get(name, name)


def builtin_rank(name: str) -> int:
    """The position of a built-in role in BUILTIN_ROLES (-1 for any other name)."""
    return BUILTIN_ROLES.index(name) if name in BUILTIN_ROLES else -1


@dataclass(frozen=True, slots=True)
class CustomRole:
    """One entry of ``custom_roles``: ``inherits`` plus ``allow`` minus ``deny``."""

    name: str
    inherits: str
    allow: frozenset[str] = frozenset()
    deny: frozenset[str] = frozenset()
    description: str = ""


_ROLE_KEYS = {"name", "inherits", "allow", "deny", "description"}
CUSTOM_ROLES_EXAMPLE = ('custom_roles = [{ name = "helpdesk", inherits = "tercet:member", '
                        'allow = ["muc:create-room"] }]')


def _entry_problem(entry: object, names: set[str]) -> str | None:
    """What is wrong with one table of ``custom_roles`` (None when it is usable)."""
    if not isinstance(entry, dict):
        return "each custom role is a table"
    unknown = sorted(set(entry) - _ROLE_KEYS)
    name = entry.get("name")
    if unknown:
        return f"unknown key {unknown[0]!r} (keys: {', '.join(sorted(_ROLE_KEYS))})"
    if not isinstance(name, str) or not name:
        return "each custom role needs a name"
    if name.startswith(RESERVED_PREFIX) or name in LEGACY_ROLES:
        return f"{name!r} is reserved for the built-in roles"
    if name in names:
        return f"the role {name!r} is defined twice"
    if not isinstance(entry.get("inherits", REGISTERED), str):
        return f"role {name!r}: inherits is a role name"
    for key in ("allow", "deny"):
        value = entry.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return f"role {name!r}: {key} is a list of permission names"
    return None


def parse_custom_roles(value: object) -> tuple[list[CustomRole], list[str]]:
    """The usable roles of a ``custom_roles`` value and what is wrong with the others.

    A role whose parent is unknown, or a chain that loops, is dropped (with a problem),
    so a typo never grants more than the operator wrote.
    """
    if not isinstance(value, list):
        return [], ["custom_roles is a list of tables"]
    roles: dict[str, CustomRole] = {}
    problems: list[str] = []
    for entry in value:
        problem = _entry_problem(entry, set(roles))
        if problem is not None:
            problems.append(problem)
            continue
        assert isinstance(entry, dict)
        roles[entry["name"]] = CustomRole(
            entry["name"], canonical_role(entry.get("inherits", REGISTERED)),
            frozenset(entry.get("allow", [])), frozenset(entry.get("deny", [])),
            str(entry.get("description", "")))
    for role in list(roles.values()):
        chain_problem = _chain_problem(role, roles)
        if chain_problem is not None:
            problems.append(chain_problem)
            del roles[role.name]
    return list(roles.values()), problems


def _chain_problem(role: CustomRole, roles: Mapping[str, CustomRole]) -> str | None:
    seen = {role.name}
    parent = role.inherits
    while parent not in BUILTIN_ROLES:
        found = roles.get(parent)
        if found is None:
            return (f"role {role.name!r} inherits from {parent!r}, which is neither a "
                    f"built-in role ({', '.join(BUILTIN_ROLES)}) nor a custom role")
        if found.name in seen:
            return f"role {role.name!r} inherits from itself (through {parent!r})"
        seen.add(found.name)
        parent = found.inherits
    return None


def custom_role_problems(value: object, known: Iterable[str] | None) -> list[str]:
    """Everything ``tercet check`` warns about in ``custom_roles``: broken entries, roles
    that grant nothing beyond their parent, permissions no module declares (``known``;
    None skips that check)."""
    roles, problems = parse_custom_roles(value)
    known_set = None if known is None else set(known)
    for role in roles:
        if not role.allow and not role.deny:
            problems.append(f"role {role.name!r} allows and denies nothing: it is the same "
                            f"as {role.inherits!r}")
        if known_set is None:
            continue
        for permission in sorted((role.allow | role.deny) - known_set):
            problems.append(f"role {role.name!r} names the permission {permission!r}, "
                            "which no module declares")
    return problems


#: (role, action) answers kept; more distinct pairs than this start the cache afresh.
MAX_ANSWERS = 4096


class Permissions:
    """Grants per built-in role (from modules) and the custom roles (from the config).

    ``role_of(actor, host)`` names the actor's role on ``host`` (None: the global scope);
    it is the server's to decide.
    """

    def __init__(self, role_of: Callable[[str, str | None], str],
                 custom_roles: Iterable[CustomRole] = ()) -> None:
        self._role_of = role_of
        # action -> how many loaded modules granted it (a module on two hosts grants twice,
        # and unloading one must not revoke the other's grant).
        self._grants: dict[str, dict[str, int]] = {role: {} for role in BUILTIN_ROLES}
        self._custom: dict[str, CustomRole] = {}
        # (role, action) -> allows(): rooms ask for every occupant a presence goes to, so
        # answers are kept until a grant, a revoke or new custom roles change them.
        self._answers: dict[tuple[str, str], bool] = {}
        self.configure(custom_roles)

    def configure(self, custom_roles: Iterable[CustomRole]) -> None:
        """Replace the custom roles (at start and on a configuration reload)."""
        self._custom = {role.name: role for role in custom_roles}
        self._answers.clear()

    def grant(self, role: str, action: str) -> None:
        role = canonical_role(role)
        if role not in self._grants:
            raise ValueError(f"modules grant to built-in roles only, not {role!r}; roles "
                             f"are {', '.join(BUILTIN_ROLES)}")
        counts = self._grants[role]
        counts[action] = counts.get(action, 0) + 1
        self._answers.clear()

    def revoke(self, role: str, action: str) -> None:
        counts = self._grants.get(canonical_role(role), {})
        if counts.get(action, 0) > 1:
            counts[action] -= 1
        else:
            counts.pop(action, None)
        self._answers.clear()

    def exists(self, role: str) -> bool:
        return role in BUILTIN_ROLES or role in self._custom

    def roles(self) -> list[str]:
        """Every role name: the built-in ones, lowest first, then the custom ones."""
        return [*BUILTIN_ROLES, *self._custom]

    def custom(self, name: str) -> CustomRole | None:
        return self._custom.get(name)

    def declared(self) -> dict[str, str]:
        """Every granted action -> the least built-in role that has it (for docs, shell)."""
        out: dict[str, str] = {}
        for role in BUILTIN_ROLES:
            for action in self._grants[role]:
                out.setdefault(action, role)
        return dict(sorted(out.items()))

    def parent(self, role: str) -> str | None:
        """The role ``role`` inherits from (None for tercet:guest and unknown names)."""
        if role in self._custom:
            return self._custom[role].inherits
        rank = builtin_rank(role)
        return BUILTIN_ROLES[rank - 1] if rank > 0 else None

    def base(self, role: str) -> str:
        """The built-in role at the root of ``role``'s chain (unknown names: the default)."""
        seen = 0
        while role in self._custom and seen <= len(self._custom):
            role = self._custom[role].inherits
            seen += 1
        return role if role in BUILTIN_ROLES else DEFAULT_ROLE

    def allows(self, role: str, action: str) -> bool:
        """Whether ``role`` has ``action``: the nearest custom role that allows or denies
        it decides, else the built-in grants of the chain's root and the roles below it.
        An unknown role name counts as the default role (a role removed from the config
        leaves its accounts as plain registered users)."""
        key = (role, action)
        found = self._answers.get(key)
        if found is None:
            if len(self._answers) >= MAX_ANSWERS:
                self._answers.clear()  # bounded: role names come from stored accounts
            found = self._answers[key] = self._resolve(role, action)
        return found

    def _resolve(self, role: str, action: str) -> bool:
        seen = 0
        while role in self._custom and seen <= len(self._custom):
            spec = self._custom[role]
            if action in spec.deny:
                return False
            if action in spec.allow:
                return True
            role = spec.inherits
            seen += 1
        rank = builtin_rank(role)
        if rank < 0:
            rank = builtin_rank(DEFAULT_ROLE)
        return any(action in self._grants[r] for r in BUILTIN_ROLES[: rank + 1])

    def may(self, action: str, actor: str, host: str | None) -> bool:
        return self.allows(self._role_of(actor, host), action)

    def describe(self, role: str) -> dict[str, Any]:
        """A role for the CLI/shell: its parent and the permissions it has."""
        candidates = set(self.declared())
        for custom in self._custom.values():
            candidates |= custom.allow  # a custom role may allow what no module granted
        actions = sorted(a for a in candidates if self.allows(role, a))
        spec = self._custom.get(role)
        return {"name": role, "inherits": self.parent(role), "builtin": spec is None,
                "description": "" if spec is None else spec.description,
                "permissions": actions}
