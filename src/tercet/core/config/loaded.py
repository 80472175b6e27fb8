"""The loaded configuration: a validated file, its host scopes and typed lookups."""

from __future__ import annotations

import copy
import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from .core_options import DEFAULT_MODULES, core_schema
from .schema import Option, Schema, normalize_host
from .validation import (
    EXTERNAL_COMPONENT_MODULE,
    SECTION_COMPONENTS,
    SECTION_HOSTS,
    ConfigError,
    ConfigProblem,
    KeyLines,
    dotted,
    syntax_problem,
    try_normalize,
    validate,
)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LogSettings:
    """Where and how much to log (the ``log`` option, parsed)."""

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


def _absolute(value: str, base: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else Path(os.path.normpath(base / path))


def _plugin_path(raw: Mapping[str, Any], config_file: Path) -> Path:
    """``installer_plugin_path`` as the core schema reads it, before any validation."""
    def text(key: str) -> str:
        value = raw.get(key)
        option = core_schema().get(key)
        return value if isinstance(value, str) else str(option.default if option else "")
    data = _absolute(text("data_path"), config_file.absolute().parent)
    return _absolute(text("installer_plugin_path"), data)


def plugin_path_of(path: str | os.PathLike[str]) -> Path | None:
    """The plugin directory a config file names (core options only), or None when the file
    cannot be read or parsed; loading it then reports why."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    return _plugin_path(raw, Path(path))


def _declared_schema(raw: Mapping[str, Any], file: Path) -> Schema:
    # Imported here: collecting declarations imports module files, which import this one.
    from tercet.core.modulemanager import declared_schema

    return declared_schema(_plugin_path(raw, file))


class Config:
    """A loaded, validated configuration. Build it with :meth:`load` or :meth:`from_text`."""

    def __init__(self, path: str | os.PathLike[str], raw: dict[str, Any], text: str, *,
                 schema: Schema | None = None,
                 problems: Iterable[ConfigProblem] = ()) -> None:
        self._file = str(path)                 # as the operator wrote it, for messages
        self.path = Path(path).absolute()
        self.schema = schema if schema is not None else core_schema()
        self._raw = raw
        self._lines = KeyLines(text)
        self._global: dict[str, Any] = {
            k: v for k, v in raw.items() if k not in (SECTION_HOSTS, SECTION_COMPONENTS)}
        self._scopes: dict[str, _HostScope] = {}
        for section in (SECTION_HOSTS, SECTION_COMPONENTS):
            for name, table in raw.get(section, {}).items():
                scope = _HostScope(normalize_host(name), name, section, table)
                self._scopes[scope.name] = scope
        #: Warnings found while loading.
        self.problems: list[ConfigProblem] = list(problems)

    # reload -----------------------------------------------------------------------------

    def keep_running(self, running: Config) -> list[str]:
        """Where this (newly read) file changes an option declared ``restart=True``, keep
        the value ``running`` uses, so the server's view matches what it does; returns the
        names of those options (they apply at the next start)."""
        kept = []
        for option in self.schema:
            if option.restart and self._differs(running, option.name):
                self._take(running, option.name)
                kept.append(option.name)
        return kept

    def _differs(self, other: Config, name: str) -> bool:
        hosts = set(self._scopes) | set(other._scopes)
        return any(self.get(name, host) != other.get(name, host) for host in [None, *hosts])

    def _take(self, other: Config, name: str) -> None:
        if name in other._global:
            self._global[name] = other._global[name]
        else:
            self._global.pop(name, None)
        for host, scope in list(self._scopes.items()):
            settings = dict(scope.settings)
            theirs = other._scopes.get(host)
            if theirs is not None and name in theirs.settings:
                settings[name] = theirs.settings[name]
            else:
                settings.pop(name, None)
            self._scopes[host] = replace(scope, settings=settings)

    # construction ----------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, schema: Schema | None = None) -> Config:
        """Read and validate a file; raises :class:`ConfigError` listing every error.

        ``schema`` defaults to every declared option: the core's, the built-in modules'
        and those of the plugins installed in the file's ``installer_plugin_path``.
        """
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
        """Parse TOML text as if read from ``path`` (relative paths resolve next to it);
        ``schema`` as for :meth:`load`."""
        file = str(path)
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(syntax_problem(file, text, exc)) from None
        if schema is None:
            schema = _declared_schema(raw, Path(path))
        problems = validate(raw, file, schema, KeyLines(text))
        errors = [p for p in problems if p.severity == "error"]
        if errors:
            raise ConfigError(errors)
        return cls(path, raw, text, schema=schema, problems=problems)

    def check(self) -> list[ConfigProblem]:
        """Every problem (errors and warnings) under this configuration's schema."""
        return validate(self._raw, self._file, self.schema, self._lines)

    # lookups ---------------------------------------------------------------------------

    @property
    def file(self) -> str:
        """The path as the operator gave it, for messages."""
        return self._file

    def host_location(self, host: str) -> tuple[str, int | None]:
        """Dotted key and line of a host's table as written (``virtualhosts."Example.org"``),
        for messages about that host."""
        scope = self._scopes.get(try_normalize(host))
        if scope is None:
            return dotted(SECTION_HOSTS, host), None
        path = (scope.section, scope.raw_name)
        return dotted(*path), self._lines.line(*path)

    @property
    def directory(self) -> Path:
        return self.path.parent

    @property
    def hosts(self) -> list[str]:
        """Enabled virtual hosts, normalised (lower-case IDNA U-labels)."""
        return [s.name for s in self._scopes.values()
                if s.section == SECTION_HOSTS and s.enabled]

    @property
    def components(self) -> dict[str, str]:
        """Enabled components: host name -> module name (``component``, an external
        component, when the table names none)."""
        return {s.name: str(s.settings.get("module", EXTERNAL_COMPONENT_MODULE))
                for s in self._scopes.values() if s.section == SECTION_COMPONENTS and s.enabled}

    def is_component(self, host: str) -> bool:
        scope = self._scopes.get(try_normalize(host))
        return scope is not None and scope.section == SECTION_COMPONENTS

    def _lookup(self, key: str, host: str | None) -> tuple[Any, tuple[str, ...]] | None:
        if host is not None:
            scope = self._scopes.get(try_normalize(host))
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
        scope = self._scopes.get(try_normalize(host))
        return scope.settings.get(key) if scope is not None else None

    def option(self, declaration: Option[T], host: str | None = None) -> T:
        """The value of a declared option: the host table's, else the global one, else the
        declared default (a copy). Raises :class:`ConfigError` naming file, key and fix
        when the value does not fit the declaration."""
        found = self._lookup(declaration.name, host)
        if found is None:
            return copy.deepcopy(declaration.default)
        value, path = found
        for invalid in declaration.check(declaration.name, value):
            if invalid.severity == "error":
                raise ConfigError(ConfigProblem(
                    "error", self._file, dotted(*path),
                    f"expected {invalid.expected}, found {invalid.found}", invalid.fix,
                    self._lines.near(*path)))
        return value  # type: ignore[no-any-return]  # checked against the declaration

    def resolve_path(self, key: str, host: str | None = None) -> Path | None:
        """A path option made absolute (against the config directory or ``data_path``)."""
        value = self.get(key, host)
        if value is None:
            return None
        option = self.schema.get(key)
        base = self.data_path if option is not None and option.path_base == "data" \
            else self.directory
        return _absolute(value, base)

    @property
    def data_path(self) -> Path:
        return _absolute(self.get("data_path"), self.directory)

    def modules_for_host(self, host: str) -> list[str]:
        """Global modules_enabled plus the host's, minus both modules_disabled lists."""
        scope = self._scopes.get(try_normalize(host))
        local = scope.settings if scope is not None else {}
        enabled = list(self._global.get("modules_enabled", DEFAULT_MODULES))
        enabled += [m for m in local.get("modules_enabled", []) if m not in enabled]
        disabled = set(self._global.get("modules_disabled", [])) | set(
            local.get("modules_disabled", []))
        return [m for m in enabled if m not in disabled]

    def logging(self) -> LogSettings:
        """The ``log`` option, parsed."""
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
