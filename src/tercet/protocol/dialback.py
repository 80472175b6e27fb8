"""Server Dialback (XEP-0220) wire format and keys (XEP-0185), sans-I/O.

Roles, as the XEP names them: the *Originating Server* wants to send stanzas and sends
``<db:result>`` with a key; the *Receiving Server* checks the key by sending ``<db:verify>``
to the *Authoritative Server* of the originating domain (over a connection of its own),
which recomputes the key from its secret and answers ``type='valid'`` or ``'invalid'``.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from tercet.protocol.stanza import NS_SERVER, Element, escape_attr, escape_text

NS_DIALBACK = "jabber:server:dialback"
NS_FEATURE = "urn:xmpp:features:dialback"  # XEP-0220 §2.4 stream feature


def to_wire(el: Element) -> str:
    """``<db:result/>`` / ``<db:verify/>`` with the ``db`` prefix the stream header declares.

    The prefix is only a name for the namespace to an XML parser, but XEP-0220 writes it
    everywhere and ejabberd 23 recognises dialback elements only under it (an unprefixed
    ``<verify xmlns='jabber:server:dialback'/>`` is dropped). Children (the error of a
    ``type='error'`` answer) are in ``jabber:server``, the stream's default namespace."""
    attrs = "".join(f' {k}="{escape_attr(v)}"' for k, v in el.attrs.items())
    inner = "".join(escape_text(c) if isinstance(c, str) else c.to_xml(NS_SERVER)
                    for c in el.children)
    return f"<db:{el.name}{attrs}>{inner}</db:{el.name}>"


def dialback_key(secret: bytes, receiving: str, originating: str, stream_id: str) -> str:
    """XEP-0185 §3: HMAC-SHA256 keyed with SHA256(secret) over
    "Receiving Server, space, Originating Server, space, Stream ID", in hex."""
    key = hashlib.sha256(secret).hexdigest().encode()
    text = f"{receiving} {originating} {stream_id}".encode()
    return hmac.new(key, text, hashlib.sha256).hexdigest()


def keys_match(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


@dataclass(frozen=True, slots=True)
class DialbackElement:
    """A parsed ``<db:result/>`` or ``<db:verify/>``.

    ``type`` is None for a request (it carries ``key``), "valid" / "invalid" / "error" for
    an answer; ``id`` is set for db:verify only; ``condition`` is the stanza error
    condition of a ``type='error'`` answer (XEP-0220 §2.4)."""

    name: str  # "result" or "verify"
    from_: str
    to: str
    type: str | None
    key: str
    id: str | None = None
    condition: str | None = None


class DialbackError(Exception):
    """A malformed dialback element; ``condition`` is the stream error to send."""

    def __init__(self, condition: str) -> None:
        super().__init__(condition)
        self.condition = condition


def parse(el: Element) -> DialbackElement:
    if el.xmlns != NS_DIALBACK or el.name not in ("result", "verify"):
        raise DialbackError("unsupported-stanza-type")
    from_, to = el.get("from"), el.get("to")
    if not from_ or not to:
        raise DialbackError("improper-addressing")  # XEP-0220 §2.1.1: both required
    type_ = el.get("type")
    id_ = el.get("id")
    if el.name == "verify" and not id_:
        raise DialbackError("bad-format")
    if type_ is None and not el.text.strip():
        raise DialbackError("bad-format")  # a request must carry a key
    condition = None
    if type_ == "error":
        error = el.find("error", "jabber:server") or el.find("error", "jabber:client")
        child = next(error.elements(), None) if error is not None else None
        condition = child.name if child is not None else "undefined-condition"
    return DialbackElement(el.name, from_.lower(), to.lower(), type_, el.text.strip(),
                           id_, condition)


def request(name: str, from_: str, to: str, key: str, id_: str | None = None) -> Element:
    """``<db:result>`` (originating -> receiving) or ``<db:verify>`` (receiving ->
    authoritative) carrying ``key``."""
    attrs = {"from": from_, "to": to}
    if id_ is not None:
        attrs["id"] = id_
    el = Element(name, NS_DIALBACK, attrs)
    el.append(key)
    return el


def answer(req: DialbackElement, valid: bool) -> Element:
    """The answer to ``req``: addresses swapped, ``type`` valid or invalid."""
    attrs = {"from": req.to, "to": req.from_, "type": "valid" if valid else "invalid"}
    if req.id is not None:
        attrs["id"] = req.id
    return Element(req.name, NS_DIALBACK, attrs)


def error_answer(req: DialbackElement, condition: str, type_: str = "cancel") -> Element:
    """XEP-0220 §2.4: a dialback error (``item-not-found``, ``remote-server-not-found``,
    ``remote-server-timeout``, ``policy-violation``...) instead of valid/invalid."""
    el = Element(req.name, NS_DIALBACK, {"from": req.to, "to": req.from_, "type": "error"})
    el.tag("error", "jabber:server", {"type": type_}).tag(
        condition, "urn:ietf:params:xml:ns:xmpp-stanzas")
    return el
