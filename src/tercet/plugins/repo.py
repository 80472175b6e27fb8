"""Build a static plugin repository from a folder of plugin sources, and serve one for tests.

Layout of a built repository (any static web server can host it)::

    out_dir/index.html                    browsable list of modules
    out_dir/modules/<name>.html           one documentation page per module (its README)
    out_dir/catalog.json                  what ``tercet plugin`` reads (see catalog.py)
    out_dir/simple/index.html             PEP 503 index, so pip can use the repository too
    out_dir/simple/<dist>/index.html
    out_dir/files/<wheel>                 every version ever built: a repository keeps history
    out_dir/.build-state.json             builder bookkeeping (content hash of each source)

Builds are incremental and reproducible: a source folder whose content hash is unchanged is not
rebuilt, wheels are built with a fixed SOURCE_DATE_EPOCH, and generated files carry no
timestamps and are only rewritten when their content changes.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from html import escape
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import Version

from .catalog import CatalogError, ModuleEntry, Release, dump_catalog, parse_catalog
from .markdown import render_markdown
from .package import (
    PluginFormatError,
    SourceProject,
    WheelInfo,
    inspect_wheel,
    read_source_project,
    sha256_file,
)

__all__ = [
    "BuildError", "BuildReport", "build_repository", "build_wheel", "serve", "server_url",
]

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

STATE_FILE = ".build-state.json"
STATE_FORMAT = 1
# 1980-01-01: the earliest date a zip file can hold. Fixed, so rebuilding gives the same bytes.
SOURCE_DATE_EPOCH = 315532800
BUILD_TIMEOUT = 600.0  # seconds for one `pip wheel`
# Never part of a plugin's source: build debris, caches, VCS data.
IGNORED_NAMES = frozenset(
    {".git", ".hg", ".svn", "__pycache__", "build", "dist", ".tox", ".nox", ".venv",
     ".mypy_cache", ".pytest_cache", ".ruff_cache", ".DS_Store"}
)
IGNORED_SUFFIXES = (".pyc", ".pyo", ".egg-info")


class BuildError(Exception):
    """One plugin could not be built or published; the message says why."""


@dataclass(frozen=True, slots=True)
class BuiltModule:
    folder: str
    module: str
    version: str


@dataclass(slots=True)
class BuildReport:
    built: list[BuiltModule] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)  # source folder names
    failed: list[tuple[str, str]] = field(default_factory=list)  # (folder, message)

    @property
    def ok(self) -> bool:
        return not self.failed


def _quiet(_msg: str) -> None:
    pass


def build_repository(
    source_dir: Path,
    out_dir: Path,
    *,
    progress: Progress = _quiet,
    replace_existing: bool = False,
    isolation: bool = False,
    python: str = sys.executable,
) -> BuildReport:
    """Build or update the repository in *out_dir* from the plugin folders in *source_dir*.

    A folder that fails is reported in ``BuildReport.failed`` and leaves the repository's
    previous content for it in place. Publishing different content under a version that is
    already in the repository is refused unless *replace_existing* (clients that installed it
    would no longer match its hash). *isolation* lets pip build in an isolated environment,
    which downloads the build backend; the default uses the backends installed next to Tercet.
    """
    source_dir, out_dir = Path(source_dir), Path(out_dir)
    if not source_dir.is_dir():
        raise BuildError(f"{source_dir}: not a directory")
    (out_dir / "files").mkdir(parents=True, exist_ok=True)
    state = _load_state(out_dir, progress)
    report = BuildReport()
    claimed: dict[str, str] = {}  # module -> folder, to catch two folders building one module
    builder = _Builder(out_dir, state, progress, replace_existing, isolation, python)
    for folder in sorted(p for p in source_dir.iterdir() if (p / "pyproject.toml").is_file()):
        try:
            built = builder.folder(folder, claimed)
        except (BuildError, PluginFormatError) as exc:
            progress(f"FAILED {folder.name}: {exc}")
            report.failed.append((folder.name, str(exc)))
            continue
        if built is None:
            report.unchanged.append(folder.name)
        else:
            report.built.append(built)
    entries = _entries(state, out_dir, progress)
    _write_outputs(out_dir, entries)
    _write_if_changed(out_dir / STATE_FILE, _dump_json(state))
    return report


# -- state ------------------------------------------------------------------------------------


def _load_state(out_dir: Path, progress: Progress) -> dict[str, Any]:
    path = out_dir / STATE_FILE
    if path.is_file():
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(state, dict) and state.get("format") == STATE_FORMAT:
                return state
        except (OSError, ValueError):
            pass
        progress(f"ignoring unreadable {path}")
    state = {"format": STATE_FORMAT, "sources": {}, "modules": {}}
    # Without a state file, keep the history the published catalog describes.
    catalog = out_dir / "catalog.json"
    if catalog.is_file():
        try:
            for entry in parse_catalog(catalog.read_bytes(), str(catalog)).values():
                versions = {
                    r.version: {**r.to_dict(), "readme_html": entry.readme_html}
                    for r in entry.versions
                }
                state["modules"][entry.name] = {
                    "distribution": entry.distribution,
                    "versions": versions,
                }
        except CatalogError as exc:
            progress(f"ignoring the existing catalog: {exc}")
    return state


def _dump_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def source_hash(folder: Path) -> str:
    """A content hash of a plugin source folder: relative paths, file bytes, executable bits."""
    digest = hashlib.sha256()
    for path in sorted(_source_files(folder)):
        rel = path.relative_to(folder).as_posix()
        mode = "x" if os.access(path, os.X_OK) else "-"
        digest.update(f"{rel}\0{mode}\0{path.stat().st_size}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _ignored(name: str) -> bool:
    return name in IGNORED_NAMES or name.endswith(IGNORED_SUFFIXES)


def _source_files(folder: Path) -> Iterable[Path]:
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not _ignored(d)]
        for name in files:
            if not _ignored(name):
                yield Path(root) / name


# -- building ---------------------------------------------------------------------------------


def build_wheel(
    folder: Path, dest: Path, *, isolation: bool = False, python: str = sys.executable
) -> Path:
    """Build the wheel of the project in *folder* into *dest*; return its path.

    The project is copied to a temporary directory first, so the source folder stays clean
    (setuptools leaves build/ and *.egg-info behind) and no stale build output leaks in.
    """
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tercet-build-") as tmp:
        copy = Path(tmp) / "src" / folder.name
        shutil.copytree(folder, copy, ignore=lambda _d, names: [n for n in names if _ignored(n)])
        wheel_dir = Path(tmp) / "wheel"
        cmd = [python, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check",
               "--no-input", "-q", "-w", str(wheel_dir)]
        cmd += [] if isolation else ["--no-build-isolation"]
        cmd.append(str(copy))
        env = {**os.environ, "SOURCE_DATE_EPOCH": str(SOURCE_DATE_EPOCH), "PYTHONHASHSEED": "0"}
        try:
            proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True,
                                  timeout=BUILD_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise BuildError(f"pip wheel took longer than {BUILD_TIMEOUT:.0f} s") from None
        if proc.returncode != 0:
            raise BuildError(_pip_failure(proc.stdout + proc.stderr, isolation))
        wheels = sorted(wheel_dir.glob("*.whl"))
        if len(wheels) != 1:
            raise BuildError(f"pip wheel produced {len(wheels)} wheels, expected one")
        target = dest / wheels[0].name
        shutil.move(str(wheels[0]), target)
        return target


def _pip_failure(output: str, isolation: bool) -> str:
    tail = " | ".join(line.strip() for line in output.strip().splitlines()[-8:] if line.strip())
    hint = ""
    if not isolation and ("No module named" in output or "BackendUnavailable" in output):
        hint = (" (the plugin's build backend is not installed next to Tercet:"
                " install it, e.g. `pip install setuptools wheel`, or build with isolation)")
    return f"pip wheel failed{hint}: {tail}"


@dataclass
class _Builder:
    out_dir: Path
    state: dict[str, Any]
    progress: Progress
    replace_existing: bool
    isolation: bool
    python: str

    def folder(self, folder: Path, claimed: dict[str, str]) -> BuiltModule | None:
        """Build one source folder if it changed; None when it is unchanged."""
        digest = source_hash(folder)
        previous = self.state["sources"].get(folder.name)
        if previous and previous.get("hash") == digest and self._published(previous):
            self._claim(claimed, previous["module"], folder.name)
            return None
        project = read_source_project(folder)
        self.progress(f"building {folder.name} ...")
        with tempfile.TemporaryDirectory(prefix="tercet-wheel-") as tmp:
            wheel = build_wheel(folder, Path(tmp), isolation=self.isolation, python=self.python)
            info = inspect_wheel(wheel)
            self._claim(claimed, info.module, folder.name)
            release = self._release(wheel, info, project)
            self._publish(wheel, release)
        self._record(folder.name, digest, info, project, release)
        self.progress(f"built {info.module} {info.version} ({release.file})")
        return BuiltModule(folder.name, info.module, info.version)

    def _published(self, source: dict[str, Any]) -> bool:
        versions = self.state["modules"].get(source.get("module"), {}).get("versions", {})
        record = versions.get(source.get("version"))
        return bool(record) and (self.out_dir / "files" / record["file"]).is_file()

    @staticmethod
    def _claim(claimed: dict[str, str], module: str, folder: str) -> None:
        other = claimed.setdefault(module, folder)
        if other != folder:
            raise BuildError(f"module {module!r} is already built from folder {other!r}")

    @staticmethod
    def _release(wheel: Path, info: WheelInfo, project: SourceProject) -> Release:
        if canonicalize_name(project.distribution) != canonicalize_name(info.distribution):
            raise BuildError(f"built {info.distribution}, pyproject names {project.distribution}")
        meta = project.meta
        if not meta.summary:
            meta = replace(meta, summary=info.summary)
        return Release(
            version=info.version,
            file=wheel.name,
            url=f"files/{wheel.name}",
            sha256=sha256_file(wheel),
            size=wheel.stat().st_size,
            requires_python=info.requires_python,
            dependencies=info.dependencies,
            meta=meta,
        )

    def _publish(self, wheel: Path, release: Release) -> None:
        target = self.out_dir / "files" / release.file
        if target.is_file():
            if sha256_file(target) == release.sha256:
                return
            if not self.replace_existing:
                raise BuildError(
                    f"{release.file} is already published with different content;"
                    " bump the version (or rebuild with --replace-existing)"
                )
            self.progress(f"replacing published {release.file}")
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(wheel, tmp)
        os.replace(tmp, target)

    def _record(
        self, folder: str, digest: str, info: WheelInfo, project: SourceProject, release: Release
    ) -> None:
        module = self.state["modules"].setdefault(
            info.module, {"distribution": info.distribution, "versions": {}}
        )
        module["distribution"] = info.distribution
        module["versions"][release.version] = {
            **release.to_dict(),
            "readme_html": render_markdown(project.readme),
        }
        self.state["sources"][folder] = {
            "hash": digest,
            "module": info.module,
            "version": info.version,
        }


def _entries(state: dict[str, Any], out_dir: Path, progress: Progress) -> list[ModuleEntry]:
    """The catalog entries the state describes; versions whose wheel vanished are dropped."""
    entries = []
    for name, module in sorted(state["modules"].items()):
        releases: list[tuple[Release, str]] = []
        for version, record in module["versions"].items():
            if not (out_dir / "files" / record["file"]).is_file():
                progress(f"{name} {version}: {record['file']} is missing, left out of the index")
                continue
            try:
                release = Release.from_dict(record, f"{STATE_FILE} {name}")
            except CatalogError as exc:
                progress(f"{name} {version}: {exc}; left out of the index")
                continue
            releases.append((release, record.get("readme_html", "")))
        if not releases:
            continue
        releases.sort(key=lambda pair: Version(pair[0].version), reverse=True)
        entries.append(
            ModuleEntry(
                name=name,
                distribution=module["distribution"],
                readme_html=releases[0][1],
                docs=f"modules/{name}.html",
                versions=tuple(r for r, _ in releases),
            )
        )
    return entries


# -- output -----------------------------------------------------------------------------------


def _write_if_changed(path: Path, text: str) -> None:
    """Write *text* atomically unless the file already holds exactly it (keeps mtimes too)."""
    data = text.encode("utf-8")
    try:
        if path.read_bytes() == data:
            return
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _write_outputs(out_dir: Path, entries: list[ModuleEntry]) -> None:
    _write_if_changed(out_dir / "catalog.json", dump_catalog(entries))
    projects = sorted(entries, key=lambda e: canonicalize_name(e.distribution))
    _write_if_changed(out_dir / "simple" / "index.html", _simple_root(projects))
    for entry in projects:
        page = out_dir / "simple" / canonicalize_name(entry.distribution) / "index.html"
        _write_if_changed(page, _simple_project(entry))
        _write_if_changed(out_dir / "modules" / f"{entry.name}.html", _module_page(entry))
    _write_if_changed(out_dir / "index.html", _index_page(entries))


_SIMPLE_HEAD = (
    '<!DOCTYPE html>\n<html>\n<head>\n<meta name="pypi:repository-version" content="1.0">\n'
    "<title>{title}</title>\n</head>\n<body>\n"
)


def _simple_root(entries: list[ModuleEntry]) -> str:
    links = "".join(
        f'<a href="{escape(canonicalize_name(e.distribution))}/">'
        f"{escape(canonicalize_name(e.distribution))}</a>\n"
        for e in entries
    )
    return _SIMPLE_HEAD.format(title="Simple index") + links + "</body>\n</html>\n"


def _simple_project(entry: ModuleEntry) -> str:
    """PEP 503 project page; PEP 503 and 592 attributes, hash in the URL fragment."""
    links = []
    for release in sorted(entry.versions, key=lambda r: r.parsed_version):
        rp = release.requires_python
        attr = f' data-requires-python="{escape(rp)}"' if rp else ""
        href = f"../../{release.url}#sha256={release.sha256}"
        links.append(f'<a href="{escape(href)}"{attr}>{escape(release.file)}</a><br>\n')
    title = f"Links for {escape(entry.distribution)}"
    return _SIMPLE_HEAD.format(title=title) + f"<h1>{title}</h1>\n" + "".join(links) + (
        "</body>\n</html>\n"
    )


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;"
    "line-height:1.5}table{border-collapse:collapse;width:100%}th,td{text-align:left;"
    "padding:.3rem .6rem;border-bottom:1px solid #ddd;vertical-align:top}code,pre{background:"
    "#f4f4f4}pre{padding:.6rem;overflow-x:auto}.stage{font-size:.85em;padding:0 .4em;"
    "border-radius:.3em;background:#eee}.alpha{background:#fdd}.beta{background:#ffd}"
    ".stable{background:#dfd}"
)


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"{body}</body>\n</html>\n"
    )


def _stage(stage: str) -> str:
    return f'<span class="stage {escape(stage)}">{escape(stage)}</span>'


def _index_page(entries: list[ModuleEntry]) -> str:
    rows = []
    for e in entries:
        meta = e.latest.meta
        versions = ", ".join(
            f'<a href="{escape(r.url)}">{escape(r.version)}</a>' for r in e.versions
        )
        rows.append(
            f'<tr><td><a href="{escape(e.docs)}">{escape(e.name)}</a></td>'
            f"<td>{escape(meta.summary)}</td><td>{_stage(meta.stage)}</td>"
            f"<td>{escape(', '.join(meta.xeps))}</td><td>{versions}</td></tr>\n"
        )
    body = (
        "<h1>Tercet plugins</h1>\n"
        "<p>Install one with <code>tercet plugin install NAME</code>. "
        'Machine-readable: <a href="catalog.json">catalog.json</a>, '
        '<a href="simple/">PEP 503 index</a>.</p>\n'
        "<table>\n<tr><th>Module</th><th>Summary</th><th>Stage</th><th>XEPs</th>"
        "<th>Versions</th></tr>\n" + "".join(rows) + "</table>\n"
    )
    return _page("Tercet plugins", body)


def _module_page(entry: ModuleEntry) -> str:
    meta = entry.latest.meta
    facts = [
        ("Distribution", escape(entry.distribution)),
        ("Stage", _stage(meta.stage)),
        ("XEPs", escape(", ".join(meta.xeps)) or "none"),
        ("Requires", escape(", ".join(meta.requires)) or "nothing"),
        ("Conflicts with", escape(", ".join(meta.conflicts)) or "nothing"),
        ("Tercet versions", escape(meta.tercet) or "any"),
        ("Install", f"<code>tercet plugin install {escape(entry.name)}</code>"),
    ]
    fact_rows = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>\n" for k, v in facts)
    version_rows = "".join(
        f'<tr><td>{escape(r.version)}</td><td><a href="../{escape(r.url)}">{escape(r.file)}</a>'
        f"</td><td>{escape(r.meta.tercet) or 'any'}</td><td>{escape(r.requires_python)}</td>"
        f"<td><code>{r.sha256}</code></td></tr>\n"
        for r in entry.versions
    )
    body = (
        f'<p><a href="../index.html">All plugins</a></p>\n<h1>{escape(entry.name)}</h1>\n'
        f"<p>{escape(meta.summary)}</p>\n<table>\n{fact_rows}</table>\n"
        "<h2>Versions</h2>\n<table>\n<tr><th>Version</th><th>File</th><th>Tercet</th>"
        f"<th>Python</th><th>SHA-256</th></tr>\n{version_rows}</table>\n"
        f'<h2>Documentation</h2>\n<div class="readme">\n'
        f"{entry.readme_html or '<p>No README.</p>'}\n</div>\n"
    )
    return _page(f"{entry.name}: Tercet plugin", body)


# -- serving ----------------------------------------------------------------------------------


class _RepoHandler(http.server.SimpleHTTPRequestHandler):
    """Static files; dotfiles (the build state, temporary files) are not served."""

    def send_head(self):  # type: ignore[no-untyped-def]
        path = urllib.parse.unquote(self.path.split("?", 1)[0].split("#", 1)[0])
        if any(part.startswith(".") for part in path.split("/") if part):
            self.send_error(404)
            return None
        return super().send_head()

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)


def serve(out_dir: Path, host: str = "127.0.0.1", port: int = 0) -> http.server.ThreadingHTTPServer:
    """A started-but-not-running HTTP server for *out_dir*; call ``serve_forever()`` on it.

    Meant for testing a repository locally: it binds loopback by default, and ``port=0``
    picks a free port (read it from ``server.server_address``).
    """
    handler = functools.partial(_RepoHandler, directory=str(Path(out_dir).resolve()))
    server = http.server.ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def server_url(server: http.server.ThreadingHTTPServer) -> str:
    """The base URL of a server made by :func:`serve`, e.g. ``http://127.0.0.1:40123/``."""
    host, port = server.server_address[:2]
    host = host.decode() if isinstance(host, bytes) else host
    return f"http://{host}:{port}/"
