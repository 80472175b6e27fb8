"""Data Forms (XEP-0004): what the server builds and how submitted forms are read."""

from __future__ import annotations

import pytest

from tercet.protocol.dataforms import (
    MAX_FIELDS,
    NS_DATA,
    Field,
    FormError,
    build_form,
    find_form,
    form_type_of,
    parse_submit,
)
from tercet.protocol.stanza import Element
from tercet.protocol.xmlstream import parse_fragment


def test_build_puts_form_type_first_and_renders_options() -> None:
    form = build_form([Field.boolean("muc#roomconfig_persistentroom", True, "Persistent"),
                       Field("muc#roomconfig_whois", "list-single", "Who may see JIDs",
                             ("moderators",), (("moderators", "Moderators"), ("anyone", None)))],
                      title="Room", form_type="http://jabber.org/protocol/muc#roomconfig")
    assert form.get("type") == "form"
    assert form.child_text("title", NS_DATA) == "Room"
    fields = list(form.find_all("field", NS_DATA))
    assert [f.get("var") for f in fields] == [
        "FORM_TYPE", "muc#roomconfig_persistentroom", "muc#roomconfig_whois"]
    assert fields[0].get("type") == "hidden"
    assert fields[1].child_text("value", NS_DATA) == "1"
    options = list(fields[2].find_all("option", NS_DATA))
    assert [o.get("label") for o in options] == ["Moderators", None]
    assert form_type_of(form) == "http://jabber.org/protocol/muc#roomconfig"


def test_unknown_field_type_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        Field("x", "text-huge")


def submitted(fields: str) -> Element:
    return parse_fragment(f"<x xmlns='{NS_DATA}' type='submit'>{fields}</x>")


def test_parse_submit_reads_typed_values() -> None:
    form = parse_submit(submitted(
        "<field var='FORM_TYPE'><value>urn:t</value></field>"
        "<field var='b'><value>true</value></field>"
        "<field var='n'><value> 42 </value></field>"
        "<field var='m'><value>a</value><value>b</value></field>"
        "<field var='e'/>"
        "<field type='fixed'><value>just text</value></field>"))
    assert form.form_type == "urn:t" and form.type == "submit"
    assert form.get_bool("b") is True
    assert form.get_int("n", minimum=0, maximum=50) == 42
    assert form.get_list("m") == ["a", "b"]
    assert form.get_text("e") == ""
    assert form.get_text("absent") is None and "absent" not in form


@pytest.mark.parametrize(("xml", "call", "var"), [
    ("<field var='b'><value>yes</value></field>", lambda f: f.get_bool("b"), "b"),
    ("<field var='n'><value>x</value></field>", lambda f: f.get_int("n"), "n"),
    ("<field var='n'><value>9</value></field>", lambda f: f.get_int("n", maximum=5), "n"),
    ("<field var='m'><value>a</value><value>b</value></field>", lambda f: f.get_text("m"), "m"),
    ("<field var='c'><value>z</value></field>", lambda f: f.get_choice("c", ["a"]), "c"),
])
def test_bad_values_name_the_field(xml: str, call: object, var: str) -> None:
    form = parse_submit(submitted(xml))
    with pytest.raises(FormError) as caught:
        call(form)  # type: ignore[operator]
    assert caught.value.var == var


def test_field_without_var_and_too_many_fields_are_refused() -> None:
    with pytest.raises(FormError):
        parse_submit(submitted("<field><value>1</value></field>"))
    with pytest.raises(FormError):
        parse_submit(submitted("".join(f"<field var='f{i}'/>" for i in range(MAX_FIELDS + 1))))


def test_find_form_by_form_type() -> None:
    parent = parse_fragment(
        f"<p xmlns='urn:p'><x xmlns='{NS_DATA}'><field var='FORM_TYPE'><value>urn:a</value>"
        f"</field></x><x xmlns='{NS_DATA}'><field var='FORM_TYPE'><value>urn:b</value>"
        "</field></x></p>")
    found = find_form(parent, "urn:b")
    assert found is not None and form_type_of(found) == "urn:b"
    assert find_form(parent, "urn:c") is None
