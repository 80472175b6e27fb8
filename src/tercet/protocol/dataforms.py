"""Data Forms (XEP-0004): build forms the server offers and read forms clients submit.

A form is described once as a list of :class:`Field` (var, type, label, current values,
options) and turned into XML with :func:`build_form`; a submitted ``<x type='submit'/>``
is read with :func:`parse_submit` into a :class:`Submitted` (var -> list of values), whose
typed getters raise :class:`FormError` with the field's name when a value does not fit the
field type (XEP-0004 §3.3), so handlers answer ``bad-request``/``not-acceptable`` naming
the field instead of failing later.

Used by room configuration (XEP-0045 §10.2), node configuration and publish-options
(XEP-0060 §16.4), and anything else that speaks forms; FORM_TYPE is XEP-0068.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from tercet.protocol.stanza import Element

NS_DATA = "jabber:x:data"

#: XEP-0004 §3.3 field types.
FIELD_TYPES = frozenset((
    "boolean", "fixed", "hidden", "jid-multi", "jid-single", "list-multi", "list-single",
    "text-multi", "text-private", "text-single",
))
MULTI_TYPES = frozenset(("jid-multi", "list-multi", "text-multi"))
#: A submitted form is bounded so one stanza cannot make the server hold an unbounded
#: number of values (the stanza size limit bounds it too; this bounds the parsed form).
MAX_FIELDS = 256
MAX_VALUES = 1024

_TRUE = frozenset(("1", "true"))
_FALSE = frozenset(("0", "false"))


class FormError(ValueError):
    """A submitted form that does not fit: ``var`` names the field (None: the form)."""

    def __init__(self, var: str | None, message: str) -> None:
        super().__init__(message)
        self.var = var


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a form the server offers (XEP-0004 §3.2)."""

    var: str | None
    type: str = "text-single"
    label: str | None = None
    values: Sequence[str] = ()
    options: Sequence[tuple[str, str | None]] = ()  # (value, label) for list-* types
    desc: str | None = None
    required: bool = False

    def __post_init__(self) -> None:
        if self.type not in FIELD_TYPES:
            raise ValueError(f"unknown data form field type {self.type!r}")

    @classmethod
    def boolean(cls, var: str, value: bool, label: str | None = None) -> Field:
        return cls(var, "boolean", label, ("1" if value else "0",))

    @classmethod
    def hidden(cls, var: str, value: str) -> Field:
        return cls(var, "hidden", None, (value,))


def build_form(fields: Iterable[Field], *, type_: str = "form", title: str | None = None,
               instructions: str | None = None, form_type: str | None = None) -> Element:
    """An ``<x xmlns='jabber:x:data'/>`` of ``type_`` ("form", "result", "submit"); a
    ``form_type`` becomes the hidden FORM_TYPE field first (XEP-0068 §3)."""
    form = Element("x", NS_DATA, {"type": type_})
    if title is not None:
        form.text_tag("title", title)
    if instructions is not None:
        form.text_tag("instructions", instructions)
    if form_type is not None:
        _append_field(form, Field.hidden("FORM_TYPE", form_type))
    for f in fields:
        _append_field(form, f)
    return form


def _append_field(form: Element, f: Field) -> None:
    attrs = {"type": f.type}
    if f.var is not None:
        attrs["var"] = f.var
    if f.label is not None:
        attrs["label"] = f.label
    el = form.tag("field", NS_DATA, attrs)
    if f.desc is not None:
        el.text_tag("desc", f.desc)
    if f.required:
        el.tag("required")
    for value in f.values:
        el.text_tag("value", value)
    for value, label in f.options:
        option = el.tag("option", attrs={"label": label} if label is not None else None)
        option.text_tag("value", value)


@dataclass(slots=True)
class Submitted:
    """The values of a submitted form, by var; FORM_TYPE kept apart."""

    form_type: str | None
    type: str
    values: dict[str, list[str]] = field(default_factory=dict)

    def __contains__(self, var: str) -> bool:
        return var in self.values

    def get_list(self, var: str) -> list[str] | None:
        return self.values.get(var)

    def get_text(self, var: str) -> str | None:
        """The single value of a field; an empty submitted field is ``""``."""
        found = self.values.get(var)
        if found is None:
            return None
        if len(found) > 1:
            raise FormError(var, f"field {var!r} takes one value, got {len(found)}")
        return found[0] if found else ""

    def get_bool(self, var: str) -> bool | None:
        """A boolean field: "1"/"true" or "0"/"false" (XEP-0004 §3.3)."""
        text = self.get_text(var)
        if text is None:
            return None
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise FormError(var, f"field {var!r} is boolean: 1, 0, true or false, not {text!r}")

    def get_int(self, var: str, *, minimum: int | None = None,
                maximum: int | None = None) -> int | None:
        text = self.get_text(var)
        if text is None:
            return None
        try:
            value = int(text.strip())
        except ValueError:
            raise FormError(var, f"field {var!r} must be a whole number, not {text!r}") \
                from None
        if minimum is not None and value < minimum:
            raise FormError(var, f"field {var!r} must be at least {minimum}")
        if maximum is not None and value > maximum:
            raise FormError(var, f"field {var!r} must be at most {maximum}")
        return value

    def get_choice(self, var: str, choices: Iterable[str]) -> str | None:
        text = self.get_text(var)
        if text is None:
            return None
        allowed = list(choices)
        if text not in allowed:
            raise FormError(var, f"field {var!r} must be one of {', '.join(allowed)}")
        return text


def find_form(parent: Element, form_type: str | None = None) -> Element | None:
    """The first data form child of ``parent`` (with that FORM_TYPE, when given)."""
    for form in parent.find_all("x", NS_DATA):
        if form_type is None or form_type_of(form) == form_type:
            return form
    return None


def form_type_of(form: Element) -> str | None:
    for f in form.find_all("field", NS_DATA):
        if f.get("var") == "FORM_TYPE":
            return f.child_text("value", NS_DATA)
    return None


def parse_submit(form: Element) -> Submitted:
    """Read a submitted (or any) form into var -> values; raises FormError when it breaks
    XEP-0004 (a field without var, a bound exceeded)."""
    result = Submitted(None, form.get("type") or "form")
    fields = list(form.find_all("field", NS_DATA))
    if len(fields) > MAX_FIELDS:
        raise FormError(None, f"the form has more than {MAX_FIELDS} fields")
    total = 0
    for f in fields:
        var = f.get("var")
        if not var:
            if f.get("type") == "fixed":
                continue  # §3.2: only fixed fields may lack a var
            raise FormError(None, "a form field has no 'var' attribute (XEP-0004 §3.2)")
        values = [v.text for v in f.find_all("value", NS_DATA)]
        total += len(values)
        if total > MAX_VALUES:
            raise FormError(var, f"the form has more than {MAX_VALUES} values")
        if var == "FORM_TYPE":
            result.form_type = values[0] if values else None
            continue
        result.values.setdefault(var, []).extend(values)
    return result
