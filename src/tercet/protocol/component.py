"""The Jabber Component Protocol (XEP-0114) without I/O: the handshake and the namespace.

An external component opens a stream in ``jabber:component:accept`` to the server, naming
its own domain in ``to``; the server answers with a stream id; the component proves it
knows the shared secret by sending ``<handshake>`` with the lowercase hex SHA-1 of the
stream id followed by the secret (XEP-0114 §3). Tercet keeps every stanza in
``jabber:client`` internally, so stanzas read from a component stream are moved into it.
"""

from __future__ import annotations

import hashlib
import hmac

from tercet.protocol.stanza import NS_CLIENT, NS_COMPONENT, Element

__all__ = ["NS_COMPONENT", "from_component_namespace", "handshake_digest", "handshake_matches"]


def handshake_digest(stream_id: str, secret: str) -> str:
    """What the component must send (XEP-0114 §3): hex SHA-1 of stream id + secret (UTF-8)."""
    # SHA-1 is what the protocol fixes; the secret is not stored, only compared.
    return hashlib.sha1((stream_id + secret).encode("utf-8")).hexdigest()


def handshake_matches(received: str, stream_id: str, secret: str) -> bool:
    """Whether the text of a ``<handshake/>`` proves ``secret`` for ``stream_id``.

    Hex case and surrounding whitespace are ignored; the comparison takes constant time.
    """
    expected = handshake_digest(stream_id, secret).encode("ascii")
    return hmac.compare_digest(received.strip().lower().encode("utf-8"), expected)


def from_component_namespace(stanza: Element) -> Element:
    """Move a stanza read from a component stream, and its children that inherited the
    stream's namespace (``<body/>``, ``<error/>``), into ``jabber:client``; in place."""
    todo = [stanza]
    while todo:
        el = todo.pop()
        if el.xmlns == NS_COMPONENT:
            el.xmlns = NS_CLIENT
            todo.extend(child for child in el.children if isinstance(child, Element))
    return stanza
