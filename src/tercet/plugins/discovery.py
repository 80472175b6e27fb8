"""Finding installed plugins: what the server's module manager needs, and nothing more.

Each plugin lives in ``<plugin_path>/<module name>`` (see ``installer.py``); its modules are
the entry points in group ``tercet.modules`` of the distributions in that directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path

from .package import ENTRY_POINT_GROUP, MODULE_NAME_RE

__all__ = ["PluginEntry", "discover", "entry_points_in", "plugin_paths"]


@dataclass(frozen=True, slots=True)
class PluginEntry:
    """A module found in the plugin directory: what the server's module manager loads."""

    name: str  # module name (the entry point name)
    value: str  # "tercet_mod_motd" or "pkg.mod:attr"
    distribution: str
    version: str
    path: Path  # the directory to put on sys.path

    @property
    def module(self) -> str:
        return self.value.split(":", 1)[0].strip()


def plugin_paths(plugin_path: Path) -> list[Path]:
    """The installed plugin directories, sorted; staging and trash directories are skipped."""
    root = Path(plugin_path)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and MODULE_NAME_RE.match(p.name))


def discover(plugin_path: Path) -> dict[str, PluginEntry]:
    """Module name -> entry point of every installed plugin (first directory wins a clash)."""
    found: dict[str, PluginEntry] = {}
    for directory in plugin_paths(plugin_path):
        for name, entry in entry_points_in(directory).items():
            found.setdefault(name, entry)
    return found


def entry_points_in(directory: Path) -> dict[str, PluginEntry]:
    """The tercet.modules entry points of the distributions in one directory."""
    found: dict[str, PluginEntry] = {}
    dists = importlib_metadata.distributions(path=[str(directory)])
    for dist in sorted(dists, key=lambda d: str(d.metadata["Name"] or "")):
        for ep in dist.entry_points.select(group=ENTRY_POINT_GROUP):
            found.setdefault(
                ep.name,
                PluginEntry(ep.name, ep.value, dist.metadata["Name"], dist.version, directory),
            )
    return found
