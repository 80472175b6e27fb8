"""The room's shared stanzas (modules/_muc/render.py): every copy writes exactly what the
ordinary serialiser writes for the same tree, whatever the tree, the stream namespace and
the changes made to the copy or to the original after the text was made."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tercet.modules._muc.occupant import addressed
from tercet.modules._muc.render import Shared
from tercet.protocol.stanza import NS_CLIENT, NS_COMPONENT, NS_SERVER, Element

PARENTS = [NS_CLIENT, NS_SERVER, NS_COMPONENT, None, "urn:other"]
_text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=20)
_name = st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True)
_namespaces = st.sampled_from([NS_CLIENT, NS_SERVER, "urn:a", "urn:b"])


@st.composite
def trees(draw: st.DrawFn, depth: int = 0) -> Element:
    el = Element(draw(_name), draw(_namespaces), draw(st.dictionaries(_name, _text,
                                                                       max_size=3)))
    for _ in range(draw(st.integers(0, 0 if depth > 2 else 3))):
        el.append(draw(_text) if draw(st.booleans()) else draw(trees(depth + 1)))
    return el


def plain_copy(stanza: Element, to: str) -> Element:
    return Element(stanza.name, stanza.xmlns, {**stanza.attrs, "to": to},
                   list(stanza.children))


@settings(max_examples=300, deadline=None)
@given(trees(), _text, st.sampled_from(["presence", "message"]),
       st.sampled_from([NS_CLIENT, NS_SERVER, "urn:a"]))
def test_copies_write_what_the_serialiser_writes(tree: Element, to: str, name: str,
                                                 xmlns: str) -> None:
    shared = Shared(name, xmlns, {"from": "room@conference.example/nick"},
                    [tree, "a & <b>", Element("x", "urn:b", {"k": "'\"\n"})])
    for parent in PARENTS:
        # twice: the first copy makes the text, the second uses it
        for _ in range(2):
            assert addressed(shared, to).to_xml(parent) == plain_copy(shared, to).to_xml(
                parent)
    assert str(addressed(shared, to)) == str(plain_copy(shared, to))


def test_changes_after_the_text_was_made_are_written() -> None:
    shared = Shared("presence", attrs={"from": "r@c/n"},
                    children=[Element("show", children=["away"])])
    first = addressed(shared, "a@b/c")
    assert first.to_xml() == '<presence from="r@c/n" to="a@b/c"><show>away</show></presence>'
    # a handler adds a child to one copy: that copy says so, the others do not
    changed = addressed(shared, "d@e/f")
    changed.tag("delay", "urn:xmpp:delay", {"stamp": "2026-01-01T00:00:00Z"})
    assert changed.to_xml() == plain_copy(shared, "d@e/f").to_xml()[:-len("</presence>")] \
        + '<delay xmlns="urn:xmpp:delay" stamp="2026-01-01T00:00:00Z"/></presence>'
    assert addressed(shared, "a@b/c").to_xml() == first.to_xml()
    # a child replaced on a copy; then an attribute added too
    replaced = addressed(shared, "g@h/i")
    replaced.children[0] = Element("show", children=["dnd"])
    assert replaced.to_xml() == '<presence from="r@c/n" to="g@h/i"><show>dnd</show></presence>'
    replaced.attrs["type"] = "unavailable"
    assert replaced.to_xml() == ('<presence from="r@c/n" to="g@h/i" type="unavailable">'
                                 "<show>dnd</show></presence>")
    # an attribute's value changed, or taken out and put back (so written last)
    moved = addressed(shared, "g@h/i")
    moved.attrs["from"] = "r@c/other"
    assert moved.to_xml() == '<presence from="r@c/other" to="g@h/i"><show>away</show></presence>'
    moved = addressed(shared, "g@h/i")
    moved.attrs["from"] = moved.attrs.pop("from")
    assert moved.to_xml() == '<presence to="g@h/i" from="r@c/n"><show>away</show></presence>'
    # the original's attributes changed after its start tag was made
    shared.attrs["type"] = "unavailable"
    assert addressed(shared, "a@b/c").to_xml() == (
        '<presence from="r@c/n" type="unavailable" to="a@b/c"><show>away</show></presence>')
    del shared.attrs["type"]
    # the original changed after its text was made: later copies show the change
    shared.children.append(Element("status", children=["out"]))
    assert addressed(shared, "a@b/c").to_xml() == (
        '<presence from="r@c/n" to="a@b/c"><show>away</show><status>out</status>'
        "</presence>")
    # namespaced attributes and empty stanzas go through the serialiser
    odd = Shared("message", attrs={"{urn:x}flag": "1"}, children=["hi"])
    assert addressed(odd, "a@b/c").to_xml() == plain_copy(odd, "a@b/c").to_xml()
    empty = Shared("presence", attrs={"from": "r@c/n"})
    assert addressed(empty, "a@b/c").to_xml() == '<presence from="r@c/n" to="a@b/c"/>'


def test_shared_of_keeps_the_original() -> None:
    message = Element("message", attrs={"from": "r@c/n", "type": "groupchat"},
                      children=[Element("body", children=["hello"])])
    shared = Shared.of(message)
    assert Shared.of(shared) is shared
    assert shared == message and shared.children is message.children
    copy = addressed(shared, "a@b/c")
    assert copy.to_xml(NS_SERVER) == plain_copy(message, "a@b/c").to_xml(NS_SERVER)
    assert "to" not in message.attrs
