"""Contact Addresses for XMPP Services (XEP-0157): a XEP-0128 form in the host's disco#info.

The ``contact_info`` option maps a kind (abuse, admin, feedback, sales, security, status,
support) to a list of URIs; each kind set becomes the list-multi field ``<kind>-addresses``
of a form with FORM_TYPE ``http://jabber.org/network/serverinfo``, in alphabetical order.
Without the option, the ``admins`` of the host are published as ``xmpp:`` admin addresses
(as Prosody does), so a server always names someone to contact.
"""

from __future__ import annotations

from typing import Any

from tercet.module import Invalid, ModuleApi, Option, check_value, did_you_mean
from tercet.protocol.stanza import Element

NS_DATA = "jabber:x:data"
FORM_TYPE = "http://jabber.org/network/serverinfo"
# XEP-0157 §5 (registered field names of the serverinfo form).
KINDS = ("abuse", "admin", "feedback", "sales", "security", "status", "support")
META = {"summary": "Contact addresses", "stage": "stable", "xeps": ["XEP-0157", "XEP-0128"]}


def _valid_contact_info(value: dict[str, Any]) -> list[Invalid]:
    for kind, uris in value.items():
        if kind not in KINDS:
            return [Invalid("XEP-0157 fields (" + ", ".join(KINDS) + ")", f'"{kind}"',
                            did_you_mean(kind, KINDS))]
        wrong = check_value(kind, uris, list[str])
        if wrong:
            return [Invalid(f"a list of URIs for {kind}", wrong[0].found,
                            f'Write it like: {kind} = ["mailto:{kind}@example.org"].')]
    return []


OPTIONS: list[Option[Any]] = [
    # Unset publishes the admins; an explicit empty table publishes nothing.
    Option[dict[str, Any] | None](
        "contact_info", dict[str, Any], None, "Contact addresses (XEP-0157).",
        example={"admin": ["mailto:admin@example.org"]}, validate=_valid_contact_info,
        cite="XEP-0157 §5"),
]


def contact_form(contacts: dict[str, list[str]]) -> Element:
    """The serverinfo data form for ``contacts`` (kind -> URIs); unknown kinds are skipped."""
    form = Element("x", NS_DATA, {"type": "result"})
    form.tag("field", NS_DATA, {"var": "FORM_TYPE", "type": "hidden"}).text_tag(
        "value", FORM_TYPE)
    for kind in KINDS:
        uris = contacts.get(kind)
        if uris is None:
            continue
        field = form.tag("field", NS_DATA, {"var": f"{kind}-addresses", "type": "list-multi"})
        for uri in uris:
            field.text_tag("value", uri)
    return form


def load(module: ModuleApi) -> None:
    contacts: dict[str, Any] | None = module.option("contact_info")
    if contacts is None:  # unset; an explicit empty table publishes nothing
        admins = module.option("admins")
        contacts = {"admin": [f"xmpp:{jid}" for jid in admins]} if admins else {}
    if contacts:
        module.add_extension(contact_form(contacts))
