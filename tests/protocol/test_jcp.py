"""tercet.protocol.component: the XEP-0114 handshake and the stanza namespace."""

from __future__ import annotations

import pytest

from tercet.protocol.component import (
    from_component_namespace,
    handshake_digest,
    handshake_matches,
)
from tercet.protocol.stanza import NS_CLIENT, NS_COMPONENT, Element
from tercet.protocol.xmlstream import StanzaReceived, StreamReader

# FIPS 180-2 appendix A.1: SHA-1("abc"); the digest is of stream id + secret.
ABC = "a9993e364706816aba3e25717850c26c9cd0d89d"


def test_digest_is_lowercase_hex_sha1_of_id_then_secret() -> None:
    assert handshake_digest("a", "bc") == ABC
    assert handshake_digest("ab", "c") == ABC


@pytest.mark.parametrize("received", [ABC, ABC.upper(), f"\n  {ABC} "])
def test_matching_ignores_case_and_whitespace(received: str) -> None:
    assert handshake_matches(received, "a", "bc")


@pytest.mark.parametrize("received", ["", ABC[:-1], ABC + "0", "é" * 40,
                                      handshake_digest("b", "bc")])
def test_anything_else_does_not_match(received: str) -> None:
    assert not handshake_matches(received, "a", "bc")


def test_stanzas_from_a_component_stream_move_to_jabber_client() -> None:
    reader = StreamReader(content_ns=NS_COMPONENT)
    data = ("<stream:stream xmlns='jabber:component:accept' "
            "xmlns:stream='http://etherx.jabber.org/streams' to='gw.example'>"
            "<message to='a@example' from='b@gw.example'><body>hi</body>"
            "<x xmlns='jabber:x:oob'><url>u</url></x></message>")
    [_, received] = reader.feed(data.encode())
    assert isinstance(received, StanzaReceived)
    message = from_component_namespace(received.element)
    assert message.xmlns == NS_CLIENT
    body, oob = message.elements()
    assert body.xmlns == NS_CLIENT
    assert oob.xmlns == "jabber:x:oob" and next(oob.elements()).xmlns == "jabber:x:oob"
    # Serialised for a client: no namespace left on the stanza or its body.
    assert message.to_xml() == ('<message to="a@example" from="b@gw.example"><body>hi</body>'
                                '<x xmlns="jabber:x:oob"><url>u</url></x></message>')


def test_namespace_change_is_in_place_and_idempotent() -> None:
    el = Element("iq", NS_COMPONENT)
    assert from_component_namespace(el) is el
    assert from_component_namespace(el).xmlns == NS_CLIENT
