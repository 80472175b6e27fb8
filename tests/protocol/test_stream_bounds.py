"""Bounds and invariants of the stream reader that the benchmark work changed:
the parser's name tables are bounded (the parser is swapped for a fresh one without the
peer noticing), and text longer than pyexpat's buffer still arrives as one string."""

from __future__ import annotations

import random
import tracemalloc

import pytest

from tercet.protocol.errors import StreamError
from tercet.protocol.stanza import Element
from tercet.protocol.xmlstream import StanzaReceived, StreamClosed, StreamOpened, StreamReader

# The stream namespace under another prefix, a prefix declared on the root and used in
# stanzas, and an XML declaration: a rebuilt header must reproduce all of it.
HEADER = (b"<?xml version='1.0'?><s:stream xmlns:s='http://etherx.jabber.org/streams' "
          b"xmlns='jabber:client' xmlns:ext='urn:example:ext' to='localhost' version='1.0'>")


def varied_stanzas(count: int, seed: int = 7) -> bytes:
    rnd = random.Random(seed)
    out = []
    for i in range(count):
        kind = rnd.randrange(4)
        if kind == 0:  # a new element name, namespace and attribute name every time
            out.append(f"<message id='{i}'><x{i} xmlns='urn:n:{i}' a{i}='v'>t&amp;{i}</x{i}>"
                       "</message>")
        elif kind == 1:  # the root's prefix, whitespace keepalives between stanzas
            out.append(f" <iq id='{i}' type='get'><ext:q{i % 40} ext:attr{i}='1'/></iq>\n")
        elif kind == 2:  # text longer than pyexpat's buffer
            out.append(f"<presence id='{i}'><status>{'y' * rnd.randrange(5000)}</status>"
                       "</presence>")
        else:
            out.append(f"<message id='{i}' xml:lang='fr'><body>b{i}</body></message>")
    return "".join(out).encode()


def feed_in_pieces(reader: StreamReader, data: bytes, seed: int) -> list[object]:
    rnd = random.Random(seed)
    events: list[object] = []
    pos = 0
    while pos < len(data):
        size = rnd.choice((1, 7, 100, 3000, 40000))
        events += reader.feed(data[pos:pos + size])
        pos += size
    return events


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_parser_swaps_are_invisible(seed: int) -> None:
    data = HEADER + varied_stanzas(1500, seed) + b"</s:stream>"
    expected = StreamReader(max_names=10**9).feed(data)  # one parser throughout
    got = feed_in_pieces(StreamReader(max_names=40), data, seed)
    assert got == expected
    assert isinstance(got[0], StreamOpened) and isinstance(got[-1], StreamClosed)
    assert sum(isinstance(e, StanzaReceived) for e in got) == 1500


def test_new_names_do_not_grow_a_stream_without_bound() -> None:
    def growth(reader: StreamReader) -> int:
        reader.feed(HEADER)
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for i in range(20000):
                reader.feed(f"<message><n{i} xmlns='urn:n:{i}' a{i}='1'/></message>".encode())
            return tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()

    unbounded = growth(StreamReader(max_names=10**9))
    bounded = growth(StreamReader())
    assert unbounded > 4_000_000  # what a hostile peer could make us hold before
    assert bounded < 600_000


def test_size_limit_still_applies_across_a_swap() -> None:
    reader = StreamReader(max_stanza_size=10_000, max_names=5)
    reader.feed(HEADER)
    for i in range(20):  # arm a swap
        reader.feed(f"<message><e{i}/></message>".encode())
    with pytest.raises(StreamError) as info:
        reader.feed(b"<message><body>" + b"x" * 12_000)
    assert info.value.condition == "policy-violation"


def test_long_text_arrives_as_one_string() -> None:
    reader = StreamReader()
    reader.feed(HEADER)
    long = "é" * 5000 + "&<>" + "z" * 3000
    escaped = long.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    events = reader.feed(f"<message><body>{escaped}<b/>{'q' * 4000}</body></message>".encode())
    body = events[0].element.find("body")
    assert body is not None
    assert body.children == [long, Element("b"), "q" * 4000]


def test_restricted_xml_is_still_refused_after_a_swap() -> None:
    reader = StreamReader(max_names=5)
    reader.feed(HEADER)
    for i in range(20):
        reader.feed(f"<message><e{i}/></message>".encode())
    reader.feed(b"<message><ok/></message>")  # the swap happens at this stanza
    with pytest.raises(StreamError) as info:
        reader.feed(b"<!-- a comment -->")
    assert info.value.condition == "restricted-xml"
