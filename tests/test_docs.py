"""The operator docs stay in step with the code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_configuration_reference_is_current() -> None:
    out = subprocess.run([sys.executable, "-m", "tercet", "config-reference", "--builtin-only"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    doc = (ROOT / "docs" / "configuration.md").read_text()
    assert doc == out, ("regenerate with: "
                        "tercet config-reference --builtin-only > docs/configuration.md")


def test_every_option_a_module_reads_is_documented() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    documented = set(re.findall(r"^\| `([a-z0-9_]+)`", doc, re.M))
    used: set[str] = set()
    for path in (ROOT / "src" / "tercet" / "modules").glob("*.py"):
        used |= set(re.findall(r"module\.(?:global_)?option\(\s*\"([a-z0-9_]+)\"",
                               path.read_text()))
    assert used - documented == set()


def test_bounds_page_is_current() -> None:
    out = subprocess.run([sys.executable, "-m", "tercet", "config-reference", "--builtin-only",
                          "--bounds"], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    doc = (ROOT / "docs" / "bounds.md").read_text()
    assert doc == out, ("regenerate with: "
                        "tercet config-reference --builtin-only --bounds > docs/bounds.md")
    assert "`MAX_STANZA_SIZE`" in doc or "`DEFAULT_MAX_STANZA_SIZE`" in doc
    assert "`c2s_stanza_size_limit`" in doc
