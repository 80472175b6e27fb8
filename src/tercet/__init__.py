"""Tercet: an XMPP server in Python with a small core and everything else a module."""

__version__ = "0.2.0"
SOFTWARE_NAME = "Tercet"


def compiled() -> bool:
    """Whether the stanza hot path runs compiled (mypyc, see setup.py) or interpreted."""
    from importlib.machinery import EXTENSION_SUFFIXES
    from importlib.util import find_spec

    # Found, not imported: the package's root imports nothing of its own.
    spec = find_spec(__name__ + ".protocol.stanza")
    return spec is not None and (spec.origin or "").endswith(tuple(EXTENSION_SUFFIXES))


def stale_compiled() -> list[str]:
    """Compiled modules whose source changed after the build (an editable install whose
    compiled copy would hide the edit): rebuild, or install with TERCET_PURE_PYTHON=1."""
    from importlib.machinery import EXTENSION_SUFFIXES
    from pathlib import Path

    package = Path(__file__).parent
    # Each compiled module is a small shim over one shared library beside the package
    # (mypyc's group), which a rebuild replaces even when a shim stays as it was.
    group = [p.stat().st_mtime for p in package.parent.glob(f"{__name__}__mypyc.*")]
    stale = []
    for built in package.rglob("*.so"):
        source = built.with_name(built.name.split(".", 1)[0] + ".py")
        if built.name.endswith(tuple(EXTENSION_SUFFIXES)) and source.exists() \
                and source.stat().st_mtime > max([built.stat().st_mtime, *group]):
            stale.append(str(source.relative_to(package.parent)))
    return sorted(stale)
