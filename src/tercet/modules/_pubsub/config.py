"""Node configuration (XEP-0060 §8.2, §16.4.3): the values, the form and its parsing.

The configuration form lists its fields in one fixed order with fixed labels, because
clients (and test suites) compare it field by field. ``notify_config`` and ``notify_sub``
are accepted in submissions and publish-options but not offered in the form, as other
servers offer it; ``max_items`` takes a number or ``max`` (the service's bound).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any

from tercet.modules._pubsub.errors import PubsubError
from tercet.protocol.dataforms import Field, FormError, Submitted, build_form, parse_submit
from tercet.protocol.stanza import Element

NS_DATA = "jabber:x:data"
NS_VALIDATE = "http://jabber.org/protocol/xdata-validate"
FORM_NODE_CONFIG = "http://jabber.org/protocol/pubsub#node_config"
FORM_PUBLISH_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options"

ACCESS_MODELS = ("authorize", "open", "presence", "roster", "whitelist")
PUBLISH_MODELS = ("publishers", "subscribers", "open")
SEND_LAST = ("never", "on_sub", "on_sub_and_presence")
NOTIFICATION_TYPES = (("normal", "Messages of type normal"),
                      ("headline", "Messages of type headline"))
ITEMREPLY = (("owner", "Include the node owner's JID"),
             ("publisher", "Include the item publisher's JID"),
             ("none", "Don't include any JID with items"))


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """One node's configuration; field names are the pubsub#<name> vars (§16.4.3)."""

    title: str = ""
    description: str = ""
    type: str = ""
    max_items: int = 20
    persist_items: bool = True
    access_model: str = "open"
    roster_groups_allowed: tuple[str, ...] = ()
    publish_model: str = "publishers"
    send_last_published_item: str = "never"
    deliver_notifications: bool = True
    deliver_payloads: bool = True
    notification_type: str = "headline"
    notify_delete: bool = True
    notify_retract: bool = True
    notify_config: bool = False
    notify_sub: bool = False
    itemreply: str = "none"

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["roster_groups_allowed"] = list(self.roster_groups_allowed)
        return out

    @classmethod
    def from_json(cls, data: Any, default: NodeConfig) -> NodeConfig:
        """Read a stored configuration; unknown or mistyped keys keep ``default``'s."""
        if not isinstance(data, dict):
            return default
        values: dict[str, Any] = {}
        for f in fields(cls):
            value = data.get(f.name)
            current = getattr(default, f.name)
            if f.name == "roster_groups_allowed" and isinstance(value, list):
                values[f.name] = tuple(str(v) for v in value)
            elif value is not None and type(value) is type(current):
                values[f.name] = value
        return replace(default, **values)

    def as_text(self, var: str, max_items_bound: int) -> list[str]:
        """The form values of pubsub#``var`` (for preconditions and the form)."""
        value = getattr(self, var)
        if isinstance(value, bool):
            return ["1" if value else "0"]
        if isinstance(value, tuple):
            return list(value)
        if var == "max_items" and value >= max_items_bound:
            return [str(value)]
        return [str(value)] if value != "" else []


VARS = frozenset(f.name for f in fields(NodeConfig))


def _bool(text: str) -> bool:
    if text in ("1", "true"):
        return True
    if text in ("0", "false"):
        return False
    raise ValueError(text)


def _choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def check(text: str) -> str:
        if text not in choices:
            raise ValueError(text)
        return text
    return check


def _max_items(bound: int) -> Callable[[str], int]:
    def check(text: str) -> int:
        if text.strip() == "max":
            return bound
        value = int(text.strip())
        if value < 1 or value > bound:
            raise ValueError(text)
        return value
    return check


def parsers(bound: int) -> dict[str, Callable[[str], Any]]:
    """Per field, how one submitted value becomes a config value (raises ValueError)."""
    return {
        "title": str, "description": str, "type": str,
        "max_items": _max_items(bound), "persist_items": _bool,
        "access_model": _choice(ACCESS_MODELS),
        "publish_model": _choice(PUBLISH_MODELS),
        "send_last_published_item": _choice(SEND_LAST),
        "deliver_notifications": _bool, "deliver_payloads": _bool,
        "notification_type": _choice(tuple(v for v, _ in NOTIFICATION_TYPES)),
        "notify_delete": _bool, "notify_retract": _bool, "notify_config": _bool,
        "notify_sub": _bool, "itemreply": _choice(tuple(v for v, _ in ITEMREPLY)),
    }


def apply_values(config: NodeConfig, values: dict[str, list[str]], bound: int) -> NodeConfig:
    """``config`` with the submitted ``pubsub#...`` values; unknown fields and bad values
    raise PubsubError (§8.2.5: not-acceptable)."""
    changes: dict[str, Any] = {}
    table = parsers(bound)
    for var, vals in values.items():
        name = var.removeprefix("pubsub#")
        if name == "roster_groups_allowed":
            changes[name] = tuple(vals)
            continue
        parse = table.get(name)
        if parse is None or not var.startswith("pubsub#"):
            raise PubsubError("node-config-invalid", f"Unknown option: {var}")
        if len(vals) > 1:
            raise PubsubError("node-config-invalid", f"Invalid value for {name}")
        try:
            changes[name] = parse(vals[0] if vals else "")
        except ValueError:
            raise PubsubError("node-config-invalid", f"Invalid value for {name}") from None
    return replace(config, **changes)


def read_form(form: Element, form_type: str) -> dict[str, list[str]]:
    """The pubsub#... values of a submitted form of ``form_type``; FormError-free."""
    try:
        submitted: Submitted = parse_submit(form)
    except FormError:
        raise PubsubError("node-config-invalid", "Malformed form") from None
    if submitted.type == "cancel":
        return {}
    if submitted.form_type not in (None, form_type):
        raise PubsubError("node-config-invalid", "Wrong FORM_TYPE")
    return dict(submitted.values)


def check_preconditions(config: NodeConfig, options: dict[str, list[str]],
                        bound: int) -> None:
    """XEP-0060 §7.1.5: every publish-option must equal the node's configuration, or the
    publish fails with conflict + precondition-not-met."""
    table = parsers(bound)
    for var, vals in options.items():
        name = var.removeprefix("pubsub#")
        if name not in VARS:
            raise PubsubError("precondition-not-met", f"Field does not match: {name}")
        current = getattr(config, name)
        if name == "roster_groups_allowed":
            matches = sorted(vals) == sorted(current)
        else:
            try:
                matches = len(vals) == 1 and table[name](vals[0]) == current
            except ValueError:
                matches = False
        if not matches:
            raise PubsubError("precondition-not-met", f"Field does not match: {name}")


# -- the form (§16.4.3) ------------------------------------------------------------------

_LABELS = {
    "title": "Title", "description": "Description",
    "type": "The type of node data, usually specified by the namespace of the payload (if any)",
    "max_items": "Max # of items to persist", "persist_items": "Persist items to storage",
    "access_model": "Specify the subscriber model",
    "roster_groups_allowed": "Roster groups allowed to subscribe",
    "publish_model": "Specify the publisher model",
    "deliver_notifications": "Whether to deliver event notifications",
    "deliver_payloads": "Whether to deliver payloads with event notifications",
    "notification_type": "Specify the delivery style for notifications",
    "notify_delete": "Whether to notify subscribers when the node is deleted",
    "notify_retract": "Whether to notify subscribers when items are removed from the node",
    "itemreply": "Specify whose JID to include as the publisher of items",
}


@dataclass(frozen=True, slots=True)
class _FormRow:
    name: str
    type: str
    options: tuple[tuple[str, str | None], ...] = field(default=())
    labelled: bool = True


_ROWS = (
    _FormRow("title", "text-single"), _FormRow("description", "text-single"),
    _FormRow("type", "text-single"), _FormRow("max_items", "text-single"),
    _FormRow("persist_items", "boolean"),
    _FormRow("access_model", "list-single", tuple((m, m) for m in ACCESS_MODELS)),
    _FormRow("roster_groups_allowed", "list-multi"),
    _FormRow("publish_model", "list-single", tuple((m, m) for m in PUBLISH_MODELS)),
    _FormRow("send_last_published_item", "list-single", tuple((m, m) for m in SEND_LAST),
             labelled=False),
    _FormRow("deliver_notifications", "boolean"), _FormRow("deliver_payloads", "boolean"),
    _FormRow("notification_type", "list-single", NOTIFICATION_TYPES),
    _FormRow("notify_delete", "boolean"), _FormRow("notify_retract", "boolean"),
    _FormRow("itemreply", "list-single", ITEMREPLY),
)


def config_form(config: NodeConfig, bound: int) -> Element:
    """The pubsub#node_config form (§8.2.1) holding ``config``'s values."""
    rows = [Field(f"pubsub#{r.name}", r.type, _LABELS.get(r.name) if r.labelled else None,
                  config.as_text(r.name, bound), r.options) for r in _ROWS]
    form = build_form(rows, form_type=FORM_NODE_CONFIG)
    for el in form.find_all("field", NS_DATA):
        if el.get("var") == "pubsub#max_items":
            # XEP-0122 validation: a number up to the bound, or "max" (XEP-0060 §16.4.3).
            validate = Element("validate", NS_VALIDATE, {"datatype": "pubsub:integer-or-max"})
            validate.tag("range", attrs={"min": "1", "max": str(bound)})
            el.children.insert(0, validate)
        # Options before the current value, the order clients are used to.
        el.children.sort(key=lambda c: 1 if isinstance(c, Element) and c.name == "value"
                         else 0)
    return form
