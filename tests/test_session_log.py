"""Session loggers: messages name the session, and sessions leave nothing behind in the
logging module (a logger per session used to stay registered forever)."""

from __future__ import annotations

import logging

import pytest

from tercet.core.session import C2SSession


class NullConnection:
    peer = "127.0.0.1"
    secure = False

    def write(self, data: bytes) -> None:
        pass

    def close_stream(self, error: object = None) -> None:
        pass


def test_messages_carry_the_session_id(caplog: pytest.LogCaptureFixture) -> None:
    session = C2SSession(None, NullConnection())
    with caplog.at_level(logging.INFO, logger="tercet.c2s"):
        session.log.info("bound %s", "romeo@localhost/a")
    record = caplog.records[-1]
    assert record.name == "tercet.c2s"
    assert record.getMessage() == f"{session.id}: bound romeo@localhost/a"


def test_sessions_do_not_register_loggers() -> None:
    before = len(logging.Logger.manager.loggerDict)
    for _ in range(1000):
        C2SSession(None, NullConnection()).log.debug("connected")
    assert len(logging.Logger.manager.loggerDict) <= before + 1
