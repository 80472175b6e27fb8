"""BOSH (XEP-0124) with XMPP's extensions (XEP-0206), sans-I/O: request bodies in,
negotiated session parameters, request-id decisions and response bodies out.

A BOSH request is one ``<body/>`` wrapper of the ``http://jabber.org/protocol/httpbind``
namespace holding whole payloads (§6). The module that serves ``/http-bind`` feeds each
payload to the same client stream a WebSocket message feeds (RFC 7395 framing), so what
is here is only the wrapper: its attributes, its limits and its rules.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType

from tercet.protocol.errors import StreamError
from tercet.protocol.stanza import NS_CLIENT, Element, escape_attr
from tercet.protocol.xmlstream import NS_STREAM, StanzaReceived, StreamReader

NS_HTTPBIND = "http://jabber.org/protocol/httpbind"
NS_XBOSH = "urn:xmpp:xbosh"
#: The highest BOSH version spoken here (XEP-0124 §7.2 'ver': the lower of both wins).
VERSION = (1, 11)
#: XEP-0124 §7.1: responses carry this Content-Type unless the client asked for another.
CONTENT_TYPE = "text/xml; charset=utf-8"
#: XEP-0124 §14.1: request ids stay below 2^53 (IEEE doubles in weakly typed clients).
MAX_RID = 9007199254740991

_RESTART = "{" + NS_XBOSH + "}restart"
_XMPP_VERSION = "{" + NS_XBOSH + "}version"
# A request body is parsed as if it were the one element of a stream: the stream reader's
# bounds and refusals (no DTD, no comments, no processing instructions: §6) apply.
_HEADER = (f"<stream:stream xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAM}'>").encode()
_FOOTER = b"</stream:stream>"
_DIGITS = re.compile(r"[0-9]{1,16}")
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9.+-]+/[A-Za-z0-9.+-]+"
                         r"( *; *[A-Za-z0-9.+-]+=[A-Za-z0-9.+-]+)*")


class BoshError(Exception):
    """A terminal binding condition (XEP-0124 §17.2): the session ends with it."""

    def __init__(self, condition: str, text: str | None = None) -> None:
        super().__init__(text or condition)
        self.condition = condition


#: XEP-0124 §17.1: a legacy client (no 'ver' in its session request) gets these HTTP
#: errors instead of the terminal binding conditions that superseded them.
LEGACY_STATUS: Mapping[str, int] = MappingProxyType({
    "bad-request": 400, "policy-violation": 403, "item-not-found": 404})


@dataclass(frozen=True, slots=True)
class BodyRequest:
    """One client ``<body/>``: its attributes and its payloads (§6)."""

    rid: int
    attrs: Mapping[str, str]
    payloads: tuple[Element, ...]

    @property
    def sid(self) -> str | None:
        return self.attrs.get("sid")

    @property
    def type(self) -> str | None:
        return self.attrs.get("type")

    @property
    def restart(self) -> bool:
        """XEP-0206 §5: a stream restart after SASL success."""
        return self.attrs.get(_RESTART) in ("true", "1")

    @property
    def xmpp_version(self) -> str | None:
        return self.attrs.get(_XMPP_VERSION)

    def number(self, name: str) -> int | None:
        """A non-negative integer attribute (wait, hold, pause, ack); bad-request if not."""
        value = self.attrs.get(name)
        if value is None:
            return None
        return _integer(value, name)


def _integer(value: str, name: str) -> int:
    if not _DIGITS.fullmatch(value):
        raise BoshError("bad-request", f"{name} must be a non-negative integer")
    return int(value)


def parse_body(data: bytes, max_size: int) -> BodyRequest:
    """Parse one request body (§6, §7.1); raises BoshError("bad-request")."""
    if len(data) > max_size:
        raise BoshError("bad-request", "body too large")
    start = data.lstrip()
    if start.startswith(b"<?xml"):
        end = start.find(b"?>")
        if end < 0:
            raise BoshError("bad-request", "unterminated XML declaration")
        start = start[end + 2:]
    reader = StreamReader(max_stanza_size=max_size)
    try:
        events = reader.feed(_HEADER + start + _FOOTER)
    except StreamError as err:
        raise BoshError("bad-request", f"not well-formed: {err.condition}") from None
    elements = [e.element for e in events if isinstance(e, StanzaReceived)]
    if len(elements) != 1:
        raise BoshError("bad-request", "expected one <body/>")
    body = elements[0]
    if body.name != "body" or body.xmlns != NS_HTTPBIND:
        raise BoshError("bad-request", "expected <body/> of the httpbind namespace")
    if any(isinstance(c, str) and c.strip() for c in body.children):
        raise BoshError("bad-request", "character data in <body/>")  # §6
    rid = body.attrs.get("rid")
    if rid is None:
        raise BoshError("bad-request", "no rid")  # §6: every request has one
    number = _integer(rid, "rid")
    if not 0 < number <= MAX_RID:
        raise BoshError("bad-request", "rid out of range")
    payloads = tuple(c for c in body.children if isinstance(c, Element))
    return BodyRequest(number, MappingProxyType(dict(body.attrs)), payloads)


def payload_xml(el: Element) -> bytes:
    """A payload as one standalone element for the client stream.

    COMPAT: XEP-0206 §2 notes that many clients leave stanzas in the httpbind namespace
    (the wrapper's default) and mean jabber:client; they are read as jabber:client."""
    if el.xmlns == NS_HTTPBIND:
        _rename_ns(el)
    return el.to_xml(None).encode()


def _rename_ns(el: Element) -> None:
    el.xmlns = NS_CLIENT
    for child in el.children:
        if isinstance(child, Element) and child.xmlns == NS_HTTPBIND:
            _rename_ns(child)


@dataclass(frozen=True, slots=True)
class Bounds:
    """The server's limits for every session (the module's options)."""

    max_wait: int
    max_hold: int
    max_requests: int
    inactivity: int
    polling: int
    max_pause: int


@dataclass(frozen=True, slots=True)
class Params:
    """What a session creation negotiated (XEP-0124 §7.2)."""

    wait: int
    hold: int
    requests: int
    inactivity: int
    polling: int
    maxpause: int
    ver: str | None  # None: a legacy client (§17.1)
    content: str
    ack: bool  # the client acknowledges responses (§9.2), so we report acks (§9.1)

    def creation_attrs(self, rid: int) -> dict[str, str]:
        """The attributes only the session creation response carries (§7.2)."""
        attrs = {"wait": str(self.wait), "hold": str(self.hold),
                 "requests": str(self.requests), "inactivity": str(self.inactivity),
                 "polling": str(self.polling), "maxpause": str(self.maxpause)}
        if self.ver is not None:
            attrs["ver"] = self.ver
        if self.ack:
            attrs["ack"] = str(rid)
        return attrs


def negotiate(req: BodyRequest, bounds: Bounds) -> Params:
    """Session parameters within the server's bounds (XEP-0124 §7.1, §7.2)."""
    wait = req.number("wait")
    hold = req.number("hold")
    # §7.2: 'wait' at most the client's; 'hold' at most the client's.
    wait = bounds.max_wait if wait is None else min(wait, bounds.max_wait)
    hold = bounds.max_hold if hold is None else min(hold, bounds.max_hold)
    # §7.2: 'requests' larger than 'hold'; one more is the recommendation.
    requests = max(bounds.max_requests, hold + 1)
    content = req.attrs.get("content") or CONTENT_TYPE
    if not _MEDIA_TYPE.fullmatch(content):
        raise BoshError("bad-request", "bad content attribute")
    inactivity = bounds.inactivity
    if hold == 0 or wait == 0:
        # §12: a polling session gets a longer inactivity, more than the polling interval.
        inactivity += bounds.polling
    return Params(wait=wait, hold=hold, requests=requests, inactivity=inactivity,
                  polling=bounds.polling, maxpause=bounds.max_pause,
                  ver=_version(req.attrs.get("ver")), content=content,
                  ack="ack" in req.attrs)


def _version(ver: str | None) -> str | None:
    """§7.2 'ver': the lower of the client's and ours; None for a legacy client."""
    if ver is None:
        return None
    major, _, minor = ver.partition(".")
    if not (_DIGITS.fullmatch(major) and _DIGITS.fullmatch(minor)):
        raise BoshError("bad-request", "bad ver attribute")
    theirs = (int(major), int(minor))  # §7.1: the minor number is a separate integer
    lower = min(theirs, VERSION)
    return f"{lower[0]}.{lower[1]}"


class RidCheck(Enum):
    """Where a request id falls (XEP-0124 §14)."""

    NEXT = "next"  # inside the window: process it (in order, §14.2)
    REPEAT = "repeat"  # seen already: retransmit the response (§14.3)
    OUTSIDE = "outside"  # beyond the window: item-not-found (§14.2)


def check_rid(last: int, rid: int, window: int) -> RidCheck:
    """``last``: the highest rid processed; ``window``: the 'requests' negotiated.

    §14.2: a rid is expected within a window above the previous one, as wide as the
    simultaneous requests allowed; §14.3: a rid seen before asks for a retransmission."""
    if rid <= last:
        return RidCheck.REPEAT
    if rid > last + window:
        return RidCheck.OUTSIDE
    return RidCheck.NEXT


class ResponseCache:
    """The last responses by rid, for retransmission (XEP-0124 §14.3): as many as the
    simultaneous requests allowed; acknowledged ones (§9.2) are dropped early."""

    __slots__ = ("_bodies", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._bodies: OrderedDict[int, bytes] = OrderedDict()

    def add(self, rid: int, body: bytes) -> None:
        self._bodies[rid] = body
        while len(self._bodies) > self.size:
            self._bodies.popitem(last=False)

    def get(self, rid: int) -> bytes | None:
        return self._bodies.get(rid)

    def acknowledged(self, ack: int) -> None:
        """The client received every response up to ``ack`` (§9.2)."""
        for rid in [r for r in self._bodies if r <= ack]:
            del self._bodies[rid]

    def __len__(self) -> int:
        return len(self._bodies)


def render_body(attrs: Mapping[str, str], payloads: Iterable[bytes] = ()) -> bytes:
    """A response ``<body/>``; ``attrs`` may use the ``xmpp:`` prefix (XEP-0206)."""
    head = [f"<body xmlns='{NS_HTTPBIND}' xmlns:xmpp='{NS_XBOSH}'"
            f" xmlns:stream='{NS_STREAM}'"]
    for key, value in attrs.items():
        head.append(f" {key}='{escape_attr(value)}'")
    inner = b"".join(payloads)
    if not inner:
        return ("".join(head) + "/>").encode()
    return ("".join(head) + ">").encode() + inner + b"</body>"


def terminate(condition: str | None = None, payloads: Iterable[bytes] = ()) -> bytes:
    """A ``type='terminate'`` body (§13, §17.2)."""
    attrs = {"type": "terminate"}
    if condition is not None:
        attrs["condition"] = condition
    return render_body(attrs, payloads)
