"""Validating a parsed file against a schema, with source locations.

``tomllib`` keeps no positions, so :class:`KeyLines` maps key paths back to lines on a
best-effort basis. Every :class:`ConfigProblem` names the file, the dotted key, what was
expected, what was found and how to fix it; errors make the file unusable
(:class:`ConfigError`), warnings do not (an unknown key may belong to a plugin that is not
installed yet).
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .core_options import ALWAYS_LOADED, DEFAULT_MODULES
from .schema import (
    Invalid,
    Schema,
    Severity,
    did_you_mean,
    first_mismatch,
    found_text,
    is_domain,
    key_part,
    matches_type,
    normalize_host,
)

SECTION_HOSTS = "virtualhosts"
SECTION_COMPONENTS = "components"
#: What a component table without ``module`` but with a secret runs (XEP-0114).
EXTERNAL_COMPONENT_MODULE = "component"
EXTERNAL_COMPONENT_SECRET = "component_secret"
_HOST_ONLY_KEYS = ("enabled",)


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One finding about the configuration.

    ``key`` is the dotted TOML path (``virtualhosts."example.org".c2s_ports``), empty when
    the finding is about the file as a whole. ``message`` says what was expected and what
    was found; ``fix`` says what to do about it.
    """

    severity: Severity
    file: str
    key: str
    message: str
    fix: str = ""
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        key = f" {self.key}:" if self.key else ""
        fix = f" {self.fix}" if self.fix else ""
        return f"{where}: {self.severity}:{key} {self.message}.{fix}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity, "file": self.file, "line": self.line,
            "key": self.key, "message": self.message, "fix": self.fix,
        }


class ConfigError(Exception):
    """The configuration cannot be used. ``problems`` holds every error found."""

    def __init__(self, problems: ConfigProblem | Iterable[ConfigProblem] | str) -> None:
        if isinstance(problems, str):
            problems = [ConfigProblem("error", "", "", problems)]
        elif isinstance(problems, ConfigProblem):
            problems = [problems]
        self.problems: list[ConfigProblem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


# --------------------------------------------------------------------------------------
# Dotted keys and their lines


def dotted(*parts: str) -> str:
    """TOML dotted key: dotted("virtualhosts", "example.org") -> virtualhosts."example.org"."""
    return ".".join(key_part(p) for p in parts)


class KeyLines:
    """Best-effort map from a TOML key path to the line that sets it (tomllib has no
    positions). Used only to enrich messages, so a miss just omits the line number."""

    _HEADER = re.compile(r"\s*\[\[?(.*?)\]\]?\s*(#.*)?$")

    def __init__(self, text: str) -> None:
        self._lines: dict[tuple[str, ...], int] = {}
        table: tuple[str, ...] = ()
        in_string = False
        for number, line in enumerate(text.splitlines(), 1):
            if line.count('"""') % 2 or line.count("'''") % 2:
                in_string = not in_string
                if not in_string:
                    continue
            if in_string:
                continue
            header = self._HEADER.match(line)
            if header and "=" not in header.group(1):
                table = _parse_key(header.group(1))[0]
                self._lines.setdefault(table, number)
                continue
            parts, rest = _parse_key(line)
            if parts and rest.lstrip().startswith("="):
                self._lines.setdefault(table + parts, number)

    def line(self, *path: str) -> int | None:
        return self._lines.get(tuple(path))

    def near(self, *path: str) -> int | None:
        """The line of ``path``, else of its closest enclosing table (missing keys)."""
        for end in range(len(path), 0, -1):
            line = self._lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None


_KEY_SEGMENT = re.compile(r'\s*(?:([A-Za-z0-9_-]+)|"((?:[^"\\]|\\.)*)"|\'([^\']*)\')\s*')


def _parse_key(text: str) -> tuple[tuple[str, ...], str]:
    parts: list[str] = []
    pos = 0
    while True:
        match = _KEY_SEGMENT.match(text, pos)
        if match is None:
            return (), text
        bare, basic, literal = match.groups()
        if basic is not None:
            try:
                basic = json.loads(f'"{basic}"')
            except ValueError:
                return (), text
        parts.append(bare if bare is not None else basic if basic is not None else literal)
        pos = match.end()
        if not text.startswith(".", pos):
            return tuple(parts), text[pos:]
        pos += 1


def syntax_problem(file: str, text: str, exc: tomllib.TOMLDecodeError) -> ConfigProblem:
    """A TOML syntax error as a problem, with the line and, where we can, a hint."""
    message = str(exc)
    lines = text.splitlines()
    match = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
    if match is None and message.endswith("(at end of document)"):
        # Something opened earlier is never closed; point at the last line.
        reason = message.removesuffix("(at end of document)").strip() + " at the end of the file"
        return ConfigProblem(
            "error", file, "", f"TOML syntax error: {reason}",
            "Look for a missing ], } or closing quote above.", len(lines) or 1)
    line = int(match.group(1)) if match else None
    reason = message[: match.start()] if match else message
    fix = "Correct the TOML syntax (https://toml.io)."
    if line is not None and line <= len(lines):
        source = lines[line - 1]
        fix = f"Line {line} reads: {source.strip()!r}. " + fix
        if re.search(r"=\s*\{[^=]*\}", source):
            fix += " Lists are written with [ ], not { } as in Prosody's Lua config."
    return ConfigProblem("error", file, "", f"TOML syntax error: {reason}", fix, line)


def try_normalize(name: str) -> str:
    """``normalize_host``, or the name unchanged when it is not a valid host name."""
    try:
        return normalize_host(name)
    except ValueError:
        return name


def _str_list(value: Any) -> list[str]:
    return value if matches_type(value, list[str]) else []


# --------------------------------------------------------------------------------------
# Validation of a whole parsed file


def validate(raw: dict[str, Any], file: str, schema: Schema,
             lines: KeyLines) -> list[ConfigProblem]:
    """Every problem of a parsed file under ``schema``, in file order."""
    return _Validator(raw, file, schema, lines).run()


@dataclass(slots=True)
class _Validator:
    raw: dict[str, Any]
    file: str
    schema: Schema
    lines: KeyLines
    problems: list[ConfigProblem] = field(default_factory=list)

    def add(self, severity: Severity, path: tuple[str, ...], message: str, fix: str = "") -> None:
        self.problems.append(ConfigProblem(severity, self.file, dotted(*path), message, fix,
                                           self.lines.near(*path)))

    def add_invalid(self, path: tuple[str, ...], invalid: Invalid) -> None:
        self.add(invalid.severity, path,
                 f"expected {invalid.expected}, found {invalid.found}", invalid.fix)

    def run(self) -> list[ConfigProblem]:
        for key, value in self.raw.items():
            if key in (SECTION_HOSTS, SECTION_COMPONENTS):
                self.check_section(key, value)
            else:
                self.check_key((key,), value, host_table=False)
        self.check_cross(())
        self.check_admin_domains()
        self.check_some_host()
        self.check_default_modules()
        return self.problems

    def check_default_modules(self) -> None:
        """A global modules_enabled replaces the default list (as in Prosody): say which
        defaults it leaves out, since an operator who adds one module there usually did
        not mean to lose rosters and disco."""
        listed = self.raw.get("modules_enabled")
        if not isinstance(listed, list) or not matches_type(listed, list[str]):
            return
        left_out = [m for m in DEFAULT_MODULES if m not in listed and m not in ALWAYS_LOADED]
        if left_out:
            self.add("warning", ("modules_enabled",),
                     "modules_enabled replaces the default module list; these default "
                     f"modules are not in it and will not load: {', '.join(left_out)}",
                     "Add the ones you want to the list (the defaults are listed under "
                     "modules_enabled in docs/configuration.md), or ignore this warning if "
                     "leaving them out is intended.")

    def check_some_host(self) -> None:
        hosts = self.raw.get(SECTION_HOSTS, {})
        if isinstance(hosts, dict) and any(
                isinstance(t, dict) and t.get("enabled", True) is not False
                for t in hosts.values()):
            return
        self.add("warning", (SECTION_HOSTS,), "no virtual host is enabled",
                 'Add a table such as [virtualhosts."example.org"].')

    def check_key(self, path: tuple[str, ...], value: Any, *, host_table: bool) -> None:
        key = path[-1]
        option = self.schema.get(key)
        if option is None:
            self.unknown(path, host_table)
            return
        if host_table and option.scope == "global":
            self.add("warning", path, f"{key} is a global option and has no effect per host",
                     "Move it above the first [virtualhosts] or [components] table "
                     "(TOML puts every key below a [table] heading into that table).")
        for invalid in option.check(key, value):
            self.add_invalid(path, invalid)

    def unknown(self, path: tuple[str, ...], host_table: bool) -> None:
        candidates = self.schema.names()
        candidates += list(_HOST_ONLY_KEYS) if host_table else [SECTION_HOSTS, SECTION_COMPONENTS]
        hint = did_you_mean(path[-1], candidates)
        message = f"unknown option {path[-1]!r}"
        self.add("warning", path, message, (hint + " " if hint else "")
                 + "Ignore this if a plugin that is not installed uses it.")

    def check_section(self, section: str, value: Any) -> None:
        if not matches_type(value, dict[str, dict[str, Any]]):
            example = 'virtualhosts."example.org"' if section == SECTION_HOSTS else \
                'components."conference.example.org"'
            self.add("error", (section,), f"expected a table of tables, found "
                     f"{first_mismatch(value, dict[str, dict[str, Any]])}",
                     f"Write one table per name, e.g. [{example}].")
            return
        seen: dict[str, str] = {}
        for name, table in value.items():
            path = (section, name)
            try:
                normal = normalize_host(name)
            except ValueError as exc:
                self.add("error", path, f"expected a valid domain name, found {name!r} ({exc})",
                         "Use a DNS name such as \"example.org\".")
                continue
            if normal in seen:
                self.add("error", path, f"{name!r} names the same host as {seen[normal]!r}",
                         "Keep a single table per host.")
            seen[normal] = name
            self.check_host_table(section, name, table)
        if section == SECTION_COMPONENTS:
            self.check_host_collisions(seen)

    def check_host_table(self, section: str, name: str, table: dict[str, Any]) -> None:
        base = (section, name)
        if section == SECTION_COMPONENTS:
            self.check_component_module(base, table)
        for key, value in table.items():
            if key == "enabled":
                if not isinstance(value, bool):
                    self.add("error", (*base, key), f"expected true or false, found "
                             f"{found_text(value)}", "Write enabled = true or enabled = false.")
            elif not (section == SECTION_COMPONENTS and key == "module"):
                self.check_key((*base, key), value, host_table=True)
        self.check_cross(base)

    def check_component_module(self, base: tuple[str, ...], table: dict[str, Any]) -> None:
        """A component is served by a module (``module = "muc"``) or, with a
        ``component_secret`` and no module, by an external process (XEP-0114), as in
        Prosody."""
        module = table.get("module")
        secret = EXTERNAL_COMPONENT_SECRET in table
        if module is None and secret:
            return  # module "component": an external component
        if not isinstance(module, str) or not module.strip():
            found = "neither" if module is None else found_text(module)
            self.add("error", (*base, "module"),
                     "expected the name of the module that provides the component, or "
                     f"{EXTERNAL_COMPONENT_SECRET} for an external component, found {found}",
                     f'Add module = "muc" under [{dotted(*base)}], or '
                     f'{EXTERNAL_COMPONENT_SECRET} = "<a long random secret>" if a separate '
                     "process serves it (XEP-0114).")
        elif secret and module != EXTERNAL_COMPONENT_MODULE:
            self.add("warning", (*base, EXTERNAL_COMPONENT_SECRET),
                     f'{EXTERNAL_COMPONENT_SECRET} has no effect with module = "{module}"',
                     f"Remove module for an external component (XEP-0114), or remove "
                     f"{EXTERNAL_COMPONENT_SECRET}.")

    def check_host_collisions(self, components: dict[str, str]) -> None:
        hosts = self.raw.get(SECTION_HOSTS)
        if not isinstance(hosts, dict):
            return
        host_names = {try_normalize(h) for h in hosts}
        for normal, name in components.items():
            if normal in host_names:
                self.add("error", (SECTION_COMPONENTS, name),
                         f"{name!r} is configured both as a virtual host and as a component",
                         "Remove one of the two tables.")

    def scope_values(self, base: tuple[str, ...]) -> dict[str, Any]:
        table: Any = self.raw
        for part in base:
            table = table.get(part, {}) if isinstance(table, dict) else {}
        return table if isinstance(table, dict) else {}

    def check_cross(self, base: tuple[str, ...]) -> None:
        """Checks that involve more than one key of the same table."""
        values = self.scope_values(base)
        has_cert, has_key = "certificate" in values, "key" in values
        if has_cert != has_key:
            missing = "key" if has_cert else "certificate"
            self.add("error", (*base, missing), f"expected both certificate and key, found "
                     f"only {'certificate' if has_cert else 'key'}",
                     f"Add {missing} = \"...\" next to it, or remove both to use the "
                     "certificates directory.")
        both = set(_str_list(values.get("modules_enabled"))) & set(
            _str_list(values.get("modules_disabled")))
        if both:
            self.add("warning", (*base, "modules_disabled"),
                     f"{', '.join(sorted(both))} is both enabled and disabled",
                     "Remove it from one of the two lists; disabled wins.")
        if not base:
            self.check_ports(values)
            self.check_security(values)

    def check_ports(self, values: dict[str, Any]) -> None:
        # TODO: a way for the owning module (c2s) to declare checks across its options.
        plain_option = self.schema.get("c2s_ports")
        tls_option = self.schema.get("c2s_direct_tls_ports")
        if plain_option is None or tls_option is None:
            return
        plain = values.get("c2s_ports", plain_option.default)
        tls = values.get("c2s_direct_tls_ports", tls_option.default)
        if not (matches_type(plain, list[int]) and matches_type(tls, list[int])):
            return
        common = sorted(set(plain) & set(tls) - {0})
        if common:
            self.add("error", ("c2s_direct_tls_ports",),
                     f"expected ports not used by c2s_ports, found {common[0]} in both",
                     "Use distinct ports, e.g. c2s_ports = [5222] and "
                     "c2s_direct_tls_ports = [5223].")

    def check_security(self, values: dict[str, Any]) -> None:
        if values.get("c2s_require_encryption") is False:
            self.add("warning", ("c2s_require_encryption",),
                     "clients may connect without TLS",
                     "Set c2s_require_encryption = true unless a TLS proxy sits in front.")
        if values.get("allow_unencrypted_plain_auth") is True:
            self.add("warning", ("allow_unencrypted_plain_auth",),
                     "passwords may be sent in clear text",
                     "Set allow_unencrypted_plain_auth = false.")

    def check_admin_domains(self) -> None:
        admins = self.raw.get("admins")
        hosts = self.raw.get(SECTION_HOSTS)
        if not isinstance(admins, list) or not isinstance(hosts, dict):
            return
        names = {try_normalize(h) for h in hosts}
        for jid in _str_list(admins):
            domain = jid.partition("@")[2]
            if is_domain(domain) and normalize_host(domain) not in names:
                self.add("warning", ("admins",), f"{jid} is not on a configured virtual host",
                         f'Add [virtualhosts."{domain}"] or correct the JID.')
