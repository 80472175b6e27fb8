"""Pass count of Tercet over the whole scansion corpus (all scripts), for release notes.

    python3 tests/scansion/report.py [-v] [NAME ...]

Not part of the test suite: each script gets its own fresh server, so the whole corpus
takes a few minutes. Prints one line per script and the total; -v adds the runner's
output for failures. Exit status 0 only if every script passed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scansion_support import REQUIRED, all_scripts, available, run_script


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="scripts to run (default: all)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show the runner's output for failures")
    args = parser.parse_args(argv)
    reason = available()
    if reason is not None:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    names = args.names or all_scripts()
    passed = 0
    for name in names:
        start = time.monotonic()
        outcome = run_script(name)
        passed += outcome.passed
        mark = "PASS" if outcome.passed else "FAIL"
        required = " (required)" if name in REQUIRED else ""
        print(f"{mark}  {name}{required}  ({time.monotonic() - start:.1f}s)", flush=True)
        if args.verbose and not outcome.passed:
            print("    " + outcome.output.strip().replace("\n", "\n    "), flush=True)
    print(f"{passed}/{len(names)} scansion scripts pass")
    return 0 if passed == len(names) else 1


if __name__ == "__main__":
    sys.exit(main())
