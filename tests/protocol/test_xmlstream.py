"""The stream reader and serialiser, without sockets."""

from __future__ import annotations

import pytest
from helpers import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from tercet.protocol import xmlstream
from tercet.protocol.errors import StanzaError, StreamError
from tercet.protocol.stanza import Element, Sealed, message
from tercet.protocol.xmlstream import (
    StanzaReceived,
    StreamClosed,
    StreamOpened,
    StreamReader,
    parse_fragment,
    stream_element_xml,
    stream_header,
)

HEADER = (b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0' "
          b"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")


def opened(**kw: int) -> StreamReader:
    reader = StreamReader(**kw)
    events = reader.feed(HEADER)
    assert isinstance(events[0], StreamOpened)
    return reader


def test_header_stanzas_and_close() -> None:
    reader = StreamReader()
    events = reader.feed(HEADER + b"<message to='a@b'><body>x</body></message><iq/>")
    assert isinstance(events[0], StreamOpened)
    assert events[0].attrs["to"] == "localhost"
    assert events[0].content_ns == "jabber:client"
    assert [type(e) for e in events[1:]] == [StanzaReceived, StanzaReceived]
    assert reader.feed(b"</stream:stream>") == [StreamClosed()]


def test_byte_at_a_time_gives_the_same_stanzas() -> None:
    data = HEADER + "<message><body>héllo &amp; &#x263A;</body></message>".encode()
    reader = StreamReader()
    events = []
    for i in range(len(data)):
        events += reader.feed(data[i:i + 1])
    stanza = events[-1].element
    assert stanza.child_text("body") == "héllo & \u263a"


def test_stanza_is_delivered_without_waiting_for_more_bytes() -> None:
    reader = opened()
    assert len(reader.feed(b"<presence/>")) == 1


@pytest.mark.parametrize("payload,condition", [
    (b"<!DOCTYPE foo>", "restricted-xml"),
    (b"<!-- comment -->", "restricted-xml"),
    (b"<?php evil?>", "restricted-xml"),
    (b"<message>&custom;</message>", "restricted-xml"),
    (b"<message><body></message>", "not-well-formed"),
    (b"\xff\xfe", "not-well-formed"),
    (b"text at the top", "bad-format"),
])
def test_restricted_and_malformed(payload: bytes, condition: str) -> None:
    reader = opened()
    with pytest.raises(StreamError) as info:
        reader.feed(payload)
    assert info.value.condition == condition


def test_doctype_before_the_stream_header() -> None:
    with pytest.raises(StreamError) as info:
        StreamReader().feed(b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]>" + HEADER[21:])
    assert info.value.condition == "restricted-xml"


@pytest.mark.parametrize("header,condition", [
    (b"<stream:stream xmlns='jabber:client' xmlns:stream='urn:wrong'>", "invalid-namespace"),
    (b"<stream:stream xmlns='jabber:server' "
     b"xmlns:stream='http://etherx.jabber.org/streams'>", "invalid-namespace"),
    (b"<?xml version='1.0' encoding='ISO-8859-1'?><stream:stream xmlns='jabber:client' "
     b"xmlns:stream='http://etherx.jabber.org/streams'>", "unsupported-encoding"),
])
def test_bad_headers(header: bytes, condition: str) -> None:
    with pytest.raises(StreamError) as info:
        StreamReader().feed(header)
    assert info.value.condition == condition


PLAIN_HEADER = ("<stream:stream xmlns='jabber:client' "
                "xmlns:stream='http://etherx.jabber.org/streams'>")


@pytest.mark.parametrize("data", [
    b"\xff\xfe" + PLAIN_HEADER.encode("utf-16-le"),   # byte order mark only, no declaration
    b"\xfe\xff" + PLAIN_HEADER.encode("utf-16-be"),
    PLAIN_HEADER.encode("utf-16-le"),                  # no mark at all
])
def test_utf16_streams_are_refused_whole_or_byte_by_byte(data: bytes) -> None:
    # RFC 6120 §11.6: UTF-8 only, whatever the stream's first bytes announce.
    with pytest.raises(StreamError) as info:
        StreamReader().feed(data)
    assert info.value.condition == "unsupported-encoding"
    reader = StreamReader()
    with pytest.raises(StreamError) as info:
        for i in range(len(data)):
            reader.feed(data[i:i + 1])
    assert info.value.condition == "unsupported-encoding"


def test_the_encoding_check_does_not_disturb_a_utf8_stream_fed_byte_by_byte() -> None:
    reader = StreamReader()
    events = []
    for byte in PLAIN_HEADER.encode():
        events += reader.feed(bytes([byte]))
    assert len(events) == 1


def test_size_limit_is_counted_while_parsing() -> None:
    reader = opened(max_stanza_size=10_000)
    reader.feed(b"<message><body>" + b"x" * 5000)
    with pytest.raises(StreamError) as info:
        reader.feed(b"x" * 6000)
    assert info.value.condition == "policy-violation"


def test_size_limit_applies_per_stanza_not_per_stream() -> None:
    reader = opened(max_stanza_size=10_000)
    stanza = b"<message><body>" + b"x" * 5000 + b"</body></message>"
    for _ in range(10):
        assert len(reader.feed(stanza)) == 1


def test_a_huge_start_tag_is_caught() -> None:
    reader = opened(max_stanza_size=10_000)
    with pytest.raises(StreamError):
        for _ in range(10):
            reader.feed(b"<message " + b"a" * 4000)


def test_depth_limit() -> None:
    reader = opened(max_depth=10)
    with pytest.raises(StreamError) as info:
        reader.feed(b"<a>" * 20)
    assert info.value.condition == "policy-violation"


def test_restart_accepts_a_new_header() -> None:
    reader = opened()
    reader.reset()
    assert isinstance(reader.feed(HEADER)[0], StreamOpened)


def test_serialiser_escapes_and_omits_content_namespace() -> None:
    el = message(to="a@b", body="<&>\"'")
    el.set("x", "a\"b<'\n")
    el.tag("x", "urn:test").text_tag("y", "1")
    text = el.to_xml()
    assert text.startswith("<message to=\"a@b\"")
    assert "&lt;&amp;&gt;" in text
    assert 'x="a&quot;b&lt;&apos;&#10;"' in text
    assert '<x xmlns="urn:test"><y>1</y></x>' in text
    assert parse_fragment(el.to_xml(None)) == el


def test_error_reply_refuses_errors() -> None:
    el = Element("iq", attrs={"type": "error", "id": "1"})
    with pytest.raises(ValueError):
        el.error_reply(StanzaError("bad-request"))


def test_error_reply_shape() -> None:
    el = Element("iq", attrs={"type": "get", "id": "1", "from": "a@b/c", "to": "b"})
    el.tag("query", "urn:x")
    reply = el.error_reply(StanzaError("service-unavailable"))
    assert reply.attrs == {"to": "a@b/c", "from": "b", "id": "1", "type": "error"}
    err = reply.find("error")
    assert err is not None and err.get("type") == "cancel"
    assert StanzaError.from_element(err).condition == "service-unavailable"


def test_stream_level_serialisation() -> None:
    err = StreamError("host-unknown").to_element()
    assert stream_element_xml(err) == (
        "<stream:error><host-unknown xmlns=\"urn:ietf:params:xml:ns:xmpp-streams\"/>"
        "</stream:error>")
    assert "xmlns:stream='http://etherx.jabber.org/streams'" in stream_header(to="x")


_text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=40)
_name = st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True)


@st.composite
def elements(draw: st.DrawFn, depth: int = 0) -> Element:
    el = Element(draw(_name), draw(st.sampled_from(["jabber:client", "urn:a", "urn:b"])),
                 draw(st.dictionaries(_name, _text, max_size=3)))
    for _ in range(draw(st.integers(0, 0 if depth > 2 else 3))):
        if draw(st.booleans()):
            el.append(draw(elements(depth + 1)))
        else:
            text = draw(_text.filter(bool))
            if el.children and isinstance(el.children[-1], str):
                el.children[-1] += text
            else:
                el.append(text)
    return el


@settings(max_examples=examples(200), deadline=None)
@given(elements())
def test_round_trip(el: Element) -> None:
    assert parse_fragment(el.to_xml(None)) == el


@settings(max_examples=examples(300), deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash_the_reader(data: bytes) -> None:
    reader = opened(max_stanza_size=1000)
    try:
        reader.feed(data)
    except StreamError as err:
        assert err.condition in {"not-well-formed", "restricted-xml", "policy-violation",
                                 "bad-format", "invalid-namespace", "unsupported-encoding"}


def _events(chunks: list[bytes]) -> list[object] | str:
    """What a reader makes of ``chunks`` fed one after the other: its events, or the
    stream error condition it stopped with."""
    reader = StreamReader(max_stanza_size=100_000)
    out: list[object] = []
    try:
        for chunk in chunks:
            out += reader.feed(chunk)
    except StreamError as err:
        return err.condition
    return out


@settings(max_examples=examples(200), deadline=None)
@given(st.lists(elements(), min_size=1, max_size=4), st.data())
def test_whole_and_chunked_input_give_the_same_events(stanzas: list[Element],
                                                      data: st.DataObject) -> None:
    """However the network splits the bytes (mid-tag, mid-character), the reader sees the
    same stream: the same stanzas, in the same order (RFC 6120 §4.2: no framing)."""
    raw = HEADER + "".join(s.to_xml() for s in stanzas).encode()
    cuts = sorted(data.draw(st.lists(st.integers(1, len(raw) - 1), max_size=12,
                                     unique=True)))
    chunks = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    assert _events(chunks) == _events([raw])


def _events_hibernating(chunks: list[bytes]) -> tuple[list[object] | str, int]:
    """As ``_events``, with the reader asked to hibernate after every chunk; also how
    many times it did (it refuses mid-element)."""
    reader = StreamReader(max_stanza_size=100_000)
    out: list[object] = []
    slept = 0
    try:
        for chunk in chunks:
            out += reader.feed(chunk)
            slept += reader.hibernate()
    except StreamError as err:
        return err.condition, slept
    finally:
        # White box: the one list every sleeping stream shares stays empty.
        assert xmlstream._ASLEEP == []
    return out, slept


@settings(max_examples=examples(200), deadline=None)
@given(st.lists(elements(), min_size=1, max_size=4), st.data())
def test_hibernating_between_reads_changes_nothing(stanzas: list[Element],
                                                   data: st.DataObject) -> None:
    """Dropping the parser of an idle stream (hibernate) and waking it on the next read
    gives the same stanzas as a reader that never slept, wherever the reads were cut."""
    raw = HEADER + "".join(s.to_xml() for s in stanzas).encode()
    cuts = sorted(data.draw(st.lists(st.integers(1, len(raw) - 1), max_size=12,
                                     unique=True)))
    chunks = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    assert _events_hibernating(chunks)[0] == _events([raw])


def test_sleeping_streams_share_empty_lists_and_a_wake_gives_each_its_own() -> None:
    a, b = opened(), opened()
    assert a.hibernate() and b.hibernate()
    assert a._stack is b._stack is xmlstream._ASLEEP  # white box: 112 B per idle stream
    events = a.feed(b"<message><body>one</body>") + b.feed(b"<iq type='get' id='1'><q")
    assert events == [] and a._stack is not b._stack
    events = a.feed(b"</message>") + b.feed(b" xmlns='urn:x'/></iq>")
    assert [e.element.name for e in events] == ["message", "iq"]  # type: ignore[union-attr]
    assert xmlstream._ASLEEP == []


def test_hibernation_keeps_the_peers_prefixes_and_refuses_mid_stanza() -> None:
    reader = StreamReader()
    header = (b"<s:stream xmlns:s='http://etherx.jabber.org/streams' xmlns='jabber:client'"
              b" xmlns:x='urn:example:x' to='localhost' version='1.0'>")
    assert len(reader.feed(header)) == 1
    assert reader.hibernate()
    events = reader.feed(b"<message to='a@b'><x:y/><body>hi</body></message><mess")
    assert [e.element.name for e in events if isinstance(e, StanzaReceived)] == ["message"]
    payload = events[0].element.children[0]  # type: ignore[union-attr]
    assert (payload.name, payload.xmlns) == ("y", "urn:example:x")
    assert not reader.hibernate()  # "<mess" is held by the parser: it must stay
    events = reader.feed(b"age/>")
    assert reader.hibernate()
    events += reader.feed(b" </s:stream>")
    assert [type(e).__name__ for e in events] == ["StanzaReceived", "StreamClosed"]
    assert not reader.hibernate()  # closed


def test_streams_declaring_the_same_namespaces_share_them_and_keep_their_own() -> None:
    """An idle stream keeps its root's declarations for the next wake; streams that
    declared the same share one dict (an idle session's memory), and a wake neither
    changes it nor loses a stream's own prefixes."""
    custom = (b"<s:stream xmlns:s='http://etherx.jabber.org/streams' xmlns='jabber:client'"
              b" xmlns:x='urn:example:shared-decls' to='localhost' version='1.0'>")
    a, b, c = opened(), opened(), StreamReader()
    c.feed(custom)
    assert a._root_ns_decls is b._root_ns_decls  # white box: the memory property
    assert c._root_ns_decls is not a._root_ns_decls
    before = dict(a._root_ns_decls)
    for reader in (a, c):
        assert reader.hibernate()
    events = c.feed(b"<message><x:y/></message>") + a.feed(b"<message><body>a</body></message>")
    assert [(e.element.children[0].name, e.element.children[0].xmlns)  # type: ignore[union-attr]
            for e in events] == [("y", "urn:example:shared-decls"), ("body", "jabber:client")]
    assert a._root_ns_decls == before and b._root_ns_decls is a._root_ns_decls
    b.reset()  # a stream restart declares afresh, without touching the shared dict
    b.feed(custom)
    assert a._root_ns_decls == before and b._root_ns_decls is c._root_ns_decls


def test_a_sealed_child_is_shared_by_copies_and_serialises_like_any_element() -> None:
    flag = Sealed("x", "vcard-temp:x:update", None, [Sealed("photo", "vcard-temp:x:update")])
    stanza = Element("presence", attrs={"from": "a@b/c"}, children=[Element("show"), flag])
    copy = stanza.copy()
    assert copy.children[1] is flag and copy.children[0] is not stanza.children[0]
    assert copy.children is not stanza.children and copy.attrs is not stanza.attrs
    plain = Element("presence", attrs={"from": "a@b/c"}, children=[
        Element("show"), Element("x", "vcard-temp:x:update", None,
                                 [Element("photo", "vcard-temp:x:update")])])
    assert copy.to_xml() == plain.to_xml() and copy == plain
