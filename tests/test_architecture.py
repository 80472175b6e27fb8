"""The package graph of docs/internals.md, enforced: who may import whom.

Every import counts, including those under ``if TYPE_CHECKING:`` and inside functions: a
type-only import is still a dependency a reader has to follow.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "tercet"
COMMUNITY = ROOT / "community"

# package -> the packages it may import (besides itself). "module" is tercet/module.py,
# the public module surface; "app" is tercet/app.py, the composition root.
ALLOWED: dict[str, set[str]] = {
    "protocol": set(),
    "storage": {"protocol"},
    "auth": {"protocol", "storage"},
    "core": {"(root)", "protocol", "storage", "auth", "files"},
    "net": {"core", "protocol"},
    "module": {"core", "protocol", "storage", "auth"},
    "modules": {"module", "protocol"},
    "app": {"core", "net", "storage", "files"},
    "plugins": {"(root)"},
    "cli": {"(root)", "app", "core", "auth", "storage", "protocol", "plugins", "net", "files"},
    "__main__": {"cli"},
    "(root)": set(),
    # Private directories and files whatever the umask (tercet/files.py).
    "files": set(),
}
# Modules whose job is to wrap an implementation that lives outside modules/.
MODULE_EXCEPTIONS = {"tercet.modules.auth_internal_hashed": {"auth"}}
# The protocol layer is sans-I/O (../shared/STYLE.md §2).
IO_MODULES = {"asyncio", "socket", "ssl", "selectors", "threading"}


def module_name(path: Path, base: Path, prefix: str) -> str:
    rel = path.relative_to(base).with_suffix("")
    parts = [prefix, *rel.parts] if prefix else list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, name: str) -> Iterator[str]:
    """Absolute names of everything ``path`` (module ``name``) imports."""
    tree = ast.parse(path.read_text(), str(path))
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                yield node.module or ""
            else:
                base = package[: len(package) - node.level + 1]
                yield ".".join(base + ([node.module] if node.module else []))


def package_of(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "(root)"


def source_files() -> Iterator[tuple[Path, str]]:
    for path in sorted(SRC.rglob("*.py")):
        yield path, module_name(path, SRC.parent, "")


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path, name in source_files():
        src = package_of(name)
        for target in imports_of(path, name):
            if target.split(".")[0] == "tercet" and package_of(target) != src:
                graph.setdefault(src, set()).add(package_of(target))
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle in ``graph`` as a list of nodes, or None."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def test_no_cycle_between_packages() -> None:
    cycle = find_cycle(package_graph())
    assert cycle is None, "import cycle between packages: " + " -> ".join(cycle or [])


def test_find_cycle_sees_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_every_package_imports_only_what_it_may() -> None:
    wrong = []
    for path, name in source_files():
        src = package_of(name)
        allowed = ALLOWED[src] | MODULE_EXCEPTIONS.get(name, set())
        for target in imports_of(path, name):
            if target.split(".")[0] != "tercet":
                continue
            dst = package_of(target)
            if dst != src and dst not in allowed:
                wrong.append(f"{name} imports {target}")
    assert not wrong, "imports beyond the package graph:\n" + "\n".join(wrong)


def test_modules_use_only_the_public_surface() -> None:
    """Built-in and community modules import tercet.module, tercet.protocol and private
    sibling helpers, nothing else of tercet."""
    wrong = []
    files = [(p, n) for p, n in source_files() if n.startswith("tercet.modules.")]
    files += [(p, module_name(p, COMMUNITY, "community"))
              for p in sorted(COMMUNITY.glob("*/tercet_mod_*/**/*.py"))]
    for path, name in files:
        for target in imports_of(path, name):
            if not target.startswith("tercet") or target.startswith("tercet_mod_"):
                continue
            ok = (target == "tercet.module" or target.startswith("tercet.protocol")
                  or target.startswith("tercet.modules._")
                  or package_of(target) in MODULE_EXCEPTIONS.get(name, set()))
            if not ok:
                wrong.append(f"{name} imports {target}")
    assert not wrong, "modules reaching past tercet.module:\n" + "\n".join(wrong)


def test_protocol_is_sans_io() -> None:
    wrong = [f"{name} imports {target}"
             for path, name in source_files() if name.startswith("tercet.protocol")
             for target in imports_of(path, name) if target.split(".")[0] in IO_MODULES]
    assert not wrong, "\n".join(wrong)


def test_public_surface_imports_cleanly_first() -> None:
    """tercet.module can be the first thing a plugin imports (no hidden import order)."""
    import subprocess

    code = "import tercet.module as m; assert m.ModuleApi and m.StanzaEvent"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT,
                   env={"PYTHONPATH": str(SRC.parent)})


def test_graph_table_covers_every_package() -> None:
    """A new package needs a rule here (and a line in docs/internals.md)."""
    names = {package_of(n) for _, n in source_files()}
    assert names == set(ALLOWED)
