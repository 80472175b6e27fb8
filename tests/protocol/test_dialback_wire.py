"""Dialback elements leave with the db: prefix (XEP-0220's spelling, which ejabberd 23
requires), keys bind every XEP-0185 input, and what we write parses back."""

from __future__ import annotations

from tercet.protocol import dialback as db
from tercet.protocol.xmlstream import StanzaReceived, StreamReader

HEADER = (b"<stream:stream xmlns='jabber:server' xmlns:db='jabber:server:dialback' "
          b"xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")


def reparse(text: str) -> db.DialbackElement:
    reader = StreamReader(65536, content_ns="jabber:server")
    [_opened, received] = reader.feed(HEADER + text.encode())
    assert isinstance(received, StanzaReceived)
    return db.parse(received.element)


def test_request_is_prefixed_and_round_trips() -> None:
    el = db.request("verify", "b.test", "a.test", "k3y<&", "id1")
    text = db.to_wire(el)
    assert text.startswith("<db:verify ") and text.endswith("</db:verify>")
    assert "xmlns" not in text  # the stream header declares db:
    parsed = reparse(text)
    assert (parsed.name, parsed.from_, parsed.to, parsed.key, parsed.id) == (
        "verify", "b.test", "a.test", "k3y<&", "id1")


def test_error_answer_keeps_its_condition() -> None:
    req = reparse(db.to_wire(db.request("result", "a.test", "b.test", "key")))
    text = db.to_wire(db.error_answer(req, "remote-server-not-found"))
    assert text.startswith("<db:result ") and "<error type=" in text
    parsed = reparse(text)
    assert (parsed.type, parsed.condition) == ("error", "remote-server-not-found")


def test_keys_bind_every_input() -> None:
    """XEP-0185 §2: the key covers the secret, both domains and the stream id, so a key
    for one stream proves nothing for another."""
    base = ("s3cr3t", "example.net", "example.com", "D60000229F")
    key = db.dialback_key(base[0].encode(), *base[1:])
    assert len(key) == 64 and db.keys_match(key, db.dialback_key(base[0].encode(), *base[1:]))
    for i in range(4):
        changed = list(base)
        changed[i] += "x"
        assert not db.keys_match(key, db.dialback_key(changed[0].encode(), *changed[1:]))
