"""The server configuration: a TOML file, a schema of known options, typed getters.

Layout of the file (option names follow Prosody's where the concept is the same)::

    admins = ["admin@example.org"]          # global options at the top
    c2s_ports = [5222]

    [virtualhosts."example.org"]            # per-host overrides, plus `enabled`
    allow_registration = true

    [components."conference.example.org"]   # components need `module`
    module = "muc"

Every option the core knows is declared in a :class:`Schema` (name, type, default, bounds,
one-line doc); the operator reference page is generated from it (:meth:`Schema.to_markdown`).
Modules declare their own options with :func:`register_option` or read them with the typed
getter :meth:`Config.option`.

Known keys are type-checked when the file is loaded (errors raise :class:`ConfigError`);
unknown keys only produce warnings because a module may claim them later
(:meth:`Config.check` with ``extra_known``). Every problem names the file, the dotted key,
what was expected, what was found and how to fix it.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
import re
import tomllib
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import idna

__all__ = [
    "CORE_MODULES",
    "DEFAULT_SCHEMA",
    "Config",
    "ConfigError",
    "ConfigProblem",
    "Invalid",
    "LogSettings",
    "Option",
    "Schema",
    "normalize_host",
    "register_option",
]

Severity = Literal["error", "warning"]
Scope = Literal["global", "host"]
PathBase = Literal["config", "data"]

#: The modules loaded when ``modules_enabled`` is not set.
CORE_MODULES: tuple[str, ...] = (
    "roster", "saslauth", "tls", "disco", "ping", "version", "time", "uptime",
    "lastactivity", "private", "vcard", "blocklist", "offline", "register",
    "server_contact_info", "c2s", "bind", "iq", "message", "presence",
)

_SECTION_HOSTS = "virtualhosts"
_SECTION_COMPONENTS = "components"
_HOST_ONLY_KEYS = ("enabled",)
_UNSET: Any = object()


# --------------------------------------------------------------------------------------
# Problems and errors


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


@dataclass(frozen=True, slots=True)
class Invalid:
    """What a value check found wrong; the caller adds file and key."""

    expected: str
    found: str
    fix: str = ""
    severity: Severity = "error"


Validator = Callable[[Any], list[Invalid]]


# --------------------------------------------------------------------------------------
# Type specifications: plain Python types, list[X], dict[str, X] and unions (str | dict).


def _type_matches(value: Any, spec: Any) -> bool:
    if isinstance(spec, types.UnionType):
        return any(_type_matches(value, s) for s in spec.__args__)
    origin, args = typing.get_origin(spec), typing.get_args(spec)
    if origin is list:
        return isinstance(value, list) and all(_type_matches(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(_type_matches(v, args[1]) for v in value.values())
    if spec is object or spec is Any:
        return True
    if spec is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if spec is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, spec)


_TYPE_NAMES = {
    str: ("a string", "strings"), int: ("an integer", "integers"),
    float: ("a number", "numbers"), bool: ("true or false", "booleans"),
    dict: ("a table", "tables"), list: ("a list", "lists"),
}


def describe_type(spec: Any, *, plural: bool = False) -> str:
    """Operator-facing name of a type spec: ``list[int]`` -> "a list of integers"."""
    if isinstance(spec, types.UnionType):
        return " or ".join(describe_type(s, plural=plural) for s in spec.__args__)
    origin, args = typing.get_origin(spec), typing.get_args(spec)
    if origin is list:
        return "lists" if plural else f"a list of {describe_type(args[0], plural=True)}"
    if origin is dict:
        return "tables" if plural else f"a table of {describe_type(args[1], plural=True)}"
    names = _TYPE_NAMES.get(spec)
    if names is None:
        return getattr(spec, "__name__", str(spec))
    return names[1] if plural else names[0]


def _kind(value: Any) -> str:
    for spec in (bool, int, float, str, list, dict):
        if _type_matches(value, spec):
            return _TYPE_NAMES[spec][0]
    return type(value).__name__


def toml_repr(value: Any, limit: int = 60) -> str:
    """A short TOML rendering of a value, for messages and the generated docs."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str | int | float):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, list):
        text = "[" + ", ".join(toml_repr(v, limit) for v in value) + "]"
    elif isinstance(value, dict):
        inner = ", ".join(f"{_key_part(k)} = {toml_repr(v, limit)}" for k, v in value.items())
        text = "{ " + inner + " }" if inner else "{}"
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _found(value: Any) -> str:
    return f"{_kind(value)} ({toml_repr(value)})"


def _type_fix(key: str, value: Any, spec: Any, example: Any) -> str:
    """A concrete suggestion for a value of the wrong type."""
    item = typing.get_args(spec)[0] if typing.get_origin(spec) is list else None
    if item is not None and _type_matches(value, item):
        return f"Put it in square brackets: {key} = [{toml_repr(value)}]."
    if spec is bool:
        return f"Write {key} = true or {key} = false."
    if isinstance(value, str) and _unquoted_matches(value, spec):
        return f"Remove the quotes: {key} = {value.strip().lower()}."
    if example is not None:
        return f"Write it like: {key} = {toml_repr(example)}."
    return f"Change it to {describe_type(spec)}."


def _unquoted_matches(text: str, spec: Any) -> bool:
    try:
        value = tomllib.loads(f"v = {text.strip().lower()}")["v"]
    except tomllib.TOMLDecodeError:
        return False
    return not isinstance(value, str) and _type_matches(value, spec)


def _first_mismatch(value: Any, spec: Any) -> str:
    """Describe the offending part of a value that does not match ``spec``."""
    origin, args = typing.get_origin(spec), typing.get_args(spec)
    if origin is list and isinstance(value, list):
        for index, item in enumerate(value, 1):
            if not _type_matches(item, args[0]):
                return f"a list whose item {index} is {_found(item)}"
    if origin is dict and isinstance(value, dict):
        for name, item in value.items():
            if not _type_matches(item, args[1]):
                return f"a table whose {_key_part(name)} is {_found(item)}"
    return _found(value)


def check_value(
    key: str, value: Any, spec: Any, *, min: float | None = None, max: float | None = None,
    choices: Iterable[Any] | None = None, example: Any = None,
    validate: Validator | None = None,
) -> list[Invalid]:
    """Check one value; bounds and choices apply to each item of a list."""
    if not _type_matches(value, spec):
        return [Invalid(describe_type(spec), _first_mismatch(value, spec),
                        _type_fix(key, value, spec, example))]
    items = value if isinstance(value, list) else [value]
    for item in items:
        problem = _check_bounds(key, item, min, max) or _check_choice(item, choices)
        if problem is not None:
            return [problem]
    return validate(value) if validate is not None else []


def _check_bounds(key: str, item: Any, low: float | None, high: float | None) -> Invalid | None:
    if not isinstance(item, int | float) or isinstance(item, bool):
        return None
    if (low is None or item >= low) and (high is None or item <= high):
        return None
    if low is not None and high is not None:
        expected = f"a value from {low} to {high}"
    elif low is not None:
        expected = f"a value of at least {low}"
    else:
        expected = f"a value of at most {high}"
    if low is not None and item < low:
        return Invalid(expected, str(item), f"Set {key} = {low} (the minimum) or more.")
    return Invalid(expected, str(item), f"Set {key} = {high} (the maximum) or less.")


def _check_choice(item: Any, choices: Iterable[Any] | None) -> Invalid | None:
    if choices is None:
        return None
    allowed = list(choices)
    if item in allowed:
        return None
    expected = "one of " + ", ".join(toml_repr(c) for c in allowed)
    return Invalid(expected, toml_repr(item), _did_you_mean(str(item), [str(c) for c in allowed]))


def _did_you_mean(word: str, candidates: Iterable[str]) -> str:
    by_lower = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return f'Did you mean "{by_lower[close[0]]}"?' if close else ""


# --------------------------------------------------------------------------------------
# The schema


@dataclass(frozen=True, slots=True)
class Option:
    """One declared option.

    ``scope="global"`` options are process-wide: setting them in a host table only warns.
    ``path_base`` marks path options; relative values are resolved against the config
    file's directory ("config") or ``data_path`` ("data").
    """

    name: str
    type: Any
    default: Any
    doc: str
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None
    scope: Scope = "host"
    path_base: PathBase | None = None
    example: Any = None
    validate: Validator | None = field(default=None, compare=False)
    owner: str = "core"

    def check(self, key: str, value: Any) -> list[Invalid]:
        example = self.example if self.example is not None else self.default
        return check_value(key, value, self.type, min=self.min, max=self.max,
                           choices=self.choices, example=example, validate=self.validate)

    def default_text(self) -> str:
        if self.default is None:
            return "(none)"
        if self.path_base == "data":
            return f"<data_path>/{self.default}"
        return toml_repr(self.default, limit=10_000)


class Schema:
    """The set of known options, in declaration order."""

    def __init__(self, options: Iterable[Option] = ()) -> None:
        self._options: dict[str, Option] = {}
        for option in options:
            self.register(option)

    def register(self, option: Option) -> Option:
        """Add an option. The same owner may declare it again (a module reloaded with a
        changed declaration replaces its own); another owner may not take it over."""
        existing = self._options.get(option.name)
        if existing is not None and existing.owner != option.owner:
            raise ValueError(f"option {option.name!r} is already declared by {existing.owner}")
        self._options[option.name] = option
        return option

    def get(self, name: str) -> Option | None:
        return self._options.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._options

    def __iter__(self) -> Iterator[Option]:
        return iter(self._options.values())

    def names(self) -> list[str]:
        return list(self._options)

    def copy(self) -> Schema:
        return Schema(self._options.values())

    def to_markdown(self) -> str:
        """The option reference table for the operator docs."""
        rows = ["| Option | Type | Default | Scope | Description |", "|---|---|---|---|---|"]
        for opt in self:
            kind = describe_type(opt.type)
            if opt.choices:
                kind = "one of " + ", ".join(f"`{toml_repr(c)}`" for c in opt.choices)
            bounds = _bounds_text(opt)
            doc = opt.doc + (f" ({bounds})" if bounds else "")
            default = opt.default_text().replace("|", "\\|")
            rows.append(f"| `{opt.name}` | {kind} | `{default}` | {opt.scope} | {doc} |")
        return "\n".join(rows) + "\n"


def _bounds_text(opt: Option) -> str:
    parts = []
    if opt.min is not None:
        parts.append(f"min {opt.min}")
    if opt.max is not None:
        parts.append(f"max {opt.max}")
    return ", ".join(parts)


# Validators for the core options ------------------------------------------------------


def _valid_bare_jids(value: list[str]) -> list[Invalid]:
    for jid in value:
        node, sep, domain = jid.partition("@")
        if not sep or not node or "/" in jid or "@" in domain or not _is_domain(domain):
            return [Invalid('bare JIDs like "admin@example.org"', toml_repr(jid),
                            "Write each admin as user@domain, without a resource.")]
    return []


def _valid_interfaces(value: list[str]) -> list[Invalid]:
    for address in value:
        if address in ("*", "::"):
            continue
        try:
            ipaddress.ip_address(address)
        except ValueError:
            return [Invalid('IP addresses, "*" (all IPv4) or "::" (all IPv6)', toml_repr(address),
                            "Use an address such as \"127.0.0.1\"; host names are not accepted.")]
    return []


_STORAGE_DRIVERS = ("sqlite", "memory", "postgresql")


def _valid_storage(value: str | dict[str, Any]) -> list[Invalid]:
    drivers = [value] if isinstance(value, str) else [
        v for v in value.values() if isinstance(v, str)]
    for driver in drivers:
        if driver not in _STORAGE_DRIVERS:
            hint = _did_you_mean(driver, _STORAGE_DRIVERS) or (
                "Ignore this if a plugin provides that driver.")
            return [Invalid("a built-in storage driver (" + ", ".join(_STORAGE_DRIVERS) + ")",
                            toml_repr(driver), hint, severity="warning")]
    return []


_LOG_LEVELS = ("debug", "info", "warn", "warning", "error")


def _valid_log(value: str | dict[str, Any]) -> list[Invalid]:
    table = {"level": value} if isinstance(value, str) else value
    unknown = sorted(set(table) - {"level", "file"})
    if unknown:
        return [Invalid("a table with the keys level and file", f"the key {unknown[0]!r}",
                        'Write it like: log = { level = "info", file = "tercet.log" }.')]
    level = table.get("level", "info")
    if level not in _LOG_LEVELS:
        return [Invalid("a level among " + ", ".join(_LOG_LEVELS), toml_repr(level),
                        _did_you_mean(str(level), _LOG_LEVELS))]
    if not isinstance(table.get("file", ""), str):
        return [Invalid("a file name string", _found(table["file"]),
                        'Write it like: log = { level = "info", file = "tercet.log" }.')]
    return []


def _valid_urls(value: list[str]) -> list[Invalid]:
    for url in value:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http", "file") or not (parts.netloc or parts.path):
            return [Invalid("http(s) or file URLs", toml_repr(url),
                            'Write each repository like "https://example.org/tercet/".')]
    return []


# XEP-0157 field names.
_CONTACT_FIELDS = ("abuse", "admin", "feedback", "sales", "security", "status", "support")


def _valid_contact_info(value: dict[str, Any]) -> list[Invalid]:
    for name, uris in value.items():
        if name not in _CONTACT_FIELDS:
            return [Invalid("XEP-0157 fields (" + ", ".join(_CONTACT_FIELDS) + ")",
                            toml_repr(name), _did_you_mean(name, _CONTACT_FIELDS))]
        if not _type_matches(uris, list[str]):
            return [Invalid(f"a list of URIs for {name}", _found(uris),
                            f'Write it like: {name} = ["mailto:{name}@example.org"].')]
    return []


def _port_option(name: str, default: list[int], doc: str) -> Option:
    # Port 0 lets the OS choose (used by tests).
    return Option(name, list[int], default, doc, min=0, max=65535, scope="global")


def _core_options() -> list[Option]:
    return [
        Option("admins", list[str], [], "Bare JIDs with the admin role.",
               example=["admin@example.org"], validate=_valid_bare_jids),
        Option("modules_enabled", list[str], list(CORE_MODULES),
               "Modules to load; a host's list adds to the global one."),
        Option("modules_disabled", list[str], [], "Modules not to load, even if enabled.",
               example=["offline"]),
        _port_option("c2s_ports", [5222], "Client ports with STARTTLS."),
        _port_option("c2s_direct_tls_ports", [5223], "Client ports with direct TLS (XEP-0368)."),
        Option("c2s_interfaces", list[str], ["127.0.0.1", "::1"],
               'Addresses client ports listen on; "*" = all IPv4, "::" = all IPv6.',
               scope="global", validate=_valid_interfaces),
        Option("c2s_require_encryption", bool, True, "Refuse clients that do not use TLS."),
        Option("allow_unencrypted_plain_auth", bool, False,
               "Offer PLAIN authentication on unencrypted connections."),
        # RFC 6120 §13.12: a server must accept stanzas of at least 10000 bytes.
        Option("c2s_stanza_size_limit", int, 262144, "Largest client stanza in bytes.",
               min=10000, max=16 * 1024 * 1024, scope="global"),
        Option("c2s_timeout", int, 60, "Seconds a client may take to authenticate.",
               min=1, max=3600, scope="global"),
        Option("c2s_max_unauthenticated_per_ip", int, 20,
               "Unauthenticated client connections allowed from one IP address.",
               min=1, max=100000, scope="global"),
        Option("sasl_max_failures", int, 3,
               "Failed authentication attempts before the connection is closed.",
               min=1, max=100),
        Option("scram_iterations", int, 4096, "PBKDF2 iterations for new SCRAM credentials.",
               min=4096, max=1_000_000),
        Option("data_path", str, "data", "Directory for databases, sockets and plugins.",
               scope="global", path_base="config"),
        Option("storage", str | dict[str, Any], "sqlite",
               "Storage driver, or a table of store name -> driver.",
               validate=_valid_storage),
        Option("log", str | dict[str, Any], "info",
               'Log level, or a table { level = "info", file = "tercet.log" }.',
               scope="global", validate=_valid_log),
        Option("pidfile", str, "tercet.pid", "File holding the server's process id.",
               scope="global", path_base="data"),
        Option("certificates", str, "certs", "Directory searched for certificates.",
               path_base="config"),
        Option("certificate", str, None, "Certificate file (PEM chain) for this host.",
               path_base="config", example="certs/example.org.crt"),
        Option("key", str, None, "Private key file (PEM) for this host.",
               path_base="config", example="certs/example.org.key"),
        Option("tls_min_version", str, "1.2", "Oldest TLS version accepted.",
               choices=("1.2", "1.3")),
        Option("authentication", str, "internal_hashed", "Account provider.",
               choices=("internal_hashed", "anonymous")),
        Option("jid_profile", str, "stringprep",
               "JID preparation: RFC 6122 stringprep or RFC 7622 PRECIS.",
               choices=("stringprep", "precis"), scope="global"),
        Option("admin_socket", str, "admin.sock", "Unix socket of the admin shell.",
               scope="global", path_base="data"),
        Option("installer_plugin_path", str, "plugins", "Directory plugins are installed into.",
               scope="global", path_base="data"),
        Option("plugin_repositories", list[str], [], "Plugin repository URLs.",
               scope="global", example=["https://example.org/tercet/"], validate=_valid_urls),
        Option("allow_registration", bool, False, "Allow in-band registration (XEP-0077)."),
        Option("contact_info", dict[str, Any], {}, "Contact addresses (XEP-0157).",
               example={"admin": ["mailto:admin@example.org"]}, validate=_valid_contact_info),
        Option("hide_os_type", bool, False, "Do not reveal the OS in version replies (XEP-0092)."),
        Option("offline_message_limit", int, 1000, "Messages stored per offline user.",
               min=0, max=1_000_000),
    ]


#: The schema used when none is given; modules add to it with :func:`register_option`.
DEFAULT_SCHEMA = Schema(_core_options())


def register_option(
    name: str, type: Any, default: Any, doc: str, *, min: float | None = None,
    max: float | None = None, choices: Iterable[Any] | None = None, scope: Scope = "host",
    path_base: PathBase | None = None, example: Any = None, validate: Validator | None = None,
    owner: str = "core", schema: Schema | None = None,
) -> Option:
    """Declare an option so that it is type-checked, documented and no longer "unknown"."""
    option = Option(name, type, default, doc, min=min, max=max,
                    choices=tuple(choices) if choices is not None else None, scope=scope,
                    path_base=path_base, example=example, validate=validate, owner=owner)
    return (schema or DEFAULT_SCHEMA).register(option)


# --------------------------------------------------------------------------------------
# Host names and dotted keys


def normalize_host(name: str) -> str:
    """Lower-case IDNA2008 U-label form of a host name; raises ValueError if invalid."""
    text = name.strip().rstrip(".")
    if not text:
        raise ValueError("empty host name")
    try:
        return str(idna.decode(idna.encode(text, uts46=True))).lower()
    except idna.IDNAError as exc:
        raise ValueError(str(exc)) from None


def _is_domain(name: str) -> bool:
    try:
        normalize_host(name)
    except ValueError:
        return False
    return True


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _key_part(part: str) -> str:
    return part if _BARE_KEY.fullmatch(part) else json.dumps(part, ensure_ascii=False)


def dotted(*parts: str) -> str:
    """TOML dotted key: dotted("virtualhosts", "example.org") -> virtualhosts."example.org"."""
    return ".".join(_key_part(p) for p in parts)


class _KeyLines:
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


# --------------------------------------------------------------------------------------
# Validation of a whole parsed file


@dataclass(slots=True)
class _Validator:
    raw: dict[str, Any]
    file: str
    schema: Schema
    extra_known: frozenset[str]
    lines: _KeyLines
    problems: list[ConfigProblem] = field(default_factory=list)

    def add(self, severity: Severity, path: tuple[str, ...], message: str, fix: str = "") -> None:
        self.problems.append(ConfigProblem(severity, self.file, dotted(*path), message, fix,
                                           self.lines.near(*path)))

    def add_invalid(self, path: tuple[str, ...], invalid: Invalid) -> None:
        self.add(invalid.severity, path,
                 f"expected {invalid.expected}, found {invalid.found}", invalid.fix)

    def run(self) -> list[ConfigProblem]:
        for key, value in self.raw.items():
            if key in (_SECTION_HOSTS, _SECTION_COMPONENTS):
                self.check_section(key, value)
            else:
                self.check_key((key,), value, host_table=False)
        self.check_cross(())
        self.check_admin_domains()
        self.check_some_host()
        return self.problems

    def check_some_host(self) -> None:
        hosts = self.raw.get(_SECTION_HOSTS, {})
        if isinstance(hosts, dict) and any(
                isinstance(t, dict) and t.get("enabled", True) is not False
                for t in hosts.values()):
            return
        self.add("warning", (_SECTION_HOSTS,), "no virtual host is enabled",
                 'Add a table such as [virtualhosts."example.org"].')

    def check_key(self, path: tuple[str, ...], value: Any, *, host_table: bool) -> None:
        key = path[-1]
        option = self.schema.get(key)
        if option is None:
            if key not in self.extra_known:
                self.unknown(path, host_table)
            return
        if host_table and option.scope == "global":
            self.add("warning", path, f"{key} is a global option and has no effect per host",
                     "Move it above the first [virtualhosts] or [components] table "
                     "(TOML puts every key below a [table] heading into that table).")
        for invalid in option.check(key, value):
            self.add_invalid(path, invalid)

    def unknown(self, path: tuple[str, ...], host_table: bool) -> None:
        candidates = self.schema.names() + sorted(self.extra_known)
        candidates += list(_HOST_ONLY_KEYS) if host_table else [_SECTION_HOSTS, _SECTION_COMPONENTS]
        hint = _did_you_mean(path[-1], candidates)
        message = f"unknown option {path[-1]!r}"
        self.add("warning", path, message,
                 (hint + " " if hint else "") + "Ignore this if a module uses it.")

    def check_section(self, section: str, value: Any) -> None:
        if not _type_matches(value, dict[str, dict[str, Any]]):
            example = 'virtualhosts."example.org"' if section == _SECTION_HOSTS else \
                'components."conference.example.org"'
            self.add("error", (section,), f"expected a table of tables, found "
                     f"{_first_mismatch(value, dict[str, dict[str, Any]])}",
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
        if section == _SECTION_COMPONENTS:
            self.check_host_collisions(seen)

    def check_host_table(self, section: str, name: str, table: dict[str, Any]) -> None:
        base = (section, name)
        if section == _SECTION_COMPONENTS:
            module = table.get("module")
            if not isinstance(module, str) or not module.strip():
                found = "nothing" if module is None else _found(module)
                self.add("error", (*base, "module"),
                         f"expected the name of the module that provides the component, "
                         f"found {found}", f'Add: module = "muc" under [{dotted(*base)}].')
        for key, value in table.items():
            if key == "enabled":
                if not isinstance(value, bool):
                    self.add("error", (*base, key), f"expected true or false, found "
                             f"{_found(value)}", "Write enabled = true or enabled = false.")
            elif not (section == _SECTION_COMPONENTS and key == "module"):
                self.check_key((*base, key), value, host_table=True)
        self.check_cross(base)

    def check_host_collisions(self, components: dict[str, str]) -> None:
        hosts = self.raw.get(_SECTION_HOSTS)
        if not isinstance(hosts, dict):
            return
        host_names = {_try_normalize(h) for h in hosts}
        for normal, name in components.items():
            if normal in host_names:
                self.add("error", (_SECTION_COMPONENTS, name),
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
        plain = values.get("c2s_ports", [5222])
        tls = values.get("c2s_direct_tls_ports", [5223])
        if not (_type_matches(plain, list[int]) and _type_matches(tls, list[int])):
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
        hosts = self.raw.get(_SECTION_HOSTS)
        if not isinstance(admins, list) or not isinstance(hosts, dict):
            return
        names = {_try_normalize(h) for h in hosts}
        for jid in _str_list(admins):
            domain = jid.partition("@")[2]
            if _is_domain(domain) and normalize_host(domain) not in names:
                self.add("warning", ("admins",), f"{jid} is not on a configured virtual host",
                         f'Add [virtualhosts."{domain}"] or correct the JID.')


def _type_of_default(default: Any) -> Any:
    if default is None:
        return object
    if isinstance(default, float):
        return float
    return default.__class__


def _try_normalize(name: str) -> str:
    try:
        return normalize_host(name)
    except ValueError:
        return name


def _str_list(value: Any) -> list[str]:
    return value if _type_matches(value, list[str]) else []


def _syntax_problem(file: str, text: str, exc: tomllib.TOMLDecodeError) -> ConfigProblem:
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


# --------------------------------------------------------------------------------------
# The Config object


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: str
    file: Path | None


@dataclass(frozen=True, slots=True)
class _HostScope:
    name: str            # normalised
    raw_name: str        # as written, for messages
    section: str         # "virtualhosts" | "components"
    settings: Mapping[str, Any]

    @property
    def enabled(self) -> bool:
        return self.settings.get("enabled", True) is not False


class Config:
    """A loaded, validated configuration. Build it with :meth:`load` or :meth:`from_text`."""

    def __init__(self, path: str | os.PathLike[str], raw: dict[str, Any], text: str, *,
                 schema: Schema | None = None,
                 problems: Iterable[ConfigProblem] = ()) -> None:
        self._file = str(path)                 # as the operator wrote it, for messages
        self.path = Path(path).absolute()
        self.schema = schema or DEFAULT_SCHEMA
        self._raw = raw
        self._lines = _KeyLines(text)
        self._global: dict[str, Any] = {
            k: v for k, v in raw.items() if k not in (_SECTION_HOSTS, _SECTION_COMPONENTS)}
        self._scopes: dict[str, _HostScope] = {}
        for section in (_SECTION_HOSTS, _SECTION_COMPONENTS):
            for name, table in raw.get(section, {}).items():
                scope = _HostScope(normalize_host(name), name, section, table)
                self._scopes[scope.name] = scope
        #: Warnings found while loading.
        self.problems: list[ConfigProblem] = list(problems)

    # construction ----------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, schema: Schema | None = None) -> Config:
        """Read and validate a file; raises :class:`ConfigError` listing every error."""
        file = Path(path)
        try:
            data = file.read_bytes()
        except FileNotFoundError:
            raise ConfigError(ConfigProblem(
                "error", str(file), "", "config file not found",
                "Create one with `tercet init DIR`, or pass -c FILE / set TERCET_CONFIG.",
            )) from None
        except OSError as exc:
            raise ConfigError(ConfigProblem(
                "error", str(file), "", f"cannot read the file ({exc.strerror})",
                "Check the path and its permissions.")) from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise ConfigError(ConfigProblem(
                "error", str(file), "", "expected UTF-8 text, found an invalid byte",
                "Save the file as UTF-8.", line)) from None
        return cls.from_text(text, file, schema=schema)

    @classmethod
    def from_text(cls, text: str, path: str | os.PathLike[str] = "tercet.toml", *,
                  schema: Schema | None = None) -> Config:
        """Parse TOML text as if read from ``path`` (relative paths resolve next to it)."""
        file = str(path)
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(_syntax_problem(file, text, exc)) from None
        problems = _Validator(raw, file, schema or DEFAULT_SCHEMA, frozenset(),
                              _KeyLines(text)).run()
        errors = [p for p in problems if p.severity == "error"]
        if errors:
            raise ConfigError(errors)
        return cls(path, raw, text, schema=schema, problems=problems)

    def _validate(self, extra_known: Iterable[str]) -> list[ConfigProblem]:
        return _Validator(self._raw, self._file, self.schema, frozenset(extra_known),
                          self._lines).run()

    def check(self, extra_known: Iterable[str] = ()) -> list[ConfigProblem]:
        """All problems under the current schema; ``extra_known`` names keys that modules
        claim without declaring them."""
        return self._validate(extra_known)

    # lookups ---------------------------------------------------------------------------

    @property
    def file(self) -> str:
        """The path as the operator gave it, for messages."""
        return self._file

    def host_location(self, host: str) -> tuple[str, int | None]:
        """Dotted key and line of a host's table as written (``virtualhosts."Example.org"``),
        for messages about that host."""
        scope = self._scopes.get(_try_normalize(host))
        if scope is None:
            return dotted(_SECTION_HOSTS, host), None
        path = (scope.section, scope.raw_name)
        return dotted(*path), self._lines.line(*path)

    @property
    def directory(self) -> Path:
        return self.path.parent

    @property
    def hosts(self) -> list[str]:
        """Enabled virtual hosts, normalised (lower-case IDNA U-labels)."""
        return [s.name for s in self._scopes.values()
                if s.section == _SECTION_HOSTS and s.enabled]

    @property
    def components(self) -> dict[str, str]:
        """Enabled components: host name -> module name."""
        return {s.name: str(s.settings["module"]) for s in self._scopes.values()
                if s.section == _SECTION_COMPONENTS and s.enabled}

    def is_component(self, host: str) -> bool:
        scope = self._scopes.get(_try_normalize(host))
        return scope is not None and scope.section == _SECTION_COMPONENTS

    def _lookup(self, key: str, host: str | None) -> tuple[Any, tuple[str, ...]] | None:
        if host is not None:
            scope = self._scopes.get(_try_normalize(host))
            if scope is not None and key in scope.settings:
                return scope.settings[key], (scope.section, scope.raw_name, key)
        if key in self._global:
            return self._global[key], (key,)
        return None

    def get(self, key: str, host: str | None = None, default: Any = None) -> Any:
        """The host's value, else the global value, else the schema default, else
        ``default``."""
        found = self._lookup(key, host)
        if found is not None:
            return found[0]
        option = self.schema.get(key)
        return option.default if option is not None else default

    def get_host_only(self, key: str, host: str) -> Any:
        """The value set in the host's own table, or None (no global fallback)."""
        scope = self._scopes.get(_try_normalize(host))
        return scope.settings.get(key) if scope is not None else None

    def option(self, key: str, default: Any, *, type: Any = None, min: float | None = None,
               max: float | None = None, choices: Iterable[Any] | None = None,
               host: str | None = None) -> Any:
        """Typed getter for modules; raises :class:`ConfigError` naming file and key.

        Lookup order: host table, global, ``default`` (returned as is). With ``type=None``
        the type of ``default`` is used (floats also accept integers).
        """
        found = self._lookup(key, host)
        if found is None:
            return default
        value, path = found
        if type is None:
            type = _type_of_default(default)
        for invalid in check_value(key, value, type, min=min, max=max,
                                   choices=choices, example=default):
            if invalid.severity == "error":
                raise ConfigError(ConfigProblem(
                    "error", self._file, dotted(*path),
                    f"expected {invalid.expected}, found {invalid.found}", invalid.fix,
                    self._lines.near(*path)))
        return value

    def resolve_path(self, key: str, host: str | None = None) -> Path | None:
        """A path option made absolute (against the config directory or ``data_path``)."""
        value = self.get(key, host)
        if value is None:
            return None
        path = Path(value).expanduser()
        if path.is_absolute():
            return path
        option = self.schema.get(key)
        base = self.data_path if option is not None and option.path_base == "data" \
            else self.directory
        return Path(os.path.normpath(base / path))

    @property
    def data_path(self) -> Path:
        path = Path(self.get("data_path")).expanduser()
        return path if path.is_absolute() else Path(os.path.normpath(self.directory / path))

    def modules_for_host(self, host: str) -> list[str]:
        """Global modules_enabled plus the host's, minus both modules_disabled lists."""
        scope = self._scopes.get(_try_normalize(host))
        local = scope.settings if scope is not None else {}
        enabled = list(self._global.get("modules_enabled", CORE_MODULES))
        enabled += [m for m in local.get("modules_enabled", []) if m not in enabled]
        disabled = set(self._global.get("modules_disabled", [])) | set(
            local.get("modules_disabled", []))
        return [m for m in enabled if m not in disabled]

    def logging(self) -> LogSettings:
        value = self.get("log")
        table = {"level": value} if isinstance(value, str) else dict(value)
        level = str(table.get("level", "info"))
        file = table.get("file")
        path = None
        if file:
            path = Path(file).expanduser()
            path = path if path.is_absolute() else self.directory / path
        return LogSettings("warning" if level == "warn" else level, path)

    def __repr__(self) -> str:
        return f"<Config {self.path} hosts={self.hosts}>"
