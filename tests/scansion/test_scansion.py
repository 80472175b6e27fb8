"""Prosody's conformance scripts (scansion) that Tercet must pass, each against a fresh
server configured like Prosody's test setup (see scansion_support.py).

Skipped when ../shared (the corpus and the runner) is not next to the project.
"""

from __future__ import annotations

import pytest
from scansion_support import REQUIRED, available, run_script

SKIP = available()


@pytest.mark.skipif(SKIP is not None, reason=SKIP or "")
@pytest.mark.parametrize("name", REQUIRED)
def test_scansion_script(name: str) -> None:
    outcome = run_script(name)
    assert outcome.passed, f"{name}.scs failed:\n{outcome.output}"
