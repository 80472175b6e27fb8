"""Stanzas a room sends to many sessions, each copy differing only in 'to'.

A join sends the joiner every occupant's presence and every occupant the joiner's
(O(N²) stanzas over N joins), and a groupchat message goes to every occupant; writing
each copy out as XML again costs more than everything else the room does for it. A
:class:`Shared` stanza writes its start tag (without 'to') once and its children once
per stream namespace; each :class:`Addressed` copy made from it puts its own 'to' between
the two. A copy checks that it is still what it was made from (the same attributes and
children, as objects, in the same order) and otherwise, or for a namespaced attribute or
a parent namespace that is not a stanza namespace, goes through the ordinary serialiser:
what it writes is byte for byte what ``Element.to_xml`` writes for it
(tests/modules/test_muc_render.py). As everywhere in the room, the children themselves
are shared and never changed once built.
"""

from __future__ import annotations

from tercet.protocol.stanza import (
    NS_CLIENT,
    STANZA_NAMESPACES,
    Element,
    escape_attr,
    escape_text,
)

Children = tuple[Element | str, ...]


class _Head:
    """A Shared stanza's attributes as written: ``<name k="v" …`` (no 'to', not closed)."""

    __slots__ = ("keys", "text", "values")

    def __init__(self, name: str, attrs: dict[str, str]) -> None:
        self.keys = (*attrs, "to")  # a copy's attribute order
        self.values = tuple(attrs.values())
        self.text = f"<{name}" + "".join(f' {k}="{escape_attr(v)}"' for k, v in attrs.items())


class Shared(Element):
    """A stanza built once for many recipients, without 'to'; see the module docstring.
    It is not meant to change once copies are made (a change is still written right:
    the copies made after it no longer match the text and use the serialiser)."""

    __slots__ = ("_bodies", "_head")

    def __init__(self, name: str, xmlns: str = NS_CLIENT,
                 attrs: dict[str, str] | None = None,
                 children: list[Element | str] | None = None) -> None:
        super().__init__(name, xmlns, attrs, children)
        self._head: _Head | None = None
        #: parent namespace -> (the children written, their XML)
        self._bodies: dict[str, tuple[Children, str]] = {}

    @classmethod
    def of(cls, stanza: Element) -> Shared:
        """``stanza`` as a Shared one: the same children (not copied) and attributes."""
        if isinstance(stanza, Shared):
            return stanza
        return cls(stanza.name, stanza.xmlns, dict(stanza.attrs), stanza.children)

    def head(self) -> _Head | None:
        """The start tag's text, or None when the serialiser must write it (a namespaced
        attribute, or a 'to' already there)."""
        head = self._head
        if head is None:
            attrs = self.attrs
            if "to" in attrs or any(key[0] == "{" for key in attrs):
                return None
            head = self._head = _Head(self.name, attrs)
        return head

    def body(self, parent_ns: str) -> tuple[Children, str]:
        """The children and their XML below a stanza written into ``parent_ns``."""
        found = self._bodies.get(parent_ns)
        if found is None:
            children = tuple(self.children)
            text = "".join(escape_text(c) if isinstance(c, str) else c.to_xml(parent_ns)
                           for c in children)
            found = self._bodies[parent_ns] = (children, text)
        return found


class Addressed(Element):
    """One recipient's copy of a :class:`Shared` stanza."""

    __slots__ = ("_shared", "_to")

    def __init__(self, shared: Shared, to: str) -> None:
        # Element.__init__'s work, done here rather than called: one copy per recipient,
        # and the call with its defaults costs as much again as the copy itself.
        self.name = shared.name
        self.xmlns = shared.xmlns
        self.attrs = {**shared.attrs, "to": to}
        self.children = list(shared.children)
        self._shared = shared
        self._to = to

    def to_xml(self, parent_ns: str | None = NS_CLIENT) -> str:
        shared = self._shared
        if parent_ns is not None and parent_ns in STANZA_NAMESPACES \
                and self.xmlns in STANZA_NAMESPACES and self.children \
                and self.name is shared.name:
            head = shared.head()
            made_from, text = shared.body(parent_ns)
            if head is not None and _same(self.children, made_from) \
                    and self._attrs_unchanged(head):
                return f'{head.text} to="{escape_attr(self._to)}">{text}</{self.name}>'
        return super().to_xml(parent_ns)

    def _attrs_unchanged(self, head: _Head) -> bool:
        """The same attributes, in the same order, as the head was written from."""
        # Plain loops: compiled, they cost a fraction of tuple() and all(map()), once
        # per copy of every stanza a room sends.
        attrs = self.attrs
        keys, values = head.keys, head.values
        if len(attrs) != len(keys):
            return False
        i = 0
        for key, value in attrs.items():
            # 'to', the last key, is the copy's own; the head holds the other values.
            expected = values[i] if i < len(values) else self._to
            if key != keys[i] or value is not expected:
                return False
            i += 1
        return True


def _same(children: list[Element | str], made_from: Children) -> bool:
    """Whether ``children`` are the very objects the XML was made from, in order."""
    if len(children) != len(made_from):
        return False
    for i, child in enumerate(children):
        if child is not made_from[i]:
            return False
    return True
