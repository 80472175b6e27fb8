"""The permission model on its own (tercet.core.permissions), the custom_roles and
user_deletion_grace_period options as `tercet check` sees them, and durations."""

from __future__ import annotations

import pytest

from tercet.core.config import Config, ConfigError
from tercet.core.durations import format_duration, parse_duration
from tercet.core.modulemanager import declared_permissions
from tercet.core.permissions import (
    BUILTIN_ROLES,
    Permissions,
    custom_role_problems,
    parse_custom_roles,
)

CUSTOM = [
    {"name": "helpdesk", "inherits": "tercet:member", "allow": ["x:reset"]},
    {"name": "lead", "inherits": "helpdesk", "allow": ["x:audit"], "deny": ["x:chat"]},
    {"name": "tame-admin", "inherits": "admin", "deny": ["x:reset"]},  # COMPAT name
]


def permissions(role: str) -> Permissions:
    perms = Permissions(lambda actor, host: role, parse_custom_roles(CUSTOM)[0])
    perms.grant("tercet:registered", "x:chat")
    perms.grant("user", "x:post")  # COMPAT: tercet:registered
    perms.grant("tercet:admin", "x:reset")
    perms.grant("tercet:operator", "x:shutdown")
    return perms


#: role -> the actions it has, of x:chat, x:post, x:reset, x:audit, x:shutdown.
EXPECTED = {
    "tercet:guest": set(),
    "tercet:registered": {"x:chat", "x:post"},
    "tercet:member": {"x:chat", "x:post"},
    "tercet:admin": {"x:chat", "x:post", "x:reset"},
    "tercet:operator": {"x:chat", "x:post", "x:reset", "x:shutdown"},
    "helpdesk": {"x:chat", "x:post", "x:reset"},
    "lead": {"x:post", "x:reset", "x:audit"},
    "tame-admin": {"x:chat", "x:post"},
    "removed-from-config": {"x:chat", "x:post"},  # the default role
}


@pytest.mark.parametrize("role", list(EXPECTED))
def test_every_role_against_every_action(role: str) -> None:
    perms = permissions(role)
    actions = ("x:chat", "x:post", "x:reset", "x:audit", "x:shutdown")
    assert {a for a in actions if perms.may(a, "someone@example.org", None)} == \
        EXPECTED[role]


def test_grants_count_and_revoke() -> None:
    perms = permissions("tercet:admin")
    perms.grant("tercet:admin", "x:twice")
    perms.grant("tercet:admin", "x:twice")
    perms.revoke("tercet:admin", "x:twice")
    assert perms.allows("tercet:admin", "x:twice")
    perms.revoke("tercet:admin", "x:twice")
    assert not perms.allows("tercet:admin", "x:twice")
    with pytest.raises(ValueError):
        perms.grant("helpdesk", "x:nope")
    assert perms.roles() == [*BUILTIN_ROLES, "helpdesk", "lead", "tame-admin"]
    assert perms.describe("lead") == {
        "name": "lead", "inherits": "helpdesk", "builtin": False, "description": "",
        "permissions": ["x:audit", "x:post", "x:reset"]}


def test_broken_custom_roles_are_dropped_with_a_reason() -> None:
    roles, problems = parse_custom_roles([
        {"name": "tercet:boss", "inherits": "tercet:admin"},
        {"name": "a", "inherits": "b"}, {"name": "b", "inherits": "a"},
        {"name": "orphan", "inherits": "nobody"},
        {"name": "typo", "inherit": "tercet:member"},
        {"name": "ok", "allow": ["x:y"]},
        {"name": "ok"},
    ])
    assert [r.name for r in roles] == ["ok"]
    assert roles[0].inherits == "tercet:registered"
    text = "\n".join(problems)
    for expected in ("reserved", "inherits from itself", "'nobody'", "unknown key",
                     "defined twice"):
        assert expected in text


def test_check_warns_about_roles_that_do_nothing_or_name_unknown_permissions() -> None:
    problems = custom_role_problems(
        [{"name": "idle", "inherits": "tercet:member"},
         {"name": "typo", "allow": ["muc:create-rooms", "muc:create-room"]}],
        declared_permissions())
    assert problems == [
        "role 'idle' allows and denies nothing: it is the same as 'tercet:member'",
        "role 'typo' names the permission 'muc:create-rooms', which no module declares"]


def test_modules_declare_their_permissions() -> None:
    declared = declared_permissions()
    assert declared["muc:create-room"] == "tercet:admin"
    assert declared["pubsub:create-node"] == "tercet:admin"
    assert declared["disco:be-discovered-admin"] == "tercet:admin"


def test_tercet_check_reports_the_options() -> None:
    config = Config.from_text(
        'custom_roles = [{ name = "typo", allow = ["muc:crate-room"] }]\n'
        '[virtualhosts."example.org"]\n')
    found = {(p.key, p.severity): p.message for p in config.check()}
    assert "muc:crate-room" in found[("custom_roles", "warning")]
    with pytest.raises(ConfigError) as err:
        Config.from_text('user_deletion_grace_period = "a week"\n'
                         '[virtualhosts."example.org"]\n')
    assert "user_deletion_grace_period" in str(err.value)
    good = Config.from_text('user_deletion_grace_period = "7d"\n'
                            '[virtualhosts."example.org"]\n')
    assert not [p for p in good.check() if p.key == "user_deletion_grace_period"]


@pytest.mark.parametrize(("text", "seconds"), [
    ("30s", 30), ("15m", 900), ("12h", 43200), ("7d", 604800), ("2w", 1209600),
    ("90", 90), (0, 0), (" 1.5h ", 5400)])
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "7 days", "d", "-1d", "1y"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_format_duration() -> None:
    assert [format_duration(s) for s in (604800, 86400 * 8, 90, 3600, 1.5)] == \
        ["1w", "8d", "90s", "1h", "1.5s"]
