"""Logging setup: stderr by default, or a file that SIGHUP reopens (for logrotate).

Repeated lines are limited (:class:`RepeatLimiter`): a peer that makes the server log the
same line thousands of times (refused connections, bad stanzas) must not fill the disk or
bury everything else, so each line of code may log ``BURST`` records per ``WINDOW``
seconds and then one summary saying how many it held back. A record logged with
``extra={"repeat_unlimited": True}`` always passes (failed logins, which fail2ban counts).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tercet.files import private_file

# The handlers this module installed, so a reload replaces them and leaves others alone.
_OURS: list[logging.Handler] = []

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

#: Records one line of code may log per window before the rest are counted, not written.
BURST = 10
WINDOW = 60.0
#: Call sites tracked at once; the oldest is summarised and forgotten beyond this.
MAX_SITES = 4096

Site = tuple[str, int, str, int]


@dataclass(slots=True)
class _Window:
    start: float
    seen: int = 0
    held: int = 0
    sample: str = ""


class RepeatLimiter(logging.Filter):
    """Lets ``burst`` records per call site (logger, level, file, line) through each
    ``window`` seconds; the rest are counted and reported in one summary record, written
    when that site's window ends and the next record of any site arrives."""

    def __init__(self, handler: logging.Handler, burst: int = BURST, window: float = WINDOW,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.handler = handler
        self.burst = burst
        self.window = window
        self.clock = clock
        # Ordered by window start: a site whose window restarts moves to the end.
        self._sites: dict[Site, _Window] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "repeat_unlimited", False):
            return True  # e.g. failed logins: fail2ban must see every one
        now = self.clock()
        self._close_windows(now)
        site = (record.name, record.levelno, record.pathname, record.lineno)
        state = self._sites.get(site)
        if state is None:
            if len(self._sites) >= MAX_SITES:
                oldest = next(iter(self._sites))
                self._summarise(oldest, self._sites.pop(oldest))
            state = self._sites[site] = _Window(now)
        state.seen += 1
        if state.seen <= self.burst:
            return True
        state.held += 1
        if not state.sample:
            state.sample = record.getMessage()
        return False

    def _close_windows(self, now: float) -> None:
        while self._sites:
            site, state = next(iter(self._sites.items()))
            if now - state.start < self.window:
                return
            del self._sites[site]
            self._summarise(site, state)

    def _summarise(self, site: Site, state: _Window) -> None:
        if not state.held:
            return
        name, level, pathname, lineno = site
        summary = logging.LogRecord(
            name, level, pathname, lineno,
            "%d more like this in %.0f s were not logged; the first: %s",
            (state.held, self.window, state.sample), None)
        # Straight to the handler (this filter already ran), under its lock as handle()
        # would take it: the storage thread logs too.
        self.handler.acquire()
        try:
            self.handler.emit(summary)
        finally:
            self.handler.release()


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
    new.addFilter(RepeatLimiter(new))
    _OURS.append(new)
    root.addHandler(new)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    if _WATCHES:  # live log watches (watch_root) outlive a reload at their own level
        _BASE_LEVEL[:] = [root.level]
        _apply_watch_levels()


# Live log watches (handlers) and the root level from before the first one started.
_WATCHES: list[logging.Handler] = []
_BASE_LEVEL: list[int] = []


def watch_root(handler: logging.Handler) -> Callable[[], None]:
    """Add ``handler`` to the root logger until the returned function is called (a live
    log watch). A watch below the configured level lowers the root logger's level while
    it lasts, with the configured level put on the server's own handlers so the log file
    and stderr keep what they had."""
    root = logging.getLogger()
    if not _WATCHES:
        _BASE_LEVEL[:] = [root.level]
    _WATCHES.append(handler)
    root.addHandler(handler)
    _apply_watch_levels()

    def undo() -> None:
        if handler in _WATCHES:
            _WATCHES.remove(handler)
            root.removeHandler(handler)
            _apply_watch_levels()
    return undo


def _apply_watch_levels() -> None:
    root = logging.getLogger()
    base = _BASE_LEVEL[0] if _BASE_LEVEL else root.level
    level = min([base, *(h.level for h in _WATCHES)])
    for own in _OURS:
        own.setLevel(base if level < base else logging.NOTSET)
    root.setLevel(level)
