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

    stale = []
    for built in Path(__file__).parent.rglob("*.so"):
        source = built.with_name(built.name.split(".", 1)[0] + ".py")
        if built.name.endswith(tuple(EXTENSION_SUFFIXES)) and source.exists() \
                and source.stat().st_mtime > built.stat().st_mtime:
            stale.append(str(source.relative_to(Path(__file__).parent.parent)))
    return sorted(stale)
