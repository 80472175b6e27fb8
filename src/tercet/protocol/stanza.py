"""The element tree used for every stanza, and its serialiser.

A deliberately small tree with ``__slots__``: stanzas are created and thrown away at a
high rate, so the per-object cost matters more than generality. Namespaces are stored
per element (``xmlns``) and the serialiser writes an ``xmlns`` attribute only where it
differs from the parent's, never prefixes, which is what RFC 6120 §4.8.3 asks of the
content namespace.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from mypy_extensions import mypyc_attr

if TYPE_CHECKING:
    from tercet.protocol.errors import StanzaError

NS_CLIENT = "jabber:client"
NS_SERVER = "jabber:server"
NS_COMPONENT = "jabber:component:accept"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_DELAY = "urn:xmpp:delay"

# Namespaces that are "the stanza namespace" of some stream kind: a stanza in any of them
# is serialised into another stream kind without an xmlns attribute.
STANZA_NAMESPACES = frozenset((NS_CLIENT, NS_SERVER, NS_COMPONENT))

_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_ATTR_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;",
     "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}
)


# str.translate with a dict table costs ~1 µs even when nothing changes; most values
# (JIDs, ids, bodies) need no escaping, and a few ``in`` scans (C memchr) tell us so in
# a fraction of that. Measured on the per-stanza path: see bench/README.md.


def escape_text(text: str) -> str:
    """Escape character data for use between tags."""
    if "&" in text or "<" in text or ">" in text:
        return text.translate(_TEXT_ESCAPES)
    return text


def escape_attr(text: str) -> str:
    """Escape an attribute value for use inside double quotes."""
    if ("&" in text or "<" in text or ">" in text or '"' in text or "'" in text
            or "\n" in text or "\r" in text or "\t" in text):
        return text.translate(_ATTR_ESCAPES)
    return text


@mypyc_attr(allow_interpreted_subclasses=True)
class Element:
    """An XML element: name, namespace, attributes and children (elements or text)."""

    __slots__ = ("name", "xmlns", "attrs", "children")

    def __init__(
        self,
        name: str,
        xmlns: str = NS_CLIENT,
        attrs: dict[str, str] | None = None,
        children: list[Element | str] | None = None,
    ) -> None:
        self.name = name
        self.xmlns = xmlns
        self.attrs = attrs if attrs is not None else {}
        self.children = children if children is not None else []

    # -- attributes -------------------------------------------------------------------
    def get(self, key: str, default: str | None = None) -> str | None:
        return self.attrs.get(key, default)

    def set(self, key: str, value: str | None) -> None:
        """Set an attribute; ``None`` removes it."""
        if value is None:
            self.attrs.pop(key, None)
        else:
            self.attrs[key] = value

    # -- building ---------------------------------------------------------------------
    def tag(self, name: str, xmlns: str | None = None,
            attrs: dict[str, str] | None = None) -> Element:
        """Append a child element and return the child."""
        child = Element(name, self.xmlns if xmlns is None else xmlns, attrs)
        self.children.append(child)
        return child

    def text_tag(self, name: str, text: str, xmlns: str | None = None,
                 attrs: dict[str, str] | None = None) -> Element:
        """Append a child holding ``text``; return ``self`` so calls can be chained."""
        self.tag(name, xmlns, attrs).children.append(text)
        return self

    def append(self, child: Element | str) -> Element:
        self.children.append(child)
        return self

    def remove(self, child: Element) -> None:
        self.children = [c for c in self.children if c is not child]

    def remove_children(self, name: str | None = None, xmlns: str | None = None) -> None:
        """Drop direct child elements matching name/xmlns (both optional)."""
        self.children = [
            c for c in self.children
            if isinstance(c, str)
            or (name is not None and c.name != name)
            or (xmlns is not None and c.xmlns != xmlns)
        ]

    # -- querying ---------------------------------------------------------------------
    def elements(self) -> Iterator[Element]:
        for c in self.children:
            if isinstance(c, Element):
                yield c

    def find(self, name: str, xmlns: str | None = None) -> Element | None:
        """The first direct child with this name (and namespace: default, our own)."""
        ns = self.xmlns if xmlns is None else xmlns
        for c in self.children:
            if isinstance(c, Element) and c.name == name and c.xmlns == ns:
                return c
        return None

    def find_ns(self, xmlns: str) -> Element | None:
        """The first direct child in a namespace, whatever its name."""
        for c in self.children:
            if isinstance(c, Element) and c.xmlns == xmlns:
                return c
        return None

    def find_all(self, name: str | None = None, xmlns: str | None = None) -> Iterator[Element]:
        for c in self.children:
            if isinstance(c, Element) and (name is None or c.name == name) and (
                xmlns is None or c.xmlns == xmlns
            ):
                yield c

    def child_text(self, name: str, xmlns: str | None = None) -> str | None:
        child = self.find(name, xmlns)
        return None if child is None else child.text

    @property
    def text(self) -> str:
        """The concatenated direct text children."""
        return "".join(c for c in self.children if isinstance(c, str))

    def copy(self) -> Element:
        return Element(
            self.name, self.xmlns, dict(self.attrs),
            [c if isinstance(c, str) else c.copy() for c in self.children],
        )

    # -- stanza helpers ---------------------------------------------------------------
    @property
    def type(self) -> str | None:
        return self.attrs.get("type")

    def reply(self) -> Element:
        """A reply skeleton: to/from swapped, same id; an iq becomes type='result'."""
        attrs: dict[str, str] = {}
        a = self.attrs
        if "from" in a:
            attrs["to"] = a["from"]
        if "to" in a:
            attrs["from"] = a["to"]
        if "id" in a:
            attrs["id"] = a["id"]
        if self.name == "iq":
            attrs["type"] = "result"
        elif "type" in a:
            attrs["type"] = a["type"]
        return Element(self.name, self.xmlns, attrs)

    def error_reply(self, error: StanzaError) -> Element:
        """A type='error' reply carrying ``error`` (RFC 6120 §8.3).

        Raises ValueError for an error stanza: errors are never answered with errors
        (RFC 6120 §8.3.1), a rule that prevents loops between two entities.
        """
        if self.attrs.get("type") == "error":
            raise ValueError("refusing to answer an error stanza with an error")
        reply = self.reply()
        reply.attrs["type"] = "error"
        if self.name != "iq":
            # Messages and presences echo their payload so the sender can tell which
            # stanza failed (RFC 6120 §8.3.1 allows including the original payload).
            reply.children = [c if isinstance(c, str) else c.copy() for c in self.children
                              if not (isinstance(c, Element) and c.name == "error")]
        reply.children.append(error.to_element(self.xmlns))
        return reply

    def iq_payload(self) -> Element | None:
        """The single child element of an iq get/set, or None if it has none."""
        for c in self.children:
            if isinstance(c, Element):
                return c
        return None

    # -- serialisation ----------------------------------------------------------------
    def to_xml(self, parent_ns: str | None = NS_CLIENT) -> str:
        """Serialise; ``xmlns`` is written only where it differs from ``parent_ns``."""
        parts: list[str] = []
        _serialise(self, parent_ns, parts)
        return "".join(parts)

    def __str__(self) -> str:
        return self.to_xml(None)

    def __repr__(self) -> str:
        text = self.to_xml(None)
        return f"<Element {text[:200]}{'...' if len(text) > 200 else ''}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Element):
            return NotImplemented
        return (self.name == other.name and self.xmlns == other.xmlns
                and self.attrs == other.attrs and self.children == other.children)

    __hash__ = None  # type: ignore[assignment]  # mutable


class Sealed(Element):
    """An element never changed once built, so any number of trees can hold the same one:
    ``copy`` returns it as it is. For constant payloads that sessions keep, such as the
    empty XEP-0153 avatar hash every stored presence of an account without an avatar
    carries; a copy of a tree holding one shares it rather than holding its own
    (bench/README.md, "Memory per idle session: what was still Python's"). Its
    children are Sealed or text.

    Nothing enforces the promise (a check on every change would cost every stanza): code
    that edits a received or copied tree in place must replace a Sealed child, not edit
    it, as it should any child it did not build."""

    __slots__ = ()

    def copy(self) -> Element:
        return self


def _serialise(el: Element, parent_ns: str | None, out: list[str]) -> None:
    # One string per start tag and one per end tag: this runs once per element of every
    # stanza delivered, so fewer list appends and concatenations matter here.
    name = el.name
    ns = el.xmlns
    if ns != parent_ns and not (ns in STANZA_NAMESPACES and parent_ns in STANZA_NAMESPACES):
        head = f'<{name} xmlns="{escape_attr(ns)}"'
    else:
        head = "<" + name
        if ns in STANZA_NAMESPACES:
            ns = parent_ns or ns
    if el.attrs:
        parts = [head]
        n = 0
        for key, value in el.attrs.items():
            if key[0] == "{":
                uri, _, local = key[1:].partition("}")
                n += 1
                parts.append(f' xmlns:ns{n}="{escape_attr(uri)}"'
                             f' ns{n}:{local}="{escape_attr(value)}"')
            else:
                parts.append(f' {key}="{escape_attr(value)}"')
        head = "".join(parts)
    children = el.children
    if not children:
        out.append(head + "/>")
        return
    out.append(head + ">")
    for c in children:
        if isinstance(c, str):
            out.append(escape_text(c))
        else:
            _serialise(c, ns, out)
    out.append(f"</{name}>")


def message(to: str | None = None, from_: str | None = None, type_: str | None = None,
            body: str | None = None, id_: str | None = None) -> Element:
    """Build a message stanza."""
    el = Element("message", NS_CLIENT, _attrs(to, from_, type_, id_))
    if body is not None:
        el.text_tag("body", body)
    return el


def presence(to: str | None = None, from_: str | None = None, type_: str | None = None,
             id_: str | None = None) -> Element:
    return Element("presence", NS_CLIENT, _attrs(to, from_, type_, id_))


def iq(type_: str, id_: str, to: str | None = None, from_: str | None = None) -> Element:
    return Element("iq", NS_CLIENT, _attrs(to, from_, type_, id_))


def _attrs(to: str | None, from_: str | None, type_: str | None,
           id_: str | None) -> dict[str, str]:
    attrs: dict[str, str] = {}
    if type_:
        attrs["type"] = type_
    if id_:
        attrs["id"] = id_
    if to:
        attrs["to"] = to
    if from_:
        attrs["from"] = from_
    return attrs
