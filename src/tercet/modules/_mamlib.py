"""Message Archive Management (XEP-0313) as data: which messages are archived, the query
form and RSM set parsed into values, the replies built as elements. No I/O, no store: the
``mam`` module does those and calls these functions.
"""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import dataclass, field

from tercet.protocol.stanza import NS_DELAY, Element

NS_MAM = "urn:xmpp:mam:2"
NS_MAM_EXTENDED = "urn:xmpp:mam:2#extended"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_DATA = "jabber:x:data"
NS_FORWARD = "urn:xmpp:forward:0"
NS_SID = "urn:xmpp:sid:0"
NS_HINTS = "urn:xmpp:hints"

# Encrypted payloads that replace <body/> (XEP-0384 OMEMO, XEP-0373 OpenPGP): a message
# carrying one is a conversation message like one with a body (XEP-0313 §7.1.2 leaves the
# choice to the server; clients expect these in the archive).
_CONTENT_NS = frozenset(("eu.siacs.conversations.axolotl", "urn:xmpp:omemo:2",
                         "urn:xmpp:openpgp:0"))

# XEP-0313 §5.1.1: the fields a query form may carry; the #extended ones (§5.1.1.2).
FORM_FIELDS: tuple[tuple[str, str], ...] = (
    ("with", "jid-single"), ("start", "text-single"), ("end", "text-single"),
    ("before-id", "text-single"), ("after-id", "text-single"), ("ids", "text-multi"),
)

POLICIES = ("always", "never", "roster")


class QueryError(Exception):
    """A query the client got wrong; ``condition`` is the stanza error to answer with."""

    def __init__(self, condition: str, text: str) -> None:
        super().__init__(text)
        self.condition = condition
        self.text = text


# -- which messages (XEP-0313 §7.1.2, XEP-0334 §4) -----------------------------------------

def archivable(stanza: Element, *, groupchat_ok: bool = False) -> bool:
    """Whether a message belongs in a user's archive.

    Errors never (XEP-0313 §7.1.2); groupchat not in a user's archive (it belongs to the
    room's); ``no-store``/``no-permanent-store`` hints never, ``store`` always (XEP-0334
    §4.3, §4.4); otherwise chat and normal messages with a body or encrypted content.
    """
    mtype = stanza.get("type") or "normal"
    if mtype == "error" or (mtype == "groupchat" and not groupchat_ok):
        return False
    if stanza.find("no-store", NS_HINTS) is not None \
            or stanza.find("no-permanent-store", NS_HINTS) is not None:
        return False
    if stanza.find("store", NS_HINTS) is not None:
        return True
    if mtype not in ("chat", "normal"):
        return False
    if stanza.find("body") is not None:
        return True
    return any(c.xmlns in _CONTENT_NS for c in stanza.elements())


def strip_stanza_ids(stanza: Element, by: str) -> None:
    """Remove every ``<stanza-id by=by/>`` that someone else put in (XEP-0359 §4)."""
    stanza.children = [c for c in stanza.children
                       if isinstance(c, str) or c.xmlns != NS_SID or c.name != "stanza-id"
                       or c.get("by") != by]


def add_stanza_id(stanza: Element, key: str, by: str) -> None:
    stanza.tag("stanza-id", NS_SID, {"id": key, "by": by})


# -- preferences (XEP-0313 §6) -----------------------------------------------------------

@dataclass(frozen=True)
class Prefs:
    default: str = "always"
    always: tuple[str, ...] = ()
    never: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {"default": self.default, "always": list(self.always), "never": list(self.never)}

    @classmethod
    def from_json(cls, value: object, fallback: str) -> Prefs:
        if not isinstance(value, dict):
            return cls(fallback)
        default = value.get("default")
        return cls(default if default in POLICIES else fallback,
                   tuple(str(j) for j in value.get("always") or ()),
                   tuple(str(j) for j in value.get("never") or ()))

    def decide(self, contact: str) -> bool | None:
        """True/False from the JID lists (never wins), None when the default decides."""
        if contact in self.never:
            return False
        if contact in self.always:
            return True
        return None

    def to_element(self) -> Element:
        prefs = Element("prefs", NS_MAM, {"default": self.default})
        for name, jids in (("always", self.always), ("never", self.never)):
            node = prefs.tag(name, NS_MAM)
            for jid in jids:
                node.text_tag("jid", jid, NS_MAM)
        return prefs


def parse_prefs(element: Element) -> tuple[str | None, list[str], list[str]]:
    """(default, always JIDs, never JIDs) as the client sent them, unprepared."""
    default = element.get("default")
    if default is not None and default not in POLICIES:
        raise QueryError("bad-request", "default must be always, never or roster")

    def jids(name: str) -> list[str]:
        node = element.find(name, NS_MAM)
        return [] if node is None else [j.text.strip() for j in node.find_all("jid", NS_MAM)]
    return default, jids("always"), jids("never")


# -- queries (XEP-0313 §4, XEP-0059) --------------------------------------------------------

@dataclass(frozen=True)
class MamQuery:
    """A parsed ``<query/>``: form filters and RSM paging."""

    queryid: str | None = None
    with_jid: str | None = None
    start: float | None = None
    end: float | None = None
    before_id: str | None = None
    after_id: str | None = None
    ids: tuple[str, ...] | None = None
    max: int | None = None
    # RSM before: None = not given, "" = the last page (XEP-0059 §2.5).
    before: str | None = None
    after: str | None = None
    flip: bool = False
    unknown: list[str] = field(default_factory=list)


def parse_datetime(text: str) -> float:
    """XEP-0082 DateTime (``CCYY-MM-DDThh:mm:ss[.sss](Z|±hh:mm)``) to epoch seconds."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", text.strip())
    if m is None:
        raise QueryError("bad-request", "dates are XEP-0082 DateTime values")
    try:
        base = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        raise QueryError("bad-request", "dates are XEP-0082 DateTime values") from None
    frac = float(m.group(2)) if m.group(2) else 0.0
    tz = m.group(3)
    offset = 0 if tz == "Z" else (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60) * (
        1 if tz[0] == "+" else -1)
    return base + frac - offset


def stamp(when: float) -> str:
    """XEP-0082 DateTime in UTC, whole seconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def parse_query(query: Element) -> MamQuery:
    """The form fields and the RSM set of a ``<query xmlns='urn:xmpp:mam:2'/>``."""
    values: dict[str, list[str]] = {}
    form = query.find("x", NS_DATA)
    if form is not None:
        for fld in form.find_all("field", NS_DATA):
            var = fld.get("var")
            if var is None:
                continue
            values[var] = [v.text for v in fld.find_all("value", NS_DATA)]
        ftype = values.pop("FORM_TYPE", [NS_MAM])
        if ftype and ftype[0] != NS_MAM:
            raise QueryError("bad-request", "FORM_TYPE must be urn:xmpp:mam:2")
    known = {name for name, _ in FORM_FIELDS}
    unknown = [k for k in values if k not in known]
    if unknown:
        raise QueryError("bad-request", "unknown query field")

    def one(name: str) -> str | None:
        vals = values.get(name)
        return vals[0].strip() if vals and vals[0].strip() else None

    start = one("start")
    end = one("end")
    ids = tuple(v.strip() for v in values["ids"] if v.strip()) if "ids" in values else None
    rsm = query.find("set", NS_RSM)
    max_: int | None = None
    before: str | None = None
    after: str | None = None
    if rsm is not None:
        text = rsm.child_text("max", NS_RSM)
        if text is not None:
            try:
                max_ = int(text.strip())
            except ValueError:
                raise QueryError("bad-request", "RSM max is a number") from None
            if max_ < 0:
                raise QueryError("bad-request", "RSM max is not negative")
        node = rsm.find("before", NS_RSM)
        if node is not None:
            before = node.text.strip()
        node = rsm.find("after", NS_RSM)
        if node is not None:
            after = node.text.strip()
            if not after:
                raise QueryError("bad-request", "RSM after needs an id")
        if rsm.find("index", NS_RSM) is not None:
            raise QueryError("feature-not-implemented", "RSM index is not supported")
    return MamQuery(
        queryid=query.get("queryid"), with_jid=one("with"),
        start=parse_datetime(start) if start else None,
        end=parse_datetime(end) if end else None,
        before_id=one("before-id"), after_id=one("after-id"), ids=ids,
        max=max_, before=before, after=after,
        flip=query.find("flip-page", NS_MAM) is not None)


def fields_form() -> Element:
    """The query form a client gets for ``<iq type='get'><query/></iq>`` (§5.1.1)."""
    form = Element("x", NS_DATA, {"type": "form"})
    form.tag("field", NS_DATA, {"var": "FORM_TYPE", "type": "hidden"}).text_tag(
        "value", NS_MAM, NS_DATA)
    for var, ftype in FORM_FIELDS:
        form.tag("field", NS_DATA, {"var": var, "type": ftype})
    return form


def result_message(to: str, queryid: str | None, key: str, when: float,
                   archived: Element) -> Element:
    """One result (§4.2): the archived message forwarded (XEP-0297) with its time."""
    msg = Element("message", attrs={"to": to})
    attrs = {"id": key}
    if queryid is not None:
        attrs["queryid"] = queryid
    fwd = msg.tag("result", NS_MAM, attrs).tag("forwarded", NS_FORWARD)
    fwd.tag("delay", NS_DELAY, {"stamp": stamp(when)})
    fwd.append(archived)
    return msg


@dataclass(frozen=True)
class Page:
    """One page of results. ``first_index`` and ``count`` are None when not worked out:
    XEP-0059 §2.1 lets a responder leave out ``<count/>`` (which may be approximate) and
    the ``index`` of ``<first/>``, and counting costs a walk over the whole result set,
    so they are given only when the client asks for the count alone (``<max>0</max>``,
    XEP-0059 §2.7) or when they are known for free (a page at the start of the set, a
    page that is the whole set)."""

    keys: list[str]
    first_index: int | None
    count: int | None
    complete: bool


def fin(page: Page) -> Element:
    """``<fin/>`` with its RSM set (§4.3, XEP-0059 §2.6: an empty page has no first/last)."""
    out = Element("fin", NS_MAM, {"complete": "true" if page.complete else "false"})
    rsm = out.tag("set", NS_RSM)
    if page.keys:
        attrs = {} if page.first_index is None else {"index": str(page.first_index)}
        rsm.text_tag("first", page.keys[0], NS_RSM, attrs)
        rsm.text_tag("last", page.keys[-1], NS_RSM)
    if page.count is not None:
        rsm.text_tag("count", str(page.count), NS_RSM)
    return out


# -- expiry -------------------------------------------------------------------------------

_UNITS = {"s": 1, "h": 3600, "d": 86400, "w": 7 * 86400, "m": 2_629_746, "y": 31_556_952}


def expiry_seconds(value: object) -> float | None:
    """``archive_expires_after`` as seconds, None for "never".

    Accepted as Prosody does: a number of seconds, ``"never"``, or a number followed by
    d (days), w (weeks), m (months of 30.44 days), y (years); also h and s here.
    """
    if isinstance(value, bool):
        raise ValueError("archive_expires_after is a duration, not a boolean")
    if isinstance(value, (int, float)):
        if value <= 0:
            raise ValueError("archive_expires_after must be positive")
        return float(value)
    if not isinstance(value, str):
        raise ValueError("archive_expires_after is a duration")
    text = value.strip().lower()
    if text == "never":
        return None
    m = re.fullmatch(r"(\d+)\s*([shdwmy]?)", text)
    if m is None or int(m.group(1)) == 0:
        raise ValueError(f"not a duration: {value!r}")
    return float(int(m.group(1)) * _UNITS[m.group(2) or "s"])
