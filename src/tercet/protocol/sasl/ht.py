"""The HT-* SASL mechanisms of FAST (XEP-0484 §4, draft-schmaus-kitten-sasl-ht): one
round trip proving possession of a token issued earlier.

Names are ``HT-<hash>-<cb>``: SHA-256 only, and the channel binding NONE, UNIQ
(tls-unique), ENDP (tls-server-end-point) or EXPR (tls-exporter). The client sends
``authcid NUL HMAC(token, "Initiator" || cb-data)``; the server answers with
``HMAC(token, "Responder" || cb-data)`` as the success data, so the client knows the server
has the token too. Sans-I/O: plain functions over bytes.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from tercet.protocol.sasl import SaslProtocolError

__all__ = ["HT_MECHANISMS", "ht_binding", "ht_client_initial", "ht_initiator", "ht_offered",
           "ht_responder", "parse_ht_initial"]

# Mechanism name suffix -> channel binding type (None: no channel binding), best first.
_CB_SUFFIX: dict[str, str | None] = {"EXPR": "tls-exporter", "ENDP": "tls-server-end-point",
                                     "UNIQ": "tls-unique", "NONE": None}
HT_MECHANISMS = tuple(f"HT-SHA-256-{suffix}" for suffix in _CB_SUFFIX)
_DIGEST = hashlib.sha256
_MAX_INITIAL = 2048  # a username (≤ 1023 bytes, RFC 7622) and a 32-byte MAC


def ht_offered(channel_bindings: Mapping[str, bytes]) -> list[str]:
    """The HT mechanisms this connection can do, best first."""
    return [name for name in HT_MECHANISMS if ht_binding(name, channel_bindings) is not None]


def ht_binding(name: str, channel_bindings: Mapping[str, bytes]) -> bytes | None:
    """The channel binding data ``name`` mixes in (b"" for -NONE); None when the mechanism
    is unknown or this connection lacks its binding type."""
    if not name.startswith("HT-SHA-256-"):
        return None
    suffix = name.removeprefix("HT-SHA-256-")
    if suffix not in _CB_SUFFIX:
        return None
    cb_type = _CB_SUFFIX[suffix]
    if cb_type is None:
        return b""
    return channel_bindings.get(cb_type)


def ht_initiator(token: bytes, cb_data: bytes) -> bytes:
    return hmac.new(token, b"Initiator" + cb_data, _DIGEST).digest()


def ht_responder(token: bytes, cb_data: bytes) -> bytes:
    return hmac.new(token, b"Responder" + cb_data, _DIGEST).digest()


def parse_ht_initial(data: bytes | None) -> tuple[str, bytes]:
    """(username, initiator MAC) from the client's initial response."""
    if not data or len(data) > _MAX_INITIAL or b"\x00" not in data:
        raise SaslProtocolError("malformed HT initial response")
    user, _, mac = data.partition(b"\x00")
    try:
        username = user.decode("utf-8")
    except UnicodeDecodeError:
        raise SaslProtocolError("username is not UTF-8") from None
    if not username or len(mac) != _DIGEST().digest_size:
        raise SaslProtocolError("malformed HT initial response")
    return username, mac


def ht_client_initial(username: str, token: bytes, cb_data: bytes) -> bytes:
    """The client's initial response (clients and tests)."""
    return username.encode() + b"\x00" + ht_initiator(token, cb_data)
