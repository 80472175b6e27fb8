"""Build hook: compile the stanza hot path to C with mypyc, when it can be.

Everything else about the package is in pyproject.toml. The modules below are the ones
every delivered stanza runs through (parse, route, serialise, TLS, write); compiled, a
delivery over TLS costs about a fifth less server CPU (bench/README.md, "Compiled hot
path"). They are plain typed Python, so the same source runs interpreted when they are
not compiled:

* ``TERCET_PURE_PYTHON=1`` skips compiling (for working on these files: an editable
  install's compiled copy would otherwise stand in front of the edited source);
* without a C compiler or Python's headers the build says why and installs pure Python.

``python -c 'import tercet; print(tercet.compiled())'`` tells which one is installed.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

# The stanza path, in dependency order. Of the built-in modules (tercet/modules), only
# the three every message passes through and the MUC's fan-out (each copy of a room's
# stanza is addressed, queued and written by _muc's render, occupant and outbox) are
# compiled: unloading and reloading them still works (a reload runs the installed code's
# load() again), but an edit to their source takes effect with the next install, like
# any installed package's. The other built-in modules and every plugin stay interpreted
# and re-import edited source.
HOT_PATH = [
    "src/tercet/protocol/errors.py",
    "src/tercet/protocol/stanza.py",
    "src/tercet/protocol/jid.py",
    "src/tercet/protocol/xmlstream.py",
    "src/tercet/core/events.py",
    "src/tercet/core/host.py",
    "src/tercet/core/session.py",
    "src/tercet/core/router.py",
    "src/tercet/net/tlslayer.py",
    "src/tercet/net/readiness.py",
    "src/tercet/net/c2s.py",
    "src/tercet/core/moduleapi.py",
    "src/tercet/modules/message.py",
    "src/tercet/modules/carbons.py",
    "src/tercet/modules/blocklist.py",
    "src/tercet/modules/_muc/render.py",
    "src/tercet/modules/_muc/occupant.py",
    "src/tercet/modules/_muc/outbox.py",
]


class OptionalBuildExt(build_ext):
    """Compile when possible; on failure, warn and install the interpreted modules."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler, no headers: the pure-Python install works
            _skip(exc)

    def build_extension(self, ext: Any) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            _skip(exc)


def _skip(exc: BaseException) -> None:
    print(f"tercet: not compiling the hot path ({type(exc).__name__}: {exc}); "
          "installing it as pure Python", file=sys.stderr)


def _extensions() -> list[Any]:
    if os.environ.get("TERCET_PURE_PYTHON"):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError as exc:
        _skip(exc)
        return []
    try:
        # The build environment lacks the runtime dependencies, so what these files
        # import from them is typed Any here; only errors in the files themselves count
        # (CI type-checks the whole tree with its dependencies, mypy --strict).
        return list(mypycify(["--follow-imports=silent", "--ignore-missing-imports",
                              *HOT_PATH], group_name="tercet", opt_level="3"))
    except (Exception, SystemExit) as exc:  # mypyc exits on a type error: fall back
        _skip(exc)
        return []


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
