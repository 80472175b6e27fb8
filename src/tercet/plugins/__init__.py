"""Community plugins: the package format, the repository builder and the installer.

See ``docs/plugins.md``. The server's module manager needs only :func:`plugin_paths` and
:func:`discover`; the ``tercet plugin`` and ``tercet repo`` commands use the rest.
"""

from __future__ import annotations

from .installer import (
    CorruptWheel,
    HashMismatch,
    IncompatibleVersion,
    InstalledPlugin,
    Installer,
    InstallError,
    InstallResult,
    ModuleConflict,
    NotInstalled,
    PipFailed,
    PluginEntry,
    PluginInfo,
    RepositoryUnavailable,
    SearchHit,
    ShadowsBuiltin,
    UnknownPlugin,
    discover,
    plugin_paths,
)
from .package import ENTRY_POINT_GROUP, PluginFormatError, TercetMeta
from .repo import BuildError, BuildReport, build_repository, serve

__all__ = [
    "ENTRY_POINT_GROUP",
    "BuildError",
    "BuildReport",
    "CorruptWheel",
    "HashMismatch",
    "IncompatibleVersion",
    "InstallError",
    "InstallResult",
    "InstalledPlugin",
    "Installer",
    "ModuleConflict",
    "NotInstalled",
    "PipFailed",
    "PluginEntry",
    "PluginFormatError",
    "PluginInfo",
    "RepositoryUnavailable",
    "SearchHit",
    "ShadowsBuiltin",
    "TercetMeta",
    "UnknownPlugin",
    "build_repository",
    "discover",
    "plugin_paths",
    "serve",
]
