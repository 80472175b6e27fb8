"""The plugin format: names, ``[tool.tercet]`` metadata and wheel inspection.

Shared by the repository builder (``repo.py``) and the installer (``installer.py``); see
``docs/plugins.md`` for the format itself. Nothing here does network I/O.
"""

from __future__ import annotations

import configparser
import hashlib
import re
import tomllib
import zipfile
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import (
    InvalidWheelFilename,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

ENTRY_POINT_GROUP = "tercet.modules"
DIST_PREFIX = "tercet-mod-"
STAGES = ("alpha", "beta", "stable")

# Module names appear in config files, URLs and directory names: keep them boring.
MODULE_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
XEP_RE = re.compile(r"^XEP-\d{4}$")
# Flags in requires/conflicts: module names or feature flags such as "feature:muc".
FLAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")

# A wheel's metadata files are small; refuse to inflate anything bigger (zip bombs).
MAX_METADATA_BYTES = 1024 * 1024


class PluginFormatError(ValueError):
    """A plugin source folder or wheel does not follow the plugin format."""


@dataclass(frozen=True, slots=True)
class TercetMeta:
    """The ``[tool.tercet]`` table of a plugin's pyproject.toml."""

    summary: str = ""
    stage: str = "alpha"
    xeps: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    tercet: str = ""  # PEP 440 specifier; "" = any version

    def to_dict(self) -> dict[str, Any]:
        return {
            "summary": self.summary,
            "stage": self.stage,
            "xeps": list(self.xeps),
            "requires": list(self.requires),
            "conflicts": list(self.conflicts),
            "tercet": self.tercet,
        }

    @classmethod
    def from_table(cls, table: Any, *, where: str = "[tool.tercet]") -> TercetMeta:
        """Validate a ``[tool.tercet]`` table (or the same keys in a catalog entry)."""
        if not isinstance(table, dict):
            raise PluginFormatError(f"{where} must be a table")
        summary = _str(table, "summary", where)
        stage = _str(table, "stage", where) or "alpha"
        if stage not in STAGES:
            raise PluginFormatError(f"{where}: stage must be one of {', '.join(STAGES)}")
        xeps = _str_list(table, "xeps", where, XEP_RE, "like XEP-0045")
        requires = _str_list(table, "requires", where, FLAG_RE, "a module name or feature flag")
        conflicts = _str_list(table, "conflicts", where, FLAG_RE, "a module name or feature flag")
        tercet = _str(table, "tercet", where)
        try:
            SpecifierSet(tercet)
        except InvalidSpecifier:
            raise PluginFormatError(
                f"{where}: tercet = {tercet!r} is not a PEP 440 specifier (e.g. '>=0.1,<0.2')"
            ) from None
        return cls(summary, stage, xeps, requires, conflicts, tercet)


def _str(table: dict[str, Any], key: str, where: str) -> str:
    value = table.get(key, "")
    if not isinstance(value, str):
        raise PluginFormatError(f"{where}: {key} must be a string")
    return value.strip()


def _str_list(
    table: dict[str, Any], key: str, where: str, pattern: re.Pattern[str], hint: str
) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PluginFormatError(f"{where}: {key} must be a list of strings")
    for item in value:
        if not pattern.match(item):
            raise PluginFormatError(f"{where}: {key} entry {item!r} is not {hint}")
    return tuple(value)


@dataclass(frozen=True, slots=True)
class SourceProject:
    """What the builder reads from a plugin's source folder before building it."""

    path: Path
    distribution: str
    meta: TercetMeta
    readme: str  # Markdown; "" when the folder has no README.md


def read_source_project(folder: Path) -> SourceProject:
    """Read and validate ``pyproject.toml`` (and README.md) of a plugin source folder."""
    where = f"{folder.name}/pyproject.toml"
    try:
        data = tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PluginFormatError(f"{where}: {exc}") from None
    project = data.get("project")
    if not isinstance(project, dict) or not isinstance(project.get("name"), str):
        raise PluginFormatError(f"{where}: [project] name is missing")
    dist = project["name"]
    if not canonicalize_name(dist).startswith(DIST_PREFIX):
        raise PluginFormatError(f"{where}: the distribution name must start with {DIST_PREFIX!r}")
    meta = TercetMeta.from_table(data.get("tool", {}).get("tercet", {}), where=where)
    readme_path = folder / "README.md"
    readme = readme_path.read_text(encoding="utf-8") if readme_path.is_file() else ""
    return SourceProject(folder, dist, meta, readme)


def distribution_for(module: str) -> str:
    """The canonical distribution name of module *module*: ``muc_log`` -> ``tercet-mod-muc-log``."""
    return canonicalize_name(DIST_PREFIX + module)


def check_module_name(name: str) -> str:
    if not MODULE_NAME_RE.match(name):
        raise PluginFormatError(
            f"{name!r} is not a valid module name (lower-case letters, digits and '_')"
        )
    return name


@dataclass(frozen=True, slots=True)
class WheelInfo:
    """Facts read from a built wheel, checked against the plugin format."""

    filename: str
    distribution: str  # as written in METADATA
    version: str
    module: str  # the entry point name in group tercet.modules
    entry: str  # its value, e.g. "tercet_mod_motd"
    requires_python: str
    dependencies: tuple[str, ...]  # Requires-Dist, verbatim
    summary: str  # METADATA Summary


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def inspect_wheel(path: Path) -> WheelInfo:
    """Open *path* as a plugin wheel and validate it; raises PluginFormatError.

    Checks: a well-formed wheel file name, a readable zip whose members all pass their CRC,
    METADATA agreeing with the file name, exactly one entry point in ``tercet.modules`` named
    after the distribution, and no dependency on ``tercet`` or on another plugin.
    """
    try:
        name, version, _build, _tags = parse_wheel_filename(path.name)
    except InvalidWheelFilename as exc:
        raise PluginFormatError(f"{path.name}: {exc}") from None
    dist_info = f"{name.replace('-', '_')}-{version}.dist-info"
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise PluginFormatError(f"{path.name}: member {bad} fails its CRC check")
            metadata_text = _read_member(zf, dist_info, "METADATA", path.name)
            entry_text = _read_member(zf, dist_info, "entry_points.txt", path.name)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
        raise PluginFormatError(f"{path.name}: not a valid wheel ({exc})") from None
    headers = HeaderParser().parsestr(metadata_text)
    meta_name = headers.get("Name", "")
    meta_version = headers.get("Version", "")
    if canonicalize_name(meta_name) != name or _version(meta_version) != version:
        raise PluginFormatError(
            f"{path.name}: METADATA says {meta_name} {meta_version}, the file name disagrees"
        )
    module, entry = _tercet_entry_point(entry_text, path.name)
    if distribution_for(module) != name:
        raise PluginFormatError(
            f"{path.name}: module {module!r} must be published as {distribution_for(module)!r}"
        )
    deps = tuple(headers.get_all("Requires-Dist") or ())
    _check_dependencies(deps, path.name)
    return WheelInfo(
        filename=path.name,
        distribution=meta_name,
        version=meta_version,
        module=module,
        entry=entry,
        requires_python=headers.get("Requires-Python", "") or "",
        dependencies=deps,
        summary=headers.get("Summary", "") or "",
    )


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _read_member(zf: zipfile.ZipFile, dist_info: str, member: str, label: str) -> str:
    # Match the .dist-info folder case-insensitively: some tools normalise differently.
    wanted = f"{dist_info}/{member}".lower()
    for info in zf.infolist():
        if info.filename.lower() == wanted:
            if info.file_size > MAX_METADATA_BYTES:
                raise PluginFormatError(f"{label}: {member} is implausibly large")
            return zf.read(info).decode("utf-8", errors="replace")
    raise PluginFormatError(f"{label}: {dist_info}/{member} is missing")


def _tercet_entry_point(text: str, label: str) -> tuple[str, str]:
    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        raise PluginFormatError(f"{label}: entry_points.txt is malformed ({exc})") from None
    if not parser.has_section(ENTRY_POINT_GROUP):
        raise PluginFormatError(f"{label}: no entry point in group {ENTRY_POINT_GROUP!r}")
    items = parser.items(ENTRY_POINT_GROUP)
    if len(items) != 1:
        raise PluginFormatError(
            f"{label}: exactly one entry point in {ENTRY_POINT_GROUP!r} expected,"
            f" found {len(items)}"
        )
    module, entry = items[0]
    check_module_name(module)
    return module, entry.strip()


def _check_dependencies(deps: tuple[str, ...], label: str) -> None:
    for dep in deps:
        try:
            req_name = canonicalize_name(Requirement(dep).name)
        except InvalidRequirement:
            raise PluginFormatError(f"{label}: invalid Requires-Dist {dep!r}") from None
        if req_name == "tercet":
            raise PluginFormatError(
                f"{label}: plugins must not depend on 'tercet'; use [tool.tercet] tercet = '...'"
            )
        if req_name.startswith(DIST_PREFIX):
            raise PluginFormatError(
                f"{label}: depends on plugin {req_name!r}; declare it in [tool.tercet] requires"
            )
