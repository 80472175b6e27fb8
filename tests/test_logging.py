"""Repeated log lines are limited per call site, and what was held back is summarised."""

from __future__ import annotations

import logging

from tercet.core.logging import RepeatLimiter


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def limited_logger(burst: int = 3, window: float = 60.0) -> tuple[logging.Logger, Collect,
                                                                   list[float]]:
    now = [0.0]
    handler = Collect()
    handler.addFilter(RepeatLimiter(handler, burst, window, clock=lambda: now[0]))
    log = logging.getLogger(f"tercet.test.limit.{id(handler)}")
    log.propagate = False
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return log, handler, now


def refuse(log: logging.Logger, address: str) -> None:
    log.warning("refused a connection from %s", address)


def test_a_flood_from_one_line_is_cut_and_summarised() -> None:
    log, out, now = limited_logger()
    for i in range(2000):
        refuse(log, f"192.0.2.{i % 250}")
    log.info("something else")  # another line of code is not held back by the flood
    assert out.lines == ["refused a connection from 192.0.2.0",
                         "refused a connection from 192.0.2.1",
                         "refused a connection from 192.0.2.2", "something else"]
    now[0] = 61.0
    refuse(log, "198.51.100.7")  # the next window: the summary first, then the line
    assert out.lines[4:] == [
        "1997 more like this in 60 s were not logged; the first: "
        "refused a connection from 192.0.2.3",
        "refused a connection from 198.51.100.7"]


def test_quiet_sites_produce_no_summary() -> None:
    log, out, now = limited_logger()
    refuse(log, "a")
    now[0] = 120.0
    refuse(log, "b")
    assert out.lines == ["refused a connection from a", "refused a connection from b"]
