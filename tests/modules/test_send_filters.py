"""Send filters on client sessions: the hook CSI (XEP-0352) holds stanzas back with and
stream management (XEP-0198) counts what leaves with."""

from __future__ import annotations

from moduletest import FakeConnection

from tercet.core.session import C2SSession
from tercet.protocol.stanza import Element, message


def session() -> tuple[C2SSession, FakeConnection]:
    conn = FakeConnection()
    return C2SSession(None, conn), conn


def bodies(conn: FakeConnection) -> list[str | None]:
    return [s.child_text("body") for s in conn.stanzas]


def test_filters_run_by_priority_and_may_hold_and_release() -> None:
    s, conn = session()
    seen: list[str] = []
    held: list[Element] = []

    def hold(stanza: Element) -> Element | None:  # priority 10: CSI-like
        seen.append(f"hold:{stanza.child_text('body')}")
        if stanza.child_text("body") == "later":
            held.append(stanza)
            return None
        return stanza

    def count(stanza: Element) -> Element | None:  # priority -10: SM-like
        seen.append(f"count:{stanza.child_text('body')}")
        return stanza

    s.add_send_filter(count, -10)
    s.add_send_filter(hold, 10)
    s.send(message("a@x", body="now"))
    s.send(message("a@x", body="later"))
    assert bodies(conn) == ["now"]
    assert seen == ["hold:now", "count:now", "hold:later"]
    s.send_after(hold, held.pop())  # released: only the filters after `hold` run
    assert bodies(conn) == ["now", "later"]
    assert seen[-1] == "count:later"


def test_removing_the_last_filter_restores_the_plain_path() -> None:
    s, conn = session()

    def drop(_stanza: Element) -> Element | None:
        return None

    s.add_send_filter(drop)
    s.send(message("a@x", body="dropped"))
    s.remove_send_filter(drop)
    s.send(message("a@x", body="sent"))
    assert bodies(conn) == ["sent"]
    assert s._filters is None  # noqa: SLF001 - the fast path is back
