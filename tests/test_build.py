"""The compiled hot path (setup.py): CI, which has a C compiler and Python's headers, must
run it compiled, so a change mypyc refuses (and the build quietly leaves interpreted) fails
here rather than as a slower server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import tercet

SETUP = Path(__file__).parent.parent / "setup.py"


def test_ci_runs_the_compiled_hot_path() -> None:
    if os.environ.get("CI") != "true":
        pytest.skip("only CI guarantees a compiler (README, set-up)")
    assert tercet.compiled(), "the hot path was installed interpreted: see pip's build log"


def test_the_compiled_modules_exist_and_are_reported() -> None:
    text = SETUP.read_text()
    listed = [line.strip().strip('",') for line in text.splitlines()
              if line.strip().startswith('"src/tercet/')]
    assert "src/tercet/protocol/stanza.py" in listed
    for path in listed:
        assert (SETUP.parent / path).is_file(), path
    assert tercet.stale_compiled() == []


def test_the_interpreted_install_passes_the_protocol_and_c2s_tests() -> None:
    # A machine without a compiler runs the same source interpreted: the stream, stanza,
    # JID and SASL tests and the c2s integration tests, on those files loaded from source.
    if not tercet.compiled():
        pytest.skip("the whole suite runs interpreted here already")
    tests = ["tests/protocol", "tests/integration/test_c2s.py"]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
        cwd=SETUP.parent, env={**os.environ, "TERCET_INTERPRETED": "1"},
        capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout
