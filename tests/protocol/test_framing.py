"""RFC 7395 framing, in memory: messages in, stream events out; elements out, standalone."""

from __future__ import annotations

import pytest

from tercet.protocol.errors import StreamError
from tercet.protocol.framing import (
    CLOSE,
    NS_FRAMING,
    FramingReader,
    frame_element,
    open_element,
)
from tercet.protocol.stanza import NS_CLIENT, message
from tercet.protocol.xmlstream import (
    NS_STREAM,
    StanzaReceived,
    StreamClosed,
    StreamOpened,
    parse_fragment,
)

OPEN = f"<open xmlns='{NS_FRAMING}' to='localhost' version='1.0' xml:lang='de'/>".encode()


def opened() -> FramingReader:
    reader = FramingReader(max_stanza_size=10000)
    assert reader.feed(OPEN) == [StreamOpened(
        {"to": "localhost", "version": "1.0", "xml:lang": "de"}, NS_CLIENT)]
    return reader


def test_open_stanza_close() -> None:
    reader = opened()
    [event] = reader.feed(b"<message xmlns='jabber:client' to='a@b'><body>hi</body></message>")
    assert isinstance(event, StanzaReceived)
    assert event.element == message(to="a@b", body="hi")
    assert reader.feed(f"<close xmlns='{NS_FRAMING}'/>".encode()) == [StreamClosed()]


def test_stanza_without_xmlns_is_jabber_client() -> None:
    [event] = opened().feed(b"<presence/>")
    assert isinstance(event, StanzaReceived) and event.element.xmlns == NS_CLIENT


def test_whitespace_message_is_nothing() -> None:
    assert opened().feed(b" \n ") == []


def test_reset_expects_a_new_open() -> None:
    reader = opened()
    reader.reset()
    with pytest.raises(StreamError) as err:
        reader.feed(b"<presence/>")
    assert err.value.condition == "bad-format"
    reader.reset()
    assert isinstance(reader.feed(OPEN)[0], StreamOpened)


@pytest.mark.parametrize("data", [
    b"<presence/><presence/>",            # two elements (§3.3.3: one per message)
    b"<message><body>",                   # a partial element
    b"hello",                             # text
    OPEN,                                 # a second <open/> without a restart
    f"<stream:features xmlns:stream='{NS_STREAM}'/>".encode(),  # stream syntax
    f"<other xmlns='{NS_FRAMING}'/>".encode(),
])
def test_bad_framing(data: bytes) -> None:
    with pytest.raises(StreamError) as err:
        opened().feed(data)
    assert err.value.condition == "bad-format"


def test_first_message_must_be_open() -> None:
    with pytest.raises(StreamError) as err:
        FramingReader().feed(b"<presence/>")
    assert err.value.condition == "bad-format"


def test_not_well_formed() -> None:
    with pytest.raises(StreamError) as err:
        opened().feed(b"<presence></message>")
    assert err.value.condition == "not-well-formed"


def test_oversized_message() -> None:
    body = "x" * 10001
    with pytest.raises(StreamError) as err:
        opened().feed(f"<message><body>{body}</body></message>".encode())
    assert err.value.condition == "policy-violation"


def test_outgoing_elements_stand_alone() -> None:
    stanza = frame_element(message(to="a@b", body="x").to_xml().encode())
    assert parse_fragment(stanza) == message(to="a@b", body="x")
    assert stanza.startswith(b"<message xmlns='jabber:client'")
    features = frame_element(b"<stream:features><bind xmlns='urn:x'/></stream:features>")
    assert features.startswith(b"<stream:features xmlns:stream='" + NS_STREAM.encode())
    assert parse_fragment(features).xmlns == NS_STREAM
    error = frame_element(b"<stream:error/>")
    assert error == b"<stream:error xmlns:stream='" + NS_STREAM.encode() + b"'/>"
    sasl = b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"
    assert frame_element(sasl) == sasl
    own = b"<iq xmlns='jabber:client' type='get'/>"
    assert frame_element(own) == own


def test_open_and_close_elements() -> None:
    el = parse_fragment(open_element(from_="localhost", id_="abc"))
    assert (el.name, el.xmlns) == ("open", NS_FRAMING)
    assert el.attrs == {"from": "localhost", "id": "abc", "version": "1.0", "xml:lang": "en"}
    closing = parse_fragment(CLOSE)
    assert (closing.name, closing.xmlns) == ("close", NS_FRAMING)
