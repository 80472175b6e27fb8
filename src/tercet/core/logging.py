"""Logging setup: stderr by default, or a file that SIGHUP reopens (for logrotate)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from tercet.files import private_file

# The handlers this module installed, so a reload replaces them and leaves others alone.
_OURS: list[logging.Handler] = []

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(level: str = "info", file: Path | None = None) -> None:
    """(Re)configure the root logger; calling it again reopens the log file."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler in _OURS:
            root.removeHandler(handler)
            handler.close()
    _OURS.clear()
    new: logging.Handler
    if file is not None:
        private_file(file)  # the log names accounts and addresses: 0600, in a 0700 dir
        new = logging.FileHandler(file, encoding="utf-8")
    else:
        new = logging.StreamHandler(sys.stderr)
    new.setFormatter(logging.Formatter(_FORMAT))
    _OURS.append(new)
    root.addHandler(new)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
