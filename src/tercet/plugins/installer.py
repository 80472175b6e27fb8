"""Install, update and remove plugins from plugin repositories (``tercet plugin ...``).

Each plugin lives in its own directory, ``<plugin_path>/<module name>``, filled by
``pip install --target``; the server puts these directories on ``sys.path`` and finds modules
through their ``tercet.modules`` entry points (:func:`discover`). An install is a transaction:

1. resolve the spec against the repositories' catalogs and refuse early (unknown name,
   incompatible Tercet version, built-in shadowing, conflict with a loaded module);
2. download each wheel, check its size and SHA-256 against the catalog *before* pip sees it,
   check it is a sound zip holding the declared entry point;
3. ``pip install --target <plugin_path>/.staging/<name>-<version>-XXXX <wheel>``;
4. swap the staging directory in for ``<plugin_path>/<name>`` with renames (the previous copy
   stays until the new one is in place) and record it in ``installed.json``.

Any failure before step 4 deletes the staging directories, so nothing changes.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from .catalog import CatalogError, ModuleEntry, Release, parse_catalog
from .discovery import PluginEntry, discover, entry_points_in, plugin_paths
from .fetch import FetchError, TooLarge, download, fetch_bytes
from .package import (
    DIST_PREFIX,
    MODULE_NAME_RE,
    SHA256_RE,
    PluginFormatError,
    TercetMeta,
    WheelInfo,
    distribution_for,
    inspect_wheel,
    read_source_project,
    sha256_file,
)
from .repo import BuildError, build_wheel

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock there
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "CorruptWheel", "HashMismatch", "IncompatibleVersion", "InstallError", "InstallResult",
    "InstalledPlugin", "Installer", "ModuleConflict", "NotInstalled", "PipFailed",
    "PluginEntry", "PluginInfo", "RepositoryUnavailable", "SearchHit", "ShadowsBuiltin",
    "UnknownPlugin", "discover", "plugin_paths",
]

Progress = Callable[[str], None]

INSTALLED_FILE = "installed.json"
INSTALLED_FORMAT = 1
MAX_CATALOG_BYTES = 16 * 1024 * 1024
MAX_WHEEL_BYTES = 128 * 1024 * 1024
PIP_TIMEOUT = 900.0  # seconds; pip may have third-party dependencies to fetch and build
_SPEC_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]*)(?:==([A-Za-z0-9_.!+-]+))?$")


# -- errors: one class per reason, so callers and tests can tell them apart -------------------


class InstallError(Exception):
    """A plugin operation was refused or failed; nothing was changed."""


class IncompatibleVersion(InstallError):
    """No (or not the requested) version of the plugin supports this Tercet or Python."""


class ModuleConflict(InstallError):
    """The plugin conflicts with a loaded module."""


class ShadowsBuiltin(InstallError):
    """The plugin has the name of a built-in module (allowed with replace_builtin)."""


class HashMismatch(InstallError):
    """The downloaded wheel is not the one the catalog describes."""


class CorruptWheel(InstallError):
    """The wheel is not a valid zip or does not hold what it should."""


class RepositoryUnavailable(InstallError):
    """A repository (or one of its files) could not be fetched."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"repository unavailable: {url}: {reason}")
        self.url = url
        self.reason = reason


class UnknownPlugin(InstallError):
    """No repository has a plugin of that name (suggestions in ``suggestions``)."""

    def __init__(self, message: str, suggestions: list[str] | None = None) -> None:
        self.suggestions = suggestions or []
        if self.suggestions:
            message += f"; did you mean {', '.join(self.suggestions)}?"
        super().__init__(message)


class NotInstalled(InstallError):
    """remove/update of a plugin that is not installed."""


class PipFailed(InstallError):
    """pip could not install the wheel or its dependencies."""


# -- results ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InstalledPlugin:
    name: str
    version: str
    distribution: str
    path: Path
    source: str  # repository URL, or the path/URL it was installed from
    sha256: str
    installed_at: str  # ISO 8601, UTC
    latest: str | None = None  # a newer compatible version a repository offers, if any

    @property
    def outdated(self) -> bool:
        return self.latest is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "version": self.version, "distribution": self.distribution,
            "path": str(self.path), "source": self.source, "sha256": self.sha256,
            "installed_at": self.installed_at, "latest": self.latest,
        }


@dataclass(frozen=True, slots=True)
class InstallResult:
    name: str
    version: str
    path: Path
    source: str
    previous: str | None = None  # the version it replaced
    notes: tuple[str, ...] = ()
    also_installed: tuple[InstallResult, ...] = ()  # modules it requires, installed with it
    unchanged: bool = False  # the same build was already installed: nothing was done


@dataclass(frozen=True, slots=True)
class SearchHit:
    name: str
    summary: str
    stage: str
    xeps: tuple[str, ...]
    latest: str
    repository: str
    installed: str | None


@dataclass(frozen=True, slots=True)
class PluginInfo:
    name: str
    repository: str | None
    entry: ModuleEntry | None  # None when only installed (from a path or URL)
    installed: InstalledPlugin | None
    compatible: str | None  # newest version compatible with this Tercet and Python

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "repository": self.repository,
            "installed": self.installed.to_dict() if self.installed else None,
            "compatible": self.compatible,
        }
        if self.entry is not None:
            data.update(self.entry.to_dict())
        return data


# -- the installer ----------------------------------------------------------------------------


def _quiet(_msg: str) -> None:
    pass


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A resolved plugin to install: where its wheel is and what we know about it."""

    name: str
    version: str | None  # None until the wheel is inspected (local wheels, URLs)
    source: str
    meta: TercetMeta | None  # None: no Tercet metadata known (a bare wheel)
    url: str | None = None  # a wheel to download ...
    local: Path | None = None  # ... or a local wheel / project directory
    sha256: str | None = None  # expected digest, from the catalog or a #sha256= fragment
    size: int | None = None


@dataclass
class _Staged:
    candidate: _Candidate
    info: WheelInfo
    sha256: str
    staging: Path


class Installer:
    """Installs plugins into *plugin_path* from *repositories* (URLs of built repositories).

    *builtin_modules* are the names of Tercet's own modules (a plugin may only shadow one with
    ``replace_builtin``); *loaded_modules* the modules the server runs or will run (checked
    against each plugin's ``conflicts``; None skips that check). *pip_options* are extra pip
    arguments for every install, e.g. ``["--no-index"]`` on an offline machine.
    """

    def __init__(
        self,
        plugin_path: Path,
        repositories: list[str],
        tercet_version: str,
        builtin_modules: set[str],
        loaded_modules: set[str] | None = None,
        *,
        pip_options: list[str] | None = None,
        python: str = sys.executable,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.plugin_path = Path(plugin_path)
        self.repositories = [r.rstrip("/") + "/" for r in repositories]
        self.tercet_version = Version(tercet_version)
        self.python_version = Version(platform.python_version())
        self.builtin_modules = set(builtin_modules)
        self.loaded_modules = loaded_modules
        self.pip_options = list(pip_options or [])
        self.python = python
        self.timeout = timeout
        self.clock = clock
        self._catalogs: dict[str, dict[str, ModuleEntry] | RepositoryUnavailable] = {}
        self._warned: set[str] = set()  # repositories already reported as unreadable

    # -- public API ---------------------------------------------------------------------------

    def install(
        self, spec: str, *, replace_builtin: bool = False, progress: Progress = _quiet
    ) -> InstallResult:
        """Install *spec*: ``NAME``, ``NAME==VERSION``, a wheel or project path, a wheel URL."""
        with self._locked(), tempfile.TemporaryDirectory(prefix="tercet-dl-") as tmp:
            candidate = self._resolve(spec, Path(tmp), progress)
            current = self._records().get(candidate.name, {})
            if candidate.sha256 is not None and current.get("sha256") == candidate.sha256 and (
                self.plugin_path / candidate.name
            ).is_dir():
                progress(f"{candidate.name} {current.get('version')} is already installed")
                return InstallResult(candidate.name, str(current.get("version")),
                                     self.plugin_path / candidate.name, candidate.source,
                                     previous=str(current.get("version")), unchanged=True)
            plan = self._plan(candidate, replace_builtin, progress)
            return self._run(plan, Path(tmp), replace_builtin, progress)

    def update(
        self, name: str | None = None, *, progress: Progress = _quiet
    ) -> list[InstallResult]:
        """Update *name* (or every plugin installed from a repository) to the newest compatible
        version; returns what was updated."""
        results = []
        with self._locked(), tempfile.TemporaryDirectory(prefix="tercet-dl-") as tmp:
            records = self._records()
            if name is not None:
                name = _module_name(name)
                if name not in records:
                    raise NotInstalled(f"{name} is not installed{_hint(name, records)}")
                targets = [name]
            else:
                targets = sorted(records)
            for target in targets:
                result = self._update_one(target, records[target], Path(tmp), progress)
                if result is not None:
                    results.append(result)
        return results

    def remove(self, name: str, *, progress: Progress = _quiet) -> InstalledPlugin:
        """Remove an installed plugin; returns what was removed."""
        name = _module_name(name)
        with self._locked():
            records = self._records()
            directory = self.plugin_path / name
            if name not in records and not directory.is_dir():
                raise NotInstalled(f"{name} is not installed{_hint(name, records)}")
            plugin = self._installed(name, records.get(name, {}))
            if directory.is_dir():
                self._discard(directory)
            records.pop(name, None)
            self._save_records(records)
            progress(f"removed {name} {plugin.version}")
            return plugin

    def list_installed(
        self, *, check_updates: bool = True, progress: Progress = _quiet
    ) -> list[InstalledPlugin]:
        """Installed plugins, sorted by name; ``latest`` is set when an update is available."""
        plugins = []
        for name, record in sorted(self._records().items()):
            plugin = self._installed(name, record)
            source = record.get("source")
            if check_updates and source in self.repositories:
                newer = self._newest_compatible(name, progress, only=source)
                if newer is not None and Version(newer[1].version) > Version(plugin.version):
                    plugin = replace(plugin, latest=newer[1].version)
            plugins.append(plugin)
        return plugins

    def search(self, text: str, *, progress: Progress = _quiet) -> list[SearchHit]:
        """Modules whose name, summary or XEPs contain *text* (case-insensitive)."""
        needle = text.casefold()
        records = self._records()
        hits: dict[str, SearchHit] = {}
        for repo, entries in self._readable_catalogs(progress):
            for entry in entries.values():
                meta = entry.latest.meta
                haystack = " ".join([entry.name, meta.summary, *meta.xeps]).casefold()
                if needle in haystack and entry.name not in hits:
                    installed = records.get(entry.name, {}).get("version")
                    hits[entry.name] = SearchHit(entry.name, meta.summary, meta.stage, meta.xeps,
                                                 entry.latest.version, repo, installed)
        return [hits[n] for n in sorted(hits)]

    def info(self, name: str, *, progress: Progress = _quiet) -> PluginInfo:
        name = _module_name(name)
        records = self._records()
        installed = self._installed(name, records[name]) if name in records else None
        for repo, entries in self._readable_catalogs(progress):
            if name in entries:
                newest = self._newest_compatible(name, progress, only=repo)
                return PluginInfo(name, repo, entries[name], installed,
                                  newest[1].version if newest else None)
        if installed is not None:
            return PluginInfo(name, None, None, installed, None)
        raise UnknownPlugin(f"no repository has a plugin named {name!r}", self._suggest(name))

    # -- resolving ----------------------------------------------------------------------------

    def _resolve(self, spec: str, tmp: Path, progress: Progress) -> _Candidate:
        spec = spec.strip()
        if urlsplit(spec).scheme in ("http", "https", "file"):
            return self._resolve_url(spec)
        if os.sep in spec or "/" in spec or spec.endswith(".whl") or spec.startswith("."):
            return self._resolve_path(Path(spec), tmp, progress)
        m = _SPEC_RE.match(spec)
        if m is None:
            raise InstallError(f"{spec!r} is not NAME, NAME==VERSION, a path or a wheel URL")
        return self._resolve_name(_module_name(m.group(1)), m.group(2))

    def _resolve_name(self, name: str, version: str | None) -> _Candidate:
        repo, entry = self._lookup(name)
        if version is None:
            return self._from_release(name, repo, self._pick(entry))
        try:
            wanted = entry.release(version)
        except InvalidVersion:
            raise InstallError(f"{version!r} is not a valid version") from None
        if wanted is None:
            available = ", ".join(r.version for r in entry.versions)
            raise UnknownPlugin(f"{name} has no version {version} (available: {available})")
        self._check_compatible(name, wanted)
        return self._from_release(name, repo, wanted)

    def _from_release(self, name: str, repo: str, release: Release) -> _Candidate:
        return _Candidate(name, release.version, repo, release.meta, url=urljoin(repo, release.url),
                          sha256=release.sha256, size=release.size)

    def _resolve_url(self, url: str) -> _Candidate:
        parts = urlsplit(url)
        filename = unquote(parts.path.rsplit("/", 1)[-1])
        if not filename.endswith(".whl"):
            raise InstallError(f"{url}: a plugin URL must point at a wheel (.whl)")
        expected = None
        if parts.fragment.startswith("sha256="):
            expected = parts.fragment.removeprefix("sha256=").lower()
            if not SHA256_RE.match(expected):
                raise InstallError(f"{url}: the #sha256= fragment is not a SHA-256 digest")
        return _Candidate(_name_from_wheel(filename), None, url.split("#", 1)[0], None,
                          url=url.split("#", 1)[0], sha256=expected)

    def _resolve_path(self, path: Path, tmp: Path, progress: Progress) -> _Candidate:
        path = path.expanduser().resolve()
        if path.is_dir():
            if not (path / "pyproject.toml").is_file():
                raise InstallError(f"{path}: no pyproject.toml in this directory")
            try:
                project = read_source_project(path)
                progress(f"building {path} ...")
                wheel = build_wheel(path, tmp / "built", python=self.python)
            except (PluginFormatError, BuildError) as exc:
                raise InstallError(f"{path}: {exc}") from None
            return _Candidate(_name_from_wheel(wheel.name), None, str(path), project.meta,
                              local=wheel)
        if not path.is_file():
            raise InstallError(f"{path}: no such file or directory")
        return _Candidate(_name_from_wheel(path.name), None, str(path), None, local=path)

    def _lookup(self, name: str) -> tuple[str, ModuleEntry]:
        """The first repository (in configured order) that has *name*; all must be readable."""
        for repo, entries in self._all_catalogs():
            if name in entries:
                return repo, entries[name]
        if not self.repositories:
            raise UnknownPlugin(f"no plugin repositories are configured, so {name!r} is unknown")
        raise UnknownPlugin(f"no repository has a plugin named {name!r}", self._suggest(name))

    def _pick(self, entry: ModuleEntry) -> Release:
        """The newest release compatible with this Tercet and Python; finals before pre-releases."""
        compatible = [r for r in entry.versions if self._incompatibility(r) is None]
        finals = [r for r in compatible if not r.parsed_version.is_prerelease]
        if finals or compatible:
            return max(finals or compatible, key=lambda r: r.parsed_version)
        reason = self._incompatibility(entry.latest)
        raise IncompatibleVersion(
            f"no version of {entry.name} is compatible with this server: "
            f"the newest, {entry.latest.version}, {reason}"
        )

    def _incompatibility(self, release: Release) -> str | None:
        """Why *release* cannot run here, or None."""
        return _incompatibility(release.meta.tercet, release.requires_python,
                                self.tercet_version, self.python_version)

    def _check_compatible(self, name: str, release: Release) -> None:
        reason = self._incompatibility(release)
        if reason is not None:
            raise IncompatibleVersion(f"{name} {release.version} {reason}")

    def _newest_compatible(
        self, name: str, progress: Progress, only: str | None = None
    ) -> tuple[str, Release] | None:
        """The newest compatible release of *name* in any repository (or only in *only*)."""
        best: tuple[str, Release] | None = None
        for repo, entries in self._readable_catalogs(progress):
            entry = entries.get(name)
            if entry is None or (only is not None and repo != only):
                continue
            with contextlib.suppress(IncompatibleVersion):
                release = self._pick(entry)
                if best is None or release.parsed_version > best[1].parsed_version:
                    best = (repo, release)
        return best

    def _suggest(self, name: str) -> list[str]:
        names: set[str] = set()
        for entries in self._catalogs.values():
            if not isinstance(entries, RepositoryUnavailable):
                names.update(entries)
        return difflib.get_close_matches(name, sorted(names), n=3, cutoff=0.6)

    # -- catalogs -----------------------------------------------------------------------------

    def _catalog(self, repo: str) -> dict[str, ModuleEntry] | RepositoryUnavailable:
        """The parsed catalog of *repo*, or the reason it cannot be had (cached either way)."""
        if repo not in self._catalogs:
            url = urljoin(repo, "catalog.json")
            try:
                raw = fetch_bytes(url, limit=MAX_CATALOG_BYTES, timeout=self.timeout,
                                  user_agent=self._user_agent)
                self._catalogs[repo] = parse_catalog(raw, url)
            except FetchError as exc:
                self._catalogs[repo] = RepositoryUnavailable(repo, f"{exc.reason} (reading {url})")
            except CatalogError as exc:
                self._catalogs[repo] = RepositoryUnavailable(repo, f"bad catalog: {exc}")
        return self._catalogs[repo]

    def _all_catalogs(self) -> list[tuple[str, dict[str, ModuleEntry]]]:
        """Every configured catalog; the first unreadable one raises RepositoryUnavailable.

        Installs and updates need them all: a version picked from half of the repositories
        would depend on which server happened to be down.
        """
        catalogs = []
        for repo in self.repositories:
            entries = self._catalog(repo)
            if isinstance(entries, RepositoryUnavailable):
                raise entries
            catalogs.append((repo, entries))
        return catalogs

    def _readable_catalogs(
        self, progress: Progress
    ) -> Iterator[tuple[str, dict[str, ModuleEntry]]]:
        """Catalogs that could be read; unreadable ones are reported. Raises when none can be."""
        failures = []
        readable = []
        for repo in self.repositories:
            entries = self._catalog(repo)
            if isinstance(entries, RepositoryUnavailable):
                failures.append(entries)
                if repo not in self._warned:
                    self._warned.add(repo)
                    progress(f"warning: {entries}")
            else:
                readable.append((repo, entries))
        if failures and not readable:
            raise failures[0]
        return iter(readable)

    @property
    def _user_agent(self) -> str:
        return f"tercet/{self.tercet_version} plugin-installer"

    # -- planning and checks ------------------------------------------------------------------

    def _plan(
        self, candidate: _Candidate, replace_builtin: bool, progress: Progress
    ) -> list[_Candidate]:
        """*candidate* and the modules it requires that are not there yet, dependencies first."""
        plan: list[_Candidate] = []
        self._add_to_plan(candidate, plan, replace_builtin, progress, depth=0)
        return plan

    def _add_to_plan(self, candidate: _Candidate, plan: list[_Candidate], replace_builtin: bool,
                     progress: Progress, depth: int) -> None:
        self._check(candidate, replace_builtin, progress)
        planned = {c.name for c in plan} | {candidate.name}
        present = self.builtin_modules | set(self._records()) | (self.loaded_modules or set())
        for required in candidate.meta.requires if candidate.meta else ():
            if required in present or required in planned or not MODULE_NAME_RE.match(required):
                continue
            if depth >= 8 or not self._known(required, progress):
                continue  # a feature flag, or provided by something we do not know
            progress(f"{candidate.name} requires {required}: installing it too")
            self._add_to_plan(self._resolve_name(required, None), plan, False, progress, depth + 1)
            planned.add(required)
        plan.append(candidate)

    def _known(self, name: str, progress: Progress) -> bool:
        try:
            self._lookup(name)
        except UnknownPlugin:
            return False
        except RepositoryUnavailable as exc:
            progress(f"warning: cannot tell whether {name} is a plugin: {exc}")
            return False
        return True

    def _check(self, candidate: _Candidate, replace_builtin: bool, progress: Progress) -> None:
        name = candidate.name
        if name in self.builtin_modules and not replace_builtin:
            raise ShadowsBuiltin(
                f"{name} is the name of a built-in module; installing this plugin would replace "
                "it (use --replace-builtin if that is what you want)"
            )
        meta = candidate.meta
        if meta is None:
            if candidate.version is not None:  # known only once a bare wheel is inspected
                progress(f"warning: no Tercet metadata for {name} {candidate.version}: "
                         "Tercet compatibility and conflicts are not checked")
            return
        reason = _incompatibility(meta.tercet, "", self.tercet_version, self.python_version)
        if reason is not None:
            version = f" {candidate.version}" if candidate.version else ""
            raise IncompatibleVersion(f"{name}{version} {reason}")
        self._check_conflicts(name, meta)

    def _check_conflicts(self, name: str, meta: TercetMeta) -> None:
        if self.loaded_modules is None:
            return
        loaded = self.loaded_modules - {name}
        clashes = sorted(set(meta.conflicts) & loaded)
        # Installed plugins that are loaded and declare a conflict with the newcomer.
        for other, record in self._records().items():
            if other in loaded and name in record.get("conflicts", []):
                clashes.append(other)
        if clashes:
            raise ModuleConflict(
                f"{name} conflicts with loaded module(s) {', '.join(sorted(set(clashes)))}; "
                "unload and disable them first"
            )

    # -- fetching, staging, committing --------------------------------------------------------

    def _run(self, plan: list[_Candidate], tmp: Path, replace_builtin: bool,
             progress: Progress) -> InstallResult:
        staged: list[_Staged] = []
        try:
            for candidate in plan:
                wheel = self._acquire(candidate, tmp, progress)
                info, digest = self._verify(candidate, wheel)
                if candidate.version is None:  # a path or URL: check it now that we know it
                    meta = candidate.meta or self._catalog_meta(info, digest)
                    candidate = replace(candidate, version=info.version, meta=meta)
                    self._check(candidate, replace_builtin, progress)
                staged.append(_Staged(candidate, info, digest, self._pip(info, wheel, progress)))
            results = [self._commit(s, progress) for s in staged]
        finally:
            for s in staged:
                shutil.rmtree(s.staging, ignore_errors=True)
        *deps, main = results
        return InstallResult(main.name, main.version, main.path, main.source, main.previous,
                             main.notes, tuple(deps))

    def _acquire(self, candidate: _Candidate, tmp: Path, progress: Progress) -> Path:
        if candidate.local is not None:
            return candidate.local
        assert candidate.url is not None
        filename = unquote(urlsplit(candidate.url).path.rsplit("/", 1)[-1])
        if urlsplit(candidate.url).scheme not in ("http", "https", "file") or "/" in filename:
            raise CorruptWheel(f"{candidate.url}: not a usable wheel URL")
        (tmp / "dl").mkdir(exist_ok=True)
        limit = MAX_WHEEL_BYTES if candidate.size is None else min(candidate.size, MAX_WHEEL_BYTES)
        progress(f"downloading {candidate.url}")
        try:
            return download(candidate.url, tmp / "dl" / filename, limit=limit,
                            timeout=self.timeout, user_agent=self._user_agent)
        except TooLarge:
            if candidate.size is not None:
                raise HashMismatch(f"{filename} is larger than the catalog says "
                                   f"({candidate.size} bytes): refusing it") from None
            raise
        except FetchError as exc:
            raise RepositoryUnavailable(candidate.source, f"{exc.url}: {exc.reason}") from None

    def _catalog_meta(self, info: WheelInfo, digest: str) -> TercetMeta | None:
        """Tercet metadata for a wheel given by path or URL, if a catalog lists these bytes."""
        for repo in self.repositories:
            entries = self._catalog(repo)
            if isinstance(entries, RepositoryUnavailable) or info.module not in entries:
                continue
            release = entries[info.module].release(info.version)
            if release is not None and release.sha256 == digest:
                return release.meta
        return None

    def _verify(self, candidate: _Candidate, wheel: Path) -> tuple[WheelInfo, str]:
        """Hash first (before anything parses the file), then the zip and its entry point."""
        digest = sha256_file(wheel)
        if candidate.sha256 is not None and digest != candidate.sha256:
            raise HashMismatch(
                f"{wheel.name} from {candidate.source} has SHA-256 {digest}, expected "
                f"{candidate.sha256}: refusing it (tampered with or corrupted in transit)"
            )
        try:
            info = inspect_wheel(wheel)
        except PluginFormatError as exc:
            raise CorruptWheel(f"corrupted or invalid plugin wheel: {exc}") from None
        if info.module != candidate.name:
            raise CorruptWheel(f"{wheel.name} provides module {info.module!r}, "
                               f"not {candidate.name!r}")
        if candidate.version is not None and Version(info.version) != Version(candidate.version):
            raise CorruptWheel(f"{wheel.name} is version {info.version}, "
                               f"the catalog says {candidate.version}")
        return info, digest

    def _pip(self, info: WheelInfo, wheel: Path, progress: Progress) -> Path:
        staging_root = self.plugin_path / ".staging"
        staging_root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f"{info.module}-{info.version}-",
                                        dir=staging_root))
        cmd = [self.python, "-m", "pip", "install", "--target", str(staging), "--no-input",
               "--disable-pip-version-check", "--no-warn-script-location", "--quiet",
               *self.pip_options, str(wheel)]
        progress(f"installing {info.module} {info.version} with pip")
        try:
            _run_pip(cmd)
            if info.module not in entry_points_in(staging):
                raise CorruptWheel(f"after installing, no entry point {info.module!r} was found")
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return staging

    def _commit(self, staged: _Staged, progress: Progress) -> InstallResult:
        """Swap the staging directory in; the previous copy stays until the new one is there."""
        name = staged.info.module
        dest = self.plugin_path / name
        records = self._records()
        previous = records.get(name, {}).get("version")
        old: Path | None = None
        if dest.exists():
            old = self._trash_path(name)
            os.rename(dest, old)
        try:
            os.rename(staged.staging, dest)
        except OSError:
            if old is not None:
                os.rename(old, dest)
            raise
        meta = staged.candidate.meta or TercetMeta()
        records[name] = {
            "name": name, "version": staged.info.version,
            "distribution": staged.info.distribution, "source": staged.candidate.source,
            "sha256": staged.sha256, "installed_at": self._now(),
            "tercet": meta.tercet, "requires": list(meta.requires),
            "conflicts": list(meta.conflicts),
        }
        self._save_records(records)
        if old is not None:
            shutil.rmtree(old.parent, ignore_errors=True)
        progress(f"installed {name} {staged.info.version} into {dest}")
        notes = tuple(f"{name} requires {r}: make sure it is available"
                      for r in meta.requires if not MODULE_NAME_RE.match(r))
        return InstallResult(name, staged.info.version, dest, staged.candidate.source,
                             previous, notes)

    def _update_one(self, name: str, record: dict[str, Any], tmp: Path,
                    progress: Progress) -> InstallResult | None:
        """Update from the repository the plugin came from (never silently from another)."""
        source = record.get("source")
        if source not in self.repositories:
            progress(f"{name}: installed from {source}, not from a configured repository; "
                     "skipped")
            return None
        catalogs = dict(self._all_catalogs())
        if name not in catalogs[source]:
            progress(f"{name}: {source} does not offer it any more; skipped")
            return None
        newest = self._newest_compatible(name, progress, only=source)
        if newest is None:
            progress(f"{name}: no version in {source} is compatible with this server; skipped")
            return None
        if newest[1].parsed_version <= Version(str(record.get("version", "0"))):
            progress(f"{name} {record['version']} is up to date")
            return None
        repo, release = newest
        progress(f"updating {name} {record['version']} -> {release.version}")
        candidate = self._from_release(name, repo, release)
        return self._run([candidate], tmp, True, progress)  # it is installed: shadowing accepted

    # -- bookkeeping --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One plugin operation at a time per plugin directory (a second one is refused)."""
        self.plugin_path.mkdir(parents=True, exist_ok=True)
        with open(self.plugin_path / ".lock", "a+") as fh:
            if fcntl is not None:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise InstallError(
                        f"another plugin operation is running on {self.plugin_path}"
                    ) from None
            try:
                yield
            finally:
                if fcntl is not None:
                    fcntl.flock(fh, fcntl.LOCK_UN)

    def _records(self) -> dict[str, dict[str, Any]]:
        path = self.plugin_path / INSTALLED_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise InstallError(f"{path} is unreadable ({exc}); fix or remove it") from None
        plugins = data.get("plugins") if isinstance(data, dict) else None
        if not isinstance(plugins, dict):
            raise InstallError(f"{path} is not a Tercet installed-plugins file")
        return {k: v for k, v in plugins.items() if isinstance(v, dict)}

    def _save_records(self, records: dict[str, dict[str, Any]]) -> None:
        path = self.plugin_path / INSTALLED_FILE
        text = json.dumps({"format": INSTALLED_FORMAT, "plugins": records}, indent=2,
                          sort_keys=True) + "\n"
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)

    def _installed(self, name: str, record: dict[str, Any]) -> InstalledPlugin:
        return InstalledPlugin(
            name=name,
            version=str(record.get("version", "?")),
            distribution=str(record.get("distribution", distribution_for(name))),
            path=self.plugin_path / name,
            source=str(record.get("source", "")),
            sha256=str(record.get("sha256", "")),
            installed_at=str(record.get("installed_at", "")),
        )

    def _trash_path(self, name: str) -> Path:
        trash = self.plugin_path / ".trash"
        trash.mkdir(exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=trash)) / name

    def _discard(self, directory: Path) -> None:
        old = self._trash_path(directory.name)
        os.rename(directory, old)
        shutil.rmtree(old.parent, ignore_errors=True)

    def _now(self) -> str:
        return datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- helpers ----------------------------------------------------------------------------------


def _incompatibility(tercet_spec: str, requires_python: str, tercet: Version,
                     python: Version) -> str | None:
    try:
        if tercet_spec and not SpecifierSet(tercet_spec).contains(tercet, prereleases=True):
            return f"requires Tercet {tercet_spec}, this is Tercet {tercet}"
        if requires_python and not SpecifierSet(requires_python).contains(python,
                                                                          prereleases=True):
            return f"requires Python {requires_python}, this is Python {python}"
    except InvalidSpecifier as exc:
        return f"has an invalid version specifier ({exc})"
    return None


def _module_name(text: str) -> str:
    """Accept ``motd``, ``tercet-mod-motd`` and ``muc-log`` alike."""
    name = text.strip().lower()
    name = name.removeprefix(DIST_PREFIX).removeprefix(DIST_PREFIX.replace("-", "_"))
    name = name.replace("-", "_").replace(".", "_")
    if not MODULE_NAME_RE.match(name):
        raise InstallError(f"{text!r} is not a valid plugin name")
    return name


def _name_from_wheel(filename: str) -> str:
    try:
        dist = parse_wheel_filename(filename)[0]
    except InvalidWheelFilename as exc:
        raise CorruptWheel(f"{filename}: {exc}") from None
    if not dist.startswith(DIST_PREFIX):
        raise CorruptWheel(f"{filename}: not a Tercet plugin (names start with {DIST_PREFIX})")
    return _module_name(dist)


def _run_pip(cmd: list[str]) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT,
                              check=False)
    except subprocess.TimeoutExpired:
        raise PipFailed(f"pip took longer than {PIP_TIMEOUT:.0f} s") from None
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout).strip().splitlines() if ln.strip()]
        raise PipFailed(f"pip install failed: {' | '.join(lines[-6:])}")


def _hint(name: str, records: dict[str, Any]) -> str:
    close = difflib.get_close_matches(name, sorted(records), n=3, cutoff=0.6)
    return f"; installed are: {', '.join(close)}" if close else ""

