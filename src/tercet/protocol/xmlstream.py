"""Incremental XML stream reader on stdlib expat (RFC 6120 §4 and §11).

Bytes in, events out. Every restriction of RFC 6120 §11.1 is enforced *while parsing*, from
expat callbacks, so a hostile peer cannot make us build what we will reject anyway:

* DOCTYPE, entity declarations, processing instructions and comments: ``restricted-xml``
  (§11.1); so is any entity reference other than the five predefined ones.
* malformed input: ``not-well-formed`` (§4.9.3.13); a wrong stream namespace or content
  namespace: ``invalid-namespace`` (§4.9.3.10); a declared non-UTF-8 encoding:
  ``unsupported-encoding`` (§11.6).
* a top-level element larger than ``max_stanza_size`` bytes, counted as the bytes arrive,
  or nested deeper than ``max_depth``: ``policy-violation`` (§4.9.3.18).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any
from xml.parsers import expat

from tercet.protocol.errors import StreamError
from tercet.protocol.stanza import NS_CLIENT, Element, escape_attr, escape_text

NS_STREAM = "http://etherx.jabber.org/streams"
NS_XML = "http://www.w3.org/XML/1998/namespace"
_SEP = "\x01"
_XML_PREFIX = NS_XML + _SEP

DEFAULT_MAX_STANZA_SIZE = 256 * 1024  # c2s default, like Prosody's c2s_stanza_size_limit
DEFAULT_MAX_DEPTH = 64  # nesting below the stream root; real stanzas stay far below this
# Feed expat in slices so the size limit is checked while one large read is parsed.
_SLICE = 16 * 1024
# First two bytes of a UTF-16 stream: the byte order marks, and "<" next to a NUL.
_UTF16_STARTS = frozenset((b"\xff\xfe", b"\xfe\xff", b"<\x00", b"\x00<"))
# RFC 6120 §13.12 lets a server bound what one stream may make it hold. Expat and
# pyexpat's intern table keep every distinct element/attribute name (namespace included)
# for the life of the parser, ~0.4 kB each, so a peer inventing new names in every stanza
# could grow its stream's parser without bound. Past this many names the parser is
# replaced by a fresh one at the start of the next stanza (see _swap_parser).
MAX_PARSER_NAMES = 1024
# pyexpat's character-data buffer, allocated per parser: text up to this size reaches
# _text in one call, longer text in pieces that _end joins. It is memory every idle
# session holds (we had 64 KiB; bench/README.md has the figures), and bodies are short.
_TEXT_BUFFER = 1024
# Expanded element name ("uri<SEP>local") -> (namespace, local name), shared by all
# readers: saves a split per element. Names come from peers, so it stops growing at
# this many entries (a miss only costs the split).
_NAME_CACHE_SIZE = 4096
_names: dict[str, tuple[str, str]] = {}
# A stream root's namespace declarations -> one dict with them, shared by every stream
# that declared the same: an idle stream keeps its root's declarations (for a parser swap
# or a wake) and nearly all declare the same two, so each would otherwise hold a
# 184-byte dict of its own. Declarations come from peers: past this many distinct sets
# a stream keeps its own dict.
_DECLS_CACHE_SIZE = 64
_shared_decls: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
# A sleeping stream's event and element lists (StreamReader.hibernate): empty, and never
# appended to, as only a parser appends and a wake gives the stream lists of its own.
_ASLEEP: list[Any] = []

# expat error codes that mean "forbidden by RFC 6120 §11.1" rather than "malformed".
_RESTRICTED_ERRORS = {
    expat.errors.codes[expat.errors.XML_ERROR_UNDEFINED_ENTITY],
    expat.errors.codes[expat.errors.XML_ERROR_RECURSIVE_ENTITY_REF],
    expat.errors.codes[expat.errors.XML_ERROR_EXTERNAL_ENTITY_HANDLING],
    expat.errors.codes[expat.errors.XML_ERROR_ENTITY_DECLARED_IN_PE],
}


@dataclass(frozen=True, slots=True)
class StreamOpened:
    """The peer's stream header. ``attrs`` holds to/from/id/version/xml:lang."""

    attrs: dict[str, str] = field(hash=False)
    content_ns: str | None = None


class StanzaReceived:
    """One complete top-level element of the stream (a stanza or a stream-level element).

    A plain class, not a dataclass: one is made per stanza received, and compiled
    (setup.py) its constructor is native code, where a slots dataclass keeps the
    interpreted ``__init__`` the dataclass machinery generates."""

    __slots__ = ("element",)
    __match_args__ = ("element",)

    def __init__(self, element: Element) -> None:
        self.element = element

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StanzaReceived) and other.element == self.element

    __hash__ = None  # type: ignore[assignment]  # compared by value, as a dataclass is

    def __repr__(self) -> str:
        return f"StanzaReceived(element={self.element!r})"


@dataclass(frozen=True, slots=True)
class StreamClosed:
    pass


StreamEvent = StreamOpened | StanzaReceived | StreamClosed


class _SwapParser(Exception):
    """Raised from the start handler to stop expat where a fresh parser takes over."""


class StreamReader:
    """Parses one direction of an XML stream; ``reset()`` for a stream restart.

    Byte positions (``_fed``, ``_mark``, ``_carry_start``) count from the start of the
    current stream, across parser swaps; ``_base`` is the stream position of the current
    parser's first byte.
    """

    __slots__ = (
        "_base",
        "_carry",
        "_carry_start",
        "_closed",
        "_depth",
        "_events",
        "_fed",
        "_head",
        "_mark",
        "_parser",
        "_restart_at",
        "_resuming",
        "_root_ns_decls",
        "_split_text",
        "_stack",
        "content_ns",
        "max_depth",
        "max_names",
        "max_stanza_size",
        "stream_ns",
    )

    def __init__(self, max_stanza_size: int = DEFAULT_MAX_STANZA_SIZE,
                 max_depth: int = DEFAULT_MAX_DEPTH, content_ns: str | None = NS_CLIENT,
                 stream_ns: str = NS_STREAM, max_names: int = MAX_PARSER_NAMES) -> None:
        self.max_stanza_size = max_stanza_size
        self.max_depth = max_depth
        self.max_names = max_names
        self.content_ns = content_ns
        self.stream_ns = stream_ns
        self._events: list[StreamEvent] = []
        self._closed = False
        self.reset()

    def reset(self) -> None:
        """Start a new stream (after STARTTLS or SASL success, RFC 6120 §5.4.3.3, §6.4.6)."""
        self._parser: expat.XMLParserType | None = None
        self._new_parser()
        self._stack: list[Element] = []
        self._depth = 0
        self._root_ns_decls: dict[str, str] = {}
        self._fed = 0
        self._head: bytes | None = b""  # the stream's first bytes, until checked
        self._base = 0
        self._mark = 0  # stream position where the current top-level element may begin
        self._closed = False
        self._split_text = False  # some text of the current stanza came in pieces
        # While a parser swap is pending: the bytes from _carry_start on, kept so that
        # the new parser can re-read the stanza it takes over from (_swap_parser).
        self._carry: bytes | None = None
        self._carry_start = 0
        self._restart_at = 0
        self._resuming = False

    def _new_parser(self) -> None:
        p = expat.ParserCreate("UTF-8", _SEP)
        p.buffer_text = True
        p.buffer_size = _TEXT_BUFFER
        p.ordered_attributes = False
        p.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        if hasattr(p, "SetReparseDeferralEnabled"):
            # expat >= 2.6 may hold back a complete stanza until more bytes arrive; an
            # idle client would then never see its last stanza processed.
            p.SetReparseDeferralEnabled(False)
        p.StartElementHandler = self._start
        p.EndElementHandler = self._end
        p.CharacterDataHandler = self._text
        p.StartNamespaceDeclHandler = self._ns_decl
        p.XmlDeclHandler = self._xml_decl
        p.StartDoctypeDeclHandler = self._restricted
        p.EntityDeclHandler = self._restricted
        p.UnparsedEntityDeclHandler = self._restricted
        p.NotationDeclHandler = self._restricted
        p.ProcessingInstructionHandler = self._restricted
        p.CommentHandler = self._restricted
        p.SkippedEntityHandler = self._restricted
        p.ExternalEntityRefHandler = self._restricted_ext
        self._parser = p

    @property
    def between_elements(self) -> bool:
        """Whether no top-level element is partly parsed (message framing, RFC 7395
        §3.3.3, checks that each message held whole elements)."""
        return self._depth <= 1 and not self._stack

    # -- input ------------------------------------------------------------------------
    def feed(self, data: bytes) -> list[StreamEvent]:
        """Parse more bytes; return the complete events. Raises StreamError."""
        if self._closed:
            return []
        events = self._events = []
        if self._head is not None:
            self._check_encoding(data)
        if self._parser is None:
            self._wake()
        if len(data) <= _SLICE and self._carry is None:
            # The usual read: one slice, no parser swap pending (only a carry arms one).
            self._fed += len(data)
            self._parse(data)
            if not self._closed:
                self._check_bounds()
            return events
        for start in range(0, len(data), _SLICE):
            chunk = data[start:start + _SLICE]
            self._fed += len(chunk)
            if self._carry is not None:
                self._carry += chunk
            try:
                self._parse(chunk)
            except _SwapParser:
                self._swap_parser()
            if self._closed:
                break
            self._check_bounds()
        return events

    def hibernate(self) -> bool:
        """Drop the parser of an idle stream between stanzas; True if it was dropped.

        An expat parser with its name tables is most of what an idle session holds (about
        14 kB: bench/README.md, "TLS memory per session"). Between two top-level elements
        the only state the stream needs is the root's namespace declarations, so the next
        ``feed`` starts a fresh parser on a rebuilt header (as a parser swap does) and
        reads on. Nothing is dropped mid-element or with unparsed bytes held."""
        parser = self._parser
        if (parser is None or self._depth != 1 or self._stack or self._closed
                or self._carry is not None):
            return False
        # Outside a callback expat reports the position just past its last event: short
        # of what it was fed while it holds part of a tag.
        if self._base + parser.CurrentByteIndex != self._fed:
            return False
        self._parser = None
        # The last feed's events (an idle client's last stanza, often its presence tree)
        # are the caller's, handled by now: not worth keeping for the idle time. Both
        # lists are empty while asleep; one shared list stands for them (56 B each per
        # idle stream), and only a parser appends, so nothing is added before _wake.
        self._events = _ASLEEP
        self._stack = _ASLEEP
        return True

    def _wake(self) -> None:
        """Continue a hibernated stream on a fresh parser (see ``hibernate``)."""
        self._stack = []
        self._fresh_parser_at(self._fed)

    def _fresh_parser_at(self, position: int) -> None:
        """A new parser that has read a stream header rebuilt from the peer's namespace
        declarations (no event is reported for it) and stands at stream ``position``."""
        header = self._rebuilt_header()
        self._new_parser()
        self._depth = 0
        self._base = position - len(header)
        self._fed = position
        self._resuming = True
        try:
            self._parse(header)
        finally:
            self._resuming = False
        self._mark = position

    def _check_encoding(self, data: bytes) -> None:
        """Refuse a stream that is not UTF-8 from its first bytes: a UTF-16 byte order
        mark, or UTF-16 without one (a NUL beside the first '<'), which the parser would
        otherwise follow whatever encoding it was told (RFC 6120 §11.6)."""
        head = (self._head or b"") + data[:4]
        if len(head) < 2:
            self._head = head
            return
        self._head = None
        if head[:2] in _UTF16_STARTS:
            raise StreamError("unsupported-encoding", "XMPP streams are UTF-8 only")

    def _parse(self, chunk: bytes) -> None:
        parser = self._parser
        assert parser is not None  # feed wakes a hibernated stream first
        try:
            parser.Parse(chunk, False)
        except expat.ExpatError as exc:
            # A DOCTYPE or ENTITY after the root is a syntax error to expat, but to the
            # peer it should read as what it is: forbidden markup (RFC 6120 §11.1).
            if exc.code in _RESTRICTED_ERRORS or b"<!DOCTYPE" in chunk or b"<!ENTITY" in chunk:
                raise StreamError("restricted-xml") from None
            raise StreamError("not-well-formed") from None

    # -- bounds -------------------------------------------------------------------------
    def _check_bounds(self) -> None:
        """After a slice: the stanza under way within max_stanza_size, counted as the
        bytes arrive (RFC 6120 §13.12), and the parser's name tables bounded."""
        if self._fed - self._mark > self.max_stanza_size:
            raise StreamError("policy-violation", "stanza too large")
        self._check_names()

    def _check_names(self) -> None:
        """Arm a parser swap once the parser holds too many names, and keep the bytes it
        will need: only those from the last stanza boundary on (at most one stanza)."""
        carry = self._carry
        if carry is None:
            parser = self._parser
            if self._depth >= 1 and parser is not None and len(parser.intern) > self.max_names:
                self._carry = b""
                self._carry_start = self._fed
            return
        drop = self._mark - self._carry_start
        if drop > 0:
            self._carry = carry[drop:]
            self._carry_start = self._mark

    def _swap_parser(self) -> None:
        """Continue the stream on a fresh parser from the stanza start at _restart_at.

        The new parser first reads a stream header rebuilt from the peer's namespace
        declarations (no event is reported for it), then the carried bytes from the
        stanza start on, so stanzas and byte positions are the same as without a swap.
        """
        assert self._carry is not None
        tail = self._carry[self._restart_at - self._carry_start:]
        self._carry = None
        self._stack = []
        self._fresh_parser_at(self._restart_at)
        self._fed = self._restart_at + len(tail)
        self._parse(tail)

    def _rebuilt_header(self) -> bytes:
        decls = self._root_ns_decls
        prefix = next((p for p, uri in decls.items() if uri == self.stream_ns), "stream")
        parts = [f"<{prefix}:stream" if prefix else "<stream"]
        for p, uri in decls.items():
            parts.append(f" xmlns:{p}='{escape_attr(uri)}'" if p else
                         f" xmlns='{escape_attr(uri)}'")
        parts.append(">")
        return "".join(parts).encode()

    # -- expat callbacks --------------------------------------------------------------
    def _restricted(self, *_args: object) -> None:
        raise StreamError("restricted-xml")

    def _restricted_ext(self, *_args: object) -> int:
        raise StreamError("restricted-xml")

    def _xml_decl(self, _version: str, encoding: str | None, _standalone: int) -> None:
        if encoding is not None and encoding.lower().replace("_", "-") not in ("utf-8", "utf8"):
            raise StreamError("unsupported-encoding")

    def _ns_decl(self, prefix: str | None, uri: str | None) -> None:
        # A rebuilt header (_resuming) declares what _root_ns_decls already holds, and
        # that dict may be shared with other streams (_share_decls): never written then.
        if self._depth == 0 and not self._resuming:
            # Interned: every stream declares the same two or three, and each idle
            # stream keeps its declarations (for a parser swap or a wake).
            self._root_ns_decls[sys.intern(prefix or "")] = sys.intern(uri or "")

    def _start(self, tag: str, attrs: dict[str, str]) -> None:
        split = _names.get(tag)
        if split is None:
            ns, _, name = tag.rpartition(_SEP)
            split = (ns, name)
            if len(_names) < _NAME_CACHE_SIZE:
                _names[tag] = split
        depth = self._depth = self._depth + 1
        if depth == 1:
            self._open_stream(split[0], split[1], attrs)
            return
        if depth == 2 and self._carry is not None:
            at = self._fed_position()
            if at >= self._carry_start:
                # A stanza starts inside the carried bytes: hand over to a new parser.
                self._depth = 1
                self._restart_at = at
                raise _SwapParser
        if depth > self.max_depth:
            raise StreamError("policy-violation", "nesting too deep")
        el = Element(split[1], split[0], _convert_attrs(attrs) if attrs else {})
        if depth > 2:
            self._stack[-1].children.append(el)
        self._stack.append(el)

    def _end(self, _tag: str) -> None:
        depth = self._depth
        self._depth = depth - 1
        if depth == 1:
            self._closed = True
            self._events.append(StreamClosed())
            return
        el = self._stack.pop()
        if self._split_text:
            _join_text(el)
        if depth == 2:
            self._split_text = False
            self._mark = self._fed_position()
            self._events.append(StanzaReceived(el))

    def _text(self, data: str) -> None:
        if self._depth >= 2:
            children = self._stack[-1].children
            if children and isinstance(children[-1], str):
                self._split_text = True  # longer than the text buffer: joined in _end
            children.append(data)
        elif not data.isspace():
            raise StreamError("bad-format", "text at stream level")
        else:
            # Whitespace keepalives (RFC 6120 §4.6.1) between stanzas reset the size count.
            self._mark = self._fed_position()

    def _fed_position(self) -> int:
        # Only called from parser callbacks, so a parser is there.
        index = self._parser.CurrentByteIndex  # type: ignore[union-attr]
        return self._base + index if index >= 0 else self._fed

    def _open_stream(self, ns: str, name: str, attrs: dict[str, str]) -> None:
        if name != "stream" or ns != self.stream_ns:
            raise StreamError("invalid-namespace" if name == "stream" else "bad-format")
        content_ns = self._root_ns_decls.get("")
        if self.content_ns is not None and content_ns != self.content_ns:
            raise StreamError("invalid-namespace", "wrong content namespace")
        if self._resuming:
            return  # the rebuilt header of a parser swap: the peer sent no new header
        self._root_ns_decls = _share_decls(self._root_ns_decls)
        self._mark = self._fed_position()
        self._events.append(StreamOpened(_convert_attrs(attrs), content_ns))


def _share_decls(decls: dict[str, str]) -> dict[str, str]:
    """The shared dict equal to ``decls`` (see _shared_decls); never written after this."""
    key = tuple(decls.items())
    shared = _shared_decls.get(key)
    if shared is None:
        if len(_shared_decls) >= _DECLS_CACHE_SIZE:
            return decls
        shared = _shared_decls[key] = decls
    return shared


def _join_text(el: Element) -> None:
    """Merge adjacent text children (one text split by pyexpat's buffer) into one."""
    out: list[Element | str] = []
    run: list[str] = []
    for child in el.children:
        if isinstance(child, str):
            run.append(child)
            continue
        if run:
            out.append("".join(run))
            run = []
        out.append(child)
    if run:
        out.append("".join(run))
    el.children = out


def _convert_attrs(attrs: dict[str, str]) -> dict[str, str]:
    for key in attrs:
        if _SEP in key:
            break
    else:
        return attrs  # nothing namespaced (the usual case); pyexpat made a fresh dict
    out: dict[str, str] = {}
    for key, value in attrs.items():
        if _SEP in key:
            if key.startswith(_XML_PREFIX):
                key = "xml:" + key[len(_XML_PREFIX):]
            else:
                uri, _, local = key.rpartition(_SEP)
                key = "{" + uri + "}" + local
        out[key] = value
    return out


def parse_fragment(text: str | bytes, max_size: int = 16 * 1024 * 1024) -> Element:
    """Parse one standalone element (from storage or tests) with the same restrictions."""
    data = text.encode() if isinstance(text, str) else text
    reader = StreamReader(max_stanza_size=max_size, max_depth=256, content_ns=None)
    # Elements written without an xmlns are stanzas in the client namespace.
    wrapper = (b"<stream:stream xmlns='jabber:client' xmlns:stream='" + NS_STREAM.encode()
               + b"'>")
    events = reader.feed(wrapper + data + b"</stream:stream>")
    elements = [e.element for e in events if isinstance(e, StanzaReceived)]
    if len(elements) != 1:
        raise StreamError("bad-format", "expected exactly one element")
    return elements[0]


def stream_header(*, content_ns: str = NS_CLIENT, to: str | None = None,
                  from_: str | None = None, id_: str | None = None, version: str = "1.0",
                  lang: str = "en", extra_ns: dict[str, str] | None = None) -> str:
    """The opening tag of a stream, with the XML declaration (RFC 6120 §4.7)."""
    parts = ["<?xml version='1.0'?><stream:stream"]
    for key, value in (("from", from_), ("to", to), ("id", id_), ("version", version),
                       ("xml:lang", lang)):
        if value:
            parts.append(f" {key}='{escape_attr(value)}'")
    parts.append(f" xmlns='{content_ns}' xmlns:stream='{NS_STREAM}'")
    for prefix, uri in (extra_ns or {}).items():
        parts.append(f" xmlns:{prefix}='{escape_attr(uri)}'")
    parts.append(">")
    return "".join(parts)


STREAM_CLOSE = "</stream:stream>"


def stream_element_xml(el: Element, content_ns: str = NS_CLIENT) -> str:
    """Serialise an element of the stream namespace with the ``stream:`` prefix the peer
    declared (<stream:features/>, <stream:error/>), children in their own namespaces."""
    inner = "".join(c.to_xml(content_ns) if isinstance(c, Element) else escape_text(c)
                    for c in el.children)
    return f"<stream:{el.name}>{inner}</stream:{el.name}>"
