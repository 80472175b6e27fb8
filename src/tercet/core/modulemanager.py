"""Finding, loading, unloading and reloading modules at runtime.

A module is a Python module with ``load(module: ModuleApi)`` and optionally ``unload``,
``save`` and ``restore``. Built-in modules live in ``tercet.modules``; plugins are found
through entry points in group ``tercet.modules``, both in the server's environment and in
the plugin directory (one sub-directory per plugin, see docs/plugins.md).

Reload is save -> unload -> (re-import) -> load -> restore, and modules that depend on the
reloaded one are unloaded before it and loaded again after it.

Options are data: :func:`declared_schema` collects the core's options and the ``OPTIONS``
list of every module it can find (built-in, installed plugins, the environment's entry
points), reading the attribute of the imported module file; importing a module does
nothing else.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import inspect
import logging
import sys
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from tercet.core.config import Option, Schema, core_schema
from tercet.core.moduleapi import ModuleApi, ModuleError

if TYPE_CHECKING:
    from tercet.core.server import Server

log = logging.getLogger("tercet.modulemanager")

BUILTIN_PACKAGE = "tercet.modules"
ENTRY_POINT_GROUP = "tercet.modules"


@dataclass
class ModuleSource:
    """Where a module comes from: a built-in import path or a plugin entry point."""

    name: str
    import_path: str
    origin: str  # "builtin" | "plugin" | "environment"
    path: Path | None = None  # plugin directory to put on sys.path
    version: str | None = None
    distribution: str | None = None


@dataclass
class LoadedModule:
    name: str
    host: str
    source: ModuleSource
    status: str = "loading"  # "loaded" | "failed"
    api: ModuleApi | None = None
    pymodule: ModuleType | None = None
    error: str | None = None
    # (name, host) of the modules that depend on this one: a global module's dependants
    # are loaded per host, so the host is part of the key.
    dependants: set[tuple[str, str]] = field(default_factory=set)

    @property
    def meta(self) -> dict[str, Any]:
        return dict(getattr(self.pymodule, "META", {}) or {})


class ModuleManager:
    def __init__(self, server: Server, plugin_path: Path | None = None) -> None:
        self.server = server
        self.plugin_path = plugin_path
        self.loaded: dict[tuple[str, str], LoadedModule] = {}
        self._pending: list[Any] = []

    # -- discovery ------------------------------------------------------------------------
    def builtin_names(self) -> set[str]:
        return builtin_names()

    def find(self, name: str) -> ModuleSource | None:
        """Plugins shadow nothing unless installed with --replace-builtin (their own dir)."""
        for source in self._plugin_sources():
            if source.name == name:
                return source
        if name in self.builtin_names():
            return ModuleSource(name, f"{BUILTIN_PACKAGE}.{name}", "builtin")
        for source in _environment_sources():
            if source.name == name:
                return source
        return None

    def _plugin_sources(self) -> list[ModuleSource]:
        return plugin_sources(self.plugin_path)

    def available(self) -> list[ModuleSource]:
        return available_sources(self.plugin_path)

    # -- loading --------------------------------------------------------------------------
    def is_global(self, name: str) -> bool:
        source = self.find(name)
        if source is None:
            return False
        try:
            mod = self._import(source, fresh=False)
        except Exception:
            return False
        return bool(getattr(mod, "GLOBAL", False))

    async def load(self, name: str, host: str) -> LoadedModule:
        """Load ``name`` on ``host`` ("*" = global). A failing module is marked failed."""
        if self.is_global(name):
            host = "*"
        existing = self.loaded.get((name, host))
        if existing is not None and existing.status == "loaded":
            return existing
        entry = self._start_load(name, host)
        if entry.status == "loading":
            await self._finish_load(entry)
        return entry

    def ensure_loaded(self, name: str, host: str, dependant: str | None = None) -> None:
        """Synchronous part of a dependency load (called from a module's load())."""
        dependant_key = (dependant, host) if dependant else None
        if self.is_global(name):
            host = "*"
        entry = self.loaded.get((name, host))
        if entry is None or entry.status != "loaded":
            entry = self._start_load(name, host)
            if entry.status == "loading":
                self._pending.append(self._finish_load(entry))
            if entry.status == "failed":
                raise ModuleError(f"dependency {name} failed to load: {entry.error}")
        if dependant_key is not None:
            entry.dependants.add(dependant_key)

    def _start_load(self, name: str, host: str) -> LoadedModule:
        source = self.find(name)
        entry = LoadedModule(name, host, source or ModuleSource(name, "", "missing"))
        self.loaded[(name, host)] = entry
        if source is None:
            return self._fail(entry, f"module {name!r} not found (not built in, no plugin)")
        try:
            entry.pymodule = self._import(source, fresh=False)
            self._check_conflicts(entry)
            entry.api = LoadedModuleApi(self.server, name, host)
            entry.api._declare(declared_options(entry.pymodule, name))
            for action, role in module_permissions(entry.pymodule, name).items():
                entry.api.default_permission(role, action)
            result = entry.pymodule.load(entry.api)
        except Exception as exc:
            return self._fail(entry, self._describe(exc))
        if inspect.isawaitable(result):
            self._pending.insert(0, result)
        return entry

    async def _finish_load(self, entry: LoadedModule) -> None:
        try:
            while self._pending:
                await self._pending.pop(0)
        except Exception as exc:
            self._abandon_pending(entry)
            self._fail(entry, self._describe(exc))
            return
        if entry.status == "loading":
            entry.status = "loaded"
            log.info("loaded module %s on %s", entry.name, entry.host)
            self.server.events.fire("module-loaded", entry)

    def _abandon_pending(self, failed: LoadedModule) -> None:
        """A load failed part-way: the loads it started (its dependencies) never finish,
        so they are failed too rather than left "loading" for ever."""
        for pending in self._pending:
            close = getattr(pending, "close", None)
            if close is not None:
                close()  # never awaited now: close it so no "never awaited" warning
        self._pending.clear()
        for other in list(self.loaded.values()):
            if other is not failed and other.status == "loading":
                self._fail(other, f"its load was abandoned when {failed.name} failed")

    def _fail(self, entry: LoadedModule, error: str) -> LoadedModule:
        entry.status = "failed"
        entry.error = error
        if entry.api is not None:
            entry.api._unload()
        log.error("module %s failed to load on %s: %s", entry.name, entry.host, error)
        self.server.events.fire("module-failed", entry)
        return entry

    @staticmethod
    def _describe(exc: BaseException) -> str:
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" ({tb[-1].filename}:{tb[-1].lineno})" if tb else ""
        return f"{type(exc).__name__}: {exc}{where}"

    def _check_conflicts(self, entry: LoadedModule) -> None:
        """Refuse a module built for another Tercet, or one that conflicts with a loaded
        module; load what it ``requires`` first (like depends())."""
        meta = getattr(entry.pymodule, "META", {}) or {}
        spec = meta.get("tercet")
        if spec:
            try:
                compatible = Version(self.server.version) in SpecifierSet(str(spec))
            except (InvalidSpecifier, InvalidVersion):
                raise ModuleError(f"invalid tercet version specifier {spec!r}") from None
            if not compatible:
                raise ModuleError(f"needs Tercet {spec}, this is {self.server.version}")
        for required in meta.get("requires", ()):
            if self.find(required) is not None:
                self.ensure_loaded(required, entry.host, dependant=entry.name)
        for other in meta.get("conflicts", ()):
            for (name, host), loaded in self.loaded.items():
                if name == other and loaded.status == "loaded" and host in (entry.host, "*"):
                    raise ModuleError(f"conflicts with loaded module {other}")

    def _import(self, source: ModuleSource, fresh: bool) -> ModuleType:
        return import_source(source, fresh)

    # -- unloading and reloading -------------------------------------------------------------
    async def unload(self, name: str, host: str) -> list[str]:
        """Unload a module and, first, everything depending on it; returns what went."""
        return [gone for gone, _host in await self._unload_tree(name, host)]

    async def _unload_tree(self, name: str, host: str) -> list[tuple[str, str]]:
        """Unload dependants first (on whichever host they run), then the module; returns
        (name, host) of everything unloaded, dependants first."""
        if (name, host) not in self.loaded and (name, "*") in self.loaded:
            host = "*"
        entry = self.loaded.get((name, host))
        if entry is None:
            raise ModuleError(f"module {name} is not loaded on {host}")
        gone: list[tuple[str, str]] = []
        for dependant, dep_host in sorted(entry.dependants):
            if (dependant, dep_host) in self.loaded:
                gone += await self._unload_tree(dependant, dep_host)
        await self._unload_one(entry)
        gone.append((name, host))
        return gone

    async def _unload_one(self, entry: LoadedModule) -> None:
        self.loaded.pop((entry.name, entry.host), None)
        if entry.status == "loaded" and entry.pymodule is not None and entry.api is not None:
            fn = getattr(entry.pymodule, "unload", None)
            if fn is not None:
                try:
                    result = fn(entry.api)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    log.exception("module %s raised in unload()", entry.name)
        if entry.api is not None:
            entry.api._unload()
        for other in self.loaded.values():
            other.dependants.discard((entry.name, entry.host))
        log.info("unloaded module %s from %s", entry.name, entry.host)
        self.server.events.fire("module-unloaded", entry)

    async def reload(self, name: str, host: str) -> LoadedModule:
        """save -> unload (with dependants) -> re-import -> load -> restore."""
        if (name, host) not in self.loaded and (name, "*") in self.loaded:
            host = "*"
        entry = self.loaded.get((name, host))
        if entry is None:
            raise ModuleError(f"module {name} is not loaded on {host}")
        states = self._save_states(entry)
        gone = await self._unload_tree(name, host)
        source = self.find(name)
        if source is not None:
            try:
                self._import(source, fresh=True)
            except Exception as exc:
                log.error("re-import of %s failed: %s", name, exc)
        first = None
        for mod_name, mod_host in reversed(gone):
            loaded = await self.load(mod_name, mod_host)
            first = loaded if mod_name == name else first
            self._restore_state(loaded, states.get((mod_name, mod_host)))
        assert first is not None
        return first

    def _save_states(self, entry: LoadedModule) -> dict[tuple[str, str], Any]:
        states: dict[tuple[str, str], Any] = {}
        todo = [entry]
        while todo:
            cur = todo.pop()
            save = getattr(cur.pymodule, "save", None)
            if save is not None and cur.api is not None and cur.status == "loaded":
                try:
                    states[(cur.name, cur.host)] = save(cur.api)
                except Exception:
                    log.exception("module %s raised in save()", cur.name)
            todo += [self.loaded[key] for key in cur.dependants if key in self.loaded]
        return states

    @staticmethod
    def _restore_state(entry: LoadedModule, state: Any) -> None:
        restore = getattr(entry.pymodule, "restore", None)
        if state is None or restore is None or entry.api is None or entry.status != "loaded":
            return
        try:
            restore(entry.api, state)
        except Exception:
            log.exception("module %s raised in restore()", entry.name)

    # -- queries ------------------------------------------------------------------------------
    def modules_on(self, host: str) -> list[LoadedModule]:
        return [m for (n, h), m in sorted(self.loaded.items()) if h in (host, "*")]

    def describe(self) -> list[dict[str, Any]]:
        out = []
        for (name, host), entry in sorted(self.loaded.items()):
            meta = entry.meta
            out.append({"name": name, "host": host, "status": entry.status,
                        "error": entry.error, "origin": entry.source.origin,
                        "version": entry.source.version, "summary": meta.get("summary"),
                        "stage": meta.get("stage"), "xeps": list(meta.get("xeps", ()))})
        return out

    async def unload_all(self) -> None:
        for (name, host) in list(reversed(list(self.loaded))):
            entry = self.loaded.get((name, host))
            if entry is not None:
                await self._unload_one(entry)


# -- discovery and declared options ------------------------------------------------------------


def builtin_names() -> set[str]:
    """The modules shipped in ``tercet.modules`` (files and packages not starting with _)."""
    pkg = importlib.import_module(BUILTIN_PACKAGE)
    names = set()
    for entry in Path(pkg.__file__ or "").parent.iterdir():
        if entry.name.startswith("_"):
            continue
        if entry.suffix == ".py":
            names.add(entry.stem)
        elif entry.is_dir() and (entry / "__init__.py").exists():
            names.add(entry.name)
    return names


def plugin_sources(plugin_path: Path | None) -> list[ModuleSource]:
    """The modules of the plugins installed in ``plugin_path`` (one directory each)."""
    if plugin_path is None or not plugin_path.is_dir():
        return []
    found = []
    for pdir in sorted(p for p in plugin_path.iterdir() if p.is_dir()):
        if pdir.name.endswith("-staging") or pdir.name.startswith("."):
            continue
        for dist in importlib.metadata.distributions(path=[str(pdir)]):
            for ep in dist.entry_points:
                if ep.group == ENTRY_POINT_GROUP:
                    found.append(ModuleSource(ep.name, ep.value.split(":")[0], "plugin",
                                              pdir, dist.version, dist.metadata["Name"]))
    return found


def available_sources(plugin_path: Path | None) -> list[ModuleSource]:
    """Installed plugins and built-in modules by name (a plugin shadows a built-in)."""
    seen = {s.name: s for s in plugin_sources(plugin_path)}
    for name in builtin_names():
        seen.setdefault(name, ModuleSource(name, f"{BUILTIN_PACKAGE}.{name}", "builtin"))
    return sorted(seen.values(), key=lambda s: s.name)


def _environment_sources() -> list[ModuleSource]:
    found = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        found.append(ModuleSource(ep.name, ep.value.split(":")[0], "environment",
                                  version=getattr(dist, "version", None)))
    return found


def declared_options(module: ModuleType, owner: str) -> list[Option[Any]]:
    """The ``OPTIONS`` list of an imported module, each with ``owner`` filled in."""
    declared = getattr(module, "OPTIONS", ())
    if not isinstance(declared, list | tuple):
        log.warning("module %s: OPTIONS is not a list; ignored", owner)
        return []
    options = []
    for item in declared:
        if isinstance(item, Option):
            options.append(replace(item, owner=owner))
        else:
            log.warning("module %s: %r in OPTIONS is not an Option; ignored", owner, item)
    return options


def module_permissions(module: ModuleType, owner: str) -> dict[str, str]:
    """The ``PERMISSIONS`` dict of an imported module (action -> least role having it),
    with ":"-prefixed actions qualified by the module name (docs/roles.md) (1.3)."""
    declared = getattr(module, "PERMISSIONS", {})
    if not isinstance(declared, dict):
        log.warning("module %s: PERMISSIONS is not a dict; ignored", owner)
        return {}
    out = {}
    for action, role in declared.items():
        if isinstance(action, str) and isinstance(role, str):
            out[f"{owner}{action}" if action.startswith(":") else action] = role
        else:
            log.warning("module %s: PERMISSIONS entry %r: %r ignored", owner, action, role)
    return out


def declared_permissions(plugin_path: Path | None = None) -> dict[str, str]:
    """Every permission the findable modules declare (``tercet check``: a custom role
    naming anything else is a typo, or needs a plugin that is not installed) (1.3)."""
    sources = available_sources(plugin_path)
    names = {s.name for s in sources}
    sources += [s for s in _environment_sources() if s.name not in names]
    found: dict[str, str] = {}
    for source in sources:
        try:
            module = import_source(source)
        except Exception:  # noqa: BLE001 - module_options already warned about it
            continue
        found.update(module_permissions(module, source.name))
    return found


def module_options(source: ModuleSource) -> list[Option[Any]]:
    """The options a module declares. A module that cannot be imported declares nothing
    here (it fails, with the reason, when it is loaded)."""
    try:
        module = import_source(source)
    except Exception as exc:  # noqa: BLE001 - any error in a module file
        log.warning("cannot read the options of module %s: %s", source.name, exc)
        return []
    return declared_options(module, source.name)


def schema_of(sources: Iterable[ModuleSource]) -> Schema:
    """The core options plus the options declared by the modules of ``sources``. A name
    another owner declared first is skipped with a warning, so one plugin cannot break the
    configuration of every other module."""
    options = {option.name: option for option in core_schema()}
    for source in sources:
        for option in module_options(source):
            first = options.get(option.name)
            if first is not None and first.owner != option.owner:
                log.warning("module %s: option %r is already declared by %s; ignored",
                            source.name, option.name, first.owner)
                continue
            options[option.name] = option
    return Schema(options.values())


def declared_schema(plugin_path: Path | None = None) -> Schema:
    """Every declared option: the core's, the built-in modules', the plugins' installed in
    ``plugin_path`` and those of modules installed in the environment (1.0)."""
    sources = available_sources(plugin_path)
    names = {s.name for s in sources}
    sources += [s for s in _environment_sources() if s.name not in names]
    return schema_of(sources)


def builtin_schema() -> Schema:
    """The core's options and the built-in modules' (what docs/configuration.md lists)."""
    return schema_of(available_sources(None))


class LoadedModuleApi(ModuleApi):
    """The ``module`` a module's ``load`` gets. ModuleApi is compiled (setup.py) to a
    native class, whose instances take no attributes but its own; modules, plugins among
    them, may keep theirs on this object, so it is an instance of this interpreted
    subclass, which has a ``__dict__``."""


def import_source(source: ModuleSource, fresh: bool = False) -> ModuleType:
    """Import a module from its source (a plugin from its own directory); ``fresh``
    imports it again. Raises ModuleError when it has no ``load``."""
    top = source.import_path if source.origin == "builtin" else \
        source.import_path.split(".")[0]
    stale = source.path is not None and not _loaded_from(sys.modules.get(top), source.path)
    if fresh or stale:
        for key in [k for k in sys.modules if k == top or k.startswith(top + ".")]:
            del sys.modules[key]
        importlib.invalidate_caches()
    if source.path is not None:
        if str(source.path) not in sys.path:
            # Appended, not prepended: a plugin's bundled copy of a library must not
            # shadow the one the server itself runs on.
            sys.path.append(str(source.path))
        if top not in sys.modules:
            # Found in this plugin's own directory, whatever else is on sys.path.
            _import_from(top, source.path)
    module = importlib.import_module(source.import_path)
    if not hasattr(module, "load"):
        raise ModuleError(f"{source.import_path} has no load(module) function")
    return module


def _loaded_from(module: ModuleType | None, directory: Path) -> bool:
    """Whether ``module`` (already imported) comes from ``directory``."""
    where = getattr(module, "__file__", None)
    return module is not None and where is not None and Path(where).is_relative_to(directory)


def _import_from(name: str, directory: Path) -> None:
    spec = importlib.machinery.PathFinder.find_spec(name, [str(directory)])
    if spec is None or spec.loader is None:
        return  # import_module reports it the usual way
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
