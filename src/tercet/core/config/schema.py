"""Option declarations and value checks: what an option is, whether a value fits it.

An :class:`Option` is data: a module lists the options it owns in a module-level
``OPTIONS`` list and the server collects them (with the core's own, see ``core_options``)
into one :class:`Schema`. Value checks return :class:`Invalid` findings; the caller adds
the file and the key (``validation``). Type specs are plain Python types, ``list[X]``,
``dict[str, X]`` and unions (``str | dict[str, Any]``).
"""

from __future__ import annotations

import difflib
import functools
import ipaddress
import json
import re
import tomllib
import types
import typing
from collections.abc import Callable, Iterable, Iterator
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import urlsplit

import idna

Severity = Literal["error", "warning"]
Scope = Literal["global", "host"]
PathBase = Literal["config", "data"]

T = TypeVar("T", covariant=True)


@dataclass(frozen=True, slots=True)
class Invalid:
    """What a value check found wrong; the caller adds file and key."""

    expected: str
    found: str
    fix: str = ""
    severity: Severity = "error"


#: A check of one option's value beyond its type, bounds and choices.
Validator = Callable[[Any], list[Invalid]]


# --------------------------------------------------------------------------------------
# Type specs


def matches_type(value: Any, spec: Any) -> bool:
    """Whether ``value`` (as parsed from TOML) fits the type spec; booleans are not
    numbers, integers are floats."""
    if isinstance(spec, types.UnionType):
        return any(matches_type(value, s) for s in spec.__args__)
    origin, args = typing.get_origin(spec), typing.get_args(spec)
    if origin is list:
        return isinstance(value, list) and all(matches_type(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(matches_type(v, args[1]) for v in value.values())
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
        if matches_type(value, spec):
            return _TYPE_NAMES[spec][0]
    return type(value).__name__


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def key_part(part: str) -> str:
    """One TOML key segment, quoted when it is not a bare key."""
    return part if _BARE_KEY.fullmatch(part) else json.dumps(part, ensure_ascii=False)


def toml_repr(value: Any, limit: int = 60) -> str:
    """A short TOML rendering of a value, for messages and the generated docs."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str | int | float):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, list):
        text = "[" + ", ".join(toml_repr(v, limit) for v in value) + "]"
    elif isinstance(value, dict):
        inner = ", ".join(f"{key_part(k)} = {toml_repr(v, limit)}" for k, v in value.items())
        text = "{ " + inner + " }" if inner else "{}"
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def found_text(value: Any) -> str:
    """What was found, for a message: ``an integer (5)``."""
    return f"{_kind(value)} ({toml_repr(value)})"


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """``Did you mean "x"?`` for the closest candidate, or an empty string."""
    by_lower = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return f'Did you mean "{by_lower[close[0]]}"?' if close else ""


# --------------------------------------------------------------------------------------
# Checking one value


def check_value(
    key: str, value: Any, spec: Any, *, min: float | None = None, max: float | None = None,
    choices: Iterable[Any] | None = None, example: Any = None,
    validate: Validator | None = None,
) -> list[Invalid]:
    """Check one value; bounds and choices apply to each item of a list."""
    if not matches_type(value, spec):
        return [Invalid(describe_type(spec), first_mismatch(value, spec),
                        _type_fix(key, value, spec, example))]
    items = value if isinstance(value, list) else [value]
    for item in items:
        problem = _check_bounds(key, item, min, max) or _check_choice(item, choices)
        if problem is not None:
            return [problem]
    return validate(value) if validate is not None else []


def first_mismatch(value: Any, spec: Any) -> str:
    """Describe the offending part of a value that does not match ``spec``."""
    origin, args = typing.get_origin(spec), typing.get_args(spec)
    if origin is list and isinstance(value, list):
        for index, item in enumerate(value, 1):
            if not matches_type(item, args[0]):
                return f"a list whose item {index} is {found_text(item)}"
    if origin is dict and isinstance(value, dict):
        for name, item in value.items():
            if not matches_type(item, args[1]):
                return f"a table whose {key_part(name)} is {found_text(item)}"
    return found_text(value)


def _type_fix(key: str, value: Any, spec: Any, example: Any) -> str:
    """A concrete suggestion for a value of the wrong type."""
    item = typing.get_args(spec)[0] if typing.get_origin(spec) is list else None
    if item is not None and matches_type(value, item):
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
    return not isinstance(value, str) and matches_type(value, spec)


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
    return Invalid(expected, toml_repr(item), did_you_mean(str(item), [str(c) for c in allowed]))


# --------------------------------------------------------------------------------------
# Declarations


@dataclass(frozen=True)
class Option(Generic[T]):
    """One option, declared by the module that owns it (1.0)::

        OPTIONS = [Option("c2s_timeout", int, 60, "Seconds to authenticate.", min=1)]

    The value type ``T`` is inferred from ``type`` and ``default`` (write
    ``Option[str | None](...)`` where inference needs help). ``doc`` is one line for the
    reference page; ``cite`` names the RFC or XEP section that motivates a bound or the
    default ("RFC 6120 §13.12"). ``scope="global"`` options are process-wide: setting them
    in a host table only warns. ``path_base`` marks path options; relative values resolve
    against the config file's directory ("config") or ``data_path`` ("data"). Bounds and
    ``choices`` apply to each item of a list; ``validate`` checks what they cannot.
    ``owner`` is filled in when declarations are collected; a module leaves it empty.
    ``restart=True`` marks an option that a reload cannot apply (listening addresses, the
    data directory): ``tercet reload`` keeps the running value and says a restart is due.
    """

    name: str
    type: type[T] | types.UnionType
    default: T
    doc: str
    _: KW_ONLY
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None
    scope: Scope = "host"
    path_base: PathBase | None = None
    example: Any = None
    validate: Validator | None = field(default=None, compare=False)
    cite: str = ""
    owner: str = ""
    restart: bool = False

    def check(self, key: str, value: Any) -> list[Invalid]:
        """What is wrong with ``value`` for this option (written as ``key``)."""
        example = self.example if self.example is not None else self.default
        return check_value(key, value, self.type, min=self.min, max=self.max,
                           choices=self.choices, example=example, validate=self.validate)

    def default_text(self) -> str:
        """The default as the reference page shows it."""
        if self.default is None:
            return "(none)"
        if self.path_base == "data":
            return f"<data_path>/{self.default}"
        return toml_repr(self.default, limit=10_000)


class Schema:
    """A set of declared options, in declaration order; immutable once built (1.0).

    Two owners may not declare the same name (ValueError); the same owner declaring a name
    again replaces its earlier declaration.
    """

    def __init__(self, options: Iterable[Option[Any]] = ()) -> None:
        self._options: dict[str, Option[Any]] = {}
        for option in options:
            existing = self._options.get(option.name)
            if existing is not None and existing.owner != option.owner:
                raise ValueError(f"option {option.name!r} is declared by both "
                                 f"{existing.owner or '?'} and {option.owner or '?'}")
            self._options[option.name] = option

    def get(self, name: str) -> Option[Any] | None:
        return self._options.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._options

    def __iter__(self) -> Iterator[Option[Any]]:
        return iter(self._options.values())

    def __len__(self) -> int:
        return len(self._options)

    def names(self) -> list[str]:
        return list(self._options)

    def extended(self, options: Iterable[Option[Any]]) -> Schema:
        """A new schema with ``options`` added (same rules as the constructor)."""
        return Schema([*self, *options])

    def to_markdown(self) -> str:
        """The reference page body: one section per owner (core first), one table each."""
        owners: dict[str, list[Option[Any]]] = {}
        for option in self:
            owners.setdefault(option.owner, []).append(option)
        sections = []
        for owner in sorted(owners, key=lambda o: (o != "core", o)):
            title = "Core options" if owner == "core" else f"Module `{owner}`"
            sections.append(f"## {title}\n\n{_table(owners[owner])}")
        return "\n".join(sections)


def _table(options: Iterable[Option[Any]]) -> str:
    rows = ["| Option | Type | Default | Scope | Description |", "|---|---|---|---|---|"]
    for opt in options:
        kind = describe_type(opt.type)
        if opt.choices:
            kind = "one of " + ", ".join(f"`{toml_repr(c)}`" for c in opt.choices)
        notes = "; ".join(n for n in (_bounds_text(opt), opt.cite,
                                      "a restart applies it" if opt.restart else "") if n)
        doc = opt.doc + (f" ({notes})" if notes else "")
        default = opt.default_text().replace("|", "\\|")
        rows.append(f"| `{opt.name}` | {kind} | `{default}` | {opt.scope} | {doc} |")
    return "\n".join(rows) + "\n"


def _bounds_text(opt: Option[Any]) -> str:
    parts = []
    if opt.min is not None:
        parts.append(f"min {opt.min}")
    if opt.max is not None:
        parts.append(f"max {opt.max}")
    return ", ".join(parts)


# --------------------------------------------------------------------------------------
# Host names and shared validators


# Host names normalised, remembered (least recently used first out): the IDNA round trip
# costs ~3 µs and configuration lookups by host run on every login and s2s stream.
NORMALIZED_HOSTS_CACHE_SIZE = 1024


@functools.lru_cache(maxsize=NORMALIZED_HOSTS_CACHE_SIZE)
def normalize_host(name: str) -> str:
    """Lower-case IDNA2008 U-label form of a host name; raises ValueError if invalid."""
    text = name.strip().rstrip(".")
    if not text:
        raise ValueError("empty host name")
    try:
        return str(idna.decode(idna.encode(text, uts46=True))).lower()
    except idna.IDNAError as exc:
        raise ValueError(str(exc)) from None


def is_domain(name: str) -> bool:
    """Whether ``name`` is a valid host name."""
    try:
        normalize_host(name)
    except ValueError:
        return False
    return True


def valid_bare_jids(value: list[str]) -> list[Invalid]:
    """Validator: every item is a bare JID ``user@domain``."""
    for jid in value:
        node, sep, domain = jid.partition("@")
        if not sep or not node or "/" in jid or "@" in domain or not is_domain(domain):
            return [Invalid('bare JIDs like "admin@example.org"', toml_repr(jid),
                            "Write each admin as user@domain, without a resource.")]
    return []


def valid_interfaces(value: list[str]) -> list[Invalid]:
    """Validator: listening addresses, IP literals or "*" / "::" (all IPv4 / IPv6)."""
    for address in value:
        if address in ("*", "::"):
            continue
        try:
            ipaddress.ip_address(address)
        except ValueError:
            return [Invalid('IP addresses, "*" (all IPv4) or "::" (all IPv6)', toml_repr(address),
                            "Use an address such as \"127.0.0.1\"; host names are not accepted.")]
    return []


def valid_urls(value: list[str]) -> list[Invalid]:
    """Validator: http(s) or file URLs."""
    for url in value:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http", "file") or not (parts.netloc or parts.path):
            return [Invalid("http(s) or file URLs", toml_repr(url),
                            'Write each repository like "https://example.org/tercet/".')]
    return []
