"""Helpers shared by the plugin tests: sample plugin projects and file-tree snapshots."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from tercet import __version__
from tercet.plugins.repo import build_repository

# Sample plugins declare the running Tercet's series as compatible, so the CLI tests that
# install them into a real server (which checks its own version) accept them.
TERCET_VERSION = __version__
_MAJOR_MINOR = tuple(int(p) for p in __version__.split(".")[:2])
COMPATIBLE = f">={_MAJOR_MINOR[0]}.{_MAJOR_MINOR[1]},<{_MAJOR_MINOR[0]}.{_MAJOR_MINOR[1] + 1}"

MOTD_README = """\
# motd

Sends a *message of the day* to users when they log in.

- configure `motd_text`
- that's all

```toml
motd_text = "Hello <b>world</b>"
```

<script>alert("readme")</script> and a [link](https://example.org/motd).
"""


def write_plugin(
    root: Path,
    module: str,
    version: str,
    *,
    tercet: str = COMPATIBLE,
    stage: str = "beta",
    summary: str = "",
    xeps: tuple[str, ...] = (),
    requires: tuple[str, ...] = (),
    conflicts: tuple[str, ...] = (),
    dependencies: tuple[str, ...] = (),
    readme: str | None = None,
    body: str = "",
) -> Path:
    """Write a minimal plugin project (pyproject + package) into ``root/<module>``."""
    folder = root / module
    package = folder / f"tercet_mod_{module}"
    package.mkdir(parents=True, exist_ok=True)
    dist = "tercet-mod-" + module.replace("_", "-")
    folder.joinpath("pyproject.toml").write_text(
        f"""\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "{version}"
description = "The {module} module"
requires-python = ">=3.11"
dependencies = {json.dumps(list(dependencies))}

[project.entry-points."tercet.modules"]
{module} = "tercet_mod_{module}"

[tool.setuptools]
packages = ["tercet_mod_{module}"]

[tool.tercet]
summary = {json.dumps(summary or f"{module} for tests")}
stage = "{stage}"
xeps = {json.dumps(list(xeps))}
requires = {json.dumps(list(requires))}
conflicts = {json.dumps(list(conflicts))}
tercet = "{tercet}"
""",
        encoding="utf-8",
    )
    package.joinpath("__init__.py").write_text(
        f'VERSION = "{version}"\n\n\ndef load(module):\n    module.loaded = True\n{body}',
        encoding="utf-8",
    )
    if readme is not None:
        folder.joinpath("README.md").write_text(readme, encoding="utf-8")
    return folder


def write_samples(src: Path) -> None:
    """The two sample modules: motd (stand-alone) and welcome (requires motd)."""
    write_plugin(src, "motd", "1.0.0", readme=MOTD_README, summary="Message of the day")
    write_plugin(src, "welcome", "0.3.0", stage="alpha", xeps=("XEP-0199",),
                 requires=("motd",), conflicts=("legacy_welcome",),
                 readme="# welcome\n\nGreets new users.\n")


@dataclass
class Repo:
    src: Path
    out: Path

    @property
    def url(self) -> str:
        return self.out.as_uri() + "/"

    def rebuild(self) -> None:
        report = build_repository(self.src, self.out)
        assert report.ok, report.failed

    def copy(self, dest: Path) -> Repo:
        shutil.copytree(self.src, dest / "src")
        shutil.copytree(self.out, dest / "out")
        return Repo(dest / "src", dest / "out")


def tree_snapshot(root: Path) -> dict[str, bytes]:
    """Every file under *root* with its bytes (bookkeeping files like .lock excluded)."""
    if not root.exists():
        return {}
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }
