"""docs/modules.md stays true: its tutorial module builds, installs, loads and passes the
tutorial's own test, and the snippets of each step are part of the finished module."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "modules.md"
BLOCK = re.compile(r"```(\w*)\n(.*?)\n```", re.DOTALL)
FILE_BLOCK = re.compile(r"<!-- file: (\S+) -->\n```\w*\n(.*?)\n```", re.DOTALL)


def tutorial_files() -> dict[str, str]:
    return {path: body + "\n" for path, body in FILE_BLOCK.findall(DOC.read_text())}


def test_step_snippets_are_in_the_finished_module() -> None:
    text = DOC.read_text()
    steps = text[text.index("### 2. Options"):text.index("### 6. Tests")]
    module = tutorial_files()["tercet_mod_seen/__init__.py"]
    for lang, body in BLOCK.findall(steps):
        if lang != "python":
            continue
        for line in body.splitlines():
            if line.strip() and line.strip() != "...":
                assert line in module, f"step snippet line not in the module: {line!r}"


def test_tutorial_module_passes_its_own_test(tmp_path: Path) -> None:
    files = tutorial_files()
    assert set(files) == {"pyproject.toml", "README.md", "tercet_mod_seen/__init__.py",
                          "tests/test_seen.py"}
    project = tmp_path / "seen"
    for rel, body in files.items():
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text(body, encoding="utf-8")
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_CONFIG_FILE": os.devnull,
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests" / "modules")])}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir",
         str(project), str(project / "tests" / "test_seen.py")],
        cwd=project, env=env, capture_output=True, text=True, timeout=300, check=False)
    if "No module named pytest" in result.stderr:  # pragma: no cover
        pytest.skip("pytest is not importable in a subprocess")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
