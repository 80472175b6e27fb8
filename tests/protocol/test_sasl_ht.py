"""FAST's HT-* mechanisms (XEP-0484), sans-I/O."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from tercet.protocol.sasl import SaslProtocolError
from tercet.protocol.sasl.ht import (
    ht_binding,
    ht_client_initial,
    ht_initiator,
    ht_offered,
    ht_responder,
    parse_ht_initial,
)

CB = {"tls-server-end-point": b"E" * 32}


def test_offered_follows_the_channel_bindings() -> None:
    assert ht_offered({}) == ["HT-SHA-256-NONE"]
    assert ht_offered(CB) == ["HT-SHA-256-ENDP", "HT-SHA-256-NONE"]
    assert ht_binding("HT-SHA-256-UNIQ", CB) is None
    assert ht_binding("HT-SHA-1-NONE", CB) is None
    assert ht_binding("HT-SHA-256-ENDP", CB) == b"E" * 32


def test_round_trip_and_macs() -> None:
    data = ht_client_initial("romeo", b"tok", b"cb")
    assert parse_ht_initial(data) == ("romeo", ht_initiator(b"tok", b"cb"))
    assert ht_initiator(b"tok", b"cb") == hmac.new(b"tok", b"Initiatorcb",
                                                   hashlib.sha256).digest()
    assert ht_responder(b"tok", b"") == hmac.new(b"tok", b"Responder", hashlib.sha256).digest()


@pytest.mark.parametrize("data", [None, b"", b"romeo", b"romeo\x00short", b"\x00" + b"m" * 32,
                                  b"\xff\x00" + b"m" * 32, b"u" * 3000 + b"\x00" + b"m" * 32])
def test_malformed_initial(data: bytes | None) -> None:
    with pytest.raises(SaslProtocolError):
        parse_ht_initial(data)
