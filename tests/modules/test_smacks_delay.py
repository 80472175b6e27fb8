"""Stream management's redelivery stamps (XEP-0198 §4, XEP-0203), as pure functions."""

from __future__ import annotations

from tercet.modules.smacks import delayed, stamp
from tercet.protocol.stanza import NS_DELAY, Element

WHEN = 1_700_000_000.25  # 2023-11-14T22:13:20.250Z


def delays(stanza: Element) -> list[dict[str, str]]:
    return [c.attrs for c in stanza.elements() if c.name == "delay" and c.xmlns == NS_DELAY]


def test_message_and_presence_get_one_delay_on_a_copy() -> None:
    for name in ("message", "presence"):
        original = Element(name, attrs={"to": "romeo@example.org/phone"})
        again = delayed(original, WHEN, "example.org")
        assert again is not original and delays(original) == []
        assert delays(again) == [{"from": "example.org", "stamp": "2023-11-14T22:13:20.250Z"}]
        # Resent once more (another lost connection): still one, the first time kept.
        assert delays(delayed(again, WHEN + 60, "example.org")) == delays(again)


def test_iq_and_foreign_delays() -> None:
    iq = Element("iq", attrs={"type": "result", "id": "1"})
    assert delayed(iq, WHEN, "example.org") is iq
    # A delay from another entity (a room's history, the sender) is no reason to skip ours.
    msg = Element("message")
    msg.tag("delay", NS_DELAY, {"from": "room@conference.example.org", "stamp": "x"})
    assert [d["from"] for d in delays(delayed(msg, WHEN, "example.org"))] == [
        "room@conference.example.org", "example.org"]


def test_stamp_is_utc_with_milliseconds() -> None:
    assert stamp(WHEN) == "2023-11-14T22:13:20.250Z"
    assert stamp(0.9996) == "1970-01-01T00:00:01.000Z"
