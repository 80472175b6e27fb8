"""Directories and files the server creates: private to its user, whatever the umask.

The data directory holds SCRAM keys, message archives and logs, so what Tercet creates
there is 0700 (directories) and 0600 (files), set explicitly because the umask of the
process that starts the server is not ours to trust. Paths that already exist are the
operator's: they are left as they are, and ``tercet check`` warns when they are open to
other users (:func:`loose_mode`).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private_dir(path: Path) -> Path:
    """Create ``path`` and any missing parents with mode 0700; existing ones are kept."""
    missing: list[Path] = []
    cur = path
    while not cur.exists() and cur != cur.parent:
        missing.append(cur)
        cur = cur.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            continue  # made meanwhile by someone else: theirs, left as it is
        os.chmod(directory, PRIVATE_DIR)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty with mode 0600 if it does not exist (parents 0700)."""
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        return path
    try:
        os.fchmod(fd, PRIVATE_FILE)
    finally:
        os.close(fd)
    return path


def loose_mode(path: Path) -> str | None:
    """How ``path`` is open to other users ("readable by other users", ...), or None when
    only its owner may read and write it (or it does not exist)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        who = "other users" if mode & stat.S_IROTH else "its group"
        return f"readable by {who} (mode {stat.S_IMODE(mode):04o})"
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"writable by others (mode {stat.S_IMODE(mode):04o})"
    return None
