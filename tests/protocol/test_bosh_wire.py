"""The sans-I/O side of BOSH (tercet.protocol.bosh): request bodies, negotiation within
bounds (XEP-0124 §7.2), the rid window (§14) and the retransmission buffer."""

from __future__ import annotations

import pytest

from tercet.protocol.bosh import (
    NS_HTTPBIND,
    NS_XBOSH,
    BoshError,
    Bounds,
    ResponseCache,
    RidCheck,
    check_rid,
    negotiate,
    parse_body,
    payload_xml,
    render_body,
    terminate,
)
from tercet.protocol.xmlstream import parse_fragment

BOUNDS = Bounds(max_wait=120, max_hold=1, max_requests=2, inactivity=60, polling=5,
                max_pause=120)
LIMIT = 10000


def body(inner: str = "", **attrs: str) -> bytes:
    text = " ".join(f"{k.replace('__', ':')}='{v}'" for k, v in attrs.items())
    return (f"<body xmlns='{NS_HTTPBIND}' xmlns:xmpp='{NS_XBOSH}' {text}>{inner}</body>"
            ).encode()


def test_parse_a_request() -> None:
    req = parse_body(b"<?xml version='1.0'?>" + body(
        "<message xmlns='jabber:client' to='a@b'><body>hi</body></message><presence/>",
        rid="42", sid="abc", xmpp__restart="true", type="terminate"), LIMIT)
    assert (req.rid, req.sid, req.type, req.restart) == (42, "abc", "terminate", True)
    assert [p.name for p in req.payloads] == ["message", "presence"]
    # COMPAT (XEP-0206 §2): the wrapper's namespace on a stanza means jabber:client.
    presence = parse_fragment(payload_xml(req.payloads[1]))
    assert presence.xmlns == "jabber:client"
    message = parse_fragment(payload_xml(req.payloads[0]))
    assert message.xmlns == "jabber:client" and message.child_text("body") == "hi"


@pytest.mark.parametrize("data", [
    body(),  # no rid
    body(rid="0"),
    body(rid="-3"),
    body(rid="9007199254740992"),  # §14.1: below 2^53
    body(rid="１２"),  # digits, but not ASCII ones
    body("text", rid="5"),  # §6: no character data in the wrapper
    b"<body xmlns='urn:other' rid='5'/>",
    body(rid="5")[:-3],
    b"<!DOCTYPE body><body/>",
    body("<!-- hi -->", rid="5"),  # §6: no comments
    body("<x>" + "y" * LIMIT + "</x>", rid="5"),
])
def test_bad_requests(data: bytes) -> None:
    with pytest.raises(BoshError) as err:
        parse_body(data, LIMIT)
    assert err.value.condition == "bad-request"


def test_negotiation_stays_within_bounds() -> None:
    params = negotiate(parse_body(body(rid="1", wait="600", hold="3", ver="1.6"), LIMIT),
                       BOUNDS)
    assert (params.wait, params.hold, params.requests) == (120, 1, 2)
    assert (params.ver, params.ack, params.content) == ("1.6", False, "text/xml; charset=utf-8")
    params = negotiate(parse_body(body(rid="1", wait="10", hold="0", ver="1.20", ack="1",
                                       content="text/html"), LIMIT), BOUNDS)
    assert (params.wait, params.hold, params.requests) == (10, 0, 2)
    assert (params.ver, params.ack, params.content) == ("1.11", True, "text/html")
    assert params.inactivity == 65  # §12: a polling session's is longer than 'polling'
    legacy = negotiate(parse_body(body(rid="1"), LIMIT), BOUNDS)
    assert legacy.ver is None and legacy.wait == 120
    assert legacy.creation_attrs(1) == {"wait": "120", "hold": "1", "requests": "2",
                                        "inactivity": "60", "polling": "5",
                                        "maxpause": "120"}


@pytest.mark.parametrize("attrs", [{"wait": "x"}, {"hold": "-1"}, {"ver": "one"},
                                   {"content": "text/xml\r\nX-Evil: 1"}])
def test_negotiation_refuses_bad_values(attrs: dict[str, str]) -> None:
    with pytest.raises(BoshError) as err:
        negotiate(parse_body(body(rid="1", **attrs), LIMIT), BOUNDS)
    assert err.value.condition == "bad-request"


def test_rid_window() -> None:
    assert check_rid(100, 101, 2) is RidCheck.NEXT
    assert check_rid(100, 102, 2) is RidCheck.NEXT
    assert check_rid(100, 103, 2) is RidCheck.OUTSIDE
    assert check_rid(100, 100, 2) is RidCheck.REPEAT
    assert check_rid(100, 7, 2) is RidCheck.REPEAT


def test_response_cache_is_bounded_and_acknowledged() -> None:
    cache = ResponseCache(2)
    for rid in (1, 2, 3):
        cache.add(rid, f"<body{rid}/>".encode())
    assert (cache.get(1), len(cache)) == (None, 2)
    cache.acknowledged(2)
    assert cache.get(2) is None and cache.get(3) == b"<body3/>"


def test_rendered_bodies() -> None:
    rendered = parse_fragment(render_body({"sid": "s", "xmpp:version": "1.0"},
                                          [b"<presence xmlns='jabber:client'/>"]))
    assert (rendered.name, rendered.xmlns) == ("body", NS_HTTPBIND)
    assert rendered.attrs["{urn:xmpp:xbosh}version"] == "1.0"
    assert [c.xmlns for c in rendered.elements()] == ["jabber:client"]
    assert parse_fragment(terminate("host-unknown")).attrs == {
        "type": "terminate", "condition": "host-unknown"}
