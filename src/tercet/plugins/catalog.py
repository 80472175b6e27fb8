"""``catalog.json``: the machine-readable description of a plugin repository.

The builder writes it (``repo.py``), the installer reads it (``installer.py``). A catalog is
untrusted input for the installer, so parsing validates every field it uses.

Shape (format 1)::

    {"format": 1,
     "modules": [{"name": "motd", "distribution": "tercet-mod-motd", "latest": "1.1.0",
                  "summary": ..., "stage": ..., "xeps": [...], "requires": [...],
                  "conflicts": [...], "tercet": ">=0.1,<0.2",      # of the latest version
                  "docs": "modules/motd.html", "readme_html": "<h1>...",
                  "versions": [{"version": "1.1.0", "file": "....whl", "url": "files/....whl",
                                "sha256": ..., "size": ..., "requires_python": ">=3.11",
                                "dependencies": [...], "summary": ..., "stage": ...,
                                "xeps": [...], "requires": [...], "conflicts": [...],
                                "tercet": ...}, ...]}]}      # newest version first
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from .package import SHA256_RE, PluginFormatError, TercetMeta, check_module_name

CATALOG_FORMAT = 1


class CatalogError(ValueError):
    """A catalog.json that cannot be used."""


@dataclass(frozen=True, slots=True)
class Release:
    """One published version of a module."""

    version: str
    file: str
    url: str  # relative to the repository root (or absolute)
    sha256: str
    size: int
    requires_python: str
    dependencies: tuple[str, ...]
    meta: TercetMeta

    @property
    def parsed_version(self) -> Version:
        return Version(self.version)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "file": self.file,
            "url": self.url,
            "sha256": self.sha256,
            "size": self.size,
            "requires_python": self.requires_python,
            "dependencies": list(self.dependencies),
            **self.meta.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Release:
        if not isinstance(data, dict):
            raise CatalogError(f"{where}: a version entry must be an object")
        version = _field(data, "version", str, where)
        try:
            Version(version)
        except InvalidVersion:
            raise CatalogError(f"{where}: invalid version {version!r}") from None
        file = _field(data, "file", str, where)
        try:
            parse_wheel_filename(file)
        except InvalidWheelFilename:
            raise CatalogError(f"{where}: {file!r} is not a wheel file name") from None
        sha256 = _field(data, "sha256", str, where).lower()
        if not SHA256_RE.match(sha256):
            raise CatalogError(f"{where}: sha256 of {file} is not a hex SHA-256 digest")
        size = _field(data, "size", int, where)
        deps = _field(data, "dependencies", list, where)
        if not all(isinstance(d, str) for d in deps):
            raise CatalogError(f"{where}: dependencies must be strings")
        try:
            meta = TercetMeta.from_table(data, where=f"{where} {version}")
        except PluginFormatError as exc:
            raise CatalogError(str(exc)) from None
        return cls(
            version=version,
            file=file,
            url=_field(data, "url", str, where),
            sha256=sha256,
            size=size,
            requires_python=_field(data, "requires_python", str, where, ""),
            dependencies=tuple(deps),
            meta=meta,
        )


@dataclass(frozen=True, slots=True)
class ModuleEntry:
    """One module of a catalog, with every version the repository keeps (newest first)."""

    name: str
    distribution: str
    readme_html: str
    docs: str
    versions: tuple[Release, ...]

    @property
    def latest(self) -> Release:
        return self.versions[0]

    def release(self, version: str) -> Release | None:
        wanted = Version(version)
        return next((r for r in self.versions if r.parsed_version == wanted), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "latest": self.latest.version,
            **self.latest.meta.to_dict(),
            "docs": self.docs,
            "readme_html": self.readme_html,
            "versions": [r.to_dict() for r in self.versions],
        }

    @classmethod
    def from_dict(cls, data: Any, where: str) -> ModuleEntry:
        if not isinstance(data, dict):
            raise CatalogError(f"{where}: a module entry must be an object")
        name = _field(data, "name", str, where)
        try:
            check_module_name(name)
        except PluginFormatError as exc:
            raise CatalogError(f"{where}: {exc}") from None
        where = f"{where} module {name}"
        raw_versions = _field(data, "versions", list, where)
        versions = [Release.from_dict(v, where) for v in raw_versions]
        if not versions:
            raise CatalogError(f"{where}: no versions")
        versions.sort(key=lambda r: r.parsed_version, reverse=True)
        return cls(
            name=name,
            distribution=canonicalize_name(_field(data, "distribution", str, where)),
            readme_html=_field(data, "readme_html", str, where, ""),
            docs=_field(data, "docs", str, where, ""),
            versions=tuple(versions),
        )


def _field(data: dict[str, Any], key: str, kind: type, where: str, default: Any = None) -> Any:
    value = data.get(key, default)
    # bool is an int subclass; a size of `true` is not a size.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise CatalogError(f"{where}: field {key!r} is missing or not a {kind.__name__}")
    return value


def parse_catalog(raw: bytes, where: str) -> dict[str, ModuleEntry]:
    """Parse and validate a catalog; *where* (its URL) prefixes every error message."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CatalogError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != CATALOG_FORMAT:
        raise CatalogError(f"{where}: not a Tercet catalog (format {CATALOG_FORMAT} expected)")
    modules = _field(data, "modules", list, where)
    entries: dict[str, ModuleEntry] = {}
    for raw_entry in modules:
        entry = ModuleEntry.from_dict(raw_entry, where)
        entries[entry.name] = entry
    return entries


def dump_catalog(entries: list[ModuleEntry]) -> str:
    """Serialise deterministically: modules by name, versions newest first, sorted keys."""
    data = {
        "format": CATALOG_FORMAT,
        "modules": [e.to_dict() for e in sorted(entries, key=lambda e: e.name)],
    }
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
