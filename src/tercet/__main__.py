"""``python -m tercet``: the ``tercet`` command."""

from __future__ import annotations

from tercet.cli.main import main

if __name__ == "__main__":
    main()
